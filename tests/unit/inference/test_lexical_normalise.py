"""Query normalisation before BM25 (evaluate.lexical.normalise_queries): typed variants reach the items
the catalogue spells otherwise, and words outside the genre/title vocabulary still match."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from unigrec.config import QueryReadingConfig
from unigrec.data.relevance import Vocabulary, item_facets, lexical_words
from unigrec.inference.lexical import LexicalIndex, catalogue_index
from unigrec.inference.retrieval import LexicalSettings

READING = QueryReadingConfig(max_edit_distance=1, min_typo_length=5, two_digit_decade_pivot=30)
CATALOGUE = pd.DataFrame({
    "item_id": ["a", "b", "c", "d"],
    "title": ["Alien", "Heat", "Babe", "Fargo"],
    "text": ["Alien (1979). 1970s. Genres: Horror, Sci-Fi.", "Heat (1995). 1990s. Genres: Action, Thriller.",
             "Babe (1995). 1990s. Genres: Children's, Comedy. A pig herds sheep.",
             "Fargo (1996). 1990s. Genres: Crime, Thriller."],
    "category": ["Horror|Sci-Fi", "Action|Thriller", "Children's|Comedy", "Crime|Thriller"],
})


def _vocabulary() -> Vocabulary:
    return Vocabulary.of(item_facets(CATALOGUE))


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ("science fiction", {"scifi"}),
        ("sci fi", {"scifi"}),
        ("Sci-Fi", {"scifi"}),
        ("90s thriller", {"1990s", "thriller"}),
        ("thriler", {"thriller"}),  # one edit from a catalogue word
        ("kids", {"childrens"}),
    ],
)
def test_lexical_words_read_typed_variants_as_the_catalogue_spells_them(query, wanted):
    assert wanted <= set(lexical_words(query, _vocabulary(), READING))


def test_lexical_words_keep_the_querys_own_words():
    """'sheep' is in a description, not in any genre or title: it must still be looked up."""
    assert "sheep" in lexical_words("sheep", _vocabulary(), READING)


def _index(normalise: bool) -> LexicalIndex:
    settings = LexicalSettings(5, 1.5, 0.75, READING.__dict__.copy() if normalise else None)
    return catalogue_index(CATALOGUE["item_id"].tolist(), CATALOGUE, settings)


@pytest.mark.parametrize("query", ["scifi", "science fiction", "sf"])
def test_a_spelling_the_raw_index_misses_finds_the_item_once_normalised(query):
    raw, read = _index(False).scores([query])[0], _index(True).scores([query])[0]
    assert raw[0] == 0.0  # "Sci-Fi" is indexed as "sci" + "fi": "scifi" matches nothing
    assert read[0] == 1.0 and np.count_nonzero(read) == 1


def test_a_decade_and_a_typo_rank_the_item_that_has_both_first():
    scores = _index(True).scores(["90s thriler"])[0]
    assert scores.argmax() in (1, 3) and scores[1] == scores[3] == 1.0 and scores[0] == 0.0


def test_normalised_index_still_matches_description_words():
    scores = _index(True).scores(["sheep"])[0]
    assert scores[2] == 1.0 and np.count_nonzero(scores) == 1
