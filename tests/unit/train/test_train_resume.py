"""The pure parts of resuming: the run fingerprint, when a checkpoint counts as this run's, and the
per-epoch log stitched across the interruption."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from unigrec.train.resume import (
    fingerprint,
    fingerprints,
    mark_complete,
    merge_metrics,
    resumable_checkpoint,
    stale_run,
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
class RetrievalLoss:
    softmax: str = "sampled"
    product_columns: int = 16384


@dataclasses.dataclass(frozen=True)
class Cfg:
    lr: float = 0.01
    trainer: Trainer = Trainer()
    retrieval_loss: RetrievalLoss = RetrievalLoss()


ARRAYS = [np.arange(6), np.ones((2, 3), np.float32)]


def test_fingerprint_follows_params_and_data_but_not_how_or_where_the_run_is_watched():
    key = fingerprint(Cfg(), ARRAYS)
    assert key == fingerprint(Cfg(trainer=Trainer(resume=False, accelerator="cpu")), ARRAYS)
    # the product bound picks the route to the same logits: a run may resume across it
    assert key == fingerprint(Cfg(retrieval_loss=RetrievalLoss(product_columns=0)), ARRAYS)
    assert key != fingerprint(Cfg(retrieval_loss=RetrievalLoss(softmax="full")), ARRAYS)
    assert key != fingerprint(Cfg(trainer=Trainer(devices=2)), ARRAYS)  # two ranks: other batches
    assert key != fingerprint(Cfg(lr=0.02), ARRAYS)
    assert key != fingerprint(Cfg(trainer=Trainer(max_epochs=5)), ARRAYS)
    assert key != fingerprint(Cfg(), [np.arange(6), np.zeros((2, 3), np.float32)])
    assert key != fingerprint(Cfg(), [np.arange(6).reshape(2, 3), ARRAYS[1]])  # same bytes, other shape


@dataclasses.dataclass(frozen=True)
class OptimBefore:  # the optim section as it was before optim.ema_epochs existed
    lr: float = 0.01


@dataclasses.dataclass(frozen=True)
class Optim:
    lr: float = 0.01
    ema_epochs: float | None = None


@dataclasses.dataclass(frozen=True)
class WithOptim:
    optim: object = Optim()


def test_a_key_added_at_its_off_value_keeps_the_fingerprint_of_runs_checkpointed_before_it():
    before = fingerprint(WithOptim(OptimBefore()), ARRAYS)
    assert fingerprint(WithOptim(Optim()), ARRAYS) == before  # a run started before the key still resumes
    assert fingerprint(WithOptim(Optim(ema_epochs=1.0)), ARRAYS) != before  # switched on: another run


@dataclasses.dataclass(frozen=True)
class Sized:
    lr: float = 0.01
    sizing: dict = dataclasses.field(default_factory=lambda: {"large": {"lr": 0.02}})


def test_the_sizing_table_is_not_the_run_but_a_folder_keyed_with_it_still_resumes(tmp_path):
    key, older = fingerprints(Sized(), ARRAYS)
    # another tier's values: the same run (its own tier's values are already in the sized config)
    assert key == fingerprint(Sized(sizing={"large": {"lr": 0.5}}), ARRAYS) != older
    assert key != fingerprint(Sized(lr=0.5), ARRAYS)
    work = tmp_path / "work"
    start_fresh(work, older)  # written by a unigrec whose digest held the table
    (work / "checkpoints").mkdir()
    (work / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert resumable_checkpoint(work, key) is None
    assert resumable_checkpoint(work, key, also=[older]) is not None and not stale_run(work, key, also=[older])
    assert stale_run(work, fingerprint(Sized(lr=0.5), ARRAYS))  # other params: discarded, and the log says so


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


# --- issue 40, defect 10: a checkpoint is data, never code ---------------------------------------------------

RAN: list[str] = []


def _record(note: str) -> str:
    """What a tampered checkpoint's payload calls while it is unpickled (stands in for os.system)."""
    RAN.append(note)
    return note


class _Payload:
    def __reduce__(self):
        return (_record, ("payload ran",))


def _tampered_checkpoint(path):
    import torch

    torch.save({"epoch": 3, "state_dict": {"net.w": torch.zeros(2)}, "callbacks": {}, "x": _Payload()}, path)
    return path


@pytest.mark.parametrize("reader", ["checkpoint_epoch", "relocate_checkpoint", "read_checkpoint"])
def test_a_checkpoint_holding_a_pickled_callable_is_refused_without_running_it(tmp_path, reader):
    from unigrec.errors import UnigrecError
    from unigrec.train import resume

    path = _tampered_checkpoint(tmp_path / "last.ckpt")
    RAN.clear()
    call = {
        "checkpoint_epoch": lambda: resume.checkpoint_epoch(path),
        "relocate_checkpoint": lambda: resume.relocate_checkpoint(path, tmp_path / "elsewhere"),
        "read_checkpoint": lambda: resume.read_checkpoint(path),
    }[reader]
    with pytest.raises(UnigrecError) as info:
        call()
    assert RAN == []
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "refused" in message and "_record" in message


def test_a_plain_lightning_style_checkpoint_still_loads(tmp_path):
    import torch

    from unigrec.train.resume import checkpoint_epoch, read_checkpoint

    path = tmp_path / "best.ckpt"
    torch.save({"epoch": 2, "state_dict": {"net.w": torch.ones(2)}, "callbacks": {"ModelCheckpoint{}": {
        "dirpath": str(tmp_path), "best_model_score": torch.tensor(0.5)}}, "optimizer_states": [{"lr": 0.1}]}, path)
    assert checkpoint_epoch(path) == 2
    assert torch.equal(read_checkpoint(path)["state_dict"]["net.w"], torch.ones(2))


def test_every_torch_load_in_the_package_refuses_pickled_code():
    """Any torch.load in src/ passes weights_only=True literally (a default may be flipped by an environment
    variable, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD), and Trainer.fit resumes with weights_only=True too."""
    import ast
    from pathlib import Path

    import unigrec

    root = Path(unigrec.__file__).parent
    unsafe = []
    for file in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            if name in ("torch.load", "trainer.fit"):
                flag = next((k.value for k in node.keywords if k.arg == "weights_only"), None)
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    unsafe.append(f"{file.relative_to(root)}:{node.lineno} {name}")
    assert unsafe == []
