"""Every example config validates and starts with the command that runs it."""

from pathlib import Path

import pytest

from mtlkit.config import load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").rglob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_config_is_valid(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# mtlkit "), f"{path.name} must start with the command that runs it"
    if path.parent.name == "rl":  # `mtlkit rl` configs have their own schema
        from mtlkit.rl import load_rl_config

        load_rl_config(path)
        return
    load_config(path)
