"""Quick validation report: full-catalogue retrieval by constrained beam search, ranking AUC, popularity.

Written once after training for the stage's metrics file (the per-epoch monitor decodes the same way,
through :mod:`unigrec.inference.retrieval`). The full evaluation protocols (1+99 lists, re-ranking,
baselines) belong to the evaluation stage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from unigrec.evaluate.metrics import auc, hr_at_k, logloss, ndcg_at_k, rank_of_target
from unigrec.evaluate.popularity import popularity_scores
from unigrec.inference.prompts import PromptExample, UserEvents
from unigrec.inference.retrieval import STREAMS, positive_probability, rank_prompts
from unigrec.logs import progress
from unigrec.model.batch import SequenceBatch
from unigrec.model.decoding import IdSpace
from unigrec.model.transformer import GenerativeTransformer

log = logging.getLogger(__name__)


def popularity_rankings(users: Sequence[UserEvents], n_items: int) -> dict[bool, np.ndarray]:
    """Every item by TRAIN frequency per stream (keyed by is_search), best first: the popularity baseline
    of the evaluate stage (:func:`popularity_scores`, same counts and tie-break), whose list for a user is
    this order without the user's seen items."""
    counts = {False: np.zeros(n_items, dtype=np.int64), True: np.zeros(n_items, dtype=np.int64)}
    for user in users:
        train = user.splits == "train"
        for is_search in (False, True):
            sel = train & (user.events.is_search == is_search)
            np.add.at(counts[is_search], user.events.items[sel], 1)
    # stable on the remaining ties (lower index first), as the baseline's top_k
    return {s: np.argsort(-score, kind="stable") for s, score in popularity_scores(counts).items()}


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

