"""Task names are whatever a CSV header holds: every registered architecture builds, runs,
trains and round-trips its state with tasks named like ``nn.Module`` attributes (``type``,
``to``, ``cuda`` ...), with dots, spaces or accents; ordinary names keep the state_dict keys
of plain ``nn.ModuleDict`` / ``nn.ParameterDict`` containers (saved runs keep loading)."""

from __future__ import annotations

import json

import pytest
import torch
from _arch_builders import TRUNKS

import mtlkit.architectures._layers as layers
from mtlkit import Task
from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures import build_model
from mtlkit.architectures._layers import TaskModuleDict, TaskParameterDict, module_key, task_name

ALL = ARCHITECTURES.names()
#: names a CSV header may hold that cannot be ``nn.Module`` child names as they are
ODD = ["type", "to.x", "cuda", "train", "eval", "half", "to", "a.b", "keys", "training", "%x", " ",
       ".", "%2E", "state_dict"]
#: names that could always be module keys
PLAIN = ["weight", "my task", "é", "a%2Eb", "0", "Income_2"]

EXTRA = {"mmoe": {"num_experts": 3}, "ple": {"levels": 2, "num_shared_experts": 2, "num_task_experts": 1}}


def tasks_for(arch: str, names: list[str]) -> list[Task]:
    kinds = [("binary", {}), ("multiclass", {"num_classes": 3}), ("regression", {"dim": 2})]
    out = [Task(n, kinds[i % 3][0], **kinds[i % 3][1]) for i, n in enumerate(names)]
    if arch == "siamese":  # the first task is the embedding distance, the others read one side
        out = [Task(names[0], "contrastive")] + [Task(n, "multiclass", num_classes=3) for n in names[1:]]
    return out


def make(arch: str, names: list[str], family: str = "mlp", seed: int = 0):
    spec, shape = TRUNKS[family]
    shape = (2, *shape) if arch == "siamese" else shape
    shape = {"left": shape, "right": shape} if arch == "multimodal" else shape  # several named inputs
    if arch == "caml":  # reads ID fields: user, item and the user's history (a bag of items)
        fields = [{"name": "user", "vocab": 6, "dim": 4}, {"name": "item", "vocab": 9, "dim": 4},
                  {"name": "history", "share": "item", "dim": 4, "length": 3}]
        spec, shape = {**spec, "input": {"dense": 1, "fields": fields}}, (1 + 1 + 1 + 3,)
    torch.manual_seed(seed)
    tasks = tasks_for(arch, names)
    cfg = {"name": arch, "trunk": spec, **EXTRA.get(arch, {})}
    if arch == "deep_supervision":
        cfg["attach"] = {names[0]: 0}
    return build_model(cfg, tasks, shape), tasks, shape


def run(model, shape, n: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = ({k: torch.randn(n, *s, generator=g) for k, s in shape.items()} if isinstance(shape, dict)
         else torch.randn(n, *shape, generator=g))
    if type(model).__name__ == "CAML":  # ID columns after the dense one: integer IDs in every vocabulary
        x[:, 1:] = torch.randint(1, 6, (n, x.shape[1] - 1), generator=g).float()
    return x, model(x)


@pytest.mark.parametrize("names", [["type", "to.x", "cuda"], ["a.b", "weight", "my task", "é"]],
                         ids=["attributes", "mixed"])
@pytest.mark.parametrize("arch", ALL)
def test_every_architecture_takes_any_task_name(arch, names):
    m, tasks, shape = make(arch, names)
    m.train()
    x, out = run(m, shape)
    assert list(out) == names  # keyed by the original names, in task order
    for t in tasks:
        assert out[t.name].shape[0] == 6
        assert torch.isfinite(out[t.name]).all()
    loss = sum(o.float().pow(2).mean() for o in out.values()) + sum(m.extra_losses().values(), torch.zeros(()))
    loss.backward()
    for t in tasks:
        own = list(m.task_parameters(t.name))
        if t.kind != "contrastive":
            assert own, f"{arch}: no parameters for task {t.name!r}"
            assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in own), t.name
    json.dumps(m.sharing_summary())

    # state_dict -> a model rebuilt from the JSON config: same outputs
    m.eval()
    cfg = json.loads(json.dumps(m.config))
    m2 = build_model(cfg, tasks, shape).eval()
    m2.load_state_dict(m.state_dict())
    with torch.no_grad():
        a, b = m(x), m2(x)
    assert list(b) == names
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.parametrize("arch", ALL)
def test_many_odd_names_at_once(arch):
    names = ODD + PLAIN
    m, tasks, shape = make(arch, names)
    _, out = run(m, shape, n=4)
    assert list(out) == names
    sd = m.state_dict()
    m2, _, _ = make(arch, names, seed=5)
    m2.load_state_dict(sd)
    assert all(torch.equal(v, m2.state_dict()[k]) for k, v in sd.items())


def test_the_escaping_rule():
    assert [module_key(n) for n in ["type", "to.x", "cuda", "", ".", "%a", "%2E", "keys"]] == [
        "%type", "%to%2Ex", "%cuda", "%", "%%2E", "%%25a", "%%252E", "%keys"]
    for n in ["a", "weight", "my task", "é", "0", "a%2Eb", "Income_2"]:
        assert module_key(n) == n
    for n in [*ODD, *PLAIN, "", "%%", "%25", "a.%.b", "%.%"]:
        assert task_name(module_key(n)) == n
        assert task_name(module_key(n, TaskParameterDict)) == n
        assert "." not in module_key(n) and module_key(n)
    keys = [module_key(n) for n in ODD + PLAIN]
    assert len(set(keys)) == len(keys)


def test_containers_show_the_task_names():
    d = TaskModuleDict({n: torch.nn.Linear(1, 1) for n in ODD + PLAIN})
    assert list(d) == list(d.keys()) == [k for k, _ in d.items()] == ODD + PLAIN
    assert all(n in d for n in ODD + PLAIN) and "nope" not in d and 3 not in d
    p = TaskParameterDict({n: torch.nn.Parameter(torch.zeros(1)) for n in ODD + PLAIN})
    assert sorted(p) == sorted(ODD + PLAIN)  # a plain dict is sorted by ParameterDict, as in torch
    assert all(p[n].shape == (1,) for n in ODD + PLAIN)
    del p["type"], d["type"]
    assert "type" not in p and "type" not in d


ORDINARY = ["a", "b_2", "Income", "0"]


@pytest.mark.parametrize("arch", ALL)
def test_ordinary_names_keep_todays_state_dict_keys(arch, monkeypatch):
    keys = list(make(arch, ORDINARY)[0].state_dict())
    # with the names used as they are, the containers are plain ModuleDict / ParameterDict
    monkeypatch.setattr(layers, "module_key", lambda name, container=None: name)
    plain = list(make(arch, ORDINARY)[0].state_dict())
    assert keys == plain
    assert not any("%" in k for k in keys)


def test_hard_sharing_keys_are_pinned():
    keys = set(make("hard_sharing", ["a", "b_2"])[0].state_dict())
    assert {"heads.a.0.weight", "heads.a.0.bias", "heads.b_2.0.weight", "heads.b_2.0.bias"} <= keys
    keys = set(make("hard_sharing", ["type", "to.x"])[0].state_dict())
    assert {"heads.%type.0.weight", "heads.%to%2Ex.0.weight"} <= keys
    keys = set(make("adashare", ["cuda", "a"])[0].state_dict())
    assert {"logits.%cuda", "logits.a", "heads.%cuda.0.weight", "heads.a.0.weight"} <= keys


@pytest.mark.parametrize("name", ["type", "train", "eval", "half", "to", "cuda", "a.b", "weight", "my task",
                                  "é", " ", "to.x", "%x"])
def test_task_accepts_csv_header_names(name):
    t = Task(name, "regression")
    assert t.name == name and t.label_columns == (name,)
