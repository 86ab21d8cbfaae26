"""Timestamps in a finer unit than seconds are named, never read as dates in the year 50000 (issue 40,
defect 3: a parquet drop in milliseconds crashed the data card with "year 52671 is out of range")."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from support.queries import query_config
from support.runtime import runtime_config

from unigrec.config import IngestConfig, ParquetSourceConfig
from unigrec.data.card import measure_tables
from unigrec.data.timestamps import SECONDS_CEILING, unit_of
from unigrec.errors import ContractViolation, UnigrecError
from unigrec.paths import Layout
from unigrec.stages import ingest

SECONDS = [1_700_000_000, 1_700_000_100, 1_700_000_200]  # 2023-11-14


def _project(tmp_path: Path, stamps: list, searches: list | None = None) -> tuple[IngestConfig, Layout]:
    pd.DataFrame({"item_id": ["a", "b"], "title": ["A", "B"], "text": ["x", "y"]}).to_parquet(tmp_path / "items.parquet")
    pd.DataFrame(
        {"user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "a"], "when": stamps, "rating": [5.0, 3.0, 4.0]}
    ).to_parquet(tmp_path / "inter.parquet")
    if searches is not None:
        pd.DataFrame(
            {"user_id": ["u1"], "item_id": ["b"], "when": searches, "query": ["b things"]}
        ).to_parquet(tmp_path / "searches.parquet")
    cfg = IngestConfig(
        source="parquet",
        path=None,
        label_threshold=4.0,
        max_users=None,
        queries=query_config(search_fraction=0.5, include_decade=False, seed=1),
        parquet=ParquetSourceConfig(
            items="items.parquet",
            interactions="inter.parquet",
            searches="searches.parquet" if searches is not None else None,
            columns={"timestamp": "when"},
        ),
    )
    return cfg, Layout(tmp_path)


@pytest.mark.parametrize(("unit", "factor"), [("milliseconds", 10**3), ("microseconds", 10**6), ("nanoseconds", 10**9)])
def test_ingest_names_a_finer_unit_with_table_column_rule_and_rows(tmp_path, unit, factor):
    cfg, layout = _project(tmp_path, [s * factor for s in SECONDS])
    with pytest.raises(ContractViolation) as caught:
        ingest.run(cfg, layout, runtime_config())
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'inter.parquet'}: interactions.timestamp: timestamp_unit (3 of 3 row(s))")
    assert f"values look like {unit} since 1970" in message and "Unix seconds" in message
    assert f'"row": 0, "user_id": "u1", "item_id": "a", "timestamp": {SECONDS[0] * factor}' in message
    assert "(= 2023-11-14 in " in message and f"stamps // {factor}" in message
    assert not layout.canonical_dir.exists()  # nothing half-written


def test_searches_table_in_milliseconds_is_named_too(tmp_path):
    cfg, layout = _project(tmp_path, SECONDS, searches=[SECONDS[0] * 1000])
    with pytest.raises(ContractViolation, match=r"searches\.parquet: searches\.timestamp: timestamp_unit \(1 of 1"):
        ingest.run(cfg, layout, runtime_config())


def test_seconds_and_datetime_columns_still_ingest(tmp_path):
    cfg, layout = _project(tmp_path, SECONDS)
    assert ingest.run(cfg, layout, runtime_config())["interactions"] == 3
    assert pd.read_parquet(layout.interactions)["timestamp"].tolist() == SECONDS
    # a datetime column (any resolution) is converted, not refused
    stamps = pd.to_datetime([s * 1000 for s in SECONDS], unit="ms").astype("datetime64[ms]")
    cfg, layout = _project(tmp_path, list(stamps))
    ingest.run(cfg, layout, runtime_config())
    assert pd.read_parquet(layout.interactions)["timestamp"].tolist() == SECONDS


def test_card_names_the_unit_for_any_source():
    """Whatever made the canonical tables, the card refuses to turn milliseconds into dates."""
    items = pd.DataFrame({"item_id": ["a"]})
    inter = pd.DataFrame({"user_id": ["u"], "item_id": ["a"], "timestamp": [SECONDS[0] * 1000], "label": [1]})
    searches = pd.DataFrame({"user_id": [], "item_id": [], "timestamp": [], "query": []})
    with pytest.raises(UnigrecError, match=r"canonical tables: interactions\.timestamp: .* milliseconds"):
        measure_tables(items, inter, searches)
    ok = pd.DataFrame({"user_id": ["u"], "item_id": ["a"], "timestamp": [SECONDS[0]], "label": [1]})
    assert measure_tables(items, ok, searches)["time_range"]["first"] == "2023-11-14"


def test_unit_boundaries():
    assert unit_of(SECONDS_CEILING - 1)[0] == "s"
    assert unit_of(SECONDS_CEILING)[0] == "ms"
    assert unit_of(-SECONDS_CEILING * 1000)[0] == "us"
    assert unit_of(SECONDS[0] * 10**9)[0] == "ns"
    assert unit_of(10**30)[0] == "ns"  # nothing finer is named
