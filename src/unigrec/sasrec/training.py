"""SASRec's training loop on users' item sequences, either as in the paper (``bce``: the true next item
against one uniformly sampled non-interacted item per position) or with the full-catalogue softmax
(``ce``), which Klenitskiy & Vasilev (RecSys'23, "SASRec+") and the HSTU authors' sampled-softmax SASRec
found far stronger: the published ML-1M SASRec figures are of that kind."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

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


def train_sasrec(sequences: Sequence[np.ndarray], n_items: int, cfg: SASRecConfig, device: torch.device) -> SASRecNet:
    """Fit SASRec on each sequence's latest ``max_len + 1`` items (1-based item indices) and return it in
    eval mode. Seeded by ``cfg.seed`` without touching the caller's random state."""
    # Inputs are items 0..n-2 of the latest max_len+1 window, targets items 1..n-1.
    windows = [seq[-(cfg.max_len + 1) :] for seq in sequences]
    windows = [w for w in windows if len(w) >= 2]
    if not windows:
        raise ValueError("sasrec: no user has two training events to learn a transition from")
    inputs = torch.from_numpy(left_pad([w[:-1] for w in windows], cfg.max_len))
    targets = torch.from_numpy(left_pad([w[1:] for w in windows], cfg.max_len))
    seen = torch.zeros(len(windows), n_items + 1, dtype=torch.bool)
    for row, w in enumerate(windows):
        seen[row, torch.from_numpy(w)] = True
    seen[:, 0] = True  # never draw padding as a negative

    # fork_rng: seeding must not change the random state of whoever called us.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        net = SASRecNet(n_items, cfg.max_len, cfg.hidden, cfg.n_blocks, cfg.n_heads, cfg.dropout).to(device)
        optimiser = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.l2)
        net.train()
        epochs = progress(range(cfg.epochs), desc="sasrec epochs", leave=False)
        for epoch in epochs:
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
                total, batches = total + loss.item(), batches + 1
            epochs.set_postfix(loss=f"{total / batches:.4f}")
            log.debug("sasrec epoch %d: loss %.4f", epoch, total / batches)
    log.info("sasrec: trained %d epochs on %d user sequences, last loss %.4f", cfg.epochs, len(windows),
             total / batches)
    return net.eval()


@torch.no_grad()
def last_states(net: SASRecNet, histories: Sequence[Sequence[int]], max_len: int, device: torch.device) -> torch.Tensor:
    """(len(histories), hidden) state after each history's last item (1-based item indices)."""
    return net(torch.from_numpy(left_pad(histories, max_len)).to(device))[:, -1]
