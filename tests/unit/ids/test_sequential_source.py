"""The sequential collaborative source (issue 37 item 1): SASRec+'s item embeddings, fitted on TRAIN only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from unigrec.config import CollaborativeConfig, SASRecConfig
from unigrec.errors import UnigrecError
from unigrec.ids.sequential import fit_sequential

N_ITEMS, N_USERS, STEPS = 20, 48, 12
ITEM_IDS = [f"i{k}" for k in range(N_ITEMS)]


def walks(seed: int = 0) -> pd.DataFrame:
    """Each user walks the catalogue in one direction (item k, then k+1, ...) from a random start; the
    last step is a validation recommendation. Popularity is near uniform, so only order predicts it."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(N_USERS):
        start = int(rng.integers(N_ITEMS))
        for t in range(STEPS):
            rows.append({"user_id": f"u{u}", "item_id": ITEM_IDS[(start + t) % N_ITEMS], "order": t,
                         "timestamp": t, "kind": "rec", "label": 1, "query": None,
                         "split": "valid" if t == STEPS - 1 else "train"})
    return pd.DataFrame(rows)


def config(**sasrec) -> CollaborativeConfig:
    net = SASRecConfig(max_len=STEPS, hidden=16, n_blocks=1, n_heads=1, dropout=0.0, loss="ce", epochs=40,
                       batch_size=16, lr=0.01, l2=0.0, seed=0, accelerator="cpu", patience=None, monitor_k=10,
                       train_windows="latest")
    return CollaborativeConfig(source="sasrec", dim=8, epochs=1, batch_size=64, lr=0.01, l2=0.0,
                               include_negatives=True, eval_users=100, eval_k=3,
                               sasrec=dataclasses.replace(net, **sasrec))


def test_item_vectors_learn_order_and_the_diagnostic_shows_it():
    source = fit_sequential(walks(), ITEM_IDS, config(), score_chunk=8, generator=torch.Generator().manual_seed(0))
    assert source.item_vectors.shape == (N_ITEMS, 16) and source.warm.all()
    figures = source.figures
    assert figures["source"] == "sasrec" and figures["valid_users"] == N_USERS
    # the next item of a walk is one of the 9 unseen items: popularity finds it about a third of the time
    assert figures["sasrec_valid_hr@3"] >= figures["popularity_valid_hr@3"] + 0.4


def test_held_out_events_never_reach_the_item_vectors():
    events = walks()
    events.loc[events["user_id"] == "u0", "split"] = "test"  # u0's items come only from held-out events
    held_out = events["split"] != "train"
    moved = events.copy()
    moved.loc[held_out, "item_id"] = np.random.default_rng(1).choice(ITEM_IDS, int(held_out.sum()))
    cfg, generator = config(epochs=3), lambda: torch.Generator().manual_seed(0)
    a = fit_sequential(events, ITEM_IDS, cfg, 8, generator())
    b = fit_sequential(moved, ITEM_IDS, cfg, 8, generator())
    np.testing.assert_array_equal(a.item_vectors, b.item_vectors)
    np.testing.assert_array_equal(a.warm, b.warm)


def test_items_without_training_events_are_cold():
    events = walks()
    events = events[~((events["item_id"] == "i5") & (events["split"] == "train"))]
    source = fit_sequential(events, ITEM_IDS, config(epochs=1), 8, torch.Generator().manual_seed(0))
    assert source.warm.tolist() == [item != "i5" for item in ITEM_IDS]
    assert source.figures["items_without_training_events"] == 1


def test_no_training_event_is_a_clear_error():
    events = walks().assign(split="valid")
    with pytest.raises(UnigrecError, match="no training event"):
        fit_sequential(events, ITEM_IDS, config(), 8, torch.Generator().manual_seed(0))
