"""The model a command or the service serves, fetched from the registry once per version.

A registered version never changes, so its folder is downloaded once into
``<runtime.cache_dir>/models/<name>/v<version>-<key>`` and every later ``unigrec recommend``/``search``/
``serve`` loads it from there. ``key`` hashes the store, version, run and creation time, so a registry
that was deleted and rebuilt (a new "v1") never serves the old folder.

Finding which version the alias names costs more than the download on a warm cache: importing MLflow and
opening its store take seconds. For a SQLite store the answer is kept beside the folders together with
the database file's state (modification time, size, inode, and those of its journal files): any write to
the registry (a registration, an alias move) changes that state, and only then is MLflow asked again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from unigrec.atomic import atomic_dir, write_json
from unigrec.config import RegisterConfig
from unigrec.errors import UnigrecError
from unigrec.paths import Layout

log = logging.getLogger(__name__)

CACHE_SUBDIR = "models"  # under runtime.cache_dir
LOOKUPS_SUBDIR = "lookups"
MARKER_FILE = "unigrec-cache.json"  # written last: a folder without it is incomplete
LOCAL_VERSION = "local"  # the version reported for a model folder served without the registry
_JOURNALS = ("", "-wal", "-journal", "-shm")


@dataclasses.dataclass(frozen=True)
class RegistryVersion:
    """One registered version: its number and the key of its cache folder."""

    version: str
    key: str


@dataclasses.dataclass(frozen=True)
class Served:
    """A loaded model and what responses say about it."""

    model: Any  # a Recommender
    version: str  # the registry's version number as text, or LOCAL_VERSION
    description: str  # for logs and notices only (may name paths): never sent to a client
    key: str = ""  # RegistryVersion.key of a registered version (tells a rebuilt registry's "v1" apart)


class ModelCache:
    """Registry versions of one registered model, looked up and downloaded at most once each.

    ``cache_dir`` is the project's ``runtime.cache_dir`` (resolved); several processes may share it: a
    download happens under a file lock and lands by an atomic rename.
    """

    def __init__(self, cfg: RegisterConfig, root: Path, cache_dir: Path) -> None:
        from unigrec.registry.store import tracking_uri

        self.cfg = cfg
        self.root = Path(root)
        self.uri = tracking_uri(cfg, self.root)
        self.base = Path(cache_dir).resolve() / CACHE_SUBDIR

    # ------------------------------------------------------------------ lookup
    def lookup(self, version: int | None = None) -> RegistryVersion | None:
        """The version the alias names (or ``version`` itself); None when the registry, model, alias or
        version does not exist."""
        from unigrec.registry.store import sqlite_file

        db = sqlite_file(self.uri)
        if db is not None and not db.exists():
            return None
        ref = f"@{self.cfg.alias}" if version is None else f"/{version}"
        state = _db_state(db) if db is not None else None
        memo = self.base / LOOKUPS_SUBDIR / f"{_digest(self.uri, self.cfg.model_name, ref)}.json"
        if state is not None and memo.exists():
            try:
                entry = json.loads(memo.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                entry = None
            if entry is not None and entry.get("state") == state:
                found = entry.get("found")
                return RegistryVersion(**found) if found else None
        found = self._ask_registry(version)
        if state is not None:  # the state from BEFORE the question: a write meanwhile forces a new one
            write_json(memo, {"state": state, "found": dataclasses.asdict(found) if found else None})
        return found

    def _ask_registry(self, version: int | None) -> RegistryVersion | None:
        from unigrec.registry.store import quiet_mlflow_environment

        quiet_mlflow_environment()
        import mlflow
        from mlflow.exceptions import MlflowException

        client = mlflow.MlflowClient(self.uri)
        name = self.cfg.model_name
        try:
            mv = (
                client.get_model_version_by_alias(name, self.cfg.alias)
                if version is None
                else client.get_model_version(name, str(version))
            )
        except MlflowException as exc:
            log.debug("registry lookup failed", exc_info=True)
            log.info("registry: no %s %s (%s)", name, f"@{self.cfg.alias}" if version is None else f"v{version}",
                     str(exc).splitlines()[0])
            return None
        key = _digest(self.uri, name, str(mv.version), str(mv.run_id), str(mv.creation_timestamp))
        return RegistryVersion(str(mv.version), key)

    # ------------------------------------------------------------------ folders
    def folder(self, found: RegistryVersion) -> Path:
        """The model folder of a registered version, downloaded on first use."""
        from filelock import FileLock

        target = self.base / _safe(self.cfg.model_name) / f"v{found.version}-{found.key}"
        cached = _cached_folder(target)
        if cached is not None:
            return cached
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target.with_name(target.name + ".lock"))):
            cached = _cached_folder(target)  # another process may have finished it while we waited
            if cached is not None:
                return cached
            from unigrec.registry.download import registered_model_dir

            with atomic_dir(target) as tmp:
                local = registered_model_dir(self.cfg, self.root, tmp, version=int(found.version))
                if local is None:
                    raise UnigrecError(
                        f"{self.cfg.model_name} v{found.version} vanished from the registry while it was fetched"
                    )
                relative = Path(local).resolve().relative_to(tmp.resolve()).as_posix()
                write_json(tmp / MARKER_FILE, {"model_dir": relative})
            log.info("cached %s v%s in %s", self.cfg.model_name, found.version, target)
        return _cached_folder(target) or target


def _cached_folder(target: Path) -> Path | None:
    marker = target / MARKER_FILE
    if not marker.exists():
        return None
    return target / json.loads(marker.read_text(encoding="utf-8"))["model_dir"]


def _db_state(db: Path) -> list[list[int] | None]:
    """What changes whenever SQLite writes: the state of the database file and its journal files."""
    out: list[list[int] | None] = []
    for suffix in _JOURNALS:
        try:
            st = db.with_name(db.name + suffix).stat()
        except FileNotFoundError:
            out.append(None)
        else:
            out.append([st.st_mtime_ns, st.st_size, st.st_ino])
    return out


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:16]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def load_served(
    root: Path,
    params_file: str,
    *,
    model_dir: str | None = None,
    version: int | None = None,
    fallback_to_local: bool = False,
) -> tuple[Served, ModelCache | None]:
    """The model to serve: ``model_dir`` when given, else the registry's ``version`` (or its champion).

    ``fallback_to_local``: with no champion in the registry, serve the project's own model folder (the
    CLI does, with a notice); without it that is an error naming both ways out. Returns the cache too,
    so a service can poll the alias through it.
    """
    from unigrec.config import load_section

    root = Path(root)
    params = root / params_file
    limits = load_section("serving", params)
    if model_dir:
        return Served(_load(Path(model_dir), limits.max_k), LOCAL_VERSION, f"model folder {model_dir}"), None
    cfg: RegisterConfig = load_section("register", params)
    runtime = load_section("runtime", params)
    layout = Layout(root)
    cache = ModelCache(cfg, root, layout.resolve(runtime.cache_dir))
    found = cache.lookup(version)
    if found is None:
        wanted = f"{cfg.model_name}@{cfg.alias}" if version is None else f"{cfg.model_name} v{version}"
        if version is None and fallback_to_local:
            folder = layout.model_dir
            description = f"no {wanted} in the registry; serving the local model {folder}"
            return Served(_load(folder, limits.max_k), LOCAL_VERSION, description), cache
        raise UnigrecError(
            f"no {wanted} in the registry at {cache.uri}: register a model (dvc repro) or serve a folder "
            "with --model-dir"
        )
    return load_version(cache, found, limits.max_k), cache


def load_version(cache: ModelCache, found: RegistryVersion, max_k: int) -> Served:
    """Load a registered version from the cache (downloading it the first time)."""
    folder = cache.folder(found)
    return Served(_load(folder, max_k), found.version, f"{cache.cfg.model_name} v{found.version}", found.key)


def _load(folder: Path, max_k: int) -> Any:
    from unigrec.inference.serving import load_recommender

    return load_recommender(folder, max_k=max_k)
