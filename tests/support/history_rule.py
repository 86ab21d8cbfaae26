"""The leak-free history rule written out as plain loops over event rows: the oracle the property tests
hold every history-building path to (prompts, baselines' contexts, training sequences, serving)."""

from __future__ import annotations

import pandas as pd

# the splits a held-out event of each split may see (docs/design.md §2); "gap" events (after the user's
# earliest held-out event, not held out) are never trained on but are the user's past for both
VISIBLE_SPLITS = {"valid": {"train", "gap"}, "test": {"train", "gap", "valid"}}
HELD_OUT = {"valid", "test"}


def event_rows(events: pd.DataFrame) -> list[dict]:
    """The events table as plain dicts, in (user, order) order."""
    rows = events.sort_values(["user_id", "order"], kind="mergesort").to_dict("records")
    return [{**row, "query": None if pd.isna(row["query"]) else str(row["query"])} for row in rows]


def held_out_rows(rows: list[dict], split: str) -> list[dict]:
    return [row for row in rows if row["split"] == split]


def later_training_rows(rows: list[dict]) -> list[dict]:
    """Training rows that come after (in the user's order) their user's earliest held-out event: what a
    time-consistent split must never produce (the model would train on the user's future)."""
    first_held: dict[str, int] = {}
    for row in rows:
        if row["split"] in HELD_OUT:
            first_held[row["user_id"]] = min(row["order"], first_held.get(row["user_id"], row["order"]))
    return [
        row for row in rows
        if row["split"] == "train" and row["user_id"] in first_held and row["order"] > first_held[row["user_id"]]
    ]


def visible_history(rows: list[dict], target: dict, split: str) -> list[dict]:
    """Every row the target may see, oldest first: same user, a visible split, earlier in the order, and
    not the same item at the same timestamp (a twin of the target's own engagement)."""
    return [
        row for row in rows
        if row["user_id"] == target["user_id"]
        and row["split"] in VISIBLE_SPLITS[split]
        and row["order"] < target["order"]
        and not (row["item_id"] == target["item_id"] and row["timestamp"] == target["timestamp"])
    ]
