"""Run pipeline stages through DVC, so DVC's cache and lock decide what actually runs.

This is the plain-Python core that the Prefect tasks in ``flows/`` wrap: it knows nothing of Prefect.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

DVC_FILE = "dvc.yaml"


@dataclasses.dataclass(frozen=True)
class StageOutcome:
    stage: str
    ran: bool  # False: DVC found the stage up to date (cached) and skipped it
    metrics: dict[str, Any]


def _stages_spec(root: Path) -> dict[str, Any]:
    return yaml.safe_load((Path(root) / DVC_FILE).read_text(encoding="utf-8"))["stages"]


def pipeline_stages(root: Path) -> list[str]:
    """Stage names in ``dvc.yaml`` order (the pipeline order)."""
    return list(_stages_spec(root))


OUTPUT_KINDS = ("outs", "metrics", "plots")  # the dvc.yaml keys of a stage that name files it writes


def _declared_outputs(
    stage_spec: dict[str, Any], kinds: tuple[str, ...] = OUTPUT_KINDS
) -> Iterator[tuple[str, bool]]:
    """(path relative to root, whether DVC caches it) for each entry of ``kinds`` in one ``dvc.yaml`` stage."""
    for kind in kinds:
        for entry in stage_spec.get(kind, []):
            if isinstance(entry, dict):
                path, props = next(iter(entry.items()))
                yield path, (props or {}).get("cache", True)
            else:
                yield entry, True


def _declared_paths(root: Path, stages: list[str] | None, kinds: tuple[str, ...]) -> list[str]:
    spec = _stages_spec(root)
    names = stages if stages is not None else list(spec)
    return [path for stage in names for path, _ in _declared_outputs(spec[stage], kinds)]


def metrics_files(root: Path, stages: list[str] | None = None) -> list[str]:
    """The metrics files (relative to root) that the given stages (default: all) declare in ``dvc.yaml``."""
    return _declared_paths(root, stages, ("metrics",))


def stage_outputs(root: Path, stages: list[str] | None = None) -> list[str]:
    """Every path (relative to root) the given stages (default: all) write: outs, metrics and plots."""
    return _declared_paths(root, stages, OUTPUT_KINDS)


def stage_metrics(root: Path, stage: str) -> dict[str, Any]:
    """The JSON metrics files a stage declares in ``dvc.yaml``, read back after it ran."""
    found: dict[str, Any] = {}
    for name in metrics_files(root, [stage]):
        path = Path(root) / name
        if path.exists():
            found[name] = json.loads(path.read_text(encoding="utf-8"))
    return found


@contextlib.contextmanager
def _interpreter_bin_on_path() -> Iterator[None]:
    """Put this interpreter's bin folder first on PATH while DVC runs stage commands.

    DVC runs each ``cmd`` in a shell with the current PATH; a Prefect worker or a cron job started as
    ``.venv/bin/prefect ...`` does not have the venv on PATH, so ``unigrec stage X`` would not resolve.
    """
    bin_dir = str(Path(sys.executable).parent)
    before = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([bin_dir, before]) if before else bin_dir
    try:
        yield
    finally:
        os.environ["PATH"] = before


def _locked_outputs(root: Path, stage: str) -> set[str]:
    """The output paths ``dvc.lock`` records for ``stage``: what its last successful run wrote."""
    lock = Path(root) / "dvc.lock"
    if not lock.exists():
        return set()
    entry = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {}).get(stage, {})
    return {out["path"] for out in entry.get("outs", [])}


def _signature(path: Path) -> tuple[Any, ...] | None:
    """What tells whether a run touched ``path`` (file or folder): sizes and mtimes; None when absent."""
    if not path.exists():
        return None
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stats = ((f, f.stat()) for f in files)
    return tuple((str(f.relative_to(path)), st.st_size, st.st_mtime_ns) for f, st in stats)


@contextlib.contextmanager
def _last_good_outputs_kept(repo: Any, stage: str) -> Iterator[None]:
    """On failure, put back what DVC deleted before running ``stage``: its outputs of the last good run.

    DVC removes a stage's outputs before running its command, so a stage that then fails (a bad param, a
    crash, a killed training) would leave nothing, though our stages write atomically and would have kept
    the old files. ``persist: true`` in dvc.yaml would stop the deletion but also switch off DVC's
    run-cache, which restores a trained model in seconds when params go back to an earlier value; so the
    orchestrated path restores instead. Cached outputs come back from DVC's cache as ``dvc.lock`` still
    records them (the failed run did not update it); git-tracked (``cache: false``) ones from a copy taken
    here, which is small (metrics, reports, figures). Every cached output the failed run deleted *or
    rewrote* goes back to the recorded run, so a stage that dies between two outputs never leaves a new
    model beside old serving files; one it never touched stays as it is (a failure before DVC ran the
    command must not overwrite a model trained by hand). Git-tracked ones go back only where the failed
    stage left none: ``validate`` writes its report on failure and that diagnosis must stay.
    """
    root = Path(repo.root_dir)
    declared = list(_declared_outputs(_stages_spec(root)[stage]))
    before = {path: _signature(root / path) for path, cached in declared if cached}
    saved = {
        path: (root / path).read_bytes() for path, cached in declared if not cached and (root / path).is_file()
    }
    try:
        yield
    except BaseException:
        recorded = _locked_outputs(root, stage)  # none when the stage never succeeded: nothing to restore
        touched = [p for p in before if p in recorded and (before[p] is None or _signature(root / p) != before[p])]
        restored: list[str] = []
        if touched:
            try:
                # force: files the failed run wrote inside an output are overwritten or deleted, not kept
                repo.checkout(targets=touched, force=True)
                restored += [path for path in touched if (root / path).exists()]
            except Exception as err:  # noqa: BLE001 - never mask the stage's own failure
                log.warning("stage %s failed and its cached outputs could not be restored: %s", stage, err)
        for path, content in saved.items():
            if not (root / path).exists():
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                (root / path).write_bytes(content)
                restored.append(path)
        if restored:
            log.warning("stage %s failed; its last good outputs are back in place: %s", stage, ", ".join(restored))
        raise


def reproduce_stage(stage: str, root: Path = Path(".")) -> StageOutcome:
    """``dvc repro --single-item STAGE``: run it only if its deps, params or code changed.

    If the stage fails, its outputs from the last good run are put back (see ``_last_good_outputs_kept``).
    """
    from dvc.repo import Repo

    # DVC resolves stage names and runs commands relative to the current directory, so work from root.
    with (
        _interpreter_bin_on_path(),
        contextlib.chdir(Path(root).resolve()),
        Repo(".") as repo,
        _last_good_outputs_kept(repo, stage),
    ):
        reproduced = repo.reproduce(stage, single_item=True)
    ran = any(getattr(s, "addressing", None) == stage or getattr(s, "name", None) == stage for s in reproduced)
    log.info("stage %s: %s", stage, "ran" if ran else "up to date (cached), skipped")
    return StageOutcome(stage=stage, ran=ran, metrics=stage_metrics(root, stage))


def override_files(overrides: list[str]) -> list[str]:
    """The params files (relative to root) that ``section.key=value`` / ``file:key=value`` overrides touch."""
    from dvc.utils.cli_parse import to_path_overrides

    return list(to_path_overrides(overrides))


def apply_param_overrides(root: Path, overrides: list[str]) -> None:
    """Write ``section.key=value`` overrides into the project's params file, as ``dvc exp run -S`` does.

    DVC's own parser (Hydra override grammar) is used, so the syntax and the checks are the same as on
    the command line: an unknown key fails with DVC's "Invalid --set-param value" instead of adding it.
    """
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides

    for params_file, file_overrides in to_path_overrides(overrides).items():
        log.info("params overrides for %s: %s", params_file, " ".join(file_overrides))
        apply_overrides(Path(root) / params_file, file_overrides)


def save_experiment(root: Path, name: str | None = None, stages: list[str] | None = None) -> str:
    """Record the workspace (params, ``dvc.lock``, metrics) as a DVC experiment; return its commit.

    What ``dvc exp run`` commits at its end: the metrics files are git-ignored outputs, so they are
    included explicitly, or ``dvc exp show`` would list the experiment without its numbers.
    """
    from dvc.repo import Repo

    # force: a re-run under the same name (a scheduled deployment's) replaces the older one.
    include = [m for m in metrics_files(root, stages) if (Path(root) / m).exists()]
    with contextlib.chdir(Path(root).resolve()), Repo(".") as repo:
        # targets: only the stages that ran are saved, so a partial run does not trip on absent outputs.
        sha = repo.experiments.save(targets=stages, name=name, force=name is not None, include_untracked=include)
    log.info("experiment %s saved as %s (compare with `dvc exp show`)", name or "(auto-named)", sha)
    return sha
