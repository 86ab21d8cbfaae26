"""Fetch a registered version's model folder (what the pyfunc wraps) to a local path: for serving the
champion from the CLI and for re-evaluating it in the register stage."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from unigrec.config import RegisterConfig
from unigrec.errors import UnigrecError
from unigrec.registry.store import (
    local_path,
    quiet_mlflow_environment,
    reroot_artifacts,
    sqlite_file,
    tracking_uri,
    using_tracking_uri,
)

log = logging.getLogger(__name__)


def registered_model_dir(cfg: RegisterConfig, root: Path, dest: Path, version: int | None = None) -> Path | None:
    """Download the registry's ``models:/<name>@<alias>`` (or ``models:/<name>/<version>``) into ``dest``
    and return its model folder; None when there is no registry, no such model, alias or version (the
    caller falls back). A version whose artifacts are gone is an error, not a fallback: serving another
    model than the registry names must be asked for."""
    uri = tracking_uri(cfg, root)
    db = sqlite_file(uri)
    if db is not None and not db.exists():
        return None
    reroot_artifacts(cfg, uri, root)  # a moved or copied project reads its own artifact folder
    quiet_mlflow_environment()
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(uri)
    wanted = f"alias {cfg.alias}" if version is None else f"v{version}"
    try:
        found = (
            client.get_model_version_by_alias(cfg.model_name, cfg.alias)
            if version is None
            else client.get_model_version(cfg.model_name, str(version))
        )
        _check_artifacts(client, cfg, found.version)
        with using_tracking_uri(uri):  # models:/ URIs resolve against the fluent API's registry
            # By version even when asked for the alias: the alias may move between lookup and download.
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{cfg.model_name}/{found.version}", dst_path=str(dest)
            )
    except OSError as exc:  # a file deleted under a folder that was still there when checked
        raise UnigrecError(
            f"registry {uri}: {cfg.model_name} v{found.version}'s artifacts are incomplete: {exc}"
        ) from None
    except MlflowException as exc:
        log.debug("registry lookup failed", exc_info=True)
        log.info("registry %s: no %s %s (%s)", uri, cfg.model_name, wanted, str(exc).splitlines()[0])
        return None
    # The pyfunc's MLmodel names where its model-folder artifact was stored.
    from unigrec.registry.pyfunc_model import MODEL_DIR_ARTIFACT

    spec = yaml.safe_load((Path(local) / "MLmodel").read_text(encoding="utf-8"))
    relative = spec["flavors"]["python_function"]["artifacts"][MODEL_DIR_ARTIFACT]["path"]
    via = f" ({wanted})" if version is None else ""  # a version asked for is the one loaded
    log.info("loaded %s v%s%s from %s", cfg.model_name, found.version, via, uri)
    return Path(local) / relative


def _check_artifacts(client: Any, cfg: RegisterConfig, version: str) -> None:
    """A version's local artifact folder must exist: MLflow itself reports a missing one as a bare
    FileNotFoundError about a file in the download folder, which names neither the version nor the
    place its artifacts should be."""
    location = client.get_model_version_download_uri(cfg.model_name, version)
    folder = local_path(location)
    if folder is not None and not folder.is_dir():
        raise UnigrecError(
            f"{cfg.model_name} v{version}'s artifacts are missing: {folder} does not exist "
            f"(deleted, or the project was moved without its {cfg.artifact_dir} folder); restore it, "
            "register a model again, or serve a model folder explicitly"
        )
