"""A throw-away git + DVC copy of this project, and the one way benchmarks change its params: the product's
(``--experiment`` overlays, ``--data-path``, ``--set``, as ``unigrec run`` takes them, written by DVC's
writer through ``unigrec.pipeline.apply_param_overrides``)."""

from __future__ import annotations

import argparse
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


def add_override_args(parser: argparse.ArgumentParser) -> None:
    """The params options of ``unigrec run``, for a benchmark that makes its own project copy."""
    parser.add_argument("--experiment", action="append", default=[], metavar="NAME",
                        help="params overlay of configs/experiments/ (repeatable, in order), as `unigrec run`")
    parser.add_argument("--data-path", default=None, help="dataset folder (ingest.path), from where you type it")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="params override after the overlays (e.g. train.trainer.max_epochs=4)")


def configure(root: Path, args: argparse.Namespace) -> list[str]:
    """Write :func:`add_override_args`' options into ``root``'s params.yaml; returns the overrides written.

    Paths are resolved where the command is typed (the stages read them from the project, somewhere else):
    ``--data-path`` and a ``--set ingest.path=...``."""
    from unigrec.errors import UnigrecError
    from unigrec.orchestration.experiments import experiment_overrides, merge_overrides
    from unigrec.orchestration.run import dataset_overrides

    sets = [f"ingest.path={Path(v.partition('=')[2]).resolve()}" if v.startswith("ingest.path=")
            and v != "ingest.path=null" else v for v in args.overrides]
    data = str(Path(args.data_path).resolve()) if args.data_path else None
    try:
        overrides = merge_overrides(experiment_overrides(ROOT, args.experiment), dataset_overrides(None, data), sets)
    except UnigrecError as err:
        raise SystemExit(str(err)) from err
    write_overrides(root, overrides)
    return overrides


def write_overrides(root: Path, overrides: list[str]) -> None:
    """``section.key=value`` overrides into ``root``'s params.yaml by DVC's writer (comments kept), as ``dvc
    exp run -S`` and ``unigrec run`` write them. A benchmark only changes existing knobs: Hydra's ``+key``
    (add) and ``~key`` (delete) are refused, and an unknown key stops with DVC's message naming it."""
    from dvc.exceptions import InvalidArgumentError

    from unigrec.pipeline import apply_param_overrides

    for assignment in overrides:
        if assignment.startswith(("+", "~")):
            raise SystemExit(f"override {assignment!r}: benchmarks change existing params only (no +/~)")
    try:
        apply_param_overrides(root, overrides)
    except InvalidArgumentError as err:  # its own text is generic; the cause names the override
        raise SystemExit(f"override: {err.__cause__ or err}") from err
