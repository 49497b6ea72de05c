"""The Optuna study of a tuning run: where it is stored, whose config it belongs to, which
trials are finished, and the seeded sampler of each new trial.

* Storage: SQLite in the run folder (``<out>/study.db``) by default; any Optuna storage URL
  (``--storage``, e.g. ``postgresql://...`` or a shared ``sqlite:///...``) lets several
  processes or machines tune one study together (Optuna's own distributed mode: each worker
  runs ``mtlkit tune`` with the same config and storage).
* Ownership: the study records the hash of the config that created it (the search space,
  the objective and everything trained: :func:`mtlkit.config.config_hash`) as the study
  user attribute ``mtlkit_config_hash``; opening it with another config is refused.
* Resume: finished trials (complete or pruned) are never repeated; the run continues until
  the study holds ``--trials`` of them. A trial left running by a killed process is marked
  failed when the run folder's own study is reopened (the folder's lock guarantees nobody
  else runs it); in a shared storage, Optuna's heartbeat fails it after its grace period.
* Determinism: the sampler of the k-th trial is a TPE sampler (Bergstra et al. 2011) seeded
  from the config's seed and k, where k counts the finished trials (and those refused as
  invalid configs), not the crashed ones: a study resumed after a crash proposes the same
  parameters as one that never crashed. With one worker, the same config gives the same
  trials; with several workers the order of their trials is not reproducible.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = ["CONFIG_HASH_ATTR", "INVALID_ATTR", "ForeignStudyError", "count_done", "fail_stale_trials",
           "mask_url", "open_study", "sampler_for"]

CONFIG_HASH_ATTR = "mtlkit_config_hash"
INVALID_ATTR = "invalid_config"


class ForeignStudyError(ValueError):
    """The storage holds a study of that name created from another config."""


def mask_url(url: str) -> str:
    """``url`` with any password hidden (for logs and records)."""
    return re.sub(r"(//[^:/@]+:)[^@/]*@", r"\1***@", url)


def open_study(optuna: Any, *, storage: Any, name: str, direction: str, config_hash: str,
               attrs: dict[str, Any]) -> Any:
    """The study ``name`` in ``storage``: created (with ``attrs`` and the config hash) or
    loaded; one created from another config (another hash) is refused."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        study = optuna.create_study(study_name=name, storage=storage, direction=direction, load_if_exists=True)
    theirs = study.user_attrs.get(CONFIG_HASH_ATTR)
    if theirs is None:
        if study.trials:
            raise ForeignStudyError(f"The study {name!r} holds {len(study.trials)} trial(s) but was not created "
                                    f"by mtlkit tune (no {CONFIG_HASH_ATTR}): choose another --study name.")
        study.set_user_attr(CONFIG_HASH_ATTR, config_hash)
        for k, v in attrs.items():
            study.set_user_attr(k, v)
    elif theirs != config_hash:
        raise ForeignStudyError(f"The study {name!r} in this storage was created from another config (config hash "
                                f"{theirs}, this config {config_hash}): it is refused, so that trials of two "
                                f"search spaces are never mixed. Use another --study name, another --storage, or "
                                f"the study's own config.")
    wanted = optuna.study.StudyDirection.MINIMIZE if direction == "minimize" else optuna.study.StudyDirection.MAXIMIZE
    if study.direction != wanted:
        raise ForeignStudyError(f"The study {name!r} is {study.direction.name.lower()}d, this objective is "
                                f"{direction}d.")
    return study


def count_done(optuna: Any, study: Any) -> tuple[int, int]:
    """(finished trials: complete or pruned, trials refused as invalid configs)."""
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    done = sum(t.state in (states.COMPLETE, states.PRUNED) for t in trials)
    invalid = sum(t.state == states.FAIL and INVALID_ATTR in t.user_attrs for t in trials)
    return done, invalid


def fail_stale_trials(optuna: Any, study: Any) -> list[int]:
    """Mark the trials still 'running' as failed (only for a study nobody else runs)."""
    running = optuna.trial.TrialState.RUNNING
    stale = [t.number for t in study.get_trials(deepcopy=False, states=(running,))]
    for number in stale:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    return stale


def sampler_for(optuna: Any, seed: int, k: int, *, startup: int) -> Any:
    """The TPE sampler of the k-th trial, seeded from ``seed`` and ``k``."""
    derived = int(np.random.SeedSequence([int(seed), int(k)]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=derived, n_startup_trials=startup)
