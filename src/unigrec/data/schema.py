"""The three canonical tables every source adapter produces (docs/design.md §2) and their column types.

Adapters return frames with exactly these columns; ``conform`` puts columns in order and casts
them, so the rest of the pipeline can rely on one shape whatever the source.
"""

from __future__ import annotations

import pandas as pd

ITEMS_COLUMNS: dict[str, str] = {
    "item_id": "string",
    "title": "string",
    "text": "string",  # title + genres / description / category path: what the text encoder reads
    "category": "string",  # optional; genres or category path joined by " > " or "|"
}
INTERACTIONS_COLUMNS: dict[str, str] = {
    "user_id": "string",
    "item_id": "string",
    "timestamp": "int64",  # Unix seconds
    "rating": "float64",  # optional (NaN when the source has none)
    "label": "int8",  # 1 = liked / bought / clicked, 0 = exposed but negative
}
SEARCHES_COLUMNS: dict[str, str] = {
    "user_id": "string",
    "query": "string",
    "item_id": "string",  # the item engaged after the query
    "timestamp": "int64",
}
TABLES: dict[str, dict[str, str]] = {
    "items": ITEMS_COLUMNS,
    "interactions": INTERACTIONS_COLUMNS,
    "searches": SEARCHES_COLUMNS,
}


def conform(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Select the canonical columns of ``table`` in order and cast them to their canonical dtypes."""
    columns = TABLES[table]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"{table}: adapter produced no column(s) {missing}")
    out = frame.loc[:, list(columns)].copy()
    for col, dtype in columns.items():
        out[col] = out[col].astype(dtype)
    return out.reset_index(drop=True)
