"""Cross-stitch networks: task columns mixed by learned K×K units after chosen blocks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from mtlkit._checks import check_float
from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._layers import (
    TaskModuleDict,
    TaskParameterDict,
    TrunkArg,
    TrunkFactory,
    block_index,
    named_blocks,
    params_of,
    require_spec,
    trunk_width,
)
from mtlkit.tasks import Task, check_tasks


def stitch_init(num_tasks: int, share: float) -> Tensor:
    """The K×K unit of Misra et al.: ``1 − share`` on the diagonal, ``share / (K − 1)`` off it
    (rows sum to 1; ``share = 0`` is the identity, i.e. independent columns)."""
    if num_tasks == 1:
        return torch.ones(1, 1)
    a = torch.full((num_tasks, num_tasks), share / (num_tasks - 1))
    a.fill_diagonal_(1.0 - share)
    return a


@ARCHITECTURES.register()
class CrossStitch(MultiTaskModel):
    """One column per task; after chosen blocks a cross-stitch unit mixes the columns.

    Misra, Shrivastava, Gupta & Hebert (2016), "Cross-stitch Networks for Multi-task
    Learning", CVPR. After block ``b`` the activations ``h_1 .. h_K`` of the K columns are
    replaced by ``h̃_i = Σ_j α^b_ij h_j`` with a learned K×K matrix ``α^b`` per stitched block
    (one scalar per task pair, as in the paper's main variant; not per channel). The units
    start near the identity: ``1 − share`` on the diagonal and ``share / (K − 1)`` off it (the
    paper's (α_S, α_D) = (0.9, 0.1) is ``share=0.1`` for two tasks). The paper trains the
    units with a 10²–10³ times larger learning rate; here ``unit_scale`` stores α / unit_scale,
    which under Adam makes the units' effective step ``unit_scale`` times larger.

    Which parameters are shared: a task's loss reaches every column up to the last stitched
    block (through the units), so those blocks and the units are ``shared_parameters()``;
    blocks after the last stitch and the head of task t are ``task_parameters(t)``.
    ``column_parameters(t)`` gives the whole column of task t. ``has_representation`` is
    False: each head reads only its own column's features, so there is no single tensor that
    every task reads; use ``level="parameters"`` for gradient methods.

    Generation tasks (:mod:`mtlkit.architectures.text_decoder`): each column is restricted to
    its task (``restrict_to``: a generation task's column has its own decoder copy, the others
    none), and the unit after the text trunk mixes the columns' *encoder* outputs (the pooled
    representation and the per-token states the decoders attend to) before each column's
    decoder reads them: the text trunk is one block, so this is the one place where a mix can
    reach a decoder (our choice; the paper stitches CNN layers). The units and the encoders are
    then ``shared_parameters()``, each decoder copy is its task's (``task_parameters``).

    The report shows the learned units: ``sharing_summary()["cross_stitch"]`` is the list of
    K×K matrices (rows: receiving task, columns: source task, in task order).

    Args:
        trunk: stock trunk spec or ``nn.Sequential`` (blocks = its top-level children); each
            column is a fresh copy.
        tasks: the task specs.
        input_shape: per-sample input shape.
        stitch_after: blocks (indices or names) followed by a unit; default every block, as in
            the paper (after every pooling and fully connected layer).
        share: initial off-diagonal mass α of each unit, in [0, 1).
        unit_scale: the units' effective learning-rate multiplier (> 0).
        head_hidden: hidden widths of each head.

    >>> import torch
    >>> from mtlkit import Task
    >>> m = CrossStitch({"name": "mlp", "hidden": [8, 8]}, [Task("a", "binary"), Task("b", "binary")],
    ...                 input_shape=(4,), share=0.1)
    >>> m.sharing_summary()["cross_stitch"][0]
    [[0.9, 0.1], [0.1, 0.9]]
    >>> tuple(m(torch.zeros(2, 4))["a"].shape)
    (2,)
    """

    paper = "Misra et al. 2016, Cross-stitch Networks for Multi-task Learning"
    has_representation = False

    def __init__(self, trunk: TrunkArg, tasks: Sequence[Task], *, input_shape: Sequence[int] | None = None,
                 stitch_after: Sequence[int | str] | None = None, share: float = 0.1,
                 unit_scale: float = 1.0, head_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        self.share = check_float("CrossStitch", "share", share, low=0.0, high=1.0, high_open=True)
        self.unit_scale = check_float("CrossStitch", "unit_scale", unit_scale, low=0.0, low_open=True)
        make = TrunkFactory(trunk, input_shape, "CrossStitch")
        cols = [make() for _ in self.tasks]
        first_blocks = named_blocks(cols[0], "CrossStitch")
        self.block_names = [n for n, _ in first_blocks]
        self.width = trunk_width(cols[0], input_shape)
        #: text trunks with generation decoders: stitched between encoder and decoder (docstring)
        self.seq2seq = all(callable(getattr(c, "restrict_to", None)) for c in cols)
        if self.seq2seq:
            for t, c in zip(self.tasks, cols, strict=True):
                getattr(c, "restrict_to")([t.name])  # noqa: B009 - Seq2SeqTrunk's, not typed on nn.Module
        self.columns = TaskModuleDict()
        for t, c in zip(self.tasks, cols):
            self.columns[t.name] = nn.ModuleList([b for _, b in named_blocks(c, "CrossStitch")])
        if stitch_after is None:
            idx = list(range(len(self.block_names)))
        else:
            if isinstance(stitch_after, (str, int)):
                stitch_after = [stitch_after]
            idx = sorted({block_index(k, self.block_names, "stitch_after", "CrossStitch") for k in stitch_after})
        self.stitch_idx = idx
        k = len(self.tasks)
        self.units = TaskParameterDict({
            self.block_names[i]: nn.Parameter(stitch_init(k, self.share) / self.unit_scale) for i in idx})
        self.heads = TaskModuleDict({t.name: self._head(t, c, head_hidden)
                                     for t, c in zip(self.tasks, cols, strict=True)})
        self.config: dict[str, Any] = {
            "name": "cross_stitch", "trunk": make.spec, "share": self.share, "unit_scale": self.unit_scale,
            "stitch_after": None if stitch_after is None else list(stitch_after),
            "head_hidden": list(head_hidden)}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    **params: Any) -> CrossStitch:
        return cls(require_spec(trunk, "CrossStitch"), tasks, input_shape=input_shape, **params)

    def unit(self, block: int | str) -> Tensor:
        """The effective K×K matrix α of the unit after ``block``."""
        name = block if isinstance(block, str) else self.block_names[block]
        return self.units[name] * self.unit_scale

    def _head(self, task: Task, column: nn.Module, head_hidden: Sequence[int]) -> nn.Sequential:
        layout = getattr(column, "head_layout", None) if self.seq2seq else None
        width = int(getattr(column, "out_features")) if layout is not None else self.width  # noqa: B009
        return make_head(width, task, head_hidden, layout=layout)

    def _seq2seq_forward(self, x: Tensor) -> dict[str, Tensor]:
        """Encode in every column, mix the encoder outputs (pooled and per-token) with the unit
        after the text trunk, then each column decodes its own task's sequence."""
        cols: list[Any] = [self._column(t.name)[0] for t in self.tasks]
        parts = [c.encode(x) for c in cols]
        reps, mems = [p[0] for p in parts], [p[1] for p in parts]
        name = self.block_names[0]
        if name in self.units:
            unit = self.unit(name)
            reps = list(torch.einsum("ij,j...->i...", unit.to(reps[0].dtype), torch.stack(reps)).unbind(0))
            mems = list(torch.einsum("ij,j...->i...", unit.to(mems[0].dtype), torch.stack(mems)).unbind(0))
        out = {}
        for t, c, r, m, p in zip(self.tasks, cols, reps, mems, parts, strict=True):
            out[t.name] = t.shape_output(self.heads[t.name](c.decode_blocks(x, r, m, p[2])))
        return out

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.seq2seq:
            return self._seq2seq_forward(x)
        hs = [x for _ in self.tasks]
        for b, name in enumerate(self.block_names):
            hs = [self._column(t.name)[b](h) for t, h in zip(self.tasks, hs)]
            if name in self.units:
                stacked = torch.stack(hs)  # (K, N, ...)
                mixed = torch.einsum("ij,j...->i...", self.unit(name).to(stacked.dtype), stacked)
                hs = list(mixed.unbind(0))
        return {t.name: t.shape_output(self.heads[t.name](h.reshape(h.shape[0], -1)))
                for t, h in zip(self.tasks, hs)}

    def _column(self, name: str) -> nn.ModuleList:
        return cast(nn.ModuleList, self.columns[name])

    def _last_stitch(self) -> int:
        return self.stitch_idx[-1] if self.stitch_idx else -1

    def _encoders(self) -> list[nn.Module]:
        return [cast(nn.Module, getattr(self._column(t.name)[0], "encoder")) for t in self.tasks]  # noqa: B009

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        if self.seq2seq:
            yield from self.units.values()
            yield from (params_of(*self._encoders()) if self.stitch_idx else ())
            return
        last = self._last_stitch()
        mods = [self._column(t.name)[b] for t in self.tasks for b in range(last + 1)]
        yield from self.units.values()
        yield from params_of(*mods)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        last = self._last_stitch()
        if last < 0:
            return []
        if self.seq2seq:
            return list(params_of(*self._encoders()))
        return list(params_of(*[self._column(t.name)[last] for t in self.tasks]))

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        if self.seq2seq:  # the task's decoder copy; its encoder too when nothing is stitched
            col: Any = self._column(name)[0]
            return params_of(None if self.stitch_idx else col.encoder, col.decoder, self.heads[name])
        last = self._last_stitch()
        mods = [self._column(name)[b] for b in range(last + 1, len(self.block_names))]
        return params_of(*mods, self.heads[name])

    def column_parameters(self, name: str) -> Iterator[nn.Parameter]:
        """Every parameter of task ``name``'s column and head (some also learn from others)."""
        self._check_task(name)
        return params_of(self.columns[name], self.heads[name])

    def sharing_summary(self) -> dict[str, Any]:
        with torch.no_grad():
            mats = [[[round(float(v), 6) for v in row] for row in self.unit(self.block_names[i]).tolist()]
                    for i in self.stitch_idx]
        return {"cross_stitch": mats, "cross_stitch_blocks": [self.block_names[i] for i in self.stitch_idx]}
