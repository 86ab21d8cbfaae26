"""`benchmarks/prepare_root.py` turns a block's overrides into the root it names: a DVC project whose
params carry the overrides and whose data stages ran; a typo in an override stops it and leaves no half-made root."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks import prepare_root
from unigrec.paths import Layout

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ml-100k-grouplens"


def test_the_root_holds_the_overrides_and_the_stages_up_to_until(tmp_path):
    dest = tmp_path / "root"
    argv = [str(dest), "--data-path", str(FIXTURE), "--set", "ingest.queries.search_fraction=0.5",
            "--until", "ingest"]
    assert prepare_root.main(argv) == 0
    params = yaml.safe_load((dest / "params.yaml").read_text())
    assert params["ingest"]["path"] == str(FIXTURE) and params["ingest"]["queries"]["search_fraction"] == 0.5
    assert Layout(dest).interactions.is_file()  # ingest ran, through DVC:
    assert "ingest:" in (dest / "dvc.lock").read_text() and "validate:" not in (dest / "dvc.lock").read_text()
    assert not (dest / ".cache").is_symlink()  # training there never writes into this checkout


def test_a_misspelt_override_stops_and_leaves_no_root(tmp_path):
    dest = tmp_path / "root"
    with pytest.raises(SystemExit, match="Could not override 'ingest.queries.search_fractoin'"):
        prepare_root.main([str(dest), "--set", "ingest.queries.search_fractoin=0.01"])
    assert not dest.exists()  # the half-made copy is gone: the corrected command can be rerun as is


def test_an_override_that_would_add_a_knob_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="existing params only"):
        prepare_root.main([str(tmp_path / "root"), "--set", "+ingest.new_knob=1"])
    assert not (tmp_path / "root").exists()


def test_a_misspelt_experiment_stops_naming_the_known_ones(tmp_path):
    with pytest.raises(SystemExit, match=r"no experiment 'ml1n'.*known: .*ml1m"):
        prepare_root.main([str(tmp_path / "root"), "--experiment", "ml1n"])
    assert not (tmp_path / "root").exists()


def test_an_existing_root_is_never_overwritten(tmp_path):
    (tmp_path / "root").mkdir()
    with pytest.raises(SystemExit, match="exists"):
        prepare_root.main([str(tmp_path / "root")])
