"""User-supplied canonical tables in parquet, with their own column names mapped to ours."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from unigrec.config import IngestConfig
from unigrec.data.schema import TABLES
from unigrec.data.sources.tables import SourceTables, label_rule_text, labels_from_ratings, record_file
from unigrec.data.timestamps import require_unix_seconds
from unigrec.errors import SourceError

log = logging.getLogger(__name__)

# Columns a user's table may lack; they are filled with nulls (label is derived, see below).
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {"items": ("category",), "interactions": ("rating",),
                                                "searches": ()}
LICENCE = "Supplied by the user: its terms of use are the user's to state and respect."


def read_mapped_parquet(path: str, table: str, columns: dict[str, str]) -> pd.DataFrame:
    """Read one table and rename the user's columns to canonical names (``columns``: canonical -> user's).

    Unmapped canonical names are looked up as-is. Extra columns are dropped later by ``conform``.
    """
    file = Path(path)
    try:
        frame = pd.read_parquet(file)
    except FileNotFoundError:
        raise SourceError(f"{file}: file not found (expected the {table} table as parquet)") from None
    except Exception as exc:  # pyarrow raises a zoo of types for corrupt or non-parquet files
        raise SourceError(f"{file}: cannot read the {table} table as parquet: {exc}") from exc
    renames = {user: canonical for canonical, user in columns.items() if user in frame.columns}
    frame = frame.rename(columns=renames)
    for optional in OPTIONAL_COLUMNS[table]:
        if optional not in frame.columns:
            frame[optional] = None
    needed = [c for c in TABLES[table] if not (table == "interactions" and c == "label")]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        hint = {c: columns.get(c, c) for c in missing}
        raise SourceError(f"{file}: {table} table has no column(s) {hint} (canonical name: column looked for); "
                          f"found {list(frame.columns)}; map them in ingest.parquet.columns")
    return frame


def _timestamps_in_seconds(frame: pd.DataFrame, path: str, table: str) -> pd.DataFrame:
    """Datetime columns become Unix seconds, the canonical unit; numbers must already be seconds.

    Integers in milliseconds (or finer) are refused here, naming the unit, rather than carried on as
    seconds in the year 50000 (see :mod:`unigrec.data.timestamps`).
    """
    if pd.api.types.is_datetime64_any_dtype(frame["timestamp"]):
        stamps = frame["timestamp"]
        if stamps.dt.tz is None:
            stamps = stamps.dt.tz_localize("UTC")
        frame = frame.assign(timestamp=(stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1))
    require_unix_seconds(frame, table, path)
    return frame


def load_parquet(cfg: IngestConfig, cache_dir: Path) -> SourceTables:
    """Items and interactions are required; searches are optional (then built semi-synthetically).

    ``label`` may be given; if it is absent it is derived from ``rating`` with the label threshold.
    """
    spec = cfg.parquet
    if spec.items is None or spec.interactions is None:
        table = "items" if spec.items is None else "interactions"
        raise SourceError(f"source 'parquet' needs ingest.parquet.{table}: the path of the {table} table")
    items = read_mapped_parquet(spec.items, "items", spec.columns)
    interactions = _timestamps_in_seconds(
        read_mapped_parquet(spec.interactions, "interactions", spec.columns), spec.interactions, "interactions"
    )
    if "label" in interactions.columns:
        label_rule = "label supplied by the user's interactions table"
    elif interactions["rating"].notna().all():
        interactions["label"] = labels_from_ratings(interactions["rating"], cfg.label_threshold)
        label_rule = label_rule_text(cfg.label_threshold)
    else:
        raise SourceError(f"{spec.interactions}: no label column and not every row has a rating to derive it "
                          f"from; map one in ingest.parquet.columns")
    searches = None
    paths = [Path(spec.items), Path(spec.interactions)]
    if spec.searches is not None:
        searches = _timestamps_in_seconds(
            read_mapped_parquet(spec.searches, "searches", spec.columns), spec.searches, "searches"
        )
        paths.append(Path(spec.searches))
    log.info("parquet: %d items, %d interactions, %s searches", len(items), len(interactions),
             "no" if searches is None else len(searches))
    return SourceTables(
        items=items,
        interactions=interactions,
        searches=searches,
        source=cfg.source,
        origin="user-supplied parquet tables: " + ", ".join(str(p) for p in paths),
        licence=LICENCE,
        files=tuple(record_file(p, p.name) for p in paths),
        label_rule=label_rule,
        query_rule="queries supplied by the user's searches table" if searches is not None else None,
    )
