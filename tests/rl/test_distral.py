"""Distral 2col against the paper's formulas (Teh et al. 2017), computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from mtlkit.rl import A2CSettings, Distral, Rollout, Space, actor_critic_loss, distillation_loss

ALPHA, BETA, GAMMA, VF = 0.6, 2.0, 0.9, 0.5


@pytest.fixture
def agent() -> Distral:
    torch.manual_seed(0)
    ag = Distral([Space(3, 3, "")] * 2, hidden=[5], alpha=ALPHA, beta=BETA)
    with torch.no_grad():  # make the columns far from uniform so the test sees real numbers
        for p in ag.parameters():
            p.mul_(4.0)
    return ag


def test_two_column_log_probs_are_alpha_log_pi0_plus_beta_f_minus_log_z(agent):
    obs = torch.randn(2, 7, 3)
    out = agent(obs)
    log_pi = torch.log_softmax(out.logits, -1).double()
    h = agent.distilled(obs).double()
    log_pi0 = h - torch.logsumexp(h, -1, keepdim=True)
    for i, col in enumerate(agent.columns):
        f = col.actor(obs[i]).double()
        unnorm = ALPHA * log_pi0[i] + BETA * f
        log_z = torch.log(torch.exp(unnorm).sum(-1, keepdim=True))
        torch.testing.assert_close(log_pi[i], unnorm - log_z, rtol=1e-5, atol=1e-5)
        # the paper's form with the raw distilled logits h: exp(α·h + β·f_i) / Σ exp(α·h + β·f_i)
        paper = torch.softmax(ALPHA * h[i] + BETA * f, -1)
        torch.testing.assert_close(log_pi[i].exp(), paper, rtol=1e-5, atol=1e-6)
    assert agent.c_kl == pytest.approx(ALPHA / BETA) and agent.c_ent == pytest.approx((1 - ALPHA) / BETA)
    assert agent.c_kl / (agent.c_kl + agent.c_ent) == pytest.approx(ALPHA)
    assert 1 / (agent.c_kl + agent.c_ent) == pytest.approx(BETA)


def _toy_batch() -> Rollout:
    g = torch.Generator().manual_seed(1)
    s, t, n = 4, 2, 1
    cuts = torch.zeros(s, t, n, dtype=torch.bool)
    cuts[1, 0, 0] = True  # task 0: an episode ends at step 1 (no bootstrap across it)
    return Rollout(obs=torch.randn(s, t, n, 3, generator=g), actions=torch.randint(0, 3, (s, t, n), generator=g),
                   rewards=torch.randn(s, t, n, generator=g), cuts=cuts, valid=torch.ones(s, t, n, dtype=torch.bool),
                   last_obs=torch.randn(t, n, 3, generator=g))


def _by_hand(agent: Distral, b: Rollout) -> torch.Tensor:
    """The paper's per-task objective, step by step, with Python loops (λ = 1: Monte-Carlo
    returns of the regularised reward, bootstrapped by V at the rollout's end)."""
    s_n, t_n, _ = b.actions.shape
    total = torch.zeros((), dtype=torch.float64)
    for i in range(t_n):
        col = agent.columns[i]
        pg, vl, dist = [], [], []
        g_next = float(col.critic(b.last_obs[i, 0]).squeeze(-1).detach())
        returns = [0.0] * s_n
        terms = []
        for t in range(s_n):
            o = b.obs[t, i, 0]
            h = agent.distilled(o).double()
            pi0 = torch.exp(h) / torch.exp(h).sum()
            f = col.actor(o).double()
            num = pi0 ** ALPHA * torch.exp(BETA * f)          # π̂₀^α · exp(β f_i)
            pi = num / num.sum()
            a = int(b.actions[t, i, 0])
            r_reg = float(b.rewards[t, i, 0]) + ALPHA / BETA * math.log(float(pi0[a].detach())) - 1 / BETA * math.log(float(pi[a].detach()))
            terms.append((pi, pi0, a, col.critic(o).squeeze(-1).double(), r_reg))
        for t in range(s_n - 1, -1, -1):
            keep = 0.0 if bool(b.cuts[t, i, 0]) else 1.0
            g_next = terms[t][4] + GAMMA * keep * g_next
            returns[t] = g_next
        for t, (pi, pi0, a, v, _) in enumerate(terms):
            adv = returns[t] - float(v.detach())
            pg.append(-torch.log(pi[a]) * adv)
            vl.append((v - returns[t]) ** 2)
            dist.append(-(ALPHA / BETA) * (pi.detach() * torch.log(pi0)).sum())
        total = total + torch.stack(pg).mean() + VF * torch.stack(vl).mean() + torch.stack(dist).mean()
    return total


def test_distral_loss_equals_the_papers_objective_by_hand(agent):
    batch = _toy_batch()
    settings = A2CSettings(gamma=GAMMA, gae_lambda=1.0, ent_coef=0.3, vf_coef=VF)  # no entropy bonus for Distral
    parts = actor_critic_loss(agent, batch, settings)
    hand = _by_hand(agent, batch)
    assert parts.total.item() == pytest.approx(hand.item(), rel=1e-4, abs=1e-5)
    # and the same gradient in every parameter (policy gradient + value + distillation)
    got = torch.autograd.grad(parts.total, list(agent.parameters()))
    want = torch.autograd.grad(hand, list(agent.parameters()))
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w.double(), rtol=1e-3, atol=1e-5)


def test_distillation_gradient_is_alpha_over_beta_times_pi_minus_pi0():
    """The paper's ∇θ₀ term: (α/β) Σ_a (π̂_i(a|s) − π̂₀(a|s)) ∇h(a|s), i.e. ∂loss/∂h = −(α/β)(π̂_i − π̂₀)/M."""
    torch.manual_seed(3)
    h = torch.randn(2, 5, 4, requires_grad=True)
    log_pi = torch.log_softmax(torch.randn(2, 5, 4), -1)
    valid = torch.ones(2, 5, dtype=torch.bool)
    loss = distillation_loss(log_pi, torch.log_softmax(h, -1), valid, alpha=ALPHA, beta=BETA).sum()
    (grad,) = torch.autograd.grad(loss, h)
    expected = -(ALPHA / BETA) * (log_pi.exp() - torch.softmax(h, -1)) / 5
    torch.testing.assert_close(grad, expected.detach())


def test_kl_logged_is_kl_of_task_to_distilled(agent):
    obs = torch.randn(2, 6, 3)
    out = agent(obs)
    kl = agent.task_stats(out, torch.ones(2, 6, dtype=torch.bool))["kl"]
    p = torch.softmax(out.logits, -1)
    q = out.extras["log_pi0"].exp()
    torch.testing.assert_close(kl, (p * (p.log() - q.log())).sum(-1).mean(1), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kwargs,msg", [({"alpha": 1.5}, "'alpha' parameter of Distral"),
                                        ({"beta": 0.0}, "'beta' parameter of Distral")])
def test_bad_hyperparameters_are_named(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Distral([Space(3, 2, "")], **kwargs)
