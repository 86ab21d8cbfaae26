"""Merge the two event streams into per-user timelines and split them leave-one-out by time.

Split rule (``split.protocol``, docs/experiments/2026-12-03-time-consistent-split.md):

- ``per_stream`` (the rule before issue 35, kept for comparison): each stream's last event per user is
  ``test``, the one before ``valid``. Training then keeps a user's events that come after their other
  stream's held-out events: the model trains on the user's future.
- ``time_consistent`` (default): the same per-stream pair, but a stream's pair is held out only if its
  valid event lies among the user's last ``holdout_window`` events of the merged timeline (the tail, as
  single-stream leave-one-out holds out the tail), otherwise that stream stays all in training for the
  user. Every event after the user's earliest held-out event that is not held out itself is ``gap``:
  never trained on, never evaluated, but part of the user's past for the later held-out events (their
  prompts and baseline contexts, see :data:`unigrec.inference.prompts.CONTEXT_SPLITS`). So nothing
  later than a held-out event is trained on, and a user whose last search sits early keeps their later
  recommendation events in training.

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
SPLITS = ("train", "valid", "test", "gap")
HELD_OUT_SPLITS = ("valid", "test")  # the evaluated events; "gap" is neither trained on nor evaluated
PROTOCOLS = ("time_consistent", "per_stream")

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


def assign_split(events: pd.DataFrame, min_events: int, protocol: str, holdout_window: int | None) -> pd.DataFrame:
    """The events with a ``split`` column under ``protocol`` (the module docstring states both rules).

    ``events`` must be in :func:`merge_streams` order (per user by ``order``); ``holdout_window`` is
    read by the time-consistent rule only (None: no window, every stream's pair is held out).
    """
    if protocol == "per_stream":
        return assign_leave_one_out(events, min_events)
    if protocol == "time_consistent":
        return assign_time_consistent(events, min_events, holdout_window)
    raise ValueError(f"split protocol must be one of {list(PROTOCOLS)}, not {protocol!r}")


def assign_leave_one_out(events: pd.DataFrame, min_events: int) -> pd.DataFrame:
    """Mark each user's last event per stream ``test`` and the one before ``valid`` (``per_stream``).

    Done separately for the recommendation and the search stream, so each task has its own held-out
    event per user. Users with fewer than ``min_events`` events in a stream keep them all in training:
    a held-out event needs at least some history to be predictable.
    """
    valid, test = _stream_pairs(events, min_events)
    return _with_split(events, valid, test, np.zeros(len(events), dtype=bool))


def assign_time_consistent(events: pd.DataFrame, min_events: int, holdout_window: int | None) -> pd.DataFrame:
    """``time_consistent``: per-stream pairs kept only in the timeline's tail, later events ``gap``.

    A stream's pair is kept when its valid event is among the user's last ``holdout_window`` events, so
    at most ``holdout_window - 2`` events of a user fall in the gap (lost to training and evaluation).
    """
    if holdout_window is not None and holdout_window < 2:
        raise ValueError("holdout_window must be >= 2 (room for a valid and a test event) or null")
    valid, test = _stream_pairs(events, min_events)
    users = events["user_id"]
    if holdout_window is not None:
        from_end = events.groupby("user_id", sort=False).cumcount(ascending=False).to_numpy()
        in_tail = pd.Series(valid & (from_end < holdout_window), index=events.index)
        kept = in_tail.groupby([users, events["kind"]], sort=False).transform("any").to_numpy(dtype=bool)
        valid, test = valid & kept, test & kept
    order = events["order"].to_numpy()
    # a stream's valid event precedes its test event, so the earliest held-out event is a valid one
    never = np.iinfo(np.int64).max
    first_held = pd.Series(np.where(valid, order, never), index=events.index).groupby(users, sort=False)
    gap = order > first_held.transform("min").to_numpy()
    return _with_split(events, valid, test, gap)


def make_items_cold(events: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """Drop every TRAINING event of a seeded ``fraction`` of the items that have a held-out event.

    A probe, not a cleaning step: those items then reach evaluation with no training signal at all, as a
    newly listed item does, so the report's cold-item slice shows what an item's text buys (codes, BM25
    fusion) where an ID learnt from events has nothing. Only items with a held-out event are drawn (a cold
    item nobody is evaluated on would only cost training data). Held-out and gap events stay: they are
    never trained on, and they are a user's recent past at evaluation. ``order`` is renumbered per user so
    it stays a dense 0-based position. Returns the events and the cold item ids (sorted).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"split.cold_items must be in [0, 1), not {fraction}")
    held_items = np.sort(events.loc[events["split"].isin(HELD_OUT_SPLITS), "item_id"].astype(str).unique())
    n_cold = round(fraction * len(held_items))
    if n_cold == 0:
        return events, []
    cold = np.random.default_rng(seed).choice(held_items, size=n_cold, replace=False)
    drop = events["item_id"].astype(str).isin(set(cold)).to_numpy() & (events["split"] == "train").to_numpy()
    out = events.loc[~drop].reset_index(drop=True)
    out["order"] = out.groupby("user_id", sort=False).cumcount().astype("int64")
    return out, sorted(cold.tolist())


def _stream_pairs(events: pd.DataFrame, min_events: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks of each (user, stream)'s second-to-last and last event, for streams of >= ``min_events``."""
    if min_events < 3:
        raise ValueError("min_events must be >= 3 (one train, one valid and one test event)")
    from_end = events.groupby(["user_id", "kind"], sort=False).cumcount(ascending=False).to_numpy()
    stream_size = events.groupby(["user_id", "kind"], sort=False)["order"].transform("size").to_numpy()
    eligible = stream_size >= min_events
    return eligible & (from_end == 1), eligible & (from_end == 0)


def _with_split(events: pd.DataFrame, valid: np.ndarray, test: np.ndarray, gap: np.ndarray) -> pd.DataFrame:
    """``events`` in :data:`EVENT_COLUMNS` with the split column the masks give (held-out wins over gap)."""
    split = np.full(len(events), "train", dtype=object)
    split[gap] = "gap"
    split[test] = "test"
    split[valid] = "valid"
    out = events.copy()
    out["split"] = pd.Series(split, index=events.index, dtype="string")
    return out[EVENT_COLUMNS]
