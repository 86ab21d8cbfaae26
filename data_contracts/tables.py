"""Row-level contracts of the canonical tables (pandera): columns, types, nullability, uniqueness, ranges,
identifier hygiene and exact duplicate rows.

The validate stage loads this file by path (``validate.contracts_dir`` in params.yaml), so a contract
can be tightened here without touching the unigrec package, and DVC re-runs validation when it changes.
Statistical rules (null rates, time window, label rate, lengths) live in the Great Expectations suites
next to this file (``<table>.json``); cross-table rules in ``relations.json``.

Types match ``unigrec.data.schema`` exactly and are never coerced: a column of the wrong type is a
contract failure named ``dtype(...)``, not something silently repaired.
"""

# No ``from __future__ import annotations`` here: pandera reads the Series[...] annotations at runtime.

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class _CanonicalTable(pa.DataFrameModel):
    """Settings shared by every canonical table."""

    class Config:
        strict = True  # an unexpected column means an adapter or a user mapping is wrong
        coerce = False  # report a wrong type instead of casting it away


# Spellings of "no value" that a CSV export, str(NaN) or a database NULL leave in a text column, compared
# case-insensitively after stripping blanks. An identifier spelled like this joins every such row into one
# fake user or item; a text or query spelled like this describes nothing.
MISSING_VALUE_SPELLINGS = frozenset({"nan", "none", "null", "na", "n/a", "<na>", "nat", "undefined"})


def _not_blank(series: pd.Series) -> pd.Series:
    # An empty or whitespace-only text gives the text encoder nothing to embed and a query nothing to
    # match; ids made of blanks are almost always a broken join upstream.
    return series.str.strip().str.len() > 0


def _not_a_missing_value(series: pd.Series) -> pd.Series:
    return ~series.str.strip().str.lower().isin(MISSING_VALUE_SPELLINGS)


def _no_surrounding_blanks(series: pd.Series) -> pd.Series:
    # " 42" and "42" are different users to every join: padding is a parsing slip upstream, never meant.
    return series == series.str.strip()


def _no_duplicate_rows(frame: pd.DataFrame) -> pd.Series:
    # The same event twice (every column equal) counts twice in training and evaluation: a re-delivered
    # export or a join that fanned out. The first copy passes; each later copy is reported.
    return ~frame.duplicated(keep="first")


class Items(_CanonicalTable):
    item_id: Series[str] = pa.Field(nullable=False, unique=True)
    title: Series[str] = pa.Field(nullable=True)
    text: Series[str] = pa.Field(nullable=False)
    category: Series[str] = pa.Field(nullable=True)

    @pa.check("item_id", "text", name="not_blank")
    def not_blank(cls, series: Series[str]) -> Series[bool]:
        return _not_blank(series)

    @pa.check("item_id", "text", name="not_a_missing_value")
    def not_a_missing_value(cls, series: Series[str]) -> Series[bool]:
        return _not_a_missing_value(series)

    @pa.check("item_id", name="no_surrounding_blanks")
    def no_surrounding_blanks(cls, series: Series[str]) -> Series[bool]:
        return _no_surrounding_blanks(series)


class Interactions(_CanonicalTable):
    user_id: Series[str] = pa.Field(nullable=False)
    item_id: Series[str] = pa.Field(nullable=False)
    timestamp: Series[np.int64] = pa.Field(nullable=False, ge=0)  # Unix seconds
    rating: Series[np.float64] = pa.Field(nullable=True)  # optional: NaN when the source has none
    label: Series[np.int8] = pa.Field(nullable=False, isin=[0, 1])

    @pa.check("user_id", "item_id", name="not_blank")
    def not_blank(cls, series: Series[str]) -> Series[bool]:
        return _not_blank(series)

    @pa.check("user_id", "item_id", name="not_a_missing_value")
    def not_a_missing_value(cls, series: Series[str]) -> Series[bool]:
        return _not_a_missing_value(series)

    @pa.check("user_id", "item_id", name="no_surrounding_blanks")
    def no_surrounding_blanks(cls, series: Series[str]) -> Series[bool]:
        return _no_surrounding_blanks(series)

    @pa.dataframe_check(name="no_duplicate_rows")
    def no_duplicate_rows(cls, frame: pd.DataFrame) -> Series[bool]:
        return _no_duplicate_rows(frame)


class Searches(_CanonicalTable):
    user_id: Series[str] = pa.Field(nullable=False)
    query: Series[str] = pa.Field(nullable=False)
    item_id: Series[str] = pa.Field(nullable=False)
    timestamp: Series[np.int64] = pa.Field(nullable=False, ge=0)

    @pa.check("user_id", "query", "item_id", name="not_blank")
    def not_blank(cls, series: Series[str]) -> Series[bool]:
        return _not_blank(series)

    @pa.check("user_id", "query", "item_id", name="not_a_missing_value")
    def not_a_missing_value(cls, series: Series[str]) -> Series[bool]:
        return _not_a_missing_value(series)

    @pa.check("user_id", "item_id", name="no_surrounding_blanks")
    def no_surrounding_blanks(cls, series: Series[str]) -> Series[bool]:
        return _no_surrounding_blanks(series)

    @pa.dataframe_check(name="no_duplicate_rows")
    def no_duplicate_rows(cls, frame: pd.DataFrame) -> Series[bool]:
        return _no_duplicate_rows(frame)


# Table name (= parquet file stem) -> its contract. The runner validates exactly these tables.
MODELS: dict[str, type[pa.DataFrameModel]] = {
    "items": Items,
    "interactions": Interactions,
    "searches": Searches,
}
