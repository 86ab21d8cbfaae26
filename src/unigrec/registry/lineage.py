"""Where a model came from: git commit, DVC-tracked data and params hashes, and the evaluation data hash."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

import yaml

_CHUNK = 1 << 20  # bytes read at a time when hashing files


def git_state(root: Path) -> dict[str, str]:
    """Commit and dirty flag of the project; "unknown" outside a git checkout (e.g. an sdist install)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": commit or "unknown",
        "git_dirty": "unknown" if status is None else str(bool(status)).lower(),
    }


def dvc_lock_hashes(lock_path: Path) -> dict[str, str]:
    """``dvc.<stage>.<out path>`` -> md5 of every output in ``dvc.lock`` and ``dvc.<stage>.params`` -> a
    hash of the params that stage ran with; empty when there is no lock file yet."""
    if not lock_path.exists():
        return {}
    lock = yaml.safe_load(lock_path.read_text(encoding="utf-8")) or {}
    out: dict[str, str] = {}
    for stage, spec in (lock.get("stages") or {}).items():
        for entry in spec.get("outs") or []:
            digest = entry.get("md5") or entry.get("hash")
            if digest:
                out[f"dvc.{stage}.{entry['path']}"] = str(digest)
        if spec.get("params"):
            dumped = yaml.safe_dump(spec["params"], sort_keys=True).encode("utf-8")
            out[f"dvc.{stage}.params"] = hashlib.sha256(dumped).hexdigest()[:32]
    return out


def files_fingerprint(paths: Sequence[Path]) -> str:
    """SHA-256 over the names and bytes of ``paths`` (files, or folders walked in sorted order).

    Two evaluations are comparable only when this matches: same split, same candidate lists, same
    catalogue.
    """
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"cannot fingerprint {path}: it does not exist")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(file.relative_to(path.parent).as_posix().encode("utf-8") + b"\x00")
            with open(file, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
            digest.update(b"\x00")
    return digest.hexdigest()
