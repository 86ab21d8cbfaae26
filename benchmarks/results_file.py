"""Read-merge-write of a benchmark's results JSON, so several processes of one script can share the file.

Long benchmarks run one seed or one row a process, side by side on a small machine (one torch thread each).
Each process loaded the results file when it started; writing its copy back when a seed ends would drop
what the others stored since. So every write reads the file again under an OS lock and applies only this
process's change to what is there, then replaces the file atomically (a reader never sees half a file).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unigrec.atomic import atomic_file


def update_results(path: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Apply ``change`` (which edits the dict in place) to what ``path`` holds now and write it back.

    Returns what the file holds after the write, which a caller keeps as its new copy."""
    # the OS lock the pipeline's workspace lock uses (unigrec.orchestration.workspace_lock)
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(f".{path.name}.lock")):
        latest = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        change(latest)
        with atomic_file(path) as fh:
            fh.write(json.dumps(latest, indent=2, sort_keys=True, default=str) + "\n")
    return latest
