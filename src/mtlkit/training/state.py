"""A trainer's state as one nested dict of tensors and JSON-able values (what a checkpoint
holds), and its restoration: model, optimiser, scheduler, methods, generators, position,
history, and the state of every hook with a ``state_key``."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mtlkit.training.loop import History

if TYPE_CHECKING:
    from mtlkit.training.trainer import Trainer

__all__ = ["load_trainer_state", "trainer_state"]


def trainer_state(tr: Trainer) -> dict[str, Any]:
    """Everything a resumed run needs (tensors and JSON-able values only)."""
    state = {
        "model": tr.model.state_dict(),
        "optimizer": tr.optimizer.state_dict() if tr.optimizer else None,
        "scheduler": tr.scheduler.state_dict() if tr.scheduler else None,
        "weighting": tr.weighting.state_dict(),
        "aggregator": tr.aggregator.state_dict() if tr.aggregator is not None else None,
        "sampler": tr.sampler.state_dict() if hasattr(tr.sampler, "state_dict") else None,
        "schedule": tr.schedule.state_dict() if hasattr(tr.schedule, "state_dict") else None,
        "generator": tr.generator.get_state(), "method_generator": tr.method_generator.get_state(),
        "validation_generator": tr.validation_generator.get_state(),
        "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(), "python_rng": random.getstate(),
        "epoch": tr.epoch, "step": tr.step_count, "history": tr.history.records,
        "best_epoch": tr.history.best_epoch, "stopped_early": tr.history.stopped_early,
        "nonfinite_skipped": tr.nonfinite_skipped, "precision": tr.precision.state_dict(),
    }
    for cb in tr.hooks:
        if cb.state_key:
            state[cb.state_key] = cb.state_dict()
    return state


def load_trainer_state(tr: Trainer, state: dict[str, Any]) -> None:
    """Restore what :func:`trainer_state` saved (after the trainer's ``setup``)."""
    tr.model.load_state_dict(state["model"])
    for key, obj in (("optimizer", tr.optimizer), ("scheduler", tr.scheduler)):
        if state.get(key) and obj is not None:
            obj.load_state_dict(state[key])
    tr.weighting.load_state_dict(state["weighting"])
    parts: tuple[tuple[str, Any], ...] = (("aggregator", tr.aggregator), ("sampler", tr.sampler),
                                          ("schedule", tr.schedule))
    for key, obj in parts:
        if state.get(key) is not None and hasattr(obj, "load_state_dict"):
            obj.load_state_dict(state[key])
    tr.generator.set_state(state["generator"])
    if state.get("validation_generator") is not None:
        tr.validation_generator.set_state(state["validation_generator"])
    tr.set_rng_states({"torch": state["torch_rng"], "numpy": state["numpy_rng"],
                      "python": state["python_rng"], "method": state["method_generator"]})
    tr.epoch, tr.step_count = int(state["epoch"]), int(state["step"])
    tr.history = History(records=list(state.get("history", [])), best_epoch=state.get("best_epoch"),
                        stopped_early=bool(state.get("stopped_early", False)))
    tr.guard.skipped = int(state.get("nonfinite_skipped", 0))
    tr.precision.load_state_dict(state.get("precision") or {})
    for cb in tr.hooks:
        if cb.state_key and state.get(cb.state_key) is not None:
            cb.load_state_dict(state[cb.state_key])
