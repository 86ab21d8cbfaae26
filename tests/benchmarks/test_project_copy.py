"""Benchmarks change a project copy's params the product's way: ``--experiment`` overlays, ``--data-path`` and
``--set`` as ``unigrec run`` takes them, written by DVC's writer (a comment in params.yaml survives), paths
resolved where the command was typed, and a key params.yaml lacks stops the run instead of adding a knob no
stage reads (which would silently benchmark the defaults)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from benchmarks.project_copy import add_override_args, configure, write_overrides

ROOT = Path(__file__).resolve().parents[2]
PARAMS = """\
ingest:
  # where the raw files are; null means the embedded default
  path: null
  queries:
    search_fraction: 0.25
"""


@pytest.fixture
def root(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "params.yaml").write_text(PARAMS)
    return tmp_path / "root"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_override_args(parser)
    return parser.parse_args(argv)


def test_overrides_are_written_and_comments_kept(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    written = configure(root, _args("--set", "ingest.queries.search_fraction=0.01", "--data-path", "data/ml-1m"))
    assert written == [f"ingest.path='{tmp_path / 'data' / 'ml-1m'}'", "ingest.queries.search_fraction=0.01"]
    text = (root / "params.yaml").read_text()
    assert "# where the raw files are" in text
    params = yaml.safe_load(text)
    assert params["ingest"]["queries"]["search_fraction"] == 0.01
    assert params["ingest"]["path"] == str(tmp_path / "data" / "ml-1m")


def test_an_overlay_then_set_as_unigrec_run_applies_them(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    written = configure(tmp_path, _args("--experiment", "ml1m-1pct-searches", "--set", "ingest.queries.search_fraction=0.02"))
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert params["ingest"]["source"] == "movielens-1m" and params["ingest"]["queries"]["search_fraction"] == 0.02
    assert written[-1] == "ingest.queries.search_fraction=0.02"


@pytest.mark.parametrize("override, message", [
    ("ingest.queries.search_fractoin=0.01", "Could not override 'ingest.queries.search_fractoin'"),
    ("+ingest.new_knob=1", "existing params only"),
    ("~ingest.path", "existing params only"),
])
def test_an_override_that_is_not_an_existing_knob_stops_and_changes_nothing(root, override, message):
    with pytest.raises(SystemExit, match=message):
        write_overrides(root, [override])
    assert (root / "params.yaml").read_text() == PARAMS
