"""A config never makes mtlkit import code by itself (issue 20, item 7).

``auxiliary: [{generator: hint, fn: "evil:f"}]`` made ``mtlkit train`` import ``./evil.py``
(any module with side effects at import runs them), and ``--resume``, ``evaluate`` and
``predict`` read the run's own ``config.yaml``. Now a config may name user code only when the
user allows it explicitly (``--code FILE`` or an installed module), the run records what it
was allowed (``run.json``), and resuming, evaluating or predicting never imports code named in
the run folder."""

from __future__ import annotations

import json

import pytest
import yaml
from _robust import tiny_frame
from typer.testing import CliRunner

from mtlkit.cli import get_app
from mtlkit.user_code import forget_code

EVIL = '''import pathlib
pathlib.Path("IMPORTED").write_text("evil.py ran")  # a side effect at import


def f(x):
    return x[:, 0] * 2.0
'''


@pytest.fixture(autouse=True)
def _setup(monkeypatch, tmp_path):
    monkeypatch.setattr("mtlkit.run.execute.write_report_safely", lambda run_dir, say: None)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as under `python -m mtlkit`: the working folder is importable
    (tmp_path / "evil.py").write_text(EVIL)
    tiny_frame(60).to_csv(tmp_path / "d.csv", index=False)
    cfg = {"name": "c", "data": {"path": "d.csv"},
           "tasks": [{"name": "y", "kind": "multiclass", "num_classes": 3}, {"name": "z", "kind": "regression"}],
           "auxiliary": [{"generator": "hint", "fn": "evil:f"}],
           "model": {"trunk": {"name": "mlp", "hidden": [4]}}, "training": {"epochs": 1}, "baselines": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    forget_code()
    yield
    forget_code()
    import sys

    sys.modules.pop("evil", None)


def _cli(*args):
    forget_code()  # each command starts with nothing allowed, as a new process does
    return CliRunner().invoke(get_app(), [*map(str, args)])


def test_a_config_naming_code_is_refused_and_nothing_runs(tmp_path):
    res = _cli("train", "c.yaml", "--out", "run", "--no-progress")
    assert res.exit_code == 2, res.output
    assert "names code ('evil:f')" in res.output and "--code evil.py" in res.output
    assert not (tmp_path / "IMPORTED").exists()
    assert not (tmp_path / "run").exists()


def test_code_allowed_with_code_runs_and_is_recorded(tmp_path):
    res = _cli("train", "c.yaml", "--out", "run", "--no-progress", "--code", "evil.py")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "IMPORTED").exists()  # the user allowed it
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    (code,) = record["code"]
    assert code["module"] == "evil" and code["file"] == str(tmp_path / "evil.py") and len(code["sha256"]) == 64


def test_resume_evaluate_predict_never_import_code_named_in_the_run(tmp_path):
    assert _cli("train", "c.yaml", "--out", "run", "--no-progress", "--code", "evil.py").exit_code == 0
    (tmp_path / "IMPORTED").unlink()
    import sys

    sys.modules.pop("evil", None)
    res = _cli("train", "--resume", "run", "--no-progress")
    assert res.exit_code == 2 and "--code evil.py" in res.output, res.output
    tiny_frame(5).to_csv(tmp_path / "new.csv", index=False)
    assert _cli("predict", "run", "new.csv", "--out", "p.csv").exit_code == 0
    assert _cli("evaluate", "run").exit_code == 0
    assert not (tmp_path / "IMPORTED").exists()
    # allowed again: the resume runs; a changed file is refused unless --force
    assert _cli("train", "--resume", "run", "--no-progress", "--code", "evil.py").exit_code == 0
    (tmp_path / "evil.py").write_text(EVIL.replace("* 2.0", "* 3.0"))
    res = _cli("train", "--resume", "run", "--no-progress", "--code", "evil.py")
    assert res.exit_code == 2 and "user code differs" in res.output, res.output


def test_python_api_string_references_need_allowing():
    from mtlkit.auxiliary import Hint
    from mtlkit.user_code import allowed_code

    with pytest.raises(ValueError, match=r"names code \('numpy:sign'\).*allow_code"):
        Hint(fn="numpy:sign")
    with allowed_code("numpy") as records:
        assert Hint(fn="numpy:sign").kind == "regression"
        assert records[0]["module"] == "numpy"
    with pytest.raises(ValueError, match="names code"):
        Hint(fn="numpy:sign")  # the permission ended with the block
