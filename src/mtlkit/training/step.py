"""One optimisation step: task losses -> weighting -> Jacobian -> aggregator -> gradients ->
optimiser.

:func:`train_step` is what :meth:`mtlkit.training.Trainer.train_step` runs. It reads the
trainer's parts (model, tasks, weighting, aggregator, schedule, optimiser, the communication
object ``comm`` and the hooks) and dispatches on what a method declares (capability flags),
never on its name. Everything that crosses processes goes through ``trainer.comm``.

The task's ``Task.weight`` is its prior λ_k: a named weighting sees the losses λ_k L_k, so the
effective weight of L_k (logged in ``record["weights"]``) is λ_k · w_k, for every weighting;
with none named the trainer's weighting is ``Static`` with the λ (the objective Σ λ_k L_k).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from mtlkit.jacobian import assign_grads, jacobian, representation_jacobian
from mtlkit.weighting._base import StepContext

if TYPE_CHECKING:
    from mtlkit.tasks import Task
    from mtlkit.training.trainer import Batch, Trainer

__all__ = ["StepResult", "train_step"]


@dataclass
class StepResult:
    """What one step did: per-task losses (K,), effective weights (K,), which tasks were
    optimised (K,) and, when the step was skipped (non-finite), nothing learned."""

    losses: Tensor
    weights: Tensor
    present: Tensor
    skipped: bool = False
    aggregator_weights: Tensor | None = None
    aggregator_tasks: list[int] = field(default_factory=list)
    penalties: dict[str, float] = field(default_factory=dict)

    def __iter__(self) -> Any:  # ``losses, weights, present = trainer.train_step(batch)``
        return iter((self.losses, self.weights, self.present))


def task_losses(tr: Trainer, out: Mapping[str, Tensor], ys: dict[str, Tensor], ms: dict[str, Tensor]
            ) -> tuple[Tensor, Tensor]:
    """Per-task losses (K,) and which tasks have labels (K,), global over processes; the
    per-task graphs are kept in ``step_losses`` (None when the values came from ``comm``)."""
    if not isinstance(out, Mapping):
        raise TypeError(f"The model {type(tr.model).__name__} must return a dict {{task name: Tensor}}; "
                        f"it returned a {type(out).__name__}.")
    losses = [_task_loss(tr, t, out, ys, ms) for t in tr.tasks]
    present = torch.tensor([bool(ms[t.name].any()) for t in tr.tasks])
    counts = [ms[t.name].bool().sum() for t in tr.tasks]
    for cb in tr.hooks:
        losses, present = cb.transform_losses(tr, dict(out), ys, ms, losses, present)
    stacked = torch.stack(losses)
    synced = tr.comm.sync_losses(stacked, torch.stack(counts).to(tr.device))
    if synced is not None:
        tr.step_losses = None  # the per-task list holds local values: use the synced stack
        return synced
    tr.step_losses = losses  # per-task graphs: a row of the stack would traverse every head
    return stacked, present

def _task_loss(tr: Trainer, t: Task, out: Mapping[str, Tensor], ys: dict[str, Tensor], ms: dict[str, Tensor]) -> Tensor:
    if t.name not in out:
        raise KeyError(f"The model returned no output for task {t.name!r}; it returned {sorted(out)}.")
    pred = out[t.name]
    if not isinstance(pred, Tensor) or not pred.is_floating_point():
        raise TypeError(f"The model's output for task {t.name!r} must be a floating-point Tensor "
                        f"(logits or values). Got {getattr(pred, 'dtype', type(pred).__name__)}.")
    y, m = ys[t.name].to(tr.device), ms[t.name].to(tr.device)
    want = (y.shape[0], *t.output_shape)
    if tuple(pred.shape) != want:
        raise ValueError(f"The model's output for task {t.name!r} has shape {tuple(pred.shape)}; "
                         f"expected {want} for a {t.kind} task.")
    return t.compute_loss(pred, y, m)


def needs_representation(tr: Trainer) -> bool:
    """The step needs the shared representation (for a method, the monitor or an engine)."""
    return (tr.level == "representation" or tr.conflict_hook is not None
            or tr.jacobian_engine == "two-stage"
            or bool(getattr(tr.weighting, "needs_gradients", False))
            or bool(getattr(tr.schedule, "needs_representation", False)))


def train_step(tr: Trainer, batch: Batch) -> StepResult:
    """One optimisation step on ``batch``; see the module docstring."""
    x, ys, ms = batch
    x = x.to(tr.device)
    for cb in tr.hooks:
        cb.before_step(tr, batch)
    observe = getattr(tr.model, "observe_batch", None)
    if callable(observe):  # e.g. the adversarial discriminator learns each sample's tasks
        observe({k: m.to(tr.device) for k, m in ms.items()})
    out, rep = tr.comm.forward(tr, x, needs_representation(tr))
    losses, present = tr._losses(out, ys, ms)
    per_task = tr.step_losses if tr.step_losses is not None else list(losses.unbind())
    ctx = StepContext(step=tr.step_count, epoch=tr.epoch, task_names=tr.task_names, present=present,
                      shared_parameters=tr.shared, last_shared_parameters=tr.last_shared,
                      representation=rep, grad_fn=tr.grad_fn, generator=tr.method_generator,
                      extra={"losses": losses}, model=tr.model)
    if getattr(tr.weighting, "needs_validation_batch", False):
        _add_validation(tr, ctx)
    if tr.schedule is not None:
        present = present & tr.schedule.select(tr.step_count, present, ctx).to(present.device)
        ctx.present = present
    zeros = torch.zeros_like(losses).detach()
    if not bool(present.any()):
        tr.step_count += 1
        return StepResult(losses.detach(), zeros, present)
    bad = [tr.task_names[k] for k in range(len(losses)) if present[k] and not torch.isfinite(losses[k])]
    if bad:
        tr.guard.skip(tr, bad, "loss")
        return StepResult(losses.detach(), zeros, present, skipped=True)
    prior = tr.prior.to(losses)
    res = tr.weighting(losses * prior, ctx)
    weights = res.weights.detach() * prior
    result = StepResult(losses.detach(), weights, present)
    extra_sum = _extra_losses(tr, result)
    tr.optimizer.zero_grad(set_to_none=True)  # type: ignore[union-attr]
    for cb in tr.hooks:
        cb.observe_gradients(tr, per_task, present, rep)
    _backward(tr, res.objective, weights, per_task, present, rep, extra_sum, result)
    if not _apply_update(tr, present):
        result.skipped = True
        return result
    if getattr(tr.weighting, "needs_post_step_losses", False):
        with torch.no_grad():
            out2, _ = tr.comm.forward(tr, x, False)
            after, _ = tr._losses(out2, ys, ms)
        tr.weighting.after_step(after * prior, ctx)
    tr.step_count += 1
    return result


def _add_validation(tr: Trainer, ctx: StepContext) -> None:
    """A validation batch for this step (drawn with replacement by the trainer's own seeded
    generator, so a resumed run draws the same ones) and the function that gives the model's
    per-task losses on it, optionally at other parameter values (for a virtual step)."""
    val = tr.validation_data
    if val is None or len(val) == 0:
        raise ValueError(f"The weighting {tr.weighting} needs validation data at every step "
                         f"(needs_validation_batch): pass it to fit(train, val).")
    n = min(tr.settings.batch_size, len(val))
    idx = torch.randint(len(val), (n,), generator=tr.validation_generator)
    x, ys, ms = val.batch(idx)
    ctx.validation_batch = (x, ys, ms)
    x = x.to(tr.device)

    def validation_losses(params: dict[str, Tensor] | None = None) -> Tensor:
        if params is None:
            out = tr.model(x)
        else:
            out = torch.func.functional_call(tr.model, params, (x,), strict=False)
        return torch.stack([_task_loss(tr, t, out, ys, ms) for t in tr.tasks])

    ctx.validation_losses = validation_losses


def _extra_losses(tr: Trainer, result: StepResult) -> Tensor | None:
    """The model's own penalties (``extra_losses()``: AdaShare's sparsity, the adversarial
    loss ...), summed into the objective and recorded per epoch."""
    fn = getattr(tr.model, "extra_losses", None)
    extras: dict[str, Tensor] = fn() if callable(fn) else {}
    if not extras:
        return None
    result.penalties = {name: float(v.detach()) for name, v in extras.items()}
    return cast(Tensor, sum(extras.values()))


def _backward(tr: Trainer, objective: Tensor, weights: Tensor, per_task: Sequence[Tensor], present: Tensor,
              rep: Tensor | None, extra_sum: Tensor | None, result: StepResult) -> None:
    """Gradients of the step in ``.grad``, the same on every process."""
    if tr.aggregator is None or (tr.level == "parameters" and not tr.shared):
        # no aggregator, or no shared parameters (e.g. soft sharing): nothing to aggregate
        total = objective if extra_sum is None else objective + extra_sum
        total.backward()
        tr.comm.sync_grads(tr.trainable + tr.weighting_parameters())
        return
    unsynced = _aggregated_backward(tr, objective, weights, per_task, present, rep, extra_sum, result)
    tr.comm.sync_grads(unsynced + tr.weighting_parameters())


def _aggregated_backward(tr: Trainer, objective: Tensor, w: Tensor, per_task: Sequence[Tensor],
                         present: Tensor, rep: Tensor | None, extra_sum: Tensor | None,
                         result: StepResult) -> list[nn.Parameter]:
    """Shared parameters get the aggregated direction, the others their own (weighted)
    gradient. Returns the parameters whose gradients are still local to this process."""
    idx = present.nonzero()[:, 0].tolist()
    weighted = [w[k] * per_task[k] for k in idx]
    if tr.level == "representation":
        assert rep is not None
        d = _aggregate(tr, representation_jacobian(weighted, rep), idx, weighted, result)
        rep.backward(d.view_as(rep).to(rep.dtype), retain_graph=True)
    else:
        j = tr.comm.sync_jacobian(jacobian(weighted, tr.shared, engine=tr.jacobian_engine, representation=rep))
        d = _aggregate(tr, j, idx, weighted, result)
        # a Gramian-based direction is the fresh product w @ J: handed over without a copy
        assign_grads(tr.shared, d, copy=result.aggregator_weights is None)
    shared_ids = {id(p) for p in tr.shared}
    others = [p for p in tr.trainable if id(p) not in shared_ids] + tr.weighting_parameters()
    rest = objective if extra_sum is None else objective + extra_sum
    if others:
        _accumulate(others, torch.autograd.grad(rest, others, retain_graph=extra_sum is not None,
                                                allow_unused=True))
    if extra_sum is not None and tr.shared and extra_sum.requires_grad:
        _accumulate(tr.shared, torch.autograd.grad(extra_sum, tr.shared, allow_unused=True))
    if tr.level == "representation" or extra_sum is not None:
        return list(tr.trainable)
    return [p for p in tr.trainable if id(p) not in shared_ids]


def _accumulate(params: Sequence[Tensor], grads: Sequence[Tensor | None]) -> None:
    for p, g in zip(params, grads):
        if g is not None:
            p.grad = g if p.grad is None else p.grad + g


def _aggregate(tr: Trainer, j: Tensor, idx: list[int], weighted: Sequence[Tensor], result: StepResult) -> Tensor:
    """The aggregator's direction for the shared part. Stateful methods learn which tasks the
    rows are (``tasks``), loss-normalised ones get the (weighted) losses, and a method that
    weights the Gramian gets the global one from ``comm``."""
    agg = tr.aggregator
    assert agg is not None
    extras: dict[str, Any] = {"tasks": idx}
    if getattr(agg, "needs_losses", False):
        extras["losses"] = torch.stack([v.detach() for v in weighted])
    wants_gramian = getattr(agg, "gramian_based", False) and getattr(agg, "reads_gramian", True)
    out = agg.aggregate(j, gramian=tr.comm.gramian(j, tr.level) if wants_gramian else None, **extras)
    if out.weights is not None:
        result.aggregator_weights = out.weights.detach()
        result.aggregator_tasks = idx
    return out.direction


def _apply_update(tr: Trainer, present: Tensor) -> bool:
    """Check the gradients are finite, clip, step the optimiser. False: the step was skipped."""
    grads = [p.grad for p in tr.trainable if p.grad is not None]
    # one fused foreach reduction: the total norm is non-finite iff some gradient entry is
    total_norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
    assert tr.optimizer is not None
    if not bool(torch.isfinite(total_norm)):
        tr.optimizer.zero_grad(set_to_none=True)
        tr.guard.skip(tr, [n for n, k in zip(tr.task_names, present.tolist()) if k], "gradient")
        return False
    if tr.settings.clip_grad_norm:
        torch.nn.utils.clip_grads_with_norm_(tr.trainable, tr.settings.clip_grad_norm, total_norm)
    tr.optimizer.step()
    tr.guard.ok()
    return True
