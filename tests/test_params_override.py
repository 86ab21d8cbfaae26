"""The benchmark scripts' ``--set`` overrides go through DVC's writer: a comment in params.yaml survives,
``ingest.path`` is taken relative to where the command was typed, and a key params.yaml lacks stops the
run instead of adding a knob no stage reads (which would silently benchmark the defaults)."""

from __future__ import annotations

import pytest
import yaml

from benchmarks.params_override import write_param_overrides

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


def test_overrides_are_written_and_comments_kept(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    written = write_param_overrides(root, ["ingest.queries.search_fraction=0.01", "ingest.path=data/ml-1m"])
    assert written == ["ingest.queries.search_fraction=0.01", f"ingest.path={tmp_path / 'data' / 'ml-1m'}"]
    text = (root / "params.yaml").read_text()
    assert "# where the raw files are" in text
    params = yaml.safe_load(text)
    assert params["ingest"]["queries"]["search_fraction"] == 0.01
    assert params["ingest"]["path"] == str(tmp_path / "data" / "ml-1m")


@pytest.mark.parametrize("override, message", [
    ("ingest.queries.search_fractoin=0.01", "Could not override 'ingest.queries.search_fractoin'"),
    ("+ingest.new_knob=1", "existing params only"),
    ("~ingest.path", "existing params only"),
])
def test_an_override_that_is_not_an_existing_knob_stops_and_changes_nothing(root, override, message):
    with pytest.raises(SystemExit, match=message):
        write_param_overrides(root, [override])
    assert (root / "params.yaml").read_text() == PARAMS
