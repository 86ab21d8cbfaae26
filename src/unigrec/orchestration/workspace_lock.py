"""One pipeline run at a time per project: a file lock that a second run waits on or fails on clearly."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from unigrec.errors import UnigrecError

log = logging.getLogger(__name__)

# Inside .dvc/tmp: DVC's own git-ignored scratch folder, so the lock never shows up in `git status`.
LOCK_FILE = Path(".dvc") / "tmp" / "unigrec-workspace.lock"


class WorkspaceBusy(UnigrecError):
    """Another pipeline run holds the project's workspace."""


@contextlib.contextmanager
def hold_workspace(root: Path, timeout_s: float) -> Iterator[Path]:
    """Hold the project's workspace lock for the body; wait up to ``timeout_s`` seconds for it.

    DVC's own repo lock fails at once when two ``dvc repro`` overlap, and only per command: between two
    stages of one run another run could slip in and change params under it. This lock spans the whole
    run, so runs queue instead of interleaving. It is an OS lock (flock), released even if the holder
    is killed.
    """
    from filelock import FileLock, Timeout

    path = Path(root) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=timeout_s)
    started = time.perf_counter()
    try:
        lock.acquire()
    except Timeout as exc:
        raise WorkspaceBusy(
            f"another pipeline run holds the workspace {Path(root).resolve()} (lock {path}); "
            f"waited {timeout_s:g}s (orchestration.lock_timeout_s). Try again when it finishes."
        ) from exc
    log.info("workspace lock acquired (waited %.1fs)", time.perf_counter() - started)
    try:
        yield path
    finally:
        lock.release()
