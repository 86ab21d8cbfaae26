"""A fresh git + DVC copy of this project, as a user's checkout, for tests that run the real pipeline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from support import REPO

ML100K = REPO.parent / "shared" / "data" / "ml-100k"
PROJECT_FILES = ["dvc.yaml", "params.yaml", "data_contracts", "src", "flows"]


def override(params: dict, overrides: dict, where: str = "params") -> None:
    """Set nested ``overrides`` in ``params``; every key must already exist (a renamed knob fails here)."""
    for key, value in overrides.items():
        assert key in params, f"{where}.{key} is not in params.yaml: update the test's overrides"
        if isinstance(value, dict):
            override(params[key], value, f"{where}.{key}")
        else:
            params[key] = value


def env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "DVC_NO_ANALYTICS": "1",
            "UNIGREC_LOG_LEVEL": "WARNING"}


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_project(root: Path, cache: Path, overrides: dict) -> Path:
    """The project files in ``root`` with params on the shared ml-100k files, ``cache`` as the runtime cache
    and ``overrides`` applied; a git + DVC repo, nothing run yet."""
    for name in PROJECT_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / name)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["ingest"]["path"] = str(ML100K)
    params["runtime"]["cache_dir"] = str(cache)
    override(params, overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], root)
    run([sys.executable, "-m", "dvc", "init", "-q"], root)
    return root
