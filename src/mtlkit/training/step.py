"""One optimisation step: task losses -> weighting -> Jacobian -> aggregator -> gradients ->
optimiser.

:func:`train_step` is what :meth:`mtlkit.training.Trainer.train_step` runs. It reads the
trainer's parts (model, tasks, weighting, aggregator, schedule, optimiser, the communication
object ``comm`` and the hooks) and dispatches on what a method declares (capability flags),
never on its name. Everything that crosses processes goes through ``trainer.comm``.

The task's ``Task.weight`` is its prior λ_k: a named weighting sees the losses λ_k L_k, so the
effective weight of L_k (logged in ``record["weights"]``) is λ_k · w_k, for every weighting;
with none named the trainer's weighting is ``Static`` with the λ (the objective Σ λ_k L_k).

Host synchronisation. The per-task losses, the labelled counts and the ``present`` mask are
computed on the device, without a host read per task; the model's outputs are checked once per
batch size. A step reads the device at these documented points only:

* the update decision, once per step: one flag vector computed on the device (some task
  present, the losses of the present tasks finite, the gradients finite: one fused norm);
* with a gradient-space aggregator, a schedule, a weighting that keeps state or reads
  gradients, or a hook that observes the task gradients: the ``present`` mask and the losses'
  finiteness, in one read before the backward pass (which rows to differentiate; a stateful
  method must not see a skipped step);
* inside methods that need it (e.g. an aggregator's iterative solver), as the method documents.

``benchmarks/gpu_check.py`` counts them with ``torch.cuda.set_sync_debug_mode``.

Memory. With an aggregator, the task-specific parameters' gradients are taken first; the
shared part's last backward pass (the last row of the Jacobian, Mean's single pass, the pass
of the block-wise Gramian's weights, or the representation's pull-back) then frees the graph
as it goes, as plain training's one pass does, so the saved activations are not held beside
the Jacobian. Only the model's penalties, which need their own pass afterwards, keep it.

Mixed precision (:mod:`~mtlkit.training.precision`): the forward pass and the losses run under
autocast; with fp16 every backward pass starts from scaled losses, per-task gradients are
unscaled before aggregation, and the optimiser's gradients once before the update.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from mtlkit import _batch
from mtlkit.autogram import LayerGramian, eligible_linears
from mtlkit.jacobian import (
    assign_grads,
    jacobian,
    jacobian_rows,
    parameter_blocks,
    representation_jacobian,
)
from mtlkit.training.callbacks import Callback
from mtlkit.weighting._base import StepContext

if TYPE_CHECKING:
    from mtlkit.tasks import Task
    from mtlkit.training.trainer import Batch, Trainer

__all__ = ["StepPlan", "StepResult", "label_counts", "make_plan", "total_grad_norm", "train_step"]


@dataclass
class StepResult:
    """What one step did: per-task losses (K,), effective weights (K,), which tasks were
    optimised (K,) and, when the step was skipped (non-finite), nothing learned. ``penalties``:
    the model's own penalties (detached 0-d tensors, read by the loop once per epoch)."""

    losses: Tensor
    weights: Tensor
    present: Tensor
    skipped: bool = False
    aggregator_weights: Tensor | None = None
    aggregator_tasks: list[int] = field(default_factory=list)
    penalties: dict[str, Tensor | float] = field(default_factory=dict)

    def __iter__(self) -> Any:  # ``losses, weights, present = trainer.train_step(batch)``
        return iter((self.losses, self.weights, self.present))


@dataclass
class StepPlan:
    """What the steps of a trainer decide once, at ``setup``: whether the checks wait for the
    single read after the backward pass (``deferred``), the prior λ on the device (None when
    every λ is 1) and the batch size whose outputs were checked."""

    deferred: bool
    prior: Tensor | None
    checked_rows: int = -1
    #: the K×P Jacobian's memory, reused from step to step (for an aggregator that declares
    #: it keeps no reference to the Jacobian after the call: ``keeps_jacobian`` false)
    workspace: Tensor | None = None
    #: the Gramian of fully connected shared layers from their inputs and output gradients
    #: (``gramian_engine``; None where it does not apply)
    autogram: LayerGramian | None = None

    def jacobian_out(self, tr: Trainer, k: int) -> Tensor | None:
        if getattr(tr.aggregator, "keeps_jacobian", True) or not tr.shared:
            return None
        p = sum(q.numel() for q in tr.shared)
        ws, ref = self.workspace, tr.shared[0]
        if ws is None or ws.shape[0] < k or ws.shape[1] != p or ws.dtype != ref.dtype or ws.device != ref.device:
            ws = self.workspace = torch.empty(max(k, len(tr.tasks)), p, dtype=ref.dtype, device=ref.device)
        return ws[:k]


def make_plan(tr: Trainer) -> StepPlan:
    w = tr.weighting
    quiet = not any(getattr(w, flag, False) for flag in
                    ("stateful", "needs_gradients", "needs_post_step_losses", "needs_validation_batch"))
    deferred = tr.aggregator is None and tr.schedule is None and quiet
    prior = None if bool((tr.prior == 1).all()) else tr.prior.to(tr.device)
    return StepPlan(deferred, prior, autogram=_layer_gramian(tr))


def _layer_gramian(tr: Trainer) -> LayerGramian | None:
    """The layer-wise Gramian engine where it applies: a parameter-level method that weights
    the Gramian, fp32, one process, the loop engine, no block-wise Jacobian, no compilation,
    and at least one eligible ``nn.Linear`` among the shared parameters."""
    from mtlkit.training.comm import Comm

    s, agg = tr.settings, tr.aggregator
    if (s.gramian_engine == "jacobian" or agg is None or tr.level != "parameters" or not tr.shared
            or not (getattr(agg, "gramian_based", False) and getattr(agg, "reads_gramian", True))
            or not callable(getattr(agg, "weights_from", None)) or s.jacobian_block_size is not None
            or s.jacobian_engine != "loop" or s.precision != "fp32" or s.compile or type(tr.comm) is not Comm):
        return None
    modules = eligible_linears(tr.model, tr.shared)
    return LayerGramian(modules, tr.shared, s.gramian_engine) if modules else None


def _overrides(cb: Callback, name: str) -> bool:
    return getattr(type(cb), name) is not getattr(Callback, name)


def label_counts(masks: Sequence[Tensor]) -> Tensor:
    """Labelled entries per task (K,), on the masks' device, without a host read: one
    reduction when every mask has the same shape and dtype, else one per task."""
    first = masks[0]
    if all(m.shape == first.shape and m.dtype == first.dtype for m in masks):
        return torch.stack(list(masks)).reshape(len(masks), -1).sum(1)
    return torch.stack([m.reshape(-1).sum() for m in masks])


def task_losses(tr: Trainer, out: Mapping[str, Tensor], ys: dict[str, Tensor], ms: dict[str, Tensor]
                ) -> tuple[Tensor, Tensor]:
    """Per-task losses (K,) and which tasks have labels (K, bool, on the losses' device),
    global over processes; the per-task graphs are kept in ``step_losses`` (None when the
    values came from ``comm``)."""
    if not isinstance(out, Mapping):
        raise TypeError(f"The model {type(tr.model).__name__} must return a dict {{task name: Tensor}}; "
                        f"it returned a {type(out).__name__}.")
    rows = next(iter(ys.values())).shape[0] if ys else -1
    plan = tr.plan
    if plan.checked_rows != rows:  # the outputs' names, types and shapes: once per batch size
        for t in tr.tasks:
            _check_output(tr, t, out, rows)
        plan.checked_rows = rows
    if tr.device.type != "cpu":
        ys = {k: v.to(tr.device, non_blocking=True) for k, v in ys.items()}
        ms = {k: m.to(tr.device, non_blocking=True) for k, m in ms.items()}
    losses = [t.compute_loss(out[t.name], ys[t.name], ms[t.name]) for t in tr.tasks]
    counts = label_counts([ms[t.name] for t in tr.tasks])
    present = counts > 0
    for cb in tr.hooks:
        if _overrides(cb, "transform_losses"):
            losses, present = cb.transform_losses(tr, dict(out), ys, ms, losses, present)
    stacked = torch.stack(losses)
    synced = tr.comm.sync_losses(stacked, counts)
    if synced is not None:
        tr.step_losses = None  # the per-task list holds local values: use the synced stack
        return synced[0], synced[1].to(synced[0].device)
    tr.step_losses = losses  # per-task graphs: a row of the stack would traverse every head
    return stacked, present.to(stacked.device)


def _check_output(tr: Trainer, t: Task, out: Mapping[str, Tensor], rows: int) -> None:
    if t.name not in out:
        raise KeyError(f"The model returned no output for task {t.name!r}; it returned {sorted(out)}.")
    pred = out[t.name]
    if not isinstance(pred, Tensor) or not pred.is_floating_point():
        raise TypeError(f"The model's output for task {t.name!r} must be a floating-point Tensor "
                        f"(logits or values). Got {getattr(pred, 'dtype', type(pred).__name__)}.")
    want = (rows, *t.output_shape)
    if tuple(pred.shape) != want:
        raise ValueError(f"The model's output for task {t.name!r} has shape {tuple(pred.shape)}; "
                         f"expected {want} for a {t.kind} task.")


def _task_loss(tr: Trainer, t: Task, out: Mapping[str, Tensor], ys: dict[str, Tensor], ms: dict[str, Tensor]) -> Tensor:
    """One task's loss with its output checked (the step's extra forward passes)."""
    y, m = ys[t.name].to(tr.device), ms[t.name].to(tr.device)
    _check_output(tr, t, out, y.shape[0])
    return t.compute_loss(out[t.name], y, m)


def needs_representation(tr: Trainer) -> bool:
    """The step needs the shared representation (for a method, the monitor or an engine)."""
    return (tr.level == "representation" or tr.conflict_hook is not None
            or tr.jacobian_engine == "two-stage"
            or bool(getattr(tr.weighting, "needs_gradients", False))
            or bool(getattr(tr.schedule, "needs_representation", False)))


def train_step(tr: Trainer, batch: Batch) -> StepResult:
    """One optimisation step on ``batch``; see the module docstring."""
    try:
        with _compiled_graph_reusable(tr):  # the forward and every backward pass of the step
            return _train_step(tr, batch)
    finally:
        if tr.plan.autogram is not None:  # the captured layer inputs hold the step's graph
            tr.plan.autogram.release()


def _train_step(tr: Trainer, batch: Batch) -> StepResult:
    x, ys, ms = batch
    for cb in tr.hooks:
        cb.before_step(tr, batch)
    x = _batch.to_device(x, tr.device, non_blocking=True)  # a tensor or {name: tensor}
    observe = getattr(tr.model, "observe_batch", None)
    if callable(observe):  # e.g. the adversarial discriminator learns each sample's tasks
        observe({k: m.to(tr.device) for k, m in ms.items()})
    capture = tr.plan.autogram.capture() if tr.plan.autogram is not None else contextlib.nullcontext()
    with tr.precision.autocast():
        with capture:
            out, rep = tr.comm.forward(tr, x, needs_representation(tr))
        losses, present = tr._losses(out, ys, ms)
    per_task = tr.step_losses if tr.step_losses is not None else list(losses.unbind())
    ctx = StepContext(step=tr.step_count, epoch=tr.epoch, task_names=tr.task_names, present=present,
                      shared_parameters=tr.shared, last_shared_parameters=tr.last_shared,
                      representation=rep, grad_fn=tr.grad_fn, generator=tr.method_generator,
                      extra={"losses": losses}, model=tr.model)
    if getattr(tr.weighting, "needs_validation_batch", False):
        _add_bilevel(tr, ctx, x, ys, ms)
    if tr.schedule is not None:
        present = present & tr.schedule.select(tr.step_count, present, ctx).to(present.device)
        ctx.present = present
    host = None
    if not tr.plan.deferred or any(_overrides(cb, "observe_gradients") for cb in tr.hooks):
        checked = _host_check(tr, losses, present)
        if isinstance(checked, StepResult):
            return checked
        host = checked
    prior = tr.plan.prior
    # the model's penalties are read before the weighting: a bilevel weighting's extra forwards
    # would overwrite what the model cached for them (the adversarial discriminator's input)
    extra_sum, penalties = _extra_losses(tr)
    res = tr.weighting(losses if prior is None else losses * prior, ctx)
    weights = res.weights.detach() if prior is None else res.weights.detach() * prior
    result = StepResult(losses.detach(), weights, present, penalties=penalties)
    tr.optimizer.zero_grad(set_to_none=True)  # type: ignore[union-attr]
    for cb in tr.hooks:
        cb.observe_gradients(tr, per_task, present, rep)
    _backward(tr, res.objective, weights, per_task, host, rep, extra_sum, result)
    if not _apply_update(tr, losses, present, result, checked=host is not None):
        return result
    if getattr(tr.weighting, "needs_post_step_losses", False):
        with torch.no_grad(), tr.precision.autocast():
            out2, _ = tr.comm.forward(tr, x, False)
            after, _ = tr._losses(out2, ys, ms)
        tr.weighting.after_step(after if prior is None else after * prior, ctx)
    tr.step_count += 1
    return result


def _compiled_graph_reusable(tr: Trainer) -> Any:
    """With ``training.compile``, the step runs without donated buffers: AOTAutograd
    otherwise lets the backward reuse the saved activations' memory, which refuses
    ``retain_graph=True`` — and an exact method runs one backward pass per task through the
    same graph ("This backward function was compiled with non-empty donated buffers ...").
    The backward graph is compiled at its first use, so the setting covers the whole step;
    AOTAutograd's on-disk cache is bypassed too: an entry compiled with donated buffers (by
    an earlier process, without this setting) was observed to be loaded despite it."""
    if not tr.settings.compile:
        return contextlib.nullcontext()
    import torch._functorch.config as functorch_config

    return functorch_config.patch(donated_buffer=False, enable_autograd_cache=False)


def _host_check(tr: Trainer, losses: Tensor, present: Tensor) -> list[bool] | StepResult:
    """The one read before the backward pass (see the module docstring): the host copy of
    ``present``, or the result of a step with no task present or a non-finite loss."""
    flags = torch.stack([present, present & ~torch.isfinite(losses.detach())]).tolist()
    if not any(flags[0]):
        tr.step_count += 1
        return StepResult(losses.detach(), torch.zeros_like(losses).detach(), present)
    bad = [name for name, b in zip(tr.task_names, flags[1]) if b]
    if bad:
        tr.guard.skip(tr, bad, "loss")
        return StepResult(losses.detach(), torch.zeros_like(losses).detach(), present, skipped=True)
    return [bool(v) for v in flags[0]]


def _add_bilevel(tr: Trainer, ctx: StepContext, x_train: Tensor, ys_train: dict[str, Tensor],
                 ms_train: dict[str, Tensor]) -> None:
    """A validation batch for this step (drawn with replacement by the trainer's own seeded
    generator, so a resumed run draws the same ones) and the functions that give the model's
    per-task losses on it and on the training batch, optionally at other parameter values (for
    a virtual step). Both give the raw losses (no task prior)."""
    val = tr.validation_data
    if val is None or len(val) == 0:
        raise ValueError(f"The weighting {tr.weighting} needs validation data at every step "
                         f"(needs_validation_batch): pass it to fit(train, val).")
    n = min(tr.settings.batch_size, len(val))
    idx = torch.randint(len(val), (n,), generator=tr.validation_generator)
    x, ys, ms = val.batch(idx)
    ctx.validation_batch = (x, ys, ms)
    x = _batch.to_device(x, tr.device)

    def losses_at(inputs: Any, targets: dict[str, Tensor], masks: dict[str, Tensor]) -> Any:  # a tensor or a dict
        def fn(params: dict[str, Tensor] | None = None) -> Tensor:
            with tr.precision.autocast():
                if params is None:
                    out = tr.model(inputs)
                else:
                    out = torch.func.functional_call(tr.model, params, (inputs,), strict=False)
                return torch.stack([_task_loss(tr, t, out, targets, masks) for t in tr.tasks])
        return fn

    ctx.validation_losses = losses_at(x, ys, ms)
    ctx.training_losses = losses_at(x_train, ys_train, ms_train)


def _extra_losses(tr: Trainer) -> tuple[Tensor | None, dict[str, Tensor | float]]:
    """The model's own penalties (``extra_losses()``: AdaShare's sparsity, the adversarial
    loss ...), summed into the objective, and their detached values (recorded per epoch; no
    host read here)."""
    fn = getattr(tr.model, "extra_losses", None)
    extras: dict[str, Tensor] = fn() if callable(fn) else {}
    if not extras:
        return None, {}
    return cast(Tensor, sum(extras.values())), {name: v.detach() for name, v in extras.items()}


def _backward(tr: Trainer, objective: Tensor, weights: Tensor, per_task: Sequence[Tensor],
              host: list[bool] | None, rep: Tensor | None, extra_sum: Tensor | None, result: StepResult) -> None:
    """Gradients of the step in ``.grad`` (scaled by the loss scale under fp16), the same on
    every process."""
    total = objective if extra_sum is None else objective + extra_sum
    if tr.aggregator is None or (tr.level == "parameters" and not tr.shared):
        # no aggregator, or no shared parameters (e.g. soft sharing): nothing to aggregate
        tr.precision.scaled_loss(total).backward()
        tr.comm.sync_grads(tr.trainable + tr.weighting_parameters())
        return
    assert host is not None  # an aggregator reads the present mask before the backward pass
    unsynced = _aggregated_backward(tr, objective, weights, per_task, host, rep, extra_sum, result)
    tr.comm.sync_grads(unsynced + tr.weighting_parameters())


def _aggregated_backward(tr: Trainer, objective: Tensor, w: Tensor, per_task: Sequence[Tensor],
                         host: list[bool], rep: Tensor | None, extra_sum: Tensor | None,
                         result: StepResult) -> list[nn.Parameter]:
    """Shared parameters get the aggregated direction, the others their own (weighted)
    gradient. Returns the parameters whose gradients are still local to this process.

    The rows are the gradients of the weighted losses w_k L_k: each backward pass starts from
    w_k (times the loss scale under fp16), so weighting a row costs nothing."""
    idx = [k for k, on in enumerate(host) if on]
    rows = [per_task[k] for k in idx]
    scale = tr.precision.scale(w)
    seeds = (w[idx] if scale is None else w[idx] * scale).unbind()
    blockwise = tr.settings.jacobian_block_size is not None and tr.level == "parameters"
    summed = _weights_without_jacobian(tr)  # Mean: one backward pass, no Jacobian
    streams = not summed and (blockwise or (getattr(tr.aggregator, "prefers_row_stream", False)
                                            and tr.level == "parameters"))
    stream = _row_stream(tr, idx) if streams else None
    shared_ids = {id(p) for p in tr.shared}
    others = [p for p in tr.trainable if id(p) not in shared_ids] + tr.weighting_parameters()
    if others:  # first, so that the shared part's last backward pass may free the graph
        rest = tr.precision.scaled_loss(objective if extra_sum is None else objective + extra_sum)
        _accumulate(others, torch.autograd.grad(rest, others, retain_graph=True, allow_unused=True))
    # the graph is needed after the shared part only by the model's penalties' own pass; else
    # its last backward pass frees the saved activations as it goes (as plain training's
    # one pass does), so they are not held beside the Jacobian
    keep = extra_sum is not None
    if tr.level == "representation":
        assert rep is not None
        j = _unscaled(representation_jacobian(rows, rep, grad_outputs=seeds).float(), scale)
        d = _aggregate(tr, j, idx, w, rows, result)
        rep.backward(_scaled(d, scale).view_as(rep).to(rep.dtype), retain_graph=keep)
    elif summed:
        _weighted_sum_backward(tr, rows, seeds, idx, w, result, keep)
    elif stream is not None:  # bounded memory: the rows are consumed one at a time
        for i, pieces in enumerate(jacobian_rows(rows, tr.shared, grad_outputs=seeds, retain_graph=keep)):
            stream.add(i, [(o, _unscaled(g, scale)) for o, g in pieces])
            del pieces  # before the next row's backward pass
        assign_grads(tr.shared, _scaled(stream.finish(), scale), copy=False)
    elif blockwise:
        _blockwise_backward(tr, rows, seeds, idx, w, scale, result, keep)
    elif (chosen := _layers_chosen(tr, rows)):
        assert tr.plan.autogram is not None
        weights_from, extras = getattr(tr.aggregator, "weights_from"), _extras(tr, idx, w, rows)  # noqa: B009
        a = tr.plan.autogram.backward(rows, seeds, chosen, lambda g: weights_from(g, **extras))
        result.aggregator_weights, result.aggregator_tasks = a.detach(), idx
    else:
        j = jacobian(rows, tr.shared, engine=tr.jacobian_engine, representation=rep, grad_outputs=seeds,
                     out=tr.plan.jacobian_out(tr, len(rows)), retain_graph=keep)
        j = tr.comm.sync_jacobian(_unscaled(j, scale))
        d = _aggregate(tr, j, idx, w, rows, result)
        # a Gramian-based direction is the fresh product w @ J: handed over without a copy, as
        # is one its method declares new (``fresh_direction``)
        fresh = result.aggregator_weights is not None or getattr(tr.aggregator, "fresh_direction", False)
        assign_grads(tr.shared, _scaled(d, scale), copy=not fresh and scale is None)
    if extra_sum is not None and tr.shared and extra_sum.requires_grad:
        _accumulate(tr.shared, torch.autograd.grad(tr.precision.scaled_loss(extra_sum), tr.shared,
                                                   allow_unused=True))
    if tr.level == "representation" or blockwise or extra_sum is not None:
        return list(tr.trainable)
    return [p for p in tr.trainable if id(p) not in shared_ids]


def _weights_without_jacobian(tr: Trainer) -> bool:
    """A parameter-level weighting of the Gramian that does not read it (``reads_gramian``
    false: Mean), on one process: its weights a depend on K only, so the direction
    Σ_k a_k ∇(w_k L_k) is the gradient of Σ_k a_k w_k L_k, one backward pass instead of K
    and no K×P Jacobian."""
    from mtlkit.training.comm import Comm

    agg = tr.aggregator
    return (agg is not None and tr.level == "parameters" and bool(tr.shared) and type(tr.comm) is Comm
            and getattr(agg, "gramian_based", False) and not getattr(agg, "reads_gramian", True)
            and callable(getattr(agg, "weights_from", None)))


def _weighted_sum_backward(tr: Trainer, rows: list[Tensor], seeds: Sequence[Tensor], idx: list[int], w: Tensor,
                           result: StepResult, keep: bool = True) -> None:
    """:func:`_weights_without_jacobian`: the weights from a K×K placeholder (the method reads
    its size only), then the shared parameters' gradient Σ_k a_k w_k ∇L_k (times the loss
    scale under fp16, as the Jacobian's rows) from one backward pass; a shared parameter no
    task reaches gets zeros, as a zero column of the Jacobian gives. The same direction as
    ``a @ J`` up to the rounding of the sum."""
    agg = tr.aggregator
    ref = tr.shared[0]
    placeholder = ref.new_zeros(()).expand(len(rows), len(rows))
    a = agg.weights_from(placeholder, **_extras(tr, idx, w, rows))  # type: ignore[union-attr]
    grads = _weighted_rows_grad(tr, rows, seeds, idx, a, w, result, keep)
    _accumulate(tr.shared, [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, tr.shared)])


def _weighted_rows_grad(tr: Trainer, rows: Sequence[Tensor], seeds: Sequence[Tensor], idx: list[int], a: Tensor,
                        w: Tensor, result: StepResult, keep: bool) -> tuple[Tensor | None, ...]:
    """The aggregator's weights ``a`` recorded, and the shared parameters' gradients of
    Σ_k a_k s_k L_k (s_k: the rows' seeds) from one backward pass: the direction ``a @ J``
    without the Jacobian (None for a parameter no task reaches)."""
    result.aggregator_weights, result.aggregator_tasks = a.detach(), idx
    coef = (a.to(w) * torch.stack(list(seeds))).unbind()
    target = cast(Tensor, sum(c * r for c, r in zip(coef, rows)))
    return torch.autograd.grad(target, tr.shared, retain_graph=keep, allow_unused=True)


def _layers_chosen(tr: Trainer, rows: Sequence[Tensor]) -> list[Any]:
    """The layers whose Gramian comes from their inputs and output gradients at this step
    (:meth:`mtlkit.autogram.LayerGramian.select`); empty: the whole Jacobian is used."""
    engine = tr.plan.autogram
    return [] if engine is None or tr.precision.scaler is not None else engine.select(len(rows), rows)


def _row_stream(tr: Trainer, idx: list[int]) -> Any:
    """With ``jacobian_block_size`` (bounded memory), or for a method that declares
    ``prefers_row_stream`` (MoCo: faster and a K×P matrix less), the aggregator's consumer of
    the Jacobian's rows one at a time (:meth:`~mtlkit.aggregation.Aggregator.row_stream`), on
    one process with the loop engine; None: the whole Jacobian is formed (GradDrop is faster
    that way on a CPU: its running sums read and write their accumulators once per row)."""
    from mtlkit.training.comm import Comm

    agg = tr.aggregator
    if agg is None or tr.jacobian_engine != "loop" or type(tr.comm) is not Comm or not tr.shared:
        return None
    # a P-vector for its shape, dtype and device only: one element expanded, no P-sized allocation
    like = tr.shared[0].new_empty(1).expand(sum(p.numel() for p in tr.shared))
    return agg.row_stream(len(idx), like, tasks=idx)


def _unscaled(j: Tensor, scale: Tensor | None) -> Tensor:
    return j if scale is None else j.div_(scale.to(j.dtype))


def _scaled(d: Tensor, scale: Tensor | None) -> Tensor:
    return d if scale is None else d * scale.to(d.dtype)


def _blockwise_backward(tr: Trainer, rows: list[Tensor], seeds: Sequence[Tensor], idx: list[int], w: Tensor,
                        scale: Tensor | None, result: StepResult, keep: bool = True) -> None:
    """``jacobian_block_size``: the K×K Gramian summed over blocks of the shared parameters
    (K×block entries held at a time), the aggregator's weights a from it, and the shared
    parameters' gradient Σ_k a_k w_k ∇L_k from one more backward pass (local: synced with the
    others). The same direction as ``a @ J``, up to float rounding."""
    agg = tr.aggregator
    g: Tensor | None = None
    for block in parameter_blocks(tr.shared, tr.settings.jacobian_block_size or 1):
        jb = tr.comm.sync_jacobian(_unscaled(jacobian(rows, block, engine=tr.jacobian_engine,
                                                      grad_outputs=seeds), scale))
        gb = tr.comm.gramian(jb, "parameters")
        g = gb if g is None else g.add_(gb)
        del jb
    assert g is not None and agg is not None
    a = agg.weights_from(g, **_extras(tr, idx, w, rows))  # type: ignore[attr-defined]
    _accumulate(tr.shared, _weighted_rows_grad(tr, rows, seeds, idx, a, w, result, keep))


def _accumulate(params: Sequence[Tensor], grads: Sequence[Tensor | None]) -> None:
    for p, g in zip(params, grads):
        if g is not None:
            p.grad = g if p.grad is None else p.grad + g


def _extras(tr: Trainer, idx: list[int], w: Tensor, rows: Sequence[Tensor]) -> dict[str, Any]:
    """What a stateful or loss-reading aggregator is told about the rows: which tasks they
    are and, when it reads them, the weighted losses w_k L_k."""
    extras: dict[str, Any] = {"tasks": idx}
    if getattr(tr.aggregator, "needs_losses", False):
        extras["losses"] = torch.stack([r.detach() for r in rows]) * w[idx]
    return extras


def _aggregate(tr: Trainer, j: Tensor, idx: list[int], w: Tensor, rows: Sequence[Tensor],
               result: StepResult) -> Tensor:
    """The aggregator's direction for the shared part. Stateful methods learn which tasks the
    rows are (``tasks``), loss-normalised ones get the (weighted) losses, and a method that
    weights the Gramian gets the global one from ``comm``."""
    agg = tr.aggregator
    assert agg is not None
    wants_gramian = getattr(agg, "gramian_based", False) and getattr(agg, "reads_gramian", True)
    out = agg.aggregate(j, gramian=tr.comm.gramian(j, tr.level) if wants_gramian else None,
                        **_extras(tr, idx, w, rows))
    if out.weights is not None:
        result.aggregator_weights = out.weights.detach()
        result.aggregator_tasks = idx
    return out.direction


def total_grad_norm(grads: Sequence[Tensor], device: torch.device) -> Tensor:
    """The global L2 norm of ``grads`` (0-d, on the device; non-finite iff some entry is): one
    fused ``_foreach_norm`` when the gradients share a device and a dtype. The same value as
    ``torch.nn.utils.get_total_norm``, without its per-call wrappers (a ``no_grad`` context
    and ``torch._dynamo``'s disable decorator: about a tenth of a millisecond per step,
    measured with ``benchmarks/peers.py``)."""
    if not grads:
        return torch.zeros((), device=device)
    first = grads[0]
    if any(g.device != first.device or g.dtype != first.dtype or g.is_sparse for g in grads):
        return torch.nn.utils.get_total_norm(grads)
    with torch.no_grad():
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(grads))))


def _apply_update(tr: Trainer, losses: Tensor, present: Tensor, result: StepResult, *, checked: bool) -> bool:
    """Unscale (fp16), check the step on the device and read the verdict once, clip, step the
    optimiser. False: nothing was learned (no task present, or skipped as non-finite)."""
    opt = tr.optimizer
    assert opt is not None
    tr.precision.unscale(opt)
    total_norm = total_grad_norm([p.grad for p in tr.trainable if p.grad is not None], tr.device)
    finite = torch.isfinite(total_norm)
    if checked:  # presence and the losses were read before the backward pass
        flags = [True, True, bool(finite)]
    else:
        loss_ok = (torch.isfinite(losses.detach()) | ~present).all()
        flags = torch.stack([present.any(), loss_ok, finite]).tolist()
    if not all(flags):
        tr.precision.skip(opt, unscaled=True)
        if not flags[0]:  # no task has a label in this batch: nothing to learn, nothing wrong
            result.weights = torch.zeros_like(result.weights)
            tr.step_count += 1
            return False
        names = tr.task_names
        if not flags[1]:
            bad = [n for n, b in zip(names, (present & ~torch.isfinite(losses.detach())).tolist()) if b]
            tr.guard.skip(tr, bad, "loss")
        else:
            scaler = tr.precision.scaler
            what = "gradient" if scaler is None else \
                f"gradient at the fp16 loss scale {scaler.get_scale() * 2:g} (the scaler halves it)"
            tr.guard.skip(tr, [n for n, k in zip(names, present.tolist()) if k], what)
        result.skipped = True
        return False
    if tr.settings.clip_grad_norm:
        torch.nn.utils.clip_grads_with_norm_(tr.trainable, tr.settings.clip_grad_norm, total_norm)
    tr.precision.step(opt)
    tr.precision.update()
    tr.guard.ok()
    return True
