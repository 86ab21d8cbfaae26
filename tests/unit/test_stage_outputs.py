"""A stage's outputs as one transaction (issue 40, defect 9): every output from the last good run or every
one from this run, after a failure in the block, a kill at any step of the swap (finished by the stage's
next start) or a kill that left temporaries behind."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import unigrec.atomic
from unigrec.atomic import journal_file, stage_outputs, write_json


class SimulatedKill(BaseException):
    """Where the process died (a BaseException, like KeyboardInterrupt: nothing may swallow it)."""


def _targets(root: Path) -> tuple[Path, Path, Path]:
    return root / "data" / "split", root / "metrics" / "split.json", root / "plots" / "split.png"


def _write_run(root: Path, version: str, kill: object = None) -> None:
    folder, metrics, plot = _targets(root)
    with stage_outputs(root, "split", dirs=[folder], files=[metrics, plot]) as out:
        (out[folder] / "events.txt").write_text(version)
        write_json(out[metrics], {"version": version})
        out[plot].write_text(version)
        if kill == "in the block":
            raise SimulatedKill


def _state(root: Path) -> tuple:
    folder, metrics, plot = _targets(root)
    return (
        (folder / "events.txt").read_text() if folder.exists() else None,
        json.loads(metrics.read_text())["version"] if metrics.exists() else None,
        plot.read_text() if plot.exists() else None,
    )


def _leftovers(root: Path) -> list[str]:
    """Hidden files anywhere in the project: temporaries, retired trees, journals."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*"))


def test_all_outputs_are_swapped_in_and_nothing_is_left_beside_them(tmp_path):
    _write_run(tmp_path, "1")
    assert _state(tmp_path) == ("1", "1", "1")
    _write_run(tmp_path, "2")
    assert _state(tmp_path) == ("2", "2", "2") and _leftovers(tmp_path) == []


def test_a_failure_in_the_block_keeps_every_old_output(tmp_path):
    _write_run(tmp_path, "1")
    with pytest.raises(SimulatedKill):
        _write_run(tmp_path, "2", kill="in the block")
    assert _state(tmp_path) == ("1", "1", "1") and _leftovers(tmp_path) == []


@settings(max_examples=40, deadline=None)
@given(swaps_done=st.integers(0, 3), first_run=st.booleans(), data=st.data())
def test_a_kill_during_the_swap_is_finished_by_the_next_start(swaps_done, first_run, data):
    """Killed after ``swaps_done`` of the three swaps (the journal written): the stage's next start
    completes the swap, so the outputs are all the new run's, whatever the failure of that next run."""
    import tempfile

    real_replay = unigrec.atomic._replay
    next_run_fails = data.draw(st.booleans(), label="the next run fails")

    def dying_replay(root, journal):
        real_replay(root, {**journal, "swaps": journal["swaps"][:swaps_done]})
        raise SimulatedKill

    with tempfile.TemporaryDirectory() as parent:
        root = Path(parent)
        if not first_run:
            _write_run(root, "1")
        with mock.patch.object(unigrec.atomic, "_replay", dying_replay), pytest.raises(SimulatedKill):
            _write_run(root, "2")
        assert journal_file(root, "split").exists()
        if next_run_fails:
            with pytest.raises(SimulatedKill):
                _write_run(root, "3", kill="in the block")
            assert _state(root) == ("2", "2", "2")
        else:
            _write_run(root, "3")
            assert _state(root) == ("3", "3", "3")
        assert _leftovers(root) == []


def test_a_kill_while_writing_the_journal_keeps_the_old_outputs(tmp_path):
    _write_run(tmp_path, "1")
    real = unigrec.atomic.write_json

    def dying_write_json(target, payload):
        if Path(target).name.startswith(unigrec.atomic.JOURNAL_PREFIX):
            raise SimulatedKill
        real(target, payload)

    with mock.patch.object(unigrec.atomic, "write_json", dying_write_json), pytest.raises(SimulatedKill):
        _write_run(tmp_path, "2")
    assert _state(tmp_path) == ("1", "1", "1")
    with pytest.raises(SimulatedKill):
        _write_run(tmp_path, "3", kill="in the block")  # the next start clears what the kill left
    assert _state(tmp_path) == ("1", "1", "1") and _leftovers(tmp_path) == []


def test_temporaries_a_kill_left_beside_the_outputs_are_removed_at_the_start(tmp_path):
    """A SIGKILL runs no clean-up: atomic_dir's and atomic_file's temporaries (``data/.canonical.*``) and a
    retired tree stay. The stage's next start removes them; other hidden files are not its business."""
    folder, metrics, plot = _targets(tmp_path)
    _write_run(tmp_path, "1")
    stale = [folder.with_name(".split.k2j4x_"), metrics.with_name(".split.json.ab12cd"),
             folder.with_name(".split.old"), plot.with_name(".split.png.split-00ff00ff")]
    for path in stale:
        path.mkdir() if path.name.endswith(("_", "old")) else path.write_text("half")
    (folder.parent / ".keep").write_text("not ours")
    with pytest.raises(SimulatedKill), stage_outputs(tmp_path, "split", dirs=[folder], files=[metrics, plot]):
        assert not any(p.exists() for p in stale)
        raise SimulatedKill
    assert _leftovers(tmp_path) == ["data/.keep"] and _state(tmp_path) == ("1", "1", "1")


def test_an_output_the_run_did_not_write_is_not_left_from_an_earlier_run(tmp_path):
    """A file the run did not write is removed; a folder is replaced by what the run put in it."""
    folder, metrics, plot = _targets(tmp_path)
    _write_run(tmp_path, "1")
    with stage_outputs(tmp_path, "split", dirs=[folder], files=[metrics, plot]) as out:
        write_json(out[metrics], {"version": "2"})
    assert list(folder.iterdir()) == [] and not plot.exists() and json.loads(metrics.read_text()) == {"version": "2"}


def test_an_undeclared_output_is_refused(tmp_path):
    folder, metrics, _ = _targets(tmp_path)
    with pytest.raises(KeyError, match="not one of its declared outputs"), \
            stage_outputs(tmp_path, "split", files=[metrics]) as out:
        out[folder]
    assert _leftovers(tmp_path) == []


def test_a_folder_swap_that_fails_mid_commit_keeps_what_the_next_start_needs_to_finish_it(tmp_path):
    """The second rename of a folder swap fails (a full disk, an interrupt): the old tree is put back at once,
    the staged tree stays, and the stage's next start completes the committed swap from it."""
    folder, _, _ = _targets(tmp_path)
    _write_run(tmp_path, "1")
    real_rename = Path.rename

    def failing_rename(path, dest):
        if Path(dest) == folder and path.name.startswith(".split."):
            raise SimulatedKill
        return real_rename(path, dest)

    with mock.patch.object(Path, "rename", autospec=True, side_effect=failing_rename), \
            pytest.raises(SimulatedKill):
        _write_run(tmp_path, "2")
    assert (folder / "events.txt").read_text() == "1"  # never a missing folder
    with pytest.raises(SimulatedKill):
        _write_run(tmp_path, "3", kill="in the block")
    assert _state(tmp_path) == ("2", "2", "2") and _leftovers(tmp_path) == []


def test_leftovers_are_matched_by_the_outputs_literal_name_not_as_a_glob(tmp_path):
    # An output named with glob characters: only its own temporaries go, not another file's that the
    # name, read as a pattern (".m[1]*.json.*"), would also match.
    from unigrec.atomic import recover_stage

    (tmp_path / ".m[1]*.json.tmp1").write_text("left by a kill")
    (tmp_path / ".m1-other.json.keep").write_text("not ours")
    recover_stage(tmp_path, "evaluate", [tmp_path / "m[1]*.json"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m1-other.json.keep"]
