"""MTAN, DSelect-k and Learning to Branch: the registry-wide contract (the functions of
test_arch_contract.py and test_arch_weighting_matrix.py run on these three), each method's
defining property, the config round trip, training through ``mtlkit.Trainer`` and from YAML."""

from __future__ import annotations

import doctest
import importlib
import json
import math

import numpy as np
import pytest
import test_arch_contract as contract
import test_arch_weighting_matrix as matrix
import torch
import yaml
from _arch_builders import TRUNKS, build, inputs
from torch import nn
from typer.testing import CliRunner

from mtlkit import HardSharing, MultiTaskData, Task, Trainer, from_arrays
from mtlkit._registry import AGGREGATORS, WEIGHTINGS
from mtlkit.aggregation.mean import Mean
from mtlkit.architectures import MTAN, DSelectK, LearningToBranch, build_model
from mtlkit.architectures.backbones import build_trunk, mlp
from mtlkit.architectures.dselect_k import binary_codes, selector_outputs, smooth_step
from mtlkit.cli import get_app
from mtlkit.weighting.equal import Equal

NEW = ["mtan", "dselect_k", "learning_to_branch"]
FAMILIES = list(TRUNKS)
TWO = [Task("a", "binary"), Task("b", "regression")]
THREE = [Task("a", "binary"), Task("b", "binary"), Task("c", "regression")]
runner = CliRunner()


# =========================================================================== the registry-wide contract
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("arch", NEW)
def test_contract_output_shapes(arch, family):
    contract.test_output_shapes(arch, family)


@pytest.mark.parametrize("arch", NEW)
def test_contract_registered_under_file_stem(arch):
    contract.test_registered_under_file_stem(arch)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("arch", NEW)
def test_contract_parameter_split_and_gradients(arch, family):
    contract.test_parameter_split_and_gradients(arch, family)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("arch", NEW)
def test_contract_rebuild_from_json_config(arch, family):
    contract.test_rebuild_from_json_config(arch, family)


@pytest.mark.parametrize("arch", NEW)
def test_contract_sharing_summary_is_json(arch):
    contract.test_sharing_summary_is_json(arch)


@pytest.mark.parametrize("arch", NEW)
def test_contract_no_representation_is_rejected_at_representation_level(arch):
    contract.test_no_representation_is_rejected_at_representation_level(arch)


@pytest.fixture(scope="module")
def matrix_data():
    r = np.random.default_rng(0)
    x = r.normal(size=(96, 5)).astype("float32")
    return from_arrays(x, {"a": (x[:, 0] > 0).astype(float), "b": x[:, 1] - x[:, 2]}, matrix.TASKS)


@pytest.mark.parametrize("weighting", WEIGHTINGS.names())
@pytest.mark.parametrize("arch", NEW)
def test_contract_trains_with_every_weighting(arch, weighting, matrix_data):
    if not getattr(WEIGHTINGS.get(weighting), "needs_validation_batch", False):
        matrix.test_architecture_trains_with_weighting(arch, weighting, matrix_data)
        return
    # bilevel weightings (Auto-λ, MOML, FORUM) learn from validation batches: give them some
    model = matrix._model(arch)
    shared = list(model.shared_parameters())
    before = [p.detach().clone() for p in shared]
    trainer = Trainer(model, matrix.TASKS, weighting=WEIGHTINGS.build(weighting), epochs=1, batch_size=32, lr=1e-2,
                      progress=False, seed=0)
    losses = trainer.fit(matrix_data, matrix_data).records[-1]["train_loss"]
    assert all(np.isfinite(v) for v in losses.values()), (arch, weighting, losses)
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, shared)), (arch, weighting)


@pytest.mark.parametrize("aggregator", AGGREGATORS.names())
@pytest.mark.parametrize("arch", NEW)
def test_contract_trains_with_every_aggregator(arch, aggregator, matrix_data):
    matrix.test_architecture_trains_with_aggregator(arch, aggregator, matrix_data)


@pytest.mark.parametrize(("arch", "kwargs", "match"), [
    ("mtan", {"head_hidden": [0]}, r"The 'head_hidden' parameter of MTAN must be a sequence of positive integers"),
    ("dselect_k", {"num_experts": 1}, r"The 'num_experts' parameter of DSelectK must be an integer >= 2\. Got 1\."),
    ("dselect_k", {"k": 4}, r"The 'k' parameter of DSelectK must be an integer in \[1, 3\]\. Got 4\."),
    ("dselect_k", {"gamma": 0.0}, r"The 'gamma' parameter of DSelectK must be a positive float\. Got 0\.0\."),
    ("dselect_k", {"entropy_weight": -1.0}, r"The 'entropy_weight' parameter of DSelectK must be a non-negative"),
    ("dselect_k", {"gate": "dense"}, r"The 'gate' parameter of DSelectK must be one of 'per_example', 'static'"),
    ("learning_to_branch", {"temperature": 0.0}, r"The 'temperature' parameter of LearningToBranch must be a "
                                                 r"positive float\. Got 0\.0\."),
    ("learning_to_branch", {"temperature_decay": 1.5}, r"'temperature_decay' parameter of LearningToBranch"),
    ("learning_to_branch", {"decay_every": 0}, r"'decay_every' parameter of LearningToBranch"),
    ("learning_to_branch", {"tree_lr_scale": -1.0}, r"'tree_lr_scale' parameter of LearningToBranch"),
    ("learning_to_branch", {"hard_sampling": 1}, r"'hard_sampling' parameter of LearningToBranch must be a bool"),
    ("learning_to_branch", {"branches": [1, 0]}, r"'branches' parameter of LearningToBranch must be a non-empty "
                                                 r"sequence of positive integers"),
    ("learning_to_branch", {"branches": [1, 2, 3]}, r"'branches' parameter of LearningToBranch must give one node "
                                                    r"count per trunk block \['block1', 'block2'\]"),
    ("learning_to_branch", {"tree_sampling": "max"}, r"'tree_sampling' parameter of LearningToBranch must be one "
                                                     r"of 'argmax', 'sample'"),
])
def test_bad_hyperparameters_are_named(arch, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(arch, "mlp", **kwargs)


def test_mtlkit_list_shows_them_with_their_papers():
    res = runner.invoke(get_app(), ["list", "architectures"])
    assert res.exit_code == 0, res.output
    assert "mtan — Liu, Johns & Davison 2019, End-to-End Multi-Task Learning with Attention" in res.output
    assert "dselect_k — Hazimeh et al. 2021, DSelect-k: Differentiable Selection in the Mixture of Experts" \
        in res.output
    assert "learning_to_branch — Guo, Lee & Ulbricht 2020, Learning to Branch for Multi-Task Learning" in res.output
    assert "gamma=1.0" in res.output and "entropy_weight=0.001" in res.output


@pytest.mark.parametrize("module", ["mtan", "dselect_k", "learning_to_branch"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(f"mtlkit.architectures.{module}"),
                             optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# =========================================================================== MTAN
def _force_masks_to_one(m: MTAN) -> None:
    """Last layer of every attention module -> sigmoid(50) == 1.0 exactly in float32."""
    with torch.no_grad():
        for t in m.task_names:
            for att in m.attention[t]:
                last = att[-2]  # the layer before the sigmoid: BN (maps) or Linear (flat)
                last.weight.zero_()
                last.bias.fill_(50.0)


@pytest.mark.parametrize("family", FAMILIES)
def test_mtan_masks_have_the_block_shapes_and_lie_in_0_1(family):
    torch.manual_seed(0)
    m = build("mtan", family)
    x = inputs("mtan", family, n=4)
    shared = m.shared_features(x)
    for t, masks in m.attention_masks(x).items():
        assert [a.shape for a in masks] == [h.shape for h in shared], t
        assert all(bool(((a > 0) & (a < 1)).all()) for a in masks)


@pytest.mark.parametrize("family", FAMILIES)
def test_mtan_with_masks_one_task_features_are_the_shared_features(family):
    """The defining property: a_tj = 1 gives â_tj = h_j at every block, and MTAN equals hard
    sharing with the same trunk and heads."""
    torch.manual_seed(1)
    spec, shape = TRUNKS[family]
    m = build("mtan", family)
    _force_masks_to_one(m)
    x = inputs("mtan", family, n=5, seed=2)
    for mode in ("train", "eval"):
        m.train(mode == "train")
        shared, feats = m.task_features(x)
        for t in m.task_names:
            assert all(bool((a == 1).all()) for a in m.attention_masks(x)[t])
            for h, f in zip(shared, feats[t]):
                assert torch.equal(h, f)
    m.eval()
    hs = HardSharing(build_trunk(spec, shape), m.tasks, input_shape=shape).eval()
    for j, block in enumerate(m.blocks):
        hs.shared[j].load_state_dict(block.state_dict())
    for t in m.task_names:
        hs.heads[t].load_state_dict(m.heads[t].state_dict())
    with torch.no_grad():
        a, b = m(x), hs(x)
    for t in m.task_names:
        torch.testing.assert_close(a[t], b[t], rtol=0, atol=0)


def test_mtan_each_task_chain_takes_its_previous_attended_features():
    """a_t2 reads f_2(â_t1): changing task a's first attention module changes a's second mask
    and none of task b's."""
    torch.manual_seed(2)
    m = build("mtan", "lenet").eval()
    x = inputs("mtan", "lenet", n=3)
    before = m.attention_masks(x)
    with torch.no_grad():
        for p in m.attention["a"][0].parameters():
            p.add_(0.5)
    after = m.attention_masks(x)
    assert not torch.allclose(before["a"][1], after["a"][1])
    for t in ("b", "c"):
        assert all(torch.equal(u, v) for u, v in zip(before[t], after[t]))


def test_mtan_flat_attention_is_a_per_feature_sigmoid_gate():
    torch.manual_seed(3)
    m = MTAN({"name": "mlp", "hidden": [6, 4]}, TWO, input_shape=(5,))
    att = m.attention["a"]
    assert [type(layer) for layer in att[0]] == [nn.Linear, nn.ReLU, nn.Linear, nn.Sigmoid]
    assert att[0][0].in_features == 6 and att[1][0].in_features == 8  # [h_2; f_2(â_1)]
    x = torch.randn(3, 5)
    h1 = m.blocks[0](x)
    a1 = torch.sigmoid(att[0][2](torch.relu(att[0][0](h1))))
    h2 = m.blocks[1](h1)
    a2 = torch.sigmoid(att[1][2](torch.relu(att[1][0](torch.cat([h2, m.extractors[0](a1 * h1)], 1)))))
    want = m.heads["a"](a2 * h2).reshape(-1)
    torch.testing.assert_close(m(x)["a"], want)


def test_mtan_sharing_summary_logs_mean_masks():
    torch.manual_seed(4)
    m = build("mtan", "cnn1d")
    assert m.sharing_summary() == {}
    x = inputs("mtan", "cnn1d", n=6)
    masks = m.attention_masks(x)
    m(x)
    s = m.sharing_summary()
    assert s["attention_blocks"] == m.block_names
    for t, ms in masks.items():
        np.testing.assert_allclose(s["attention"][t], [float(a.detach().double().mean()) for a in ms], rtol=1e-6)


# =========================================================================== DSelect-k
def test_smooth_step_values_and_continuity():
    g = 2.0
    t = torch.tensor([-5.0, -1.0, -0.5, 0.0, 0.5, 1.0, 5.0], dtype=torch.float64)
    want = [0.0, 0.0, -2 / 8 * (-0.125) + 3 / 4 * (-0.5) + 0.5, 0.5, -2 / 8 * 0.125 + 3 / 4 * 0.5 + 0.5, 1.0, 1.0]
    torch.testing.assert_close(smooth_step(t, g), torch.tensor(want, dtype=torch.float64))
    # C1 at ±γ/2: value 0/1 and derivative 0 from inside
    e = torch.tensor([-1.0 + 1e-7, 1.0 - 1e-7], dtype=torch.float64, requires_grad=True)
    s = smooth_step(e, g)
    s.sum().backward()
    assert abs(float(s[0].detach())) < 1e-12 and abs(float(s[1].detach()) - 1) < 1e-12
    assert float(e.grad.abs().max()) < 1e-6


def test_selectors_are_a_distribution_over_all_codes_and_one_hot_when_binary():
    z = torch.rand(7, 3)
    r = selector_outputs(z, binary_codes(8))
    torch.testing.assert_close(r.sum(-1), torch.ones(7))
    onehot = selector_outputs(torch.tensor([[1.0, 0.0, 1.0]]), binary_codes(8))
    assert onehot.tolist() == [[0, 0, 0, 0, 0, 1, 0, 0]]  # code 101 = expert 5


def test_dselect_k_gate_matches_the_papers_formula():
    """Static gate, n = 4, k = 2, γ = 1: selector 1 inside the smooth region, selector 2
    saturated on code 10 (expert 2)."""
    m = DSelectK({"name": "mlp", "hidden": [4]}, TWO, input_shape=(3,), num_experts=4, k=2, gate="static")
    gate = m.gates["a"]
    with torch.no_grad():
        gate.z_logits.copy_(torch.tensor([[0.1, -0.2], [0.6, -0.6]]))
        gate.w_logits.copy_(torch.tensor([0.3, -0.1]))
    s1, s2 = -2 * 0.1 ** 3 + 1.5 * 0.1 + 0.5, -2 * (-0.2) ** 3 + 1.5 * (-0.2) + 0.5
    r1 = [(1 - s1) * (1 - s2), (1 - s1) * s2, s1 * (1 - s2), s1 * s2]
    w1, w2 = math.exp(0.3) / (math.exp(0.3) + math.exp(-0.1)), math.exp(-0.1) / (math.exp(0.3) + math.exp(-0.1))
    want = [w1 * r for r in r1]
    want[2] += w2
    q, r = gate(torch.zeros(2, 3))
    torch.testing.assert_close(q, torch.tensor([want, want]))
    # the entropy regulariser of this gate: Σ_i H(r_i), H(r) = −Σ r log(r + 1e-6)
    h1 = -sum(v * math.log(v + 1e-6) for v in r1)
    h2 = -(1.0 * math.log(1.0 + 1e-6))
    got = m.entropy_loss({"a": r})
    assert math.isclose(float(got.detach()), h1 + h2, rel_tol=1e-5)


@pytest.mark.parametrize(("num_experts", "k"), [(4, 2), (8, 3), (5, 2), (3, 3), (6, 1)])
@pytest.mark.parametrize("gate", ["per_example", "static"])
def test_saturated_gates_select_exactly_k_experts_with_weights_summing_to_one(num_experts, k, gate):
    """The defining property: once every smooth step is saturated (|α| >= γ/2) each selector
    is one-hot, so k selectors on k distinct experts give exactly k nonzero weights summing
    to 1, for every input."""
    torch.manual_seed(num_experts * 10 + k)
    gamma = 0.5
    m = DSelectK({"name": "mlp", "hidden": [4]}, THREE, input_shape=(5,), num_experts=num_experts, k=k,
                 gamma=gamma, gate=gate)
    codes = binary_codes(num_experts)
    x = torch.randn(16, 5)
    for t in m.task_names:
        chosen = torch.randperm(num_experts)[:k]
        alpha = (codes[chosen] * 2 - 1) * gamma * (0.5 + torch.rand(k, codes.shape[1]))  # |α| >= γ/2
        beta = torch.randn(k)
        g = m.gates[t]
        with torch.no_grad():
            if gate == "static":
                g.z_logits.copy_(alpha)
                g.w_logits.copy_(beta)
            else:
                g.z_map.weight.zero_()
                g.z_map.bias.copy_(alpha.reshape(-1))
                g.w_map.weight.normal_()  # β may depend on the input: still exactly k experts
                g.w_map.bias.copy_(beta)
        q = m.gate_weights(x)[t]
        nonzero = q > 0
        assert bool((nonzero.sum(1) == k).all()), q
        assert bool((nonzero == torch.zeros(num_experts, dtype=torch.bool).index_fill(0, chosen, True)).all())
        torch.testing.assert_close(q.sum(1), torch.ones(16))
    m.train()
    m(x)
    losses = m.extra_losses()
    assert float(losses["dselect_k_entropy"].detach()) < 1e-4  # one-hot selectors have (almost) no entropy
    if "dselect_k_reachable" in losses:
        assert float(losses["dselect_k_reachable"].detach()) == 0.0


def test_dselect_k_with_k1_saturated_is_one_expert_and_its_tower():
    torch.manual_seed(5)
    m = DSelectK({"name": "mlp", "hidden": [6]}, TWO, input_shape=(5,), num_experts=4, k=1, gate="static").eval()
    with torch.no_grad():
        m.gates["a"].z_logits.copy_(torch.tensor([[-1.0, 1.0]]))  # code 01 = expert 1
    x = torch.randn(4, 5)
    want = m.towers["a"](m.experts[1](x)).reshape(-1)
    torch.testing.assert_close(m(x)["a"], want)


def test_dselect_k_regularisers_are_extra_losses_with_their_weights():
    torch.manual_seed(6)
    m = DSelectK({"name": "mlp", "hidden": [4]}, TWO, input_shape=(5,), num_experts=3, k=2, entropy_weight=0.25)
    assert m.extra_losses() == {}  # nothing before a training pass
    m.eval()
    m(torch.randn(4, 5))
    assert m.extra_losses() == {}  # evaluation passes are not regularised
    m.train()
    m(torch.randn(4, 5))
    losses = m.extra_losses()
    assert set(losses) == {"dselect_k_entropy", "dselect_k_reachable"}  # 3 experts: 4 codes, one unreachable
    assert math.isclose(float(losses["dselect_k_entropy"].detach()), 0.25 * float(m.entropy_loss().detach()), rel_tol=1e-6)
    assert float(losses["dselect_k_reachable"].detach()) > 0  # at the start some mass sits on code 11
    sum(losses.values()).backward()
    assert m.gates["a"].z_map.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in m.experts.parameters())  # the regularisers concern the gates only


def test_dselect_k_entropy_regulariser_drives_the_gates_to_k_experts():
    """A strong entropy regulariser (the paper's device to converge sooner) saturates the
    static gates within a few hundred steps: then at most k experts per task (fewer when two
    selectors settle on the same expert)."""
    torch.manual_seed(7)
    m = DSelectK({"name": "mlp", "hidden": [4]}, TWO, input_shape=(3,), num_experts=4, k=2, gate="static",
                 entropy_weight=1.0)
    opt = torch.optim.Adam([p for t in m.task_names for p in m.gates[t].parameters()], lr=0.05)
    x = torch.randn(8, 3)
    for _ in range(300):
        opt.zero_grad()
        m(x)
        sum(m.extra_losses().values()).backward()
        opt.step()
    for q in m.gate_weights(x).values():
        assert bool(((q > 0).sum(1) <= 2).all())
        torch.testing.assert_close(q.sum(1), torch.ones(8))
    m.sharing_summary()  # a new logging window: the passes after training only
    m(x)
    assert all(v <= 2 for v in m.sharing_summary()["nonzero_experts"].values())


# =========================================================================== Learning to Branch
SPEC3 = {"name": "mlp", "hidden": [8, 8, 8]}


def _l2b(**kw) -> LearningToBranch:
    return LearningToBranch(SPEC3, THREE, input_shape=(4,), **kw)


def _assert_valid_tree(tree, branches, names):
    """Every node has exactly one parent, in the previous block (block 1: the input, 0), and
    every task one node of the last block."""
    assert set(tree) == {"parents", "tasks"}
    parents = tree["parents"]
    assert [len(p) for p in parents] == branches
    assert all(p == 0 for p in parents[0])
    for b in range(1, len(parents)):
        assert all(isinstance(p, int) and 0 <= p < branches[b - 1] for p in parents[b])
    assert list(tree["tasks"]) == names
    assert all(isinstance(v, int) and 0 <= v < branches[-1] for v in tree["tasks"].values())


def test_sampled_trees_are_valid_trees_and_seeded():
    torch.manual_seed(8)
    m = _l2b(branches=[2, 3, 3])
    with torch.no_grad():
        for p in m.parent_logits.values():
            p.normal_()
        for p in m.task_logits.values():
            p.normal_()
    trees = [m.sample_tree(torch.Generator().manual_seed(s)) for s in range(20)]
    for tree in trees:
        _assert_valid_tree(tree, m.branches, m.task_names)
        assert m.check_tree(tree) == tree  # the model's own validation accepts it
    assert len({json.dumps(t) for t in trees}) > 1  # random
    assert m.sample_tree(torch.Generator().manual_seed(3)) == trees[3]  # seeded
    _assert_valid_tree(m.most_probable_tree(), m.branches, m.task_names)
    # a hard Gumbel-softmax draw selects exactly one parent per node
    for logits in m.parent_logits.values():
        d = torch.nn.functional.gumbel_softmax(logits, tau=1.0, hard=True)
        assert bool((d.sum(-1) == 1).all()) and bool(((d == 0) | (d == 1)).all())


def test_sampling_follows_the_learned_probabilities():
    m = _l2b()
    with torch.no_grad():  # node 0 of block 3 prefers parent 2 with probability 0.7
        m.parent_logits["2"][0].copy_(torch.log(torch.tensor([0.1, 0.2, 0.7])) / m.tree_lr_scale)
    g = torch.Generator().manual_seed(0)
    picks = [m.sample_tree(g)["parents"][2][0] for _ in range(2000)]
    freq = np.bincount(picks, minlength=3) / 2000
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.7], atol=0.04)
    assert m.most_probable_tree()["parents"][2][0] == 2


def _hand_built(m: LearningToBranch, tree, x):
    """The branched network of ``tree`` written out by hand: each task's path of nodes."""
    out = {}
    for t in m.tasks:
        node = tree["tasks"][t.name]
        path = [node]
        for b in (2, 1):
            path.append(tree["parents"][b][path[-1]])
        path = path[::-1]
        h = x
        for b, i in enumerate(path):
            h = m.node(b, i)(h)
        out[t.name] = t.shape_output(m.heads[t.name](h))
    return out


def test_with_a_fixed_tree_the_forward_is_the_hand_built_branched_network():
    torch.manual_seed(9)
    tree = {"parents": [[0], [0, 0], [0, 1]], "tasks": {"a": 0, "b": 1, "c": 1}}
    m = _l2b(tree=tree)
    assert m.is_fixed() and m.current_tree() == tree and m.branches == [1, 2, 2]
    x = torch.randn(5, 4)
    for mode in (True, False):  # a fixed tree is not sampled, even in training
        m.train(mode)
        got, want = m(x), _hand_built(m, tree, x)
        for t in m.task_names:
            torch.testing.assert_close(got[t], want[t], rtol=0, atol=0)
    # b and c share the whole trunk; a branches off after block 1
    h1 = m.node(0, 0)(x)
    torch.testing.assert_close(m(x)["b"], m.heads["b"](m.node(2, 1)(m.node(1, 1)(h1))).reshape(-1), rtol=0, atol=0)


def test_a_fixed_tree_split_after_block_one_is_hard_sharing_split_there():
    torch.manual_seed(10)
    tree = {"parents": [[0], [0, 0, 0], [0, 1, 2]], "tasks": {"a": 0, "b": 1, "c": 2}}
    m = _l2b(tree=tree).eval()
    hs = HardSharing(mlp(4, (8, 8, 8)), THREE, split_at=1).eval()
    hs.shared[0].load_state_dict(m.node(0, 0).state_dict())
    for i, t in enumerate(m.task_names):
        hs.branches[t][0].load_state_dict(m.node(1, i).state_dict())
        hs.branches[t][1].load_state_dict(m.node(2, i).state_dict())
        hs.heads[t].load_state_dict(m.heads[t].state_dict())
    x = torch.randn(6, 4)
    a, b = m(x), hs(x)
    for t in m.task_names:
        torch.testing.assert_close(a[t], b[t], rtol=0, atol=0)


def test_while_searching_evaluation_takes_the_most_probable_tree():
    torch.manual_seed(11)
    m = _l2b()
    with torch.no_grad():
        for p in m.parent_logits.values():
            p.normal_()
        for p in m.task_logits.values():
            p.normal_()
    m.eval()
    x = torch.randn(4, 4)
    tree = m.most_probable_tree()
    got, want = m(x), _hand_built(m, tree, x)
    for t in m.task_names:
        torch.testing.assert_close(got[t], want[t], rtol=0, atol=0)
    # in training the parents are mixed by a Gumbel-softmax sample: the output is random
    m.train()
    torch.manual_seed(0)
    o1 = m(x)["a"]
    o2 = m(x)["a"]
    assert not torch.equal(o1, o2) and int(m.step) == 2


def test_fixed_tree_parameter_split():
    """A node on several tasks' paths is shared, on one task's path that task's; the pruned
    model has only the nodes on the paths and no logits."""
    torch.manual_seed(12)
    tree = {"parents": [[0], [0, 0, 0], [0, 1, 1]], "tasks": {"a": 0, "b": 1, "c": 2}}
    m = _l2b(tree=tree)
    assert sorted(m.nodes[1]) == ["0", "1"] and sorted(m.nodes[2]) == ["0", "1", "2"]  # node (1, 2) pruned
    assert not list(m.parent_logits) and not list(m.task_logits)
    ids = lambda mods: {id(p) for mod in mods for p in mod.parameters()}  # noqa: E731
    assert {id(p) for p in m.shared_parameters()} == ids([m.node(0, 0), m.node(1, 1)])
    assert {id(p) for p in m.task_parameters("a")} == ids([m.node(1, 0), m.node(2, 0), m.heads["a"]])
    assert {id(p) for p in m.task_parameters("c")} == ids([m.node(2, 2), m.heads["c"]])
    assert {id(p) for p in m.last_shared_parameters()} == ids([m.node(1, 1)])
    m.train()
    out = m(torch.randn(6, 4))
    own = {t: {id(p) for p in m.task_parameters(t)} for t in m.task_names}
    for t in m.task_names:  # a task's loss reaches its own parameters and no other task's
        m.zero_grad(set_to_none=True)
        out[t].float().pow(2).mean().backward(retain_graph=True)
        reached = {id(p) for p in m.parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0)}
        assert own[t] <= reached
        assert not any(own[u] & reached for u in m.task_names if u != t)
    assert m.sharing_summary() == {"tree": tree, "tree_fixed": True, "tree_blocks": ["block1", "block2", "block3"],
                                   "task_groups": [[["a", "b", "c"]], [["a"], ["b", "c"]], [["a"], ["b"], ["c"]]]}


def test_fix_tree_in_place_argmax_and_sample():
    torch.manual_seed(13)
    m = _l2b()
    with torch.no_grad():
        for p in m.parent_logits.values():
            p.normal_()
        for p in m.task_logits.values():
            p.normal_()
    best = m.most_probable_tree()
    assert m.fix_tree(sample=False) == best == m.current_tree()
    assert m.is_fixed() and m.sharing_summary()["tree_fixed"] is True
    m.train()
    x = torch.randn(3, 4)
    torch.testing.assert_close(m(x)["a"], _hand_built(m, best, x)["a"], rtol=0, atol=0)
    # the fixed tree survives the state_dict into a model rebuilt from the (search) config
    rebuilt = build_model(json.loads(json.dumps(m.config)), THREE, (4,))
    rebuilt.load_state_dict(m.state_dict())
    assert rebuilt.is_fixed() and rebuilt.current_tree() == best
    other = _l2b(tree_sampling="sample")
    with torch.no_grad():
        for p in other.parent_logits.values():
            p.normal_()
    a = other.fix_policy(generator=torch.Generator().manual_seed(1))  # the runner's name; seeded draw
    other.tree_fixed.fill_(False)
    assert other.fix_tree(generator=torch.Generator().manual_seed(1)) == a


def test_retrain_model_is_a_fresh_pruned_network_with_the_tree():
    torch.manual_seed(14)
    m = _l2b(retrain=True)
    tree = {"parents": [[0], [0, 0, 0], [1, 1, 1]], "tasks": {"a": 0, "b": 1, "c": 1}}
    cfg = m.retrain_config(tree)
    assert cfg["tree"] == tree and cfg["retrain"] is False and cfg["branches"] == [1, 3, 3]
    fresh = m.retrain_model(tree)
    assert fresh.is_fixed() and fresh.current_tree() == tree and fresh.config == cfg
    assert sorted(fresh.nodes[1]) == ["1"] and sorted(fresh.nodes[2]) == ["0", "1"]
    # phase 2 rebuilds from JSON alone, with the tree
    again = build_model(json.loads(json.dumps(fresh.config)), THREE, (4,))
    assert again.current_tree() == tree and list(again.state_dict()) == list(fresh.state_dict())
    # a user trunk is copied and re-initialised
    trunk = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8))
    user = LearningToBranch(trunk, THREE, input_shape=(4,), branches=[1, 2, 2])
    t2 = {"parents": [[0], [0, 0], [0, 1]], "tasks": {"a": 0, "b": 0, "c": 1}}
    fresh_user = user.retrain_model(t2)
    assert fresh_user.current_tree() == t2
    assert not torch.equal(fresh_user.node(0, 0).weight, user.node(0, 0).weight)


@pytest.mark.parametrize(("tree", "message"), [
    ({"parents": [[0], [0, 0]]}, "must be a mapping with the keys 'parents'"),
    ({"parents": [[0], [0, 0]], "tasks": {"a": 0, "b": 0, "c": 0}}, "one non-empty list per trunk block"),
    ({"parents": [[1], [0, 0], [0, 1]], "tasks": {"a": 0, "b": 0, "c": 0}}, "block 1 must be 0 (the input)"),
    ({"parents": [[0], [0, 1], [0, 1]], "tasks": {"a": 0, "b": 0, "c": 0}},
     r"block 2 must be a node of block 1 in [0, 1). Got 1"),
    ({"parents": [[0], [0, 0], [0, 2]], "tasks": {"a": 0, "b": 0, "c": 0}}, "Got 2 in [0, 2]"),
    ({"parents": [[0], [0, 0], [0, 1]], "tasks": {"a": 0, "b": 0}}, "has no node for task(s) ['c']"),
    ({"parents": [[0], [0, 0], [0, 1]], "tasks": {"a": 0, "b": 0, "c": 0, "d": 0}}, "unknown task(s) ['d']"),
    ({"parents": [[0], [0, 0], [0, 1]], "tasks": {"a": 0, "b": 2, "c": 0}}, "task 'b' must read a node of the last"),
    ({"parents": [[0], [0, 0], [0, 1.5]], "tasks": {"a": 0, "b": 0, "c": 0}}, "Got 1.5"),
])
def test_bad_trees_are_rejected_clearly(tree, message):
    with pytest.raises(ValueError, match="The 'tree' parameter of LearningToBranch") as err:
        _l2b(tree=tree)
    assert message in str(err.value)


def test_tree_with_retrain_and_inconsistent_branches_are_rejected():
    tree = {"parents": [[0], [0, 0], [0, 1]], "tasks": {"a": 0, "b": 0, "c": 1}}
    with pytest.raises(ValueError, match="'retrain' parameter of LearningToBranch needs a tree to learn"):
        _l2b(tree=tree, retrain=True)
    with pytest.raises(ValueError, match=r"gives block 2 .* 2 nodes; 'branches' says 3"):
        _l2b(tree=tree, branches=[1, 3, 3])


def test_learning_to_branch_summary_while_searching():
    m = _l2b()
    s = m.sharing_summary()
    assert s["tree_fixed"] is False and s["temperature"] == 5.0
    assert s["parent_probabilities"][0] == [[1.0], [1.0], [1.0]]  # block 2: the one node of block 1
    assert s["parent_probabilities"][1] == [[round(1 / 3, 6)] * 3] * 3
    assert s["task_parent_probabilities"]["a"] == [round(1 / 3, 6)] * 3
    assert s["task_groups"][0] == [["a", "b", "c"]]
    json.dumps(s)


def test_temperature_decays_with_training_passes():
    m = _l2b(temperature=2.0, temperature_decay=0.5, decay_every=3)
    m.train()
    x = torch.randn(2, 4)
    for _ in range(7):
        m(x)
    assert int(m.step) == 7 and m.current_temperature() == 2.0 * 0.5 ** 2
    with torch.no_grad():
        m(x)  # no learning pass: not counted
    assert int(m.step) == 7


def test_primary_only_export_of_a_fixed_tree():
    from mtlkit.export import primary_only

    tasks = [Task("y", "binary"), Task("aux", "regression", role="auxiliary"), Task("z", "binary")]
    tree = {"parents": [[0], [0, 0, 0], [0, 1, 2]], "tasks": {"y": 0, "aux": 1, "z": 0}}
    m = LearningToBranch(SPEC3, tasks, input_shape=(4,), tree=tree)
    small, primary = primary_only(m, tasks, (4,))  # checks the primary outputs are unchanged
    assert [t.name for t in primary] == ["y", "z"]
    assert small.current_tree() == {"parents": tree["parents"], "tasks": {"y": 0, "z": 0}}
    assert sorted(small.nodes[1]) == ["0"]


# =========================================================================== training and configs
PARAMS = {"mtan": {}, "dselect_k": {"num_experts": 3, "k": 2}, "learning_to_branch": {"decay_every": 5}}


def _fit(arch, data, tasks, **trainer_kw):
    torch.manual_seed(0)
    model = build_model({"name": arch, "trunk": {"name": "mlp", "hidden": [16, 8]}, **PARAMS[arch]}, tasks,
                        data.input_shape)
    trainer = Trainer(model, tasks, epochs=3, batch_size=50, lr=1e-2, progress=False, seed=0, **trainer_kw)
    return model, trainer.fit(data)


@pytest.mark.parametrize("arch", NEW)
def test_trains_with_the_trainer_and_rebuilds_from_its_config(arch, two_task_data):
    data, tasks = two_task_data
    model, history = _fit(arch, data, tasks, weighting=Equal())
    first = sum(history.records[0]["train_loss"].values())
    last = sum(history.records[-1]["train_loss"].values())
    assert np.isfinite(last) and last < first, f"{arch}: loss did not fall ({first:.4f} -> {last:.4f})"
    json.dumps(history.records[-1].get("sharing", {}))
    if arch == "dselect_k":
        assert set(history.records[-1]["penalties"]) == {"dselect_k_entropy", "dselect_k_reachable"}
    cfg = json.loads(json.dumps(model.config))
    rebuilt = build_model(cfg, tasks, data.input_shape)
    rebuilt.load_state_dict(model.state_dict())
    model.eval()
    rebuilt.eval()
    with torch.no_grad():
        a, b = model(data.x[:20]), rebuilt(data.x[:20])
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.parametrize("arch", NEW)
def test_trains_with_a_gradient_method(arch, two_task_data):
    data, tasks = two_task_data
    _, history = _fit(arch, data, tasks, aggregator=Mean(), level="parameters")
    assert sum(history.records[-1]["train_loss"].values()) < sum(history.records[0]["train_loss"].values())


def _image_data(n: int = 120, shape=(1, 16, 16)) -> tuple[MultiTaskData, list[Task]]:
    r = np.random.default_rng(0)
    x = r.normal(size=(n, *shape)).astype("float32")
    flat = x.reshape(n, -1)
    tasks = [Task("up", "binary"), Task("level", "regression")]
    return from_arrays(x, {"up": (flat[:, :20].mean(1) > 0).astype(float), "level": flat[:, 20:60].mean(1)},
                       tasks), tasks


@pytest.mark.parametrize("family", ["cnn1d", "lenet"])
@pytest.mark.parametrize("arch", NEW)
def test_yaml_config_with_a_stock_conv_trunk_runs(arch, family):
    """``model.architecture: {name: ...}`` with the stock trunks, from YAML through the runner."""
    from mtlkit.config import parse_config
    from mtlkit.run import prepare, run

    spec, shape = TRUNKS[family]
    data, tasks = _image_data(shape=shape)
    text = (f"# mtlkit train {arch}.yaml\n"
            f"name: {arch}_{family}\n"
            "data: {in_memory: true}\n"
            "tasks: [{name: up, kind: binary}, {name: level, kind: regression}]\n"
            f"model:\n  trunk: {json.dumps(spec)}\n  architecture: {{name: {arch}}}\n"
            "training: {epochs: 1, batch_size: 32}\n"
            "baselines: false\n")
    cfg = parse_config(yaml.safe_load(text), source="test")
    res = run(cfg, prepare(data, tasks, seed=0), out_dir=None, progress=False)
    assert type(res.model).__name__ == {"mtan": "MTAN", "dselect_k": "DSelectK",
                                        "learning_to_branch": "LearningToBranch"}[arch]
    assert res.model.config["trunk"]["name"] == family
    assert np.isfinite(res.summary["mtl"]["test"]["level"]["mae"])


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    import pandas as pd

    tmp = tmp_path_factory.mktemp("new_arch_e2e")
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(240, 6)), columns=list("abcdef"))
    df["y1"] = (df["a"] + df["b"] > 0).astype(int)
    df["y2"] = df["a"] - df["c"]
    df.to_csv(tmp / "data.csv", index=False)
    return tmp


CLI_CASES = {
    "mtan": ({}, "pcgrad"),
    "dselect_k": ({"num_experts": 4, "k": 2, "gamma": 0.5}, "mgda"),
    "learning_to_branch": ({"retrain": True, "decay_every": 4}, "upgrad"),
}


@pytest.mark.parametrize("arch", sorted(CLI_CASES))
def test_yaml_cli_run_saves_and_loads_the_model(arch, table):
    from mtlkit.run import load_model

    params, method = CLI_CASES[arch]
    spec = {"name": arch, "seed": 0, "data": {"path": str(table / "data.csv"), "features": list("abcdef")},
            "tasks": [{"name": "y1", "kind": "binary"}, {"name": "y2", "kind": "regression"}],
            "model": {"trunk": {"name": "mlp", "hidden": [16, 12, 8]}, "architecture": {"name": arch, **params}},
            "training": {"epochs": 2, "batch_size": 64, "aggregator": {"name": method}}, "baselines": False}
    cfg = table / f"{arch}.yaml"
    cfg.write_text(f"# mtlkit train {arch}.yaml\n" + yaml.safe_dump(spec))
    out = table / f"run_{arch}"
    res = runner.invoke(get_app(), ["train", str(cfg), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    assert np.isfinite(s["mtl"]["test"]["y1"]["roc_auc"]) and np.isfinite(s["mtl"]["test"]["y2"]["mae"])
    model, meta = load_model(out)  # rebuilt from model.json, weights from safetensors
    assert meta["architecture"]["name"] == arch
    assert set(model(torch.zeros(3, 6))) == {"y1", "y2"}
    if arch == "learning_to_branch":  # two phases: the run's model is the retrained one, with the tree
        tree = s["search_phase"]["policy"]
        _assert_valid_tree(tree, [1, 2, 2], ["y1", "y2"])
        assert model.is_fixed() and model.current_tree() == tree and meta["architecture"]["tree"] == tree
        search, _ = load_model(out / "search")
        assert not search.is_fixed()
