"""Homoscedastic-uncertainty weighting (Kendall, Gal & Cipolla 2018)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mtlkit._registry import WEIGHTINGS
from mtlkit.kinds import get_kind, kind_names
from mtlkit.weighting._base import StepContext, Weighting, WeightingResult, present_of


def _classification_form(kind: str) -> bool:
    """``classification``, or a task kind whose likelihood is a softmax/sigmoid of per-sample
    class scores (binary, multiclass, multilabel): the classification form. ``regression``,
    the dense kinds and the pair distance take the regression form."""
    if kind == "classification":
        return True
    if kind not in kind_names():
        return False
    spec = get_kind(kind)
    return spec.is_classification and not spec.dense


#: task kinds whose likelihood is a softmax/sigmoid (the classification form)
CLASSIFICATION_KINDS = tuple(k for k in ("classification", *kind_names()) if _classification_form(k))
KNOWN_KINDS = ("regression", *CLASSIFICATION_KINDS)


@WEIGHTINGS.register()
class Uncertainty(Weighting):
    """Learned task uncertainty: one log-variance s_k = log σ_k² per task.

    Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for
    Scene Geometry and Semantics", CVPR 2018 (https://arxiv.org/abs/1705.07115). The
    objective is the negative log-likelihood under a task-wise homoscedastic noise σ_k:

    * regression (Gaussian likelihood, eq. 7): ``1/(2σ²)·L + log σ = ½·e^{-s}·L + ½·s``;
    * classification (scaled softmax, eq. 10): ``1/σ²·L + log σ = e^{-s}·L + ½·s``.

    The s_k are ``nn.Parameter`` (initialised to 0, i.e. σ = 1) and join the trainer's
    optimiser. Reported weights are ∂objective/∂L_k: ``½e^{-s_k}`` or ``e^{-s_k}``.
    Tasks absent from a batch contribute neither term.

    Which form a task gets: from ``task_kinds`` when given, else from the Task specs when
    the trainer passes them (:meth:`~mtlkit.weighting.Weighting.setup_from_tasks`), else
    the regression form for every task (as LibMTL's ``UW`` does).

    Args:
        task_kinds: ``{task: kind}`` with kind ``regression`` or ``classification`` (the
            task kinds ``binary``, ``multiclass``, ``multilabel`` mean classification).

    >>> import torch
    >>> w = Uncertainty(task_kinds={"depth": "regression", "seg": "classification"})
    >>> w.setup(["depth", "seg"])
    >>> w(torch.tensor([2.0, 3.0]), StepContext()).objective  # ½·2 + 1·3 with s = 0
    tensor(4., grad_fn=<SumBackward0>)
    """

    paper = ("Kendall, Gal & Cipolla 2018, Multi-Task Learning Using Uncertainty to Weigh Losses "
             "for Scene Geometry and Semantics (CVPR)")
    stateful = True

    def __init__(self, *, task_kinds: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.task_kinds = dict(task_kinds) if task_kinds is not None else None
        for name, kind in (self.task_kinds or {}).items():
            if kind not in KNOWN_KINDS:
                raise ValueError(f"The 'task_kinds' parameter of Uncertainty must map task names to one "
                                 f"of {KNOWN_KINDS}. Got {name!r}: {kind!r}.")
        self.log_variance = nn.Parameter(torch.zeros(0))
        self.register_buffer("_scale", torch.zeros(0), persistent=False)

    def setup(self, task_names: Sequence[str], task_sizes: Mapping[str, int] | None = None) -> None:
        super().setup(task_names, task_sizes)
        kinds: dict[str, str] = {}
        specs = getattr(self, "task_specs", None)
        if specs:
            kinds.update({t.name: t.kind for t in specs})
        if self.task_kinds is not None:
            unknown = set(self.task_kinds) - set(task_names)
            if unknown:
                raise ValueError(f"Uncertainty task_kinds name unknown task(s) {sorted(unknown)}; "
                                 f"tasks are {list(task_names)}.")
            kinds.update(self.task_kinds)
        self.kinds_ = {t: kinds.get(t, "regression") for t in task_names}
        self._scale = torch.tensor([1.0 if _classification_form(self.kinds_[t]) else 0.5
                                    for t in task_names])
        k = len(self.task_names)
        if self.log_variance.numel() != k:
            self.log_variance.data = torch.zeros(k, device=self.log_variance.device)

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        k = losses.shape[0]
        if self.log_variance.numel() != k or self._scale.numel() != k:
            self.setup(getattr(self, "task_names", None) or [str(i) for i in range(k)])
        p = present_of(losses, ctx)
        s = self.log_variance.to(losses)
        w = self._scale.to(losses) * torch.exp(-s)
        zero = torch.zeros_like(losses)
        terms = torch.where(p, w * losses + 0.5 * s, zero)
        return WeightingResult(terms.sum(), torch.where(p, w, zero).detach())
