"""Does each search method's list fit its query? Relevance NDCG@k and P@k on the test searches and on a
typed-query set (docs/design.md §5, issue 41).

The leave-one-out search metrics ask only whether the one item the user engaged with is in the list, so
a method that mostly recommends and ignores the query can still score. Here every catalogue item is
judged against the query from its metadata (:mod:`unigrec.data.relevance`: 2 = satisfies every term,
1 = some, 0 = none) and each method's top k is graded as the user sees it: seen items dropped, the
model's list the served one (retrieve, re-rank with the validation-chosen weight).

The **typed-query set** asks what the test searches cannot: every item's whole genre list / category path
plus decade, as the ``category`` generator writes it (:func:`unigrec.data.queries.build_query`; the
``multi_form`` generator's searches ask subsets of these words, or title words) with at least
``min_relevant`` fully relevant items, including forms no training search used, each typed five ways
(:data:`VARIANTS`) and served for seeded users. A variant is judged by the form it types (the user's
intent), so a method that cannot read "scifi action 90s" loses exactly what it misses.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from unigrec.config import QueryReadingConfig, RelevanceConfig
from unigrec.data.queries import build_query
from unigrec.data.relevance import DECADE_WORDS, SPELLINGS, CatalogueJudge, QueryTerms, fold_word, item_years
from unigrec.evaluate.baselines.context import EvalContext, HistoryEvent
from unigrec.evaluate.metrics import graded_ndcg_at_k, precision_fully_relevant
from unigrec.inference.prompts import CONTEXT_SPLITS

# How one query form is typed: as the generator wrote it; words shuffled; upper / title case; other
# spellings of its words ("science fiction", "90s"); one adjacent-letter swap in one long word.
VARIANTS = ("as_generated", "reordered", "cased", "spelled", "misspelled")
HISTORY_SPLITS = CONTEXT_SPLITS["test"]  # a typed request comes after everything but the held-out test events
_FULL_DECADE = re.compile(r"(\d{3}0)s")


@dataclasses.dataclass(frozen=True)
class TypedRequest:
    """One typed search: who asks, what they type, and the catalogue query form it stands for."""

    user_id: str
    query: str  # as typed
    form: str  # the generator's form it types: what judges the results
    variant: str  # one of VARIANTS
    unseen_form: bool  # no training search asked for the same terms


def catalogue_query_forms(items: pd.DataFrame, judge: CatalogueJudge, min_relevant: int) -> list[str]:
    """Every distinct catalogue query of the ``category`` generator's form (all genres / category words and
    decade) with at least ``min_relevant`` fully relevant items, sorted."""
    forms = {build_query(None if pd.isna(c) else str(c), y, True)
             for c, y in zip(items["category"], item_years(items), strict=True)}
    return sorted(f for f in forms - {""} if int(np.sum(judge.grades_of(f) == 2)) >= min_relevant)


def _spelled(word: str, rng: np.random.Generator, reading: QueryReadingConfig) -> str:
    """Another common way to type ``word``: a :data:`~unigrec.data.relevance.SPELLINGS` form, or for a
    decade "1990's", and "90s" / "'90s" / "nineties" where two digits read back as this decade (with the
    pivot 30, "20s" is the 2020s, so the 1920s keep their four digits); ``word`` itself when there is none."""
    folded = fold_word(word)
    if match := _FULL_DECADE.fullmatch(folded):
        full = int(match.group(1))
        short = full % 100
        candidates = [f"{full}'s"]
        if (2000 if short < reading.two_digit_decade_pivot else 1900) + short == full:
            candidates += [f"{short:02d}s", f"'{short:02d}s"]
            candidates += [name for name, value in DECADE_WORDS.items() if value == short]
    else:
        candidates = [s for s in SPELLINGS.get(folded, ()) if s != word]
    return str(rng.choice(candidates)) if candidates else word


def _misspelled(words: list[str], rng: np.random.Generator, reading: QueryReadingConfig) -> list[str] | None:
    """``words`` with two adjacent inner letters of one long enough word swapped; None if no word can be."""
    choices = [i for i, w in enumerate(words) if len(w) >= reading.min_typo_length and w.isalpha()
               and any(w[j] != w[j + 1] for j in range(1, len(w) - 2))]
    if not choices:
        return None
    i = int(rng.choice(choices))
    word = words[i]
    spots = [j for j in range(1, len(word) - 2) if word[j] != word[j + 1]]
    j = int(rng.choice(spots))
    out = list(words)
    out[i] = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    return out


def typed_variants(form: str, rng: np.random.Generator, reading: QueryReadingConfig) -> dict[str, str]:
    """Variant name -> the form as typed that way; a variant that would not differ from the form (one
    word to reorder, no word with another spelling or long enough to misspell) is left out."""
    words = form.split()
    out = {"as_generated": form}
    if len(words) > 1:
        order = rng.permutation(len(words))
        if list(order) == list(range(len(words))):
            order = order[::-1]
        out["reordered"] = " ".join(words[i] for i in order)
    cased = form.upper() if rng.random() < 0.5 else " ".join(w.capitalize() for w in words)
    if cased != form:  # "1970s" has no case to change
        out["cased"] = cased
    spelled = [_spelled(w, rng, reading) for w in words]
    if spelled != words:
        out["spelled"] = " ".join(spelled)
    if (typo := _misspelled(words, rng, reading)) is not None:
        out["misspelled"] = " ".join(typo)
    return out


def _terms_key(terms: QueryTerms) -> tuple[frozenset[str], frozenset[int], frozenset[int]]:
    return frozenset(terms.words), frozenset(terms.decades), frozenset(terms.years)


def typed_query_requests(
    cfg: RelevanceConfig, items: pd.DataFrame, events: pd.DataFrame, judge: CatalogueJudge
) -> list[TypedRequest]:
    """The typed-query set: forms (a seeded sample of ``max_queries`` of them when set), each variant of a
    form served for the same ``users_per_query`` seeded users (users with training events). Deterministic
    given the seed, the catalogue and the events."""
    typed = cfg.typed_queries
    # Separate streams: what is typed depends on the catalogue alone, never on how many users there are.
    rng, user_rng = np.random.default_rng([typed.seed, 0]), np.random.default_rng([typed.seed, 1])
    forms = catalogue_query_forms(items, judge, typed.min_relevant)
    if typed.max_queries is not None and len(forms) > typed.max_queries:
        forms = [forms[i] for i in np.sort(rng.choice(len(forms), size=typed.max_queries, replace=False))]
    train = events[events["split"] == "train"]
    users = sorted(train["user_id"].astype(str).unique())
    trained_queries = train.loc[train["kind"] == "search", "query"].dropna().astype(str).unique()
    trained = {_terms_key(judge.read(q)) for q in trained_queries}
    out = []
    for form in forms:
        unseen = _terms_key(judge.read(form)) not in trained
        variants = typed_variants(form, rng, cfg.reading)
        n_users = min(typed.users_per_query, len(users))
        for user in (users[i] for i in np.sort(user_rng.choice(len(users), size=n_users, replace=False))):
            out += [TypedRequest(user, text, form, name, unseen) for name, text in variants.items()]
    return out


def request_histories(events: pd.DataFrame, users: Sequence[str]) -> dict[str, tuple[HistoryEvent, ...]]:
    """Each user's train, gap and valid events in order: a typed request's history (its seen items)."""
    wanted = set(users)
    frame = events[events["split"].isin(HISTORY_SPLITS) & events["user_id"].astype(str).isin(wanted)]
    frame = frame.sort_values(["user_id", "order"], kind="mergesort")
    out: dict[str, tuple[HistoryEvent, ...]] = {u: () for u in wanted}
    for user, group in frame.groupby(frame["user_id"].astype(str), sort=False):
        out[str(user)] = tuple(
            HistoryEvent(str(i), str(k), None if pd.isna(q) else str(q), int(lab))
            for i, k, q, lab in zip(group["item_id"], group["kind"], group["query"], group["label"], strict=True)
        )
    return out


def typed_contexts(requests: Sequence[TypedRequest], histories: Mapping[str, tuple[HistoryEvent, ...]]) -> list[EvalContext]:
    """What a baseline is given for each typed request."""
    return [EvalContext(r.user_id, histories[r.user_id], "search", r.query) for r in requests]


def relevance_block(
    lists: Sequence[Sequence[str]],
    grades: Sequence[np.ndarray],
    seen: Sequence[set[str]],
    index: Mapping[str, int],
    k: int,
) -> dict[str, Any]:
    """``{"n", "ndcg@k", "p@k"}`` of ranked ``lists`` (seen items already dropped), request i judged by
    ``grades[i]`` (catalogue order, ``index``: item id -> column). The ideal list of NDCG is the best the
    request allowed: every unseen catalogue item."""
    if not (len(lists) == len(grades) == len(seen)):
        raise ValueError("one ranked list, grade row and seen set per request are needed")
    ndcg, precision = [], []
    for ranked, row, history in zip(lists, grades, seen, strict=True):
        list_grades = [int(row[index[i]]) for i in list(ranked)[:k] if i in index]
        allowed = np.ones(row.size, dtype=bool)
        allowed[[index[i] for i in history if i in index]] = False
        ndcg.append(graded_ndcg_at_k(list_grades, row[allowed], k))
        precision.append(precision_fully_relevant(list_grades, k))
    if not ndcg:  # an empty slice (a variant no form can take): undefined, written as null
        return {"n": 0, f"ndcg@{k}": float("nan"), f"p@{k}": float("nan")}
    return {"n": len(ndcg), f"ndcg@{k}": float(np.mean(ndcg)), f"p@{k}": float(np.mean(precision))}


def typed_block(
    lists: Sequence[Sequence[str]],
    requests: Sequence[TypedRequest],
    judge: CatalogueJudge,
    histories: Mapping[str, tuple[HistoryEvent, ...]],
    k: int,
) -> dict[str, Any]:
    """A method's relevance on the typed-query set: all requests, per variant, and the forms no training
    search used."""
    by_form = {form: judge.grades_of(form) for form in dict.fromkeys(r.form for r in requests)}
    index = {item: i for i, item in enumerate(judge.item_ids)}
    seen = [{e.item_id for e in histories[r.user_id]} for r in requests]

    def block(keep: Sequence[int]) -> dict[str, Any]:
        return relevance_block([lists[i] for i in keep], [by_form[requests[i].form] for i in keep],
                               [seen[i] for i in keep], index, k)

    everything = range(len(requests))
    return {
        "all": block(everything),
        "by_variant": {v: block([i for i in everything if requests[i].variant == v]) for v in VARIANTS},
        "unseen_forms": block([i for i in everything if requests[i].unseen_form]),
    }


def search_case_block(
    lists: Sequence[Sequence[str]], queries: Sequence[str], seen: Sequence[set[str]], judge: CatalogueJudge, k: int
) -> dict[str, Any]:
    """A method's relevance on the test searches: each judged by its own query, read by the judge."""
    by_query = {q: judge.grades_of(q) for q in dict.fromkeys(queries)}
    index = {item: i for i, item in enumerate(judge.item_ids)}
    return relevance_block(lists, [by_query[q] for q in queries], seen, index, k)


def typed_set_summary(requests: Sequence[TypedRequest]) -> dict[str, Any]:
    """Sizes of the typed-query set, for the metrics file and the report."""
    forms = dict.fromkeys(r.form for r in requests)
    unseen = {r.form for r in requests if r.unseen_form}
    return {
        "forms": len(forms),
        "unseen_forms": len(unseen),
        "requests": len(requests),
        "users": len({r.user_id for r in requests}),
        "requests_by_variant": {v: sum(r.variant == v for r in requests) for v in VARIANTS},
    }


def reading_check(judge: CatalogueJudge, requests: Sequence[TypedRequest]) -> float:
    """Share of typed requests the judge reads into the same terms as their form: how much of the typed
    set :func:`~unigrec.data.relevance.normalise_query` understands (1.0 = every variant)."""
    if not requests:
        return float("nan")
    same = [_terms_key(judge.read(r.query)) == _terms_key(judge.read(r.form)) for r in requests]
    return float(np.mean(same))



@dataclasses.dataclass(frozen=True)
class RelevanceInputs:
    """What every method's relevance is measured with: the judge, the typed-query set and its histories."""

    judge: CatalogueJudge
    requests: tuple[TypedRequest, ...]
    histories: Mapping[str, tuple[HistoryEvent, ...]]
    cutoff: int

    @property
    def contexts(self) -> list[EvalContext]:
        return typed_contexts(self.requests, self.histories)


def relevance_inputs(cfg: RelevanceConfig, items: pd.DataFrame, events: pd.DataFrame) -> RelevanceInputs:
    """Judge the catalogue and build the typed-query set once per evaluation."""
    judge = CatalogueJudge(items, cfg.reading)
    requests = tuple(typed_query_requests(cfg, items, events, judge))
    histories = request_histories(events, sorted({r.user_id for r in requests}))
    return RelevanceInputs(judge, requests, histories, cfg.cutoff)


def method_relevance(
    inputs: RelevanceInputs,
    search_lists: Sequence[Sequence[str]],
    search_queries: Sequence[str],
    search_seen: Sequence[set[str]],
    typed_lists: Sequence[Sequence[str]],
) -> dict[str, Any]:
    """One method's relevance figures: ``test_searches`` and ``typed_queries`` (all, per variant, unseen
    forms). Lists are the method's ranked items with seen items already dropped."""
    k = inputs.cutoff
    return {
        "test_searches": search_case_block(search_lists, search_queries, search_seen, inputs.judge, k),
        "typed_queries": typed_block(typed_lists, inputs.requests, inputs.judge, inputs.histories, k),
    }
