"""Row-level contracts of the canonical tables (pandera): columns, types, nullability, uniqueness, ranges.

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


def _not_blank(series: pd.Series) -> pd.Series:
    # An empty or whitespace-only text gives the text encoder nothing to embed and a query nothing to
    # match; ids made of blanks are almost always a broken join upstream.
    return series.str.strip().str.len() > 0


class Items(_CanonicalTable):
    item_id: Series[str] = pa.Field(nullable=False, unique=True)
    title: Series[str] = pa.Field(nullable=True)
    text: Series[str] = pa.Field(nullable=False)
    category: Series[str] = pa.Field(nullable=True)

    @pa.check("item_id", "text", name="not_blank")
    def not_blank(cls, series: Series[str]) -> Series[bool]:
        return _not_blank(series)


class Interactions(_CanonicalTable):
    user_id: Series[str] = pa.Field(nullable=False)
    item_id: Series[str] = pa.Field(nullable=False)
    timestamp: Series[np.int64] = pa.Field(nullable=False, ge=0)  # Unix seconds
    rating: Series[np.float64] = pa.Field(nullable=True)  # optional: NaN when the source has none
    label: Series[np.int8] = pa.Field(nullable=False, isin=[0, 1])

    @pa.check("user_id", "item_id", name="not_blank")
    def not_blank(cls, series: Series[str]) -> Series[bool]:
        return _not_blank(series)


class Searches(_CanonicalTable):
    user_id: Series[str] = pa.Field(nullable=False)
    query: Series[str] = pa.Field(nullable=False)
    item_id: Series[str] = pa.Field(nullable=False)
    timestamp: Series[np.int64] = pa.Field(nullable=False, ge=0)

    @pa.check("user_id", "query", "item_id", name="not_blank")
    def not_blank(cls, series: Series[str]) -> Series[bool]:
        return _not_blank(series)


# Table name (= parquet file stem) -> its contract. The runner validates exactly these tables.
MODELS: dict[str, type[pa.DataFrameModel]] = {
    "items": Items,
    "interactions": Interactions,
    "searches": Searches,
}
