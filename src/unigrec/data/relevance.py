"""Graded relevance of an item to a search query, judged from the item's own metadata (docs/design.md §5).

Semi-synthetic queries are made from an item's metadata (:mod:`unigrec.data.queries`: its genres or
category path, its release decade or year, its title words), so whether ANY item fits a query is
decidable from that item's metadata too. That is what a search user judges first ("is this a 1990s sci-fi action film?"), before
whether it is the one film they would have picked, and what the leave-one-out search metrics never ask.

A query is read into terms (:func:`normalise_query`): catalogue words (genre / category words and
title words), decades ("1990s") and years ("1995"). An item satisfies a word when the word is one of
its category or title words, a decade when it was released in it, a year when released that year.
Grades (:func:`relevance_grade`): 2 = every term satisfied, 1 = some, 0 = none (or a query without terms).
Every item's own generated query grades it 2: generator and judge read the same words (one exception:
a title word that spells a category word, "children" in "City of Lost Children", reads as that category).

People type the same query many ways; :func:`normalise_query` reads them into the same terms: case and
word order never matter, punctuation inside words is dropped ("sci-fi" = "scifi", "children's" =
"childrens"), two words that make one category word are joined ("sci fi", "film noir"), spellings in
:data:`SPELLINGS` map to their category word where the catalogue has it ("science fiction", "kids"), decades come in every common
form ("90s", "'90s", "1990's", "nineties"), a plural is read as its catalogue singular ("westerns"), and a
word that is no catalogue word but lies within a small edit distance of exactly one is read as that word
("thriler"). The tolerance knobs live in ``params.yaml`` (``evaluate.relevance.reading``); the tables here
are data about how words are spelt, not settings.

Real query logs bring their own judgments and use them instead (see ``evaluate/relevance.py``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from unigrec.config import QueryReadingConfig
from unigrec.data.queries import STOP_WORDS

# Words of a query or of item metadata: letters/digits with in-word apostrophes and hyphens, as the
# query generator's own rule (data/queries.py) reads them.
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_INNER_PUNCTUATION = re.compile(r"['’-]")
_DECADE_SPAN = 10
_CENTURY = 100
# "1990s" (the generator's form and "1990's" once folded), "90s" / "'90s" (two-digit), a year "1995".
_FULL_DECADE = re.compile(r"^(\d{3}0)s$")
_SHORT_DECADE = re.compile(r"^(\d0)s$")
_YEAR = re.compile(r"^\d{4}$")
# "Toy Story (1995). Genres: ..." — the form the MovieLens adapters write an item's text in
# (data/sources/movielens_common.movie_text); the canonical items table keeps no year column.
_TEXT_YEAR = re.compile(r"\((\d{4})\)")

# Catalogue word -> other ways people type it. Normalisation maps every form back to the catalogue word;
# the typed-query set draws its "spelled" variants from here. Keys are folded words (no punctuation).
SPELLINGS: Mapping[str, tuple[str, ...]] = {
    "scifi": ("sci-fi", "scifi", "sci fi", "science fiction", "sf"),
    "childrens": ("children's", "childrens", "children", "kids"),
    "filmnoir": ("film-noir", "film noir", "noir"),
    "romance": ("romance", "romantic"),
    "animation": ("animation", "animated"),
}
# Spelled-out decades: "nineties" -> 90, read through the two-digit rule like "90s".
DECADE_WORDS: Mapping[str, int] = {
    "twenties": 20, "thirties": 30, "forties": 40, "fifties": 50, "sixties": 60, "seventies": 70,
    "eighties": 80, "nineties": 90,
}
# Words people add to a search that name no property of an item ("90s sci-fi movies"): dropped unless the
# catalogue itself uses them (then they are real terms).
FILLER_WORDS: frozenset[str] = frozenset({"movie", "movies", "film", "films"})


def fold_word(word: str) -> str:
    """Lower-case, in-word apostrophes and hyphens removed: "Sci-Fi" -> "scifi", "Children's" -> "childrens"."""
    return _INNER_PUNCTUATION.sub("", word.casefold())


def words_of(text: str | None) -> list[str]:
    """The folded words of a text, stop-words out (the generator's stop-words), in order."""
    words = (fold_word(w) for w in _WORD.findall(text or ""))
    return [w for w in words if w and w not in STOP_WORDS]


def decade_start(year: int) -> int:
    """1995 -> 1990."""
    return year // _DECADE_SPAN * _DECADE_SPAN


@dataclasses.dataclass(frozen=True)
class ItemFacets:
    """What a query can ask of an item: its category words, its title words, its release year."""

    category_words: frozenset[str]
    title_words: frozenset[str]
    year: int | None


@dataclasses.dataclass(frozen=True)
class QueryTerms:
    """A query as terms: catalogue words, decades (first year: 1990) and years, each once, in order."""

    words: tuple[str, ...] = ()
    decades: tuple[int, ...] = ()
    years: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.words) + len(self.decades) + len(self.years)


def relevance_grade(item: ItemFacets, query: QueryTerms) -> int:
    """2 if ``item`` satisfies every term of ``query``, 1 if some, 0 if none (or the query has no terms).

    A word is satisfied by a category word or a title word of the item (a search for "godfather" wants
    The Godfather), a decade by a release year inside it, a year by that release year.
    """
    satisfied = sum(w in item.category_words or w in item.title_words for w in query.words)
    if item.year is not None:
        satisfied += sum(decade_start(item.year) == d for d in query.decades)
        satisfied += sum(item.year == y for y in query.years)
    if not len(query) or satisfied == 0:
        return 0
    return 2 if satisfied == len(query) else 1


def item_years(items: pd.DataFrame) -> list[int | None]:
    """Release year per item: the ``year`` column when the frame has one (source tables), else the
    "(1995)" the MovieLens adapters write into ``text`` (canonical items keep no year column); None when
    neither says."""
    if "year" in items.columns:
        return [None if pd.isna(y) else int(y) for y in items["year"]]
    if "text" not in items.columns:
        return [None] * len(items)
    out: list[int | None] = []
    for text in items["text"]:
        match = _TEXT_YEAR.search("" if pd.isna(text) else str(text))
        out.append(int(match.group(1)) if match else None)
    return out


def item_facets(items: pd.DataFrame) -> list[ItemFacets]:
    """:class:`ItemFacets` of every row of an items table (item_id, title, category, optional year/text)."""
    categories = items["category"] if "category" in items.columns else pd.Series([None] * len(items))
    titles = items["title"] if "title" in items.columns else pd.Series([None] * len(items))
    return [
        ItemFacets(
            frozenset(words_of(None if pd.isna(c) else str(c))),
            frozenset(words_of(None if pd.isna(t) else str(t))),
            year,
        )
        for c, t, year in zip(categories, titles, item_years(items), strict=True)
    ]


def edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein distance (optimal string alignment: an adjacent swap costs 1), or ``limit + 1``
    as soon as it must exceed ``limit`` (most vocabulary words are far from a typed word)."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """The catalogue's words, which decide what a typed word may be read as."""

    category_words: frozenset[str]
    title_words: frozenset[str]

    @classmethod
    def of(cls, facets: Iterable[ItemFacets]) -> Vocabulary:
        facets = list(facets)
        return cls(
            frozenset().union(*(f.category_words for f in facets)),
            frozenset().union(*(f.title_words for f in facets)),
        )

    def __contains__(self, word: object) -> bool:
        return word in self.category_words or word in self.title_words


def _phrase_spellings() -> dict[tuple[str, ...], str]:
    """Folded word tuple of every spelling in :data:`SPELLINGS` -> its catalogue word; a phrase also as one
    joined word, the way a hyphen types it ("science-fiction" folds to "sciencefiction")."""
    out: dict[tuple[str, ...], str] = {}
    for canonical, forms in SPELLINGS.items():
        for form in (canonical, *forms):
            words = tuple(fold_word(w) for w in _WORD.findall(form))
            out[words] = out[("".join(words),)] = canonical
    return out


_PHRASES = _phrase_spellings()
_LONGEST_PHRASE = max(len(p) for p in _PHRASES)


def _decade_of_word(word: str, pivot: int) -> int | None:
    """1990 for "1990s" / "90s" / "nineties"; two-digit decades below ``pivot`` are this century's."""
    if match := _FULL_DECADE.match(word):
        return int(match.group(1))
    short = int(m.group(1)) if (m := _SHORT_DECADE.match(word)) else DECADE_WORDS.get(word)
    if short is None:
        return None
    century = 2000 if short < pivot else 1900
    return century + short


def _singular(word: str, vocabulary: Vocabulary) -> str | None:
    for suffix, replacement in (("ies", "y"), ("es", ""), ("s", "")):
        if word.endswith(suffix) and (stem := word[: -len(suffix)] + replacement) in vocabulary:
            return stem
    return None


def _closest_word(word: str, vocabulary: Vocabulary, cfg: QueryReadingConfig) -> str | None:
    """The one catalogue word within ``cfg.max_edit_distance`` of ``word`` (category words first: they
    are what queries are made of), or None when none is, or several are equally close."""
    if len(word) < cfg.min_typo_length or cfg.max_edit_distance < 1:
        return None
    for words in (vocabulary.category_words, vocabulary.title_words):
        distances: dict[int, list[str]] = {}
        for candidate in words:
            d = edit_distance(word, candidate, cfg.max_edit_distance)
            if d <= cfg.max_edit_distance:
                distances.setdefault(d, []).append(candidate)
        if distances:
            best = distances[min(distances)]
            return best[0] if len(best) == 1 else None
    return None


def normalise_query(text: str, vocabulary: Vocabulary, cfg: QueryReadingConfig) -> QueryTerms:
    """Read a typed query into :class:`QueryTerms` (rules in the module docstring), terms once each.

    A word that no rule maps to the catalogue stays a word term: nothing satisfies it, so no item is
    fully relevant to a query that asks for something the catalogue cannot say.
    """
    tokens = [fold_word(w) for w in _WORD.findall(text or "")]
    words: list[str] = []
    decades: list[int] = []
    years: list[int] = []
    i = 0
    while i < len(tokens):
        # the longest spelling phrase or joined pair starting here ("science fiction", "sci fi")
        for length in range(min(_LONGEST_PHRASE, len(tokens) - i), 1, -1):
            phrase = tuple(tokens[i : i + length])
            read = _PHRASES.get(phrase, "".join(phrase))
            if read in vocabulary.category_words:
                words.append(read)
                i += length
                break
        else:
            word = tokens[i]
            i += 1
            if not word or word in STOP_WORDS:
                continue
            if (decade := _decade_of_word(word, cfg.two_digit_decade_pivot)) is not None:
                decades.append(decade)
            elif _YEAR.match(word) and word not in vocabulary:
                years.append(int(word))
            elif (alias := _PHRASES.get((word,), word)) in vocabulary.category_words:
                words.append(alias)  # "kids" is the category word "childrens" even where a title says "kids"
            elif word in vocabulary:
                words.append(word)
            elif word in FILLER_WORDS:
                continue
            else:
                words.append(_singular(word, vocabulary) or _closest_word(word, vocabulary, cfg) or word)
    return QueryTerms(tuple(dict.fromkeys(words)), tuple(dict.fromkeys(decades)), tuple(dict.fromkeys(years)))


def lexical_words(text: str, vocabulary: Vocabulary, cfg: QueryReadingConfig) -> list[str]:
    """The words a lexical index should look up for a typed query: the query's own folded words, then
    what :func:`normalise_query` reads them as ("science fiction" and "scifi" -> "scifi", "90s" -> "1990s",
    "thriler" -> "thriller"), each once.

    The own words stay because the reading keeps only what the catalogue's genres and titles can say: a
    word of an item's description is not in that vocabulary and must still match. Matched against item
    text folded the same way (:func:`words_of`), so "Sci-Fi" in a text and "sci-fi" in a query meet.
    """
    terms = normalise_query(text, vocabulary, cfg)
    read = [*terms.words, *(f"{d}s" for d in terms.decades), *(str(y) for y in terms.years)]
    return list(dict.fromkeys([*words_of(text), *read]))


class CatalogueJudge:
    """Grades of every catalogue item for a query at once: :func:`relevance_grade` over arrays.

    The evaluation judges thousands of (query, item) pairs; this gives the same grade as the pure
    function (a test holds them equal) from one boolean column per word.
    """

    def __init__(self, items: pd.DataFrame, cfg: QueryReadingConfig) -> None:
        self.item_ids: list[str] = items["item_id"].astype(str).tolist()
        self.facets = item_facets(items)
        self.vocabulary = Vocabulary.of(self.facets)
        self.cfg = cfg
        years = [f.year for f in self.facets]
        self._years = np.array([-1 if y is None else y for y in years], dtype=np.int64)
        self._decades = np.where(self._years >= 0, self._years // _DECADE_SPAN * _DECADE_SPAN, -1)
        self._columns: dict[str, np.ndarray] = {}
        for row, f in enumerate(self.facets):
            for word in f.category_words | f.title_words:
                self._columns.setdefault(word, np.zeros(len(self.facets), dtype=bool))[row] = True

    def read(self, query: str) -> QueryTerms:
        return normalise_query(query, self.vocabulary, self.cfg)

    def grades(self, terms: QueryTerms) -> np.ndarray:
        """(n_items,) int8 grades of ``terms``, in the items table's row order."""
        n = len(self.item_ids)
        satisfied = np.zeros(n, dtype=np.int64)
        for word in terms.words:
            column = self._columns.get(word)
            if column is not None:
                satisfied += column
        for decade in terms.decades:
            satisfied += self._decades == decade
        for year in terms.years:
            satisfied += self._years == year
        if not len(terms):
            return np.zeros(n, dtype=np.int8)
        return np.where(satisfied == len(terms), 2, np.where(satisfied > 0, 1, 0)).astype(np.int8)

    def grades_of(self, query: str) -> np.ndarray:
        return self.grades(self.read(query))


def grade_lookup(judge: CatalogueJudge, queries: Sequence[str]) -> dict[str, np.ndarray]:
    """query -> its catalogue grades, each distinct query read and judged once."""
    return {q: judge.grades_of(q) for q in dict.fromkeys(queries)}
