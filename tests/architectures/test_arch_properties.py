"""Defining properties and hand-worked values of the sharing architectures."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from _arch_builders import build, inputs
from torch import nn

from mtlkit import HardSharing, Task
from mtlkit.architectures._layers import GradientReversal, grad_reverse
from mtlkit.architectures.adashare import AdaShare
from mtlkit.architectures.adversarial import AdversarialSharedPrivate, orthogonality_penalty
from mtlkit.architectures.backbones import mlp
from mtlkit.architectures.cross_stitch import CrossStitch
from mtlkit.architectures.deep_supervision import DeepSupervision
from mtlkit.architectures.fusion import Fusion
from mtlkit.architectures.mmoe import MMoE
from mtlkit.architectures.siamese import contrastive_loss, make_pairs
from mtlkit.architectures.soft_sharing import SoftSharing, l2_to_mean, trace_norm

TWO = [Task("a", "binary"), Task("b", "binary")]


def _set_linear(lin: nn.Linear, w, b) -> None:
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
        lin.bias.copy_(torch.as_tensor(b, dtype=torch.float32))


# --------------------------------------------------------------------------- gates
@pytest.mark.parametrize("family", ["mlp", "cnn1d", "lenet"])
def test_mmoe_gates_sum_to_one_and_are_logged_as_means(family):
    torch.manual_seed(0)
    m = build("mmoe", family)
    x1, x2 = inputs("mmoe", family, n=3, seed=1), inputs("mmoe", family, n=5, seed=2)
    g = m.gate_weights(torch.cat([x1, x2]))
    for w in g.values():
        assert (w >= 0).all()
        torch.testing.assert_close(w.sum(1), torch.ones(8))
    assert m.sharing_summary() == {}  # nothing since construction (gate_weights does not log)
    m(x1)
    m(x2)
    summary = m.sharing_summary()["gates"]
    for t, w in g.items():  # the sample-weighted mean over both passes
        np.testing.assert_allclose(summary[t], w.double().mean(0).tolist(), rtol=1e-6)
        assert math.isclose(sum(summary[t]), 1.0, rel_tol=1e-6)
    assert m.sharing_summary()["gates"] == summary  # nothing new: the last means again
    m(x2)
    for t, w in m.gate_weights(x2).items():  # a new window: only the passes since the last read
        np.testing.assert_allclose(m.sharing_summary()["gates"][t], w.double().mean(0).tolist(), rtol=1e-6)


def test_ple_gates_sum_to_one():
    m = build("ple", "mlp")
    m(inputs("ple", "mlp", n=6))
    gates = m.sharing_summary()["gates"]
    assert set(gates) == {"a", "b", "c"}
    for w in gates.values():
        assert len(w) == 1 + 2  # own expert, then the two shared ones
        assert math.isclose(sum(w), 1.0, rel_tol=1e-6)


def test_cgc_without_task_experts_is_mmoe_structure():
    from mtlkit.architectures.ple import PLE

    m = PLE({"name": "mlp", "hidden": [4]}, TWO, input_shape=(3,), levels=1, num_shared_experts=3,
            num_task_experts=0)
    assert len(list(m.task_parameters("a"))) == len(list(MMoE({"name": "mlp", "hidden": [4]}, TWO, input_shape=(3,),
                                                               num_experts=3).task_parameters("a")))


# --------------------------------------------------------------------------- soft sharing
def _tiny_soft(penalty: str, strength: float) -> SoftSharing:
    trunk = nn.Sequential(OrderedDict(lin=nn.Linear(1, 1)))
    m = SoftSharing(trunk, TWO, input_shape=(1,), penalty=penalty, strength=strength)
    _set_linear(m.columns["a"].lin, [[1.0]], [0.0])
    _set_linear(m.columns["b"].lin, [[3.0]], [2.0])
    return m


def test_soft_sharing_l2_penalty_hand_value():
    m = _tiny_soft("l2", 0.5)
    # W: mean 2 -> (1-2)^2 + (3-2)^2 = 2 ; b: mean 1 -> 1 + 1 = 2
    assert float(m.distance().detach()) == pytest.approx(4.0)
    assert float(m.extra_losses()["soft_sharing"].detach()) == pytest.approx(2.0)
    assert m.sharing_summary()["penalty"] == pytest.approx(4.0)
    # K = 2: Σ_t ||W_t - W̄||² = ½ ||W_1 - W_2||² (Duong et al.)
    w = torch.randn(2, 3, 4)
    assert float(l2_to_mean(w)) == pytest.approx(0.5 * float(((w[0] - w[1]) ** 2).sum()), rel=1e-5)


def test_soft_sharing_trace_norm_hand_value():
    m = _tiny_soft("trace_norm", 1.0)
    # W stack [[1],[3]] -> sqrt(10); b stack [[0],[2]] -> 2
    assert float(m.distance().detach()) == pytest.approx(math.sqrt(10) + 2.0, rel=1e-6)
    three = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # singular values 1, 1
    assert float(trace_norm(three)) == pytest.approx(2.0, rel=1e-6)


def test_soft_sharing_identical_columns_have_zero_l2_penalty_and_gradient_pulls_together():
    m = _tiny_soft("l2", 1.0)
    m.extra_losses()["soft_sharing"].backward()
    # d/dW_a Σ (W_t - W̄)^2 = 2 (W_a - W̄) = -2 ; for W_b +2
    assert float(m.columns["a"].lin.weight.grad) == pytest.approx(-2.0)
    assert float(m.columns["b"].lin.weight.grad) == pytest.approx(2.0)


# --------------------------------------------------------------------------- adversarial
def test_orthogonality_penalty_hand_value():
    s = torch.eye(2)
    p = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert float(orthogonality_penalty(s, p)) == pytest.approx(30.0 / 4)
    # feature columns orthogonal over the samples -> 0
    assert float(orthogonality_penalty(torch.tensor([[1.0], [0.0]]), torch.tensor([[0.0], [5.0]]))) == 0.0


def _tiny_asp(**kw) -> AdversarialSharedPrivate:
    trunk = nn.Sequential(OrderedDict(lin=nn.Linear(2, 2)))
    m = AdversarialSharedPrivate(trunk, TWO, input_shape=(2,), **kw)
    _set_linear(m.shared.lin, torch.eye(2), [0.0, 0.0])
    _set_linear(m.private["a"].lin, [[1.0, 2.0], [3.0, 4.0]], [0.0, 0.0])
    _set_linear(m.private["b"].lin, torch.zeros(2, 2), [0.0, 0.0])
    return m


def test_adversarial_orthogonality_from_the_model():
    m = _tiny_asp(orthogonality_weight=0.1)
    m(torch.eye(2))  # every sample belongs to both tasks
    # S = I, P_a = x W_aᵀ = [[1,3],[2,4]] -> ||SᵀP_a||² = 30, / N² = 7.5 ; P_b = 0
    assert float(m.difference_loss().detach()) == pytest.approx(7.5)
    extra = m.extra_losses()
    assert float(extra["orthogonality"].detach()) == pytest.approx(0.75)
    assert float(extra["adversarial"].detach()) == 0.0  # no sample with a task identity
    assert "discriminator_accuracy" not in m.sharing_summary()
    # with task ids: sample 0 is task a only -> S_a = [1,0], P_a = [1,3] -> 10 / 1
    m(torch.eye(2), task_ids=torch.tensor([0, 1]))
    assert float(m.difference_loss().detach()) == pytest.approx(10.0)


def test_adversarial_loss_is_cross_entropy_and_reverses_into_the_encoder():
    m = _tiny_asp(adversarial_weight=1.0, reversal_strength=0.5)
    _set_linear(m.discriminator, [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    x = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    m(x, task_ids=torch.tensor([0, 0]))
    # D logits = s = x; CE for target 0: mean(-log softmax([2,0])_0, -log softmax([0,1])_0)
    want = 0.5 * (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(1.0)))
    adv = m.adversarial_loss()
    assert float(adv.detach()) == pytest.approx(want, rel=1e-6)
    m.zero_grad()
    adv.backward()
    d_grad = m.discriminator.weight.grad.clone()
    enc_grad = m.shared.lin.weight.grad.clone()
    # the same loss without reversal: the encoder's gradient is -1/0.5 = -2 times the reversed one
    m.zero_grad()
    s = m.shared(x)
    logits = m.discriminator(s)
    plain = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0]))
    plain.backward()
    torch.testing.assert_close(m.discriminator.weight.grad, d_grad)
    torch.testing.assert_close(enc_grad, -0.5 * m.shared.lin.weight.grad)


def test_adversarial_task_ids_from_masks_feature_and_accuracy():
    m = _tiny_asp()
    x = torch.randn(4, 2)
    m.observe_batch({"a": torch.tensor([True, False, True, True]), "b": torch.tensor([False, True, False, True])})
    m(x)
    member = m._last[2]
    assert member.tolist() == [[True, False], [False, True], [True, False], [True, True]]
    acc = m.sharing_summary()["discriminator_accuracy"]  # over the 3 single-task samples
    assert acc in (0.0, 1 / 3, 2 / 3, 1.0)
    # the task id as an input column gives the same outputs as task_ids
    m2 = AdversarialSharedPrivate({"name": "mlp", "hidden": [3]}, TWO, input_shape=(3,), task_id_feature=1)
    xi = torch.tensor([[0.5, 0.0, 1.0], [0.2, 1.0, -1.0]])
    out = m2(xi)
    assert m2._last[2].tolist() == [[True, False], [False, True]]
    s_direct = m2.shared(xi[:, [0, 2]])
    torch.testing.assert_close(m2._last[0], s_direct)  # the id column is not an encoder input
    assert out["a"].shape == (2,)


def test_gradient_reversal_multiplies_gradient_by_minus_lambda():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    c = torch.tensor([0.5, 2.0, -1.0])
    (grad_reverse(x, 0.3) * c).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * c)
    y = torch.randn(4, requires_grad=True)
    out = GradientReversal(strength=2.0)(y)
    torch.testing.assert_close(out, y)  # identity forward
    out.sum().backward()
    torch.testing.assert_close(y.grad, torch.full((4,), -2.0))
    with pytest.raises(ValueError, match="'strength' parameter of GradientReversal"):
        GradientReversal(strength=-1.0)


# --------------------------------------------------------------------------- cross-stitch
@pytest.mark.parametrize("family", ["mlp", "lenet"])
def test_cross_stitch_with_identity_units_equals_independent_columns(family):
    torch.manual_seed(0)
    m = build("cross_stitch", family, share=0.0).eval()
    x = inputs("cross_stitch", family, n=3)
    out = m(x)
    for t in m.tasks:
        h = x
        for block in m.columns[t.name]:
            h = block(h)
        want = t.shape_output(m.heads[t.name](h.reshape(3, -1)))
        torch.testing.assert_close(out[t.name], want, rtol=0, atol=0)
    # a mixed unit changes the outputs
    m2 = build("cross_stitch", family, share=0.3).eval()
    m2.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("units")}, strict=False)
    assert not torch.equal(m2(x)["a"], out["a"])


def test_cross_stitch_units_start_near_identity_and_mix_linearly():
    m = CrossStitch({"name": "mlp", "hidden": [4, 4]}, TWO, input_shape=(3,), share=0.2, unit_scale=10.0,
                    stitch_after=["block1"])
    assert m.sharing_summary()["cross_stitch"] == [[[0.8, 0.2], [0.2, 0.8]]]
    assert list(m.task_parameters("a"))  # block2 and the head are task-specific
    torch.testing.assert_close(m.units["block1"] * 10.0, m.unit("block1"))


# --------------------------------------------------------------------------- AdaShare
@pytest.mark.parametrize("training", [True, False])
def test_adashare_with_all_select_policy_equals_hard_sharing(training):
    torch.manual_seed(0)
    trunk = mlp(5, (6, 6, 4))
    ada = AdaShare(trunk, TWO, input_shape=(5,))
    ada.set_policy({"a": [1, 1, 1], "b": [1, 1, 1]})
    hard = HardSharing(trunk, TWO, input_shape=(5,))  # the very same trunk weights
    hard.heads.load_state_dict(ada.heads.state_dict())
    ada.train(training)
    hard.train(training)
    x = torch.randn(7, 5)
    a, h = ada(x), hard(x)
    for k in h:
        torch.testing.assert_close(a[k], h[k], rtol=0, atol=0)


def test_adashare_regularisers_hand_values():
    m = AdaShare({"name": "mlp", "hidden": [4, 4]}, TWO, input_shape=(3,), policy_lr_scale=2.0)
    with torch.no_grad():  # stored logits are the effective ones / policy_lr_scale
        m.logits["a"].copy_(torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]]) / 2.0)  # select probs 0.75, 0.5
        m.logits["b"].zero_()  # 0.5, 0.5
    # sparsity: a: mean(-log .25, -log .5) = 1.5 ln2 ; b: ln2
    assert float(m.sparsity_loss().detach()) == pytest.approx(2.5 * math.log(2), rel=1e-6)
    # sharing: weights (B - b)/B = [0.5, 0] -> 0.5 * |0.75 - 0.5|
    assert float(m.sharing_loss().detach()) == pytest.approx(0.125, rel=1e-6)
    extra = m.extra_losses()
    assert float(extra["adashare_sparsity"].detach()) == pytest.approx(0.05 * 2.5 * math.log(2), rel=1e-6)
    assert m.sharing_summary()["policy"]["a"] == [0.75, 0.5]


def test_adashare_schedule_warmup_curriculum_and_temperature():
    m = AdaShare({"name": "mlp", "hidden": [4, 4, 4]}, TWO, input_shape=(3,), warmup_steps=2, curriculum_steps=3,
                 temperature=5.0, temperature_decay=0.5, decay_every=2)
    m.train()
    x = torch.randn(2, 3)
    seen = []
    for _ in range(10):
        seen.append((m.learnable_blocks(), m.current_temperature(), bool(m.extra_losses())))
        m(x)
    assert [s[0] for s in seen] == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert [s[1] for s in seen][:6] == [5.0, 5.0, 5.0, 5.0, 2.5, 2.5]
    assert [s[2] for s in seen][:3] == [False, False, True]  # no regulariser during warm-up
    assert int(m.step) == 10
    with torch.no_grad():
        m.eval()
        m(x)
    assert int(m.step) == 10  # evaluation does not advance the schedule


def test_adashare_fix_policy_is_seeded_and_used():
    m = AdaShare({"name": "mlp", "hidden": [4, 4, 4]}, TWO, input_shape=(3,))
    with torch.no_grad():
        m.logits["a"].copy_(torch.tensor([[5.0, -5.0], [-5.0, 5.0], [0.0, 0.0]]))
    p1 = m.fix_policy(generator=torch.Generator().manual_seed(0))
    m.unfix_policy()
    p2 = m.fix_policy(generator=torch.Generator().manual_seed(0))
    assert p1 == p2
    assert p1["a"][:2] == [1, 0]
    assert m.sharing_summary()["policy"]["a"] == [float(v) for v in p1["a"]]
    assert m.extra_losses() == {}
    # a skipped block is bypassed: changing its weights does not change task a
    x = torch.randn(2, 3)
    before = m(x)["a"].detach().clone()
    with torch.no_grad():
        m.blocks[1][0].weight.add_(1.0)
    torch.testing.assert_close(m(x)["a"], before)
    with pytest.raises(ValueError, match="shape"):
        m.set_policy(torch.ones(3, 3))


@pytest.mark.parametrize("family", ["mlp", "cnn1d", "lenet"])
def test_adashare_skip_paths(family):
    from _arch_builders import TRUNKS

    spec, shape = TRUNKS[family]
    pool = AdaShare(spec, TWO, input_shape=shape)
    hard = HardSharing(nn.Sequential(*pool.blocks), TWO, input_shape=shape)
    # parameter-free skips: hard sharing's parameters plus 2 logits per task and block
    n_blocks = len(pool.blocks)
    assert sum(p.numel() for p in pool.parameters()) == sum(p.numel() for p in hard.parameters()) + 2 * 2 * n_blocks
    proj = AdaShare(spec, TWO, input_shape=shape, skip="projection")
    x = torch.randn(3, *shape)
    for m in (pool, proj):
        m.set_policy({"a": [0] * n_blocks, "b": [1] + [0] * (n_blocks - 1)})  # skip (almost) everything
        out = m(x)
        assert out["a"].shape == (3,) and torch.isfinite(out["a"]).all()


# --------------------------------------------------------------------------- fusion / deep supervision
def test_fusion_encode_decode_and_taps():
    m = Fusion({"name": "lenet", "channels": [2, 3], "hidden": 6}, TWO, input_shape=(1, 16, 16),
               fuse_blocks=["conv1", "fc"], pool_size=2, fusion_dim=5)
    assert m.fuse[0].in_features == 2 * 2 * 2 + 6
    x = torch.randn(3, 1, 16, 16)
    out = m(x)
    dec = m.decode(m.encode(x))
    for k in out:
        torch.testing.assert_close(out[k], dec[k])


def test_deep_supervision_user_sequential_by_layer_name():
    trunk = nn.Sequential(OrderedDict(
        stem=nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU()),
        body=nn.Sequential(nn.Conv1d(4, 5, 3, padding=1), nn.ReLU()),
        top=nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(5, 3), nn.ReLU())))
    tasks = [Task("landmarks", "regression", dim=2), Task("au", "binary"), Task("expr", "multiclass", num_classes=4)]
    m = DeepSupervision(trunk, tasks, attach={"landmarks": "stem", "au": 1}, input_shape=(2, 10))
    assert m.depth == {"landmarks": 0, "au": 1, "expr": 2}
    x = torch.randn(3, 2, 10)
    out = m(x)
    want = m.heads["landmarks"](trunk.stem(x).mean(-1))  # global average pool of the stem
    torch.testing.assert_close(out["landmarks"], want)
    assert m.has_representation is False
    # 'body' is shared (au and expr), 'top' belongs to expr only
    shared = {id(p) for p in m.shared_parameters()}
    assert all(id(p) in shared for p in trunk.body.parameters())
    assert {id(p) for p in trunk.top.parameters()} <= {id(p) for p in m.task_parameters("expr")}
    with pytest.raises(ValueError, match="'attach' parameter of DeepSupervision"):
        DeepSupervision(trunk, tasks, attach={"au": "nope"}, input_shape=(2, 10))


# --------------------------------------------------------------------------- siamese
def test_contrastive_loss_hand_values():
    d = torch.tensor([0.0, 1.0, 0.5, 3.0])
    same = torch.tensor([1.0, 1.0, 0.0, 0.0])
    # 0, ½·1, ½·(2 - 0.5)², ½·max(0, 2-3)² = 0
    want = (0.0 + 0.5 + 0.5 * 1.5 ** 2 + 0.0) / 4
    assert float(contrastive_loss(d, same, 2.0)) == pytest.approx(want)
    mask = torch.tensor([True, True, False, False])
    assert float(contrastive_loss(d, same, 2.0, mask=mask)) == pytest.approx(0.25)
    t = Task("contrastive", "contrastive", margin=2.0)
    r = t.evaluate(torch.tensor([0.1, 0.2, 3.0, 2.5]), torch.tensor([1.0, 1.0, 0.0, 0.0]),
                   torch.ones(4, dtype=torch.bool))
    assert r == {"roc_auc": 1.0, "accuracy": 1.0}
    # the rule "similar ⇔ d < margin / 2": 0.9 < 1 is called similar, 1.2 is not
    r = t.evaluate(torch.tensor([0.9, 1.2, 1.5, 0.5]), torch.tensor([1.0, 1.0, 0.0, 0.0]),
                   torch.ones(4, dtype=torch.bool))
    assert r["accuracy"] == pytest.approx(0.5) and r["roc_auc"] == pytest.approx(0.5)


def test_siamese_distance_is_embedding_distance_and_pairs():
    m = build("siamese", "mlp")
    x = inputs("siamese", "mlp", n=3)
    out = m(x)
    e0, e1 = m.embed(x[:, 0]), m.embed(x[:, 1])
    torch.testing.assert_close(out["contrastive"], (e0 - e1).norm(dim=1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["left"], m.heads["left"](e0))
    torch.testing.assert_close(out["right"], m.heads["right"](e1))
    p = make_pairs(np.arange(40).reshape(20, 2), np.repeat(np.arange(5), 4), 50, same_fraction=0.4, seed=3)
    assert p["same"].sum() == 20
    assert torch.equal(p["same"], (p["label_a"] == p["label_b"]).float())
    assert not (p["x"][:, 0] == p["x"][:, 1]).all(1).any()  # two different samples
    p2 = make_pairs(np.arange(40).reshape(20, 2), np.repeat(np.arange(5), 4), 50, same_fraction=0.4, seed=3)
    assert torch.equal(p["x"], p2["x"])
