"""Learning to Branch: a tree of branching points over the trunk's blocks, learned by
Gumbel-softmax selection of each node's parent."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlkit._checks import check_bool, check_choice, check_float, check_int, check_ints
from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._layers import (
    TaskModuleDict,
    TaskParameterDict,
    TrunkArg,
    TrunkFactory,
    block_shapes,
    flat_size,
    named_blocks,
    params_of,
    require_spec,
    reset_parameters,
)
from mtlkit.tasks import Task, check_tasks

Tree = dict[str, Any]  # {"parents": [[parent of each node] per block], "tasks": {task: node of the last block}}


def _weighted_sum(weights: Tensor, tensors: Sequence[Tensor]) -> Tensor:
    """Σ_j weights[j] · tensors[j] (one weight per tensor, tensors of one shape)."""
    stacked = torch.stack(list(tensors))  # (P, N, ...)
    return (weights.to(stacked.dtype).reshape(-1, *([1] * (stacked.dim() - 1))) * stacked).sum(0)


@ARCHITECTURES.register()
class LearningToBranch(MultiTaskModel):
    """A tree of branching points over the trunk's blocks; each node learns its parent.

    Guo, Lee & Ulbricht (2020), "Learning to Branch for Multi-Task Learning", ICML. Block b
    of the trunk (b = 1..B) has ``branches[b]`` nodes, each a fresh copy of the block; the
    nodes of block 1 read the input (the root), every node of block b > 1 selects one parent
    among the nodes of block b − 1, and every task's head selects one node of block B. A
    choice of one parent per node is a tree: tasks that reach the same node share every block
    up to it, and they branch where their paths part. Default ``branches``: one node at the
    first block, K (the number of tasks) at each later one, so the search space runs from
    hard sharing of the whole trunk to one column per task from block 2 on.

    Search (phase 1). Node i's choice of parent is a categorical distribution with learned
    logits θ_i; in training every forward pass draws a Gumbel-softmax sample ``d_i``
    (temperature τ, one sample per node and pass, shared by the batch) and the node reads
    ``Σ_j d_ij y_j``, the parents' outputs weighted by the sample, so the tree and the weights
    are trained jointly by the trainer's optimiser. Soft samples by default (every node then
    learns at every step); ``hard_sampling=True`` uses straight-through one-hot samples (each
    node reads one sampled parent; the logits learn through the soft sample). In evaluation,
    each node takes its most probable parent. τ starts at ``temperature`` and is multiplied by
    ``temperature_decay`` every ``decay_every`` training passes (defaults 5, 0.965, 100: the
    schedule of AdaShare's authors, our choice). The logits are stored divided by
    ``tree_lr_scale`` (default 10) so that under Adam their effective step is that many times
    the network's, as architecture parameters usually get a larger learning rate.

    Fixing the tree (phase 2). :meth:`fix_tree` fixes the most probable parent of every node
    (``tree_sampling="argmax"``, as the paper derives its final tree) or a sampled one
    (``"sample"``); :meth:`retrain_config` / :meth:`retrain_model` give the config and a
    fresh network with that tree (``tree`` set): it holds only the nodes on the tasks' paths
    and no logits. ``retrain=True`` asks the runner (:func:`mtlkit.run.run`, so ``mtlkit
    train`` and :func:`mtlkit.fit`) for both phases, as for AdaShare (``fix_policy`` is the
    name the runner calls); the run's model is then the retrained one. A tree is written
    ``{"parents": [[parent of each node] per block], "tasks": {task: node of the last block}}``
    with node indices from 0 (the parents of block 1 are 0, the input); it is part of the
    config, so a saved model is rebuilt with it.

    Parameters. While the tree is searched every node may feed every task, so all nodes and
    the nodes' logits are ``shared_parameters()``; task t's head and its head's parent logits
    are ``task_parameters(t)``. With a fixed tree, a node on the paths of several tasks is
    shared, a node on one task's path is that task's. ``has_representation`` is False.

    ``sharing_summary()``: ``tree`` (the fixed tree, or the most probable one while searching),
    ``task_groups`` (per block, the groups of tasks that share a node), and while searching
    ``parent_probabilities`` (per block from 2 on, per node, over the previous block's nodes),
    ``task_parent_probabilities`` and ``temperature``.

    Args:
        trunk: stock trunk spec or ``nn.Sequential`` (blocks = its top-level children).
        tasks: the task specs.
        input_shape: per-sample input shape.
        branches: nodes per block (one positive integer per block); default ``[1, K, ..., K]``.
        temperature: initial Gumbel-softmax temperature τ (> 0).
        temperature_decay: factor applied to τ every ``decay_every`` steps, in (0, 1].
        decay_every: training passes between temperature decays (>= 1).
        hard_sampling: straight-through one-hot samples in training.
        tree_lr_scale: effective learning-rate multiplier of the logits (> 0).
        head_hidden: hidden widths of each head.
        tree: a fixed tree given up front (phase 2).
        retrain: ask the runner for the second phase (fix the learned tree, retrain a fresh
            network with it); not with ``tree``.
        tree_sampling: how :meth:`fix_tree` fixes the tree by default: ``"argmax"`` or
            ``"sample"``.

    >>> import torch
    >>> from mtlkit import Task
    >>> tasks = [Task("a", "binary"), Task("b", "binary"), Task("c", "regression")]
    >>> m = LearningToBranch({"name": "mlp", "hidden": [8, 8, 8]}, tasks, input_shape=(4,))
    >>> m.branches, tuple(m(torch.randn(2, 4))["a"].shape)
    ([1, 3, 3], (2,))
    >>> fixed = LearningToBranch({"name": "mlp", "hidden": [8, 8, 8]}, tasks, input_shape=(4,),
    ...                          tree={"parents": [[0], [0, 0], [0, 1]], "tasks": {"a": 0, "b": 0, "c": 1}})
    >>> fixed.sharing_summary()["task_groups"]
    [[['a', 'b', 'c']], [['a', 'b'], ['c']], [['a', 'b'], ['c']]]
    """

    paper = "Guo, Lee & Ulbricht 2020, Learning to Branch for Multi-Task Learning"
    has_representation = False
    # buffers (registered in __init__)
    step: Tensor
    tree_fixed: Tensor
    fixed_parents: Tensor
    fixed_leaves: Tensor

    def __init__(self, trunk: TrunkArg, tasks: Sequence[Task], *, input_shape: Sequence[int],
                 branches: Sequence[int] | None = None, temperature: float = 5.0,
                 temperature_decay: float = 0.965, decay_every: int = 100, hard_sampling: bool = False,
                 tree_lr_scale: float = 10.0, head_hidden: Sequence[int] = (), tree: Mapping[str, Any] | None = None,
                 retrain: bool = False, tree_sampling: str = "argmax") -> None:
        super().__init__()
        name = "LearningToBranch"
        self.tasks = check_tasks(tasks)
        self.temperature = check_float(name, "temperature", temperature, low=0.0, low_open=True)
        self.temperature_decay = check_float(name, "temperature_decay", temperature_decay, low=0.0, high=1.0,
                                             low_open=True)
        self.decay_every = check_int(name, "decay_every", decay_every, low=1)
        self.hard_sampling = check_bool(name, "hard_sampling", hard_sampling)
        self.tree_lr_scale = check_float(name, "tree_lr_scale", tree_lr_scale, low=0.0, low_open=True)
        hidden = check_ints(name, "head_hidden", head_hidden, low=1, min_length=0)
        self.retrain = check_bool(name, "retrain", retrain)
        self.tree_sampling = check_choice(name, "tree_sampling", tree_sampling, options=("argmax", "sample"))
        if input_shape is None:
            raise ValueError("LearningToBranch needs 'input_shape' (to size the heads).")
        self.input_shape = tuple(int(s) for s in input_shape)
        make = TrunkFactory(trunk, input_shape, name)
        self._proto: list[nn.Module] = [] if isinstance(trunk, dict) else [copy.deepcopy(trunk)]
        first = named_blocks(make(), name)
        self.block_names = [n for n, _ in first]
        nb = len(first)
        k = len(self.tasks)
        if branches is None:
            counts = [1] + [k] * (nb - 1) if tree is None else [len(p) for p in self._tree_parents(tree, nb)]
        else:
            counts = check_ints(name, "branches", branches, low=1)
            if len(counts) != nb:
                raise ValueError(f"The 'branches' parameter of {name} must give one node count per trunk block "
                                 f"{self.block_names}. Got {list(branches)!r}.")
        self.branches: list[int] = counts
        self.tree: Tree | None = None if tree is None else self.check_tree(tree)
        if self.tree is not None and retrain:
            raise ValueError(f"The 'retrain' parameter of {name} needs a tree to learn; with 'tree' given the "
                             f"tree is already fixed. Set retrain to False.")
        copies = [first] + [named_blocks(make(), name) for _ in range(max(counts) - 1)]
        used = self._used_nodes(self.tree) if self.tree is not None else None
        self.nodes = nn.ModuleList([
            nn.ModuleDict({str(i): copies[i][b][1] for i in range(counts[b]) if used is None or (b, i) in used})
            for b in range(nb)])
        shapes = block_shapes([b for _, b in first], input_shape)
        self.width = flat_size(shapes[-1])
        # logits (stored / tree_lr_scale) of each node's parent: only where there is a choice
        search = self.tree is None
        self.parent_logits = nn.ParameterDict({
            str(b): nn.Parameter(torch.zeros(counts[b], counts[b - 1]))
            for b in range(1, nb) if search and counts[b - 1] > 1})
        self.task_logits = TaskParameterDict({
            t.name: nn.Parameter(torch.zeros(counts[-1])) for t in self.tasks if search and counts[-1] > 1})
        self.heads = TaskModuleDict({t.name: make_head(self.width, t, hidden) for t in self.tasks})
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("tree_fixed", torch.zeros((), dtype=torch.bool))
        self.register_buffer("fixed_parents", torch.zeros(nb, max(counts), dtype=torch.long))
        self.register_buffer("fixed_leaves", torch.zeros(k, dtype=torch.long))
        if self.tree is not None:
            self._store_tree(self.tree)
        self.config: dict[str, Any] = {
            "name": "learning_to_branch", "trunk": make.spec, "branches": list(counts),
            "temperature": self.temperature, "temperature_decay": self.temperature_decay,
            "decay_every": self.decay_every, "hard_sampling": self.hard_sampling,
            "tree_lr_scale": self.tree_lr_scale, "head_hidden": hidden, "tree": self.tree,
            "retrain": self.retrain, "tree_sampling": self.tree_sampling}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    **params: Any) -> LearningToBranch:
        return cls(require_spec(trunk, "LearningToBranch"), tasks, input_shape=input_shape, **params)

    @classmethod
    def config_for_tasks(cls, config: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
        out = dict(config)
        tree = out.get("tree")
        if isinstance(tree, Mapping) and isinstance(tree.get("tasks"), Mapping):
            out["tree"] = {**tree, "tasks": {k: v for k, v in tree["tasks"].items() if k in names}}
        return out

    @property
    def policy_sampling(self) -> str:
        """``tree_sampling`` under the name the runner records for two-phase architectures."""
        return self.tree_sampling

    # ------------------------------------------------------------------ trees
    def _tree_parents(self, tree: Mapping[str, Any], nb: int) -> list[Sequence[Any]]:
        where = "The 'tree' parameter of LearningToBranch"
        if not isinstance(tree, Mapping) or set(tree) != {"parents", "tasks"}:
            raise ValueError(f"{where} must be a mapping with the keys 'parents' (the parent of each node, per "
                             f"block) and 'tasks' (the last block's node of each task). Got {tree!r}.")
        parents = tree["parents"]
        if (isinstance(parents, (str, bytes)) or not isinstance(parents, Sequence) or len(parents) != nb
                or any(isinstance(p, (str, bytes)) or not isinstance(p, Sequence) or not p for p in parents)):
            raise ValueError(f"{where} must give 'parents' as one non-empty list per trunk block "
                             f"{self.block_names}. Got {parents!r}.")
        return list(parents)

    def check_tree(self, tree: Mapping[str, Any]) -> Tree:
        """Validate a tree; return it with plain ints, the tasks in task order."""
        where = "The 'tree' parameter of LearningToBranch"
        nb = len(self.block_names)
        parents = self._tree_parents(tree, nb)
        out: list[list[int]] = []
        for b, row in enumerate(parents):
            if len(row) != self.branches[b]:
                raise ValueError(f"{where} gives block {b + 1} ({self.block_names[b]!r}) {len(row)} nodes; "
                                 f"'branches' says {self.branches[b]}.")
            limit = 1 if b == 0 else len(parents[b - 1])
            bad = [p for p in row if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < limit]
            if bad:
                what = "0 (the input)" if b == 0 else f"a node of block {b} in [0, {limit})"
                raise ValueError(f"{where}: every parent in block {b + 1} must be {what}. Got {bad[0]!r} "
                                 f"in {list(row)!r}.")
            out.append([int(p) for p in row])
        leaves = tree["tasks"]
        names = self.task_names
        if not isinstance(leaves, Mapping):
            raise ValueError(f"{where} must map each task to a node of the last block under 'tasks'. "
                             f"Got {leaves!r}.")
        unknown = [t for t in leaves if t not in names]
        if unknown:
            raise ValueError(f"{where} names unknown task(s) {unknown}; the tasks are {names}.")
        missing = [t for t in names if t not in leaves]
        if missing:
            raise ValueError(f"{where} has no node for task(s) {missing}; give every task {names} a node of "
                             f"the last block.")
        n_last = len(out[-1])
        task_nodes: dict[str, int] = {}
        for t in names:
            v = leaves[t]
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n_last:
                raise ValueError(f"{where}: task {t!r} must read a node of the last block in [0, {n_last}). "
                                 f"Got {v!r}.")
            task_nodes[t] = int(v)
        return {"parents": out, "tasks": task_nodes}

    def _paths(self, tree: Tree) -> dict[str, list[int]]:
        """Each task's node at every block (from the first to the last)."""
        paths = {}
        for t, leaf in tree["tasks"].items():
            path = [leaf]
            for b in range(len(tree["parents"]) - 1, 0, -1):
                path.append(tree["parents"][b][path[-1]])
            paths[t] = path[::-1]
        return paths

    def _used_nodes(self, tree: Tree) -> set[tuple[int, int]]:
        return {(b, i) for path in self._paths(tree).values() for b, i in enumerate(path)}

    def _store_tree(self, tree: Tree) -> None:
        table = torch.zeros_like(self.fixed_parents)
        for b, row in enumerate(tree["parents"]):
            table[b, : len(row)] = torch.tensor(row, dtype=table.dtype)
        self.fixed_parents.copy_(table)
        self.fixed_leaves.copy_(torch.tensor([tree["tasks"][t.name] for t in self.tasks],
                                             dtype=self.fixed_leaves.dtype))
        self.tree_fixed.fill_(True)

    def is_fixed(self) -> bool:
        return bool(self.tree_fixed)

    def current_temperature(self) -> float:
        return self.temperature * self.temperature_decay ** (int(self.step) // self.decay_every)

    def parent_probabilities(self, block: int) -> Tensor:
        """(nodes of ``block``, nodes of ``block − 1``) parent probabilities (0-based ``block``)."""
        if block == 0 or self.branches[block - 1] == 1:
            return torch.ones(self.branches[block], 1)
        return torch.softmax(self.parent_logits[str(block)] * self.tree_lr_scale, dim=-1)

    def task_parent_probabilities(self, name: str) -> Tensor:
        """Probabilities of task ``name``'s head over the last block's nodes."""
        if self.branches[-1] == 1:
            return torch.ones(1)
        return torch.softmax(self.task_logits[name] * self.tree_lr_scale, dim=-1)

    def _choose(self, probs: Tensor, sample: bool, generator: torch.Generator | None) -> list[int]:
        if probs.shape[-1] == 1:
            return [0] * (probs.shape[0] if probs.dim() == 2 else 1)
        p = probs.detach().cpu().reshape(-1, probs.shape[-1])
        picked = torch.multinomial(p, 1, generator=generator)[:, 0] if sample else p.argmax(-1)
        return [int(v) for v in picked.tolist()]

    def _tree_from_probabilities(self, sample: bool, generator: torch.Generator | None) -> Tree:
        if self.tree is not None or self.is_fixed():
            return self.current_tree()
        with torch.no_grad():
            parents = [self._choose(self.parent_probabilities(b), sample, generator) for b in range(len(self.branches))]
            tasks = {t.name: self._choose(self.task_parent_probabilities(t.name), sample, generator)[0]
                     for t in self.tasks}
        return {"parents": parents, "tasks": tasks}

    def most_probable_tree(self) -> Tree:
        """Every node's most probable parent (the tree the model evaluates while searching)."""
        return self._tree_from_probabilities(False, None)

    def sample_tree(self, generator: torch.Generator | None = None) -> Tree:
        """A tree drawn from the learned distributions (each node's parent independently)."""
        return self._tree_from_probabilities(True, generator)

    def current_tree(self) -> Tree:
        """The fixed tree (an error while the tree is searched)."""
        if not self.is_fixed():
            raise ValueError("The LearningToBranch tree is not fixed yet; call fix_tree() first.")
        table = self.fixed_parents.cpu().tolist()
        leaves = self.fixed_leaves.cpu().tolist()
        return {"parents": [table[b][:n] for b, n in enumerate(self.branches)],
                "tasks": {t.name: int(leaves[i]) for i, t in enumerate(self.tasks)}}

    @torch.no_grad()
    def fix_tree(self, *, sample: bool | None = None, generator: torch.Generator | None = None) -> Tree:
        """Fix the tree: every node's most probable parent (``sample=False``) or a sampled one
        (``sample=True``); default from ``tree_sampling``. Returns the tree."""
        if sample is None:
            sample = self.tree_sampling == "sample"
        tree = self._tree_from_probabilities(sample, generator)
        self._store_tree(tree)
        return tree

    def fix_policy(self, *, sample: bool | None = None, generator: torch.Generator | None = None) -> Tree:
        """:meth:`fix_tree` under the name the runner calls for two-phase architectures."""
        return self.fix_tree(sample=sample, generator=generator)

    def describe_policy(self, tree: Mapping[str, Any]) -> str:
        """One line for the runner's log: the learned tree, as the groups of tasks that share a
        node at each block, and the tree itself.

        >>> from mtlkit import Task
        >>> m = LearningToBranch({"name": "mlp", "hidden": [8, 8]}, [Task("a", "binary"), Task("b", "binary")],
        ...                      input_shape=(4,))
        >>> print(m.describe_policy({"parents": [[0], [0, 0]], "tasks": {"a": 0, "b": 1}}))
        Learned tree (tasks sharing a node): block1 [a, b]; block2 [a] [b] (tree: parents [[0], [0, 0]], tasks {'a': 0, 'b': 1})
        """
        checked = self.check_tree(tree)
        groups = self.task_groups(checked)
        parts = [f"{self.block_names[b]} " + " ".join("[" + ", ".join(g) + "]" for g in blocks)
                 for b, blocks in enumerate(groups)]
        return (f"Learned tree (tasks sharing a node): {'; '.join(parts)} "
                f"(tree: parents {checked['parents']}, tasks {checked['tasks']})")

    def retrain_config(self, tree: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The config of the phase-2 model: this model's parameters with ``tree`` fixed
        (default: the fixed tree) and ``retrain`` off."""
        chosen = self.check_tree(tree) if tree is not None else self.current_tree()
        return {**self.config, "tree": chosen, "retrain": False}

    def retrain_model(self, tree: Mapping[str, Any] | None = None) -> LearningToBranch:
        """A fresh network (new parameters from torch's global generator) with ``tree`` fixed,
        built from :meth:`retrain_config`. A user-defined trunk is deep-copied and
        re-initialised with each sub-module's ``reset_parameters``."""
        cfg = self.retrain_config(tree)
        params = {k: v for k, v in cfg.items() if k not in ("name", "trunk")}
        if cfg["trunk"] is not None:
            return type(self).from_config(self.tasks, self.input_shape, trunk=cfg["trunk"], **params)
        trunk = reset_parameters(copy.deepcopy(self._proto[0]))
        stale = [n for n, m in trunk.named_modules() if not callable(getattr(m, "reset_parameters", None))
                 and any(True for _ in m.parameters(recurse=False))]
        if stale:
            warnings.warn(f"LearningToBranch.retrain_model: trunk module(s) {stale} have no reset_parameters(); "
                          f"they keep their initial weights.", RuntimeWarning, stacklevel=2)
        return type(self)(trunk, self.tasks, input_shape=self.input_shape, **params)

    # ------------------------------------------------------------------ forward
    def node(self, block: int, index: int) -> nn.Module:
        """The module of node ``index`` of ``block`` (both 0-based)."""
        return cast(nn.ModuleDict, self.nodes[block])[str(index)]

    def _gumbel(self, logits: Tensor, tau: float) -> Tensor:
        return F.gumbel_softmax(logits * self.tree_lr_scale, tau=tau, hard=self.hard_sampling, dim=-1)

    def _search_forward(self, x: Tensor) -> dict[str, Tensor]:
        tau = self.current_temperature()
        prev = [x]
        for b in range(len(self.branches)):
            weights = self._gumbel(self.parent_logits[str(b)], tau) if str(b) in self.parent_logits else None
            cur = []
            for i in range(self.branches[b]):
                inp = prev[0] if weights is None else _weighted_sum(weights[i], prev)
                cur.append(self.node(b, i)(inp))
            prev = cur
        out = {}
        for t in self.tasks:
            h = _weighted_sum(self._gumbel(self.task_logits[t.name], tau), prev) if t.name in self.task_logits \
                else prev[0]
            out[t.name] = t.shape_output(self.heads[t.name](h.reshape(h.shape[0], -1)))
        return out

    def _tree_forward(self, x: Tensor, tree: Tree) -> dict[str, Tensor]:
        cache: dict[tuple[int, int], Tensor] = {}
        paths = self._paths(tree)
        out = {}
        for t in self.tasks:
            path = paths[t.name]
            h = x
            for b, i in enumerate(path):
                if (b, i) not in cache:
                    cache[(b, i)] = self.node(b, i)(h)
                h = cache[(b, i)]
            out[t.name] = t.shape_output(self.heads[t.name](h.reshape(h.shape[0], -1)))
        return out

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.tree is None and not self.is_fixed() and self.training and torch.is_grad_enabled():
            self.step += 1
            return self._search_forward(x)
        return self._tree_forward(x, self.current_tree() if self.is_fixed() else self.most_probable_tree())

    # ------------------------------------------------------------------ contract
    def _fixed_users(self) -> dict[tuple[int, int], set[str]] | None:
        """Tasks on each node's path once the tree is fixed (None while searching)."""
        if not self.is_fixed():
            return None
        users: dict[tuple[int, int], set[str]] = {}
        for t, path in self._paths(self.current_tree()).items():
            for b, i in enumerate(path):
                users.setdefault((b, i), set()).add(t)
        return users

    def _nodes_where(self, keep: Any) -> list[nn.Module]:
        users = self._fixed_users()
        assert users is not None
        return [self.node(b, i) for (b, i), who in sorted(users.items()) if keep(who)]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        if not self.is_fixed():
            yield from params_of(self.nodes)
            yield from self.parent_logits.values()
            return
        yield from params_of(*self._nodes_where(lambda who: len(who) > 1))

    def last_shared_parameters(self) -> list[nn.Parameter]:
        users = self._fixed_users()
        if users is None:
            return list(params_of(self.nodes[-1])) or super().last_shared_parameters()
        shared = [bi for bi, who in users.items() if len(who) > 1]
        if not shared:
            return []
        last = max(b for b, _ in shared)
        return list(params_of(*[self.node(b, i) for b, i in shared if b == last]))

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        if not self.is_fixed():
            if name in self.task_logits:
                yield self.task_logits[name]
        else:
            yield from params_of(*self._nodes_where(lambda who: who == {name}))
        yield from self.heads[name].parameters()

    def task_groups(self, tree: Tree | None = None) -> list[list[list[str]]]:
        """Per block, the groups of tasks that share a node (by node index)."""
        tree = tree if tree is not None else (self.current_tree() if self.is_fixed() else self.most_probable_tree())
        paths = self._paths(tree)
        groups: list[list[list[str]]] = []
        for b in range(len(self.branches)):
            by_node: dict[int, list[str]] = {}
            for t in self.task_names:
                by_node.setdefault(paths[t][b], []).append(t)
            groups.append([by_node[i] for i in sorted(by_node)])
        return groups

    def sharing_summary(self) -> dict[str, Any]:
        fixed = self.is_fixed()
        tree = self.current_tree() if fixed else self.most_probable_tree()
        out: dict[str, Any] = {"tree": tree, "tree_fixed": fixed, "tree_blocks": list(self.block_names),
                               "task_groups": self.task_groups(tree)}
        if fixed:
            return out
        with torch.no_grad():
            out["parent_probabilities"] = [
                [[round(float(v), 6) for v in row] for row in self.parent_probabilities(b).tolist()]
                for b in range(1, len(self.branches))]
            out["task_parent_probabilities"] = {
                t.name: [round(float(v), 6) for v in self.task_parent_probabilities(t.name).tolist()]
                for t in self.tasks}
        out["temperature"] = self.current_temperature()
        return out
