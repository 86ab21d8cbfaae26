"""SASRec's training loop on users' item sequences, either as in the paper (``bce``: the true next item
against one uniformly sampled non-interacted item per position) or with the full-catalogue softmax
(``ce``), which Klenitskiy & Vasilev (RecSys'23, "SASRec+") and the HSTU authors' sampled-softmax SASRec
found far stronger: the published ML-1M SASRec figures are of that kind."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from unigrec.averaging import ParameterAverage, ema_decay
from unigrec.config import SASRecConfig
from unigrec.errors import UnigrecError
from unigrec.logs import progress
from unigrec.sasrec.net import SASRecNet

log = logging.getLogger(__name__)


def left_pad(sequences: Sequence[Sequence[int]], length: int) -> np.ndarray:
    """(len(sequences), length) int64 of each sequence's last ``length`` entries, zeros in front."""
    out = np.zeros((len(sequences), length), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = list(seq)[-length:]
        if tail:
            out[row, length - len(tail) :] = tail
    return out


def user_item_sequences(train_events: pd.DataFrame, index: dict[str, int]) -> dict[str, np.ndarray]:
    """Each user's training items in timeline order, as 1-based indices, by user id (both streams: an
    engagement found by search is as much a consumption signal as a recommended one)."""
    frame = train_events.sort_values(["user_id", "order"], kind="mergesort")
    codes = frame["item_id"].astype(str).map(index).to_numpy(dtype=np.int64) + 1
    users = frame["user_id"].astype(str).to_numpy()
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    return {users[a]: codes[a:b] for a, b in itertools.pairwise(bounds)}


def sample_negatives(
    positives: torch.Tensor, seen: torch.Tensor, n_items: int, generator: torch.Generator
) -> torch.Tensor:
    """One uniform item per position that the row's user never interacted with (``seen``: (B, n_items+1))."""
    negatives = torch.randint(1, n_items + 1, positives.shape, generator=generator)
    clash = seen.gather(1, negatives)
    while clash.any():  # rejection sampling: users see a small share of the catalogue, so this is short
        negatives[clash] = torch.randint(1, n_items + 1, (int(clash.sum()),), generator=generator)
        clash = seen.gather(1, negatives)
    return negatives


def torch_device(accelerator: str, key: str) -> torch.device:
    """The device the setting ``key`` (``accelerator``) names: ``cpu``; ``gpu`` (refused where torch sees no
    CUDA device, rather than training for an hour on the CPU unasked); ``auto`` (CUDA when there is one)."""
    if accelerator == "cpu":
        return torch.device("cpu")
    if accelerator not in ("gpu", "auto"):
        raise UnigrecError(f"{key} must be cpu, gpu or auto, not {accelerator!r}")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if accelerator == "gpu":
        raise UnigrecError(f"{key} is gpu but torch sees no CUDA device: set cpu or auto")
    return torch.device("cpu")


def sasrec_loss(
    net: SASRecNet, cfg: SASRecConfig, states: torch.Tensor, pos: torch.Tensor, seen: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Mean loss over the real (non-padding) positions of one batch."""
    mask = pos != 0
    if cfg.loss == "ce":
        logits = net.catalogue_logits(states[mask])
        return torch.nn.functional.cross_entropy(logits, pos[mask] - 1)
    n_items = net.item_embedding.num_embeddings - 1
    neg = sample_negatives(pos.cpu(), seen, n_items, generator).to(pos.device)
    pos_logits = net.item_logits(states, pos)[mask]
    neg_logits = net.item_logits(states, neg)[mask]
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    return bce(pos_logits, torch.ones_like(pos_logits)) + bce(neg_logits, torch.zeros_like(neg_logits))


@dataclasses.dataclass
class TrainingRecord:
    """How a fit went: epochs run, the epoch whose weights were kept, the validation figure per epoch."""

    epochs_run: int
    best_epoch: int  # 1-based; the last epoch when nothing was monitored
    monitor: list[float]  # validation NDCG per epoch ([] without early stopping)


def training_windows(sequences: Sequence[np.ndarray], max_len: int, mode: str) -> list[np.ndarray]:
    """The ``max_len + 1``-item windows SASRec trains on (each gives ``max_len`` transitions).

    ``latest``: each sequence's last window, as the published SASRec trains (a history longer than the
    window teaches nothing from its older part). ``all``: the whole sequence cut into windows counted back
    from its last item, consecutive windows sharing one item, so every transition is trained once, as the
    unified model's ``train.train_windows: all`` does; short contexts then cost reading, not training data.
    Windows of fewer than two items hold no transition and are dropped."""
    if mode not in ("latest", "all"):
        raise ValueError(f"train_windows must be 'latest' or 'all', not {mode!r}")
    out = []
    for seq in sequences:
        ends = range(len(seq), 1, -max_len) if mode == "all" else [len(seq)]
        out.extend(seq[max(end - max_len - 1, 0) : end] for end in ends)
    return [w for w in out if len(w) >= 2]


def train_sasrec(
    sequences: Sequence[np.ndarray], n_items: int, cfg: SASRecConfig, device: torch.device,
    monitor: Callable[[SASRecNet], float] | None = None,
) -> tuple[SASRecNet, TrainingRecord]:
    """Fit SASRec on each sequence's ``max_len + 1``-item windows (:func:`training_windows`; 1-based item
    indices) and return it in eval mode. Seeded by ``cfg.seed`` without touching the caller's random state.

    With ``cfg.patience`` and a ``monitor`` (the net in eval mode -> a validation figure, higher is better),
    training stops once ``patience`` epochs in a row did not beat the best figure, and the best epoch's
    weights are returned: the published SASRec+ recipe, and the way the unified model chooses its epoch."""
    if cfg.patience is not None and monitor is None:
        raise ValueError("sasrec: patience is set but no validation monitor was given")
    early_stopping = cfg.patience is not None and monitor is not None
    # Inputs are items 0..n-2 of each max_len+1 window, targets items 1..n-1.
    windows = training_windows(sequences, cfg.max_len, cfg.train_windows)
    if not windows:
        raise ValueError("sasrec: no user has two training events to learn a transition from")
    inputs = torch.from_numpy(left_pad([w[:-1] for w in windows], cfg.max_len))
    targets = torch.from_numpy(left_pad([w[1:] for w in windows], cfg.max_len))
    seen = torch.zeros(len(windows), n_items + 1, dtype=torch.bool)
    for row, w in enumerate(windows):
        seen[row, torch.from_numpy(w)] = True
    seen[:, 0] = True  # never draw padding as a negative

    record = TrainingRecord(0, 0, [])
    best_state: dict[str, torch.Tensor] | None = None
    # fork_rng: seeding must not change the random state of whoever called us.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        net = SASRecNet(n_items, cfg.max_len, cfg.hidden, cfg.n_blocks, cfg.n_heads, cfg.dropout).to(device)
        optimiser = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.l2)
        params = dict(net.named_parameters())
        steps_per_epoch = math.ceil(len(windows) / cfg.batch_size)
        average = (ParameterAverage(params, ema_decay(cfg.ema_epochs, steps_per_epoch))
                   if cfg.ema_epochs is not None else None)
        epochs = progress(range(cfg.epochs), desc="sasrec epochs", leave=False)
        for epoch in epochs:
            net.train()
            order = torch.randperm(len(windows), generator=generator)
            total, batches = 0.0, 0
            for start in range(0, len(order), cfg.batch_size):
                rows = order[start : start + cfg.batch_size]
                # the data and the sampling stay on the CPU (one seeded generator on any device)
                states = net(inputs[rows].to(device))
                loss = sasrec_loss(net, cfg, states, targets[rows].to(device), seen[rows], generator)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                if average is not None:
                    average.update(params)
                total, batches = total + loss.item(), batches + 1
            record.epochs_run = record.best_epoch = epoch + 1
            if not early_stopping:
                epochs.set_postfix(loss=f"{total / batches:.4f}")
                log.debug("sasrec epoch %d: loss %.4f", epoch + 1, total / batches)
                continue
            assert monitor is not None and cfg.patience is not None  # early_stopping says so
            if average is not None:
                average.swap(params)  # validated and kept: the average; trained on: the optimiser's weights
            figure = monitor(net.eval())
            record.monitor.append(figure)
            best = int(np.argmax(record.monitor))  # the first of equal figures: the earlier epoch
            record.best_epoch = best + 1
            if best == epoch:
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if average is not None:
                average.swap(params)
            epochs.set_postfix(loss=f"{total / batches:.4f}", valid=f"{figure:.4f}")
            log.info("sasrec epoch %d: loss %.4f, validation NDCG@%d %.4f", epoch + 1, total / batches,
                     cfg.monitor_k, figure)
            if epoch - best >= cfg.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    elif average is not None:
        average.copy_to(params)  # no monitor: the last epoch's average ships
    log.info("sasrec: %d epochs on %d user sequences, last loss %.4f; weights of epoch %d kept",
             record.epochs_run, len(windows), total / batches, record.best_epoch)
    return net.eval(), record


@torch.no_grad()
def catalogue_scores(net: SASRecNet, histories: Sequence[Sequence[int]], max_len: int,
                     device: torch.device) -> np.ndarray:
    """(len(histories), n_items) scores of every catalogue item after each history (1-based item indices):
    the next-item logits both the baseline and the sequential identifier source rank by."""
    states = net(torch.from_numpy(left_pad(histories, max_len)).to(device))[:, -1]
    return net.catalogue_logits(states).cpu().numpy()
