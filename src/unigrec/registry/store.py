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


def reroot_artifacts(cfg: RegisterConfig, uri: str, root: Path, *, locked: bool = False) -> bool:
    """Point a moved or copied project's registry at its own artifact folder; returns whether it did.

    MLflow records absolute artifact paths: the experiment's location, and from it every run's, logged
    model's and model version's. A project moved or copied elsewhere would otherwise keep serving from, and
    registering into, the first checkout's folder (and fail once that is gone). So when the store lies in
    the project and its experiment's recorded location lies outside it, every recorded location under that
    prefix is rewritten to the same place under ``params.register.artifact_dir``. A store outside the
    project (a shared one via ``MLFLOW_TRACKING_URI``) and locations inside the project are left alone.
    ``locked``: the caller already holds the registration lock (the rewrite must not race a registration).
    """
    db = sqlite_file(uri)
    here = artifact_location(cfg, uri, root)
    project = Path(root).resolve()
    if db is None or here is None or not db.exists() or not db.resolve().is_relative_to(project):
        return False
    recorded = _recorded_location(db, cfg.experiment)
    old = local_path(recorded) if recorded is not None else None
    if recorded == here or old is None or old.is_relative_to(project):
        return False
    if not locked:
        with registration_lock(lock_file(cfg, uri, root), cfg.lock_timeout_s):
            return reroot_artifacts(cfg, uri, root, locked=True)
    _rewrite_prefix(db, recorded, here)
    log.warning("registry: artifacts recorded under %s (the project moved or was copied); now read from and "
                "written to %s", recorded, here)
    return True


# (table, column) pairs in MLflow's SQL schema that hold artifact locations derived from the experiment's
_LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)


def _recorded_location(db: Path, experiment: str) -> str | None:
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as con:
        try:
            row = con.execute("SELECT artifact_location FROM experiments WHERE name = ?", (experiment,)).fetchone()
        except sqlite3.DatabaseError:  # no schema yet (a fresh or foreign file): nothing recorded
            return None
    return row[0] if row else None


def local_path(location: str) -> Path | None:
    """A ``file://`` URI or plain path as a path; None for a remote location (s3://, http://, ...)."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(location) if not parsed.scheme else None


def _rewrite_prefix(db: Path, old: str, new: str) -> None:
    """Replace the prefix ``old`` by ``new`` in every recorded location at or under ``old``, in one
    transaction (a reader sees all of them moved or none)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as con, con:
        for table, column in _LOCATION_COLUMNS:
            columns = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                continue
            con.execute(
                f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                (new, len(old) + 1, old, len(old) + 1, old + "/"),
            )


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
