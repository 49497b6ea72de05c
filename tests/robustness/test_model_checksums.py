"""Every file a model needs is covered by a checksum, and a missing checksum is an error
(issue 20, item 8). Before: changing one digit of the input standardisation in ``model.json``
silently changed every prediction, and deleting ``weights_sha256`` turned the weights check
off."""

from __future__ import annotations

import json

import pytest
from _robust import tiny_frame
from typer.testing import CliRunner

from mtlkit import load_run
from mtlkit.cli import get_app
from mtlkit.run import RunFolderError


def _edit(run, change):
    meta = json.loads((run / "model.json").read_text())
    change(meta)
    (run / "model.json").write_text(json.dumps(meta, indent=2))


def _one_digit(meta):
    """The first feature's mean, one digit changed (as the issue's attack did)."""

    def first_mean(node):
        if isinstance(node, dict):
            if isinstance(node.get("mean"), list):
                return node["mean"]
            node = list(node.values())
        for item in node if isinstance(node, list) else []:
            found = first_mean(item)
            if found is not None:
                return found
        return None

    mean = first_mean(meta["preprocessing"])
    text = repr(mean[0])
    mean[0] = float(text[:4] + ("1" if text[4] != "1" else "2") + text[5:])


def _no_weights_checksum_but_a_valid_own_one(meta):
    from mtlkit._io import sha256_json

    meta.pop("weights_sha256")
    meta.pop("meta_sha256")
    meta["meta_sha256"] = sha256_json(meta)


EDITS = {
    "one-digit-of-the-standardisation": (_one_digit, "does not match its checksum"),
    "weights-checksum-deleted": (lambda m: m.pop("weights_sha256"), "does not match its checksum"),
    "both-checksums-deleted": (lambda m: (m.pop("weights_sha256"), m.pop("meta_sha256")), "records no checksum"),
    "a-task-renamed": (lambda m: m["tasks"][1].update(name="zz"), "does not match its checksum"),
    "no-weights-checksum": (_no_weights_checksum_but_a_valid_own_one, "no checksum of the weights"),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_an_edited_model_json_is_refused(run_copy, name):
    change, message = EDITS[name]
    assert load_run(run_copy) is not None
    _edit(run_copy, change)
    with pytest.raises(RunFolderError, match=message) as e:
        load_run(run_copy)
    assert "model.json" in str(e.value)


def test_cli_predict_and_evaluate_refuse_an_edited_model_json(run_copy, tmp_path):
    _edit(run_copy, _one_digit)
    tiny_frame(5).to_csv(tmp_path / "in.csv", index=False)
    for args in (["predict", run_copy, tmp_path / "in.csv", "--out", tmp_path / "p.csv"],
                 ["evaluate", run_copy], ["evaluate", run_copy, "--data", tmp_path / "in.csv"]):
        res = CliRunner().invoke(get_app(), [str(a) for a in args])
        assert res.exit_code == 2 and "does not match its checksum" in res.output, (args, res.output)
    assert not (tmp_path / "p.csv").exists()
