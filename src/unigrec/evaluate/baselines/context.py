"""What a baseline sees for one held-out event: the user's leak-free history plus the target's kind and query.

The history is given by the one leak-free context rule the generative model's prompts follow
(:func:`unigrec.inference.prompts.context_positions`): a valid event sees earlier TRAIN events, a test
event earlier TRAIN and VALID events, never an event of the target item at the target's own timestamp —
so baselines and model are scored on identical inputs.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import NamedTuple

import numpy as np
import pandas as pd

from unigrec.errors import ContractViolation
from unigrec.inference.prompts import CONTEXT_SPLITS, EVENT_COLUMNS, context_positions

KINDS = ("rec", "search")


class HistoryEvent(NamedTuple):
    item_id: str
    kind: str  # "rec" | "search"
    query: str | None  # the search query; None for recommendation events
    label: int  # 1 liked / engaged, 0 exposed but negative


@dataclasses.dataclass(frozen=True)
class EvalContext:
    """The input of one request: who asks, what they did before, and what they ask for now."""

    user_id: str
    history: tuple[HistoryEvent, ...]  # oldest first
    kind: str  # the target event's kind: "rec" | "search"
    query: str | None = None  # the target's query (search requests only)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"context kind must be one of {KINDS}, not {self.kind!r}")
        if self.kind == "search" and not self.query:
            raise ValueError("a search context needs its query")


@dataclasses.dataclass(frozen=True)
class HeldOutCase:
    """A held-out event: the context a method is given, and the answer it is graded against."""

    context: EvalContext
    target: str  # item id
    label: int


def held_out_cases(events: pd.DataFrame, split: str) -> list[HeldOutCase]:
    """One case per ``split`` event of the split stage's events table, in (user, order) order."""
    if split not in CONTEXT_SPLITS:
        raise ValueError(f"split must be one of {sorted(CONTEXT_SPLITS)}, not {split!r}")
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ContractViolation(f"events table lacks column(s) {missing}")
    frame = events.sort_values(["user_id", "order"], kind="mergesort")
    users = frame["user_id"].astype(str).to_numpy()
    items = frame["item_id"].astype(str).to_numpy()
    kinds = frame["kind"].astype(str).to_numpy()
    queries = [None if pd.isna(q) else str(q) for q in frame["query"]]
    labels = frame["label"].to_numpy().astype(np.int64)
    timestamps = frame["timestamp"].to_numpy().astype(np.int64)
    orders = frame["order"].to_numpy().astype(np.int64)
    splits = frame["split"].astype(str).to_numpy().astype(object)

    out: list[HeldOutCase] = []
    boundaries = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    for start, end in itertools.pairwise(boundaries):
        targets = start + np.flatnonzero(splits[start:end] == split)
        if not targets.size:
            continue
        timeline = [HistoryEvent(items[i], kinds[i], queries[i], int(labels[i])) for i in range(start, end)]
        for t in targets:
            user = slice(start, end)
            keep = context_positions(splits[user], orders[user], items[user], timestamps[user], t - start, split)
            context = EvalContext(
                user_id=str(users[t]),
                history=tuple(timeline[i] for i in keep),
                kind=str(kinds[t]),
                query=queries[t],
            )
            out.append(HeldOutCase(context, str(items[t]), int(labels[t])))
    return out
