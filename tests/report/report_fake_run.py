"""A realistic fake run folder in the format the runner writes (see mtlkit.run.run).

Three tasks: ``digit`` (multiclass, 10 classes), ``parity`` (binary), ``size`` (regression,
auxiliary); 8 epochs; every optional part present unless switched off.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

TASKS = [
    {"name": "digit", "kind": "multiclass", "num_classes": 10, "num_labels": None, "dim": 1,
     "loss": None, "weight": 1.0, "role": "primary", "missing_value": None, "columns": None},
    {"name": "parity", "kind": "binary", "num_classes": None, "num_labels": None, "dim": 1,
     "loss": None, "weight": 1.0, "role": "primary", "missing_value": None, "columns": None},
    {"name": "size", "kind": "regression", "num_classes": None, "num_labels": None, "dim": 1,
     "loss": "l1", "weight": 0.1, "role": "auxiliary", "missing_value": None, "columns": None},
]
NAMES = [t["name"] for t in TASKS]
HIB = {"digit": {"accuracy": True, "macro_f1": True},
       "parity": {"accuracy": True, "f1": True, "roc_auc": True},
       "size": {"mae": False, "rmse": False, "r2": True}}
CONFIG = """\
# mtlkit train examples/fake.yaml
name: fake-run
seed: 7
data:
  dataset: multimnist
  sampler:
    name: temperature
    temperature: 2.0
model:
  trunk: {name: lenet}
  architecture: {name: mmoe, num_experts: 3}
training:
  epochs: 8
  weighting: {name: dwa, temperature: 2.0}
  aggregator: {name: pcgrad}
  level: representation
baselines: true
"""


def _val(r: np.random.Generator, epoch: int, scale: float = 1.0) -> dict[str, dict[str, float]]:
    g = 1 - math.exp(-epoch / 3)
    return {
        "digit": {"accuracy": 0.5 + 0.4 * g * scale + r.normal(0, 0.01),
                  "macro_f1": 0.45 + 0.4 * g * scale + r.normal(0, 0.01)},
        "parity": {"accuracy": 0.6 + 0.3 * g * scale, "f1": 0.55 + 0.3 * g * scale,
                   "roc_auc": 0.65 + 0.3 * g * scale + r.normal(0, 0.005)},
        "size": {"mae": 2.0 - 1.2 * g * scale, "rmse": 2.5 - 1.3 * g * scale, "r2": 0.1 + 0.6 * g},
    }


def mtl_records(*, conflicts: bool = True, sharing: bool = True, sampling: bool = True,
                epochs: int = 8, nonfinite_epoch: int | None = 3) -> list[dict[str, Any]]:
    r = np.random.default_rng(0)
    recs = []
    for e in range(1, epochs + 1):
        loss = {"digit": 2.3 * math.exp(-e / 3) + 0.2 + r.normal(0, 0.02),
                "parity": 0.69 * math.exp(-e / 4) + 0.1,
                "size": 4.0 * math.exp(-e / 2) + 0.5}
        w = r.dirichlet([5, 5, 5]) * 3
        probs = {"digit": 0.45, "parity": 0.35, "size": 0.2}
        counts = {k: int(v * 100 + r.integers(-3, 4)) for k, v in probs.items()}
        rec: dict[str, Any] = {
            "epoch": e, "train_loss": loss, "weights": dict(zip(NAMES, w.tolist())),
            "steps": sum(counts.values()) if sampling else 100,
            "task_steps": ({k: float(v) for k, v in counts.items()} if sampling
                           else dict.fromkeys(NAMES, 100.0)),
            "lr": 1e-3 * 0.5 * (1 + math.cos(math.pi * (e - 1) / epochs)), "time_s": 3.2,
            "nonfinite_skipped": 0,
            "val": _val(r, e), "val_loss": {k: v * 1.1 + 0.02 * e for k, v in loss.items()},
            "val_score": 0.5 - 0.02 * (e - 6) ** 2,
            "aggregator_weights": {"digit": 0.4, "parity": 0.35 + 0.01 * e, "size": 0.25 - 0.01 * e},
            "penalties": {"orthogonality": 0.5 * math.exp(-e / 2)},
        }
        if conflicts:
            c01, c02, c12 = 0.3 - 0.05 * e, -0.2, 0.1
            rec["conflicts"] = {
                "mean_cosine": (c01 + c02 + c12) / 3,
                "conflict_fraction": sum(c < 0 for c in (c01, c02, c12)) / 3,
                "cosine_matrix": [[1.0, c01, c02], [c01, 1.0, c12], [c02, c12, 1.0]],
                "norm_ratio": {"digit": 1.4, "parity": 0.8, "size": 0.8},
            }
        if sharing:
            gates = r.dirichlet([2, 2, 2], size=3)
            rec["sharing"] = {
                "gates": dict(zip(NAMES, gates.tolist())),
                "cross_stitch": [[[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.05, 0.05, 0.9]],
                                 [[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]]],
                "policy": {"digit": [0.99, 0.9, 0.2, 0.7], "parity": [0.95, 0.85, 0.6, 0.1],
                           "size": [0.97, 0.3, 0.1, 0.05]},
                "discriminator_accuracy": 0.9 - 0.07 * e,
                "penalty": 0.3 / e,
                "mystery": {"alpha": [1, 2, 3], "note": "unknown key"},
            }
        if sampling:
            rec["sampling"] = {"probabilities": probs, "counts": counts}
        recs.append(rec)
    if nonfinite_epoch is not None and nonfinite_epoch <= epochs:
        rec = recs[nonfinite_epoch - 1]
        rec["train_loss"]["size"] = None
        rec["nonfinite_skipped"] = 2
        if "conflicts" in rec:
            rec["conflicts"]["cosine_matrix"][0][2] = None
    return recs


def stl_records(task: str, epochs: int = 8) -> list[dict[str, Any]]:
    r = np.random.default_rng(hash(task) % 1000)
    out = []
    for e in range(1, epochs + 1):
        loss = {"digit": 2.3 * math.exp(-e / 2.5) + 0.25, "parity": 0.69 * math.exp(-e / 3) + 0.12,
                "size": 4.0 * math.exp(-e / 2) + 0.45}[task]
        out.append({"epoch": e, "train_loss": {task: loss}, "weights": {task: 1.0}, "steps": 100,
                    "task_steps": {task: 100.0}, "lr": 1e-3, "time_s": 1.5, "nonfinite_skipped": 0,
                    "val": {task: _val(r, e, 0.95)[task]}, "val_loss": {task: loss * 1.15},
                    "val_score": 0.1 * e})
    return out


def _confusion(r: np.random.Generator, k: int, acc: float) -> list[list[int]]:
    m = r.integers(0, 4, size=(k, k))
    np.fill_diagonal(m, int(40 * acc))
    return m.tolist()


def summary(*, baselines: bool = True) -> dict[str, Any]:
    r = np.random.default_rng(1)
    mtl_test = {"digit": {"accuracy": 0.912, "macro_f1": 0.905},
                "parity": {"accuracy": 0.861, "f1": 0.85, "roc_auc": float("nan")},
                "size": {"mae": 0.71, "rmse": 0.93, "r2": 0.66}}
    stl_test = {"digit": {"accuracy": 0.899, "macro_f1": 0.901},
                "parity": {"accuracy": 0.872, "f1": 0.84, "roc_auc": 0.93},
                "size": {"mae": 0.69, "rmse": 0.95, "r2": 0.64}}
    report = {str(i): {"precision": 0.9 + 0.005 * i, "recall": 0.88, "f1-score": 0.89,
                       "support": 40.0} for i in range(10)}
    report["accuracy"] = 0.912
    report["macro avg"] = {"precision": 0.91, "recall": 0.9, "f1-score": 0.905, "support": 400.0}
    report["weighted avg"] = {"precision": 0.91, "recall": 0.91, "f1-score": 0.91, "support": 400.0}
    s: dict[str, Any] = {
        "format_version": 1, "name": "fake-run", "seed": 7, "source": "multimnist",
        "created": "2025-01-02 03:04:05", "tasks": TASKS, "higher_is_better": HIB,
        "main_metric": {"digit": "accuracy", "parity": "roc_auc", "size": "mae"},
        "mtl": {"test": mtl_test, "val": mtl_test, "params": 61234, "inference_ms": 4.21,
                "fit_time_s": 25.6, "best_epoch": 6, "epochs_run": 8},
        "baselines": None, "delta_m": None, "delta_m_per_task": {}, "delta_m_all_tasks": None,
        "sign_convention": "negative means the multi-task model is better",
        "confusion": {"digit": {"mtl": _confusion(r, 10, 0.91), "stl": None},
                      "parity": {"mtl": [[180, 20], [35, 165]], "stl": None,
                                 "labels": ["even", "odd"]}},
        "classification_report": {"digit": report}, "nonfinite_skipped": 2,
        "sizes": {"train": 3000, "val": 1250, "test": 750}, "inference_unit": "ms per 1000 samples",
        "environment": {"torch": "2.13.0", "python": "3.11", "threads": 2},
        "auxiliary": {"generator": "hand-made", "lambda": 0.1},
    }
    if baselines:
        s["baselines"] = {t: {"test": stl_test[t], "params": 40000 + 100 * i, "inference_ms": 3.1,
                              "fit_time_s": 11.0, "best_epoch": 7} for i, t in enumerate(NAMES)}
        s["delta_m_per_task"] = {"digit": -0.94, "parity": 0.34, "size": -0.7}
        s["delta_m"] = -0.3
        s["delta_m_all_tasks"] = -0.43
        s["stl_params_total"] = sum(v["params"] for v in s["baselines"].values())
        s["stl_inference_ms_total"] = 9.3
        s["confusion"]["digit"]["stl"] = _confusion(r, 10, 0.9)
        s["confusion"]["parity"]["stl"] = [[175, 25], [30, 170]]
    return s


def make_fake_run(root: Path, *, baselines: bool = True, conflicts: bool = True,
                  sharing: bool = True, sampling: bool = True) -> Path:
    """Write the fake run folder under ``root`` and return it."""
    run = Path(root) / "fake-run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(CONFIG, encoding="utf-8")
    with open(run / "metrics.jsonl", "w", encoding="utf-8") as fh:
        for rec in mtl_records(conflicts=conflicts, sharing=sharing, sampling=sampling):
            fh.write(json.dumps(rec) + "\n")
    if baselines:
        for t in NAMES:
            d = run / "baselines" / t
            d.mkdir(parents=True, exist_ok=True)
            (d / "metrics.jsonl").write_text(
                "".join(json.dumps(rec) + "\n" for rec in stl_records(t)), encoding="utf-8")
    # NaN written as null, the way mtlkit.run.write_json does it
    from mtlkit.run import to_jsonable

    (run / "summary.json").write_text(json.dumps(to_jsonable(summary(baselines=baselines)),
                                                 indent=2), encoding="utf-8")
    (run / "model.safetensors").write_bytes(b"")
    return run
