"""Property: an atomic output holds all of the old content or all of the new after a kill at any point.

A kill is simulated by an exception raised at a random point of the write: inside the ``with`` block after
some of the new bytes or files are written, inside ``json.dump`` after any number of its writes, or at a
step of the swap itself. The target must then hold exactly the old content (or still not exist) or exactly
the new, and an exception inside the block must leave no temporary sibling behind (the module cleans up
there; after a real SIGKILL a hidden ``.<name>.*`` sibling may stay, which no reader looks at).

Two places where the invariant did not hold were pinned as strict xfails until issue 40 closed them: the
instant between ``atomic_dir``'s two renames, and a stage whose outputs were swapped one by one.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import unigrec.atomic
from unigrec.atomic import atomic_dir, atomic_file, write_json


class SimulatedKill(Exception):
    """Raised where the process would have died."""


TEXTS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
TREES = st.dictionaries(st.sampled_from(["a.txt", "b.parquet", "card.json", "z.md"]), TEXTS, max_size=4)
PAYLOADS = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=False, allow_infinity=False),
              TEXTS),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXTS, inner, max_size=3)),
    max_leaves=8,
)


def _tree(folder: Path) -> dict[str, str] | None:
    if not folder.exists():
        return None
    return {p.name: p.read_bytes().decode("utf-8") for p in folder.iterdir()}


def _write_tree(folder: Path, tree: dict[str, str]) -> None:
    for name, text in tree.items():
        (folder / name).write_bytes(text.encode("utf-8"))


def _siblings(parent: Path, target: Path) -> list[str]:
    """Everything in ``parent`` besides the target itself: temporary leftovers."""
    return sorted(p.name for p in parent.iterdir() if p != target)


# ------------------------------------------------------------------------------------------ atomic_file
@settings(max_examples=100, deadline=None)
@given(old=st.one_of(st.none(), TEXTS), new=TEXTS, data=st.data())
def test_atomic_file_holds_the_old_or_the_new_text_whatever_the_kill_point(old, new, data):
    kill_at = data.draw(st.one_of(st.none(), st.integers(0, len(new)), st.just("swap")), label="kill at")
    chunk = data.draw(st.integers(1, 8), label="chunk")
    written = new[:kill_at] if isinstance(kill_at, int) else new
    dying_swap = mock.patch.object(unigrec.atomic.os, "replace", side_effect=SimulatedKill)
    with tempfile.TemporaryDirectory() as parent:
        target = Path(parent) / "out.md"
        if old is not None:
            target.write_bytes(old.encode("utf-8"))
        try:
            with dying_swap if kill_at == "swap" else contextlib.nullcontext(), atomic_file(target) as fh:
                for start in range(0, len(written), chunk):
                    fh.write(written[start : start + chunk])
                if isinstance(kill_at, int):
                    raise SimulatedKill
            killed = False
        except SimulatedKill:
            killed = True
        assert killed == (kill_at is not None)
        now = target.read_bytes().decode("utf-8") if target.exists() else None
        assert now == (old if killed else new)
        assert _siblings(Path(parent), target) == []


@settings(max_examples=100, deadline=None)
@given(old=st.one_of(st.none(), PAYLOADS), new=PAYLOADS, kill_after=st.one_of(st.none(), st.integers(0, 30)))
def test_write_json_holds_the_old_or_the_new_document_whatever_the_kill_point(old, new, kill_after):
    real_open = open

    def open_dying_after_writes(*args, **kwargs):
        fh = real_open(*args, **kwargs)
        calls = {"n": 0}
        write = fh.write

        def dying_write(text):
            if kill_after is not None and calls["n"] >= kill_after:
                raise SimulatedKill
            calls["n"] += 1
            return write(text)

        fh.write = dying_write
        return fh

    with tempfile.TemporaryDirectory() as parent:
        target = Path(parent) / "metrics.json"
        if old is not None:
            write_json(target, old)
        before = target.read_text(encoding="utf-8") if target.exists() else None
        with mock.patch.object(unigrec.atomic, "open", open_dying_after_writes, create=True):
            try:
                write_json(target, new)
                killed = False
            except SimulatedKill:
                killed = True
        now = target.read_text(encoding="utf-8") if target.exists() else None
        if killed:
            assert now == before
        else:
            assert json.loads(now) == new and now.endswith("\n")
        assert _siblings(Path(parent), target) == []


# ------------------------------------------------------------------------------------------ atomic_dir
@settings(max_examples=100, deadline=None)
@given(old=st.one_of(st.none(), TREES), new=TREES, data=st.data())
def test_atomic_dir_holds_the_old_or_the_new_tree_after_a_kill_inside_the_block(old, new, data):
    files = sorted(new.items())
    kill_after = data.draw(st.one_of(st.none(), st.integers(0, len(files))), label="files written before the kill")
    with tempfile.TemporaryDirectory() as parent:
        target = Path(parent) / "out"
        if old is not None:
            target.mkdir()
            _write_tree(target, old)
        try:
            with atomic_dir(target) as tmp:
                for i, (name, text) in enumerate(files):
                    if i == kill_after:
                        (tmp / name).write_bytes(text[: len(text) // 2].encode("utf-8"))  # half of the next file
                        raise SimulatedKill
                    (tmp / name).write_bytes(text.encode("utf-8"))
                if kill_after == len(files):
                    raise SimulatedKill
            killed = False
        except SimulatedKill:
            killed = True
        assert _tree(target) == (old if killed else new)
        assert _siblings(Path(parent), target) == []


class _KillAtSwapStep:
    """Counts the swap's renames of ``atomic_dir`` and raises in place of the ``n``-th (0-based) or, with
    ``after_last``, at the clean-up once every rename is done."""

    def __init__(self, n: int | None, after_last: bool = False) -> None:
        self.n, self.after_last, self.renames = n, after_last, 0
        self.real_rename, self.real_rmtree = Path.rename, unigrec.atomic.shutil.rmtree

    def rename(self, path: Path, dest):
        if self.renames == self.n:
            raise SimulatedKill
        self.renames += 1
        return self.real_rename(path, dest)

    def rmtree(self, path, *args, **kwargs):
        if self.after_last and path.name.endswith(".old") and self.renames:
            raise SimulatedKill
        return self.real_rmtree(path, *args, **kwargs)

    def __enter__(self):
        self._patches = [mock.patch.object(Path, "rename", autospec=True, side_effect=self.rename),
                         mock.patch.object(unigrec.atomic.shutil, "rmtree", side_effect=self.rmtree)]
        for p in self._patches:
            p.start()
        return self

    def __exit__(self, *exc):
        for p in reversed(self._patches):
            p.stop()


def _swap_with_kill(parent: Path, old: dict | None, new: dict, killer: _KillAtSwapStep) -> Path:
    target = parent / "out"
    if old is not None:
        target.mkdir()
        _write_tree(target, old)
    with pytest.raises(SimulatedKill), killer, atomic_dir(target) as tmp:
        _write_tree(tmp, new)
    return target


@settings(max_examples=60, deadline=None)
@given(old=st.one_of(st.none(), TREES), new=TREES, when=st.sampled_from(["before the first rename", "after the swap"]))
def test_atomic_dir_holds_the_old_or_the_new_tree_after_a_kill_in_the_swap(old, new, when):
    with tempfile.TemporaryDirectory() as parent:
        if when == "after the swap" and old is None:
            return  # nothing to clean up: the swap is one rename, no later step to die in
        killer = _KillAtSwapStep(0) if when == "before the first rename" else _KillAtSwapStep(None, after_last=True)
        target = _swap_with_kill(Path(parent), old, new, killer)
        assert _tree(target) == (old if when == "before the first rename" else new)


def test_atomic_dir_holds_the_old_or_the_new_tree_after_a_kill_between_its_two_renames(tmp_path):
    old, new = {"a.txt": "old"}, {"a.txt": "new"}
    target = _swap_with_kill(tmp_path, old, new, _KillAtSwapStep(1))
    assert _tree(target) in (old, new)


def test_a_real_kill_between_atomic_dirs_two_renames_is_undone_by_the_next_write(tmp_path):
    """A SIGKILL runs no except clause: the old tree sits retired and no target exists. The next atomic_dir
    on that target puts the old tree back before anything else, so a failure of that write keeps it."""
    target = tmp_path / "out"
    (tmp_path / ".out.old").mkdir()
    (tmp_path / ".out.old" / "a.txt").write_text("old")
    with pytest.raises(SimulatedKill), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise SimulatedKill
    assert _tree(target) == {"a.txt": "old"} and _siblings(tmp_path, target) == []


# ------------------------------------------------------------------------------------------ a stage's outputs
def _split_project(root: Path, n_users: int) -> None:
    from support.events import interactions_frame, searches_frame

    (root / "data" / "canonical").mkdir(parents=True)
    (root / "reports").mkdir()
    (root / "reports" / "validation.json").write_text(json.dumps({"success": True}))
    items = [f"i{i}" for i in range(12)]
    pd.DataFrame({"item_id": items, "title": items, "text": [f"film {i}" for i in items], "category": "film"}) \
        .to_parquet(root / "data" / "canonical" / "items.parquet", index=False)
    rows = [(f"u{u}", items[(u + t) % 12], t, 4.0, 1) for u in range(n_users) for t in range(4)]
    interactions_frame(rows).to_parquet(root / "data" / "canonical" / "interactions.parquet", index=False)
    searches_frame([(f"u{u}", "film", items[u % 12], 9) for u in range(n_users)]) \
        .to_parquet(root / "data" / "canonical" / "searches.parquet", index=False)


def test_a_killed_split_stage_leaves_all_its_outputs_from_one_run(tmp_path):
    from unigrec.config import BM25Config, SplitConfig
    from unigrec.paths import Layout
    from unigrec.stages import split

    cfg = SplitConfig(protocol="time_consistent", holdout_window=4, min_events=3, n_negatives=3,
                      popularity_smoothing=1.0, cold_items=0.0, seed=0, bm25=BM25Config(1.5, 0.75, 5))
    layout = Layout(tmp_path)
    _split_project(tmp_path, n_users=3)
    split.run(cfg, layout)  # the last good run
    for folder in ("data/canonical", "reports"):  # the inputs change; the last run's outputs stay
        shutil.rmtree(tmp_path / folder)
    _split_project(tmp_path, n_users=5)  # new data; the next run dies after swapping data/split in
    with mock.patch.object(split, "write_json", side_effect=SimulatedKill), pytest.raises(SimulatedKill):
        split.run(cfg, layout)
    events = pd.read_parquet(layout.events)
    metrics = json.loads(layout.split_metrics.read_text(encoding="utf-8"))
    assert metrics["events"] == len(events) and metrics["users"] == events["user_id"].nunique()
