"""Several inputs per sample: dict batches through the dataset, the Trainer, prediction, export;
the multimodal architecture's fusion kinds; data.inputs; BasicMotions' two sensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlkit import Task
from mtlkit.architectures import Multimodal, build_model
from mtlkit.data import MultiTaskData
from mtlkit.training import Trainer

TASKS = [Task("a", "binary"), Task("b", "regression", dim=2), Task("c", "multiclass", num_classes=3)]
SHAPES = {"accel": (3, 16), "image": (1, 16, 16), "table": (5,)}
ENCODERS = {"accel": {"name": "cnn1d", "channels": [4], "hidden": 6},
            "image": {"name": "lenet", "channels": [2, 3], "hidden": 7},
            "table": {"name": "mlp", "hidden": [5]}}


def _inputs(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(n, *s, generator=g) for k, s in SHAPES.items()}


def _data(n: int = 48, seed: int = 0) -> MultiTaskData:
    x = _inputs(n, seed)
    g = torch.Generator().manual_seed(seed + 1)
    targets = {"a": (x["table"][:, 0] + x["accel"].mean((1, 2)) > 0).float(),
               "b": torch.stack([x["image"].mean((1, 2, 3)), x["table"][:, 1]], 1),
               "c": torch.randint(0, 3, (n,), generator=g)}
    return MultiTaskData(x, targets, None, TASKS, source="the test data")


def _model(fusion: str, fusion_dim: int | None = None, seed: int = 0) -> Multimodal:
    torch.manual_seed(seed)
    m = build_model({"name": "multimodal", "fusion": fusion, "fusion_dim": fusion_dim, "encoders": ENCODERS},
                    TASKS, SHAPES)
    assert isinstance(m, Multimodal)
    return m


# ---------------------------------------------------------------------------- the architecture
@pytest.mark.parametrize(("fusion", "fusion_dim", "width"), [("concat", None, 6 + 7 + 5), ("concat", 9, 9),
                                                             ("gated", None, 7), ("gated", 4, 4),
                                                             ("attention", None, 7), ("attention", 11, 11)])
def test_fusion_shapes(fusion, fusion_dim, width):
    m = _model(fusion, fusion_dim)
    x = _inputs(5)
    feats = m.encode_inputs(x)
    assert [tuple(f.shape) for f in feats] == [(5, 6), (5, 7), (5, 5)]
    rep = m.encode(x)
    assert tuple(rep.shape) == (5, width) == (5, m.rep_width)
    out = m(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"a": (5,), "b": (5, 2), "c": (5, 3)}
    # forward = decode(encode(x)): representation-level methods read the same graph
    for k, v in m.decode(rep).items():
        assert torch.equal(v, out[k])
    if fusion != "concat":  # the gate / attention weights of each input sum to 1
        w = m.sharing_summary()["fusion_weights"]
        assert list(w) == list(SHAPES) and sum(w.values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("fusion", ["concat", "gated", "attention"])
def test_each_encoder_receives_gradient_from_every_task(fusion):
    m = _model(fusion)
    d = _data(16)
    out = m(d.x)
    for t in TASKS:
        m.zero_grad()
        t.compute_loss(out[t.name], d.targets[t.name], d.masks[t.name]).backward(retain_graph=True)
        for name in SHAPES:
            grads = [p.grad for p in m.encoders[name].parameters() if p.requires_grad]
            assert any(g is not None and float(g.abs().sum()) > 0 for g in grads), (t.name, name)
        others = [o.name for o in TASKS if o.name != t.name]
        for o in others:  # and only its own head
            assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in m.task_parameters(o))


def test_parameter_partition_and_config_round_trip():
    m = _model("attention", 8)
    shared = {id(p) for p in m.shared_parameters()}
    heads = [{id(p) for p in m.task_parameters(t.name)} for t in TASKS]
    assert all(not (shared & h) for h in heads)
    assert len(shared) + sum(len(h) for h in heads) == len(list(m.parameters()))
    again = build_model(m.config, TASKS, SHAPES)
    again.load_state_dict(m.state_dict())
    m.eval(), again.eval()
    x = _inputs(3)
    for k, v in m(x).items():
        assert torch.equal(v, again(x)[k])


def test_default_encoders_come_from_each_input_shape():
    m = build_model({"name": "multimodal", "trunk": {}}, TASKS, SHAPES)
    assert [m.config["encoders"][k]["name"] for k in SHAPES] == ["cnn1d", "lenet", "mlp"]


def test_bad_configurations_name_the_problem():
    with pytest.raises(ValueError, match=r"'fusion'.*Got 'sum'"):
        _model("sum")
    with pytest.raises(ValueError, match=r"input\(s\) \['gyro'\]"):
        build_model({"name": "multimodal", "encoders": {"gyro": {"name": "mlp"}}}, TASKS, SHAPES)
    with pytest.raises(ValueError, match=r"several named inputs"):
        build_model({"name": "multimodal"}, TASKS, (5,))
    with pytest.raises(ValueError, match=r"several named inputs.*multimodal"):
        build_model({"name": "hard_sharing", "trunk": {"name": "mlp"}}, TASKS, SHAPES)


# ---------------------------------------------------------------------------- data and training
def test_dict_inputs_in_the_dataset():
    d = _data(10)
    assert d.input_shape == SHAPES and d.input_names == list(SHAPES) and len(d) == 10
    x, ys, ms = d.batch(torch.tensor([1, 4]))
    assert {k: tuple(v.shape) for k, v in x.items()} == {k: (2, *s) for k, s in SHAPES.items()}
    sub = d.subset([0, 2, 3])
    assert torch.equal(sub.x["table"], d.x["table"][[0, 2, 3]])
    bad = _inputs(4)
    bad["table"] = bad["table"][:3]
    with pytest.raises(ValueError, match=r"different numbers of samples.*'table': 3"):
        MultiTaskData(bad, {"a": torch.zeros(4)})
    nan = _inputs(4)
    nan["image"][2, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"input 'image'.*NaN.*\[2\]"):
        MultiTaskData(nan, {"a": torch.zeros(4)})


def test_collate_dict_samples_from_a_torch_dataset():
    from mtlkit.data._dataset import from_torch_dataset

    d = _data(6)
    items = [({k: v[i] for k, v in d.x.items()}, {t: d.targets[t][i] for t in d.targets}) for i in range(6)]
    back = from_torch_dataset(items, TASKS)
    for k in SHAPES:
        assert torch.equal(back.x[k], d.x[k])
    items[3] = ({"accel": d.x["accel"][3]}, items[3][1])
    with pytest.raises(KeyError, match=r"Sample 3 has no input 'image'"):
        from_torch_dataset(items, TASKS)


def _fit(seed: int = 0, **kw):
    tr = Trainer(_model("gated", seed=seed), TASKS, epochs=2, batch_size=16, seed=seed, progress=False, **kw)
    tr.fit(_data(48), _data(16, seed=9))
    return tr


def test_dict_batches_through_fit_and_predict_deterministically():
    from mtlkit.aggregation import MGDA

    a, b = _fit(), _fit()
    assert a.history.records[-1]["train_loss"] == b.history.records[-1]["train_loss"]
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    out = a.predict_raw(_data(20, seed=3))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"a": (20,), "b": (20, 2), "c": (20, 3)}
    assert "val" in a.history.records[-1] and "sharing" in a.history.records[-1]
    # a representation-level aggregator on the fused representation
    c = _fit(aggregator=MGDA(), level="representation")
    assert c.history.records[-1]["aggregator_weights"]


def test_predict_names_a_missing_input():
    tr = _fit()
    x = _inputs(4)
    del x["accel"]
    with pytest.raises(KeyError, match=r"input\(s\) \['accel'\]"):
        tr.predict_raw(x)
    with pytest.raises(TypeError, match=r"several named inputs"):
        tr.model(torch.zeros(4, 5))


def test_saved_model_loads_and_checks_inputs(tmp_path):
    from mtlkit._batch import shape_json
    from mtlkit.inference import load_run
    from mtlkit.run.folder import save_model

    tr = _fit()
    save_model(tmp_path, tr.model, {"architecture": tr.model.config, "tasks": [t.to_dict() for t in TASKS],
                                    "input_shape": shape_json(SHAPES)})
    run = load_run(tmp_path)
    x = _inputs(6, seed=4)
    want = tr.predict_raw(x)
    for k, v in run.predict_raw(x).items():
        assert torch.allclose(v, want[k], atol=1e-6)
    with pytest.raises(KeyError, match=r"input\(s\) \['table'\]"):
        run.predict_raw({k: v for k, v in x.items() if k != "table"})
    x["accel"] = torch.zeros(6, 3, 20)
    with pytest.raises(ValueError, match=r"Input 'accel' has per-sample shape \(3, 20\).*\(3, 16\)"):
        run.predict_raw(x)


def test_onnx_export_with_two_named_inputs_matches_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from mtlkit.export import export_model

    shapes = {"accel": SHAPES["accel"], "table": SHAPES["table"]}
    torch.manual_seed(0)
    model = build_model({"name": "multimodal", "fusion": "attention",
                         "encoders": {k: ENCODERS[k] for k in shapes}}, TASKS, shapes).eval()
    path = export_model(model, TASKS, shapes, tmp_path / "m.onnx", fmt="onnx")
    sess = ort.InferenceSession(str(path))
    assert [i.name for i in sess.get_inputs()] == ["accel", "table"]
    x = {k: v for k, v in _inputs(7, seed=2).items() if k in shapes}  # another batch size than traced
    got = sess.run(None, {k: v.numpy() for k, v in x.items()})
    with torch.no_grad():
        want = model(x)
    for t, g in zip(TASKS, got):
        np.testing.assert_allclose(g, want[t.name].numpy(), atol=1e-5)


# ---------------------------------------------------------------------------- YAML: data.inputs
def test_named_inputs_from_channels_names_and_derived_tables():
    from mtlkit.run.data import named_inputs

    x = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6)
    parts = named_inputs(x, {"first": [0, 1], "named": ["c3", "c2"], "all": "all",
                             "pooled": {"derive": "pooled", "size": 2}, "stats": {"derive": "stats"}},
                         ["c0", "c1", "c2", "c3"])
    assert torch.equal(parts["first"], x[:, :2]) and torch.equal(parts["named"], x[:, [3, 2]])
    assert torch.equal(parts["all"], x)
    assert torch.allclose(parts["pooled"][0, :2], x[0, 0].reshape(2, 3).mean(1))
    assert torch.allclose(parts["stats"][0, :4], x[0].mean(1))
    with pytest.raises(ValueError, match=r"data.inputs.b: unknown channel/column 'c9'"):
        named_inputs(x, {"b": ["c9"]}, ["c0", "c1", "c2", "c3"])
    with pytest.raises(ValueError, match=r"data.inputs.b: index 4 is out of range"):
        named_inputs(x, {"b": [4]})
    with pytest.raises(ValueError, match=r"data.inputs.b: a derived input"):
        named_inputs(x, {"b": {"derive": "fft"}})


def test_config_with_inputs_trains_basic_motions_two_sensors(tmp_path):
    pytest.importorskip("aeon")
    from mtlkit.config import parse_config
    from mtlkit.datasets import load
    from mtlkit.run import prepare_from_config

    b = load("basic_motions", split_inputs=True)
    assert b.data.input_shape == {"accel": (3, 100), "gyro": (3, 100)}
    plain = load("basic_motions")
    assert torch.equal(b.data.x["gyro"], plain.data.x[:, 3:])
    cfg = parse_config({"name": "mm", "data": {"dataset": "basic_motions",
                                               "inputs": {"accel": ["accel_x", "accel_y", "accel_z"], "gyro": [3, 4, 5]},
                                               "split": {"train": 0.75, "val": 0.25, "test": 0.0}}})
    prepared = prepare_from_config(cfg)
    assert prepared.input_shape == {"accel": (3, 100), "gyro": (3, 100)} and prepared.default_trunk == {}
    assert torch.equal(prepared.test.x["accel"], plain.test.x[:, :3])


def test_input_names_that_are_not_attribute_names():
    shapes = {"to.x": (4,), "type": (3,)}
    m = build_model({"name": "multimodal", "fusion": "concat"}, TASKS, shapes)
    x = {k: torch.randn(2, *s) for k, s in shapes.items()}
    assert m.input_names == ["to.x", "type"] and tuple(m(x)["c"].shape) == (2, 3)
    again = build_model(m.config, TASKS, shapes)
    again.load_state_dict(m.state_dict())


@pytest.mark.parametrize("module", ["mtlkit._batch", "mtlkit.architectures.multimodal", "mtlkit.inference",
                                    "mtlkit.distill"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder()
    names = {"mtlkit._batch": None, "mtlkit.architectures.multimodal": "Multimodal",
             "mtlkit.inference": "check_inputs", "mtlkit.distill": "ensemble_outputs"}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(mod):
        want = names[module]
        if want is None or test.name.endswith("." + want):
            runner.run(test)
    assert runner.failures == 0 and runner.tries > 0


def test_named_inputs_docstring_example():
    import doctest

    from mtlkit.run import data as run_data

    test = doctest.DocTestFinder().find(run_data.named_inputs, "named_inputs", globs={"torch": torch,
                                                                                        **vars(run_data)})[0]
    runner = doctest.DocTestRunner()
    runner.run(test)
    assert runner.failures == 0 and runner.tries > 0
