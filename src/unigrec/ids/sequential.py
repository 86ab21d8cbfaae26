"""Collaborative item vectors from a sequential model: SASRec+'s item embeddings, fitted on the TRAIN split.

Why a sequential source: GenSAR builds the collaborative half of its IDs from the item embeddings of a trained
sequential search + recommendation model (UniSAR), not from matrix factorisation. BPR-MF places together items
the same users consumed, whatever the order; a next-item model places together items chosen after the same
histories, which is what the generative model's recommendation targets ask of the codes. The model is the
package's one SASRec (:mod:`unigrec.sasrec`, also the evaluation's baseline) with its own recipe
(``identifiers.collaborative.sasrec``). Its input and output item embeddings are one table, so a vector
places an item both as history and as answer.

Only training events reach the fit (both streams, in timeline order); the validation HR@k diagnostic scores
each sampled user from their training sequence alone, as BPR's does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from unigrec.config import CollaborativeConfig
from unigrec.errors import UnigrecError
from unigrec.ids.collaborative import CollaborativeVectors, validation_hit_rates
from unigrec.sasrec.training import catalogue_scores, torch_device, train_sasrec, user_item_sequences

log = logging.getLogger(__name__)


def fit_sequential(
    events: pd.DataFrame, item_ids: list[str], cfg: CollaborativeConfig, score_chunk: int,
    generator: torch.Generator,
) -> CollaborativeVectors:
    """Train SASRec on the training events; return its catalogue-ordered item embeddings and figures."""
    index = {item: i for i, item in enumerate(item_ids)}
    train = events[(events["split"] == "train") & events["item_id"].astype(str).isin(index)]
    if train.empty:
        raise UnigrecError("identifiers: no training event names a catalogue item; check the split stage")
    history = user_item_sequences(train, index)
    sequences = list(history.values())
    device = torch_device(cfg.sasrec.accelerator, "identifiers.collaborative.sasrec.accelerator")
    log.info("collaborative: SASRec on %d training events of %d users, %d items", len(train), len(history),
             len(item_ids))
    net, _ = train_sasrec(sequences, len(item_ids), cfg.sasrec, device)
    # Row 0 is padding; rows 1..n are the catalogue in ``item_ids`` order.
    vectors = net.item_embedding.weight[1:].detach().cpu().numpy().astype(np.float32)
    warm = np.zeros(len(item_ids), dtype=bool)
    warm[np.concatenate(sequences) - 1] = True

    def scores(batch: Sequence[str]) -> np.ndarray:
        return catalogue_scores(net, [history[u] for u in batch], cfg.sasrec.max_len, device)

    figures: dict[str, Any] = {
        "source": "sasrec",
        "items_without_training_events": int((~warm).sum()),
        "sasrec_training_users": len(history),
    }
    figures |= validation_hit_rates("sasrec", scores, history, events, item_ids, cfg.eval_k, cfg.eval_users,
                                    generator, score_chunk)
    return CollaborativeVectors(vectors, warm, figures)
