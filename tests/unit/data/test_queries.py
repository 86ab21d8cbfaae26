"""Semi-synthetic queries, ``category`` generator: the text rule, and the seeded per-user recast of
interactions into searches (the multi-form generator: test_queries_multi_form.py)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from support.queries import query_config

from unigrec.data.queries import build_query, decade_of, item_queries, recast_as_searches

CFG = query_config(generator="category", search_fraction=0.25, include_decade=True, seed=13)


def test_build_query_follows_ai_et_al_example():
    # the published example of Ai et al. (SIGIR'17): the last copy of a repeated word survives
    assert build_query("Camera, Photo > Digital Camera Lenses", None, False) == "photo digital camera lenses"


def test_build_query_lowercases_drops_stop_words_and_adds_decade():
    assert build_query("Animation|Children's|Comedy", 1995, True) == "animation children's comedy 1990s"
    assert build_query("Sci-Fi|Film-Noir", 1982, False) == "sci-fi film-noir"
    assert build_query("Toys & Games > Arts and Crafts > Games of the World", None, True) == (
        "toys arts crafts games world"
    )
    assert build_query("Drama", None, True) == "drama"  # no year, no decade
    assert build_query("unknown", 1971, True) == "1970s"
    assert build_query("unknown", None, True) == ""
    assert build_query(None, 2003, True) == "2000s"


def test_decade_of():
    assert decade_of(1995) == "1990s" and decade_of(2000) == "2000s" and decade_of(1989) == "1980s"


def test_item_queries_use_year_column_when_present():
    items = pd.DataFrame({"item_id": ["a", "b"], "category": ["Action|Comedy", None], "year": [1999, None]})
    assert list(item_queries(items, True)) == ["action comedy 1990s", ""]
    assert list(item_queries(items.drop(columns="year"), True)) == ["action comedy", ""]


def _toy_events(n_users: int = 30, per_user: int = 20, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    items = pd.DataFrame(
        {
            "item_id": [str(i) for i in range(50)],
            # every 5th item has no genre and no year: an empty query, never a search target
            "category": ["Action|Drama" if i % 5 else "unknown" for i in range(50)],
            "year": [1990 + i % 20 if i % 5 else None for i in range(50)],
        }
    )
    rows = []
    for u in range(n_users):
        for k in range(per_user):
            rows.append((f"u{u}", str(rng.integers(50)), int(1_000_000 + k * 10), float(rng.integers(1, 6))))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    inter["label"] = (inter["rating"] >= 4).astype("int8")
    return items, inter


def test_recast_partitions_the_events():
    items, inter = _toy_events()
    rest, searches = recast_as_searches(items, inter, CFG)
    assert len(rest) + len(searches) == len(inter)
    # the removed rows are exactly the search events, the rest keep their relative order
    removed = inter.merge(rest.assign(kept=True), how="left", on=list(inter.columns))
    assert removed["kept"].isna().sum() == len(searches)
    kept_positions = inter.reset_index().merge(rest, on=list(inter.columns))["index"]
    assert kept_positions.is_monotonic_increasing
    # only positives whose item has a query, with that item's query
    queries = item_queries(items, True)
    assert (searches["query"] == searches["item_id"].map(queries)).all()
    assert (searches["query"].str.len() > 0).all() and (searches["item_id"].astype(int) % 5 != 0).all()
    chosen = inter.merge(searches[["user_id", "item_id", "timestamp"]], on=["user_id", "item_id", "timestamp"])
    assert (chosen["label"] == 1).all()


def test_recast_takes_the_rounded_fraction_per_user():
    items, inter = _toy_events()
    _, searches = recast_as_searches(items, inter, CFG)
    has_query = inter["item_id"].map(item_queries(items, True)).str.len() > 0
    eligible = inter[(inter["label"] == 1) & has_query].groupby("user_id").size()
    got = searches.groupby("user_id").size().reindex(eligible.index, fill_value=0)
    assert (got == np.floor(eligible * CFG.search_fraction + 0.5).astype(int)).all()


def test_recast_is_deterministic_and_independent_of_other_users():
    items, inter = _toy_events()
    _, first = recast_as_searches(items, inter, CFG)
    _, again = recast_as_searches(items, inter, CFG)
    pd.testing.assert_frame_equal(first, again)
    # shuffle the rows of everyone and drop half the other users: user u3 gets the same searches
    other = inter[inter.user_id.isin([f"u{i}" for i in range(0, 30, 2)] + ["u3"])]
    shuffled = other.sample(frac=1.0, random_state=1)
    _, changed = recast_as_searches(items, shuffled, CFG)

    def of_u3(frame: pd.DataFrame) -> set[tuple]:
        return set(map(tuple, frame.loc[frame.user_id == "u3", ["item_id", "timestamp"]].to_numpy()))

    assert of_u3(changed) == of_u3(first) and of_u3(first)
    # a different seed picks different events
    _, reseeded = recast_as_searches(items, inter, query_config(generator="category", search_fraction=0.25, seed=14))
    assert not reseeded.equals(first)


def _category(fraction: float):
    return query_config(generator="category", search_fraction=fraction, include_decade=True, seed=1)


def test_recast_extremes_and_validation():
    items, inter = _toy_events(n_users=3)
    rest, none = recast_as_searches(items, inter, _category(0.0))
    assert none.empty and len(rest) == len(inter)
    _, every = recast_as_searches(items, inter, _category(1.0))
    assert len(every) == ((inter["label"] == 1) & (inter["item_id"].astype(int) % 5 != 0)).sum()
    with pytest.raises(ValueError, match="search_fraction"):
        recast_as_searches(items, inter, _category(1.5))


def test_category_generator_is_unchanged_byte_for_byte():
    """The pre-issue-35 rule stays selectable exactly: the same events become searches with the same
    strings (sha256 of both output frames as CSV, recorded from the code before the multi-form generator)."""
    items, inter = _toy_events()
    digests = []
    for cfg in (CFG, query_config(generator="category", search_fraction=0.25, include_decade=False, seed=3)):
        rest, searches = recast_as_searches(items, inter, cfg)
        digests.append(hashlib.sha256((rest.to_csv(index=False) + searches.to_csv(index=False)).encode()).hexdigest())
    assert digests == [
        "3f1bc798e9371fba97204fa852cbde8c44de9d0efc64491036d8e7d1886bc451",
        "c12a2482a8b464eebb64f73ab833e0c2bc94cd4a6e576e14468576ab82a7e36d",
    ]
