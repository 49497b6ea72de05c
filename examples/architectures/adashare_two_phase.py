"""AdaShare's two phases on MultiMNIST: learn the select/skip policy, fix it, retrain.

    python examples/architectures/adashare_two_phase.py        # ~1 min on a CPU

Phase 1 trains the network and the per-task policy logits jointly (warm-up, curriculum,
Gumbel-softmax with a decaying temperature, sparsity and sharing regularisers). Phase 2 fixes
the policy (``fix_policy``: sampled from the select probabilities, as in Sun et al. (2020),
with a seeded generator) and retrains a fresh model with it (``retrain_model``). Prints the
task x block policy and the test accuracy of both phases. The same from YAML:
``retrain: true`` in ``model.architecture`` (see adashare_multimnist.yaml).
"""

from __future__ import annotations

import torch

from mtlkit import Trainer
from mtlkit.architectures import build_model
from mtlkit.datasets import load_multimnist
from mtlkit.run import prepare


def main() -> None:
    torch.set_num_threads(1)
    b = load_multimnist(quick=True)
    p = prepare(b.data, b.tasks, test=b.test, fractions=(0.8, 0.2, 0.0), seed=0, standardize=False)
    steps = -(-len(p.train) // 128)  # batches per epoch
    config = {"name": "adashare", "trunk": {"name": "lenet"}, "warmup_steps": steps,
              "curriculum_steps": steps, "decay_every": max(1, steps // 2)}

    def train(model):
        trainer = Trainer(model, p.tasks, epochs=4, batch_size=128, lr=2e-3, seed=0, progress=False)
        trainer.fit(p.train, p.val)
        return {t: round(m["accuracy"], 4) for t, m in trainer.evaluate(p.test).items()}

    torch.manual_seed(0)
    search = build_model(config, p.tasks, p.input_shape)
    acc1 = train(search)
    print("select probability per block", search.block_names, search.sharing_summary()["policy"])
    policy = search.fix_policy(sample=True, generator=torch.Generator().manual_seed(0))
    print("fixed policy (1 = select, 0 = skip):", policy)
    print("phase 1 (search) test accuracy:", acc1)

    torch.manual_seed(0)
    final = search.retrain_model(policy)  # a fresh network: same config, the policy fixed
    print("phase 2 (retrained with the fixed policy) test accuracy:", train(final))


if __name__ == "__main__":
    main()
