"""Each method's update rule against values worked out by hand from its paper's formula."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mtlkit import HardSharing, Task, Trainer
from mtlkit.aggregation import Mean
from mtlkit.architectures.backbones import mlp
from mtlkit.jacobian import jacobian
from mtlkit.weighting import (
    DBMTL,
    DWA,
    FAMO,
    GLS,
    IMTLL,
    RLW,
    Equal,
    GradNorm,
    InverseSize,
    Static,
    StepContext,
    Uncertainty,
)
from mtlkit.weighting._optim import AdamState
from mtlkit.weighting.dbmtl import dbmtl_update
from mtlkit.weighting.famo import famo_logits_gradient
from mtlkit.weighting.gradnorm import gradnorm_weight_gradient

LR = 0.025  # GradNorm's and FAMO's default learning rate


def close(a, b, tol=1e-5):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float32),
                               torch.as_tensor(b, dtype=torch.float32), atol=tol, rtol=tol)


def adam_by_hand(grads: list[float], lr: float = LR, wd: float = 0.0, x0: float = 0.0) -> float:
    """Scalar Adam (Kingma & Ba, with L2 weight decay added to the gradient) written out."""
    x, m, v = x0, 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        g = g + wd * x
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        x -= lr * (m / (1 - 0.9**t)) / (math.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return x


# ----------------------------------------------------------------------------- Equal, Static
def test_equal_is_the_sum_and_static_the_weighted_sum():
    losses = torch.tensor([0.5, 2.0, 7.0])
    assert float(Equal()(losses, StepContext()).objective) == pytest.approx(9.5)
    w = Static(weights={"a": 1.0, "b": 0.1, "c": 0.0})
    w.setup(["a", "b", "c"])
    r = w(losses, StepContext())
    assert float(r.objective.detach()) == pytest.approx(0.5 + 0.2)
    close(r.weights, [1.0, 0.1, 0.0])


# ----------------------------------------------------------------------------- InverseSize
def test_inverse_size_weights_by_hand():
    w = InverseSize()
    w.setup(["a", "b", "c"], {"a": 100, "b": 300, "c": 600})
    # 1/n = (1/100, 1/300, 1/600) = (6, 2, 1)/600 -> 3 * (6, 2, 1)/9
    r = w(torch.tensor([1.0, 1.0, 1.0]), StepContext())
    close(r.weights, [2.0, 2 / 3, 1 / 3])
    assert float(r.weights.sum()) == pytest.approx(3.0)


def test_inverse_size_uses_ctx_sizes_and_rejects_missing():
    w = InverseSize()
    w.setup(["a", "b"])
    r = w(torch.tensor([1.0, 1.0]), StepContext(task_sizes={"a": 10, "b": 30}))
    close(r.weights, [1.5, 0.5])
    with pytest.raises(ValueError, match="task sizes"):
        fresh = InverseSize()
        fresh.setup(["a", "b"])
        fresh(torch.tensor([1.0, 1.0]), StepContext())
    with pytest.raises(ValueError, match="labelled sample"):
        InverseSize().setup(["a", "b"], {"a": 0, "b": 3})


# ----------------------------------------------------------------------------- Uncertainty
def test_uncertainty_objective_and_gradient_by_hand():
    w = Uncertainty(task_kinds={"reg": "regression", "cls": "classification"})
    w.setup(["reg", "cls"])
    with torch.no_grad():
        w.log_variance.copy_(torch.tensor([math.log(2.0), 0.0]))  # σ²_reg = 2, σ²_cls = 1
    losses = torch.tensor([4.0, 3.0], requires_grad=True)
    r = w(losses, StepContext())
    # regression: L/(2σ²) + log σ = 4/4 + ½ log 2 ; classification: L/σ² + log σ = 3 + 0
    assert float(r.objective.detach()) == pytest.approx(1.0 + 0.5 * math.log(2.0) + 3.0)
    close(r.weights, [0.25, 1.0])
    r.objective.backward()
    # ∂/∂s = -c·e^{-s}·L + ½ : (-½·½·4 + ½, -1·3 + ½)
    close(w.log_variance.grad, [-0.5, -2.5])
    close(losses.grad, [0.25, 1.0])


def test_uncertainty_reads_task_kinds_from_task_specs_and_defaults_to_regression():
    tasks = [Task("y", "regression"), Task("c", "multiclass", num_classes=3), Task("b", "binary")]
    w = Uncertainty()
    w.setup_from_tasks(tasks)
    assert w.kinds_ == {"y": "regression", "c": "multiclass", "b": "binary"}
    close(w(torch.ones(3), StepContext()).weights, [0.5, 1.0, 1.0])
    plain = Uncertainty()
    plain.setup(["y", "c"])
    close(plain(torch.ones(2), StepContext()).weights, [0.5, 0.5])
    with pytest.raises(ValueError, match="unknown task"):
        Uncertainty(task_kinds={"zz": "regression"}).setup(["y"])


def test_uncertainty_minimiser_is_sigma2_equal_to_loss():
    # ∂/∂s (½e^{-s}L + ½s) = 0  <=>  e^{s} = L
    w = Uncertainty()
    w.setup(["a"])
    with torch.no_grad():
        w.log_variance.fill_(math.log(5.0))
    w(torch.tensor([5.0]), StepContext()).objective.backward()
    assert float(w.log_variance.grad) == pytest.approx(0.0, abs=1e-6)


# ----------------------------------------------------------------------------- IMTL-L
def test_imtll_objective_and_gradient_by_hand():
    w = IMTLL()
    w.setup(["a", "b"])
    with torch.no_grad():
        w.log_scale.copy_(torch.tensor([0.0, math.log(2.0)]))
    losses = torch.tensor([2.0, 0.5], requires_grad=True)
    r = w(losses, StepContext())
    # e^0·2 − 0 + 2·0.5 − log 2
    assert float(r.objective.detach()) == pytest.approx(3.0 - math.log(2.0))
    close(r.weights, [1.0, 2.0])
    r.objective.backward()
    close(w.log_scale.grad, [2.0 - 1.0, 1.0 - 1.0])  # e^{s}L − 1


# ----------------------------------------------------------------------------- GLS
def test_gls_geometric_mean_and_weights_by_hand():
    losses = torch.tensor([1.0, 4.0, 2.0], requires_grad=True)
    r = GLS()(losses, StepContext())
    assert float(r.objective.detach()) == pytest.approx(2.0)  # (1·4·2)^{1/3}
    close(r.weights, [2 / 3, 2 / 12, 2 / 6])  # objective / (K·L_k)
    r.objective.backward()
    close(losses.grad, r.weights)


def test_gls_absent_task_is_left_out_of_the_product():
    r = GLS()(torch.tensor([1.0, 4.0, 0.0]), StepContext(present=torch.tensor([True, True, False])))
    assert float(r.objective.detach()) == pytest.approx(2.0)
    close(r.weights, [1.0, 0.25, 0.0])


# ----------------------------------------------------------------------------- DWA
def test_dwa_weights_after_given_epoch_losses():
    w = DWA(temperature=2.0)
    w.setup(["a", "b"])
    losses = torch.tensor([1.0, 1.0])
    close(w(losses, StepContext()).weights, [1.0, 1.0])  # epoch 1
    w.on_epoch_end(0, torch.tensor([1.0, 2.0]))
    close(w(losses, StepContext()).weights, [1.0, 1.0])  # epoch 2: still 1
    w.on_epoch_end(1, torch.tensor([0.5, 1.8]))
    # r = (0.5/1, 1.8/2) = (0.5, 0.9);  λ = 2·exp(r/2)/Σ exp(r/2)
    e = [math.exp(0.25), math.exp(0.45)]
    close(w(losses, StepContext()).weights, [2 * e[0] / sum(e), 2 * e[1] / sum(e)])
    close(w(losses, StepContext()).weights, [0.900320, 1.099680])
    w.on_epoch_end(2, torch.tensor([0.4, 1.7]))
    # r = (0.4/0.5, 1.7/1.8) = (0.8, 0.94444)
    e = [math.exp(0.4), math.exp(0.94444444 / 2)]
    close(w(losses, StepContext()).weights, [2 * e[0] / sum(e), 2 * e[1] / sum(e)])


def test_dwa_temperature_flattens_and_undefined_ratio_counts_as_one():
    hot, cold = DWA(temperature=100.0), DWA(temperature=0.5)
    for w in (hot, cold):
        w.setup(["a", "b", "c"])
        w.on_epoch_end(0, torch.tensor([1.0, 1.0, 0.0]))  # c had no label in epoch 0
        w.on_epoch_end(1, torch.tensor([0.2, 1.0, 3.0]))
    wh = hot(torch.ones(3), StepContext()).weights
    wc = cold(torch.ones(3), StepContext()).weights
    assert float(wh.max() - wh.min()) < 0.02
    # cold: r = (0.2, 1, 1): b and c tie
    assert float(wc[1]) == pytest.approx(float(wc[2]))
    assert float(wc[0]) < float(wc[1])


# ----------------------------------------------------------------------------- RLW
def test_rlw_is_softmax_of_a_standard_normal_from_the_generator():
    g = torch.Generator().manual_seed(7)
    r = RLW()(torch.tensor([1.0, 2.0, 3.0]), StepContext(generator=g))
    z = torch.randn(3, generator=torch.Generator().manual_seed(7))
    close(r.weights, torch.softmax(z, 0))
    assert float(r.objective.detach()) == pytest.approx(float((torch.softmax(z, 0) * torch.tensor([1.0, 2, 3])).sum()))


def test_rlw_absent_tasks_leave_the_softmax():
    g = torch.Generator().manual_seed(3)
    p = torch.tensor([True, False, True])
    r = RLW()(torch.tensor([1.0, 0.0, 3.0]), StepContext(present=p, generator=g))
    z = torch.randn(3, generator=torch.Generator().manual_seed(3))
    close(r.weights, [*torch.softmax(z[[0, 2]], 0)[:1].tolist(), 0.0, *torch.softmax(z[[0, 2]], 0)[1:].tolist()])


# ----------------------------------------------------------------------------- GradNorm
def test_gradnorm_weight_gradient_formula():
    # G = w·g = (1, 2, 3), Ḡ = 2; r = (L̃ / mean L̃) = (0.75, 1.5, 0.75)
    w, g = torch.ones(3), torch.tensor([1.0, 2.0, 3.0])
    ratios = torch.tensor([0.5, 1.0, 0.5])
    target = 2.0 * torch.tensor([0.75, 1.5, 0.75]) ** 1.5  # (1.299, 3.674, 1.299)
    close(target, [1.299038, 3.674235, 1.299038])
    # sign(G − target)·g = (−1, −2, +3)
    close(gradnorm_weight_gradient(w, g, ratios, 1.5), [-1.0, -2.0, 3.0])
    # α = 0: every target is Ḡ
    close(gradnorm_weight_gradient(w, g, ratios, 0.0), [-1.0, 0.0, 3.0])


def test_gradnorm_two_weight_updates_by_hand():
    """Fixed per-task gradients at the last shared layer with norms (1, 2, 3)."""
    jac = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    ctx = StepContext(last_shared_parameters=[torch.zeros(2)], grad_fn=lambda losses, wrt: jac)
    w = GradNorm(alpha=1.5, lr=LR)
    w.setup(["a", "b", "c"])
    # step 0: L(0) = (1, 2, 4); r = 1, Ḡ = 2, G = (1, 2, 3): ∂L_grad/∂w = (−1, 0, +3)
    r0 = w(torch.tensor([1.0, 2.0, 4.0]), ctx)
    close(r0.weights, [1.0, 1.0, 1.0])
    expect = [adam_by_hand([-1.0], x0=1.0), adam_by_hand([0.0], x0=1.0), adam_by_hand([3.0], x0=1.0)]
    close(expect, [1.025, 1.0, 0.975])  # first Adam step moves by lr·sign(g); sum stays 3
    close(w.loss_weights, expect)
    # step 1: L = (0.5, 2, 2) -> L̃ = (0.5, 1, 0.5), r = (0.75, 1.5, 0.75)
    # G = (1.025, 2, 2.925), Ḡ = 1.98333, target = Ḡ·r^1.5 = (1.288, 3.644, 1.288)
    # sign(G − target)·g = (−1, −2, +3)
    r1 = w(torch.tensor([0.5, 2.0, 2.0]), ctx)
    close(r1.weights, expect)
    raw = [adam_by_hand([-1.0, -1.0], x0=1.0), adam_by_hand([0.0, -2.0], x0=1.0),
           adam_by_hand([3.0, 3.0], x0=1.0)]
    close(raw, [1.05, 1.018603, 0.95])
    close(w.loss_weights, [3 * x / sum(raw) for x in raw])
    assert float(w.loss_weights.sum()) == pytest.approx(3.0)


def test_gradnorm_real_gradients_through_jacobian():
    layer = nn.Linear(2, 1, bias=False)
    nn.init.ones_(layer.weight)
    x = layer(torch.tensor([[1.0, 2.0]]))[0, 0]  # ∇_W x = (1, 2), norm √5
    w = GradNorm(alpha=1.5)
    w.setup(["a", "b"])
    w(torch.stack([x, 10 * x]), StepContext(last_shared_parameters=[layer.weight], grad_fn=jacobian))
    # G = (√5, 10√5) around Ḡ = 5.5√5 with r = 1: a up, b down by one lr
    close(w.loss_weights, [1 + LR, 1 - LR])


def test_gradnorm_needs_gradients():
    w = GradNorm()
    w.setup(["a", "b"])
    with pytest.raises(ValueError, match="last_shared_parameters"):
        w(torch.tensor([1.0, 1.0]), StepContext())


# ----------------------------------------------------------------------------- FAMO
def test_famo_objective_and_weights_by_hand():
    w = FAMO()
    w.setup(["a", "b", "c"])
    losses = torch.tensor([1.0, 4.0, 2.0], requires_grad=True)
    r = w(losses, StepContext())
    # z = 1/3; Σ z/L = (1 + 1/4 + 1/2)/3 = 7/12 -> c = 12/7; weights c·z/L = (4, 1, 2)/7
    close(r.weights, [4 / 7, 1 / 7, 2 / 7])
    assert float(r.objective.detach()) == pytest.approx(12 / 7 / 3 * (0 + math.log(4) + math.log(2)), rel=1e-6)
    r.objective.backward()
    close(losses.grad, r.weights)


def test_famo_one_logit_update_by_hand():
    w = FAMO(lr=LR, weight_decay=1e-3)
    w.setup(["a", "b", "c"])
    w(torch.tensor([1.0, 4.0, 2.0]), StepContext())
    w.after_step(torch.tensor([0.5, 3.0, 2.0]), StepContext())
    # δ = (log 2, log 4/3, 0); z = 1/3; Jᵀδ = z(δ − z·δ) = (0.12207, −0.01309, −0.10898)
    delta = [math.log(2), math.log(4 / 3), 0.0]
    mean = sum(delta) / 3
    grad = [(d - mean) / 3 for d in delta]
    close(grad, [0.122068, -0.013087, -0.108981])
    close(famo_logits_gradient(torch.zeros(3), torch.tensor([1.0, 4, 2]), torch.tensor([0.5, 3, 2]), 1e-8),
          grad)
    # one Adam step from 0 (weight decay acts on ξ = 0: nothing): −lr·sign
    close(w.logits, [adam_by_hand([g], wd=1e-3) for g in grad])
    close(w.logits, [-LR, LR, LR])


def test_famo_second_update_with_weight_decay_matches_the_official_softmax_vjp():
    w = FAMO(lr=LR, weight_decay=0.1)
    w.setup(["a", "b"])
    before, after = [torch.tensor([1.0, 4.0]), torch.tensor([2.0, 3.0])], [torch.tensor([0.5, 3.0]),
                                                                            torch.tensor([1.8, 1.5])]
    grads = []
    xi = torch.zeros(2)
    for b, a in zip(before, after):
        w(b, StepContext())
        w.after_step(a, StepContext())
        # the official code: autograd VJP of softmax(ξ) with the log-loss decrease δ
        leaf = xi.clone().requires_grad_(True)
        delta = torch.log(b + 1e-8) - torch.log(a + 1e-8)
        (g,) = torch.autograd.grad(torch.softmax(leaf, 0), leaf, grad_outputs=delta)
        grads.append(g)
        # Adam with L2 decay on each logit, replaying the gradients seen so far
        xi = torch.tensor([adam_by_hand([float(gr[i]) for gr in grads], wd=0.1) for i in range(2)])
        close(w.logits, xi)
    assert float(xi[0]) < 0 < float(xi[1])  # a's loss fell faster both times


# ----------------------------------------------------------------------------- DB-MTL
def test_dbmtl_update_on_fixed_gradients_by_hand():
    beta, beta_sigma = 0.9, 0.5
    g1 = torch.tensor([[3.0, 4.0], [0.0, 0.5]])
    ema, alpha, d = dbmtl_update(g1, torch.zeros(2, 2), 1, beta, beta_sigma)
    # β_1 = 0.9: ema = 0.1·g; norms (0.5, 0.05): α = (1, 10); d = (0.3, 0.4) + 10·(0, 0.05)
    close(ema, [[0.3, 0.4], [0.0, 0.05]])
    close(alpha, [1.0, 10.0], tol=1e-5)
    close(d, [0.3, 0.9], tol=1e-5)
    g2 = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    ema, alpha, d = dbmtl_update(g2, ema, 2, beta, beta_sigma)
    b2 = 0.9 / math.sqrt(2)  # 0.636396
    e = [[b2 * 0.3, b2 * 0.4 + (1 - b2)], [(1 - b2), b2 * 0.05]]
    close(ema, e)
    n = [math.hypot(*e[0]), math.hypot(*e[1])]  # (0.646973, 0.364993)
    a1 = n[0] / n[1]  # 1.772565
    close(alpha, [1.0, a1], tol=1e-5)
    close(d, [e[0][0] + a1 * e[1][0], e[0][1] + a1 * e[1][1]], tol=1e-5)
    close(d, [0.835431, 0.674566], tol=1e-5)


def test_dbmtl_shared_gradient_is_the_balanced_average_and_heads_get_log_gradients():
    theta = torch.zeros(2, requires_grad=True)
    psi = torch.zeros((), requires_grad=True)  # task-specific parameter of task a
    w = DBMTL(beta=0.9, beta_sigma=0.5)
    w.setup(["a", "b"])
    # step 1: ∇_θ log L = (3, 4) and (0, 0.5) as in the test above
    losses = torch.stack([torch.exp(3 * theta[0] + 4 * theta[1] + 2 * psi), torch.exp(0.5 * theta[1])])
    ctx = StepContext(shared_parameters=[theta], grad_fn=jacobian)
    r = w(losses, ctx)
    r.objective.backward()
    close(theta.grad, [0.3, 0.9], tol=1e-5)
    close(psi.grad, 2.0, tol=1e-5)  # ∇_ψ log(L_a + ε): not rescaled
    close(r.weights, 1 / (losses.detach() + 1e-8))
    assert float(r.objective.detach()) == pytest.approx(float(torch.log(losses.detach() + 1e-8).sum()), abs=1e-6)
    theta.grad = None
    # step 2: ∇_θ log L = (0, 1) and (1, 0)
    losses = torch.stack([torch.exp(theta[1]), torch.exp(theta[0])])
    w(losses, ctx).objective.backward()
    close(theta.grad, [0.835431, 0.674566], tol=1e-5)


def test_dbmtl_cannot_be_combined_with_an_aggregator():
    tasks = [Task("a", "regression"), Task("b", "regression")]
    model = HardSharing(mlp(3, (4,)), tasks)
    with pytest.raises(ValueError, match="cannot be combined"):
        Trainer(model, tasks, weighting=DBMTL(), aggregator=Mean())


# ----------------------------------------------------------------------------- AdamState
def test_adam_state_follows_torch_adam():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, generator=g)
    ref = x.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=0.03, weight_decay=0.01)
    st = AdamState(lr=0.03, weight_decay=0.01)
    for _ in range(5):
        grad = torch.randn(4, generator=g)
        ref.grad = grad.clone()
        opt.step()
        x = st.step(x, grad)
    close(x, ref.detach(), tol=1e-6)


def test_adam_state_mask_freezes_entries():
    st = AdamState(lr=0.1)
    x = st.step(torch.zeros(2), torch.tensor([1.0, 1.0]), torch.tensor([True, False]))
    close(x, [-0.1, 0.0])
    close(st.steps, [1.0, 0.0])


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("make,match", [
    (lambda: DWA(temperature=0.0), r"'temperature' parameter of DWA must be a positive float\. Got 0\.0"),
    (lambda: GradNorm(alpha=-1.0), r"'alpha' parameter of GradNorm must be a non-negative float\. Got -1\.0"),
    (lambda: GradNorm(lr=0), r"'lr' parameter of GradNorm must be a positive float\. Got 0"),
    (lambda: FAMO(lr=-1.0), r"'lr' parameter of FAMO"),
    (lambda: FAMO(weight_decay=float("nan")), r"'weight_decay' parameter of FAMO"),
    (lambda: FAMO(eps=0.0), r"'eps' parameter of FAMO"),
    (lambda: DBMTL(beta=1.0), r"'beta' parameter of DBMTL must be a float in \[0, 1\)\. Got 1\.0"),
    (lambda: DBMTL(beta_sigma=-0.5), r"'beta_sigma' parameter of DBMTL"),
    (lambda: GLS(eps=-1.0), r"'eps' parameter of GLS"),
    (lambda: RLW(seed=-3), r"'seed' parameter of RLW must be a non-negative int\. Got -3"),
    (lambda: Uncertainty(task_kinds={"a": "ranking"}), r"'task_kinds' parameter of Uncertainty.*'ranking'"),
    (lambda: DWA(temperature="2"), r"'temperature' parameter of DWA.*'2'"),
])
def test_bad_hyperparameters_are_rejected_with_their_name_and_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()
