"""Graded relevance of an item to a query (data/relevance.py): hand-judged cases, typed variants read into
the same terms, and the catalogue-wide judge equal to the one pure function."""

from __future__ import annotations

import pandas as pd
import pytest

from unigrec.config import QueryReadingConfig
from unigrec.data.queries import build_query
from unigrec.data.relevance import (
    CatalogueJudge,
    ItemFacets,
    QueryTerms,
    Vocabulary,
    edit_distance,
    item_facets,
    item_years,
    normalise_query,
    relevance_grade,
)

READING = QueryReadingConfig(max_edit_distance=1, min_typo_length=5, two_digit_decade_pivot=30)

# Canonical items as the MovieLens adapters write them: no year column, the year inside the text.
ITEMS = pd.DataFrame(
    {
        "item_id": ["50", "7", "100", "200", "300", "400", "500"],
        "title": ["Star Wars", "Twelve Monkeys", "Godfather, The", "Escape from L.A.", "Toy Story",
                  "Maltese Falcon, The", "Wild Bunch, The"],
        "text": ["Star Wars (1977). Genres: Action, Adventure, Romance, Sci-Fi, War.",
                 "Twelve Monkeys (1995). Genres: Drama, Sci-Fi.",
                 "Godfather, The (1972). Genres: Action, Crime, Drama.",
                 "Escape from L.A. (1996). Genres: Action, Adventure, Sci-Fi, Thriller.",
                 "Toy Story (1995). Genres: Animation, Children's, Comedy.",
                 "Maltese Falcon, The (1941). Genres: Film-Noir, Mystery.",
                 "Wild Bunch, The (1969). Genres: Western."],
        "category": ["Action|Adventure|Romance|Sci-Fi|War", "Drama|Sci-Fi", "Action|Crime|Drama",
                     "Action|Adventure|Sci-Fi|Thriller", "Animation|Children's|Comedy", "Film-Noir|Mystery",
                     "Western"],
    }
)
FACETS = dict(zip(ITEMS["item_id"], item_facets(ITEMS), strict=True))
VOCAB = Vocabulary.of(FACETS.values())


def read(text: str) -> QueryTerms:
    return normalise_query(text, VOCAB, READING)


def grade(item: str, query: str) -> int:
    return relevance_grade(FACETS[item], read(query))


@pytest.mark.parametrize(
    ("item", "query", "expected"),
    [
        ("200", "sci-fi action 1990s", 2),  # Escape from L.A.: every term
        ("50", "sci-fi action 1990s", 1),  # Star Wars: sci-fi and action, but the 1970s
        ("7", "sci-fi action 1990s", 1),  # Twelve Monkeys: sci-fi and the decade, no action
        ("100", "sci-fi action 1990s", 1),  # The Godfather: action only (the issue's first result)
        ("300", "sci-fi action 1990s", 1),  # Toy Story: the decade only
        ("400", "sci-fi action 1990s", 0),  # 1941 film noir: nothing
        ("50", "sci-fi action 1970s", 2),
        ("50", "star wars", 2),  # title words are terms too
        ("50", "star wars 1990s", 1),
        ("50", "1977", 2),  # a year is a term: the release year
        ("50", "1978", 0),
        ("300", "animation children's comedy 1990s", 2),  # the generator's own form of Toy Story
        ("300", "", 0),  # no terms: nothing is relevant
        ("300", "the of and", 0),  # stop-words only
        ("300", "comedy spaceship", 1),  # a word the catalogue cannot say keeps every item below 2
    ],
)
def test_graded_cases(item, query, expected):
    assert grade(item, query) == expected


def test_item_without_year_satisfies_no_decade():
    facets = ItemFacets(frozenset({"action"}), frozenset(), None)
    assert relevance_grade(facets, QueryTerms(words=("action",), decades=(1990,))) == 1
    assert relevance_grade(facets, QueryTerms(decades=(1990,))) == 0


@pytest.mark.parametrize(
    "typed",
    [
        "sci-fi action 1990s",  # the generator's form
        "action sci-fi 1990s",  # word order
        "SCI-FI Action 1990S",  # case
        "scifi action 1990s",
        "sci fi action 1990s",
        "science fiction action 1990s",
        "Science-Fiction ACTION 1990s",
        "sci-fi action 90s",
        "sci-fi action '90s",
        "sci-fi action 1990's",
        "sci-fi action nineties",
        "sci-fi acton 1990s",  # a deleted letter
        "sci-fi actoin 1990s",  # two letters swapped
        "sci-fi action movies 1990s",  # a filler word the catalogue does not use
    ],
)
def test_typed_variants_read_as_the_generated_form(typed):
    expected = QueryTerms(words=("scifi", "action"), decades=(1990,))
    terms = read(typed)
    assert (set(terms.words), terms.decades, terms.years) == (set(expected.words), expected.decades, ())


def test_spellings_plurals_and_typos_map_to_category_words():
    assert read("kids comedy").words == ("childrens", "comedy")
    assert read("film noir").words == ("filmnoir",)
    assert read("noir").words == ("filmnoir",)
    assert read("westerns").words == ("western",)  # a plural is read as its catalogue singular
    assert read("thriler").words == ("thriller",)
    assert read("mystrey 1940s") == QueryTerms(words=("mystery",), decades=(1940,))


def test_two_digit_decades_follow_the_pivot():
    assert read("20s").decades == (2020,)  # below the pivot 30: this century
    assert read("30s").decades == (1930,)
    assert read("00s").decades == (2000,)
    pivot_50 = QueryReadingConfig(1, 5, 50)
    assert normalise_query("40s", VOCAB, pivot_50).decades == (2040,)


def test_typo_tolerance_has_limits():
    # short words are never corrected
    assert read("wat").words == ("wat",)
    # an unknown word two edits from everything stays unknown: nothing is fully relevant to it
    assert read("acshun").words == ("acshun",)
    assert all(grade(i, "acshun") == 0 for i in FACETS)
    # equally close to two category words: ambiguous, left as typed
    vocab = Vocabulary(frozenset({"crime", "prime"}), frozenset())
    assert normalise_query("drime", vocab, READING).words == ("drime",)
    # no tolerance when switched off
    off = QueryReadingConfig(0, 5, 30)
    assert normalise_query("acton", VOCAB, off).words == ("acton",)


def test_terms_are_kept_once():
    assert read("action Action ACTION 1990s 90s") == QueryTerms(words=("action",), decades=(1990,))


def test_edit_distance_counts_an_adjacent_swap_as_one():
    assert edit_distance("action", "action", 1) == 0
    assert edit_distance("acton", "action", 1) == 1
    assert edit_distance("actoin", "action", 1) == 1
    assert edit_distance("kitten", "sitting", 3) == 3
    assert edit_distance("kitten", "sitting", 1) == 2  # stops early: limit + 1
    assert edit_distance("a", "abcd", 2) == 3


def test_item_years_from_the_year_column_else_the_text():
    assert item_years(ITEMS)[:3] == [1977, 1995, 1972]
    with_column = ITEMS.assign(year=[2001, None, 1972, 1996, 1995, 1941, 1969])
    assert item_years(with_column)[:2] == [2001, None]  # the column wins over the text
    assert item_years(pd.DataFrame({"item_id": ["a"], "text": ["no year here (95)"]})) == [None]
    assert item_years(pd.DataFrame({"item_id": ["a"]})) == [None]


def test_every_item_is_fully_relevant_to_its_own_generated_query():
    """The generator and the judge read the same words: an item's query never misses the item."""
    years = item_years(ITEMS)
    for item, category, year in zip(ITEMS["item_id"], ITEMS["category"], years, strict=True):
        assert grade(item, build_query(category, year, True)) == 2, item


@pytest.mark.parametrize(
    "query", ["sci-fi action 1990s", "action", "1990s", "star wars", "1977", "", "comedy spaceship", "drama 1970s"]
)
def test_catalogue_judge_equals_the_pure_function(query):
    judge = CatalogueJudge(ITEMS, READING)
    terms = judge.read(query)
    expected = [relevance_grade(f, terms) for f in judge.facets]
    assert judge.grades(terms).tolist() == expected
    assert judge.item_ids == ITEMS["item_id"].tolist()


def test_catalogue_judge_counts_the_issue_example():
    judge = CatalogueJudge(ITEMS, READING)
    grades = dict(zip(judge.item_ids, judge.grades_of("sci-fi action 1990s").tolist(), strict=True))
    assert grades == {"50": 1, "7": 1, "100": 1, "200": 2, "300": 1, "400": 0, "500": 0}
