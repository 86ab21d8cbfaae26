"""Hypothesis strategies for the property-based tests: tiny event tables, rank lists, score matrices.

Event tables are drawn small on purpose (few users, items and timestamps), so equal timestamps, repeated
items and same-engagement twins (one item logged by both streams at one timestamp) come up in most
examples rather than by luck.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from support.events import interactions_frame, searches_frame
from unigrec.data.split import PROTOCOLS, assign_split, merge_streams

USERS = tuple(f"u{i}" for i in range(4))
ITEMS = tuple(f"i{i}" for i in range(6))
QUERIES = ("q0", "q1", "q2")
TIMESTAMPS = st.integers(0, 4)


@st.composite
def event_tables(draw, max_interactions: int = 24, max_searches: int = 14) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(interactions, searches)`` as the ingest stage writes them, at least one interaction; some searches
    copy an interaction's user, item and timestamp (a same-engagement twin)."""
    inter = draw(st.lists(
        st.tuples(st.sampled_from(USERS), st.sampled_from(ITEMS), TIMESTAMPS, st.sampled_from([1.0, 3.0, 5.0]),
                  st.integers(0, 1)),
        min_size=1, max_size=max_interactions,
    ))
    searches = draw(st.lists(
        st.tuples(st.sampled_from(USERS), st.sampled_from(QUERIES), st.sampled_from(ITEMS), TIMESTAMPS),
        max_size=max_searches,
    ))
    twins = draw(st.lists(st.integers(0, len(inter) - 1), max_size=6))
    searches = [*searches, *((inter[i][0], draw(st.sampled_from(QUERIES)), inter[i][1], inter[i][2]) for i in twins)]
    searches = draw(st.permutations(searches))
    return interactions_frame(inter), searches_frame(list(searches))


@st.composite
def split_events(draw, protocols: tuple[str, ...] = PROTOCOLS) -> pd.DataFrame:
    """The split stage's events table: merged streams split under one of ``protocols`` (the
    time-consistent rule with a window from 2 to past the longest drawn timeline, or none, so gap events
    and streams left all in training are both common)."""
    interactions, searches = draw(event_tables())
    window = draw(st.one_of(st.none(), st.integers(2, 12)))
    return assign_split(merge_streams(interactions, searches), min_events=draw(st.integers(3, 4)),
                        protocol=draw(st.sampled_from(protocols)), holdout_window=window)


def ranks(max_size: int = 30) -> st.SearchStrategy[list[float]]:
    """0-based target ranks, ``inf`` for a target not retrieved."""
    return st.lists(st.one_of(st.integers(0, 25).map(float), st.just(math.inf)), max_size=max_size)


def tied_scores(low: int = -3, high: int = 3) -> st.SearchStrategy[float]:
    """Scores from a handful of values (ties are common), some of them not whole numbers."""
    return st.integers(low * 4, high * 4).map(lambda v: v / 4)


@st.composite
def score_matrices(draw, max_rows: int = 8, max_columns: int = 8) -> np.ndarray:
    """(n, C) candidate scores, C >= 1, drawn from few values so ties against the target are common."""
    n = draw(st.integers(0, max_rows))
    c = draw(st.integers(1, max_columns))
    values = draw(st.lists(tied_scores(), min_size=n * c, max_size=n * c))
    return np.asarray(values, dtype=np.float64).reshape(n, c)


@st.composite
def labelled_scores(draw, max_size: int = 30, probabilities: bool = False) -> tuple[list[int], list[float]]:
    """Parallel 0/1 labels and scores (tied often); ``probabilities``: scores in [0, 1], ends included."""
    n = draw(st.integers(0, max_size))
    labels = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    values = st.integers(0, 8).map(lambda v: v / 8) if probabilities else tied_scores()
    return labels, draw(st.lists(values, min_size=n, max_size=n))


def grid_floats(low: float = -1.0, high: float = 1.0, step: float = 1 / 64) -> st.SearchStrategy[float]:
    """Floats on a binary grid: sums and differences are exact, so boundary cases (a gain exactly at a
    threshold) come up and compare the same in float and exact arithmetic."""
    return st.integers(round(low / step), round(high / step)).map(lambda v: v * step)
