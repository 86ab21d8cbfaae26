"""The two event tables the split stage reads (canonical interactions and searches), from plain row tuples."""

from __future__ import annotations

import pandas as pd


def interactions_frame(rows: list[tuple]) -> pd.DataFrame:
    """``(user_id, item_id, timestamp, rating, label)`` rows, typed as the ingest stage writes them."""
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating", "label"]).astype(
        {"user_id": "string", "item_id": "string", "timestamp": "int64", "rating": "float64", "label": "int8"}
    )


def searches_frame(rows: list[tuple]) -> pd.DataFrame:
    """``(user_id, query, item_id, timestamp)`` rows, typed as the ingest stage writes them."""
    return pd.DataFrame(rows, columns=["user_id", "query", "item_id", "timestamp"]).astype(
        {"user_id": "string", "query": "string", "item_id": "string", "timestamp": "int64"}
    )
