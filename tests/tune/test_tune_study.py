"""A seeded tune is deterministic and resumable (after an exception and after a kill that
leaves a trial running); a study from another config is refused; the objective on a named
metric."""

from __future__ import annotations

import json

import pytest

import mtlkit.tune.execute as execute
from mtlkit.config import load_config, parse_config
from mtlkit.tune import ForeignStudyError, tune

optuna = pytest.importorskip("optuna")


def _tune(cfg, out, **kw):
    kw.setdefault("seeds", None)
    kw.setdefault("report", False)
    return tune(cfg, trials=3, out_dir=out, **kw)


def _fingerprint(result):
    return [(r["number"], r["state"], r["params"], r["value"]) for r in result.trials]


@pytest.fixture(scope="module")
def uninterrupted(make, tmp_path_factory):
    out = tmp_path_factory.mktemp("tune-a")
    return _tune(parse_config(make()), out / "run", report=True)


def test_seeded_tune_is_deterministic(uninterrupted, make, tmp_path):
    again = _tune(parse_config(make()), tmp_path / "run")
    assert _fingerprint(again) == _fingerprint(uninterrupted)
    rows = uninterrupted.trials
    assert [r["state"] for r in rows] == ["complete"] * 3
    assert len({json.dumps(r["params"], sort_keys=True) for r in rows}) == 3  # three different trials
    # the conditional hyperparameter is searched exactly when its method is chosen
    for r in rows:
        assert ("training.weighting.temperature" in r["params"]) == (r["params"]["training.weighting.name"] == "dwa")
    best = min(rows, key=lambda r: r["value"])
    assert uninterrupted.record["best"]["number"] == best["number"]
    text = (uninterrupted.run_dir / "best_config.yaml").read_text()
    assert text.startswith("# mtlkit train best_config.yaml")
    tuned = load_config(uninterrupted.run_dir / "best_config.yaml")
    assert tuned.training.optimizer.lr == best["params"]["training.optimizer.lr"] and tuned.search is None
    assert tuned.tasks[1].weight == best["params"]["tasks.z.weight"]
    csv = (uninterrupted.run_dir / "trials.csv").read_text().splitlines()
    assert len(csv) == 4 and "training.optimizer.lr" in csv[0]
    assert "Optimisation history" in (uninterrupted.run_dir / "report.html").read_text()


def test_resume_after_a_crash_repeats_no_finished_trial(uninterrupted, make, tmp_path, monkeypatch):
    cfg = parse_config(make())
    calls = []
    real = execute.train_trial

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated kill during trial 3")
        return real(*args, **kwargs)

    monkeypatch.setattr(execute, "train_trial", crashing)
    with pytest.raises(RuntimeError, match="simulated kill"):
        _tune(cfg, tmp_path / "run")
    calls.clear()
    monkeypatch.setattr(execute, "train_trial", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    resumed = _tune(cfg, tmp_path / "run")
    assert len(calls) == 1  # only the missing trial trained
    done = [r for r in resumed.trials if r["state"] == "complete"]
    assert len(done) == 3 and [r["state"] for r in resumed.trials].count("fail") == 1
    # the same trials as a study that never crashed (the sampler is seeded per finished trial)
    assert [(r["params"], r["value"]) for r in done] == [(r["params"], r["value"]) for r in uninterrupted.trials]
    again = _tune(cfg, tmp_path / "run")  # nothing left to do
    assert len(calls) == 1 and len(again.trials) == 4


def test_trial_left_running_by_a_killed_process_is_failed_and_redone(make, tmp_path):
    cfg = parse_config(make())
    first = tune(cfg, trials=1, out_dir=tmp_path / "run", seeds=None, report=False)
    storage = f"sqlite:///{(tmp_path / 'run' / 'study.db').resolve()}"
    study = optuna.load_study(study_name="mtlkit-tiny", storage=storage)
    study.ask()  # what a process killed mid-trial leaves: a trial in the RUNNING state
    result = tune(cfg, trials=2, out_dir=tmp_path / "run", seeds=None, report=False)
    states = [r["state"] for r in result.trials]
    assert states == ["complete", "fail", "complete"]
    assert result.trials[0]["params"] == first.trials[0]["params"]


def test_study_from_another_config_is_refused(make, tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    one = make(search={"training.optimizer.lr": {"low": 1e-3, "high": 1e-2, "log": True}})
    tune(parse_config(one), trials=1, out_dir=tmp_path / "a", storage=storage, seeds=None, report=False)
    other = make(search={"training.optimizer.lr": {"low": 1e-4, "high": 1e-2, "log": True}})
    with pytest.raises(ForeignStudyError, match="created from another config"):
        tune(parse_config(other), trials=1, out_dir=tmp_path / "b", storage=storage, seeds=None, report=False)
    # the same config joins the shared study (another worker): its trial is added to it
    joined = tune(parse_config(one), trials=2, out_dir=tmp_path / "c", storage=storage, seeds=None, report=False)
    assert len(joined.trials) == 2 and not (tmp_path / "c" / "study.db").exists()


def test_named_metric_objective(make, tmp_path):
    cfg = parse_config(make(tune={"metric": "y/accuracy"}))
    result = tune(cfg, trials=2, out_dir=tmp_path / "run", seeds=None, report=False)
    assert result.record["direction"] == "maximize" and result.record["references_val"] is None
    best = max(result.trials, key=lambda r: r["value"])
    assert result.record["best"]["number"] == best["number"]
    assert best["value"] == best["val"]["y"]["accuracy"]
    with pytest.raises(ValueError, match="no metric 'nope'"):
        tune(parse_config(make(tune={"metric": "y/nope"})), trials=1, out_dir=tmp_path / "x",
             seeds=None, report=False)


def test_pruning_callback_reports_each_epoch_and_stops_the_trial(make):
    from mtlkit.tune.objective import (
        DataCache,
        Objective,
        PruningCallback,
        build_trial,
        train_trial,
    )

    class FakeTrial:
        def __init__(self):
            self.reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return len(self.reports) == 2

    class Stop(Exception):
        pass

    cfg = parse_config(make(training={"epochs": 4, "batch_size": 32}, search=None))
    prepared = DataCache().get(cfg)
    refs = {"y": {"accuracy": 0.8, "roc_auc": 0.8}, "z": {"mae": 1.0, "rmse": 1.2}}
    trial = FakeTrial()
    cb = PruningCallback(trial, Objective(), refs, prepared.tasks, Stop)
    with pytest.raises(Stop, match="pruned at epoch 2"):
        train_trial(cfg, prepared, Objective(), refs, build_trial(cfg, prepared), cb)
    assert [s for s, _ in trial.reports] == [1, 2] and all(isinstance(v, float) for _, v in trial.reports)
    # without pruning the trial runs its epochs and its value is the Δm of its kept model's metrics
    res = train_trial(cfg, prepared, Objective(), refs, build_trial(cfg, prepared))
    assert res.epochs_run == 4 and res.value == pytest.approx(Objective().value(res.val, refs, prepared.tasks))


def test_a_pruned_trial_is_recorded_and_counts_as_finished(make, tmp_path, monkeypatch):
    class PruneSecond(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.number == 1

    monkeypatch.setattr(optuna.pruners, "MedianPruner", lambda **kw: PruneSecond())
    result = _tune(parse_config(make()), tmp_path / "run")
    assert [r["state"] for r in result.trials] == ["complete", "pruned", "complete"]
    assert result.trials[1]["intermediate"] and result.record["trials"]["pruned"] == 1
