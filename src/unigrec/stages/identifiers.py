"""DVC stage ``identifiers``: GenSAR dual-purpose item IDs (semantic + collaborative, shared prefix).

Reads the catalogue and the split events; writes ``data/ids/`` (ids.parquet, codebooks.json,
quantizer.pt, item_embeddings.npz), ``metrics/identifiers.json`` and the code-usage plot.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from unigrec.config import IdentifiersConfig, RuntimeConfig
from unigrec.errors import SourceError
from unigrec.paths import Layout

log = logging.getLogger(__name__)


def _read(path: Path, produced_by: str) -> Any:
    import pandas as pd

    if not path.exists():
        raise SourceError(f"identifiers: {path} not found; run `dvc repro {produced_by}` first")
    return pd.read_parquet(path)


def run(cfg: IdentifiersConfig, layout: Layout, runtime: RuntimeConfig) -> dict[str, Any]:
    from unigrec.atomic import stage_outputs, write_json
    from unigrec.ids.build import build_identifiers
    from unigrec.ids.persist import write_all
    from unigrec.ids.plots import plot_code_usage
    from unigrec.threads import torch_threads

    items = _read(layout.items, "ingest")
    events = _read(layout.events, "split")
    with torch_threads(runtime.torch_threads.identifiers):
        built = build_identifiers(
            items, events, cfg, runtime.batch_sizes, cache_dir=layout.resolve(runtime.cache_dir)
        )

    files = [layout.identifiers_metrics, layout.identifiers_plot]
    with stage_outputs(layout.root, "identifiers", dirs=[layout.ids_dir], files=files) as out:
        write_all(out[layout.ids_dir], built.item_ids, built.ids, built.layout, built.model, built.text_map,
                  built.semantic_vectors, built.collaborative_vectors)
        write_json(out[layout.identifiers_metrics], built.metrics)
        plot_code_usage(built.usage, out[layout.identifiers_plot],
                        f"items per code, {cfg.mode} IDs, {len(built.item_ids)} items")

    sem, col = built.metrics["semantic_id"], built.metrics["collaborative_id"]
    return {
        "items": len(built.item_ids),
        "mode": cfg.mode,
        "semantic_collisions_before": sem["collision_rate_before"],
        "collaborative_collisions_before": col["collision_rate_before"],
        "semantic_collisions_final": sem["collision_rate_final"],
        "collaborative_collisions_final": col["collision_rate_final"],
        "ids": str(layout.ids_table),
    }
