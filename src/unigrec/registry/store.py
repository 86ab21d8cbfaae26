"""Where the registry lives (tracking URI, artifact folder) and the file lock that serialises writers."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from unigrec.config import RegisterConfig
from unigrec.errors import UnigrecError
from unigrec.paths import Layout

log = logging.getLogger(__name__)

_SQLITE = "sqlite:///"


def quiet_mlflow_environment() -> None:
    """No telemetry from this pipeline, ever; set before mlflow is imported."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")


def tracking_uri(cfg: RegisterConfig, root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else params; a relative SQLite path is taken from the project root
    (not the working directory), so every stage and CLI call finds the same store."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking_uri
    if uri.startswith(_SQLITE):
        db = Layout(Path(root).resolve()).resolve(uri[len(_SQLITE) :])
        db.parent.mkdir(parents=True, exist_ok=True)
        return f"{_SQLITE}{db}"
    return uri


def sqlite_file(uri: str) -> Path | None:
    """The database file of a SQLite URI; None for any other store."""
    return Path(uri[len(_SQLITE) :]) if uri.startswith(_SQLITE) else None


def artifact_location(cfg: RegisterConfig, uri: str, root: Path) -> str | None:
    """Local artifact folder for a local (SQLite) store; a server picks its own, so None there."""
    if sqlite_file(uri) is None:
        return None
    return Layout(Path(root).resolve()).resolve(cfg.artifact_dir).as_uri()


def lock_file(cfg: RegisterConfig, uri: str, root: Path) -> Path | None:
    """``params.register.lock_file`` if set, else ``<db>.lock`` beside a SQLite store, else None."""
    if cfg.lock_file:
        return Layout(Path(root)).resolve(cfg.lock_file)
    db = sqlite_file(uri)
    return db.with_name(db.name + ".lock") if db is not None else None


@contextlib.contextmanager
def registration_lock(path: Path | None, timeout_s: float) -> Iterator[None]:
    """Hold an exclusive lock for a whole registration.

    SQLite alone is not enough: two writers can both create the schema on a fresh file, and the
    read-compare-move of the champion alias must be atomic or two candidates could each see the old
    champion and both claim the alias.
    """
    if path is None:
        log.warning("registry: no lock file for a non-SQLite store; the champion check relies on the server")
        yield
        return
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path), timeout=timeout_s):
            yield
    except Timeout as exc:
        raise UnigrecError(
            f"another registration has held {path} for over {timeout_s:.0f}s; "
            "wait for it, or remove the lock file if no registration is running"
        ) from exc


@contextlib.contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at ``uri`` for a block, then put things back.

    ``mlflow.set_tracking_uri`` also exports ``MLFLOW_TRACKING_URI`` to the environment; left behind,
    that would silently redirect every later registration (and child process) to this store.
    """
    import mlflow

    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)
        if env_before is not None:
            os.environ["MLFLOW_TRACKING_URI"] = env_before
