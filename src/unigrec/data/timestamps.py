"""The canonical time unit, Unix seconds, checked where data enters (issue 40, defect 3).

A table written with milliseconds (or micro-, nanoseconds) since 1970 looks like seconds tens of thousands
of years ahead. Unchecked, the first thing to read it as seconds crashed (the data card's dates: "year
52671 is out of range") before the contract could say what was wrong. The unit is recognised by
magnitude and the error names it, with table, column, rule and example rows, as a contract failure does.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from unigrec.errors import ContractViolation

# Seconds beyond this are after the year 5138: no event log holds them, while any millisecond (or finer)
# stamp after 1973-03-03 exceeds it. Each finer unit is 1000x the previous, so the magnitude names it.
SECONDS_CEILING = 10**11
UNITS: tuple[tuple[str, str, int], ...] = (
    ("s", "seconds", 1),
    ("ms", "milliseconds", 10**3),
    ("us", "microseconds", 10**6),
    ("ns", "nanoseconds", 10**9),
)
RULE = "timestamp_unit"
EXAMPLE_ROWS = 3  # rows quoted in the message: a hint to find them, the contract report lists more


def unit_of(value: float) -> tuple[str, str, int]:
    """(symbol, name, per-second factor) of the coarsest unit in which ``value`` is a plausible stamp."""
    for unit in UNITS:
        if abs(value) / unit[2] < SECONDS_CEILING:
            return unit
    return UNITS[-1]


def _as_date(value: float, factor: int) -> str:
    try:
        return dt.datetime.fromtimestamp(float(value) / factor, tz=dt.UTC).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return "out of any calendar"


def require_unix_seconds(frame: pd.DataFrame, table: str, where: str, column: str = "timestamp") -> None:
    """Raise :class:`ContractViolation` when ``frame[column]`` holds stamps in a finer unit than seconds.

    ``where`` names the data for the user (a file, or "canonical tables"). Non-numeric columns are left
    to the schema checks, which name their type.
    """
    if column not in frame.columns or not pd.api.types.is_numeric_dtype(frame[column]):
        return
    stamps = pd.to_numeric(frame[column], errors="coerce")
    bad = stamps.abs() >= SECONDS_CEILING
    if not bad.any():
        return
    symbol, name, factor = unit_of(float(np.median(stamps[bad].to_numpy(dtype=float))))
    shown = frame.loc[bad].head(EXAMPLE_ROWS)
    examples = "; ".join(
        "{"
        + ", ".join(f'"{key}": {_plain(value)}' for key, value in {"row": label, **row.to_dict()}.items())
        + f"}} (= {_as_date(row[column], factor)} in {symbol})"
        for label, row in shown.iterrows()
    )
    raise ContractViolation(
        f"{where}: {table}.{column}: {RULE} ({int(bad.sum())} of {len(frame)} row(s)) - values look like "
        f"{name} since 1970; canonical timestamps are Unix seconds (the contract keeps 1990-01-01 to one day "
        f"after the run); store the column as a parquet timestamp type, which ingest converts, or as "
        f"integer seconds (e.g. stamps // {factor}); examples: {examples}"
    )


def _plain(value: object) -> str:
    if hasattr(value, "item"):
        value = value.item()  # numpy scalar -> Python, so 1700000000000 prints without a dtype
    return f'"{value}"' if isinstance(value, str) else str(value)
