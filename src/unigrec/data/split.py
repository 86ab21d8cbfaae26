"""Merge the two event streams into per-user timelines and split them leave-one-out by time.

Order rule (documented in the data card too): events are stable-sorted per user by timestamp; ties are
broken by stream (recommendation events before search events) and then by the row order of the source
table. MovieLens-1M has 77% of ratings sharing a timestamp, so without this rule sequences would not be
reproducible.

Leakage rule, applied where prompts and baseline contexts are built
(:func:`unigrec.inference.prompts.context_positions`): the history of an event is every earlier event of
the same user in that order, minus any event of the same item at the same timestamp. The second clause
matters for datasets whose search and purchase logs record one engagement twice on the same day —
GenSAR's released preprocessing lets the target leak into its own history exactly that way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KINDS = ("rec", "search")  # stream order doubles as the tie-break at equal timestamps
SPLITS = ("train", "valid", "test")

EVENT_COLUMNS = ["user_id", "item_id", "timestamp", "kind", "query", "label", "rating", "order", "split"]


def merge_streams(interactions: pd.DataFrame, searches: pd.DataFrame) -> pd.DataFrame:
    """Return one frame of all events, ordered per user, with a 0-based ``order`` column."""
    rec = interactions.assign(kind="rec", query=pd.NA, source_row=np.arange(len(interactions)))
    src = searches.assign(
        kind="search", label=1, rating=np.nan, source_row=np.arange(len(searches))
    )
    events = pd.concat([rec, src], ignore_index=True)
    events["kind_rank"] = events["kind"].map({k: i for i, k in enumerate(KINDS)}).astype("int8")
    events = events.sort_values(
        ["user_id", "timestamp", "kind_rank", "source_row"], kind="stable"
    ).reset_index(drop=True)
    events["order"] = events.groupby("user_id", sort=False).cumcount().astype("int64")
    events = events.drop(columns=["kind_rank", "source_row"])
    events["kind"] = events["kind"].astype("string")
    events["query"] = events["query"].astype("string")
    events["label"] = events["label"].astype("int8")
    events["rating"] = events["rating"].astype("float64")
    return events


def assign_leave_one_out(events: pd.DataFrame, min_events: int) -> pd.DataFrame:
    """Mark each user's last event per stream ``test`` and the one before ``valid``.

    Done separately for the recommendation and the search stream, so each task has its own held-out
    event per user. Users with fewer than ``min_events`` events in a stream keep them all in training:
    a held-out event needs at least some history to be predictable.
    """
    if min_events < 3:
        raise ValueError("min_events must be >= 3 (one train, one valid and one test event)")
    from_end = events.groupby(["user_id", "kind"], sort=False).cumcount(ascending=False)
    stream_size = events.groupby(["user_id", "kind"], sort=False)["order"].transform("size")
    split = np.full(len(events), "train", dtype=object)
    eligible = (stream_size >= min_events).to_numpy()
    split[eligible & (from_end == 0).to_numpy()] = "test"
    split[eligible & (from_end == 1).to_numpy()] = "valid"
    out = events.copy()
    out["split"] = pd.Series(split, index=events.index, dtype="string")
    return out[EVENT_COLUMNS]
