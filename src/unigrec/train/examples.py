"""Turn the split's events table into training sequences and validation/test prompts (pure, no Lightning).

Training: each user's TRAIN events, in order, are one sequence (the most recent ``max_events``), or
consecutive windows of them.
Prompts: the target is a valid (or test) event; its context is the user's history as the split defines
it — events of the allowed splits with a smaller ``order``, minus any event with the same item at the
same timestamp — so neither a later event nor the target itself can leak into its own context.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from unigrec.errors import ContractViolation
from unigrec.model.item_codes import ItemCodes
from unigrec.model.tokenizer import EventSeq, SequenceSerialiser, TokenSequence

log = logging.getLogger(__name__)

CONTEXT_SPLITS = {"valid": ("train",), "test": ("train", "valid")}
EVENT_COLUMNS = ("user_id", "item_id", "timestamp", "kind", "query", "label", "order", "split")


@dataclasses.dataclass(frozen=True)
class UserEvents:
    """All events of one user in order, with what the prompt builder needs beyond :class:`EventSeq`."""

    user_id: str
    events: EventSeq
    timestamps: np.ndarray
    orders: np.ndarray
    splits: np.ndarray  # object array of "train" | "valid" | "test"


@dataclasses.dataclass(frozen=True)
class PromptExample:
    user_id: str
    is_search: bool
    target: int  # dense item index
    label: int
    prompt: TokenSequence
    # dense indices of every item in the whole context (not only the prompt's most recent events):
    # what retrieval leaves out, as the evaluation stage does for every method
    seen: np.ndarray


def query_table_texts(events: pd.DataFrame) -> tuple[str, ...]:
    """Distinct query strings of search events, sorted (a stable cache key for their embeddings)."""
    queries = events.loc[events["kind"] == "search", "query"].dropna().astype(str)
    return tuple(sorted(set(queries)))


def group_user_events(events: pd.DataFrame, items: ItemCodes, queries: Sequence[str]) -> list[UserEvents]:
    """Split the events table into per-user arrays (dense item and query indices)."""
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ContractViolation(f"events table lacks column(s) {missing}")
    frame = events.sort_values(["user_id", "order"], kind="mergesort")
    is_search = (frame["kind"] == "search").to_numpy()
    query_lookup = {q: i for i, q in enumerate(queries)}
    query_idx = np.array(
        [query_lookup[str(q)] if s else -1 for q, s in zip(frame["query"], is_search)], dtype=np.int64
    )
    item_idx = items.indices_of(frame["item_id"].astype(str).tolist())
    labels = frame["label"].to_numpy().astype(np.int64)
    users = frame["user_id"].astype(str).to_numpy()
    timestamps = frame["timestamp"].to_numpy().astype(np.int64)
    orders = frame["order"].to_numpy().astype(np.int64)
    splits = frame["split"].astype(str).to_numpy().astype(object)
    boundaries = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    out = []
    for start, end in itertools.pairwise(boundaries):
        sl = slice(start, end)
        out.append(
            UserEvents(
                user_id=str(users[start]),
                events=EventSeq(item_idx[sl], is_search[sl], labels[sl], query_idx[sl]),
                timestamps=timestamps[sl],
                orders=orders[sl],
                splits=splits[sl],
            )
        )
    return out


def training_sequences(
    users: Sequence[UserEvents], serialiser: SequenceSerialiser, windows: str = "latest"
) -> list[TokenSequence]:
    """Teacher-forced sequences of the users' TRAIN events.

    ``latest``: one sequence per user, the most recent ``max_events`` events. ``all``: the whole train
    history cut into consecutive ``max_events`` windows counted back from the latest event, so long
    histories contribute all their events instead of only the last window.
    """
    if windows not in ("latest", "all"):
        raise ValueError(f"windows must be 'latest' or 'all', not {windows!r}")
    size = serialiser.max_events
    out = []
    for user in users:
        train = np.flatnonzero(user.splits == "train")
        ends = range(train.size, 0, -size) if windows == "all" else [train.size] if train.size else []
        for end in ends:
            out.append(serialiser.training_sequence(user.events.take(train[max(end - size, 0) : end])))
    return out


def prompt_examples(users: Sequence[UserEvents], serialiser: SequenceSerialiser, split: str) -> list[PromptExample]:
    """One prompt per ``split`` event, its context restricted as the module docstring says."""
    if split not in CONTEXT_SPLITS:
        raise ValueError(f"split must be one of {sorted(CONTEXT_SPLITS)}")
    allowed_splits = np.array(CONTEXT_SPLITS[split], dtype=object)
    out = []
    for user in users:
        allowed = np.isin(user.splits, allowed_splits)
        ev = user.events
        for t in np.flatnonzero(user.splits == split):
            same_event = (ev.items == ev.items[t]) & (user.timestamps == user.timestamps[t])
            context = np.flatnonzero(allowed & (user.orders < user.orders[t]) & ~same_event)
            is_search = bool(ev.is_search[t])
            out.append(
                PromptExample(
                    user_id=user.user_id,
                    is_search=is_search,
                    target=int(ev.items[t]),
                    label=int(ev.labels[t]),
                    prompt=serialiser.prompt(ev.take(context), is_search, int(ev.queries[t])),
                    seen=np.unique(ev.items[context]),
                )
            )
    return out


def cap_per_stream(examples: Sequence[PromptExample], max_per_stream: int | None, seed: int) -> list[PromptExample]:
    """A fixed random subset of at most ``max_per_stream`` examples per stream (same every epoch)."""
    if max_per_stream is None:
        return list(examples)
    rng = np.random.default_rng(seed)
    out: list[PromptExample] = []
    for is_search in (False, True):
        pool = [e for e in examples if e.is_search == is_search]
        if len(pool) > max_per_stream:
            keep = np.sort(rng.choice(len(pool), size=max_per_stream, replace=False))
            pool = [pool[i] for i in keep]
        out.extend(pool)
    return out


def popularity_rankings(users: Sequence[UserEvents], n_items: int) -> dict[bool, np.ndarray]:
    """Every item by TRAIN frequency per stream (keyed by is_search), most frequent first: the popularity
    baseline, whose list for a user is this order without the user's seen items."""
    counts = {False: np.zeros(n_items, dtype=np.int64), True: np.zeros(n_items, dtype=np.int64)}
    for user in users:
        train = user.splits == "train"
        for is_search in (False, True):
            sel = train & (user.events.is_search == is_search)
            np.add.at(counts[is_search], user.events.items[sel], 1)
    # stable order on ties (lower index first) keeps the baseline reproducible
    return {s: np.argsort(-c, kind="mergesort") for s, c in counts.items()}
