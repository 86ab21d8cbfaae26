"""``ingest`` stage: source files -> canonical items / interactions / searches parquet + data card."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from unigrec.atomic import stage_outputs, write_json
from unigrec.config import IngestConfig, RuntimeConfig
from unigrec.data.card import build_data_card, render_data_card_markdown
from unigrec.data.queries import describe_query_rule, recast_as_searches
from unigrec.data.schema import conform
from unigrec.data.sources import keep_first_users, load_source
from unigrec.paths import Layout

log = logging.getLogger(__name__)


def anchor_paths(cfg: IngestConfig, layout: Layout) -> IngestConfig:
    """``cfg`` with every file path resolved against the project root (:meth:`Layout.resolve`)."""

    def anchored(path: str | None) -> str | None:
        return None if path is None else str(layout.resolve(path))

    parquet = cfg.parquet
    return dataclasses.replace(
        cfg,
        path=anchored(cfg.path),
        parquet=dataclasses.replace(
            parquet,
            items=anchored(parquet.items),
            interactions=anchored(parquet.interactions),
            searches=anchored(parquet.searches),
        ),
    )


def run(cfg: IngestConfig, layout: Layout, runtime: RuntimeConfig) -> dict[str, Any]:
    """Load the source, make searches if it has none, subset users, write all outputs at once."""
    cfg = anchor_paths(cfg, layout)
    with stage_outputs(layout.root, "ingest", dirs=[layout.canonical_dir]) as out:
        card = _ingest(cfg, layout, runtime, out[layout.canonical_dir])
    stats = card["stats"]
    log.info("ingest: %d users, %d items, %d interactions, %d searches -> %s", stats["users"], stats["items"],
             stats["interactions"], stats["searches"], layout.canonical_dir)
    return {"source": cfg.source, **{k: stats[k] for k in ("users", "items", "interactions", "searches",
                                                             "positives", "unique_queries")}}


def _ingest(cfg: IngestConfig, layout: Layout, runtime: RuntimeConfig, tmp: Path) -> dict[str, Any]:
    """Write the canonical tables and the data card into ``tmp`` (the stage's staged folder)."""
    source = load_source(cfg, layout.resolve(runtime.cache_dir))
    # Subsetting first is cheaper and gives the same result: the recast draws per user, independently.
    source = keep_first_users(source, cfg.max_users)
    interactions, searches = source.interactions, source.searches
    if searches is None:
        interactions, searches = recast_as_searches(source.items, interactions, cfg.queries)
        query_rule = describe_query_rule(cfg.queries)
        log.info("recast %d positive interactions as semi-synthetic search events", len(searches))
    else:
        query_rule = source.query_rule or "queries supplied by the source"
    items = conform(source.items, "items")
    interactions = conform(interactions, "interactions")
    searches = conform(searches, "searches")
    card = build_data_card(source, items, interactions, searches, query_rule, cfg.max_users)

    canonical = layout.canonical_dir
    for frame, target in ((items, layout.items), (interactions, layout.interactions), (searches, layout.searches)):
        frame.to_parquet(tmp / target.relative_to(canonical), index=False)
    write_json(tmp / layout.data_card_json.relative_to(canonical), card)
    (tmp / layout.data_card_md.relative_to(canonical)).write_text(render_data_card_markdown(card), encoding="utf-8")
    return card
