"""Rank 0 alone writes; every rank resumes from rank 0's checkpoint; a resumed distributed
run ends exactly where the uninterrupted one does."""

from __future__ import annotations

import json

import numpy as np


def test_only_rank_zero_writes(job_dir):
    # each rank was given its own folder: only rank 0's exists
    assert (job_dir / "ref" / "rank0" / "metrics.jsonl").exists()
    assert not (job_dir / "ref" / "rank1").exists()
    lines = (job_dir / "ref" / "rank0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
    manifest = json.loads((job_dir / "ref" / "rank0" / "ck" / "manifest.json").read_text())
    steps = [c["step"] for c in manifest["checkpoints"]]
    assert steps == sorted(set(steps)) and steps[-1] == 9  # 3 epochs of 3 steps, written once each


def test_every_rank_resumes_from_rank_zero_checkpoint(job_dir):
    # the "crashed" copy kept checkpoints up to step 5: the newest is step 4, mid-epoch 2;
    # rank 1's folder never existed, it received the checkpoint from rank 0
    for r in (0, 1):
        assert (job_dir / f"resumed-from-rank{r}.txt").read_text() == "ckpt-000000004"
    assert not (job_dir / "crashed" / "rank1").exists()
    ref = np.load(job_dir / "ref-rank0.npy")
    for r in (0, 1):
        np.testing.assert_array_equal(np.load(job_dir / f"resumed-rank{r}.npy"), ref)
    # validation scores (early stopping, best epoch) agree on every rank
    np.testing.assert_array_equal(np.load(job_dir / "val-rank0.npy"), np.load(job_dir / "val-rank1.npy"))
    lines = (job_dir / "crashed" / "rank0" / "metrics.jsonl").read_text().splitlines()
    ref_lines = (job_dir / "ref" / "rank0" / "metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(x).items() if k != "time_s"} for x in lines]
    assert strip == [{k: v for k, v in json.loads(x).items() if k != "time_s"} for x in ref_lines]
