"""The lexical signal of the search pipeline: BM25 over item text, in the model's item order.

The generative model reads a query as one MiniLM vector, so a query's exact words ("godfather",
"1990s") only reach it through that vector, and BM25 beats it where the words decide (sparse
catalogues, typed queries). The pipeline therefore lets BM25 both *propose* candidates (its best unseen
items join the beam's pool) and *score* them (``λ * BM25 / max BM25`` joins the fused score;
:func:`~unigrec.inference.retrieval.fuse_and_rerank`).

Why normalise by the query's best score: raw BM25 grows with the number of query terms and their
rarity, so one λ would mean a different thing for "drama" and for "sci-fi action 1990s". Divided by
the query's best score over the catalogue, it lies in [0, 1] for every query (1 = the best lexical match,
0 = no query term), and λ is the log-probability a best lexical match is worth against no match. A query
without any indexed term scores 0 everywhere and leaves the model's order alone.

BM25 alone lets an item that matches one rare query word strongly outrank one that matches every word,
and the model's prior then fills the top 10 with items that fit the user and half the query. So the
index also gives each item its *term coverage*: the share of the query's distinct terms its text holds,
over the best share of any item (Lucene's classic "coord" factor). ``μ * coverage`` joins the fused
score beside ``λ * BM25``, μ chosen on validation like λ: on ml-100k validation chose μ > 0 and the top 10
of typed queries went from 0.7 to 0.9 fully relevant (docs/experiments/2026-12-04-term-coverage.md).

The index is the bm25 baseline's (:class:`~unigrec.data.negatives.BM25Negatives`: same package,
tokenisation, ``k1`` / ``b``), rebuilt from the catalogue text wherever the pipeline runs (evaluation,
serving): indexing a catalogue of thousands of items takes well under a second.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from unigrec.config import QueryReadingConfig
from unigrec.data.negatives import BM25Negatives
from unigrec.data.relevance import Vocabulary, item_facets, lexical_words, words_of

if TYPE_CHECKING:
    from unigrec.inference.retrieval import LexicalSettings


BM25_FEATURE, COVERAGE_FEATURE = 0, 1  # the last axis of LexicalIndex.features
N_FEATURES = 2


class LexicalIndex:
    """BM25 over ``texts`` (one per dense item index of the model, ``""`` for an item without text).

    ``reader``: the words to look up for a typed query (:func:`~unigrec.data.relevance.lexical_words`);
    the texts are then indexed as their folded words, so both sides are spelled alike. None: raw text and
    raw queries, as the bm25 baseline reads them."""

    def __init__(
        self, texts: Sequence[str], k1: float, b: float, reader: Callable[[str], list[str]] | None = None
    ) -> None:
        documents = [str(t) for t in texts] if reader is None else [" ".join(words_of(str(t))) for t in texts]
        self._bm25 = BM25Negatives([str(i) for i in range(len(texts))], documents, k1, b)
        self._reader = reader
        self.n_items = len(texts)

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """(B, n_items) BM25 score of every item for each query over that query's best, in [0, 1]."""
        return self.features(queries, coverage=False)[..., BM25_FEATURE]

    def features(self, queries: Sequence[str], coverage: bool = True) -> np.ndarray:
        """(B, n_items, 2) what the fused score reads of each item's words: ``[..., BM25_FEATURE]`` its BM25
        score over the query's best, ``[..., COVERAGE_FEATURE]`` its term coverage (the share of the query's
        distinct terms its text holds, over the best share of any item); both in [0, 1], 0 for an item
        without a query term. ``coverage=False`` leaves the coverage at 0 (one BM25 pass per query)."""
        out = np.zeros((len(queries), self.n_items, N_FEATURES), dtype=np.float64)
        for row, tokens in enumerate(self._bm25.tokenize(self._looked_up(queries))):
            raw = np.asarray(self._bm25.catalogue_scores(tokens), dtype=np.float64)
            best = raw.max(initial=0.0)
            if best <= 0.0:  # no query term in any item: no lexical evidence at all
                continue
            out[row, :, BM25_FEATURE] = raw / best
            if coverage:
                # bm25s' idf is positive for every indexed term, so a term's score is > 0 exactly where
                # the item's text holds it
                held = sum(np.asarray(self._bm25.catalogue_scores([t])) > 0.0 for t in sorted(set(tokens)))
                held = np.asarray(held, dtype=np.float64)
                out[row, :, COVERAGE_FEATURE] = held / held.max()
        return out

    def _looked_up(self, queries: Sequence[str]) -> list[str]:
        return [str(q) if self._reader is None else " ".join(self._reader(str(q))) for q in queries]


def catalogue_index(model_item_ids: Sequence[str], catalogue: pd.DataFrame, settings: LexicalSettings) -> LexicalIndex:
    """The index of a catalogue's ``text`` column in the model's item order: what the evaluate stage and
    the served model both build, from the items table or the serving bundle. With ``settings.reading``,
    typed queries are read against the catalogue's own genres, titles and years first."""
    text = {
        str(i): "" if t is None or pd.isna(t) else str(t)
        for i, t in zip(catalogue["item_id"], catalogue["text"], strict=True)
    }
    reader = None
    if settings.reading is not None:
        vocabulary = Vocabulary.of(item_facets(catalogue))
        reader = functools.partial(lexical_words, vocabulary=vocabulary, cfg=QueryReadingConfig(**settings.reading))
    return LexicalIndex([text.get(str(i), "") for i in model_item_ids], settings.k1, settings.b, reader)


def top_unseen(scores: np.ndarray, seen: np.ndarray, n: int) -> np.ndarray:
    """(B, n) the ``n`` best-scoring items of each row that it has not seen and that match at least one
    query term, best first (-1 where fewer). Ties keep catalogue order (a stable sort): the same list on
    any CPU, unlike an argpartition whose tie order depends on numpy's sort kernels."""
    out = np.full((scores.shape[0], n), -1, dtype=np.int64)
    if n == 0:
        return out
    keyed = np.where(np.asarray(seen, dtype=bool) | (scores <= 0.0), np.inf, -scores)
    order = np.argsort(keyed, axis=1, kind="stable")[:, :n]
    kept = np.isfinite(np.take_along_axis(keyed, order, axis=1))
    width = order.shape[1]
    out[:, :width] = np.where(kept, order, -1)
    return out
