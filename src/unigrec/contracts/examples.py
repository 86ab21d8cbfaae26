"""Turn offending rows into small JSON-safe dicts, so every report shows the data that broke a rule."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd


def plain_value(value: Any) -> Any:
    """A JSON-safe stand-in for one cell: missing -> None, numpy scalar -> Python, bytes -> repr."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bytes):
        # repr keeps undecodable bytes visible (b'\xff') instead of mangling them.
        return repr(value)
    if hasattr(value, "item") and not isinstance(value, (str, list, dict)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def example_rows(
    frame: pd.DataFrame,
    labels: Iterable[Any],
    max_examples: int,
    columns: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Up to ``max_examples`` rows of ``frame`` by index label, each as ``{"row": label, column: value}``.

    Labels not in the frame (a check that reports a position the frame does not have) are skipped
    rather than raising: an example is a hint, never a reason for validation itself to crash.
    """
    wanted = list(columns) if columns is not None else list(frame.columns)
    rows: list[dict[str, Any]] = []
    for label in labels:
        if len(rows) >= max_examples:
            break
        if label not in frame.index:
            continue
        record = frame.loc[label, wanted]
        rows.append({"row": plain_value(label), **{col: plain_value(record[col]) for col in wanted}})
    return rows
