"""The size limits of the redesign (issue 15), kept: trainer.py ≤ 350 lines and no function in
training/, run/ or evaluation/ longer than 60 lines; no class overrides more than two Trainer
methods."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import mtlkit

SRC = Path(mtlkit.__file__).resolve().parent


def long_functions(limit: int = 60) -> list[str]:
    out = []
    for folder in ("training", "run", "evaluation"):
        for path in sorted((SRC / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > limit:
                        out.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_trainer_module_stays_small():
    assert len((SRC / "training" / "trainer.py").read_text(encoding="utf-8").splitlines()) <= 350


def test_no_long_function_in_the_middle():
    assert long_functions() == []


def test_trainer_subclasses_override_at_most_two_methods():
    from mtlkit.analysis import AffinityTrainer
    from mtlkit.distill import DistillationTrainer
    from mtlkit.training import DistributedTrainer, Trainer

    own = {n for n, v in vars(Trainer).items() if inspect.isfunction(v)}
    for cls in (DistributedTrainer, DistillationTrainer, AffinityTrainer):
        overridden = {n for n, v in vars(cls).items() if inspect.isfunction(v) and n in own}
        assert len(overridden) <= 2, (cls.__name__, overridden)
