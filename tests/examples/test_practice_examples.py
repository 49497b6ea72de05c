"""The practice-case configs of examples/practice/ (issue 23, item 5): each header shows the
command that runs it over 5 seeds, each config is valid and keeps single-task references on,
and benchmarks/practice.py tables exactly these configs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mtlkit.config import load_config

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples" / "practice"
CONFIGS = sorted(p.name for p in EX.glob("*.yaml") if not p.name.endswith("_tune.yaml"))


def test_four_cases():
    assert CONFIGS == ["deep_supervision_multimnist.yaml", "japanese_vowels_aux.yaml", "siamese_mnist_aux.yaml",
                       "sp500_targets.yaml"]


@pytest.mark.parametrize("name", CONFIGS)
def test_header_command_and_references(name):
    first = (EX / name).read_text(encoding="utf-8").splitlines()[0]
    assert re.fullmatch(rf"# mtlkit train examples/practice/{re.escape(name)} --seeds 5 --out runs/practice/\S+", first)
    cfg = load_config(EX / name)
    assert cfg.baselines is True  # the verdict needs the single-task reference
    assert cfg.seeds is None and cfg.seed == 0  # --seeds 5 gives seeds 0..4, as in the table


def test_auxiliary_weights_are_stated():
    ds = load_config(EX / "deep_supervision_multimnist.yaml")
    assert [(t.name, t.role, t.weight) for t in ds.tasks or []] == [("left", "primary", None),
                                                                  ("right", "auxiliary", 0.1)]
    ts = load_config(EX / "japanese_vowels_aux.yaml")
    assert ts.data.dataset == "japanese_vowels"
    assert [(a.get("generator"), a.get("weight")) for a in ts.model_dump()["auxiliary"]] == [
        ("std", 0.1), ("abs_changes", 0.1), ("fourier", 0.1)]
    siamese = load_config(EX / "siamese_mnist_aux.yaml")
    aux = {t.weight for t in siamese.tasks or [] if t.role == "auxiliary"}
    assert len(aux) == 1  # one λ for both digit heads, the one named in the header comment
    (lam,) = aux
    assert f"λ = {lam:g}" in (EX / "siamese_mnist_aux.yaml").read_text(encoding="utf-8")


def test_tune_config_searches_only_the_auxiliary_weights_on_validation():
    cfg = load_config(EX / "siamese_mnist_tune.yaml")
    first = (EX / "siamese_mnist_tune.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# mtlkit tune examples/practice/siamese_mnist_tune.yaml --trials ")
    assert sorted(cfg.search or {}) == ["tasks.digit_a.weight", "tasks.digit_b.weight"]
    assert cfg.tune == {"metric": "same/roc_auc"}
    plain = load_config(EX / "siamese_mnist_aux.yaml")
    # the same run as case 3 apart from the name, the λ's and the search
    mine, theirs = cfg.model_dump(), plain.model_dump()
    for d in (mine, theirs):
        for key in ("name", "search", "tune"):
            d.pop(key, None)
        for t in d["tasks"]:
            t.pop("weight")
    assert mine == theirs


def test_the_table_script_runs_these_configs():
    text = (ROOT / "benchmarks" / "practice.py").read_text(encoding="utf-8")
    assert sorted(re.findall(r'"(\w+\.yaml)"', text)) == CONFIGS
