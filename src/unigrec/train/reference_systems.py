"""The reference systems the unified model is measured against, as overrides of the ``train`` params.

UniGRF's claim is that one model doing retrieval and ranking beats two separate ones, and GenSAR's that
dual-purpose identifiers beat a single semantic ID (TIGER). Both comparisons need the other side built
the same way: the same trainer, data and evaluation, only the loss weights (and, for TIGER, the
identifiers mode) changed. The benchmarks (``benchmarks/compare.py``, ``benchmarks/ablation.py``) take
them from here so the two never disagree on what "two-stage" means.
"""

from __future__ import annotations

from typing import Any

# Plain joint training: no enhancer (it needs a ranker in the same model), fixed task weights.
PLAIN = {"enhancer": {"enabled": False}, "weighter": {"mode": "fixed"}}
RETRIEVAL_ONLY = {**PLAIN, "loss_weights": {"retrieval_rec": 1.0, "retrieval_search": 1.0, "ranking": 0.0}}
RANKING_ONLY = {**PLAIN, "loss_weights": {"retrieval_rec": 0.0, "retrieval_search": 0.0, "ranking": 1.0}}
# TIGER (Rajput et al. 2023): generative retrieval over semantic IDs only, no ranking.
TIGER_IDENTIFIERS = {"mode": "semantic_only"}


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` applied recursively (nested mappings merge, other values replace)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out
