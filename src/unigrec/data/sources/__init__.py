"""Source adapters: each turns one public dataset format into the canonical tables (docs/design.md §2).

``ADAPTERS`` maps the ``ingest.source`` value to its ``load_<name>(cfg, cache_dir) -> SourceTables``
function; ``cache_dir`` is where a source that downloads keeps what it fetched (``runtime.cache_dir``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from unigrec.config import IngestConfig
from unigrec.data.sources.amazon import load_amazon2014
from unigrec.data.sources.movielens import load_movielens_1m, load_movielens_100k
from unigrec.data.sources.parquet import load_parquet
from unigrec.data.sources.tables import SourceFile, SourceTables, keep_first_users
from unigrec.errors import SourceError

ADAPTERS: dict[str, Callable[[IngestConfig, Path], SourceTables]] = {
    "movielens-100k": load_movielens_100k,
    "movielens-1m": load_movielens_1m,
    "amazon2014": load_amazon2014,
    "parquet": load_parquet,
}

__all__ = ["ADAPTERS", "SourceFile", "SourceTables", "keep_first_users", "load_source"]


def load_source(cfg: IngestConfig, cache_dir: Path) -> SourceTables:
    """Run the adapter that ``cfg.source`` names."""
    if cfg.source not in ADAPTERS:
        raise SourceError(f"no adapter for source {cfg.source!r}; known: {', '.join(ADAPTERS)}")
    return ADAPTERS[cfg.source](cfg, cache_dir)
