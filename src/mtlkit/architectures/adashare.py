"""AdaShare: a learned per-task select-or-skip policy over the blocks of one shared trunk."""

from __future__ import annotations

import copy
import itertools
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlkit._checks import check_bool, check_choice, check_float, check_int
from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._layers import (
    TaskModuleDict,
    TaskParameterDict,
    TrunkArg,
    block_shapes,
    flat_size,
    named_blocks,
    params_of,
    require_spec,
    reset_parameters,
    single_trunk,
)
from mtlkit.tasks import Task, check_tasks


def _pool_last(h: Tensor, size: int) -> Tensor:
    """Adaptive average pooling along the last axis of any tensor (parameter-free resize)."""
    lead = h.shape[:-1]
    return F.adaptive_avg_pool1d(h.reshape(-1, 1, h.shape[-1]), size).reshape(*lead, size)


class Shortcut(nn.Module):
    """The path a skipped block leaves: the identity when the block keeps the shape (the
    paper's residual blocks); otherwise a resize of the block's input to its output shape.

    ``mode="pool"`` (default) is parameter-free: adaptive average pooling over the spatial
    axes and over the channel (or feature) axis; a block that flattens a feature map is
    skipped by flattening and pooling to the output width. ``mode="projection"`` is a learned,
    bias-free projection like ResNet's downsampling shortcut (1×1 convolution + spatial pooling
    for feature maps, linear for flat features, spatial mean + linear when the block flattens).
    """

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], mode: str = "pool") -> None:
        super().__init__()
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        ri, ro = len(self.in_shape), len(self.out_shape)
        self.proj: nn.Module | None = None
        if self.in_shape == self.out_shape:
            self.kind = "identity"
        elif ri == 1 and ro == 1:
            self.kind = "flat"
        elif ri == ro and ri in (2, 3):
            self.kind = "map"
        elif ri in (2, 3) and ro == 1:
            self.kind = "flatten"
        else:
            raise ValueError(f"AdaShare cannot build a skip path from block input shape {self.in_shape} "
                             f"to output shape {self.out_shape}.")
        self.mode = mode if self.kind != "identity" else "identity"
        if self.mode == "projection":
            if self.kind == "flat":
                self.proj = nn.Linear(self.in_shape[0], self.out_shape[0], bias=False)
            elif self.kind == "map":
                conv = nn.Conv1d if ri == 2 else nn.Conv2d
                self.proj = conv(self.in_shape[0], self.out_shape[0], 1, bias=False)
            else:
                self.proj = nn.Linear(self.in_shape[0], self.out_shape[0], bias=False)

    def forward(self, h: Tensor) -> Tensor:
        if self.kind == "identity":
            return h
        # out_shape[1:] has one entry for (N, C, L) maps and two for (N, C, H, W) maps
        spatial_pool: Callable[..., Tensor] = F.adaptive_avg_pool1d if h.dim() == 3 else F.adaptive_avg_pool2d
        if self.mode == "projection":
            assert self.proj is not None
            if self.kind == "flat":
                return self.proj(h)
            if self.kind == "map":
                return spatial_pool(self.proj(h), self.out_shape[1:])
            return self.proj(h.mean(dim=tuple(range(2, h.dim()))))
        if self.kind == "flat":
            return _pool_last(h, self.out_shape[0])
        if self.kind == "map":
            h = spatial_pool(h, self.out_shape[1:])
            return _pool_last(h.movedim(1, -1), self.out_shape[0]).movedim(-1, 1)
        return _pool_last(h.reshape(h.shape[0], -1), self.out_shape[0])


@ARCHITECTURES.register()
class AdaShare(MultiTaskModel):
    """One shared trunk; each task learns which blocks to execute (select) or skip.

    Sun, Panda, Feris & Saenko (2020), "AdaShare: Learning What To Share For Efficient Deep
    Multi-Task Learning", NeurIPS. Task t has two logits per block (select, skip). In training
    a Gumbel-softmax sample ``u_tb`` (temperature τ, soft samples as in the authors' code)
    gives block b's output for task t as ``u_tb · block_b(h) + (1 − u_tb) · skip_b(h)``; in
    evaluation the most probable action is taken. A skipped block passes its input on through
    ``skip_b``: the identity when the block keeps the shape (the paper's residual blocks);
    our stock trunks change the width in every block, so there ``skip_b`` resizes the input
    (``skip="pool"``: parameter-free adaptive average pooling, so AdaShare has exactly the
    parameters of hard sharing plus 2 logits per task and block; ``skip="projection"``: a
    learned bias-free projection like ResNet's downsampling shortcut, see :class:`Shortcut`).
    ``hard_sampling=True`` uses straight-through hard Gumbel samples in training (the authors'
    ``hard_sampling`` option; their default is soft).

    Training follows the paper's schedule, counted in training forward passes (steps):

    * warm-up: for ``warmup_steps`` every block is executed and the policy is not used;
    * curriculum: then the policy of the last ``k`` blocks is learned while the first ones stay
      selected, ``k`` growing by one every ``curriculum_steps`` (0 = all blocks at once);
    * τ starts at ``temperature`` and is multiplied by ``temperature_decay`` every
      ``decay_every`` steps after warm-up (authors' defaults: 5, 0.965, 100).

    Regularisers (:meth:`extra_losses`, added by the trainer while the policy is learned):
    ``adashare_sparsity`` = ``sparsity_weight`` · Σ_t mean_b −log(1 − α_tb), the authors'
    cross-entropy towards "skip" (the paper writes Σ log α_tb, which has no lower bound), and
    ``adashare_sharing`` = ``sharing_weight`` · Σ_{t1<t2} Σ_b (B − b)/B · |α_{t1,b} − α_{t2,b}|
    (b = 1..B; the paper's weights favour sharing the lower blocks), with α_tb the select
    probability. Deviation: the paper alternates updates of the network weights and of the
    policy logits with two optimisers (policy learning rate 0.01, network 0.001); here both
    learn jointly with the trainer's optimiser, and the logits are stored divided by
    ``policy_lr_scale`` (default 10) so that under Adam their effective step is that many
    times the network's, as in the authors' settings.

    Two phases, as in the paper. Phase 1 (search) trains the network and the policy jointly;
    :meth:`fix_policy` then samples each block's action from its select probability
    (``policy_sampling="sample"``, the paper's choice) or takes the most probable one
    (``"argmax"``) and fixes it. Phase 2 retrains a *fresh* network with the fixed policy:
    :meth:`retrain_config` gives its architecture config (same parameters, ``policy`` set) and
    :meth:`retrain_model` builds it. ``retrain=True`` asks the runner
    (:func:`mtlkit.run.run`, so ``mtlkit train`` and :func:`mtlkit.fit`) to run both
    phases; the run's model is then the retrained one. A model built with ``policy`` starts
    with that policy fixed (no regulariser, no sampling); the policy is part of its config,
    so a saved model is rebuilt with it. ``sharing_summary()["policy"]`` is the task × block
    table of select probabilities (0/1 once fixed).

    Parameters: the trunk's blocks and the skip projections are ``shared_parameters()``; task
    t's logits and head are ``task_parameters(t)``. ``has_representation`` is False: each task
    runs its own path through the blocks, so no single tensor feeds every head.

    Args:
        trunk: stock trunk spec or ``nn.Sequential`` (used as is, not copied).
        tasks: the task specs.
        input_shape: per-sample input shape.
        temperature: initial Gumbel-softmax temperature τ (> 0).
        temperature_decay: factor applied to τ every ``decay_every`` steps, in (0, 1].
        decay_every: steps between temperature decays (>= 1).
        warmup_steps: steps with every block executed before the policy is learned (>= 0).
        curriculum_steps: steps per additional learnable block (0 = no curriculum).
        sparsity_weight, sharing_weight: weights of the two regularisers (>= 0).
        policy_lr_scale: effective learning-rate multiplier of the policy logits (> 0).
        hard_sampling: straight-through hard Gumbel samples in training.
        skip: ``"pool"`` (parameter-free) or ``"projection"`` (learned) skip paths.
        head_hidden: hidden widths of each head.
        policy: a fixed policy ``{task: [1 (select) or 0 (skip) per block]}`` given up front
            (phase 2); every task needs one action per block.
        retrain: ask the runner for the paper's second phase (fix the learned policy, retrain
            a fresh network with it). Needs a learned policy, so not with ``policy``.
        policy_sampling: how :meth:`fix_policy` fixes the learned policy by default:
            ``"sample"`` (each action drawn from its select probability, as in the paper) or
            ``"argmax"`` (the most probable action).

    >>> import torch
    >>> from mtlkit import Task
    >>> m = AdaShare({"name": "mlp", "hidden": [8, 8, 8]}, [Task("a", "binary"), Task("b", "binary")],
    ...              input_shape=(4,))
    >>> tuple(m(torch.zeros(2, 4))["a"].shape), m.sharing_summary()["policy"]["a"]
    ((2,), [0.5, 0.5, 0.5])
    >>> m.fix_policy(sample=False)
    {'a': [1, 1, 1], 'b': [1, 1, 1]}
    >>> fixed = AdaShare({"name": "mlp", "hidden": [8, 8, 8]}, [Task("a", "binary"), Task("b", "binary")],
    ...                  input_shape=(4,), policy={"a": [1, 1, 0], "b": [1, 0, 1]})
    >>> fixed.sharing_summary()["policy"], fixed.extra_losses()
    ({'a': [1, 1, 0], 'b': [1, 0, 1]}, {})
    >>> m.retrain_config({"a": [1, 0, 0], "b": [1, 1, 1]})["policy"]
    {'a': [1, 0, 0], 'b': [1, 1, 1]}
    """

    paper = "Sun et al. 2020, AdaShare: Learning What To Share For Efficient Deep Multi-Task Learning"
    has_representation = False
    task_keyed_params = ("policy",)
    # buffers (registered in __init__)
    step: Tensor
    policy_fixed: Tensor
    fixed_policy: Tensor

    def __init__(self, trunk: TrunkArg, tasks: Sequence[Task], *, input_shape: Sequence[int],
                 temperature: float = 5.0, temperature_decay: float = 0.965, decay_every: int = 100,
                 warmup_steps: int = 0, curriculum_steps: int = 0, sparsity_weight: float = 0.05,
                 sharing_weight: float = 0.05, policy_lr_scale: float = 10.0, hard_sampling: bool = False,
                 skip: str = "pool", head_hidden: Sequence[int] = (),
                 policy: Mapping[str, Sequence[int]] | None = None, retrain: bool = False,
                 policy_sampling: str = "sample") -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        name = "AdaShare"
        self.temperature = check_float(name, "temperature", temperature, low=0.0, low_open=True)
        self.temperature_decay = check_float(name, "temperature_decay", temperature_decay, low=0.0, high=1.0,
                                             low_open=True)
        self.decay_every = check_int(name, "decay_every", decay_every, low=1)
        self.warmup_steps = check_int(name, "warmup_steps", warmup_steps, low=0)
        self.curriculum_steps = check_int(name, "curriculum_steps", curriculum_steps, low=0)
        self.sparsity_weight = check_float(name, "sparsity_weight", sparsity_weight, low=0.0)
        self.sharing_weight = check_float(name, "sharing_weight", sharing_weight, low=0.0)
        self.policy_lr_scale = check_float(name, "policy_lr_scale", policy_lr_scale, low=0.0, low_open=True)
        self.hard_sampling = check_bool(name, "hard_sampling", hard_sampling)
        self.skip = check_choice(name, "skip", skip, options=("pool", "projection"))
        self.retrain = check_bool(name, "retrain", retrain)
        self.policy_sampling = check_choice(name, "policy_sampling", policy_sampling, options=("sample", "argmax"))
        if input_shape is None:
            raise ValueError("AdaShare needs 'input_shape' (to build the skip paths).")
        self.input_shape = tuple(int(s) for s in input_shape)
        built, spec = single_trunk(trunk, input_shape, name)
        blocks = named_blocks(built, name)
        self.block_names = [n for n, _ in blocks]
        self.blocks = nn.ModuleList([b for _, b in blocks])
        shapes = block_shapes(list(self.blocks), input_shape)
        ins = [tuple(input_shape), *shapes[:-1]]
        self.skips = nn.ModuleList([Shortcut(i, o, self.skip) for i, o in zip(ins, shapes)])
        self.width = flat_size(shapes[-1])
        nb = len(self.blocks)
        self.logits = TaskParameterDict({t.name: nn.Parameter(torch.zeros(nb, 2)) for t in self.tasks})
        self.heads = TaskModuleDict({t.name: make_head(self.width, t, head_hidden) for t in self.tasks})
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("policy_fixed", torch.zeros((), dtype=torch.bool))
        self.register_buffer("fixed_policy", torch.ones(len(self.tasks), nb))
        self.policy = None if policy is None else self.check_policy(policy)
        if self.policy is not None:
            if retrain:
                raise ValueError(f"The 'retrain' parameter of {name} needs a policy to learn; with 'policy' "
                                 f"given the policy is already fixed. Set retrain to False.")
            self.set_policy(self.policy)
        self.config: dict[str, Any] = {
            "name": "adashare", "trunk": spec, "temperature": self.temperature,
            "temperature_decay": self.temperature_decay, "decay_every": self.decay_every,
            "warmup_steps": self.warmup_steps, "curriculum_steps": self.curriculum_steps,
            "sparsity_weight": self.sparsity_weight, "sharing_weight": self.sharing_weight,
            "policy_lr_scale": self.policy_lr_scale, "hard_sampling": self.hard_sampling, "skip": self.skip,
            "head_hidden": list(head_hidden), "policy": self.policy, "retrain": self.retrain,
            "policy_sampling": self.policy_sampling}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    **params: Any) -> AdaShare:
        return cls(require_spec(trunk, "AdaShare"), tasks, input_shape=input_shape, **params)

    # ------------------------------------------------------------------ schedule
    def current_temperature(self) -> float:
        after = max(0, int(self.step) - self.warmup_steps)
        return self.temperature * self.temperature_decay ** (after // self.decay_every)

    def learnable_blocks(self) -> int:
        """How many of the last blocks have a learned policy at the current step."""
        nb = len(self.blocks)
        s = int(self.step)
        if s < self.warmup_steps:
            return 0
        if self.curriculum_steps == 0:
            return nb
        return min(nb, 1 + (s - self.warmup_steps) // self.curriculum_steps)

    def policy_logits(self, task: str) -> Tensor:
        """(B, 2) effective (select, skip) logits of ``task``."""
        return self.logits[task] * self.policy_lr_scale

    def select_probabilities(self) -> Tensor:
        """(K, B) probability of *select* per task and block."""
        return torch.stack([torch.softmax(self.policy_logits(t.name), dim=-1)[:, 0] for t in self.tasks])

    def _policy(self) -> tuple[Tensor, bool]:
        """(K, B) select weights for this forward pass and whether they are hard 0/1."""
        nb = len(self.blocks)
        if bool(self.policy_fixed):
            return self.fixed_policy, True
        k = self.learnable_blocks()
        dev = self.fixed_policy.device
        ones = torch.ones(nb, device=dev, dtype=self.fixed_policy.dtype)
        sampling = self.training and torch.is_grad_enabled()
        rows, hard = [], True
        for t in self.tasks:
            if k == 0:
                rows.append(ones)
                continue
            lg = self.policy_logits(t.name)[nb - k:]
            if sampling:
                u = F.gumbel_softmax(lg, tau=self.current_temperature(), hard=self.hard_sampling, dim=-1)[:, 0]
                hard = False
            else:
                u = (lg[:, 0] >= lg[:, 1]).to(ones.dtype)
            rows.append(torch.cat([ones[: nb - k], u.to(ones.dtype)]))
        return torch.stack(rows), hard

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> dict[str, Tensor]:
        policy, hard = self._policy()
        if self.training and torch.is_grad_enabled():
            self.step += 1
        out: dict[str, Tensor] = {}
        cache: dict[tuple[float, ...], Tensor] = {}
        for i, t in enumerate(self.tasks):
            u = policy[i]
            key = tuple(u.tolist()) if hard else None
            if key is not None and key in cache:
                h = cache[key]
            else:
                h = x
                for b, (block, skip) in enumerate(zip(self.blocks, self.skips)):
                    if hard:
                        h = block(h) if float(u[b]) >= 0.5 else skip(h)
                    else:
                        h = u[b] * block(h) + (1 - u[b]) * skip(h)
                if key is not None:
                    cache[key] = h
            out[t.name] = t.shape_output(self.heads[t.name](h.reshape(h.shape[0], -1)))
        return out

    # ------------------------------------------------------------------ regularisers
    def _learning_policy(self) -> bool:
        return not bool(self.policy_fixed) and self.learnable_blocks() > 0

    def sparsity_loss(self) -> Tensor:
        """Σ_t mean over learnable blocks of −log(1 − α_tb) (cross-entropy towards skip)."""
        k = max(self.learnable_blocks(), 1)
        nb = len(self.blocks)
        terms = [-F.log_softmax(self.policy_logits(t.name)[nb - k:], dim=-1)[:, 1].mean() for t in self.tasks]
        return torch.stack(terms).sum()

    def sharing_loss(self) -> Tensor:
        """Σ_{t1<t2} Σ_b (B − b)/B · |α_{t1,b} − α_{t2,b}| with b = 1..B."""
        alpha = self.select_probabilities()
        nb = alpha.shape[1]
        w = (nb - torch.arange(1, nb + 1, dtype=alpha.dtype, device=alpha.device)) / nb
        total = alpha.new_zeros(())
        for i, j in itertools.combinations(range(alpha.shape[0]), 2):
            total = total + (w * (alpha[i] - alpha[j]).abs()).sum()
        return total

    def extra_losses(self) -> dict[str, Tensor]:
        if not self._learning_policy():
            return {}
        return {"adashare_sparsity": self.sparsity_weight * self.sparsity_loss(),
                "adashare_sharing": self.sharing_weight * self.sharing_loss()}

    # ------------------------------------------------------------------ policy
    def check_policy(self, policy: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
        """Validate a ``{task: [0/1 per block]}`` policy; return it with int actions in task order."""
        nb, names = len(self.blocks), [t.name for t in self.tasks]
        where = "The 'policy' parameter of AdaShare"
        if not isinstance(policy, Mapping):
            raise ValueError(f"{where} must map each task to a list of 0 (skip) / 1 (select) per block. "
                             f"Got {policy!r}.")
        unknown = [k for k in policy if k not in names]
        if unknown:
            raise ValueError(f"{where} names unknown task(s) {unknown}; the tasks are {names}.")
        out: dict[str, list[int]] = {}
        for t in names:
            if t not in policy:
                raise ValueError(f"{where} has no entry for task {t!r}; give one action per block "
                                 f"{self.block_names} for every task {names}.")
            row = policy[t]
            if isinstance(row, (str, bytes, Mapping)) or not isinstance(row, Sequence) or len(row) != nb:
                raise ValueError(f"{where} must give task {t!r} a list of {nb} actions (one per block "
                                 f"{self.block_names}). Got {row!r}.")
            bad = [v for v in row if not (isinstance(v, (int, float)) and v in (0, 1))]
            if bad:
                raise ValueError(f"{where} must hold only 0 (skip) and 1 (select); task {t!r} has "
                                 f"{bad[0]!r} in {list(row)!r}.")
            out[t] = [int(v) for v in row]
        return out

    @torch.no_grad()
    def fix_policy(self, *, sample: bool | None = None, generator: torch.Generator | None = None
                   ) -> dict[str, list[int]]:
        """Fix the policy: sample each block's action from its select probability
        (``sample=True``, as the paper does before retraining) or take the most probable one
        (``sample=False``); default from ``policy_sampling``. Blocks whose policy the
        curriculum has not reached yet stay selected. Returns the task × block table of
        0 (skip) / 1 (select)."""
        nb = len(self.blocks)
        k = self.learnable_blocks()
        alpha = self.select_probabilities().cpu()
        if sample is None:
            sample = self.policy_sampling == "sample"
        if sample:
            chosen = torch.bernoulli(alpha, generator=generator)
        else:
            chosen = (alpha >= 0.5).to(alpha.dtype)
        chosen[:, : nb - k] = 1.0
        self.fixed_policy.copy_(chosen.to(self.fixed_policy))
        self.policy_fixed.fill_(True)
        return {t.name: [int(v) for v in chosen[i].tolist()] for i, t in enumerate(self.tasks)}

    def describe_policy(self, policy: Mapping[str, Sequence[int]]) -> str:
        """One line for the runner's log: the fixed task × block policy (1 = select, 0 = skip)."""
        return f"Fixed policy (1 = select, 0 = skip; blocks {list(self.block_names)}): {dict(policy)}"

    def set_policy(self, policy: Mapping[str, Sequence[int]] | Tensor) -> None:
        """Fix a given (K, B) 0/1 policy (``{task: [0/1 per block]}`` or a tensor)."""
        if isinstance(policy, Mapping):
            checked = self.check_policy(policy)
            tensor = torch.tensor([checked[t.name] for t in self.tasks], dtype=self.fixed_policy.dtype)
        else:
            tensor = torch.as_tensor(policy, dtype=self.fixed_policy.dtype)
        if tuple(tensor.shape) != tuple(self.fixed_policy.shape):
            raise ValueError(f"The policy must have shape {tuple(self.fixed_policy.shape)} (tasks × blocks). "
                             f"Got {tuple(tensor.shape)}.")
        if not bool(((tensor == 0) | (tensor == 1)).all()):
            raise ValueError("The policy must hold only 0 (skip) and 1 (select).")
        self.fixed_policy.copy_(tensor.to(self.fixed_policy.device))
        self.policy_fixed.fill_(True)

    def unfix_policy(self) -> None:
        self.policy_fixed.fill_(False)

    def current_policy(self) -> dict[str, list[int]]:
        """The fixed 0/1 policy as ``{task: [0/1 per block]}`` (an error while it is learned)."""
        if not bool(self.policy_fixed):
            raise ValueError("The AdaShare policy is not fixed yet; call fix_policy() or set_policy() first.")
        table = self.fixed_policy.cpu()
        return {t.name: [int(v) for v in table[i].tolist()] for i, t in enumerate(self.tasks)}

    # ------------------------------------------------------------------ second phase
    def retrain_config(self, policy: Mapping[str, Sequence[int]] | None = None) -> dict[str, Any]:
        """The architecture config of the phase-2 model: this model's parameters with
        ``policy`` fixed (default: the currently fixed policy) and ``retrain`` off."""
        chosen = self.check_policy(policy) if policy is not None else self.current_policy()
        return {**self.config, "policy": chosen, "retrain": False}

    def retrain_model(self, policy: Mapping[str, Sequence[int]] | None = None) -> AdaShare:
        """A fresh network (new parameters, drawn from torch's global generator) with
        ``policy`` fixed: built from :meth:`retrain_config`. A user-defined trunk (no stock
        spec) is deep-copied and re-initialised with each sub-module's ``reset_parameters``."""
        cfg = self.retrain_config(policy)
        params = {k: v for k, v in cfg.items() if k not in ("name", "trunk")}
        if cfg["trunk"] is not None:
            return type(self).from_config(self.tasks, self.input_shape, trunk=cfg["trunk"], **params)
        trunk = reset_parameters(copy.deepcopy(nn.Sequential(OrderedDict(zip(self.block_names, self.blocks)))))
        stale = [n for n, m in trunk.named_modules() if not callable(getattr(m, "reset_parameters", None))
                 and any(True for _ in m.parameters(recurse=False))]
        if stale:
            warnings.warn(f"AdaShare.retrain_model: trunk module(s) {stale} have no reset_parameters(); "
                          f"they keep their phase-1 weights.", RuntimeWarning, stacklevel=2)
        return type(self)(trunk, self.tasks, input_shape=self.input_shape, **params)

    # ------------------------------------------------------------------ contract
    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return params_of(self.blocks, self.skips)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return list(self.blocks[-1].parameters()) or super().last_shared_parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        yield self.logits[name]
        yield from self.heads[name].parameters()

    def sharing_summary(self) -> dict[str, Any]:
        """``policy``: the select probabilities while the policy is learned (with the current
        Gumbel temperature), the 0/1 actions once it is fixed (no temperature: nothing is
        sampled any more)."""
        if bool(self.policy_fixed):
            return {"policy": self.current_policy(), "policy_blocks": list(self.block_names),
                    "policy_fixed": True}
        with torch.no_grad():
            table = self.select_probabilities().cpu()
        return {"policy": {t.name: [round(float(v), 6) for v in table[i].tolist()]
                           for i, t in enumerate(self.tasks)},
                "policy_blocks": list(self.block_names), "policy_fixed": False,
                "temperature": self.current_temperature()}
