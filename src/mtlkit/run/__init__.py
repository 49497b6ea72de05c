"""A run, from a config to a run folder.

========================  ==================================================================
``data``                  load the data source, add auxiliary targets, split, standardise
``build``                 build and check every component before anything loads or is written
``folder``                the run folder as one object: layout, start/resume/replace rules,
                          model files (nothing is ever deleted)
``train_one``             train one model into a folder (every model of a run goes through it)
``summary``               the typed ``summary.json`` and ``metrics.jsonl`` records
``execute``               :func:`run`: all of it in order, and :func:`check`
========================  ==================================================================

Single-task baselines live in :mod:`mtlkit.evaluation.baselines`, Δm in
:mod:`mtlkit.evaluation.delta_m`. The names load on first use (the report reads
:class:`Summary` without torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "run": "execute", "check": "execute", "RunResult": "execute", "WarningLog": "execute",
    "write_report_safely": "execute",
    "PreparedData": "data", "prepare": "data", "prepare_from_config": "data",
    "resolve_tasks": "data", "default_trunk_for": "data",
    "Built": "build", "UnknownNamesError": "build", "build_all": "build", "validate": "build",
    "build_components": "build", "build_model_for": "build", "make_trainer": "build",
    "resolve_device": "build", "count_parameters": "build",
    "RunFolder": "folder", "RunFolderError": "folder", "FORMAT_VERSION": "folder", "SUMMARY": "folder",
    "MODEL_WEIGHTS": "folder", "MODEL_META": "folder", "RESUMABLE_KEYS": "folder", "save_model": "folder",
    "load_model": "folder", "load_model_meta": "folder", "read_json": "folder", "verify_model": "folder",
    "RunLock": "folder", "RunLockedError": "folder", "DataChangedError": "folder", "RUN_RECORD": "folder",
    "data_fingerprint": "folder",
    "Summary": "summary", "ModelResult": "summary", "EpochRecord": "summary",
    "Trained": "train_one", "train_into": "train_one", "evaluate_outputs": "train_one",
    "inference_ms": "train_one", "model_meta": "train_one",
    "atomic_write": "mtlkit._io", "write_json": "mtlkit._io", "to_jsonable": "mtlkit._io",
    "sha256_file": "mtlkit._io",
    "run_seeds": "seeds", "SeedsResult": "seeds", "ReferenceCache": "seeds", "reference_key": "seeds",
    "aggregate_seeds": "seeds",
}

__all__ = ["FORMAT_VERSION", "MODEL_META", "MODEL_WEIGHTS", "RESUMABLE_KEYS", "RUN_RECORD", "SUMMARY", "Built",
           "DataChangedError", "EpochRecord", "ModelResult", "PreparedData", "RunFolder", "RunFolderError",
           "RunLock", "RunLockedError", "RunResult", "Summary", "Trained",
           "UnknownNamesError", "WarningLog", "atomic_write", "build_all", "build_components",
           "build_model_for", "check", "count_parameters", "default_trunk_for", "evaluate_outputs",
           "inference_ms", "load_model", "load_model_meta", "make_trainer", "model_meta", "prepare",
           "prepare_from_config", "read_json", "resolve_device", "resolve_tasks", "run", "save_model",
           "sha256_file", "to_jsonable", "train_into", "validate", "verify_model", "write_json",
           "write_report_safely", "data_fingerprint", "run_seeds", "SeedsResult", "ReferenceCache",
           "reference_key", "aggregate_seeds"]


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'mtlkit.run' has no attribute {name!r}")
    module = importlib.import_module(where if "." in where else f"{__name__}.{where}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(globals()))


if TYPE_CHECKING:
    from mtlkit._io import atomic_write, sha256_file, to_jsonable, write_json
    from mtlkit.run.build import (
        Built,
        UnknownNamesError,
        build_all,
        build_components,
        build_model_for,
        count_parameters,
        make_trainer,
        resolve_device,
        validate,
    )
    from mtlkit.run.data import (
        PreparedData,
        default_trunk_for,
        prepare,
        prepare_from_config,
        resolve_tasks,
    )
    from mtlkit.run.execute import RunResult, WarningLog, check, run, write_report_safely
    from mtlkit.run.folder import (
        FORMAT_VERSION,
        MODEL_META,
        MODEL_WEIGHTS,
        RESUMABLE_KEYS,
        RUN_RECORD,
        SUMMARY,
        DataChangedError,
        RunFolder,
        RunFolderError,
        RunLock,
        RunLockedError,
        data_fingerprint,
        load_model,
        load_model_meta,
        read_json,
        save_model,
        verify_model,
    )
    from mtlkit.run.seeds import (
        ReferenceCache,
        SeedsResult,
        aggregate_seeds,
        reference_key,
        run_seeds,
    )
    from mtlkit.run.summary import EpochRecord, ModelResult, Summary
    from mtlkit.run.train_one import Trained, evaluate_outputs, inference_ms, model_meta, train_into
