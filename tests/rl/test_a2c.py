"""The actor-critic core: GAE by hand, masking of broken steps, independent single agents,
padding to a common space."""

from __future__ import annotations

import pytest
import torch

from mtlkit.rl import A2CSettings, Rollout, Shared, Single, Space, actor_critic_loss, gae


def test_gae_matches_a_hand_computation_with_cuts_and_dropped_steps():
    r = torch.tensor([1.0, 2.0, 3.0, 4.0])[:, None]
    v = torch.tensor([0.5, 0.4, 0.3, 0.2])[:, None]
    last = torch.tensor([0.7])
    cuts = torch.tensor([False, True, True, False])[:, None]
    valid = torch.tensor([True, True, False, True])[:, None]  # step 2 broke (NaN): dropped
    g, lam = 0.9, 0.8
    adv, ret = gae(r, v, last, cuts, valid, gamma=g, lam=lam)
    a3 = 4.0 + g * 0.7 - 0.2
    a2 = 0.0
    a1 = 2.0 - 0.4             # cut: no bootstrap
    a0 = (1.0 + g * 0.4 - 0.5) + g * lam * a1
    torch.testing.assert_close(adv[:, 0], torch.tensor([a0, a1, a2, a3]))
    torch.testing.assert_close(ret, adv + v)


def _batch(t: int, d: int, a: int) -> Rollout:
    g = torch.Generator().manual_seed(0)
    return Rollout(obs=torch.randn(6, t, 2, d, generator=g), actions=torch.randint(0, a, (6, t, 2), generator=g),
                   rewards=torch.randn(6, t, 2, generator=g), cuts=torch.zeros(6, t, 2, dtype=torch.bool),
                   valid=torch.ones(6, t, 2, dtype=torch.bool), last_obs=torch.randn(t, 2, d, generator=g))


def test_single_agents_are_independent():
    agent = Single([Space(4, 2, "")] * 3, hidden=[8])
    parts = actor_critic_loss(agent, _batch(3, 4, 2), A2CSettings())
    parts.per_task[1].backward()
    for t, net in enumerate(agent.agents):
        touched = any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
        assert touched == (t == 1)
    assert len(agent.clip_groups()) == 3


def test_broken_steps_do_not_reach_the_loss():
    agent = Shared([Space(4, 2, "")] * 2, hidden=[8])
    b = _batch(2, 4, 2)
    b.valid[3, 0, 1] = False
    b.cuts[3, 0, 1] = True
    base = actor_critic_loss(agent, b, A2CSettings()).total.item()
    b.rewards[3, 0, 1] = -1e6  # the reward and action of a dropped step change nothing
    b.actions[3, 0, 1] = 1 - b.actions[3, 0, 1]
    assert actor_critic_loss(agent, b, A2CSettings()).total.item() == pytest.approx(base)


def test_padded_tasks_never_take_missing_actions():
    spaces = [Space(4, 2, ""), Space(6, 3, "")]
    for cls in (Single, Shared):
        agent = cls(spaces, hidden=[8])
        probs = torch.softmax(agent(torch.randn(2, 5, 6)).logits, -1)
        assert probs.shape == (2, 5, 3)
        assert (probs[0, :, 2] == 0).all() and (probs[1] > 0).all()
        torch.testing.assert_close(probs.sum(-1), torch.ones(2, 5))


@pytest.mark.parametrize("method", ["single", "shared", "distral", "care"])
def test_acting_logits_are_the_forward_logits(method):
    from mtlkit.rl import METHOD_CLASSES

    spaces = [Space(4, 2, ""), Space(6, 3, "")]
    extra = {"metadata": ["a b", "c d"]} if method == "care" else {}
    agent = METHOD_CLASSES[method](spaces, hidden=[8], **extra)
    obs = torch.randn(2, 5, 6)
    torch.testing.assert_close(agent.policy_logits(obs), agent(obs).logits)
