"""Resume an interrupted training run where it stopped, and only when it is the same run.

On a 2-core laptop one ML-1M training takes hours; a killed job, a closed lid or a session limit would
otherwise throw all of it away, since ``fit`` starts from an empty work folder. With ``train.trainer.resume``
on, Lightning also keeps ``checkpoints/last.ckpt`` (weights, optimiser, lr schedule, early-stopping and
best-checkpoint state) after every validation, and the work folder carries a fingerprint of everything
that defines the run: the train params and the data it trains on. A later run continues from
``last.ckpt`` only when its fingerprint matches and the earlier run did not finish; anything else wipes
the folder and starts from scratch, so changed params or data can never continue a stale model.

A resumed run is the same optimisation continued, not a bit-for-bit replay: the data-order and dropout
random streams restart from the seed at the resumed epoch. The stage's metrics record the epoch it
resumed from so a reader can tell.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unigrec.errors import UnigrecError

STATE_FILE = "resume.json"
LAST_CHECKPOINT = "last.ckpt"
STASHED_METRICS = "metrics.before_resume.csv"
# Train-config knobs that change how a run is watched, where it computes or by which route, not what it
# computes: a run may resume across them (a GPU run cut short can finish on a CPU), and a benchmark may adopt
# a model trained with other values. Not devices/strategy/precision: those change the batches or the
# arithmetic. (The device changes float rounding only, as two multi-threaded CPU runs already do; the
# sampled softmax's product bound picks a product or a gather for the same logits; thread counts, loggers
# and progress bars live in params.yaml's runtime section, outside the train config.)
COSMETIC_KEYS = ("trainer.resume", "trainer.accelerator", "retrieval_loss.product_columns")


# Keys added after runs were checkpointed, with the value that trains exactly as before they existed: left out
# of the digest at that value, so a run started before the key (on a machine that keeps its folder between
# sessions) still resumes; any other value is a different run.
ADDED_KEYS_OFF = {"optim.ema_epochs": None}
# train.sizing is how the auto keys were chosen, not what this run trains: a sized config already holds its tier's
# values, so editing one tier's table (a new small-tier default) must not discard a large-tier run in progress.
NOT_THE_RUN = "sizing"


def config_digest(cfg: Any, *, with_sizing: bool = False) -> dict[str, Any]:
    """The train config as a plain dict, cosmetic keys (section.key) dropped, and added keys at their off value.
    ``with_sizing`` keeps the tier table, as the digest did before it was left out (:func:`fingerprints`)."""
    raw = dataclasses.asdict(cfg)
    if not with_sizing:
        raw.pop(NOT_THE_RUN, None)
    for path in COSMETIC_KEYS:
        section, key = path.split(".")
        raw.get(section, {}).pop(key, None)
    for path, off in ADDED_KEYS_OFF.items():
        section, key = path.split(".")
        if key in raw.get(section, {}) and raw[section][key] == off:
            del raw[section][key]
    return raw


def fingerprint(cfg: Any, arrays: Iterable[np.ndarray], *, with_sizing: bool = False) -> str:
    """sha256 over the config and every array the run trains on (shape, dtype and bytes of each)."""
    digest = config_digest(cfg, with_sizing=with_sizing)
    h = hashlib.sha256(json.dumps(digest, sort_keys=True, default=str).encode())
    for array in arrays:
        a = np.ascontiguousarray(array)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def checkpoint_dir(work_dir: Path) -> Path:
    return Path(work_dir) / "checkpoints"


def read_state(work_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(work_dir) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def fingerprints(cfg: Any, arrays: Sequence[np.ndarray]) -> tuple[str, str]:
    """This run's fingerprint, then the one an older unigrec wrote for the same run (its digest held
    train.sizing): a folder checkpointed before the change still resumes, as long as the tier table is unchanged."""
    return fingerprint(cfg, arrays), fingerprint(cfg, arrays, with_sizing=True)


def resumable_checkpoint(work_dir: Path, key: str, *, also: Iterable[str] = ()) -> Path | None:
    """``last.ckpt`` of an unfinished run with this fingerprint (or one of ``also``, older forms of it), else None."""
    state = read_state(work_dir)
    last = checkpoint_dir(work_dir) / LAST_CHECKPOINT
    if state is None or state.get("fingerprint") not in {key, *also} or state.get("complete") or not last.exists():
        return None
    return last


def stale_run(work_dir: Path, key: str, *, also: Iterable[str] = ()) -> bool:
    """Whether the folder holds an unfinished run of other params or data, which a fresh start will discard."""
    state = read_state(work_dir)
    return bool(state) and not state.get("complete") and state.get("fingerprint") not in {key, *also}


def start_fresh(work_dir: Path, key: str | None) -> None:
    """Empty the work folder; with a key, mark it as holding an unfinished run of that fingerprint."""
    work_dir = Path(work_dir)
    if work_dir.exists():
        shutil.rmtree(work_dir)
    if key is not None:
        write_state(work_dir, {"fingerprint": key, "complete": False})


def mark_complete(work_dir: Path) -> None:
    """A finished run is never continued: a re-run with the same fingerprint trains from scratch again.
    Called once the run's outputs are written, not when the last epoch ends: a run killed in between (its
    final validation, the model save) then resumes after its last epoch and only redoes that part."""
    state = read_state(work_dir)
    if state is not None:
        write_state(work_dir, {**state, "complete": True})


def write_state(work_dir: Path, state: dict[str, Any]) -> None:
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    (Path(work_dir) / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")


def stash_metrics(metrics_csv: Path) -> Path:
    """Move the interrupted part's per-epoch log out of the logger's way (Lightning's CSVLogger deletes an
    existing ``metrics.csv`` when it starts); ``merge_metrics`` puts it back in front of the new rows.
    A run interrupted again before merging already has a stash: the new rows are appended to it."""
    holding = metrics_csv.parent.parent / STASHED_METRICS  # outside the log dir, which the logger clears
    if metrics_csv.exists():
        parts = [pd.read_csv(holding)] if holding.exists() else []
        parts.append(pd.read_csv(metrics_csv))
        pd.concat(parts, ignore_index=True, sort=False).to_csv(holding, index=False)
        metrics_csv.unlink()
    return holding


def merge_metrics(stashed: Path, metrics_csv: Path, resumed_after_epoch: int) -> None:
    """``metrics.csv`` = the interrupted part's rows up to the checkpoint's epoch (later rows belong to an
    epoch the resumed run trains again), then the resumed part's rows; columns united."""
    if not stashed.exists():
        return
    before = pd.read_csv(stashed)
    if "epoch" in before.columns:
        before = before[before["epoch"] <= resumed_after_epoch]
    parts = [before, pd.read_csv(metrics_csv)] if metrics_csv.exists() else [before]
    metrics_csv.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(parts, ignore_index=True, sort=False).to_csv(metrics_csv, index=False)
    stashed.unlink()


def relocate_checkpoint(path: Path, checkpoint_folder: Path) -> bool:
    """Point the checkpoint callbacks' recorded files at ``checkpoint_folder`` when the run's folder moved since
    ``path`` was written (trained on a lent GPU machine, packed, resumed in another checkout). Lightning
    restores a callback's best score only when its recorded folder is the current one; otherwise the first
    resumed epoch counts as a new best and overwrites ``best.ckpt`` whatever it scores. Returns whether the
    file was rewritten (atomically, so a kill meanwhile leaves the old one)."""
    import torch

    here = os.path.realpath(checkpoint_folder)  # Lightning records its folder resolved the same way
    checkpoint = read_checkpoint(path)
    moved = False
    for key, state in checkpoint.get("callbacks", {}).items():
        old = state.get("dirpath") if key.startswith("ModelCheckpoint") else None
        if not old or old == here:
            continue

        def move(file: str, old: str = old) -> str:
            return os.path.join(here, os.path.relpath(file, old)) if file and file.startswith(old + os.sep) else file

        state["dirpath"] = here
        for name in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if name in state:
                state[name] = move(state[name])
        if "best_k_models" in state:
            state["best_k_models"] = {move(file): score for file, score in state["best_k_models"].items()}
        moved = True
    if moved:
        tmp = Path(path).with_suffix(".relocating")
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)
    return moved


def checkpoint_epoch(path: Path) -> int:
    """The epoch whose end a Lightning checkpoint was saved at (training resumes at the next one)."""
    return int(read_checkpoint(path)["epoch"])


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's contents, read as data only (``weights_only=True``).

    Checkpoints travel between machines (trained on a lent GPU, packed, resumed elsewhere), and a pickle may
    name any callable to run while it is read. Lightning's checkpoints hold only tensors, containers and
    plain values, so the restricted unpickler reads them whole; anything else is refused with the global it
    names instead of being run (Trainer.fit resumes with ``weights_only=True`` as well)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f"a pickled object ({found.group(1)})" if found else "something other than tensors and plain values"
        raise UnigrecError(
            f"checkpoint {path} holds {what}: refused to load it, since unpickling it could run code; "
            "delete the file (the run then trains from scratch) unless it comes from a source you trust"
        ) from None
