"""ESMM: the entire-space multi-task model of a click -> conversion funnel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._layers import TrunkArg
from mtlkit.architectures.shared_bottom import SharedBottom
from mtlkit.tasks import Task, check_funnels


def funnel_order(tasks: Sequence[Task]) -> list[Task]:
    """The tasks with every funnel parent before its children (otherwise in the given order)."""
    parents = check_funnels(tasks)
    by_name = {t.name: t for t in tasks}
    done: list[Task] = []
    seen: set[str] = set()

    def visit(t: Task) -> None:
        if t.name in seen:
            return
        if t.name in parents:
            visit(by_name[parents[t.name]])
        seen.add(t.name)
        done.append(t)

    for t in tasks:
        visit(t)
    return done


def logit_from_log_prob(log_p: Tensor) -> Tensor:
    """``log p - log(1 - p)`` from ``log p`` (p in (0, 1)), computed stably."""
    log_p = log_p.clamp(max=-1e-7)
    log_1mp = torch.where(log_p > -0.6931471805599453, torch.log(-torch.expm1(log_p)),
                          torch.log1p(-torch.exp(log_p)))
    return log_p - log_1mp


@ARCHITECTURES.register()
class ESMM(SharedBottom):
    """Entire Space Multi-task Model: pCTCVR = pCTR × pCVR over all impressions.

    Ma, Zhao, Huang, Wang, Hu, Zhu & Gai (2018), "Entire Space Multi-Task Model: An Effective
    Approach for Estimating Post-Click Conversion Rate", SIGIR. The ID embeddings (the trunk's
    ``input``) and the bottom are shared; each task has a tower. For a funnel task (declared
    with ``Task(..., given=parent)``), its tower gives the *conditional* probability
    (pCVR = p(conversion | click, x)) and the model outputs the logit of the entire-space
    probability ``p_parent × pCVR`` (pCTCVR), so its binary loss on the entire-space labels
    (1 = clicked and converted, over every impression) is the paper's CTCVR loss, and the
    parent's (pCTR) loss is the CTR loss: ``L = L_CTR + L_CTCVR``. The CVR tower is never
    trained on the clicked impressions alone: the CTCVR loss of every impression, clicked or
    not, reaches it (no sample-selection bias). :meth:`conditional` returns pCVR. Funnels may
    be longer (click -> cart -> buy: products along the chain); tasks outside any funnel are
    plain shared-bottom towers.

    ``task_parameters(child)`` is the child's (CVR) tower; the child's loss also reaches the
    parent's tower, by design of the model.

    >>> import torch
    >>> from mtlkit import Task
    >>> tasks = [Task("click", "binary"), Task("buy", "binary", given="click")]
    >>> m = ESMM({"name": "mlp", "hidden": [8]}, tasks, input_shape=(3,))
    >>> x = torch.randn(4, 3)
    >>> out, cvr = m(x), m.conditional(x)["buy"]
    >>> torch.allclose(torch.sigmoid(out["buy"]), torch.sigmoid(out["click"]) * cvr, atol=1e-6)
    True
    """

    paper = ("Ma et al. 2018, Entire Space Multi-Task Model: An Effective Approach for Estimating "
             "Post-Click Conversion Rate")
    name = "esmm"

    def __init__(self, trunk: TrunkArg, tasks: Sequence[Task], *, input_shape: Sequence[int] | None = None,
                 tower_hidden: Sequence[int] = ()) -> None:
        super().__init__(trunk, tasks, input_shape=input_shape, tower_hidden=tower_hidden)
        self.parents = check_funnels(self.tasks)
        self.order = funnel_order(self.tasks)

    def _towers(self, rep: Tensor) -> dict[str, Tensor]:
        return {t.name: t.shape_output(self.towers[t.name](rep)) for t in self.tasks}

    def decode(self, rep: Tensor) -> dict[str, Tensor]:
        raw = self._towers(rep)
        log_p: dict[str, Tensor] = {}
        out: dict[str, Tensor] = {}
        for t in self.order:
            parent = self.parents.get(t.name)
            if parent is None:
                out[t.name] = raw[t.name]
                if t.kind == "binary":
                    log_p[t.name] = F.logsigmoid(raw[t.name])
                continue
            log_p[t.name] = log_p[parent] + F.logsigmoid(raw[t.name])
            out[t.name] = logit_from_log_prob(log_p[t.name])
        return {t.name: out[t.name] for t in self.tasks}

    def conditional(self, x: Tensor) -> dict[str, Tensor]:
        """The conditional probabilities of the funnel tasks (pCVR = p(task | parent, x))."""
        raw = self._towers(self.encode(x))
        return {c: torch.sigmoid(raw[c]) for c in self.parents}

    @classmethod
    def single_task_config(cls, params: dict[str, Any], task: Task) -> dict[str, Any] | None:
        return None
