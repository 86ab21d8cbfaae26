"""``ingest`` stage: source files -> canonical items / interactions / searches parquet + data card."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from unigrec.atomic import atomic_dir, write_json
from unigrec.config import IngestConfig
from unigrec.data.card import build_data_card, render_data_card_markdown
from unigrec.data.queries import describe_query_rule, recast_as_searches
from unigrec.data.schema import conform
from unigrec.data.sources import keep_first_users, load_source
from unigrec.paths import Layout

log = logging.getLogger(__name__)


def _anchored(path: str | None, root: Path) -> str | None:
    """Relative params paths mean "relative to the project root", wherever the command runs from."""
    if path is None or Path(path).is_absolute():
        return path
    return str(root / path)


def anchor_paths(cfg: IngestConfig, root: Path) -> IngestConfig:
    """``cfg`` with every file path resolved against ``root``."""
    parquet = cfg.parquet
    return dataclasses.replace(
        cfg,
        path=_anchored(cfg.path, root),
        cache_dir=str(_anchored(cfg.cache_dir, root)),
        parquet=dataclasses.replace(
            parquet,
            items=_anchored(parquet.items, root),
            interactions=_anchored(parquet.interactions, root),
            searches=_anchored(parquet.searches, root),
        ),
    )


def run(cfg: IngestConfig, layout: Layout) -> dict[str, Any]:
    """Load the source, make searches if it has none, subset users, write all outputs at once."""
    cfg = anchor_paths(cfg, layout.root)
    source = load_source(cfg)
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
    with atomic_dir(canonical) as tmp:
        for frame, target in ((items, layout.items), (interactions, layout.interactions),
                              (searches, layout.searches)):
            frame.to_parquet(tmp / target.relative_to(canonical), index=False)
        write_json(tmp / layout.data_card_json.relative_to(canonical), card)
        (tmp / layout.data_card_md.relative_to(canonical)).write_text(
            render_data_card_markdown(card), encoding="utf-8"
        )
    stats = card["stats"]
    log.info("ingest: %d users, %d items, %d interactions, %d searches -> %s", stats["users"], stats["items"],
             stats["interactions"], stats["searches"], canonical)
    return {"source": cfg.source, **{k: stats[k] for k in ("users", "items", "interactions", "searches",
                                                             "positives", "unique_queries")}}
