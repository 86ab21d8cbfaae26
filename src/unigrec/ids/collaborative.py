"""Collaborative item embeddings: BPR matrix factorisation on the training split only (the default source;
the sequential one is :mod:`unigrec.ids.sequential`), and the validation HR@k every source reports.

Why BPR-MF is the default source: the identifiers need item vectors in which items consumed by the same
users lie close together, and order within a history is modelled later by the generative model itself. BPR
is seconds of CPU on MovieLens, has one loss and no sequence plumbing, and scales linearly with the number
of training events. GenSAR's own choice, a sequential model's item embeddings, is ``source: sasrec``.
Either source's quality is checked by a validation HR@k next to popularity.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from unigrec.config import CollaborativeConfig
from unigrec.errors import UnigrecError
from unigrec.logs import progress

log = logging.getLogger(__name__)


@dataclasses.dataclass
class CollaborativeVectors:
    """What a collaborative source gives the quantiser, whichever model made it."""

    item_vectors: np.ndarray  # (n_items, width), catalogue order; rows of items without events are untrained
    warm: np.ndarray  # (n_items,) bool: item has at least one training event
    figures: dict[str, Any]  # the source's own quality (validation HR@k beside popularity), for the metrics


@dataclasses.dataclass
class BPRModel:
    item_vectors: np.ndarray  # (n_items, dim), catalogue order; rows of items without events are untrained
    item_bias: np.ndarray  # (n_items,)
    user_vectors: np.ndarray  # (n_users, dim)
    user_index: dict[str, int]
    warm: np.ndarray  # (n_items,) bool: item has at least one training event


def training_pairs(
    events: pd.DataFrame, item_index: dict[str, int], include_negatives: bool
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """(user, item) index pairs of the TRAIN split (both streams), deduplicated, plus the user index.

    Validation and test events never reach the model: their targets must stay unseen.
    """
    train = events[events["split"] == "train"]
    if not include_negatives:
        train = train[train["label"] == 1]
    known = train["item_id"].isin(item_index)
    if not known.all():
        log.warning("collaborative: %d training events name items missing from the catalogue; ignored",
                    int((~known).sum()))
    train = train[known]
    users = sorted(train["user_id"].astype(str).unique())
    user_index = {u: i for i, u in enumerate(users)}
    pairs = pd.DataFrame({
        "u": train["user_id"].astype(str).map(user_index).to_numpy(),
        "i": train["item_id"].astype(str).map(item_index).to_numpy(),
    }).drop_duplicates()
    return pairs["u"].to_numpy(np.int64), pairs["i"].to_numpy(np.int64), user_index


def train_bpr(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    cfg: CollaborativeConfig,
    generator: torch.Generator,
    show_progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fit user/item factors and item biases by BPR (Rendle et al. 2009) with lazy (sparse) Adam.

    Negatives are drawn uniformly from items that have training events (an item nobody interacted with
    would only ever be pushed down, which says nothing about it).
    """
    scale = cfg.dim**-0.5  # keeps initial dot products O(1/sqrt(dim)), i.e. near-neutral scores
    user_f = torch.nn.Parameter(torch.randn(n_users, cfg.dim, generator=generator) * scale)
    item_f = torch.nn.Parameter(torch.randn(n_items, cfg.dim, generator=generator) * scale)
    item_b = torch.nn.Parameter(torch.zeros(n_items, 1))

    def embed(idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.embedding(idx, table, sparse=True)

    # Sparse gradients + lazy Adam: a step touches only the batch's rows, so its cost does not grow
    # with the catalogue (dense Adam rewrote every row of a 100k-item table each step: 4x slower there).
    optimiser = torch.optim.SparseAdam([user_f, item_f, item_b], lr=cfg.lr)
    u_all, i_all = torch.as_tensor(np.array(users)), torch.as_tensor(np.array(items))
    warm_items = torch.unique(i_all)
    n = len(u_all)
    bar = progress(range(cfg.epochs), show=show_progress, desc="bpr-mf")
    for _ in bar:
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            u, i = u_all[idx], i_all[idx]
            j = warm_items[torch.randint(len(warm_items), (len(idx),), generator=generator)]
            # F.embedding, not tensor indexing: its backward is deterministic with several threads,
            # indexing's scatter-add is not (reruns would give different vectors, hence different IDs).
            pu, qi, qj = embed(u, user_f), embed(i, item_f), embed(j, item_f)
            margin = (pu * (qi - qj)).sum(1) + (embed(i, item_b) - embed(j, item_b)).squeeze(1)
            reg = (pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / len(idx)
            loss = -torch.nn.functional.logsigmoid(margin).mean() + cfg.l2 * reg
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.detach().item() * len(idx)
        bar.set_postfix(loss=f"{total / max(n, 1):.4f}")
    return user_f.detach(), item_f.detach(), item_b.detach().squeeze(1)


def fit_collaborative(
    events: pd.DataFrame,
    item_ids: list[str],
    cfg: CollaborativeConfig,
    generator: torch.Generator,
    show_progress: bool = True,
) -> BPRModel:
    """Train BPR-MF on the training events and return catalogue-ordered item vectors."""
    item_index = {item: i for i, item in enumerate(item_ids)}
    users, items, user_index = training_pairs(events, item_index, cfg.include_negatives)
    if len(users) == 0:
        raise UnigrecError("identifiers: no training event names a catalogue item; check the split stage")
    log.info("collaborative: BPR-MF on %d (user, item) training pairs, %d users, %d items",
             len(users), len(user_index), len(item_ids))
    user_f, item_f, item_b = train_bpr(users, items, len(user_index), len(item_ids), cfg, generator,
                                       show_progress)
    warm = np.zeros(len(item_ids), dtype=bool)
    warm[items] = True
    return BPRModel(
        item_vectors=item_f.numpy().astype(np.float32),
        item_bias=item_b.numpy().astype(np.float32),
        user_vectors=user_f.numpy().astype(np.float32),
        user_index=user_index,
        warm=warm,
    )


# (users) -> (len(users), n_items) scores of every catalogue item: a fitted source's recommendation for them
UserScorer = Callable[[Sequence[str]], np.ndarray]


def bpr_scores(model: BPRModel) -> UserScorer:
    """BPR's score of every item for each user: the factors' dot product plus the item bias."""
    def score(users: Sequence[str]) -> np.ndarray:
        rows = [model.user_index[u] for u in users]
        return model.user_vectors[rows] @ model.item_vectors.T + model.item_bias
    return score


def validation_hit_rates(
    name: str, scores: UserScorer, known_users: Collection[str], events: pd.DataFrame, item_ids: list[str],
    k: int, eval_users: int, generator: torch.Generator, chunk: int,
) -> dict[str, float]:
    """HR@k of a source (``scores``) and of popularity on each sampled user's first validation rec event
    (full catalogue, the user's training items excluded), ``chunk`` users scored at once.

    A diagnostic: if the source does not clearly beat popularity, its vectors carry little collaborative
    signal. Only users the source knows (``known_users``: it saw their training events) are sampled.
    """
    item_index = {item: i for i, item in enumerate(item_ids)}
    valid = events[(events["split"] == "valid") & (events["kind"] == "rec")]
    valid = valid[valid["user_id"].astype(str).isin(set(known_users)) & valid["item_id"].isin(item_index)]
    if valid.empty:
        return {}
    valid = valid.sort_values(["user_id", "order"], kind="mergesort").drop_duplicates("user_id")
    if len(valid) > eval_users:
        pick = torch.randperm(len(valid), generator=generator)[:eval_users].sort().values.numpy()
        valid = valid.iloc[pick]
    train = events[(events["split"] == "train") & events["item_id"].isin(item_index)]
    popularity = np.bincount(train["item_id"].map(item_index), minlength=len(item_ids)).astype(np.float32)
    seen = train.groupby(train["user_id"].astype(str))["item_id"].agg(lambda s: [item_index[i] for i in s])
    users = valid["user_id"].astype(str).tolist()
    targets = valid["item_id"].map(item_index).to_numpy()
    hits = {name: 0, "popularity": 0}
    # A chunk of users at a time: a (users x catalogue) score matrix would not fit for large catalogues.
    for start in range(0, len(users), chunk):
        block = scores(users[start : start + chunk])
        for offset, user in enumerate(users[start : start + chunk]):
            history, target = seen.get(user, []), targets[start + offset]
            for method, row in ((name, block[offset]), ("popularity", popularity)):
                s = np.array(row, dtype=np.float64)
                s[history] = -np.inf  # already-consumed items are not recommended again
                hits[method] += int((s > s[target]).sum() < k)
    return {f"{method}_valid_hr@{k}": hits[method] / len(users) for method in hits} | {"valid_users": len(users)}
