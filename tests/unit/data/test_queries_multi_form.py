"""The multi-form query generator (issue 35): several seeded forms per item, drawn per search event, and
the query-overlap figures the split card reports."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from support import FIXTURES, REPO
from support.queries import query_config
from support.runtime import runtime_config

from unigrec.config import ConfigError, IngestConfig, ParquetSourceConfig, load_section
from unigrec.data.queries import (
    FORMS,
    QueryIngredients,
    describe_query_rule,
    draw_query,
    genre_levels,
    item_ingredients,
    query_overlap,
    recast_as_searches,
    title_words,
)
from unigrec.data.relevance import SPELLINGS, CatalogueJudge, fold_word
from unigrec.data.split_card import render_split_card
from unigrec.paths import Layout
from unigrec.stages import ingest

MULTI = query_config(generator="multi_form", search_fraction=0.5, seed=13)
TITLES = ["Toy Story", "Alien", "Shawshank Redemption, The", "Star Wars", "Fargo", "Heat", "Babe", "Casino",
          "City of Lost Children, The (Cité des enfants perdus, La)", "2001: A Space Odyssey"]
GENRES = ["Animation|Children's|Comedy", "Horror|Sci-Fi", "Drama", "Action|Adventure|Sci-Fi|War",
          "Crime|Drama|Thriller", "Action|Crime|Thriller", "Children's|Comedy|Drama", "Drama|Thriller",
          "Adventure|Sci-Fi", "Drama|Mystery|Sci-Fi"]


def _catalogue() -> pd.DataFrame:
    """Ten films with genres, title and year, one with nothing to search it by (never a target)."""
    items = pd.DataFrame({
        "item_id": [str(i) for i in range(11)],
        "title": [*TITLES, "unknown"],
        "category": [*GENRES, "unknown"],
        "year": pd.array([1995, 1979, 1994, 1977, 1996, 1995, 1995, 1995, 1995, 1968, None], dtype="Int64"),
    })
    return items.assign(text=items["title"])


def _events(n_users: int = 40, per_user: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", str(rng.integers(11)), 1_000_000 + k * 10, 5.0) for u in range(n_users) for k in range(per_user)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"]).assign(label=np.int8(1))


def test_ingredients_read_genres_levels_titles_and_years():
    assert genre_levels("Action|Sci-Fi|unknown") == ("action", "sci-fi")
    assert genre_levels("Toys & Games > Arts and Crafts > Games of the World") == (
        "toys games", "arts crafts", "games world")
    assert genre_levels(None) == ()
    assert title_words("Shawshank Redemption, The", 3) == ("shawshank", "redemption")
    assert title_words("City of Lost Children, The (Cité des enfants perdus, La)", 3) == ("city", "lost", "children")
    assert title_words("2001: A Space Odyssey", 3) == ("space", "odyssey")  # "2001" would read as a year
    assert title_words("It's a Wonderful Life", 3) == ("wonderful", "life")
    assert title_words("Ed Wood", 3) == ("wood",) and title_words("Ed Wood", 2) == ("ed", "wood")
    ing = item_ingredients(_catalogue(), MULTI)
    assert ing["1"] == QueryIngredients(("horror", "sci-fi"), "1970s", "1979", ("alien",))
    assert ing["10"] == QueryIngredients((), None, None, ())


def test_every_form_is_drawn_and_reads_as_the_form_says():
    ing = QueryIngredients(("action", "adventure", "sci-fi", "war"), "1970s", "1977", ("star", "wars"))
    seen: dict[str, set[str]] = {}
    for key in range(3000):
        form, query = draw_query(ing, key, MULTI)
        seen.setdefault(form, set()).add(query)
    assert set(seen) == set(FORMS)
    genres, titles = set(ing.genres), set(ing.title_words)
    for form, queries in seen.items():
        for query in queries:
            words = query.split()
            assert 1 <= len(words) <= 3, query
            if form == "genres":
                assert set(words) <= genres and len(words) <= MULTI.max_genres
            if form == "genres_decade":
                assert words[-1] == "1970s" and set(words[:-1]) <= genres and words[:-1]
            if form == "genres_year":
                assert words[-1] == "1977" and set(words[:-1]) <= genres and words[:-1]
            if form == "decade":
                assert words == ["1970s"]
            if form == "title":
                assert set(words) <= titles
            if form == "title_genre":
                assert words[0] in titles and words[1] in genres
    # subsets of one to max_genres genres, in the item's order, all of them reachable
    assert {q for q in seen["genres"] if " " not in q} == genres
    assert "action sci-fi" in seen["genres"] and "sci-fi action" not in seen["genres"]
    assert seen["title"] == {"star", "wars", "star wars"}


def test_form_weights_are_honoured_and_missing_metadata_renormalises():
    ing = QueryIngredients(("drama",), "1990s", "1994", ("shawshank", "redemption"))
    only_titles = query_config(generator="multi_form", forms={"title": 1.0, "genres": 0.0})
    assert {draw_query(ing, k, only_titles)[0] for k in range(200)} == {"title"}
    # an item without a title never draws a title form: the other forms share its weight
    no_title = QueryIngredients(("drama",), "1990s", "1994", ())
    forms = [draw_query(no_title, k, MULTI)[0] for k in range(2000)]
    assert "title" not in forms and "title_genre" not in forms
    weights = {f: w for f, w in MULTI.forms.items() if f not in ("title", "title_genre")}
    share = forms.count("genres") / len(forms)
    assert share == pytest.approx(weights["genres"] / sum(weights.values()), abs=0.04)


def test_recast_is_seeded_per_event_never_empty_and_searches_items_in_many_words():
    items, events = _catalogue(), _events()
    rest, searches = recast_as_searches(items, events, MULTI)
    assert len(rest) + len(searches) == len(events)
    assert searches["query"].str.len().gt(0).all() and "10" not in set(searches["item_id"])
    again = recast_as_searches(items, events, MULTI)[1]
    pd.testing.assert_frame_equal(searches, again)
    # the same item is searched in different words, and a string covers several items
    assert searches.groupby("item_id")["query"].nunique().median() >= 3
    assert searches.groupby("query")["item_id"].nunique().max() >= 3
    # one user's searches (events AND strings) do not depend on other users' rows or on row order
    others = events[events["user_id"].isin(["u3", *[f"u{i}" for i in range(0, 40, 3)]])].sample(frac=1.0, random_state=2)
    changed = recast_as_searches(items, others, MULTI)[1]

    def of_u3(frame: pd.DataFrame) -> set[tuple]:
        return set(map(tuple, frame.loc[frame.user_id == "u3", ["item_id", "timestamp", "query"]].to_numpy()))

    assert of_u3(changed) == of_u3(searches) and of_u3(searches)
    reseeded = recast_as_searches(items, events, query_config(generator="multi_form", search_fraction=0.5, seed=14))[1]
    assert not reseeded.equals(searches)


def test_every_generated_query_is_fully_relevant_to_its_item():
    """Generator and relevance judge read the same words: a search's own item grades 2 for its query.

    Except by the judge's own rule that a spelling of a category word is that word even in a title
    ("lost children" asks for the Children's genre), so such queries grade 1 on a film outside it."""
    items = _catalogue()
    _, searches = recast_as_searches(items, _events(), query_config(generator="multi_form", search_fraction=1.0))
    judge = CatalogueJudge(items, load_section("evaluate", REPO / "params.yaml").relevance.reading)
    row = {item: i for i, item in enumerate(judge.item_ids)}
    spellings = {fold_word(s) for forms in SPELLINGS.values() for s in forms} - set(SPELLINGS)
    grades = {(q, i): judge.grades_of(q)[row[i]] for q, i in zip(searches["query"], searches["item_id"], strict=True)}
    below = {pair for pair, grade in grades.items() if grade != 2}
    assert below == {pair for pair in grades if set(map(fold_word, pair[0].split())) & spellings}
    assert {item for _, item in below} == {"8"} and ("lost children", "8") in below


def test_config_mistakes_fail_naming_the_key():
    items, events = _catalogue(), _events(n_users=2)
    with pytest.raises(ConfigError, match=r"ingest.queries.forms: unknown form\(s\) titel"):
        recast_as_searches(items, events, query_config(generator="multi_form", forms={"titel": 1.0}))
    with pytest.raises(ConfigError, match="at least one > 0"):
        recast_as_searches(items, events, query_config(generator="multi_form", forms={"title": 0.0}))
    with pytest.raises(ConfigError, match="ingest.queries.max_genres"):
        recast_as_searches(items, events, query_config(generator="multi_form", max_genres=0))


def test_the_rule_text_states_every_form_with_its_probability():
    cfg = query_config(generator="multi_form", forms={"genres": 3.0, "title": 1.0, "decade": 0.0})
    text = describe_query_rule(cfg)
    assert "(75%)" in text and "(25%)" in text and "decade alone" not in text
    assert f"seed {cfg.seed}" in text and "multi_form" in text
    assert "Ai et al." in describe_query_rule(query_config(generator="category"))


def test_query_overlap_counts_seen_strings_and_strings_per_item():
    events = pd.DataFrame({
        "kind": ["search"] * 7 + ["rec"],
        "split": ["train", "train", "train", "train", "test", "test", "valid", "test"],
        "query": ["drama", "drama", "toy story", "comedy", "drama", "alien", "comedy", None],
        "item_id": ["a", "b", "c", "c", "b", "d", "a", "z"],
    })
    got = query_overlap(events)
    assert got["test_searches"] == 2 and got["valid_searches"] == 1
    assert got["test_seen_in_train"] == 0.5 and got["test_seen_for_target"] == 0.5
    assert got["valid_seen_in_train"] == 1.0 and got["valid_seen_for_target"] == 0.0
    assert got["test_items_per_seen_string_median"] == 2.0
    assert got["train_strings"] == 3
    assert got["items_per_train_string"] == {"median": 1.0, "mean": 1.33, "share_one": 0.6667}
    assert got["train_strings_per_item"] == {"median": 1.0, "mean": 1.33, "share_one": 0.6667}
    card = render_split_card({"events": 8, "queries": got})
    assert "| test searches whose query string occurs among training searches | 50.0% |" in card
    empty = query_overlap(events[events["kind"] == "rec"])
    assert empty["test_seen_in_train"] is None and empty["items_per_train_string"]["median"] is None


# --------------------------------------------------------------------------- real query logs
def _ingest(tmp_path, source: str, path, parquet: ParquetSourceConfig) -> tuple[pd.DataFrame, dict]:
    cfg = IngestConfig(source=source, path=path, label_threshold=4.0, max_users=None, queries=MULTI, parquet=parquet)
    layout = Layout(tmp_path)
    ingest.run(cfg, layout, runtime_config())
    return pd.read_parquet(layout.searches), json.loads(layout.data_card_json.read_text(encoding="utf-8"))


NO_PARQUET = ParquetSourceConfig(None, None, None, {})


def test_ai_et_al_queries_pass_through_unchanged(tmp_path):
    searches, card = _ingest(tmp_path, "amazon2014", str(FIXTURES / "amazon"), NO_PARQUET)
    assert sorted(searches["query"]) == ["toys games baby toddler trains accessories",
                                         "toys games pretend play kitchen dishes", "toys games puzzles jigsaw"]
    assert card["rules"]["queries"].startswith("Queries from Ai et al.")


def test_a_users_searches_pass_through_unchanged_and_only_a_source_without_a_log_gets_the_generator(tmp_path):
    items = _catalogue()
    items.drop(columns="year").to_parquet(tmp_path / "items.parquet")
    _events(n_users=3).to_parquet(tmp_path / "inter.parquet")
    typed = ["  Sci-Fi from the 90s!", "toy STORY", "toy STORY"]  # not the generator's words, nor normalised
    pd.DataFrame({"user_id": ["u0", "u1", "u2"], "item_id": ["1", "0", "0"], "timestamp": [1, 2, 3],
                  "query": typed}).to_parquet(tmp_path / "searches.parquet")
    with_log = ParquetSourceConfig("items.parquet", "inter.parquet", "searches.parquet", {})
    searches, card = _ingest(tmp_path / "a", "parquet", None, _anchored(tmp_path, with_log))
    assert list(searches["query"]) == typed
    assert card["rules"]["queries"] == "queries supplied by the user's searches table"
    without = ParquetSourceConfig("items.parquet", "inter.parquet", None, {})
    searches, card = _ingest(tmp_path / "b", "parquet", None, _anchored(tmp_path, without))
    assert len(searches) and not set(searches["query"]) & set(typed)
    assert "multi_form" in card["rules"]["queries"] and "split card" in card["rules"]["query_overlap"]


def _anchored(folder, spec: ParquetSourceConfig) -> ParquetSourceConfig:
    return ParquetSourceConfig(*(None if p is None else str(folder / p) for p in
                                 (spec.items, spec.interactions, spec.searches)), spec.columns)


def test_the_split_stage_reports_the_overlap_in_its_metrics_and_split_card(tmp_path):
    from unigrec.stages import split

    layout = Layout(tmp_path)
    unrated = pd.DataFrame({"item_id": [f"x{i}" for i in range(20)], "title": "Filler", "category": "Drama"})
    pd.concat([_catalogue().drop(columns="year"), unrated.assign(text="Filler")]).to_parquet(tmp_path / "items.parquet")
    _events(n_users=6).to_parquet(tmp_path / "inter.parquet")
    _ingest(tmp_path, "parquet", None, _anchored(tmp_path, ParquetSourceConfig("items.parquet", "inter.parquet", None, {})))
    (tmp_path / "reports").mkdir()
    layout.validation_json.write_text(json.dumps({"success": True}), encoding="utf-8")
    split_cfg = load_section("split", REPO / "params.yaml")
    summary = split.run(dataclasses.replace(split_cfg, min_events=3, n_negatives=2), layout)
    metrics = json.loads(layout.split_metrics.read_text(encoding="utf-8"))
    events = pd.read_parquet(layout.events)
    assert metrics["queries"] == summary["queries"] == json.loads(json.dumps(query_overlap(events)))
    assert metrics["queries"]["test_seen_in_train"] is not None
    assert metrics["queries"]["train_strings"] == events.loc[
        (events["kind"] == "search") & (events["split"] == "train"), "query"].nunique()
    assert layout.split_card.read_text(encoding="utf-8") == render_split_card(summary)
