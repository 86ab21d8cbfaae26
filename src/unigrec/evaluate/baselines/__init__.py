"""Baselines scored by the same evaluation code, on the same split, as the generative model.

Each is a :class:`~unigrec.evaluate.baselines.base.CatalogueScorer`: ``fit(train_events, items)``, then
``score(contexts, candidate_item_ids)`` for the 1+99 protocol and ``top_k(contexts, k)`` for
full-catalogue retrieval. Contexts come from :func:`~unigrec.evaluate.baselines.context.held_out_cases`.

- ``popularity``: training counts per stream (rec and search).
- ``sasrec``: ID-based self-attentive sequential model trained here (rec and search, query ignored).
- ``bm25``: lexical search over item text (search only).
- ``bm25_read``: the same after reading the typed query as the served pipeline's BM25 does (search only).
- ``dense``: MiniLM sentence vectors, exact inner product (search only).
- ``query_lookup``: items searched in training with exactly the request's query, then popularity (search
  only): what memorising the training searches alone scores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from unigrec.config import BaselinesConfig, QueryReadingConfig, RuntimeConfig
    from unigrec.evaluate.baselines.base import CatalogueScorer
    from unigrec.paths import Layout

BASELINE_NAMES = ("popularity", "sasrec", "bm25", "bm25_read", "dense", "query_lookup")


def build_baseline(
    name: str, cfg: BaselinesConfig, runtime: RuntimeConfig, layout: Layout, reading: QueryReadingConfig
) -> CatalogueScorer:
    """An unfitted baseline by name; ``runtime`` sizes its batches and names the cache (resolved by
    ``layout``) where the dense baseline keeps its text embeddings; ``reading`` is how ``bm25_read``
    reads a typed query (params evaluate.relevance.reading, the served pipeline's)."""
    batch = runtime.batch_sizes.baseline_contexts
    # Imports per branch: SASRec pulls torch and dense search MiniLM, which a popularity run never needs.
    if name == "popularity":
        from unigrec.evaluate.baselines.popularity import PopularityBaseline

        return PopularityBaseline(batch)
    if name == "sasrec":
        from unigrec.evaluate.baselines.sasrec import SASRecBaseline

        return SASRecBaseline(cfg.sasrec, batch)
    if name == "bm25":
        from unigrec.evaluate.baselines.bm25_search import BM25Search

        return BM25Search(cfg.bm25, batch)
    if name == "bm25_read":
        from unigrec.evaluate.baselines.bm25_search import BM25Search

        return BM25Search(cfg.bm25, batch, reading)
    if name == "dense":
        from unigrec.evaluate.baselines.dense_search import DenseSearch

        cache = layout.resolve(runtime.cache_dir)
        return DenseSearch(batch, runtime.batch_sizes.text_encoding, cache_dir=cache)
    if name == "query_lookup":
        from unigrec.evaluate.baselines.query_lookup import QueryLookup

        return QueryLookup(batch)
    raise KeyError(f"unknown baseline {name!r}; baselines: {', '.join(BASELINE_NAMES)}")
