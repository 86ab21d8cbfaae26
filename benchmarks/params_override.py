"""Dotted-key overrides of a parsed params.yaml, shared by the benchmark scripts.

A typo must fail loudly: an override of a key params.yaml does not have would otherwise add a knob no
stage reads, and the benchmark would silently measure the defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


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


def apply_override(params: dict[str, Any], assignment: str) -> None:
    """``a.b.c=VALUE`` -> params["a"]["b"]["c"] = yaml(VALUE); unknown keys are an error, not a new knob."""
    key, sep, raw = assignment.partition("=")
    if not sep:
        raise SystemExit(f"--set {assignment!r}: expected KEY=VALUE")
    set_param(params, key, yaml.safe_load(raw))


def override_params_file(params_file: Path, overrides: list[str]) -> None:
    """Apply ``--set KEY=VALUE`` overrides to a params.yaml in place (its comments are not kept).

    ``ingest.path`` is resolved against the directory the command was given in, where the user typed it,
    since the stages read it relative to the project root, which is somewhere else."""
    params = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    for assignment in map(resolve_ingest_path, overrides):
        apply_override(params, assignment)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def resolve_ingest_path(assignment: str) -> str:
    """``ingest.path=REL`` made absolute against the current directory; any other override unchanged."""
    key, sep, value = assignment.partition("=")
    return f"{key}={Path(value).resolve()}" if sep and key == "ingest.path" and value != "null" else assignment
