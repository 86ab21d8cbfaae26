"""Fetch a registered version's model folder (what the pyfunc wraps) to a local path: for serving the
champion from the CLI and for re-evaluating it in the register stage."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from unigrec.config import RegisterConfig
from unigrec.registry.store import quiet_mlflow_environment, sqlite_file, tracking_uri, using_tracking_uri

log = logging.getLogger(__name__)


def registered_model_dir(cfg: RegisterConfig, root: Path, dest: Path, version: int | None = None) -> Path | None:
    """Download the registry's ``models:/<name>@<alias>`` (or ``models:/<name>/<version>``) into ``dest``
    and return its model folder; None when there is no registry, no such model, alias or version (the
    caller falls back)."""
    uri = tracking_uri(cfg, root)
    db = sqlite_file(uri)
    if db is not None and not db.exists():
        return None
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
        with using_tracking_uri(uri):  # models:/ URIs resolve against the fluent API's registry
            # By version even when asked for the alias: the alias may move between lookup and download.
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{cfg.model_name}/{found.version}", dst_path=str(dest)
            )
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
