"""The non-finite guard: a NaN/inf loss or gradient skips the step (no optimiser update),
names the task(s), is counted in ``metrics.jsonl`` as ``nonfinite_skipped``; after
``max_nonfinite_steps`` consecutive skips training stops with :class:`NonFiniteLossError`
pointing to the learning rate / the labels. Non-finite weights never reach the disk."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from mtlkit import Task, Trainer, from_arrays
from mtlkit._registry import AGGREGATORS, WEIGHTINGS
from mtlkit.architectures import build_model
from mtlkit.training.checkpoint import CheckpointManager
from mtlkit.training.trainer import NonFiniteLossError

TASKS = [Task("a", "binary"), Task("z", "regression")]
N, BATCH = 64, 16  # 4 steps per epoch


def data(bad_rows=(), value=1e38, scale=1.0):
    """A binary task ``a`` and a regression task ``z``; ``z`` is ``value`` on ``bad_rows``
    (1e38 is finite, but its square overflows float32: the MSE is inf)."""
    r = np.random.default_rng(0)
    x = r.normal(size=(N, 3)).astype("float32")
    z = x[:, 1].astype(float) * scale
    z[list(bad_rows)] = value
    return from_arrays(x, {"a": (x[:, 0] > 0).astype(float), "z": z}, TASKS)


def model(seed=0):
    torch.manual_seed(seed)
    return build_model({"name": "hard_sharing", "trunk": {"name": "mlp", "hidden": [8]}}, TASKS, (3,))


def trainer(m, **kw) -> Trainer:
    kw.setdefault("epochs", 3)
    return Trainer(m, TASKS, batch_size=BATCH, progress=False, **kw)


def finite(state) -> bool:
    """Every floating tensor / float in a (nested) state is finite."""
    if isinstance(state, torch.Tensor):
        return not state.is_floating_point() or bool(torch.isfinite(state).all())
    if isinstance(state, dict):
        return all(finite(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return all(finite(v) for v in state)
    if isinstance(state, float):
        return math.isfinite(state)
    return True


def nan_on_calls(calls: set[int] | None):
    """A forward hook that turns the head's output to NaN on the given call numbers (all if None)."""
    count = {"n": 0}

    def hook(module, inputs, output):
        count["n"] += 1
        if calls is None or count["n"] in calls:
            return output * float("nan")
        return output

    return hook


def lines(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------- skip and count
WEIGHTING_CASES = [(None, None), ("dwa", None), ("uncertainty", None), (None, "gradvac"), (None, "upgrad")]


@pytest.mark.parametrize("weighting,aggregator", WEIGHTING_CASES,
                         ids=[w or a or "equal" for w, a in WEIGHTING_CASES])
def test_one_huge_label_skips_its_batch_each_epoch(tmp_path, weighting, aggregator):
    if (weighting and weighting not in WEIGHTINGS) or (aggregator and aggregator not in AGGREGATORS):
        pytest.skip("method not available")
    m = model()
    t = trainer(m, run_dir=tmp_path,
                weighting=WEIGHTINGS.build(weighting) if weighting else None,
                aggregator=AGGREGATORS.build(aggregator) if aggregator else None)
    t.fit(data(bad_rows=[5]))
    recs = lines(tmp_path)
    assert [r["nonfinite_skipped"] for r in recs] == [1, 1, 1]  # one bad batch per epoch
    assert t.nonfinite_skipped == 3
    assert [r["steps"] for r in recs] == [4, 4, 4]
    assert finite(m.state_dict())
    assert all(math.isfinite(r["train_loss"]["a"]) for r in recs)
    if t.aggregator is not None:
        assert finite(t.aggregator.state_dict())


_EPOCH_MEAN = ()  # was a "needs fix" xfail; fixed


@pytest.mark.parametrize("weighting", [pytest.param("dwa", marks=_EPOCH_MEAN), "uncertainty", "famo", "rlw"])
def test_stateful_weighting_stays_finite_across_skips(weighting):
    if weighting not in WEIGHTINGS:
        pytest.skip("method not available")
    t = trainer(model(), weighting=WEIGHTINGS.build(weighting))
    t.fit(data(bad_rows=[5]))
    assert t.nonfinite_skipped == 3
    assert finite(t.weighting.state_dict())
    assert finite(dict(t.weighting.named_parameters()))


def test_skipped_step_changes_nothing():
    """Every batch bad: no optimiser step is ever taken, the weights are the initial ones."""
    m = model()
    init = {k: v.clone() for k, v in m.state_dict().items()}
    t = trainer(m, max_nonfinite_steps=3)
    with pytest.raises(NonFiniteLossError):
        t.fit(data(bad_rows=range(N)))
    for k, v in m.state_dict().items():
        assert torch.equal(v, init[k]), k
    assert t.nonfinite_skipped == 3


@pytest.mark.parametrize("value", [1e38, float("inf")], ids=["1e38", "inf"])
def test_consecutive_skips_stop_with_a_pointer_to_the_cause(value):
    t = trainer(model(), max_nonfinite_steps=3)
    if math.isinf(value):  # the data layer already refuses infinite targets, by task name
        with pytest.raises(ValueError, match=r"'z'.*infinite"):
            data(bad_rows=range(N), value=value)
        return
    with pytest.raises(NonFiniteLossError) as e:
        t.fit(data(bad_rows=range(N), value=value))
    msg = str(e.value)
    assert "['z']" in msg and "3 consecutive steps" in msg
    assert "learning rate" in msg and "labels" in msg


def test_nan_from_a_model_hook_is_skipped_and_named():
    m = model()
    m.heads["z"].register_forward_hook(nan_on_calls({2}))
    t = trainer(m, epochs=1)
    t.fit(data())
    assert t.nonfinite_skipped == 1 and finite(m.state_dict())
    m2 = model()
    m2.heads["z"].register_forward_hook(nan_on_calls(None))
    with pytest.raises(NonFiniteLossError, match=r"loss for task\(s\) \['z'\]"):
        trainer(m2, max_nonfinite_steps=2).fit(data())


def test_non_finite_gradient_with_finite_loss_is_skipped():
    """sqrt(0·o) is 0 (a finite loss) but its gradient is inf·0 = NaN."""
    m = model()
    init = {k: v.clone() for k, v in m.state_dict().items()}
    m.heads["z"].register_forward_hook(lambda mod, i, o: torch.sqrt(o * 0.0))
    with pytest.raises(NonFiniteLossError, match="Non-finite gradient"):
        trainer(m, max_nonfinite_steps=2).fit(data())
    for k, v in m.state_dict().items():
        assert torch.equal(v, init[k]), k


def test_the_consecutive_counter_resets_on_a_good_step():
    """Every other step bad, limit 2: never two in a row, so training finishes."""
    m = model()
    m.heads["z"].register_forward_hook(nan_on_calls({1, 3, 5, 7, 9, 11}))
    t = trainer(m, max_nonfinite_steps=2)
    t.fit(data())
    assert t.nonfinite_skipped == 6 and finite(m.state_dict())


def test_skip_count_survives_resume(tmp_path):
    ck = tmp_path / "ck"
    ref = trainer(model(), checkpoint_dir=ck, checkpoint_every=3)
    ref.fit(data(bad_rows=[5]))
    again = trainer(model(), checkpoint_dir=ck)
    # resume from the checkpoint of step 9 (mid-epoch 3) by dropping the final one
    man = json.loads((ck / "manifest.json").read_text())
    man["checkpoints"] = [e for e in man["checkpoints"] if e["step"] == 9]
    (ck / "manifest.json").write_text(json.dumps(man))
    again.fit(data(bad_rows=[5]), resume=True)
    assert again.nonfinite_skipped == ref.nonfinite_skipped == 3
    assert [r["nonfinite_skipped"] for r in again.history.records] == [1, 1, 1]


# ---------------------------------------------------------------------------- naming (needs fixes)
def test_each_skip_is_reported_with_the_task_name():
    with pytest.warns(RuntimeWarning, match=r"non-finite loss for task\(s\) \['z'\]"):
        trainer(model(), epochs=1).fit(data(bad_rows=[5]))


def test_metrics_jsonl_names_the_skipped_tasks(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(model(), run_dir=tmp_path).fit(data(bad_rows=[5]))
    assert [r.get("nonfinite_tasks") for r in lines(tmp_path)] == [{"z": 1}] * 3


def test_train_loss_ignores_skipped_steps(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(model(), run_dir=tmp_path).fit(data(bad_rows=[5]))
    assert all(isinstance(r["train_loss"]["z"], float) and math.isfinite(r["train_loss"]["z"])
               for r in lines(tmp_path))


# ---------------------------------------------------------------------------- nothing non-finite on disk
def _model_tensors_of_checkpoints(ck: Path):
    """The model weights of every checkpoint on disk (resolved through the checkpoint JSON)."""
    from mtlkit.training.checkpoint import unflatten_state

    out = {}
    for js in sorted(ck.glob("ckpt-*.json")):
        doc = json.loads(js.read_text())
        tensors = load_file(str(js.with_suffix(".safetensors")))
        out[js.stem] = unflatten_state(doc["state"], tensors)["trainer"]["model"]
    return out


def test_bad_labels_never_put_non_finite_weights_in_checkpoints(tmp_path):
    ck = tmp_path / "ck"
    with pytest.raises(NonFiniteLossError):
        trainer(model(), checkpoint_dir=ck, checkpoint_every=1, keep_checkpoints=50,
                max_nonfinite_steps=6).fit(data(bad_rows=range(8, N)))  # only the first batch is good
    states = _model_tensors_of_checkpoints(ck)
    assert states and all(finite(s) for s in states.values())


def test_diverging_weights_are_never_checkpointed(tmp_path):
    ck = tmp_path / "ck"
    m = model()
    with pytest.raises(NonFiniteLossError, match="learning rate"):
        trainer(m, optimizer="sgd", lr=1e37, momentum=0.0, checkpoint_dir=ck, checkpoint_every=1,
                max_nonfinite_steps=3).fit(data(scale=100.0))
    states = _model_tensors_of_checkpoints(ck)
    assert all(finite(s) for s in states.values())
    found = CheckpointManager(ck).latest()
    assert found is None or finite(found[0]["trainer"]["model"])


def test_cli_run_with_bad_labels_stops_and_writes_no_weights(tmp_path, no_report):
    from typer.testing import CliRunner

    from mtlkit.cli import get_app

    r = np.random.default_rng(0)
    import pandas as pd

    df = pd.DataFrame(r.normal(size=(80, 2)), columns=["f1", "f2"])
    df["a"] = (df["f1"] > 0).astype(int)
    df["z"] = 1e38
    df.to_csv(tmp_path / "d.csv", index=False)
    cfg = {"data": {"path": str(tmp_path / "d.csv"), "standardize": True},
           # z kept in its own units (targets are standardised by default, which would tame it)
           "tasks": [{**t.to_dict(), **({"standardize": False} if t.name == "z" else {})} for t in TASKS],
           "training": {"epochs": 2, "batch_size": 16},
           "baselines": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(get_app(), ["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"),
                                         "--no-progress", "--set", "training.max_nonfinite_steps=2"])
    assert res.exit_code == 2
    assert "Non-finite loss for task(s) ['z']" in res.output
    assert "learning rate" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert not (tmp_path / "run" / "summary.json").exists()
