"""Per-user event arrays and validation/test prompts, under the one leak-free context rule.

The rule (:func:`context_positions`): the context of a held-out event is the user's history as the
split defines it — events of the allowed splits with a smaller ``order``, minus any event with the same
item at the same timestamp — so neither a later event nor the target itself can leak into its own
context. The model's prompts (here) and the baselines' contexts
(:func:`unigrec.evaluate.baselines.context.held_out_cases`) both call it, so every method sees the
same history.
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

# The splits a held-out event of each split may see. "gap" events (time-consistent split: after the
# user's earliest held-out event, not held out) are never trained on but are the user's past, so both
# see them; a valid event never sees a test event, so validation never reads a test target.
CONTEXT_SPLITS = {"valid": ("train", "gap"), "test": ("train", "gap", "valid")}
EVENT_COLUMNS = ("user_id", "item_id", "timestamp", "kind", "query", "label", "order", "split")


@dataclasses.dataclass(frozen=True)
class UserEvents:
    """All events of one user in order, with what the prompt builder needs beyond :class:`EventSeq`."""

    user_id: str
    events: EventSeq
    timestamps: np.ndarray
    orders: np.ndarray
    splits: np.ndarray  # object array of "train" | "valid" | "test" | "gap"


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


def context_positions(
    splits: np.ndarray, orders: np.ndarray, items: np.ndarray, timestamps: np.ndarray, target: int, split: str
) -> np.ndarray:
    """Positions, in one user's arrays, of the events the ``split`` event at position ``target`` may see.

    Events of the splits ``CONTEXT_SPLITS[split]`` allows (a test event sees train, gap and valid events,
    a valid event train and gap events), with a smaller ``order``, and never an event of the target's item at
    the target's own timestamp: a log that records one engagement twice (a search and a purchase on the
    same day) would otherwise put the answer in its own question.
    """
    if split not in CONTEXT_SPLITS:
        raise ValueError(f"split must be one of {sorted(CONTEXT_SPLITS)}, not {split!r}")
    allowed = np.isin(splits, np.array(CONTEXT_SPLITS[split], dtype=object))
    same_event = (items == items[target]) & (timestamps == timestamps[target])
    return np.flatnonzero(allowed & (orders < orders[target]) & ~same_event)


def prompt_examples(users: Sequence[UserEvents], serialiser: SequenceSerialiser, split: str) -> list[PromptExample]:
    """One prompt per ``split`` event, its context given by :func:`context_positions`."""
    if split not in CONTEXT_SPLITS:
        raise ValueError(f"split must be one of {sorted(CONTEXT_SPLITS)}, not {split!r}")
    out = []
    for user in users:
        ev = user.events
        for t in np.flatnonzero(user.splits == split):
            context = context_positions(user.splits, user.orders, ev.items, user.timestamps, t, split)
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
