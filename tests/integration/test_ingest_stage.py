"""The ingest stage end to end on real MovieLens 100K (a user subset) into a temporary project."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from support import FIXTURES, SHARED_DATA
from support.queries import query_config
from support.runtime import runtime_config

from unigrec.config import IngestConfig, ParquetSourceConfig
from unigrec.data.schema import TABLES
from unigrec.errors import SourceError
from unigrec.paths import Layout
from unigrec.stages import ingest

SHARED_ML100K = SHARED_DATA / "ml-100k"


def _cfg(path: Path, max_users: int | None) -> IngestConfig:
    return IngestConfig(
        source="movielens-100k",
        path=str(path),
        label_threshold=4.0,
        max_users=max_users,
        queries=query_config(search_fraction=0.25, include_decade=True, seed=13),
        parquet=ParquetSourceConfig(items=None, interactions=None, searches=None, columns={}),
    )


@pytest.mark.skipif(not SHARED_ML100K.is_dir(), reason="shared ml-100k data absent")
def test_ingest_writes_tables_and_card(tmp_path):
    layout = Layout(tmp_path)
    summary = ingest.run(_cfg(SHARED_ML100K, max_users=50), layout, runtime_config())

    frames = {name: pd.read_parquet(getattr(layout, name)) for name in TABLES}
    for name, frame in frames.items():
        assert list(frame.columns) == list(TABLES[name]), name
    items, inter, searches = frames["items"], frames["interactions"], frames["searches"]
    users = set(inter.user_id) | set(searches.user_id)
    assert users == {str(u) for u in range(1, 51)}  # the first 50 ids, numerically
    assert len(items) == 1682  # items kept whole
    assert set(searches.item_id) <= set(items.item_id) and (searches["query"].str.len() > 0).all()
    assert not set(zip(inter.user_id, inter.item_id, inter.timestamp)) & set(
        zip(searches.user_id, searches.item_id, searches.timestamp)
    )

    card = json.loads(layout.data_card_json.read_text())
    stats = card["stats"]
    assert stats["users"] == 50 and stats["items"] == 1682
    assert stats["interactions"] == len(inter) and stats["searches"] == len(searches)
    assert stats["positives"] == int(inter.label.sum())
    assert stats["unique_queries"] == searches["query"].nunique()
    per_user = pd.concat([inter.user_id, searches.user_id]).value_counts()
    assert stats["events_per_user"] == {"min": int(per_user.min()), "median": float(per_user.median()),
                                        "max": int(per_user.max())}
    assert stats["time_range"]["first"] < stats["time_range"]["last"]
    assert card["files"][0]["name"] == "ml-100k.inter" and len(card["files"][0]["sha256"]) == 64
    assert "Harper" in card["licence"] and "redistributed" in card["licence"]
    assert "Semi-synthetic" in card["rules"]["queries"] and "stable sort" in card["rules"]["tie_break"]
    assert card["subset"].startswith("first 50 users")
    md = layout.data_card_md.read_text()
    assert "# Data card: movielens-100k" in md and f"| searches | {len(searches)} |" in md
    assert summary["users"] == 50 and summary["searches"] == len(searches)


def test_failed_ingest_keeps_previous_outputs(tmp_path):
    layout = Layout(tmp_path)
    ingest.run(_cfg(FIXTURES / "ml-100k-grouplens", max_users=None), layout, runtime_config())
    before = layout.interactions.read_bytes()
    with pytest.raises(SourceError):
        ingest.run(_cfg(tmp_path / "missing", max_users=None), layout, runtime_config())
    assert layout.interactions.read_bytes() == before and layout.data_card_json.is_file()


def test_relative_paths_are_resolved_against_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(FIXTURES)  # somewhere else entirely
    (tmp_path / "src").symlink_to(FIXTURES / "ml-100k-recbole")
    layout = Layout(tmp_path)
    summary = ingest.run(_cfg(Path("src"), max_users=None), layout, runtime_config())
    assert summary["interactions"] + summary["searches"] == 12
    assert not (FIXTURES / "data").exists()
