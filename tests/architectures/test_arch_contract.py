"""Every sharing architecture x trunk family: output shapes, the parameter split and where
gradients go, config round trip, and clear errors for bad hyperparameters."""

from __future__ import annotations

import json

import pytest
import torch
from _arch_builders import ARCHS, TRUNKS, build, expected_shape, inputs

from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures import build_model

FAMILIES = list(TRUNKS)


def _losses(model, out):
    return {name: (o.float() ** 2).mean() + o.float().mean() for name, o in out.items()}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("arch", ARCHS)
def test_output_shapes(arch, family):
    torch.manual_seed(0)
    m = build(arch, family)
    out = m(inputs(arch, family, n=4))
    assert list(out) == m.task_names
    for t in m.tasks:
        want = expected_shape(t, 4)
        assert tuple(out[t.name].shape) == want, (arch, family, t.name)
        assert torch.isfinite(out[t.name]).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_registered_under_file_stem(arch):
    assert ARCHITECTURES.get(arch).__module__.endswith("." + arch)
    assert ARCHITECTURES.get(arch).paper


def _grad_state(m, loss):
    m.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {id(p): (p.grad is not None and bool(p.grad.abs().sum() > 0)) for p in m.parameters()}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("arch", ARCHS)
def test_parameter_split_and_gradients(arch, family):
    """Shared and per-task parameters are disjoint; a task's loss reaches its own parameters and
    none of another task's; the total objective (losses + extra losses) reaches every parameter."""
    torch.manual_seed(1)
    m = build(arch, family)
    m.train()
    kw = {"task_ids": torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])} if arch == "adversarial" else {}
    x = inputs(arch, family, n=8, seed=1)
    out = m(x, **kw)
    losses = _losses(m, out)
    shared = {id(p) for p in m.shared_parameters()}
    own = {t: {id(p) for p in m.task_parameters(t)} for t in m.task_names}
    for t in m.task_names:
        assert not (own[t] & shared), f"{t}: a parameter is both shared and task-specific"
        for u in m.task_names:
            if u != t:
                assert not (own[t] & own[u]), f"{t} and {u} share a private parameter"
    for t in m.task_names:
        reached = _grad_state(m, losses[t])
        for u in m.task_names:
            if u == t:
                continue
            leaked = [pid for pid in own[u] if reached[pid]]
            assert not leaked, f"{arch}/{family}: the loss of {t!r} reaches {u!r}'s private parameters"
        # own parameters learn from the own loss (the contrastive task has none)
        assert all(reached[pid] for pid in own[t]), f"{arch}/{family}: {t!r} does not reach its own parameters"
    total = sum(losses.values()) + sum(m.extra_losses().values(), torch.zeros(()))
    reached = _grad_state(m, total)
    names = {id(p): n for n, p in m.named_parameters()}
    missing = [names[pid] for pid, ok in reached.items() if not ok]
    assert not missing, f"{arch}/{family}: no gradient for {missing}"
    # every shared parameter is reached by at least two tasks' losses
    if len(m.task_names) > 1:
        counts = dict.fromkeys(shared, 0)
        for t in m.task_names:
            r = _grad_state(m, losses[t])
            for pid in shared:
                counts[pid] += r[pid]
        assert all(c >= 2 for c in counts.values()), f"{arch}/{family}: a 'shared' parameter learns from < 2 tasks"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("arch", ARCHS)
def test_rebuild_from_json_config(arch, family):
    torch.manual_seed(2)
    m = build(arch, family).eval()
    cfg = json.loads(json.dumps(m.config))
    assert cfg["name"] == arch
    shape = TRUNKS[family][1] if arch != "siamese" else (2, *TRUNKS[family][1])
    m2 = build_model(cfg, m.tasks, shape).eval()
    assert type(m2) is type(m)
    m2.load_state_dict(m.state_dict())
    x = inputs(arch, family, n=3, seed=3)
    with torch.no_grad():
        a, b = m(x), m2(x)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_sharing_summary_is_json(arch):
    m = build(arch, "mlp")
    m(inputs(arch, "mlp"))
    m.extra_losses()
    json.dumps(m.sharing_summary())


@pytest.mark.parametrize("arch", ["mmoe", "ple", "cross_stitch", "soft_sharing", "adashare", "adversarial"])
def test_no_representation_is_rejected_at_representation_level(arch):
    from mtlkit import Trainer
    from mtlkit.aggregation.mean import Mean

    m = build(arch, "mlp")
    assert m.has_representation is False
    with pytest.raises(ValueError, match="representation"):
        Trainer(m, m.tasks, aggregator=Mean(), level="representation")


@pytest.mark.parametrize(("arch", "kwargs", "match"), [
    ("soft_sharing", {"strength": -1.0}, "'strength' parameter of SoftSharing must be a non-negative float. Got -1.0"),
    ("soft_sharing", {"penalty": "l1"}, "'penalty' parameter of SoftSharing"),
    ("cross_stitch", {"share": 1.0}, "'share' parameter of CrossStitch"),
    ("cross_stitch", {"stitch_after": ["nope"]}, "'stitch_after' parameter of CrossStitch"),
    ("ple", {"levels": 5}, "'levels' parameter of PLE"),
    ("adashare", {"temperature": 0.0}, "'temperature' parameter of AdaShare must be a positive float. Got 0.0"),
    ("adashare", {"warmup_steps": -1}, "'warmup_steps' parameter of AdaShare"),
    ("adversarial", {"adversarial_weight": float("nan")}, "'adversarial_weight' parameter"),
    ("fusion", {"fuse_blocks": [7]}, "'fuse_blocks' parameter of Fusion"),
])
def test_bad_hyperparameters_are_named(arch, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(arch, "mlp", **kwargs)


def test_mmoe_bad_num_experts():
    from mtlkit.architectures.mmoe import MMoE

    with pytest.raises(ValueError, match=r"'num_experts' parameter of MMoE must be a positive integer\. Got 0\."):
        MMoE({"name": "mlp", "hidden": [4]}, build("mmoe", "mlp").tasks, input_shape=(5,), num_experts=0)
