"""Shared bits of the auxiliary-target tests."""

from __future__ import annotations

import pytest

from mtlkit import tasks

#: the dense task kinds land in mtlkit.tasks.Task with the patch of issue 7; until then the
#: tests that build dense Tasks are skipped (their math is tested through tasks_dense).
HAS_DENSE = "segmentation" in tasks.KINDS
needs_dense = pytest.mark.skipif(not HAS_DENSE, reason="mtlkit.tasks.Task has no dense kinds yet")
