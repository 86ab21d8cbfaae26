"""Semi-synthetic search events for datasets without a query log (docs/design.md §2).

Two generators (``ingest.queries.generator``):

- ``category``: the protocol of Van Gysel et al. (CIKM'16) and Ai et al. (SIGIR'17), used by JSR, UniSAR
  and GenSAR: an item's query is its category path (or genre list) joined, lower-cased, with stop-words
  and repeated words removed. Ai et al.'s published example fixes which copy of a repeated word survives:
  "Camera, Photo -> Digital Camera Lenses" becomes "photo digital camera lenses" (the LAST one). One
  string per item, so a string nearly names one item: search then measures memorisation (issue 35).
- ``multi_form`` [ours]: each search event draws one of several forms (:data:`FORMS`) of its item's
  metadata, seeded by the event's own fields: a subset of its genres / category levels, the decade or
  year, title words, and combinations. The same item is searched in different words and one string
  covers many items, so a model must read the query rather than recall a string.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import random
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from unigrec.config import ConfigError, QueryConfig

# Function words of category paths and genre names, plus MovieLens' "unknown" genre, which names
# the absence of a genre and would make every such movie match the same meaningless query.
STOP_WORDS: frozenset[str] = frozenset(
    {
        "a", "an", "and", "any", "as", "at", "by", "for", "from", "in", "into", "is", "it", "its", "of",
        "on", "or", "other", "the", "to", "with", "without", "your", "unknown",
    }
)
# Title words a person would not search by: English function words, and the articles of the foreign
# titles MovieLens lists ("Cité des enfants perdus, La"). A superset of STOP_WORDS, so every title word
# drawn is one the relevance judge (data/relevance.py) reads as a title word too.
TITLE_STOP_WORDS: frozenset[str] = STOP_WORDS | frozenset(
    {
        "about", "after", "all", "are", "be", "but", "can", "did", "do", "does", "don't", "down", "her",
        "here", "his", "how", "i", "i'm", "if", "me", "my", "no", "not", "off", "one", "our", "out", "over",
        "she", "so", "than", "that", "their", "them", "then", "there", "they", "this", "too", "two", "up",
        "was", "we", "were", "what", "when", "where", "who", "why", "will", "you", "you're",
        "das", "de", "del", "der", "des", "du", "el", "et", "il", "la", "le", "les", "los", "las", "un", "une",
        # a query of one of these alone reads as a missing value to the data contracts (data_contracts/)
        "na", "nan", "nat", "none", "null", "undefined",
    }
)
# Words: letters/digits, keeping in-word apostrophes and hyphens ("children's", "sci-fi").
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
# Genre lists ("Action|Comedy") and category paths ("Toys & Games > Puzzles") split into levels here.
_LEVEL_SEPARATOR = re.compile(r"\s*[|>]\s*")
# An alternative title in parentheses ("City of Lost Children, The (Cité des enfants perdus, La)").
_PARENTHESISED = re.compile(r"\([^)]*\)")
_DIGIT = re.compile(r"\d")
_IN_WORD_MARK = re.compile(r"['’-]")
_FOLDED_TITLE_STOP_WORDS = frozenset(_IN_WORD_MARK.sub("", w) for w in TITLE_STOP_WORDS)
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


def _share(weight: float, total: float) -> str:
    return f"{weight / total:.0%}"


def describe_query_rule(cfg: QueryConfig) -> str:
    """The rule in one paragraph, for the data card: which events became searches and how each query was
    written (for ``multi_form``, every form with its probability)."""
    has_query = "a non-empty query" if cfg.generator == "category" else "at least one query form"
    selection = (
        f"for each user a seeded random {cfg.search_fraction:.0%} (seed {cfg.seed}, rounded per user) of the "
        f"positive interactions whose item has {has_query} became search events and were removed "
        "from the interaction stream, so no event is both."
    )
    if cfg.generator == "category":
        decade = " plus the release decade (e.g. \"1990s\")" if cfg.include_decade else ""
        return (
            "Semi-synthetic searches (Van Gysel et al. 2016; Ai et al. 2017; as in JSR, UniSAR, GenSAR): "
            f"{selection} Query = the item's genre list / category path, "
            f"lower-cased, stop-words and repeated words removed (last copy kept){decade}."
        )
    weights = {f: w for f, w in cfg.forms.items() if w > 0}
    total = sum(weights.values())
    forms = "; ".join(f"{FORM_TEXT[f].format(g=cfg.max_genres, t=cfg.max_title_words)} "
                      f"({_share(w, total)})" for f, w in weights.items())
    return (
        "Semi-synthetic searches, several query forms per item (multi_form generator, after Van Gysel et "
        f"al. 2016 and Ai et al. 2017): {selection} Each search event draws one form, seeded by a hash of "
        f"(seed, user, item, timestamp) alone: {forms}. A form the item lacks the metadata for is not "
        "drawn (the others' weights are renormalised); an item with no form is never a search target. "
        "Subset sizes and members are uniform, words keep the item's order. Words are lower-case with "
        "stop-words and repeats removed; title words drop parenthesised alternative titles, articles, "
        f"words with digits and words under {cfg.min_title_word_chars} letters."
    )


@dataclasses.dataclass(frozen=True)
class QueryIngredients:
    """What the multi-form generator may put in one item's query, each already in query words."""

    genres: tuple[str, ...]  # one phrase per genre / category-path level: "sci-fi", "arts crafts"
    decade: str | None  # "1990s"
    year: str | None  # "1995"
    title_words: tuple[str, ...]  # content words of the title, in title order, each once


def genre_levels(category_text: str | None) -> tuple[str, ...]:
    """Genres / category levels as query phrases, each through :func:`build_query`'s word rule.

    "Action|Sci-Fi" -> ("action", "sci-fi"); "Toys & Games > Arts and Crafts" -> ("toys games",
    "arts crafts"); a level left empty ("unknown") is dropped, a repeated one kept once.
    """
    levels = (build_query(level, None, False) for level in _LEVEL_SEPARATOR.split(category_text or ""))
    return tuple(dict.fromkeys(level for level in levels if level))


def title_words(title: str | None, min_chars: int) -> tuple[str, ...]:
    """Words a person would search a title by, each once, in title order.

    Lower-case; parenthesised alternative titles, stop-words and articles out; no word with a digit (a
    "2001" would read as a release year) and none shorter than ``min_chars``.
    """
    text = _PARENTHESISED.sub(" ", (title or "").lower())
    # compared folded, as the relevance judge reads words: "it's" is "its", a stop-word; "don't" is "dont"
    words = (w for w in _WORD.findall(text) if _IN_WORD_MARK.sub("", w) not in _FOLDED_TITLE_STOP_WORDS)
    return tuple(dict.fromkeys(w for w in words if len(w) >= min_chars and not _DIGIT.search(w)))


def item_ingredients(items: pd.DataFrame, cfg: QueryConfig) -> dict[str, QueryIngredients]:
    """item_id -> :class:`QueryIngredients`; uses the optional ``year`` and ``title`` columns when present."""
    blank = pd.Series([None] * len(items), index=items.index)
    years = items["year"] if "year" in items.columns else blank
    titles = items["title"] if "title" in items.columns else blank
    out: dict[str, QueryIngredients] = {}
    for item_id, category, year, title in zip(
        items["item_id"].astype(str), items["category"], years, titles, strict=True
    ):
        known_year = None if pd.isna(year) else int(year)
        out[item_id] = QueryIngredients(
            genres=genre_levels(None if pd.isna(category) else str(category)),
            decade=None if known_year is None else decade_of(known_year),
            year=None if known_year is None else str(known_year),
            title_words=title_words(None if pd.isna(title) else str(title), cfg.min_title_word_chars),
        )
    return out


def _pick(rng: random.Random, values: tuple[str, ...], most: int) -> list[str]:
    """Between 1 and ``most`` of ``values`` (count uniform, members uniform), in their original order."""
    count = 1 + int(rng.random() * min(most, len(values)))
    ranked = sorted(range(len(values)), key=lambda _: rng.random())
    return [values[i] for i in sorted(ranked[:count])]


def _genres(ing: QueryIngredients, rng: random.Random, cfg: QueryConfig) -> list[str]:
    return _pick(rng, ing.genres, cfg.max_genres)


_Has = Callable[[QueryIngredients], bool]
_Words = Callable[[QueryIngredients, random.Random, QueryConfig], list[str]]
# Form name -> (does the item have what the form needs, the form's words in query order).
FORMS: dict[str, tuple[_Has, _Words]] = {
    "genres": (lambda i: bool(i.genres), _genres),
    "genres_decade": (lambda i: bool(i.genres) and i.decade is not None,
                      lambda i, rng, cfg: [*_genres(i, rng, cfg), str(i.decade)]),
    "genres_year": (lambda i: bool(i.genres) and i.year is not None,
                    lambda i, rng, cfg: [*_genres(i, rng, cfg), str(i.year)]),
    "decade": (lambda i: i.decade is not None, lambda i, rng, cfg: [str(i.decade)]),
    "title": (lambda i: bool(i.title_words),
              lambda i, rng, cfg: _pick(rng, i.title_words, cfg.max_title_words)),
    "title_genre": (lambda i: bool(i.title_words) and bool(i.genres),
                    lambda i, rng, cfg: [*_pick(rng, i.title_words, 1), *_pick(rng, i.genres, 1)]),
}
# How each form reads in the data card; {g} = max_genres, {t} = max_title_words.
FORM_TEXT: dict[str, str] = {
    "genres": "1 to {g} of its genres / category levels (\"comedy\", \"action thriller\")",
    "genres_decade": "1 to {g} genres plus the release decade (\"sci-fi 1990s\")",
    "genres_year": "1 to {g} genres plus the release year (\"drama 1995\")",
    "decade": "the release decade alone (\"1970s\")",
    "title": "1 to {t} title words (\"toy story\")",
    "title_genre": "one title word and one genre (\"alien sci-fi\")",
}


def check_query_config(cfg: QueryConfig) -> None:
    """Refuse settings the generator cannot honour, naming the key (a misspelt form would never be drawn)."""
    if not 0.0 <= cfg.search_fraction <= 1.0:
        raise ValueError(f"search_fraction must be in [0, 1], got {cfg.search_fraction}")
    if cfg.generator != "multi_form":
        return
    where = "ingest.queries"
    if unknown := sorted(set(cfg.forms) - set(FORMS)):
        raise ConfigError(f"{where}.forms: unknown form(s) {', '.join(unknown)}; known: {', '.join(FORMS)}")
    if any(w < 0 for w in cfg.forms.values()) or not any(w > 0 for w in cfg.forms.values()):
        raise ConfigError(f"{where}.forms: weights must be >= 0 with at least one > 0, got {cfg.forms}")
    for key in ("max_genres", "max_title_words", "min_title_word_chars"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{where}.{key}: must be >= 1, got {getattr(cfg, key)}")


def available_forms(ing: QueryIngredients, cfg: QueryConfig) -> list[str]:
    """The forms with a positive weight that this item has the metadata for, in :data:`FORMS` order."""
    return [f for f, (has, _) in FORMS.items() if cfg.forms.get(f, 0.0) > 0 and has(ing)]


def draw_query(ing: QueryIngredients, key: int, cfg: QueryConfig) -> tuple[str, str]:
    """(form, query) for one search event, drawn from ``key`` alone (the event's seeded hash).

    The form is drawn among :func:`available_forms` with their weights renormalised; the words come
    out as :func:`build_query` writes them (repeats out, last copy kept), never empty. Python's Mersenne
    Twister seeded with an int and read only through ``random()`` gives the same stream everywhere.
    """
    forms = available_forms(ing, cfg)
    if not forms:
        raise ValueError("draw_query needs an item with at least one available form")
    rng = random.Random(key)
    cumulative = list(itertools.accumulate(cfg.forms[f] for f in forms))
    form = forms[min(bisect.bisect_right(cumulative, rng.random() * cumulative[-1]), len(forms) - 1)]
    return form, build_query(" ".join(FORMS[form][1](ing, rng, cfg)), None, False)


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
    The ``category`` generator gives each item its one query; ``multi_form`` draws each chosen event's
    query with :func:`draw_query` from that event's key, so it too depends on the event alone.
    """
    check_query_config(cfg)
    frame = interactions.reset_index(drop=True)
    item_ids = frame["item_id"].astype(str)
    if cfg.generator == "category":
        query = item_ids.map(item_queries(items, cfg.include_decade))
        searchable = query.fillna("").str.len().gt(0).to_numpy()
    else:
        ingredients = item_ingredients(items, cfg)
        has_form = {item: bool(available_forms(ing, cfg)) for item, ing in ingredients.items()}
        searchable = item_ids.map(has_form).fillna(False).to_numpy(dtype=bool)
    eligible = (frame["label"].to_numpy() == 1) & searchable

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

    if cfg.generator != "category":
        key_of_row = np.zeros(len(frame), dtype=np.uint64)
        key_of_row[candidates] = keys
        drawn = [draw_query(ingredients[item], int(key), cfg)[1]
                 for item, key in zip(item_ids[chosen], key_of_row[chosen], strict=True)]
        query = pd.Series(pd.NA, index=frame.index, dtype="object")
        query[chosen] = drawn

    searches = pd.DataFrame(
        {
            "user_id": frame.loc[chosen, "user_id"],
            "query": query[chosen],
            "item_id": frame.loc[chosen, "item_id"],
            "timestamp": frame.loc[chosen, "timestamp"],
        }
    ).reset_index(drop=True)
    return frame.loc[~chosen].reset_index(drop=True), searches


def _spread(counts: pd.Series) -> dict[str, float | None]:
    """Median and mean of a count per group, and the share of groups with exactly one."""
    if counts.empty:
        return {"median": None, "mean": None, "share_one": None}
    return {"median": float(counts.median()), "mean": round(float(counts.mean()), 2),
            "share_one": round(float((counts == 1).mean()), 4)}


def query_overlap(events: pd.DataFrame) -> dict[str, Any]:
    """How far the held-out searches can be answered by recalling training strings (issue 35).

    From the split events (``kind``, ``split``, ``query``, ``item_id``), per held-out split: its search
    events; the share of them whose query string occurs among training searches (``seen_in_train``) and
    whose string was searched in training for that very item (``seen_for_target``: what a string -> item
    lookup answers outright); the median number of training items searched with a seen string (how many
    a lookup must choose among). Over training searches: distinct items per query string and distinct
    query strings per item. Shares near 1 with one item per string are the memorisation regime; None
    where a split has no searches.
    """
    searches = events[events["kind"] == "search"]
    train = searches[searches["split"] == "train"]
    seen = set(train["query"].astype(str))
    items_of = train.groupby("query")["item_id"].nunique()
    seen_pairs = set(zip(train["query"].astype(str), train["item_id"].astype(str), strict=True))
    out: dict[str, Any] = {}
    for split in ("valid", "test"):
        held = searches[searches["split"] == split]
        queries, items = held["query"].astype(str), held["item_id"].astype(str)
        pairs = pd.Series([pair in seen_pairs for pair in zip(queries, items, strict=True)], dtype=bool)
        out[f"{split}_searches"] = len(held)
        out[f"{split}_seen_in_train"] = round(float(queries.isin(seen).mean()), 4) if len(held) else None
        out[f"{split}_seen_for_target"] = round(float(pairs.mean()), 4) if len(held) else None
        lookup = queries[queries.isin(seen)].map(items_of).to_numpy(dtype=float)
        out[f"{split}_items_per_seen_string_median"] = float(np.median(lookup)) if len(lookup) else None
    out["train_strings"] = len(seen)
    out["items_per_train_string"] = _spread(train.groupby("query")["item_id"].nunique())
    out["train_strings_per_item"] = _spread(train.groupby("item_id")["query"].nunique())
    return out
