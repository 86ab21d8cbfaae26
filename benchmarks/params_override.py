"""Dotted-key overrides of a parsed params.yaml, shared by the benchmark scripts.

A typo must fail loudly: an override of a key params.yaml does not have would otherwise add a knob no
stage reads, and the benchmark would silently measure the defaults. ``set_param`` edits a parsed params
dict (the seeds' and precision rows); ``write_param_overrides`` writes ``--set`` overrides into a project
copy's params.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def set_param(params: dict[str, Any], key: str, value: Any) -> None:
    """``params["a"]["b"]["c"] = value`` for ``key`` "a.b.c"; unknown sections or keys raise SystemExit."""
    *parents, leaf = key.split(".")
    node = params
    for part in parents:
        if not isinstance(node.get(part), dict):
            raise SystemExit(f"override {key}: {part!r} is not a params section")
        node = node[part]
    if leaf not in node:
        raise SystemExit(f"override {key}: no such key in params.yaml")
    node[leaf] = value


def write_param_overrides(root: Path, overrides: list[str]) -> list[str]:
    """Write ``--set KEY=VALUE`` overrides into ``root``'s params.yaml with DVC's writer, the one
    ``dvc exp run -S`` and the product's flows use, so params.yaml keeps its comments and a benchmark
    parses an override exactly as the pipeline would.

    ``ingest.path`` is resolved against the directory the command was given in, where the user typed it,
    since the stages read it relative to the project root, which is somewhere else. A benchmark only
    changes existing knobs: Hydra's ``+key`` (add) and ``~key`` (delete) are refused, and an unknown key
    fails with DVC's message turned into a SystemExit that names it. Returns the overrides as written
    (``ingest.path`` absolute), for the copy's commit message."""
    from dvc.exceptions import InvalidArgumentError

    from unigrec.pipeline import apply_param_overrides

    for assignment in overrides:
        if assignment.startswith(("+", "~")):
            raise SystemExit(f"--set {assignment!r}: benchmarks change existing params only (no +/~)")
    written = [resolve_ingest_path(a) for a in overrides]
    try:
        apply_param_overrides(root, written)
    except InvalidArgumentError as err:  # its own text is generic; the cause names the override
        raise SystemExit(f"--set: {err.__cause__ or err}") from err
    return written


def resolve_ingest_path(assignment: str) -> str:
    """``ingest.path=REL`` made absolute against the current directory; any other override unchanged."""
    key, sep, value = assignment.partition("=")
    return f"{key}={Path(value).resolve()}" if sep and key == "ingest.path" and value != "null" else assignment
