"""Atomic outputs: a failure keeps the previous output; success replaces it whole."""

from __future__ import annotations

import json

import pytest

from unigrec.atomic import atomic_dir, atomic_file, write_json


def test_atomic_dir_keeps_previous_output_on_failure(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("v1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("stage failed")
    assert (target / "a.txt").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp leftovers


def test_atomic_dir_replaces_whole_folder(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "old.txt").write_text("x")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("y")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert target.stat().st_mode & 0o755 == 0o755


def test_atomic_file_and_json(tmp_path):
    target = tmp_path / "m.json"
    write_json(target, {"b": 1, "a": 2})
    assert json.loads(target.read_text()) == {"a": 2, "b": 1}
    assert target.stat().st_mode & 0o644 == 0o644
    with pytest.raises(ValueError), atomic_file(target) as fh:
        fh.write("garbage")
        raise ValueError
    assert json.loads(target.read_text()) == {"a": 2, "b": 1}
