"""GREAT: gradient adversarial training (an auxiliary network tells tasks apart by their
gradients; the model learns to make it fail)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlkit._registry import WEIGHTINGS
from mtlkit.architectures._base import NO_REPRESENTATION
from mtlkit.architectures._layers import grad_reverse
from mtlkit.jacobian import task_gradients
from mtlkit.weighting._base import StepContext, Weighting, WeightingResult, masked


def gradient_reversal(x: Tensor, coefficient: float = 1.0) -> Tensor:
    """The gradient-reversal layer of Ganin & Lempitsky (2015): ``y = x`` forward,
    ``∂L/∂x = −coefficient · ∂L/∂y`` backward (the one implementation lives in
    :func:`mtlkit.architectures._layers.grad_reverse`, shared with the adversarial
    architecture).

    >>> import torch
    >>> x = torch.ones(2, requires_grad=True)
    >>> gradient_reversal(x, 0.5).sum().backward()
    >>> x.grad
    tensor([-0.5000, -0.5000])
    """
    return grad_reverse(x, coefficient)


@WEIGHTINGS.register()
class GREAT(Weighting):
    """Gradient adversarial training for multi-task learning.

    Sinha, Chen, Badrinarayanan & Rabinovich, "Gradient Adversarial Training of Neural
    Networks", arXiv:1806.08028, 2018 (the multi-task scenario). The prior: the gradients
    that different tasks send into the shared representation should be statistically
    indistinguishable. An auxiliary network (here a one-hidden-layer MLP, the
    *discriminator*) learns to predict which task a gradient tensor came from; the model is
    its adversary through a gradient-reversal layer of coefficient λ.

    Each step, with the shared representation ``h`` (``ctx.representation``), the per-task
    gradients ``∂L_k/∂h`` are taken with ``create_graph=True``; every sample's gradient
    vector (one row of ``∂L_k/∂h`` per sample) is a training example labelled ``k``. The
    objective is

        Σ_k L_k + CE(D(GRL_λ(ĝ)), task)

    so the optimiser step trains D to minimise the cross-entropy, while the model — reached
    through the reversal layer and the second-order graph of the gradients — receives −λ
    times that signal and learns to make its task gradients indistinguishable. The reported
    weights are all ones (masked by the tasks present in the batch).

    How it differs from the aggregators of :mod:`mtlkit.aggregation`: those are pure
    functions of the Jacobian that replace the descent direction at each step; GREAT does
    not touch the direction, has its own trainable parameters (the discriminator, added to
    the optimiser by the trainer) and acts as a regulariser on how the gradients are
    *distributed* over training, at the price of a double backward. It therefore cannot be
    combined with an aggregator (``aggregator_compatible = False``) and needs a model with a
    shared representation (``needs_gradients = True`` makes the trainer pass it).

    Choices where the paper leaves room: gradients are taken at the shared representation
    (the paper's "gradient tensor" of the last shared layer); each sample's gradient vector
    is scaled to unit L2 norm before the discriminator (``normalize=True``), so the
    discriminator cannot tell tasks apart by loss scale alone — set ``normalize=False`` to
    feed raw gradients (multiplied by the batch size, undoing the mean-loss 1/B); samples
    whose gradient is zero (no label for that task) are left out. The discriminator's input
    width is the representation's per-sample size; give ``in_features`` or it is inferred
    lazily at the first step (``nn.LazyLinear``, which the optimiser handles).

    Args:
        reversal_coefficient: λ ≥ 0, the strength of the reversed gradient (default 1.0).
        hidden: width of the discriminator's hidden layer (default 64).
        in_features: per-sample width of the representation (``None``: inferred).
        normalize: unit-normalise each gradient vector before the discriminator.

    >>> import torch
    >>> from mtlkit.weighting import StepContext
    >>> w = GREAT(in_features=3); w.setup(["a", "b"])
    >>> rep = torch.randn(4, 3, requires_grad=True)
    >>> losses = torch.stack([(rep ** 2).mean(), rep.sum()])
    >>> res = w(losses, StepContext(representation=rep))
    >>> res.weights
    tensor([1., 1.])
    >>> bool(res.objective > losses.sum())  # + the discriminator's cross-entropy
    True
    """

    paper = ("Sinha, Chen, Badrinarayanan & Rabinovich 2018, Gradient Adversarial Training of Neural "
             "Networks (arXiv:1806.08028), GREAT")
    needs_gradients = True
    gradients_at = "representation"
    aggregator_compatible = False

    def __init__(self, *, reversal_coefficient: float = 1.0, hidden: int = 64,
                 in_features: int | None = None, normalize: bool = True) -> None:
        super().__init__()
        ok = (isinstance(reversal_coefficient, (int, float)) and not isinstance(reversal_coefficient, bool)
              and math.isfinite(reversal_coefficient) and reversal_coefficient >= 0)
        if not ok:
            raise ValueError(f"The 'reversal_coefficient' parameter of GREAT must be a non-negative float. "
                             f"Got {reversal_coefficient!r}.")
        if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1:
            raise ValueError(f"The 'hidden' parameter of GREAT must be a positive int. Got {hidden!r}.")
        if in_features is not None and (not isinstance(in_features, int) or isinstance(in_features, bool)
                                        or in_features < 1):
            raise ValueError(f"The 'in_features' parameter of GREAT must be a positive int or None. "
                             f"Got {in_features!r}.")
        if not isinstance(normalize, bool):
            raise ValueError(f"The 'normalize' parameter of GREAT must be a bool. Got {normalize!r}.")
        self.reversal_coefficient = float(reversal_coefficient)
        self.hidden = hidden
        self.in_features = in_features
        self.normalize = normalize
        self.discriminator: nn.Module | None = None
        #: the discriminator's accuracy and cross-entropy at the last step (for logging)
        self.last_accuracy_: float = float("nan")
        self.last_adversarial_loss_: float = float("nan")

    def setup(self, task_names: Sequence[str], task_sizes: Mapping[str, int] | None = None) -> None:
        super().setup(task_names, task_sizes)
        k = len(self.task_names)
        first: nn.Module = nn.Linear(self.in_features, self.hidden) if self.in_features else nn.LazyLinear(self.hidden)
        self.discriminator = nn.Sequential(first, nn.ReLU(), nn.Linear(self.hidden, k))

    def _ensure_setup(self, k: int) -> nn.Module:
        if self.discriminator is None:
            self.setup([str(i) for i in range(k)])
        assert self.discriminator is not None
        return self.discriminator

    def gradient_examples(self, losses: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor]:
        """The discriminator's inputs and labels: one (normalised) gradient row per sample
        and present task, differentiable (``create_graph=True``)."""
        rep = ctx.representation
        if rep is None:
            raise ValueError(f"GREAT needs one shared representation (ctx.representation) that every task "
                             f"head reads; this model has none (has_representation is False, as for "
                             f"{NO_REPRESENTATION}). Use hard_sharing, fusion or siamese.")
        k = losses.shape[0]
        present = ctx.present if ctx.present is not None else torch.ones(k, dtype=torch.bool)
        idx = [i for i in range(k) if bool(present[i]) and losses[i].requires_grad]
        if not idx:
            return rep.new_zeros((0, rep[0].numel())), torch.zeros(0, dtype=torch.long, device=rep.device)
        grads = task_gradients([losses[i] for i in idx], rep, create_graph=True)
        # under mixed precision the representation is bf16/fp16; the discriminator is float32
        rows = grads.reshape(len(idx), rep.shape[0], -1).to(torch.promote_types(grads.dtype, torch.float32))
        labels = torch.tensor(idx, device=rep.device).repeat_interleave(rep.shape[0])
        rows = rows.reshape(len(idx) * rep.shape[0], -1)
        norms = rows.detach().norm(dim=1)
        keep = norms > 0
        rows, labels, norms = rows[keep], labels[keep], norms[keep]
        rows = rows / norms.unsqueeze(1) if self.normalize else rows * rep.shape[0]
        return rows, labels

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        disc = self._ensure_setup(losses.shape[0])
        w = masked(torch.ones_like(losses), ctx.present)
        task_objective = (w * losses).sum()
        rows, labels = self.gradient_examples(losses, ctx)
        if rows.shape[0] == 0:
            return WeightingResult(task_objective, w.detach())
        logits = disc(gradient_reversal(rows, self.reversal_coefficient))
        adversarial = F.cross_entropy(logits, labels)
        with torch.no_grad():
            self.last_accuracy_ = float((logits.argmax(dim=1) == labels).float().mean())
            self.last_adversarial_loss_ = float(adversarial)
        return WeightingResult(task_objective + adversarial, w.detach())
