"""DSelect-k: MMoE with differentiable, exactly k-sparse gates (binary encoding, smooth step)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mtlkit._checks import check_choice, check_float, check_int, check_ints
from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._layers import (
    RunningMean,
    TaskModuleDict,
    TrunkArg,
    TrunkFactory,
    flat_size,
    mix,
    named_blocks,
    params_of,
    require_spec,
    trunk_width,
)
from mtlkit.tasks import Task, check_tasks

#: the constant in the entropy ``−Σ r log(r + EPSILON)`` (the authors' code)
EPSILON = 1e-6


def smooth_step(t: Tensor, gamma: float) -> Tensor:
    """The smooth-step function of Hazimeh et al. (2020): 0 for ``t <= −γ/2``, 1 for
    ``t >= γ/2``, and ``−2t³/γ³ + 3t/(2γ) + 1/2`` in between (continuously differentiable,
    and exactly 0 or 1 outside ``[−γ/2, γ/2]``).

    >>> smooth_step(torch.tensor([-1.0, -0.25, 0.0, 0.25, 1.0]), gamma=1.0)
    tensor([0.0000, 0.1562, 0.5000, 0.8438, 1.0000])
    """
    poly = -2.0 / gamma ** 3 * t ** 3 + 3.0 / (2.0 * gamma) * t + 0.5
    return torch.where(t <= -gamma / 2, torch.zeros_like(t), torch.where(t >= gamma / 2, torch.ones_like(t), poly))


def binary_codes(num_experts: int) -> Tensor:
    """(n, m) 0/1 matrix: row i is the m-bit binary code of i, most significant bit first
    (``m = ceil(log2 n)``).

    >>> binary_codes(3)
    tensor([[0., 0.],
            [0., 1.],
            [1., 0.]])
    """
    m = max(1, math.ceil(math.log2(num_experts)))
    idx = torch.arange(num_experts).unsqueeze(1)
    shifts = torch.arange(m - 1, -1, -1).unsqueeze(0)
    return ((idx >> shifts) & 1).to(torch.get_default_dtype())


def selector_outputs(z: Tensor, codes: Tensor) -> Tensor:
    """Single-expert selectors ``r(z)_l = Π_j (z_j if bit j of l else 1 − z_j)`` for
    ``z`` of shape (..., m) in [0, 1]: (..., n). Over all 2^m codes they sum to 1; once every
    ``z_j`` is 0 or 1 exactly one entry is 1."""
    z = z.unsqueeze(-2)  # (..., 1, m)
    c = codes.to(z)
    return (c * z + (1 - c) * (1 - z)).prod(dim=-1)


class DSelectKGate(nn.Module):
    """One task's DSelect-k gate over ``num_experts`` experts: k single-expert selectors, each
    ``r(S(α_i))`` with ``α_i ∈ R^m`` and S the smooth step, mixed by ``softmax(β)``.

    ``per_example=True``: ``α = W_z x + b_z`` and ``β = W_w x + b_w`` read the flattened
    input (the paper's per-example gate); otherwise α and β are parameters (the static gate).
    Initialisation as in the authors' code: α's weights and biases uniform in
    ``[−γ/100, γ/100]``, β's uniform in ``[−0.05, 0.05]``.

    ``forward`` returns the expert weights (N, n) and the selector outputs (N, k, n).
    """

    codes: Tensor

    def __init__(self, in_features: int, num_experts: int, k: int, gamma: float, per_example: bool) -> None:
        super().__init__()
        self.num_experts, self.k, self.gamma, self.per_example = num_experts, k, gamma, per_example
        self.register_buffer("codes", binary_codes(num_experts), persistent=False)
        self.m = int(self.codes.shape[1])
        self.z_map: nn.Linear | None = None
        self.w_map: nn.Linear | None = None
        self.z_logits: nn.Parameter | None = None
        self.w_logits: nn.Parameter | None = None
        if per_example:
            self.z_map = nn.Linear(in_features, k * self.m)
            self.w_map = nn.Linear(in_features, k)
            for p in self.z_map.parameters():
                nn.init.uniform_(p, -gamma / 100, gamma / 100)
            for p in self.w_map.parameters():
                nn.init.uniform_(p, -0.05, 0.05)
        else:
            self.z_logits = nn.Parameter(torch.empty(k, self.m).uniform_(-gamma / 100, gamma / 100))
            self.w_logits = nn.Parameter(torch.empty(k).uniform_(-0.05, 0.05))

    def logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """α (N, k, m) and β (N, k) for inputs ``x``."""
        n = x.shape[0]
        if self.z_map is None or self.w_map is None:
            assert self.z_logits is not None and self.w_logits is not None
            return self.z_logits.expand(n, -1, -1), self.w_logits.expand(n, -1)
        flat = x.reshape(n, -1)
        return self.z_map(flat).reshape(n, self.k, self.m), self.w_map(flat)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        alpha, beta = self.logits(x)
        r = selector_outputs(smooth_step(alpha, self.gamma), self.codes)  # (N, k, n)
        weights = (torch.softmax(beta, dim=-1).unsqueeze(-1) * r).sum(dim=1)  # (N, n)
        return weights, r


@ARCHITECTURES.register()
class DSelectK(MultiTaskModel):
    """MMoE whose gates select exactly k experts per task, differentiably (binary encoding).

    Hazimeh, Zhao, Chowdhery, Sathiamoorthy, Chen, Mazumder, Hong & Chi (2021), "DSelect-k:
    Differentiable Selection in the Mixture of Experts with Applications to Multi-Task
    Learning", NeurIPS. As in :class:`~mtlkit.architectures.mmoe.MMoE`, ``num_experts`` experts
    (fresh copies of the trunk) read the input, and task t's tower reads ``Σ_e q_t(x)_e f_e(x)``.
    The gate ``q_t`` is DSelect-k's: k single-expert selectors, selector i encoding its choice
    of expert in ``m = ceil(log2 n)`` binary variables ``z = S(α_i)`` with the smooth step S of
    width ``gamma`` (γ in the paper); ``r(z)_l = Π_j (z_j if bit j of l is 1 else 1 − z_j)``;
    ``q = Σ_i softmax(β)_i r(z_i)``. When the smooth steps saturate (every ``|α| >= γ/2``)
    each selector is one-hot, so at most k experts (exactly k when the selectors choose distinct
    experts) have nonzero weight and the weights sum to 1; the gate stays differentiable.
    ``gate="per_example"`` (default) computes α and β by linear maps of the flattened input,
    like MMoE's gates; ``gate="static"`` learns one α, β per task (the paper's static gate).

    Regularisers (:meth:`extra_losses`, on the inputs of the last training forward pass; the
    gates are evaluated afresh, so the call can come after other passes):

    * ``dselect_k_entropy`` = ``entropy_weight`` · Σ_t Σ_i mean_x H(r(z_ti)), with
      ``H(r) = −Σ_l r_l log(r_l + 1e-6)``: the paper's entropy regulariser (λ), which pushes
      the selectors to be binary sooner. Default weight 1e-3 (our choice: the paper tunes λ;
      the authors' code has it off unless given). The authors' Keras code sums over the
      batch; we average over it, so the weight does not depend on the batch size.
    * ``dselect_k_reachable`` (only when ``num_experts`` is not a power of 2) =
      Σ_t Σ_i mean_x (1 / Σ_{l<n} r(z_ti)_l − 1): the authors' penalty that keeps a selector
      from choosing one of the ``2^m − n`` codes without an expert (0 once it does not; weight
      1 as in their code, batch averaged as above).

    Gate weights are logged as MMoE's: ``sharing_summary()["gates"]`` holds per task the mean
    weight of each expert over the forward passes since the previous call, and
    ``"nonzero_experts"`` the mean number of experts with nonzero weight (k or less once
    the gates saturate; all n at the start). ``has_representation`` is False; the experts are
    ``shared_parameters()``, a task's gate and tower ``task_parameters(t)``.

    Args:
        trunk: stock trunk spec or ``nn.Module``: the architecture of each expert.
        tasks: the task specs.
        input_shape: per-sample input shape (needed for the gates' input width).
        num_experts: the number of experts n (>= 2).
        k: the number of experts each task selects (1 <= k <= n).
        gamma: the width γ of the smooth step's polynomial region (> 0; the authors' default 1).
        entropy_weight: λ, the weight of the entropy regulariser (>= 0).
        gate: ``"per_example"`` or ``"static"``.
        tower_hidden: hidden widths of each task tower.

    >>> import torch
    >>> from mtlkit import Task
    >>> m = DSelectK({"name": "mlp", "hidden": [8]}, [Task("a", "binary"), Task("b", "binary")],
    ...              input_shape=(5,), num_experts=4, k=2)
    >>> out = m(torch.randn(3, 5))
    >>> q = m.gate_weights(torch.randn(3, 5))["a"]
    >>> tuple(q.shape), bool(torch.allclose(q.sum(1), torch.ones(3)))
    ((3, 4), True)
    >>> sorted(m.extra_losses())
    ['dselect_k_entropy']
    """

    paper = ("Hazimeh et al. 2021, DSelect-k: Differentiable Selection in the Mixture of Experts with "
             "Applications to Multi-Task Learning")
    has_representation = False

    def __init__(self, trunk: TrunkArg, tasks: Sequence[Task], *, input_shape: Sequence[int],
                 num_experts: int = 4, k: int = 2, gamma: float = 1.0, entropy_weight: float = 1e-3,
                 gate: str = "per_example", tower_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        name = "DSelectK"
        self.tasks = check_tasks(tasks)
        self.num_experts = check_int(name, "num_experts", num_experts, low=2)
        self.k = check_int(name, "k", k, low=1, high=self.num_experts)
        self.gamma = check_float(name, "gamma", gamma, low=0.0, low_open=True)
        self.entropy_weight = check_float(name, "entropy_weight", entropy_weight, low=0.0)
        self.gate = check_choice(name, "gate", gate, options=("per_example", "static"))
        hidden = check_ints(name, "tower_hidden", tower_hidden, low=1, min_length=0)
        if input_shape is None:
            raise ValueError("DSelectK needs 'input_shape' (the gates read the flattened input).")
        make = TrunkFactory(trunk, input_shape, name)
        self.experts = nn.ModuleList([make() for _ in range(self.num_experts)])
        self.width = trunk_width(self.experts[0], input_shape)
        d_in = flat_size(input_shape)
        per_example = self.gate == "per_example"
        self.gates = TaskModuleDict({t.name: DSelectKGate(d_in, self.num_experts, self.k, self.gamma, per_example)
                                     for t in self.tasks})
        self.towers = TaskModuleDict({t.name: make_head(self.width, t, hidden) for t in self.tasks})
        self.power_of_two = self.num_experts == 2 ** math.ceil(math.log2(self.num_experts))
        self._gate_means = {t.name: RunningMean() for t in self.tasks}
        self._nonzero_means = {t.name: RunningMean() for t in self.tasks}
        self._reg_input: Tensor | None = None
        self.config: dict[str, Any] = {
            "name": "dselect_k", "trunk": make.spec, "num_experts": self.num_experts, "k": self.k,
            "gamma": self.gamma, "entropy_weight": self.entropy_weight, "gate": self.gate, "tower_hidden": hidden}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    **params: Any) -> DSelectK:
        return cls(require_spec(trunk, "DSelectK"), tasks, input_shape=input_shape, **params)

    def gate_weights(self, x: Tensor) -> dict[str, Tensor]:
        """The (N, n) expert weights of every task for inputs ``x`` (not logged)."""
        return {t.name: self.gates[t.name](x)[0] for t in self.tasks}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        outs = [e(x).reshape(x.shape[0], -1) for e in self.experts]
        if self.training and torch.is_grad_enabled():
            self._reg_input = x.detach()
        res = {}
        for t in self.tasks:
            q, _ = self.gates[t.name](x)
            self._gate_means[t.name].update(q)
            self._nonzero_means[t.name].update((q.detach() > 0).sum(1, keepdim=True))
            res[t.name] = t.shape_output(self.towers[t.name](mix(q, outs)))
        return res

    # ------------------------------------------------------------------ regularisers
    def _selectors(self, selectors: dict[str, Tensor] | None) -> dict[str, Tensor]:
        """``selectors``, or every task's selector outputs (N, k, n) on the inputs of the last
        training pass, computed afresh (a new graph at every call, so a regulariser can be
        taken after other forward passes, e.g. a bilevel weighting's validation pass)."""
        if selectors is not None:
            return selectors
        if self._reg_input is None:
            raise ValueError("DSelectK's regularisers need a training forward pass first.")
        return {t.name: self.gates[t.name](self._reg_input)[1] for t in self.tasks}

    def entropy_loss(self, selectors: dict[str, Tensor] | None = None) -> Tensor:
        """Σ_t Σ_i mean_x H(r(z_ti)) (unweighted) on the last training pass's inputs (or of
        ``selectors``)."""
        sel = self._selectors(selectors)
        terms = [-(r * torch.log(r + EPSILON)).sum(-1).sum(-1).mean() for r in sel.values()]
        return torch.stack(terms).sum()

    def reachable_loss(self, selectors: dict[str, Tensor] | None = None) -> Tensor:
        """Σ_t Σ_i mean_x (1 / Σ_l r(z_ti)_l − 1): 0 when every selector chooses an expert
        (on the last training pass's inputs, or of ``selectors``)."""
        sel = self._selectors(selectors)
        terms = [(1.0 / r.sum(-1).clamp_min(EPSILON) - 1.0).sum(-1).mean() for r in sel.values()]
        return torch.stack(terms).sum()

    def extra_losses(self) -> dict[str, Tensor]:
        if self._reg_input is None:
            return {}
        sel = self._selectors(None)
        out = {"dselect_k_entropy": self.entropy_weight * self.entropy_loss(sel)}
        if not self.power_of_two:
            out["dselect_k_reachable"] = self.reachable_loss(sel)
        return out

    # ------------------------------------------------------------------ contract
    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return params_of(self.experts)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return list(params_of(*[named_blocks(e, "DSelectK")[-1][1] for e in self.experts]))

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        return params_of(self.gates[name], self.towers[name])

    def sharing_summary(self) -> dict[str, Any]:
        gates = {n: m.pop() for n, m in self._gate_means.items()}
        nonzero = {n: m.pop() for n, m in self._nonzero_means.items()}
        if all(v is None for v in gates.values()):
            return {}
        return {"gates": {n: v for n, v in gates.items() if v is not None},
                "nonzero_experts": {n: v[0] for n, v in nonzero.items() if v is not None}}
