"""Dotted-key overrides of a parsed params.yaml, shared by the benchmark scripts.

A typo must fail loudly: an override of a key params.yaml does not have would otherwise add a knob no
stage reads, and the benchmark would silently measure the defaults.
"""

from __future__ import annotations

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
