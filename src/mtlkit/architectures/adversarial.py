"""Adversarial shared-private model: a shared encoder kept task-agnostic by a discriminator."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlkit._checks import check_float, check_int
from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._layers import (
    TaskModuleDict,
    TrunkArg,
    TrunkFactory,
    grad_reverse,
    params_of,
    require_spec,
    trunk_width,
)
from mtlkit.tasks import Task, check_tasks


def orthogonality_penalty(shared: Tensor, private: Tensor) -> Tensor:
    """||Sᵀ P||_F² / N² for (N, d_s) shared and (N, d_p) private features of N samples
    (Liu, Qiu & Huang 2017, eq. for L_diff, divided by N² so the weight does not depend on
    the batch size)."""
    n = shared.shape[0]
    if n == 0:
        return shared.new_zeros(())
    return (shared.t() @ private).pow(2).sum() / float(n * n)


@ARCHITECTURES.register()
class AdversarialSharedPrivate(MultiTaskModel):
    """A shared encoder and a private encoder per task; an adversarial task discriminator on the
    shared features and an orthogonality penalty between shared and private features.

    Liu, Qiu & Huang (2017), "Adversarial Multi-task Learning for Text Classification", ACL.
    Task t's head reads ``[s(x), p_t(x)]``. A linear softmax discriminator D predicts from the
    shared features which task a sample comes from; it is trained through a gradient-reversal
    layer (Ganin & Lempitsky 2015) with coefficient ``reversal_strength``, so D minimises its
    cross-entropy while the shared encoder maximises it (the paper's min-max L_adv). The
    difference loss L_diff = Σ_t ||S_tᵀ P_t||_F² pushes the shared and private features of
    task t's samples apart (here divided by N_t², see :func:`orthogonality_penalty`).
    :meth:`extra_losses` returns ``adversarial`` = ``adversarial_weight`` · L_adv (λ, 0.05 in
    the paper) and ``orthogonality`` = ``orthogonality_weight`` · L_diff (γ, 0.01).

    Which task does a sample belong to? The paper trains on one dataset per task. Here:

    * ``task_id_feature=i`` (flat inputs): column i of x holds the task index (0..K−1) of each
      sample; it is removed from the encoders' inputs. A value outside 0..K−1 (e.g. −1) means
      "every task".
    * ``forward(x, task_ids=...)`` with (N,) task indices or an (N, K) boolean membership.
    * :meth:`observe_batch` (``{task: label mask}``) marks a sample as belonging to the tasks it
      has a label for (the per-task-dataset setting when data come from several datasets);
      the next forward pass uses it (see the report for the trainer hook that calls it).
    * otherwise every sample belongs to every task, as in a multi-label table.

    Our choice for multi-membership: the discriminator's target for a sample is the uniform
    distribution over its tasks, and only samples that belong to a strict subset of the tasks
    enter L_adv. A sample of every task carries no task identity to hide, and training D
    against a uniform target would push the shared encoder to make D *confident* (the
    reversed gradient of a uniform target), which is not the paper's aim. So on a fully
    labelled multi-label table L_adv is 0 and the model reduces to shared-private features with
    the orthogonality penalty. ``sharing_summary()["discriminator_accuracy"]`` (argmax of D is
    one of the sample's tasks) is reported over such informative samples only (over the forward
    passes since the previous call; repeated when there was none), and
    ``["penalty"]`` is the last unweighted L_diff.

    Encoders. The paper's shared and private encoders are LSTMs over word embeddings (the last
    hidden state is the sentence's feature). Here each is any trunk: ``trunk`` gives both, and
    ``shared`` / ``private`` override one of them with its own spec or module, e.g. over a
    table's token-ID slots ``shared: {name: bilstm, hidden: 64}`` or ``{name: transformer}`` of
    :mod:`mtlkit.architectures.text` (a table's input spec, ``trunk.input``, is copied into
    specs that lack it). The text trunks pool the per-token states (mean over the real tokens)
    instead of taking the last state; that is our choice, as it also serves a Transformer.

    Parameters: the shared encoder is ``shared_parameters()``; task t's private encoder and
    head are ``task_parameters(t)``; the discriminator is in neither (only its extra loss
    trains it). ``has_representation`` is False: the heads also read the private features.

    Args:
        trunk: stock trunk spec or ``nn.Module``; the shared and each private encoder are
            fresh copies (unless ``shared`` / ``private`` are given).
        shared: trunk spec or module of the shared encoder (default: ``trunk``).
        private: trunk spec or module of every private encoder (fresh copies per task;
            default: ``trunk``).
        tasks: the task specs.
        input_shape: per-sample input shape (including the task-id column if any).
        adversarial_weight: λ (>= 0).
        reversal_strength: the gradient-reversal coefficient (>= 0).
        orthogonality_weight: γ (>= 0).
        task_id_feature: index of the input column holding the task index, or None.
        head_hidden: hidden widths of each head.

    >>> import torch
    >>> from mtlkit import Task
    >>> m = AdversarialSharedPrivate({"name": "mlp", "hidden": [6]}, [Task("a", "binary"), Task("b", "binary")],
    ...                              input_shape=(4,))
    >>> out = m(torch.randn(5, 4), task_ids=torch.tensor([0, 1, 0, 1, 1]))
    >>> sorted(m.extra_losses())
    ['adversarial', 'orthogonality']
    """

    paper = "Liu, Qiu & Huang 2017, Adversarial Multi-task Learning for Text Classification"
    has_representation = False

    def __init__(self, trunk: TrunkArg | None, tasks: Sequence[Task], *, input_shape: Sequence[int] | None = None,
                 adversarial_weight: float = 0.05, reversal_strength: float = 1.0,
                 orthogonality_weight: float = 0.01, task_id_feature: int | None = None,
                 head_hidden: Sequence[int] = (), shared: TrunkArg | None = None,
                 private: TrunkArg | None = None) -> None:
        super().__init__()
        name = "AdversarialSharedPrivate"
        self.tasks = check_tasks(tasks)
        self.adversarial_weight = check_float(name, "adversarial_weight", adversarial_weight, low=0.0)
        self.reversal_strength = check_float(name, "reversal_strength", reversal_strength, low=0.0)
        self.orthogonality_weight = check_float(name, "orthogonality_weight", orthogonality_weight, low=0.0)
        enc_shape = None if input_shape is None else tuple(int(s) for s in input_shape)
        if task_id_feature is not None:
            if enc_shape is None or len(enc_shape) != 1:
                raise ValueError(f"The 'task_id_feature' parameter of {name} needs flat (features,) inputs "
                                 f"and input_shape. Got input_shape={input_shape!r}.")
            check_int(name, "task_id_feature", task_id_feature, low=0)
            if task_id_feature >= enc_shape[0]:
                raise ValueError(f"The 'task_id_feature' parameter of {name} must be a column index below "
                                 f"{enc_shape[0]}. Got {task_id_feature}.")
            enc_shape = (enc_shape[0] - 1,)
        self.task_id_feature = task_id_feature
        if trunk is None and (shared is None or private is None):
            raise ValueError(f"{name} needs a 'trunk', or both a 'shared' and a 'private' encoder.")
        make = TrunkFactory(private if private is not None else cast(TrunkArg, trunk), enc_shape, name)
        # one factory for both when 'shared' is not given: the shared encoder is its first product
        make_shared = TrunkFactory(shared, enc_shape, f"{name} (shared encoder)") if shared is not None else make
        self.shared = make_shared()
        self.private = TaskModuleDict({t.name: make() for t in self.tasks})
        self.shared_width = trunk_width(self.shared, enc_shape)
        self.private_width = trunk_width(self.private[self.tasks[0].name], enc_shape)
        self.discriminator = nn.Linear(self.shared_width, len(self.tasks))
        self.heads = TaskModuleDict({t.name: make_head(self.shared_width + self.private_width, t, head_hidden)
                                    for t in self.tasks})
        self._pending: Tensor | None = None
        self._last: tuple[Tensor, dict[str, Tensor], Tensor] | None = None
        self._last_penalty: float | None = None
        self._acc = [0, 0]
        self._last_accuracy: float | None = None
        self.config: dict[str, Any] = {
            "name": "adversarial",
            "trunk": (dict(trunk) if isinstance(trunk, dict) else getattr(trunk, "spec", None)) if trunk is not None
            else make.spec,
            "shared": make_shared.spec if shared is not None else None,
            "private": make.spec if private is not None else None, "adversarial_weight": self.adversarial_weight,
            "reversal_strength": self.reversal_strength, "orthogonality_weight": self.orthogonality_weight,
            "task_id_feature": task_id_feature, "head_hidden": list(head_hidden)}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    shared: dict[str, Any] | None = None, private: dict[str, Any] | None = None,
                    **params: Any) -> AdversarialSharedPrivate:
        trunk = require_spec(trunk, "AdversarialSharedPrivate")
        table_input = trunk.get("input")  # a table's input spec (categories, token-ID slots): every encoder's

        def spec(s: dict[str, Any] | None) -> dict[str, Any] | None:
            if s is None or not table_input or "input" in s:
                return s
            return {**s, "input": table_input}

        return cls(trunk, tasks, input_shape=input_shape, shared=spec(shared), private=spec(private), **params)

    # ------------------------------------------------------------------ membership
    def observe_batch(self, masks: Mapping[str, Tensor]) -> None:
        """Remember, for the next forward pass, which tasks each sample has labels for."""
        cols = []
        for t in self.tasks:
            m = masks[t.name]
            cols.append(m.reshape(m.shape[0], -1).any(1))
        self._pending = torch.stack(cols, dim=1)

    def _membership(self, ids: Tensor | None, n: int, device: torch.device) -> Tensor:
        k = len(self.tasks)
        if ids is None and self._pending is not None and self._pending.shape[0] == n:
            ids = self._pending
        self._pending = None
        if ids is None:
            return torch.ones(n, k, dtype=torch.bool, device=device)
        ids = torch.as_tensor(ids, device=device)
        if ids.dim() == 2:
            if tuple(ids.shape) != (n, k):
                raise ValueError(f"task_ids as a membership matrix must have shape ({n}, {k}). Got {tuple(ids.shape)}.")
            return ids.bool()
        if ids.is_floating_point():
            ids = torch.where(torch.isfinite(ids), ids, torch.full_like(ids, -1.0)).round().long()
        ids = ids.long().reshape(n)
        valid = (ids >= 0) & (ids < k)
        onehot = F.one_hot(ids.clamp(0, k - 1), k).bool()
        return torch.where(valid[:, None], onehot, torch.ones_like(onehot))

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, task_ids: Tensor | None = None) -> dict[str, Tensor]:
        if self.task_id_feature is not None:
            i = self.task_id_feature
            if task_ids is None:
                task_ids = x[:, i]
            x = torch.cat([x[:, :i], x[:, i + 1:]], dim=1)
        n = x.shape[0]
        member = self._membership(task_ids, n, x.device)
        s = self.shared(x).reshape(n, -1)
        priv = {t.name: self.private[t.name](x).reshape(n, -1) for t in self.tasks}
        self._last = (s, priv, member)
        informative = ~member.all(1) & member.any(1)
        if bool(informative.any()):
            with torch.no_grad():
                pred = self.discriminator(s[informative]).argmax(1)
                hit = member[informative].gather(1, pred[:, None]).squeeze(1)
                self._acc[0] += int(hit.sum())
                self._acc[1] += int(informative.sum())
        return {t.name: t.shape_output(self.heads[t.name](torch.cat([s, priv[t.name]], dim=1)))
                for t in self.tasks}

    # ------------------------------------------------------------------ losses
    def adversarial_loss(self) -> Tensor:
        """Cross-entropy of D on the reversed shared features of the informative samples."""
        if self._last is None:
            raise RuntimeError("Call the model on a batch before asking for its extra losses.")
        s, _, member = self._last
        informative = ~member.all(1) & member.any(1)
        if not bool(informative.any()):
            return s.sum() * 0.0
        logits = self.discriminator(grad_reverse(s[informative], self.reversal_strength))
        target = member[informative].to(logits.dtype)
        target = target / target.sum(1, keepdim=True)
        return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()

    def difference_loss(self) -> Tensor:
        """Σ_t ||S_tᵀ P_t||_F² / N_t² over the samples of each task."""
        if self._last is None:
            raise RuntimeError("Call the model on a batch before asking for its extra losses.")
        s, priv, member = self._last
        total = s.new_zeros(())
        for k, t in enumerate(self.tasks):
            rows = member[:, k]
            total = total + orthogonality_penalty(s[rows], priv[t.name][rows])
        return total

    def extra_losses(self) -> dict[str, Tensor]:
        if self._last is None:
            return {}
        diff = self.difference_loss()
        self._last_penalty = float(diff.detach())
        return {"adversarial": self.adversarial_weight * self.adversarial_loss(),
                "orthogonality": self.orthogonality_weight * diff}

    # ------------------------------------------------------------------ contract
    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.shared.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        return params_of(self.private[name], self.heads[name])

    def sharing_summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self._acc[1]:
            self._last_accuracy = self._acc[0] / self._acc[1]
        self._acc = [0, 0]
        if self._last_accuracy is not None:
            out["discriminator_accuracy"] = self._last_accuracy
        if self._last_penalty is not None:
            out["penalty"] = self._last_penalty
        return out
