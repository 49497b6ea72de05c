"""STCH, ExcessMTL (loss space) and the bilevel Auto-λ, MOML, FORUM: each one's defining
property, or its update worked out by hand from the paper's formula, plus parameter checks and
training through the Trainer (hard sharing, with a validation split) with exact resume."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from mtlkit import HardSharing, Task, Trainer
from mtlkit.aggregation import Mean
from mtlkit.architectures.backbones import mlp
from mtlkit.jacobian import jacobian
from mtlkit.weighting import FORUM, MOML, STCH, AutoLambda, ExcessMTL, StepContext
from mtlkit.weighting._bilevel import bilevel_context, masked_softmax, task_jacobian
from mtlkit.weighting.auto_lambda import auto_lambda_hypergradient
from mtlkit.weighting.excess_mtl import excess_mtl_update, excess_risk_estimates
from mtlkit.weighting.forum import forum_qp
from mtlkit.weighting.moml import moml_direction, moml_hypergradients
from mtlkit.weighting.stch import stch_value


def close(a, b, tol=1e-6):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                               atol=tol, rtol=tol)


# =========================================================================== a bilevel toy
class Toy(nn.Module):
    """x -> tanh(Linear(3, 4)) -> one Linear(4, 1) head per task, in float64, with its own
    training and validation batches; ``context()`` is the StepContext the trainer builds."""

    def __init__(self, k: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.names = ["a", "b", "c", "d"][:k]
        self.shared = nn.Linear(3, 4).double()
        self.heads = nn.ModuleList(nn.Linear(4, 1).double() for _ in range(k))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.7)
        self.xt = torch.randn(16, 3, generator=g, dtype=torch.float64)
        self.yt = torch.randn(16, k, generator=g, dtype=torch.float64)
        self.xv = torch.randn(12, 3, generator=g, dtype=torch.float64)
        self.yv = torch.randn(12, k, generator=g, dtype=torch.float64)

    def forward(self, x):
        rep = torch.tanh(self.shared(x))
        return {n: h(rep)[:, 0] for n, h in zip(self.names, self.heads)}

    def task_losses(self, x, y, params=None):
        out = self(x) if params is None else torch.func.functional_call(self, params, (x,), strict=False)
        return torch.stack([((out[n] - y[:, i]) ** 2).mean() for i, n in enumerate(self.names)])

    def val_losses(self, params=None):
        return self.task_losses(self.xv, self.yv, params)

    def train_losses(self, params=None):
        return self.task_losses(self.xt, self.yt, params)

    def context(self, present=None, epoch=0, val_present=None):
        losses = self.train_losses()
        ms = {n: torch.ones(12, dtype=torch.bool) if val_present is None else
              torch.full((12,), bool(val_present[i])) for i, n in enumerate(self.names)}
        ys = {n: self.yv[:, i] for i, n in enumerate(self.names)}
        ctx = StepContext(epoch=epoch, task_names=self.names, present=present, model=self,
                          validation_batch=(self.xv, ys, ms), validation_losses=self.val_losses,
                          extra={"losses": losses, "training_losses": self.train_losses})
        return losses, ctx


def _sgd(model, objective, lr):
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(objective, params, allow_unused=True)
    with torch.no_grad():
        for p, g in zip(params, grads):
            if g is not None:
                p -= lr * g


# =========================================================================== STCH
def test_stch_value_tends_to_the_max_and_to_the_mean_plus_mu_log_k():
    a = torch.tensor([0.3, -1.2, 2.5, 0.7], dtype=torch.float64)
    k = a.numel()
    for mu in (1e-1, 1e-2, 1e-4):
        v = float(stch_value(a, mu))
        assert float(a.max()) <= v <= float(a.max()) + mu * math.log(k) + 1e-12
    for mu in (1e3, 1e5):
        v = float(stch_value(a, mu))
        # μ log Σ e^{a/μ} = μ log K + mean(a) + O(1/μ)
        assert v - mu * math.log(k) == pytest.approx(float(a.mean()), abs=10.0 / mu)
    # preference and ideal point enter as λ_i (f_i − z_i*)
    lam, z = torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=torch.float64), torch.full((4,), 0.5, dtype=torch.float64)
    close(stch_value(a, 0.7, lam, z), 0.7 * torch.logsumexp(lam * (a - z) / 0.7, 0))


def _after_warmup(w: STCH, nadir) -> None:
    w.setup(["a", "b", "c"])
    w(torch.tensor(nadir), StepContext(epoch=w.warmup_epoch))  # the warm-up epoch: L̄ = these


def test_stch_by_hand_through_its_phases():
    w = STCH(mu=0.5, warmup_epoch=1, eps=1e-8)
    w.setup(["a", "b", "c"])
    losses = torch.tensor([1.0, 4.0, 2.0], requires_grad=True)
    r = w(losses, StepContext(epoch=0))  # warm-up: Σ log L, nothing recorded
    assert float(r.objective.detach()) == pytest.approx(math.log(8.0), abs=1e-6)
    close(r.weights, [1.0, 0.25, 0.5])
    assert float(w.nadir_count.sum()) == 0
    # the last warm-up epoch: two batches recorded, L̄ = their mean
    w(torch.tensor([2.0, 4.0, 1.0]), StepContext(epoch=1))
    w(torch.tensor([4.0, 2.0, 3.0]), StepContext(epoch=1))
    close(w.nadir, [3.0, 3.0, 2.0])
    # STCH: K μ log Σ exp(log(L_i/L̄_i)/μ) with L/L̄ = (1/3, 4/3, 1)
    losses = torch.tensor([1.0, 4.0, 2.0], dtype=torch.float32, requires_grad=True)
    r = w(losses, StepContext(epoch=2))
    ratios = [1 / 3, 4 / 3, 1.0]
    e = [q ** (1 / 0.5) for q in ratios]  # exp(log q / μ) = q^{1/μ}
    assert float(r.objective.detach()) == pytest.approx(3 * 0.5 * math.log(sum(e)), rel=1e-5)
    s = [x / sum(e) for x in e]
    close(r.weights, [3 * s[0] / 1.0, 3 * s[1] / 4.0, 3 * s[2] / 2.0], tol=1e-5)
    (d,) = torch.autograd.grad(r.objective, losses)
    close(d, r.weights, tol=1e-5)
    # nothing is recorded after the warm-up epoch
    close(w.nadir, [3.0, 3.0, 2.0])


def test_stch_weights_tend_to_tchebycheff_and_to_the_log_objective():
    nadir = [2.0, 1.0, 4.0]
    losses = torch.tensor([1.0, 2.0, 3.0])  # L/L̄ = (0.5, 2, 0.75): task b is the worst
    sharp = STCH(mu=1e-3, warmup_epoch=0)
    _after_warmup(sharp, nadir)
    ws = sharp(losses, StepContext(epoch=1)).weights
    close(ws, [0.0, 3 / 2.0, 0.0], tol=1e-6)  # only the max term: K·1/L_b
    flat = STCH(mu=1e6, warmup_epoch=0)
    _after_warmup(flat, nadir)
    wf = flat(losses, StepContext(epoch=1)).weights
    close(wf, 1.0 / losses, tol=1e-5)  # K·(1/K)/L_i: the gradient of Σ log L_i


def test_stch_preference_and_absent_tasks():
    w = STCH(mu=1.0, warmup_epoch=0, preference={"b": 2.0})
    w.setup(["a", "b", "c"])
    p = torch.tensor([True, True, False])
    w(torch.tensor([2.0, 2.0, 0.0]), StepContext(epoch=0, present=p))
    close(w.nadir, [2.0, 2.0, 1.0])  # c never seen: L̄ = 1
    losses = torch.tensor([1.0, 4.0, 0.0], requires_grad=True)
    r = w(losses, StepContext(epoch=1, present=p))
    a = [1.0 * math.log(0.5), 2.0 * math.log(2.0)]
    s = [math.exp(x) / sum(math.exp(y) for y in a) for x in a]
    close(r.weights, [3 * s[0] / 1.0, 3 * 2.0 * s[1] / 4.0, 0.0], tol=1e-5)
    (d,) = torch.autograd.grad(r.objective, losses)
    assert float(d[2]) == 0.0
    with pytest.raises(ValueError, match="unknown task"):
        STCH(preference={"zz": 1.0}).setup(["a"])


def test_stch_resumes_mid_warmup_epoch():
    a = STCH(mu=0.3, warmup_epoch=0)
    a.setup(["a", "b"])
    a(torch.tensor([1.0, 3.0]), StepContext(epoch=0))
    b = STCH(mu=0.3, warmup_epoch=0)
    b.setup(["a", "b"])
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    for w in (a, b):
        w(torch.tensor([2.0, 1.0]), StepContext(epoch=0))
    ra, rb = a(torch.tensor([0.5, 0.7]), StepContext(epoch=1)), b(torch.tensor([0.5, 0.7]), StepContext(epoch=1))
    torch.testing.assert_close(ra.objective, rb.objective, rtol=0, atol=0)
    torch.testing.assert_close(ra.weights, rb.weights, rtol=0, atol=0)


# =========================================================================== ExcessMTL
def test_excess_risk_and_update_by_hand():
    g = torch.tensor([[1.0, 2.0], [0.5, 0.0]])
    sq = torch.tensor([[2.0, 8.0], [1.0, 1.0]])
    close(excess_risk_estimates(g, sq, 0.0), [1 / math.sqrt(2) + 4 / math.sqrt(8), 0.25])
    # w ∝ w·exp(η r), renormalised to sum K: the multiplicative form of the paper's eq. 9
    w0, r = torch.tensor([1.5, 0.5, 1.0]), torch.tensor([0.2, 1.0, -0.3])
    raw = w0 * torch.exp(0.7 * r)
    close(excess_mtl_update(torch.log(w0), r, 0.7), 3 * raw / raw.sum())


def test_excess_mtl_two_steps_on_fixed_gradients_by_hand():
    jacs = [torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 1.0], [0.0, 1.0]])]
    w = ExcessMTL(robust_step_size=0.5, eps=1e-7)
    w.setup(["a", "b"])
    it = iter(jacs)
    ctx = StepContext(shared_parameters=[torch.zeros(2, requires_grad=True)], grad_fn=lambda losses, wrt: next(it))
    r0 = w(torch.tensor([1.0, 1.0]), ctx)
    close(r0.weights, [1.0, 1.0])  # the first step sets the baselines e⁰ = (4/2, 1/1)
    close(w.baseline, [4 / math.sqrt(4 + 1e-7), 1 / math.sqrt(1 + 1e-7)])
    r1 = w(torch.tensor([1.0, 1.0]), ctx)
    # G = ((5, 1), (0, 2)): e = (1/√5 + 1/√1, 1/√2); r = e/e⁰
    e = [1 / math.sqrt(5) + 1 / math.sqrt(1), 1 / math.sqrt(2)]
    ratio = [e[0] / 2.0, e[1] / 1.0]
    raw = [math.exp(0.5 * x) for x in ratio]
    close(r1.weights, [2 * raw[0] / sum(raw), 2 * raw[1] / sum(raw)], tol=1e-5)


def test_excess_mtl_mean_baseline_over_several_steps():
    jacs = iter([torch.tensor([[2.0]]), torch.tensor([[1.0]]), torch.tensor([[1.0]])])
    w = ExcessMTL(baseline_steps=2, eps=1e-12)
    w.setup(["a"])
    ctx = StepContext(shared_parameters=[torch.zeros(1, requires_grad=True)], grad_fn=lambda losses, wrt: next(jacs))
    w(torch.tensor([1.0]), ctx)
    w(torch.tensor([1.0]), ctx)
    # e = 4/2 = 2 then 1/√5: the baseline is their mean
    close(w.baseline, [(2.0 + 1 / math.sqrt(5)) / 2], tol=1e-6)


def test_excess_mtl_favours_the_task_far_from_convergence_whatever_its_loss_scale():
    """Task a converges (its gradient shrinks), task b does not (constant gradient): b gains
    weight. Multiplying b's loss and gradient by 1000 (a noisy or badly scaled task) changes
    nothing: the excess risk is measured relative to the task's own baseline."""
    def run(scale_b):
        w = ExcessMTL(robust_step_size=0.5)
        w.setup(["a", "b"])
        steps = iter(range(100))

        def grad_fn(losses, wrt):
            t = next(steps)
            return torch.tensor([[1.0 / (t + 1), 0.0], [0.0, 1.0 * scale_b]])

        ctx = StepContext(shared_parameters=[torch.zeros(2, requires_grad=True)], grad_fn=grad_fn)
        for _ in range(10):
            weights = w(torch.tensor([1.0, 5.0 * scale_b]), ctx).weights
        return weights

    small, big = run(1.0), run(1000.0)
    assert float(small[1]) > 1.0 > float(small[0])
    close(small, big, tol=1e-5)


def test_excess_mtl_absent_task_keeps_its_state():
    w = ExcessMTL(robust_step_size=1.0)
    w.setup(["a", "b"])
    ctx = StepContext(shared_parameters=[torch.zeros(2, requires_grad=True)],
                      grad_fn=lambda losses, wrt: torch.ones(len(losses), 2))
    w(torch.tensor([1.0, 1.0]), ctx)
    before = w.grad_sq_sum[1].clone()
    p = torch.tensor([True, False])
    r = w(torch.tensor([1.0, 0.0]), StepContext(shared_parameters=ctx.shared_parameters, grad_fn=ctx.grad_fn,
                                                present=p))
    assert float(r.weights[1]) == 0.0
    close(w.grad_sq_sum[1], before)
    assert float(w.baseline_count[1]) == 1


# =========================================================================== Auto-λ
def _virtual_validation(toy: Toy, lam: torch.Tensor, alpha: float, primary: torch.Tensor) -> torch.Tensor:
    """F(λ) = Σ_primary L_val(θ − α Σ_k λ_k ∇ℓ_k(θ)), the gradient taken at fixed θ."""
    params = dict(toy.named_parameters())
    losses = toy.train_losses()
    grads = [torch.autograd.grad(losses[k], list(params.values()), retain_graph=True) for k in range(len(lam))]
    shifted = {n: p.detach() - alpha * sum(lam[k] * grads[k][i] for k in range(len(lam)))
               for i, (n, p) in enumerate(params.items())}
    return (primary.double() * toy.val_losses(shifted)).sum()


def test_auto_lambda_hypergradient_is_exact():
    toy = Toy(k=3)
    alpha = 0.3
    w = AutoLambda(alpha=alpha, weight_init=0.4, primary=["a", "c"])
    w.setup(toy.names)
    lam = w.task_weights.clone().double()
    primary = torch.tensor([True, False, True])
    losses, ctx = toy.context()
    w(losses, ctx)
    h = w.hypergradient_.double()
    # (1) against a central difference of F(λ)
    eps = 1e-6
    fd = torch.stack([(_virtual_validation(toy, lam + eps * e, alpha, primary)
                       - _virtual_validation(toy, lam - eps * e, alpha, primary)) / (2 * eps)
                      for e in torch.eye(3, dtype=torch.float64)])
    close(h, fd, tol=1e-7)
    # (2) against autograd through the virtual step (create_graph)
    leaf = lam.clone().requires_grad_(True)
    params = list(toy.parameters())
    g = torch.autograd.grad((leaf * toy.train_losses()).sum(), params, create_graph=True)
    shifted = {n: p - alpha * gi for (n, p), gi in zip(toy.named_parameters(), g)}
    (auto,) = torch.autograd.grad((primary.double() * toy.val_losses(shifted)).sum(), leaf)
    close(h, auto, tol=1e-10)
    # (3) the formula: −α ⟨∇ℓ_k(θ), ∇L_val(θ')⟩
    bl = bilevel_context("test", toy.context()[1])
    jac = task_jacobian(toy.train_losses(), torch.ones(3, dtype=torch.bool), bl.params)
    theta_v = bl.flat() - alpha * (lam @ jac)
    _, d = bl.validation_gradients(theta_v, primary.double())
    close(auto_lambda_hypergradient(jac, d, alpha), h, tol=1e-12)


class SharedVector(nn.Module):
    """Every task predicts x·θ with one shared θ (so every task gradient lives in one space)."""

    def __init__(self, names, d=3):
        super().__init__()
        self.names = names
        self.theta = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        return {n: x @ self.theta for n in self.names}


def test_auto_lambda_raises_an_aligned_auxiliary_and_lowers_an_adversarial_one():
    g = torch.Generator().manual_seed(0)
    names = ["main", "aligned", "adversarial"]
    u = torch.tensor([1.0, -2.0, 0.5])
    x, xv = torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g)
    targets = {"main": x @ u + 0.1 * torch.randn(64, generator=g), "aligned": x @ u, "adversarial": -(x @ u)}
    yv = xv @ u
    model = SharedVector(names)

    def val(params=None):
        out = model(xv) if params is None else torch.func.functional_call(model, params, (xv,))
        return torch.stack([((out[n] - (yv if n == "main" else 0 * yv)) ** 2).mean() for n in names])

    tasks = [Task("main", "regression"), Task("aligned", "regression", role="auxiliary", weight=1.0),
             Task("adversarial", "regression", role="auxiliary", weight=1.0)]
    w = AutoLambda(alpha=0.05, meta_lr=0.01)
    w.setup_from_tasks(tasks)
    assert w.primary_tasks(3).tolist() == [True, False, False]
    for _ in range(30):
        out = model(x)
        losses = torch.stack([((out[n] - targets[n]) ** 2).mean() for n in names])
        res = w(losses, StepContext(model=model, validation_losses=val))
        _sgd(model, res.objective, 0.05)
    lam = w.task_weights
    assert float(lam[1]) > 0.1 > float(lam[2]), lam
    assert float(lam[2]) >= 0.0  # clipped at 0, never negative


def test_auto_lambda_meta_objective_ignores_auxiliary_validation_losses():
    toy = Toy(k=3)
    hs = []
    for shift in (0.0, 5.0):
        t = copy.deepcopy(toy)
        t.yv[:, 1] += shift  # only the auxiliary task b's validation labels differ
        w = AutoLambda(alpha=0.1, primary=["a", "c"])
        w.setup(t.names)
        w(*t.context())
        hs.append(w.hypergradient_)
    close(hs[0], hs[1], tol=0)


def test_auto_lambda_absent_task_and_missing_validation():
    toy = Toy(k=3)
    w = AutoLambda(alpha=0.1, meta_lr=0.05)
    w.setup(toy.names)
    p = torch.tensor([True, False, True])
    losses, ctx = toy.context(present=p)
    r = w(losses, ctx)
    assert float(r.weights[1]) == 0.0 and float(w.task_weights[1]) == pytest.approx(0.1)
    assert float(w.optim.steps[1]) == 0
    with pytest.raises(ValueError, match="validation"):
        AutoLambda()(toy.train_losses(), StepContext())


# =========================================================================== MOML
def test_moml_hypergradients_equal_finite_differences():
    toy = Toy(k=3, seed=1)
    eta = 0.4
    logits = torch.tensor([0.2, -0.1, 0.4], dtype=torch.float64)
    bl = bilevel_context("test", toy.context()[1])
    present = torch.ones(3, dtype=torch.bool)
    jac = task_jacobian(toy.train_losses(), present, bl.params)
    theta = bl.flat()

    def val_at(a):
        return toy.val_losses(bl.as_params(theta - eta * (torch.softmax(a, 0) @ jac)))

    w = torch.softmax(logits, 0)
    _, val_jac = bl.validation_gradients(theta - eta * (w @ jac))
    hyper = moml_hypergradients(jac, val_jac, w, eta)
    eps = 1e-6
    fd = torch.stack([(val_at(logits + eps * e) - val_at(logits - eps * e)) / (2 * eps)
                      for e in torch.eye(3, dtype=torch.float64)], dim=1)
    close(hyper, fd, tol=1e-7)


@pytest.mark.parametrize("seed", range(6))
def test_moml_direction_is_the_min_norm_point_of_the_unit_hypergradients(seed):
    g = torch.Generator().manual_seed(seed)
    k = 2 + seed % 3
    h = torch.randn(k, k, generator=g, dtype=torch.float64) * torch.logspace(-3, 3, k, dtype=torch.float64)[:, None]
    d = moml_direction(h)
    unit = h / h.norm(dim=1, keepdim=True)
    # optimality of the min-norm point: ⟨û_t, d⟩ ≥ ‖d‖² for every t, and d is in the hull
    assert bool(((unit @ d) >= (d @ d) - 1e-9).all())
    assert float(d.norm()) <= float(unit.norm(dim=1).min()) + 1e-12


def test_moml_one_update_by_hand():
    toy = Toy(k=3, seed=2)
    w = MOML(inner_lr=0.2, outer_lr=0.01)
    w.setup(toy.names)
    bl = bilevel_context("test", toy.context()[1])
    present = torch.ones(3, dtype=torch.bool)
    jac = task_jacobian(toy.train_losses(), present, bl.params)
    w0 = torch.full((3,), 1 / 3, dtype=torch.float64)
    _, val_jac = bl.validation_gradients(bl.flat() - 0.2 * (w0 @ jac))
    direction = moml_direction(moml_hypergradients(jac, val_jac, w0, 0.2))
    r = w(*toy.context())
    close(w.direction_, direction, tol=1e-10)
    # Adam's first step: m̂ = g, v̂ = g², so each logit moves by lr·g/(|g| + 1e-8)
    close(w.logits, 1 / 3 - 0.01 * direction / (direction.abs() + 1e-8), tol=1e-7)
    close(r.weights, torch.softmax(w.logits.double(), 0), tol=1e-7)
    assert float(r.weights.sum()) == pytest.approx(1.0)


def test_moml_upper_level_leaves_out_tasks_without_validation_labels():
    toy = Toy(k=3, seed=3)
    w = MOML()
    w.setup(toy.names)
    losses, ctx = toy.context(val_present=[True, False, True])
    w(losses, ctx)
    bl = bilevel_context("test", ctx)
    jac = task_jacobian(toy.train_losses(), torch.ones(3, dtype=torch.bool), bl.params)
    w0 = torch.full((3,), 1 / 3, dtype=torch.float64)
    _, val_jac = bl.validation_gradients(bl.flat() - 0.1 * (w0 @ jac))
    hyper = moml_hypergradients(jac, val_jac, w0, 0.1)
    close(w.direction_, moml_direction(hyper[[0, 2]]), tol=1e-10)


# =========================================================================== FORUM
def _qp_brute_force(gram, pi, c):
    """The exact optimum by enumerating the active sets of the inequalities (small m only)."""
    m = len(pi)
    n = m + 1
    ineq = np.vstack([np.eye(n), np.append(-pi, 1.0)])
    eq = np.append(np.ones(m), 0.0)
    best, best_w = np.inf, None
    for r in range(n + 2):
        for act in itertools.combinations(range(n + 1), r):
            a = np.vstack([eq[None, :], ineq[list(act)]]) if act else eq[None, :]
            kkt = np.block([[2 * gram, -a.T], [a, np.zeros((a.shape[0], a.shape[0]))]])
            rhs = np.concatenate([np.eye(n)[m] * c, np.eye(a.shape[0])[0]])
            sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
            if np.abs(kkt @ sol - rhs).max() > 1e-9:
                continue
            w, mu = sol[:n], sol[n:]
            if (ineq @ w >= -1e-10).all() and (mu[1:] >= -1e-10).all():
                val = w @ gram @ w - c * w[m]
                if val < best:
                    best, best_w = val, w
    return best, best_w


@pytest.mark.parametrize("seed", range(8))
def test_forum_qp_is_the_exact_optimum(seed):
    r = np.random.default_rng(seed)
    m = 2 + seed % 2
    a = r.normal(size=(m + 1, 6))
    a[:m] /= np.linalg.norm(a[:m], axis=1, keepdims=True)
    a[m] *= r.uniform(0.01, 3.0)
    gram = a @ a.T
    pi = r.uniform(-1.0, 1.0, size=m)
    c = 0.1 * (gram[m, m] + 1e-8)
    w = forum_qp(gram, pi, c)
    assert w.shape == (m + 1,)
    assert (w >= 0).all() and w[:m].sum() == pytest.approx(1.0) and w[m] >= pi @ w[:m] - 1e-9
    best, _ = _qp_brute_force(gram, pi, c)
    assert w @ gram @ w - c * w[m] == pytest.approx(best, abs=1e-9)


def test_forum_one_step_by_hand():
    toy = Toy(k=2, seed=4)
    inner_lr, phi, steps = 0.3, 0.1, 3
    w = FORUM(inner_lr=inner_lr, outer_lr=0.01, inner_step=steps, phi=phi)
    w.setup(toy.names)
    # by hand
    bl = bilevel_context("test", toy.context()[1])
    theta = bl.flat()
    sm = torch.full((2,), 0.5, dtype=torch.float64)
    jac = task_jacobian(toy.train_losses(), torch.ones(2, dtype=torch.bool), bl.params)
    omega = theta.clone()
    for _ in range(steps):
        leaves = bl.as_params(omega, requires_grad=True)
        g = torch.autograd.grad((sm * toy.train_losses(leaves)).sum(), list(leaves.values()))
        omega = omega - inner_lr * torch.cat([x.reshape(-1) for x in g])
    ell, ell_t = toy.train_losses().detach(), toy.train_losses(bl.as_params(omega)).detach()
    js = torch.diag(sm) - torch.outer(sm, sm)
    gq = torch.cat([js @ (ell - ell_t), sm @ jac])
    _, val_jac = bl.validation_gradients(theta)
    unit = val_jac / val_jac.norm(dim=1, keepdim=True)
    unit_full = torch.cat([torch.zeros(2, 2, dtype=torch.float64), unit], dim=1)
    pi = phi - (unit_full @ gq) / (gq @ gq + 1e-8)
    big = torch.cat([unit_full, gq[None]])
    qp = forum_qp((big @ big.T).numpy(), pi.numpy(), phi * float(gq @ gq + 1e-8))
    lam = torch.as_tensor(qp[:2])  # epoch 0: the average is the first solution
    nu = max(float(lam @ pi), 0.0)
    direction = lam @ unit_full + nu * gq
    # the method
    losses, ctx = toy.context()
    res = w(losses, ctx)
    close(w.lambda_average, lam, tol=1e-7)
    assert w.nu_ == pytest.approx(nu, rel=1e-9)
    close(res.weights, nu * sm, tol=1e-9)
    grads = torch.autograd.grad(res.objective, bl.params)
    close(torch.cat([g.reshape(-1) for g in grads]), direction[2:], tol=1e-9)
    g = direction[:2]
    close(w.logits, 0.5 - 0.01 * g / (g.abs() + 1e-8), tol=1e-7)


def test_forum_needs_training_losses_and_refuses_an_aggregator():
    toy = Toy(k=2)
    losses, ctx = toy.context()
    del ctx.extra["training_losses"]
    w = FORUM()
    w.setup(toy.names)
    with pytest.raises(ValueError, match="training_losses"):
        w(losses, ctx)
    tasks = [Task("a", "regression"), Task("b", "regression")]
    with pytest.raises(ValueError, match="cannot be combined"):
        Trainer(HardSharing(mlp(3, (4,)), tasks), tasks, weighting=FORUM(), aggregator=Mean())


# =========================================================================== parameters
@pytest.mark.parametrize("make,match", [
    (lambda: STCH(mu=0.0), r"'mu' parameter of STCH must be a positive float\. Got 0\.0"),
    (lambda: STCH(warmup_epoch=-1), r"'warmup_epoch' parameter of STCH must be a non-negative integer"),
    (lambda: STCH(warmup_epoch=1.5), r"'warmup_epoch' parameter of STCH"),
    (lambda: STCH(preference={"a": -1.0}), r"'preference' parameter of STCH"),
    (lambda: STCH(preference=[1.0]), r"'preference' parameter of STCH must be a mapping"),
    (lambda: STCH(eps=0.0), r"'eps' parameter of STCH"),
    (lambda: ExcessMTL(robust_step_size=0.0), r"'robust_step_size' parameter of ExcessMTL must be a positive"),
    (lambda: ExcessMTL(baseline_steps=0), r"'baseline_steps' parameter of ExcessMTL must be a positive integer"),
    (lambda: ExcessMTL(eps=-1.0), r"'eps' parameter of ExcessMTL"),
    (lambda: AutoLambda(alpha=0.0), r"'alpha' parameter of AutoLambda must be a positive float"),
    (lambda: AutoLambda(meta_lr=float("nan")), r"'meta_lr' parameter of AutoLambda"),
    (lambda: AutoLambda(weight_init=-0.1), r"'weight_init' parameter of AutoLambda must be a non-negative"),
    (lambda: AutoLambda(primary="main"), r"'primary' parameter of AutoLambda must be a non-empty sequence"),
    (lambda: AutoLambda(primary=[]), r"'primary' parameter of AutoLambda"),
    (lambda: MOML(inner_lr=-1.0), r"'inner_lr' parameter of MOML must be a positive float"),
    (lambda: MOML(outer_lr=0), r"'outer_lr' parameter of MOML"),
    (lambda: FORUM(inner_step=0), r"'inner_step' parameter of FORUM must be a positive integer"),
    (lambda: FORUM(phi=0.0), r"'phi' parameter of FORUM must be a positive float"),
    (lambda: FORUM(inner_lr="0.1"), r"'inner_lr' parameter of FORUM"),
    (lambda: FORUM(outer_lr=-1e-3), r"'outer_lr' parameter of FORUM"),
])
def test_bad_hyperparameters_are_rejected_with_their_name_and_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_auto_lambda_unknown_primary_task():
    with pytest.raises(ValueError, match="unknown task"):
        AutoLambda(primary=["zz"]).setup(["a", "b"])


# =========================================================================== through the Trainer
@pytest.fixture
def training_losses_in_ctx(monkeypatch):
    """Emulates the trainer change FORUM needs (not in mtlkit.training yet): the training
    batch's losses at other parameter values, ``ctx.extra["training_losses"](params)``, built
    exactly like ``ctx.validation_losses``."""
    from mtlkit.training import step

    if "training_losses" in getattr(StepContext, "__dataclass_fields__", {}):
        return  # the trainer gives it
    train_step, add_validation = step.train_step, step._add_validation

    def patched_train_step(tr, batch):
        tr._batch_for_training_losses = batch
        return train_step(tr, batch)

    def patched_add_validation(tr, ctx):
        add_validation(tr, ctx)
        x, ys, ms = tr._batch_for_training_losses
        x = x.to(tr.device)

        def training_losses(params=None):
            out = tr.model(x) if params is None else torch.func.functional_call(tr.model, params, (x,), strict=False)
            return torch.stack([step._task_loss(tr, t, out, ys, ms) for t in tr.tasks])

        ctx.extra["training_losses"] = training_losses

    monkeypatch.setattr(step, "train_step", patched_train_step)
    monkeypatch.setattr(step, "_add_validation", patched_add_validation)


BILEVEL = [AutoLambda, MOML, FORUM]


def _split(data):
    n = len(data)
    return data.subset(np.arange(0, n - 150)), data.subset(np.arange(n - 150, n))


def _trainer(tasks, make, epochs):
    torch.manual_seed(0)
    model = HardSharing(mlp(10, (16,)), tasks)
    kw = {"alpha": 1e-2} if make is AutoLambda else {}
    return Trainer(model, tasks, weighting=make(**kw), epochs=epochs, batch_size=64, lr=1e-2, progress=False, seed=0)


@pytest.mark.parametrize("make", BILEVEL, ids=lambda c: c.__name__)
def test_bilevel_method_trains_hard_sharing_with_a_validation_split(make, two_task_data, training_losses_in_ctx):
    data, tasks = two_task_data
    train, val = _split(data)
    hist = _trainer(tasks, make, epochs=4).fit(train, val)
    first, last = hist.records[0]["train_loss"], hist.records[-1]["train_loss"]
    for t in ("a", "b"):
        assert last[t] < 0.9 * first[t], (make.__name__, t, first[t], last[t])
    for rec in hist.records:
        assert all(math.isfinite(v) and v >= 0 for v in rec["weights"].values())


@pytest.mark.parametrize("make", BILEVEL, ids=lambda c: c.__name__)
def test_bilevel_method_resumes_exactly(make, two_task_data, training_losses_in_ctx):
    data, tasks = two_task_data
    train, val = _split(data)
    ref = _trainer(tasks, make, epochs=1)
    ref.fit(train, val)
    state = copy.deepcopy(ref.state_dict())
    ref.epochs = 2
    ref.fit(train, val)
    resumed = _trainer(tasks, make, epochs=2)
    resumed.setup(train)
    resumed.load_state_dict(state)
    resumed.fit(train, val)
    a, b = ref.history.records[-1], resumed.history.records[-1]
    assert a["epoch"] == b["epoch"] == 2
    assert a["weights"] == b["weights"] and a["train_loss"] == b["train_loss"]


@pytest.mark.parametrize("make", BILEVEL, ids=lambda c: c.__name__)
def test_bilevel_method_without_validation_data_is_an_error(make, two_task_data):
    data, tasks = two_task_data
    with pytest.raises(ValueError, match="validation"):
        _trainer(tasks, make, epochs=1).fit(data)


def test_auto_lambda_learns_only_from_the_primary_task_through_the_trainer(two_task_data):
    data, _ = two_task_data
    tasks = [Task("a", "binary"), Task("b", "regression", role="auxiliary")]
    train, val = _split(data)
    trainer = _trainer(tasks, AutoLambda, epochs=1)
    trainer.fit(train, val)
    w = trainer.weighting
    assert w.primary_tasks(2).tolist() == [True, False]
    assert bool(torch.isfinite(w.task_weights).all()) and bool((w.task_weights >= 0).all())
    # the logged weight is the prior times λ: 0.1·λ_b for the auxiliary task
    assert trainer.history.records[-1]["weights"]["b"] < trainer.history.records[-1]["weights"]["a"]


@pytest.mark.parametrize("make", [AutoLambda, MOML], ids=lambda c: c.__name__)
def test_auto_lambda_and_moml_combine_with_an_aggregator(make, two_task_data):
    data, tasks = two_task_data
    train, val = _split(data)
    torch.manual_seed(0)
    trainer = Trainer(HardSharing(mlp(10, (16,)), tasks), tasks, weighting=make(), aggregator=Mean(), epochs=1,
                      batch_size=64, lr=1e-2, progress=False, seed=0)
    hist = trainer.fit(train, val)
    assert all(math.isfinite(v) for v in hist.records[-1]["train_loss"].values())


def test_jacobian_helper_agrees_with_task_jacobian():
    toy = Toy(k=2)
    losses = toy.train_losses()
    params = list(toy.parameters())
    present = torch.tensor([True, False])
    j = task_jacobian(losses, present, params)
    close(j[0], jacobian([losses[0]], params)[0])
    assert float(j[1].abs().sum()) == 0.0
    close(masked_softmax(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([True, False, True])),
          [math.exp(1) / (math.exp(1) + math.exp(3)), 0.0, math.exp(3) / (math.exp(1) + math.exp(3))])
