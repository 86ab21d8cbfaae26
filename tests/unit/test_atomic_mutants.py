"""Atomic writes: what tests/unit/test_atomic.py left open, found by mutation testing (tools/mutation.py).

Each test names the mutants it kills (docs/experiments/2026-12-03-mutation-testing.md).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from unigrec.atomic import atomic_dir, atomic_file, write_json


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_write_json_text_is_sorted_two_space_json_with_numpy_and_paths(tmp_path):
    # the exact bytes DVC keeps in git: sorted keys, indent 2, numpy scalars and paths as plain JSON
    target = tmp_path / "metrics.json"
    write_json(target, {"b": np.float32(0.5), "a": Path("x") / "y", "c": {"e": np.int64(3), "d": [1]}})
    assert target.read_text() == (
        '{\n  "a": "x/y",\n  "b": 0.5,\n  "c": {\n    "d": [\n      1\n    ],\n    "e": 3\n  }\n}\n'
    )


def test_write_json_refuses_what_json_cannot_hold_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "m.json"
    write_json(target, {"a": 1})
    with pytest.raises(TypeError, match="^not JSON serialisable: object$"):
        write_json(target, {"a": object()})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_outputs_get_exactly_the_usual_permissions(tmp_path):
    # 0o777 / 0o666 less the umask: no setuid/sticky bits, no execute bit on files
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("x")
    write_json(tmp_path / "m.json", {})
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~_umask()
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o666 & ~_umask()


def test_missing_parent_folders_are_created(tmp_path):
    with atomic_dir(tmp_path / "a" / "b" / "out") as tmp:
        (tmp / "f").write_text("x")
    write_json(tmp_path / "c" / "d" / "m.json", {"k": 1})
    assert (tmp_path / "a" / "b" / "out" / "f").read_text() == "x"
    assert (tmp_path / "c" / "d" / "m.json").exists()


def test_work_in_progress_is_a_hidden_sibling_of_the_target(tmp_path):
    # same folder (so the final rename is atomic, never a cross-device copy) and hidden (no glob sees it)
    with atomic_dir(tmp_path / "out") as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".out.")
    with atomic_file(tmp_path / "m.json") as fh:
        assert Path(fh.name).parent == tmp_path
        assert Path(fh.name).name.startswith(".m.json.")


def test_a_leftover_from_a_crash_mid_swap_is_cleared(tmp_path):
    # a kill between "rename target to .old" and "remove .old" leaves .out.old behind
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "v").write_text("1")
    (tmp_path / ".out.old").mkdir()
    (tmp_path / ".out.old" / "stale").write_text("s")
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "v").write_text("2")
    assert (tmp_path / "out" / "v").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_replaced_output_leaves_nothing_beside_it(tmp_path):
    for version in ("1", "2"):
        with atomic_dir(tmp_path / "out") as tmp:
            (tmp / "v").write_text(version)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_stages_own_error_is_raised_even_if_it_removed_the_temp_folder(tmp_path):
    with pytest.raises(RuntimeError, match="stage failed"), atomic_dir(tmp_path / "out") as tmp:
        shutil.rmtree(tmp)
        raise RuntimeError("stage failed")


def test_binary_mode_writes_bytes(tmp_path):
    target = tmp_path / "model.bin"
    with atomic_file(target, "wb") as fh:
        fh.write(b"\x00\xff")
    assert target.read_bytes() == b"\x00\xff"
