"""Semi-synthetic search events for datasets without a query log (docs/design.md §2).

The protocol of Van Gysel et al. (CIKM'16) and Ai et al. (SIGIR'17), used by JSR, UniSAR and GenSAR:
an item's query is its category path (or genre list) joined, lower-cased, with stop-words and
repeated words removed. Ai et al.'s published example fixes which copy of a repeated word survives:
"Camera, Photo -> Digital Camera Lenses" becomes "photo digital camera lenses" (the LAST one).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from unigrec.config import QueryConfig

# Function words of category paths and genre names, plus MovieLens' "unknown" genre, which names
# the absence of a genre and would make every such movie match the same meaningless query.
STOP_WORDS: frozenset[str] = frozenset(
    {
        "a", "an", "and", "any", "as", "at", "by", "for", "from", "in", "into", "is", "it", "its", "of",
        "on", "or", "other", "the", "to", "with", "without", "your", "unknown",
    }
)
# Words: letters/digits, keeping in-word apostrophes and hyphens ("children's", "sci-fi").
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_DECADE_SPAN = 10


def decade_of(year: int) -> str:
    """1995 -> "1990s"."""
    return f"{year // _DECADE_SPAN * _DECADE_SPAN}s"


def build_query(category_text: str | None, year: int | None, include_decade: bool) -> str:
    """Query for one item: its genres / category path as lower-case words, stop-words and repeats out.

    Of a repeated word the last occurrence is kept (Ai et al.'s example), so the more specific level
    of a category path keeps its phrase intact. The decade ("1990s") is appended when asked and known.
    Returns "" when nothing is left (such an item never becomes a search target).
    """
    words = [w for w in _WORD.findall((category_text or "").lower()) if w not in STOP_WORDS]
    last_position = {w: i for i, w in enumerate(words)}
    kept = [w for i, w in enumerate(words) if last_position[w] == i]
    if include_decade and year is not None:
        decade = decade_of(int(year))
        if decade not in kept:
            kept.append(decade)
    return " ".join(kept)


def item_queries(items: pd.DataFrame, include_decade: bool) -> pd.Series:
    """item_id -> query for every item; uses the optional ``year`` column when the adapter gave one."""
    years = items["year"] if "year" in items.columns else pd.Series([None] * len(items), index=items.index)
    queries = [
        build_query(None if pd.isna(c) else str(c), None if pd.isna(y) else int(y), include_decade)
        for c, y in zip(items["category"], years, strict=True)
    ]
    return pd.Series(queries, index=items["item_id"].astype(str).to_numpy(), dtype="string")


def describe_query_rule(cfg: QueryConfig) -> str:
    """The rule in one paragraph, for the data card."""
    decade = " plus the release decade (e.g. \"1990s\")" if cfg.include_decade else ""
    return (
        "Semi-synthetic searches (Van Gysel et al. 2016; Ai et al. 2017; as in JSR, UniSAR, GenSAR): "
        f"for each user a seeded random {cfg.search_fraction:.0%} (seed {cfg.seed}, rounded per user) of the "
        "positive interactions whose item has a non-empty query became search events and were removed "
        "from the interaction stream, so no event is both. Query = the item's genre list / category path, "
        f"lower-cased, stop-words and repeated words removed (last copy kept){decade}."
    )


def _selection_keys(interactions: pd.DataFrame, seed: int) -> np.ndarray:
    """A pseudo-random uint64 per event from (seed, user, item, timestamp) alone.

    Hashing the event's own fields (not drawing from one generator in row order) is what makes a
    user's selection independent of how many rows other users have and where they sit.
    """
    keyed = pd.DataFrame(
        {
            "seed": np.full(len(interactions), seed, dtype="int64"),
            "user_id": interactions["user_id"].astype(str).to_numpy(),
            "item_id": interactions["item_id"].astype(str).to_numpy(),
            "timestamp": interactions["timestamp"].astype("int64").to_numpy(),
        }
    )
    return pd.util.hash_pandas_object(keyed, index=False).to_numpy()


def recast_as_searches(
    items: pd.DataFrame, interactions: pd.DataFrame, cfg: QueryConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn a seeded share of each user's positive interactions into search events.

    Returns ``(interactions without the recast events, searches)``; both keep their original relative
    row order (the tie-break for equal timestamps). Per user, round-half-up(search_fraction * n) of the n
    eligible events (label 1, item with a non-empty query) are chosen: those with the smallest keys.
    """
    if not 0.0 <= cfg.search_fraction <= 1.0:
        raise ValueError(f"search_fraction must be in [0, 1], got {cfg.search_fraction}")
    frame = interactions.reset_index(drop=True)
    queries = item_queries(items, cfg.include_decade)
    query = frame["item_id"].astype(str).map(queries)
    eligible = (frame["label"].to_numpy() == 1) & query.fillna("").str.len().gt(0).to_numpy()

    candidates = np.flatnonzero(eligible)
    users = frame["user_id"].astype(str).to_numpy()[candidates]
    keys = _selection_keys(frame.iloc[candidates], cfg.seed)
    # Sort by user, then key; the row position settles (vanishingly rare) equal keys deterministically.
    order = np.lexsort((candidates, keys, users))
    ranked = pd.Series(users[order])
    rank_in_user = ranked.groupby(ranked, sort=False).cumcount().to_numpy()
    per_user = ranked.map(ranked.value_counts()).to_numpy()
    quota = np.floor(cfg.search_fraction * per_user + 0.5)
    chosen = np.zeros(len(frame), dtype=bool)
    chosen[candidates[order][rank_in_user < quota]] = True

    searches = pd.DataFrame(
        {
            "user_id": frame.loc[chosen, "user_id"],
            "query": query[chosen],
            "item_id": frame.loc[chosen, "item_id"],
            "timestamp": frame.loc[chosen, "timestamp"],
        }
    ).reset_index(drop=True)
    return frame.loc[~chosen].reset_index(drop=True), searches
