"""Quick validation hook: full-catalogue retrieval by constrained beam search, ranking AUC, popularity.

Used every epoch (on a capped user sample) and once after training for the stage's metrics file. The
full evaluation protocols (1+99 lists, re-ranking, baselines) belong to the evaluation stage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from unigrec.evaluate.metrics import auc, hr_at_k, logloss, ndcg_at_k, rank_of_target
from unigrec.logs import progress
from unigrec.model.batch import SequenceBatch
from unigrec.model.decoding import IdSpace, beam_search, score_candidates
from unigrec.model.transformer import GenerativeTransformer
from unigrec.train.examples import PromptExample

log = logging.getLogger(__name__)

STREAMS = {False: "rec", True: "search"}


def target_ranks(retrieved: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target in its retrieved row, ``inf`` if absent. (B, k), (B,) -> (B,)."""
    hit = retrieved == targets[:, None]
    first = hit.float().argmax(dim=1).float()
    return torch.where(hit.any(dim=1), first, torch.full_like(first, float("inf")))


def rank_prompts(
    net: GenerativeTransformer,
    prompts: SequenceBatch,
    targets: torch.Tensor,
    is_search: torch.Tensor,
    spaces: Mapping[bool, IdSpace],
    beam_size: int,
    seen: torch.Tensor | None = None,
) -> torch.Tensor:
    """Beam-search each prompt in the ID space of its stream; return the target ranks (B,).

    ``seen`` (B, n_items) bool: items left out of each prompt's list, as the evaluation stage does.
    """
    ranks = torch.full(targets.shape, float("inf"), device=targets.device)
    for search, space in spaces.items():
        rows = torch.nonzero(is_search == search).flatten()
        if rows.numel():
            exclude = seen[rows] if seen is not None else None
            retrieved, _ = beam_search(net, _select(prompts, rows), space, beam_size, exclude=exclude)
            ranks[rows] = target_ranks(retrieved, targets[rows])
    return ranks


def positive_probability(
    net: GenerativeTransformer,
    prompts: SequenceBatch,
    targets: torch.Tensor,
    is_search: torch.Tensor,
    spaces: Mapping[bool, IdSpace],
) -> torch.Tensor:
    """P(<pos>) of each prompt's own target item (the ranking score), (B,)."""
    probs = torch.zeros(targets.shape, device=targets.device)
    for search, space in spaces.items():
        rows = torch.nonzero(is_search == search).flatten()
        if rows.numel():
            _, p = score_candidates(net, _select(prompts, rows), targets[rows, None], space)
            probs[rows] = p[:, 0]
    return probs


def _select(batch: SequenceBatch, rows: torch.Tensor) -> SequenceBatch:
    # query_vectors is indexed by query_refs, not by row, so it is kept whole
    return SequenceBatch(
        tokens=batch.tokens[rows],
        valid=batch.valid[rows],
        targets=batch.targets[rows],
        slots=batch.slots[rows],
        groups=batch.groups[rows],
        query_refs=batch.query_refs[rows],
        query_vectors=batch.query_vectors,
    )


def unseen_top_k(order: np.ndarray, seen: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` items of ``order`` that are not in ``seen``."""
    return order[~np.isin(order, seen)][:k]


def validation_report(
    net: GenerativeTransformer,
    examples: Sequence[PromptExample],
    collate: Callable[[Sequence[PromptExample]], tuple[SequenceBatch, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
    spaces: Mapping[bool, IdSpace],
    popularity: Mapping[bool, np.ndarray],
    beam_size: int,
    k: int,
    batch_size: int,
) -> dict[str, Any]:
    """HR@k/NDCG@k per stream for the model and the popularity baseline; ranking AUC/LogLoss on rec.

    Both lists leave out the items already in the prompt's context, as the evaluation stage does.
    """
    was_training = net.training
    net.eval()
    ranks, probs, labels, streams = [], [], [], []
    starts = range(0, len(examples), batch_size)
    for start in progress(starts, desc="quick eval", unit="batch", leave=False):
        prompts, tgt, search, lab, seen = collate(examples[start : start + batch_size])
        ranks.append(rank_prompts(net, prompts, tgt, search, spaces, beam_size, seen).numpy())
        probs.append(positive_probability(net, prompts, tgt, search, spaces).numpy())
        labels.append(lab.numpy())
        streams.append(search.numpy())
    net.train(was_training)
    rank_arr = np.concatenate(ranks) if ranks else np.zeros(0)
    prob_arr = np.concatenate(probs) if probs else np.zeros(0)
    label_arr = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)
    stream_arr = np.concatenate(streams) if streams else np.zeros(0, dtype=bool)
    report: dict[str, Any] = {}
    for search, name in STREAMS.items():
        sel = stream_arr == search
        pop = np.array([rank_of_target(unseen_top_k(popularity[e.is_search], e.seen, k), e.target)
                        for e in examples if e.is_search == search])
        report[name] = {
            "n": int(sel.sum()),
            f"hr@{k}": hr_at_k(rank_arr[sel], k),
            f"ndcg@{k}": ndcg_at_k(rank_arr[sel], k),
            f"popularity_hr@{k}": hr_at_k(pop, k),
            f"popularity_ndcg@{k}": ndcg_at_k(pop, k),
        }
    # Search events are all positives (label 1), so ranking quality is measured on the rec stream.
    rec = stream_arr == False
    report["ranking"] = {
        "n": int(rec.sum()),
        "positive_rate": float(label_arr[rec].mean()) if rec.any() else float("nan"),
        "auc": auc(label_arr[rec], prob_arr[rec]),
        "logloss": logloss(label_arr[rec], prob_arr[rec]),
    }
    return report

