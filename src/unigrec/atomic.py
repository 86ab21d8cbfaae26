"""Write outputs so that a crash or a failed check never leaves half-written files behind.

A stage writes into a temporary sibling and swaps it into place only when everything succeeded,
so the previous good output (or nothing) is what a failure leaves on disk. One file or folder is swapped
by ``atomic_file`` / ``atomic_dir``; all of a stage's outputs together by ``stage_outputs``, which stages
every output first and swaps them as one transaction (see there).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces ``target`` as a whole."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _restore_retired(target)
    tmp = _staged_dir(target)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        _swap_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _staged_dir(target: Path) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; outputs should get the usual permissions
    return tmp


def _retired(target: Path) -> Path:
    """Where a folder's previous version waits between the two renames of a swap."""
    return target.with_name(f".{target.name}.old")


def _restore_retired(target: Path) -> None:
    """A kill between a folder swap's two renames leaves no target and the old tree retired: put it back,
    before anything deletes it as a leftover. (With a target present, a retired tree is a leftover.)"""
    old = _retired(target)
    if not target.exists() and old.is_dir():
        os.replace(old, target)


def _swap_dir(tmp: Path, target: Path) -> None:
    """Put folder ``tmp`` in place of ``target``: retire the old tree, rename, delete the old tree.

    A folder cannot be renamed over a non-empty one, so this takes two renames; when the second fails the
    old tree is put back at once, and after a kill between them ``_restore_retired`` puts it back at the
    next write. Either way the target holds the old tree or the new one, never none of them for long.
    ``tmp`` is left where it is on failure: a stage's committed swap still needs it to finish."""
    old = _retired(target)
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    try:
        tmp.rename(target)
    except BaseException:
        if old.exists() and not target.exists():
            os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(target: Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """Open a temporary file next to ``target``; rename it over ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600
    try:
        with open(tmp, mode, encoding=encoding if "b" not in mode else None) as fh:
            yield fh
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


# ------------------------------------------------------------------------------------------ a stage's outputs
JOURNAL_PREFIX = ".unigrec-swap-"  # <root>/.unigrec-swap-<stage>.json: a committed swap not finished yet


class StageOutputs:
    """The staged stand-ins of one stage's outputs: ``outputs[target]`` is where to write ``target``.

    A folder target's stand-in is a fresh empty folder; a file target's is a path to write (with any
    writer, atomic or not). Both are hidden siblings of the target, so the final renames never cross a
    device. An output the stage does not write this time is removed at the swap: whatever is left after
    a run came from that run."""

    def __init__(self, root: Path, stage: str, dirs: Iterable[Path], files: Iterable[Path]) -> None:
        self.root, self.stage = Path(root), stage
        token = secrets.token_hex(4)
        self._staged: dict[Path, Path] = {}
        for target in map(Path, dirs):
            target.parent.mkdir(parents=True, exist_ok=True)
            self._staged[target] = _staged_dir(target)
        for target in map(Path, files):
            target.parent.mkdir(parents=True, exist_ok=True)
            self._staged[target] = target.with_name(f".{target.name}.{stage}-{token}")

    def __getitem__(self, target: Path) -> Path:
        try:
            return self._staged[Path(target)]
        except KeyError:
            raise KeyError(f"stage {self.stage}: {target} is not one of its declared outputs") from None

    def discard(self) -> None:
        for staged in self._staged.values():
            _remove(staged)

    def commit(self) -> None:
        """Swap every output in. The journal written first is the commit point: from then on a kill is
        finished by the stage's next start (``recover_stage``), so the outputs all end up from this run."""
        journal = {
            "stage": self.stage,
            "swaps": [
                {"target": os.path.relpath(target, self.root),
                 "staged": os.path.relpath(staged, self.root) if staged.exists() else None}
                for target, staged in self._staged.items()
            ],
        }
        path = journal_file(self.root, self.stage)
        write_json(path, journal)
        _replay(self.root, journal)
        path.unlink()


def journal_file(root: Path, stage: str) -> Path:
    return Path(root) / f"{JOURNAL_PREFIX}{stage}.json"


@contextlib.contextmanager
def stage_outputs(
    root: Path, stage: str, *, dirs: Iterable[Path] = (), files: Iterable[Path] = ()
) -> Iterator[StageOutputs]:
    """All of a stage's outputs, swapped together: from the last good run or from this one, never mixed.

    On entry, a swap of this stage that a kill interrupted is finished and the temporaries that earlier
    kills left beside these outputs are removed; the block then writes every output into its stand-in
    (``outputs[target]``). A failure in the block leaves every output as it was; on success all are
    swapped in one after the other, under a journal that makes the swap finish even across a kill.
    """
    dirs, files = [Path(d) for d in dirs], [Path(f) for f in files]
    recover_stage(root, stage, [*dirs, *files])
    outputs = StageOutputs(root, stage, dirs, files)
    try:
        yield outputs
    except BaseException:
        outputs.discard()
        raise
    outputs.commit()


def recover_stage(root: Path, stage: str, targets: Iterable[Path]) -> None:
    """Finish this stage's committed swap, if a kill interrupted one, then remove what earlier kills left
    beside ``targets``: temporaries (``.<name>.*``) and retired trees."""
    path = journal_file(root, stage)
    if path.exists():
        _replay(Path(root), json.loads(path.read_text(encoding="utf-8")))
        path.unlink()
    for target in map(Path, targets):
        _restore_retired(target)
        if target.parent.is_dir():
            for leftover in target.parent.glob(f".{glob_escape(target.name)}.*"):
                _remove(leftover)


def glob_escape(name: str) -> str:
    """``name`` as a literal glob pattern."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _replay(root: Path, journal: dict[str, Any]) -> None:
    """Do every swap of a journal that is not done yet (idempotent: a replay after a kill continues it)."""
    for swap in journal["swaps"]:
        target = root / swap["target"]
        staged = root / swap["staged"] if swap["staged"] is not None else None
        if staged is None:
            _remove(target)  # not written by the run that committed: it belonged to an earlier one
        elif staged.is_dir():
            _restore_retired(target)
            _swap_dir(staged, target)
        elif staged.exists():
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(staged, target)
        # else: swapped in before the kill


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_json(target: Path, payload: Any) -> None:
    """Atomically write pretty, key-sorted JSON (stable diffs for DVC metrics kept in git)."""
    with atomic_file(target) as fh:
        json.dump(payload, fh, indent=2, sort_keys=True, default=_json_default)
        fh.write("\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths show up in metrics dicts; make them plain JSON.
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
