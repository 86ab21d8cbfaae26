"""A throw-away git + DVC copy of this project, for benchmarks that must never touch the shared workspace."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from unigrec.pipeline import stage_outputs

ROOT = Path(__file__).resolve().parents[1]


def copy_project(dest: Path, stages: list[str] | None = None, share_cache: bool = True) -> Path:
    """Copy the tracked (and untracked, not ignored) files into ``dest`` without DVC cache, ``dvc.lock``
    or the given stages' outputs (default: every stage's), and commit them: a cold start.

    ``share_cache`` links ``.cache`` (downloaded source wheels and the text-embedding cache) to this
    project's, so ingest reads instead of downloading; without it every cache starts empty.
    """
    dest.mkdir(parents=True)
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\n")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / "dvc.lock").unlink(missing_ok=True)
    for rel in stage_outputs(dest, stages):
        target = dest / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    if share_cache and (ROOT / ".cache").exists():
        (dest / ".cache").symlink_to(ROOT / ".cache")
    commit(dest, "copy")
    return dest


def commit(project: Path, message: str) -> None:
    """Commit everything in ``project`` (a fresh repository on first use)."""
    if not (project / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@unigrec.invalid", "commit", "-qm", message,
         "--allow-empty"],
        cwd=project, check=True,
    )
