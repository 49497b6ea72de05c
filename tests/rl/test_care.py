"""CARE (Sodhani et al. 2021): attention over the encoders from the task context."""

from __future__ import annotations

import pytest
import torch

from mtlkit.rl import CARE, A2CSettings, Rollout, Space, actor_critic_loss
from mtlkit.rl.care import bag_of_words, hashed_words

TEXTS = ["short light pole", "long heavy pole", "standard pole mass 0.1"]


def _agent(metadata, **kw) -> CARE:
    torch.manual_seed(0)
    return CARE([Space(4, 2, "")] * len(metadata), hidden=[8], metadata=metadata, **kw)


@pytest.mark.parametrize("metadata", [TEXTS, [[0.5, 0.1], [0.25, 0.05], [1.0, 0.5]]], ids=["text", "vector"])
def test_attention_sums_to_one_per_task_and_differs_between_tasks(metadata):
    agent = _agent(metadata, encoders=5)
    w = agent.attention_weights()
    assert w.shape == (3, 5)
    torch.testing.assert_close(w.sum(1), torch.ones(3))
    assert (w > 0).all()
    assert not torch.allclose(w[0], w[1])  # the context, not a constant, drives the attention
    out = agent(torch.randn(3, 6, 4))
    torch.testing.assert_close(out.extras["attention"], w)


def test_every_encoder_and_the_context_receive_gradient():
    agent = _agent(TEXTS, encoders=4)
    g = torch.Generator().manual_seed(0)
    batch = Rollout(obs=torch.randn(5, 3, 2, 4, generator=g), actions=torch.randint(0, 2, (5, 3, 2), generator=g),
                    rewards=torch.randn(5, 3, 2, generator=g), cuts=torch.zeros(5, 3, 2, dtype=torch.bool),
                    valid=torch.ones(5, 3, 2, dtype=torch.bool), last_obs=torch.randn(3, 2, 4, generator=g))
    actor_critic_loss(agent, batch, A2CSettings()).total.backward()
    for tower in (agent.actor, agent.critic):
        for j, enc in enumerate(tower.encoders):
            grads = [p.grad for p in enc.parameters()]
            assert all(gr is not None and gr.abs().sum() > 0 for gr in grads), f"encoder {j} has no gradient"
        assert tower.word_embedding is not None and tower.word_embedding.grad is not None
        assert tower.word_embedding.grad.abs().sum() > 0
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tower.attention.parameters())


def test_mixture_is_the_attention_weighted_sum_of_encoders():
    agent = _agent(TEXTS, encoders=3)
    obs = torch.randn(3, 4, 4)
    out = agent(obs)
    for tower, got in ((agent.actor, out.logits), (agent.critic, out.value.unsqueeze(-1))):
        z = tower.context()
        w = tower.attention_weights(z)
        mixed = sum(w[:, j, None, None] * tower.encoders[j](obs) for j in range(3))
        x = torch.cat([mixed, z[:, None, :].expand(-1, 4, -1)], -1)
        torch.testing.assert_close(got, tower.head(x))


def test_hashed_bag_of_words_is_stable_and_normalised():
    assert hashed_words("Pole, LENGTH 0.5", 97) == hashed_words("pole length 0.5", 97)
    bow = bag_of_words(TEXTS, 32)
    torch.testing.assert_close(bow.sum(1), torch.ones(3))


@pytest.mark.parametrize("kwargs,msg", [
    ({"metadata": TEXTS[:2]}, "one metadata entry per task"),
    ({"metadata": ["a b", [1.0], "c"]}, "all texts or all vectors"),
    ({"metadata": [[1.0], [1.0, 2.0], [3.0]]}, "of one length"),
    ({"metadata": TEXTS, "encoders": 0}, "'encoders' parameter of CARE"),
    ({"metadata": TEXTS, "temperature": -1.0}, "'temperature' parameter of CARE"),
    ({"metadata": ["...", "b", "c"]}, "has no words"),
])
def test_bad_parameters_are_named(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        CARE([Space(4, 2, "")] * 3, hidden=[8], **kwargs)
