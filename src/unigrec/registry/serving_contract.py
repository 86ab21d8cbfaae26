"""What a registered model takes and returns, and how it is rebuilt from its model folder.

The registry never imports the model code: params name a loader (``"package.module:function"``) that
turns the model folder into an object with ``predict(requests, k)``. Requests are rows of
``user_id, kind, query`` (``kind`` is ``rec`` or ``search``; ``query`` is empty for recommendation);
results are long-format rows ``request, rank, item_id, score`` (``request`` = 0-based input row).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pandas as pd

from unigrec.data.split import HELD_OUT_SPLITS
from unigrec.errors import UnigrecError

REQUEST_COLUMNS = ("user_id", "kind", "query")
RESULT_COLUMNS = ("request", "rank", "item_id", "score")


class Servable(Protocol):
    def predict(self, requests: pd.DataFrame, k: int) -> pd.DataFrame:
        """Top-``k`` items per request row, as :data:`RESULT_COLUMNS` rows."""
        ...


# Loaders that moved: a version registered before the move names the old place in its logged
# model_config, and must keep serving (a registry never loses its champion).
MOVED_LOADERS = {"unigrec.model.serving:load_recommender": "unigrec.inference.serving:load_recommender"}


def resolve_loader(spec: str) -> Callable[[Path], Servable]:
    """Import the ``module:function`` named in params; fail with the spec's name when it does not exist."""
    spec = MOVED_LOADERS.get(spec, spec)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UnigrecError(f"loader {spec!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnigrecError(f"loader {spec!r}: cannot import {module_name} ({exc})") from exc
    loader = getattr(module, attr, None)
    if not callable(loader):
        raise UnigrecError(f"loader {spec!r}: {module_name} has no function {attr}")
    return loader


def check_results(results: pd.DataFrame, n_requests: int, k: int) -> pd.DataFrame:
    """The loader's answer in the contract's columns; a malformed one fails loudly, not downstream."""
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise UnigrecError(f"the served model returned no column(s) {missing}")
    out = results.loc[:, list(RESULT_COLUMNS)].reset_index(drop=True)
    if len(out) and (out["request"].min() < 0 or out["request"].max() >= n_requests):
        raise UnigrecError("the served model returned rows for requests that were not asked")
    per_request = out.groupby("request").size()
    if len(per_request) and per_request.max() > k:
        raise UnigrecError(f"the served model returned more than k={k} items for a request")
    return out


def request_examples(events: pd.DataFrame) -> pd.DataFrame:
    """A tiny, real request table for the model's input example: the first held-out event of each kind."""
    held_out = events[events["split"].isin(HELD_OUT_SPLITS)].sort_values(["user_id", "order"], kind="mergesort")
    rows = []
    for kind in ("rec", "search"):
        first = held_out[held_out["kind"] == kind].head(1)
        for ev in first.itertuples(index=False):
            rows.append(
                {
                    "user_id": str(ev.user_id),
                    "kind": kind,
                    "query": "" if pd.isna(ev.query) else str(ev.query),
                }
            )
    if not rows:
        raise UnigrecError("the events table has no held-out event to build an input example from")
    return pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))
