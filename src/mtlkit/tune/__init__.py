"""``mtlkit tune``: search what a config marks searchable with Optuna, then retrain the best
config over seeds (Optuna is the optional ``tune`` extra: ``pip install 'mtlkit[tune]'``).

* :mod:`mtlkit.tune.space` — the ``search:`` section: dotted paths, choices and ranges,
  checked before anything runs (:class:`SearchSpace`, :class:`SearchSpaceError`).
* :mod:`mtlkit.tune.objective` — one trial: trained once, scored by the validation Δm
  against the cached single-task references (or ``tune: {metric: TASK/METRIC}``), reported
  per epoch to Optuna's median pruner.
* :mod:`mtlkit.tune.study` — the study: SQLite in the run folder or a shared storage URL,
  refused when created from another config, resumed without repeating finished trials,
  one seeded TPE sampler per trial.
* :mod:`mtlkit.tune.execute` — :func:`tune`: all of it, the trials table, the best config,
  importances, the retrain over seeds and the report (:mod:`mtlkit.report.tune`).

>>> from mtlkit.config import parse_config
>>> cfg = parse_config({"data": {"dataset": "yeast"},
...                     "search": {"training.optimizer.lr": {"low": 1e-2, "high": 1e-4}}})
>>> SearchSpace.from_config(cfg, check_builds=False)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
mtlkit.tune.space.SearchSpaceError: Invalid search space: 1 problem (nothing was run)
  - training.optimizer.lr: the range is empty: low 0.01 > high 0.0001.
"""

from __future__ import annotations

from mtlkit.tune._optuna import require_optuna
from mtlkit.tune.execute import TuneResult, tune
from mtlkit.tune.objective import Objective
from mtlkit.tune.space import Param, SearchSpace, SearchSpaceError
from mtlkit.tune.study import ForeignStudyError

__all__ = ["ForeignStudyError", "Objective", "Param", "SearchSpace", "SearchSpaceError", "TuneResult",
           "require_optuna", "tune"]
