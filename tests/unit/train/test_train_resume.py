"""The pure parts of resuming: the run fingerprint, when a checkpoint counts as this run's, and the
per-epoch log stitched across the interruption."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from unigrec.train.resume import (
    fingerprint,
    mark_complete,
    merge_metrics,
    resumable_checkpoint,
    start_fresh,
    stash_metrics,
)


@dataclasses.dataclass(frozen=True)
class Trainer:
    max_epochs: int = 4
    resume: bool = True
    accelerator: str = "gpu"
    devices: int = 1


@dataclasses.dataclass(frozen=True)
class Cfg:
    lr: float = 0.01
    trainer: Trainer = Trainer()


ARRAYS = [np.arange(6), np.ones((2, 3), np.float32)]


def test_fingerprint_follows_params_and_data_but_not_how_or_where_the_run_is_watched():
    key = fingerprint(Cfg(), ARRAYS)
    assert key == fingerprint(Cfg(trainer=Trainer(resume=False, accelerator="cpu")), ARRAYS)
    assert key != fingerprint(Cfg(trainer=Trainer(devices=2)), ARRAYS)  # two ranks: other batches
    assert key != fingerprint(Cfg(lr=0.02), ARRAYS)
    assert key != fingerprint(Cfg(trainer=Trainer(max_epochs=5)), ARRAYS)
    assert key != fingerprint(Cfg(), [np.arange(6), np.zeros((2, 3), np.float32)])
    assert key != fingerprint(Cfg(), [np.arange(6).reshape(2, 3), ARRAYS[1]])  # same bytes, other shape


def test_only_an_unfinished_run_with_the_same_fingerprint_resumes(tmp_path):
    work = tmp_path / "work"
    start_fresh(work, "abc")
    assert resumable_checkpoint(work, "abc") is None  # no checkpoint yet
    last = work / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"x")
    assert resumable_checkpoint(work, "abc") == last
    assert resumable_checkpoint(work, "other") is None
    mark_complete(work)
    assert resumable_checkpoint(work, "abc") is None
    start_fresh(work, None)
    assert not work.exists()


def test_the_log_keeps_the_epochs_up_to_the_checkpoint_then_the_resumed_ones(tmp_path):
    log = tmp_path / "csv" / "version_0" / "metrics.csv"
    log.parent.mkdir(parents=True)
    pd.DataFrame({"epoch": [0, 0, 1, 1, 2], "train/loss": [5, 4, 3, 2, 9], "val/ndcg": [None, 0.1, None, 0.2, None]}
                 ).to_csv(log, index=False)
    stashed = stash_metrics(log)
    assert not log.exists()  # Lightning's CSVLogger would delete it
    pd.DataFrame({"epoch": [2, 2], "train/loss": [1.5, None], "val/ndcg": [None, 0.3], "lr": [0.1, None]}
                 ).to_csv(log, index=False)
    merge_metrics(stashed, log, resumed_after_epoch=1)  # the half-done epoch 2 of the killed part goes
    merged = pd.read_csv(log)
    assert merged["epoch"].tolist() == [0, 0, 1, 1, 2, 2]
    assert merged["val/ndcg"].dropna().tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert "lr" in merged.columns and not stashed.exists()


def test_a_second_interruption_before_merging_keeps_both_parts(tmp_path):
    log = tmp_path / "csv" / "version_0" / "metrics.csv"
    log.parent.mkdir(parents=True)
    pd.DataFrame({"epoch": [0], "val/ndcg": [0.1]}).to_csv(log, index=False)
    stash_metrics(log)
    pd.DataFrame({"epoch": [1], "val/ndcg": [0.2]}).to_csv(log, index=False)
    stashed = stash_metrics(log)
    merge_metrics(stashed, log, resumed_after_epoch=1)
    assert pd.read_csv(log)["val/ndcg"].tolist() == pytest.approx([0.1, 0.2])
