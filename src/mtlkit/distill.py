"""Single-task teachers -> one multi-task student (knowledge distillation).

Per task, the student minimises a mix of the usual loss on the labels and a term that pulls
it towards its teacher's outputs (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in
a Neural Network"; for multi-task students, Clark et al. 2019, "BAM! Born-Again Multi-Task
Networks for Natural Language Understanding", ACL):

* classification (binary, multiclass, multilabel):
  ``α · L_hard + (1 − α) · T² · KL(softmax(teacher/T) ‖ softmax(student/T))``; binary and
  multilabel outputs use the two-class form with sigmoid probabilities, per label. The T²
  factor keeps the soft term's gradient scale independent of T (Hinton et al.);
* regression: ``α · L_label + (1 − α) · MSE(student, teacher)``;
* teacher annealing (BAM!): α rises linearly from 0 (pure teacher) to 1 (pure labels)
  over the training budget (epochs × batches per epoch).

Teacher outputs are computed once on the training inputs and travel with the batches; the
soft term uses every sample of a batch, labelled or not (the teacher has an output for each),
the hard term only the labelled ones. Teachers are any ``nn.Module`` (returning
``{task: output}`` or a tensor) fed the student's (preprocessed) inputs, or finished run
folders of single- or multi-task models (their own standardisation is applied).

Ensembles of teachers (Liu, He, Chen & Gao 2019, "Improving Multi-Task Deep Neural Networks via
Knowledge Distillation for Natural Language Understanding", arXiv:1904.09482): a task may have
several teachers; its soft target is the average of the members' class probabilities, each
taken at the distillation temperature T (:func:`ensemble_outputs`). MT-DNN averages softmax
outputs at T = 1 (its soft targets are the ensemble's probabilities); with T ≠ 1 we average the
temperature-scaled probabilities, the form in which a single teacher's soft target is used
here (Hinton et al.), so that one teacher and an "ensemble" of one agree. Binary and
multilabel tasks average the sigmoid probabilities per label; regression averages the values.
The ensemble's own predictions (its reported test metrics) average the probabilities at T = 1.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlkit import _batch
from mtlkit.data._dataset import MultiTaskData
from mtlkit.tasks import Task
from mtlkit.training.callbacks import Callback
from mtlkit.training.trainer import Trainer

if TYPE_CHECKING:
    from mtlkit.config import RunConfig
    from mtlkit.run import PreparedData

TEACHER_PREFIX = "__teacher__:"
DISTILL_JSON = "distill.json"


def teacher_key(task: str) -> str:
    """The key under which a task's teacher outputs travel in a batch."""
    return TEACHER_PREFIX + task


def _check_alpha_temperature(alpha: float, temperature: float, where: str) -> None:
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"The 'alpha' parameter of {where} must be a float in [0, 1]. Got {alpha!r}.")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or \
            not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"The 'temperature' parameter of {where} must be a positive float. Got {temperature!r}.")


# ---------------------------------------------------------------------------- losses
def _binary_kl(teacher_logits: Tensor, student_logits: Tensor) -> Tensor:
    """Elementwise KL(Bernoulli(σ(t)) ‖ Bernoulli(σ(s))), computed from log-sigmoids."""
    p = torch.sigmoid(teacher_logits)
    lp, lq = F.logsigmoid(teacher_logits), F.logsigmoid(-teacher_logits)
    sp, sq = F.logsigmoid(student_logits), F.logsigmoid(-student_logits)
    return p * (lp - sp) + (1 - p) * (lq - sq)


def soft_target_loss(task: Task, student: Tensor, teacher: Tensor, *, temperature: float = 1.0,
                     mask: Tensor | None = None) -> Tensor:
    """The distillation term of one task (without α): ``T² · KL(teacher ‖ student)`` at
    temperature T, averaged over samples (multilabel: over sample-label entries), or, for
    regression, the MSE between student and teacher outputs. ``mask`` marks the samples
    (entries) that have a teacher output (default: all).

    >>> t = Task("c", "multiclass", num_classes=2)
    >>> s, te = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    >>> float(soft_target_loss(t, s, te, temperature=3.0))  # equal distributions
    0.0
    """
    _check_alpha_temperature(0.0, temperature, "soft_target_loss")
    teacher = teacher.detach().to(student.dtype)
    kind = task.task_kind
    if kind.has_classes and not kind.dense:  # one class per sample: softmax
        log_p = F.log_softmax(teacher / temperature, dim=-1)
        log_q = F.log_softmax(student / temperature, dim=-1)
        per = (log_p.exp() * (log_p - log_q)).sum(-1) * temperature**2
    elif kind.is_classification and not kind.dense:  # independent sigmoids (binary, multilabel)
        per = _binary_kl(teacher / temperature, student / temperature) * temperature**2
    else:
        per = (student - teacher) ** 2
    if mask is None:
        return per.mean()
    m = mask.bool()
    if m.dim() == 1 and per.dim() == 2:  # one flag per sample for every label / output
        m = m[:, None].expand_as(per)
    per = torch.where(m, per, torch.zeros_like(per))
    return per.sum() / m.sum().clamp_min(1).to(per.dtype)


def distillation_loss(task: Task, student: Tensor, teacher: Tensor, target: Tensor, mask: Tensor, *,
                      alpha: float = 0.5, temperature: float = 2.0, teacher_mask: Tensor | None = None
                      ) -> Tensor:
    """``α · task.compute_loss(student, target, mask) + (1 − α) · soft_target_loss(...)``.

    For classification the soft term is ``T² · KL(softmax(teacher/T) ‖ softmax(student/T))``
    (sigmoid two-class form for binary/multilabel); for regression ``MSE(student, teacher)``
    (no temperature).

    >>> t = Task("y", "binary")
    >>> s, te, y, m = torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([True])
    >>> round(float(distillation_loss(t, s, te, y, m, alpha=0.5, temperature=2.0)), 6)  # 0.5·log 2
    0.346574
    """
    _check_alpha_temperature(alpha, temperature, "distillation_loss")
    hard = task.compute_loss(student, target, mask)
    if alpha >= 1.0:
        return hard
    soft = soft_target_loss(task, student, teacher, temperature=temperature, mask=teacher_mask)
    return alpha * hard + (1.0 - alpha) * soft


def ensemble_outputs(task: Task, outputs: Sequence[Tensor], *, temperature: float = 1.0) -> Tensor:
    """The members' raw outputs (logits / values) of ``task`` -> one raw output whose soft
    target at ``temperature`` is the average of the members' (MT-DNN's ensemble soft target):

    * one class per sample: ``T · log(mean_i softmax(z_i / T))``, so that
      ``softmax(result / T) = mean_i softmax(z_i / T)``;
    * binary / multilabel: ``T · logit(mean_i σ(z_i / T))`` per label;
    * regression (and any other kind): the mean of the values.

    Computed in log space (log-sum-exp), so confident members do not underflow.

    >>> t = Task("c", "multiclass", num_classes=3)
    >>> a, b = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    >>> ens = ensemble_outputs(t, [a, b], temperature=2.0)
    >>> avg = (torch.softmax(a / 2, -1) + torch.softmax(b / 2, -1)) / 2
    >>> bool(torch.allclose(torch.softmax(ens / 2, -1), avg))
    True
    """
    _check_alpha_temperature(0.0, temperature, "ensemble_outputs")
    if not outputs:
        raise ValueError(f"The ensemble of task {task.name!r} has no member outputs.")
    z = torch.stack([torch.as_tensor(o).double() for o in outputs])  # (M, N, ...)
    log_m = math.log(z.shape[0])
    kind = task.task_kind
    if kind.has_classes and not kind.dense:
        log_p = torch.logsumexp(F.log_softmax(z / temperature, dim=-1), dim=0) - log_m
        return (temperature * log_p).float()
    if kind.is_classification and not kind.dense:
        log_p = torch.logsumexp(F.logsigmoid(z / temperature), dim=0) - log_m
        log_q = torch.logsumexp(F.logsigmoid(-z / temperature), dim=0) - log_m
        return (temperature * (log_p - log_q)).float()
    return z.mean(0).float()


class TeacherEnsemble(nn.Module):
    """Several teachers of one task, combined by :func:`ensemble_outputs`.

    ``forward(x)`` gives ``{task: output}`` averaged at T = 1 (the ensemble's prediction);
    :meth:`outputs` at another temperature (the soft target of distillation at T). Members are
    any modules returning ``{task: output}`` (single- or multi-task models) or a tensor."""

    def __init__(self, task: Task, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError(f"The teacher ensemble of task {task.name!r} needs at least one member.")
        self.task = task
        self.members = nn.ModuleList(members)

    def outputs(self, x: Any, temperature: float = 1.0) -> Tensor:
        outs = [_task_output(m(x), self.task.name) for m in self.members]
        return ensemble_outputs(self.task, outs, temperature=temperature)

    def forward(self, x: Any) -> dict[str, Tensor]:
        return {self.task.name: self.outputs(x, 1.0)}


def _task_output(o: Any, name: str) -> Tensor:
    if isinstance(o, Mapping):
        if name not in o:
            raise KeyError(f"The teacher of task {name!r} returned outputs for {sorted(o)}, not for {name!r}.")
        o = o[name]
    return torch.as_tensor(o).detach().float()


# ---------------------------------------------------------------------------- trainer
class DistillationTrainer(Trainer):
    """A :class:`~mtlkit.training.Trainer` whose per-task losses are distillation losses.

    Args:
        teacher_outputs: ``{task: tensor}`` teacher outputs (logits / values) for every
            sample of the training data later passed to :meth:`fit`, in the same order.
            Tasks without an entry train on their labels only.
        alpha: weight of the hard (label) loss; ``1 − α`` goes to the teacher term.
        temperature: softmax/sigmoid temperature T of the teacher term (classification).
        anneal: teacher annealing (Clark et al. 2019): α = step / total steps, rising
            from 0 to 1 over the budget; ``alpha`` is then ignored.
        All other arguments are :class:`Trainer`'s. Data samplers are not supported
        (teacher outputs follow the default shuffled passes).

    Hinton et al. (2015), "Distilling the Knowledge in a Neural Network"; Clark et al.
    (2019), "BAM! Born-Again Multi-Task Networks for Natural Language Understanding".

    >>> from mtlkit import HardSharing, Task, from_arrays
    >>> from mtlkit.architectures.backbones import mlp
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(120, 3); y = (x[:, 0] > 0).float()
    >>> tasks = [Task("a", "binary")]
    >>> data = from_arrays(x.numpy(), {"a": y.numpy()}, tasks)
    >>> tr = DistillationTrainer(HardSharing(mlp(3, (8,)), tasks), tasks,
    ...                          teacher_outputs={"a": 4 * x[:, 0]}, alpha=0.3, epochs=2, progress=False)
    >>> _ = tr.fit(data)
    >>> tr.current_alpha()
    0.3
    """

    def __init__(self, model: nn.Module, tasks: Sequence[Task], *, teacher_outputs: Mapping[str, Tensor],
                 alpha: float = 0.5, temperature: float = 2.0, anneal: bool = False, **kwargs: Any) -> None:
        super().__init__(model, tasks, **kwargs)
        if self.sampler is not None:
            raise ValueError("DistillationTrainer does not support data samplers: teacher outputs follow the "
                             "default shuffled passes. Remove data.sampler.")
        self.distillation = TeacherTerm(self, teacher_outputs, alpha=alpha, temperature=temperature, anneal=anneal)
        self.add_callback(self.distillation)

    @classmethod
    def from_trainer(cls, trainer: Trainer, *, teacher_outputs: Mapping[str, Tensor], alpha: float = 0.5,
                     temperature: float = 2.0, anneal: bool = False) -> DistillationTrainer:
        """A DistillationTrainer with the parts and settings of an existing (not yet fitted)
        ``trainer`` (e.g. from :func:`mtlkit.run.make_trainer`), its communication object
        included, so distillation runs under torchrun like any training."""
        if not isinstance(trainer, Trainer):
            raise TypeError(f"Expected a mtlkit Trainer. Got {type(trainer).__name__}.")
        return cls(trainer.model, trainer.tasks, teacher_outputs=teacher_outputs, alpha=alpha,
                   temperature=temperature, anneal=anneal, **trainer.parts())

    @property
    def teacher_outputs(self) -> dict[str, Tensor]:
        return self.distillation.teacher_outputs

    @property
    def alpha(self) -> float:
        return self.distillation.alpha

    @property
    def temperature(self) -> float:
        return self.distillation.temperature

    @property
    def anneal(self) -> bool:
        return self.distillation.anneal

    def current_alpha(self) -> float:
        """α at the current step (constant, or step / total steps with annealing)."""
        return self.distillation.current_alpha(self)

    def fit(self, train: MultiTaskData, val: MultiTaskData | None = None, *, resume: bool = False):
        n = len(train)
        bad = {k: int(v.shape[0]) for k, v in self.teacher_outputs.items() if v.shape[0] != n}
        if bad:
            raise ValueError(f"Teacher outputs must have one row per training sample ({n}); got {bad}.")
        self.distillation.total_steps = self.epochs * math.ceil(n / self.batch_size)
        return super().fit(with_teacher_outputs(train, self.teacher_outputs), val, resume=resume)


class TeacherTerm(Callback):
    """The distillation hook: each task's loss becomes ``α · hard + (1 − α) · soft``, the soft
    term against the teacher outputs that travel with the batch (:func:`with_teacher_outputs`).
    A task is optimised at a step when it has a label or a teacher output there."""

    def __init__(self, trainer: Trainer, teacher_outputs: Mapping[str, Tensor], *, alpha: float,
                 temperature: float, anneal: bool) -> None:
        _check_alpha_temperature(alpha, temperature, "DistillationTrainer")
        if not isinstance(anneal, bool):
            raise ValueError(f"The 'anneal' parameter of DistillationTrainer must be a bool. Got {anneal!r}.")
        unknown = sorted(set(teacher_outputs) - set(trainer.task_names))
        if unknown:
            raise KeyError(f"Teacher outputs for unknown task(s) {unknown}; the tasks are {trainer.task_names}.")
        by_name = {t.name: t for t in trainer.tasks}
        self.teacher_outputs = {k: _check_teacher_shape(by_name[k], torch.as_tensor(v).detach().float(), None)
                                for k, v in teacher_outputs.items()}
        self.alpha, self.temperature, self.anneal = float(alpha), float(temperature), anneal
        self.total_steps = 1

    def current_alpha(self, trainer: Trainer) -> float:
        if not self.anneal:
            return self.alpha
        return min(1.0, trainer.step_count / max(1, self.total_steps))

    def transform_losses(self, trainer: Trainer, out: dict[str, Tensor], ys: dict[str, Tensor],
                         ms: dict[str, Tensor], losses: list[Tensor], present: Tensor
                         ) -> tuple[list[Tensor], Tensor]:
        alpha = self.current_alpha(trainer)
        if alpha >= 1.0:
            return losses, present
        mixed, pres = [], present.clone()
        for k, t in enumerate(trainer.tasks):
            key = teacher_key(t.name)
            if key not in ys:
                mixed.append(losses[k])
                continue
            tm = ms[key].to(trainer.device)
            soft = soft_target_loss(t, out[t.name], ys[key].to(trainer.device), temperature=self.temperature,
                                    mask=tm)
            mixed.append(alpha * losses[k] + (1.0 - alpha) * soft)
            pres[k] = bool(present[k]) or bool(tm.any())
        return mixed, pres


def with_teacher_outputs(data: MultiTaskData, teacher_outputs: Mapping[str, Tensor]) -> MultiTaskData:
    """A shallow copy of ``data`` whose batches also carry the teacher outputs."""
    out = copy.copy(data)
    out.targets = dict(data.targets)
    out.masks = dict(data.masks)
    for k, v in teacher_outputs.items():
        out.targets[teacher_key(k)] = v
        out.masks[teacher_key(k)] = torch.ones(v.shape[0], dtype=torch.bool)
    return out


# ---------------------------------------------------------------------------- teachers
class _InputAdapter(nn.Module):
    """Feeds a run folder's model: undo the student's standardisation, apply the teacher's."""

    def __init__(self, model: nn.Module, student_pre: dict[str, Any] | None, teacher_pre: dict[str, Any] | None
                 ) -> None:
        super().__init__()
        self.model = model
        tabular = [p for p in (student_pre, teacher_pre) if p and "mean" not in p]
        if tabular and _canonical(student_pre) == _canonical(teacher_pre):
            student_pre = teacher_pre = None  # the same fitted table preprocessing: inputs already agree
        elif tabular:
            raise ValueError("The teacher run was trained with another table preprocessing than the student "
                             "(fitted on another split, or other column types/options); its inputs cannot be "
                             "translated. Train the teacher on the same data and split (same seed) as the "
                             f"student.{_tokenizer_hint(student_pre, teacher_pre)}")
        self._s = _mean_std(student_pre)
        self._t = _mean_std(teacher_pre)

    def forward(self, x: Any) -> Any:
        if self._s is None and self._t is None:
            return self.model(x)
        if _batch.is_multi(x):  # per-input standardisations are compared whole above
            raise ValueError("The teacher and the student standardise their named inputs differently; train the "
                             "teacher on the same data and split (same seed) as the student.")
        z = x.double()
        if self._s is not None:
            z = z * self._s[1] + self._s[0]
        if self._t is not None:
            z = (z - self._t[0]) / self._t[1]
        return self.model(z.to(torch.float32))


def _tokenizer_hint(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    """What to do when two table preprocessings differ only in a text column's tokenizer."""
    def strip(pre: dict[str, Any] | None) -> str:
        cols = [{k: v for k, v in c.items() if k not in ("tokenizer", "vocab")} for c in (pre or {}).get("columns", [])]
        return _canonical({**(pre or {}), "columns": cols, "input": None})

    texts = [c.get("name") for c in (a or {}).get("columns", []) if c.get("type") == "text"]
    if not texts or strip(a) != strip(b):
        return ""
    return (f" Only the tokenizer of text column(s) {texts} differs: a WordPiece tokenizer is not trained to the "
            f"same vocabulary twice ('tokenizers' library); use data.text.tokenizer kind: bpe, or save one "
            f"tokenizer.json and give it to the teachers and the student (data.text.tokenizer.file).")


def _canonical(pre: dict[str, Any] | None) -> str:
    import json

    return json.dumps(pre, sort_keys=True, default=str)


def _mean_std(pre: dict[str, Any] | None) -> tuple[Tensor, Tensor] | None:
    if not pre:
        return None
    return torch.tensor(pre["mean"], dtype=torch.float64), torch.tensor(pre["std"], dtype=torch.float64)


def load_teachers(run_dirs: Sequence[str | Path], tasks: Sequence[Task], *,
                  preprocessing: dict[str, Any] | None = None, features: Sequence[str] | None = None
                  ) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """Load run folders (single- or multi-task models) as teachers: each teaches the student
    tasks its model has (same name, kind, width and class names; a task of the same name that
    differs is an error naming it; a teacher task the student lacks is not used). Several run
    folders teaching one task form a :class:`TeacherEnsemble` (MT-DNN). Returns ``({task:
    module}, {task: run folder(s), comma-separated})``; the modules take the student's inputs
    (``preprocessing`` = the student's standardisation)."""
    from mtlkit.run import load_model

    names = {t.name: t for t in tasks}
    members: dict[str, list[nn.Module]] = {}
    folders: dict[str, list[str]] = {}
    for d in run_dirs:
        model, meta = load_model(d)
        theirs = {t["name"]: t for t in meta.get("tasks", [])}
        matched = [n for n in theirs if n in names]
        if not matched:
            raise ValueError(f"The teacher run {str(d)!r} has task(s) {sorted(theirs)}; none is a task of the "
                             f"student ({sorted(names)}).")
        tf = meta.get("features")
        if features is not None and tf is not None and list(tf) != list(features):
            raise ValueError(f"The teacher run {str(d)!r} was trained on features {tf}, the student on "
                             f"{list(features)}; they must be the same columns.")
        adapter = _InputAdapter(model, preprocessing, meta.get("preprocessing"))
        adapter.eval()
        for n in matched:
            _check_same_task(names[n], theirs[n], str(d))
            members.setdefault(n, []).append(adapter)
            folders.setdefault(n, []).append(str(d))
    out = {n: ms[0] if len(ms) == 1 else TeacherEnsemble(names[n], ms) for n, ms in members.items()}
    return out, {n: ", ".join(fs) for n, fs in folders.items()}


def _check_same_task(mine: Task, theirs: dict[str, Any], where: str) -> None:
    """The teacher's task of the same name teaches the same thing: kind, width and class names."""
    n = mine.name
    if theirs.get("kind") != mine.kind or _out_dim(theirs) != mine.out_dim:
        raise ValueError(f"Task {n!r} is {mine.kind} (width {mine.out_dim}) in the student but "
                         f"{theirs.get('kind')} (width {_out_dim(theirs)}) in the teacher run {where!r}.")
    classes = theirs.get("classes")
    if classes is not None and mine.classes is not None and [str(c) for c in classes] != [str(c) for c in
                                                                                         mine.classes]:
        raise ValueError(f"Task {n!r} has classes {list(mine.classes)} in the student but {list(classes)} in the "
                         f"teacher run {where!r}: the outputs would not mean the same classes.")


def _out_dim(t: dict[str, Any]) -> int:
    from mtlkit.tasks import task_from_dict

    return task_from_dict(t).out_dim


def _check_teacher_shape(task: Task, y: Tensor, n: int | None) -> Tensor:
    scalar = task.output_shape == ()  # one number per sample (binary, contrastive)
    if scalar and y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if task.task_kind.multi_column and not task.task_kind.is_classification and y.dim() == 1 and task.out_dim == 1:
        y = y[:, None]
    want = (y.shape[0],) if scalar else (y.shape[0], task.out_dim)
    if tuple(y.shape) != want or (n is not None and y.shape[0] != n):
        raise ValueError(f"The teacher of task {task.name!r} ({task.kind}) gives outputs of shape "
                         f"{tuple(y.shape)}; expected {want if n is None else (n, *want[1:])}.")
    return y


@torch.no_grad()
def teacher_predictions(teachers: Mapping[str, nn.Module | Sequence[nn.Module]], tasks: Sequence[Task], x: Any, *,
                        batch_size: int = 1024, temperature: float = 1.0) -> dict[str, Tensor]:
    """Raw outputs of each task's teacher on ``x`` (a tensor or ``{name: tensor}``; eval mode);
    a teacher may return ``{task: output}`` or a tensor. A teacher given as a list of modules,
    or a :class:`TeacherEnsemble`, gives the ensemble output at ``temperature``
    (:func:`ensemble_outputs`; a single teacher's outputs do not depend on it).

    >>> t = Task("y", "regression")
    >>> teacher_predictions({"y": nn.Linear(2, 1)}, [t], torch.zeros(5, 2))["y"].shape
    torch.Size([5, 1])
    """
    by_name = {t.name: t for t in tasks}
    unknown = sorted(set(teachers) - set(by_name))
    if unknown:
        raise KeyError(f"Teachers for unknown task(s) {unknown}; the tasks are {sorted(by_name)}.")
    res: dict[str, Tensor] = {}
    n = _batch.rows(x)
    for name, teacher in teachers.items():
        m = teacher if isinstance(teacher, nn.Module) else TeacherEnsemble(by_name[name], list(teacher))
        was = m.training
        m.eval()
        chunks = []
        try:
            for s in range(0, n, batch_size):
                part = _batch.take(x, slice(s, s + batch_size))
                o = m.outputs(part, temperature) if isinstance(m, TeacherEnsemble) else _task_output(m(part), name)
                chunks.append(o.cpu())
        finally:
            m.train(was)
        res[name] = _check_teacher_shape(by_name[name], torch.cat(chunks), n)
    return res


# ---------------------------------------------------------------------------- driver
@dataclass
class DistillResult:
    """The student model, its trainer and the comparison summary (``distill.json``)."""

    student: nn.Module
    summary: dict[str, Any]
    trainer: DistillationTrainer
    run_dir: Path | None = None

    def table(self) -> str:
        """Per task (main metric): teacher, student, plain multi-task model; then Δm's."""
        from mtlkit.analysis._format import fnum, text_table

        s = self.summary
        rows = []
        plain = (s.get("plain") or {}).get("test") or {}
        for t in s["tasks"]:
            n = t["name"]
            m = s["main_metric"][n]
            teach = (s["teachers"].get(n) or {}).get("test") or {}
            rows.append([n, m, fnum(teach.get(m)), fnum(s["student"]["test"][n].get(m)),
                         fnum((plain.get(n) or {}).get(m))])
        dm = s["delta_m"]
        st = s["settings"]
        return "\n".join([
            text_table(["task", "metric", "teacher", "student", "plain MTL"], rows), "",
            f"Δm student   vs teachers: {fnum(dm.get('student_vs_teachers'), 2)} %",
            f"Δm plain MTL vs teachers: {fnum(dm.get('plain_vs_teachers'), 2)} %",
            f"Δm student   vs plain MTL: {fnum(dm.get('student_vs_plain'), 2)} %",
            "(Δm over every metric of the primary tasks with a teacher; negative = better than the reference)",
            f"settings: alpha={st['alpha']}, temperature={st['temperature']}, anneal={st['anneal']}; "
            f"parameters: student {s['student']['params']:,}, teachers {s['teachers_params_total']:,}"])


def distill(cfg: RunConfig, teachers: Mapping[str, nn.Module | str | Path] | Sequence[str | Path], *,
            prepared: PreparedData | None = None, alpha: float = 0.5, temperature: float = 2.0,
            anneal: bool = False, compare: bool = True, out_dir: str | Path | None = None,
            progress: bool = False, log: Callable[[str], None] | None = None,
            overwrite: bool = False) -> DistillResult:
    """Distil single-task teachers into one multi-task student built and trained as the
    config says, and compare it with the teachers and (``compare``) with a multi-task model
    trained on the labels only (same config, same split).

    Args:
        cfg: the run config (data, tasks, model, training).
        teachers: run folders (each teaches the student tasks its model has; several that
            teach one task form an ensemble), or a mapping ``{task: nn.Module, run folder, or a
            list of them (an ensemble)}``. Modules receive the student's inputs as prepared
            (standardised) — e.g. ``RunResult.baselines`` of the same config.
        alpha, temperature, anneal: see :class:`DistillationTrainer`.
        out_dir: writes ``student/`` (a loadable run folder: weights, config, metrics),
            ``plain/`` (the comparison run) and ``distill.json``.

    Returns a :class:`DistillResult` (``.student``, ``.summary``, ``.table()``).
    """
    from mtlkit._io import write_json
    from mtlkit.evaluation.delta_m import delta_m
    from mtlkit.run import (
        RunFolder,
        build_model_for,
        count_parameters,
        prepare_from_config,
        run,
        train_into,
        validate,
    )
    from mtlkit.training.trainer import seed_everything

    _check_alpha_temperature(alpha, temperature, "distill")
    say = log or (lambda s: None)
    if cfg.data.sampler is not None:
        raise ValueError("Distillation does not support data.sampler (teacher outputs follow shuffled passes).")
    validate(cfg)  # every problem of the config at once, before the data loads
    prepared = prepared if prepared is not None else prepare_from_config(cfg)
    tasks = prepared.tasks
    modules: dict[str, nn.Module] = {}
    sources: dict[str, str] = {}
    if isinstance(teachers, Mapping):
        modules, sources = _mapped_teachers(teachers, tasks, prepared)
    else:
        if isinstance(teachers, (str, Path)):
            teachers = [teachers]
        modules, sources = load_teachers(list(teachers), tasks, preprocessing=prepared.preprocessing,
                                         features=prepared.features)
    if not modules:
        raise ValueError("No teacher given: pass run folders or {task: module}.")
    unknown = sorted(set(modules) - {t.name for t in tasks})
    if unknown:
        raise KeyError(f"Teachers for unknown task(s) {unknown}; the tasks are {[t.name for t in tasks]}.")
    untaught = [t.name for t in tasks if t.name not in modules]
    if untaught:
        say(f"No teacher for task(s) {untaught}: they learn from their labels only.")
    taught = [t for t in tasks if t.name in modules]
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and (out / DISTILL_JSON).exists() and not overwrite:
        raise FileExistsError(f"{str(out)!r} already holds a distillation result; choose another --out "
                              f"or pass --overwrite.")
    if out is not None:  # before any training
        for sub in ("student", "plain") if compare else ("student",):
            RunFolder(out / sub).check_new(overwrite=overwrite)

    say(f"Teacher outputs on {len(prepared.train)} training samples ({len(modules)} teacher(s)) ...")
    # the soft targets: an ensemble's probabilities averaged at T; its test predictions at T = 1
    t_train = teacher_predictions(modules, tasks, prepared.train.x, temperature=temperature)
    t_test = teacher_predictions(modules, tasks, prepared.test.x)
    teacher_rows: dict[str, Any] = {}
    for t in taught:
        teacher_rows[t.name] = {
            "source": sources[t.name],
            "test": t.evaluate(t_test[t.name], prepared.test.targets[t.name], prepared.test.masks[t.name]),
            "params": count_parameters(getattr(modules[t.name], "model", modules[t.name]))}

    seed_everything(cfg.seed)
    student = build_model_for(cfg, prepared, tasks)
    sroot = RunFolder(out / "student") if out is not None else None
    # a loadable run folder: config, metrics, weights (over an earlier one: written beside it)
    sfolder = sroot.start(cfg, overwrite=overwrite) if sroot is not None else None

    def wrap(base: Trainer) -> Trainer:
        return DistillationTrainer.from_trainer(base, teacher_outputs=t_train, alpha=alpha,
                                                temperature=temperature, anneal=anneal)

    from mtlkit._text import plural

    say(f"Training the student ({plural(len(tasks), 'task')}, {plural(count_parameters(student), 'parameter')}) ...")
    done = train_into(cfg, student, tasks, prepared, folder=sfolder, progress=progress, wrap=wrap)
    if sroot is not None and sfolder is not None:
        sroot.commit(sfolder)  # an earlier student moves to replaced/ only now
    trainer, s_test = cast(DistillationTrainer, done.trainer), done.test

    plain_row = None
    if compare:
        say("Training the same multi-task model without distillation ...")
        cfg_plain = cfg.model_copy(deep=True)
        cfg_plain.baselines = False
        pr = run(cfg_plain, prepared, out_dir=out / "plain" if out is not None else None, progress=progress,
                 overwrite=overwrite)
        plain_row = {"test": pr.summary["mtl"]["test"], "params": pr.summary["mtl"]["params"]}

    teach_test = {k: v["test"] for k, v in teacher_rows.items()}
    dm = {"student_vs_teachers": delta_m(s_test, teach_test, taught)}
    if plain_row is not None:
        dm["plain_vs_teachers"] = delta_m(plain_row["test"], teach_test, taught)
        dm["student_vs_plain"] = delta_m(s_test, plain_row["test"], tasks)
    summary = {
        "name": cfg.name, "tasks": [t.to_dict() for t in tasks],
        "main_metric": {t.name: t.main_metric for t in tasks},
        "settings": {"alpha": alpha, "temperature": temperature, "anneal": anneal},
        "teachers": teacher_rows,
        "teachers_params_total": int(sum(v["params"] for v in teacher_rows.values())),
        "student": {"test": s_test, "params": count_parameters(student),
                    "best_epoch": trainer.history.best_epoch, "epochs_run": len(trainer.history.records)},
        "plain": plain_row, "delta_m": dm,
        "sign_convention": "Δm in %, negative means better than the reference.",
    }
    if out is not None:
        write_json(out / DISTILL_JSON, summary)
    return DistillResult(student, summary, trainer, out)


def _mapped_teachers(teachers: Mapping[str, Any], tasks: Sequence[Task], prepared: PreparedData
                     ) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """``{task: module, run folder or a list of them}`` -> ``({task: module}, {task: source})``;
    a list becomes a :class:`TeacherEnsemble`."""
    by_name = {t.name: t for t in tasks}
    modules: dict[str, nn.Module] = {}
    sources: dict[str, str] = {}
    for k, v in teachers.items():
        if k not in by_name:
            raise KeyError(f"Teachers for unknown task {k!r}; the tasks are {list(by_name)}.")
        items = list(v) if isinstance(v, (list, tuple)) else [v]
        members: list[nn.Module] = []
        names: list[str] = []
        for item in items:
            if isinstance(item, nn.Module):
                members.append(item)
                names.append(f"module:{type(item).__name__}")
                continue
            found, src = load_teachers([item], [by_name[k]], preprocessing=prepared.preprocessing,
                                       features=prepared.features)
            members.append(found[k])
            names.append(src[k])
        modules[k] = members[0] if len(members) == 1 else TeacherEnsemble(by_name[k], members)
        sources[k] = ", ".join(names)
    return modules, sources


__all__ = ["DistillResult", "DistillationTrainer", "TeacherEnsemble", "distill", "distillation_loss",
           "ensemble_outputs", "load_teachers", "soft_target_loss", "teacher_key", "teacher_predictions",
           "with_teacher_outputs"]
