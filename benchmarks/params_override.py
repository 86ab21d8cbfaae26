"""A dotted-key edit of a parsed params mapping, for ``precision_bench.py``'s in-process training rows only.

Every other benchmark changes params the product's way (``benchmarks/project_copy.py``: overlays and
``--set`` written by DVC's writer); this goes once precision_bench runs its rows through that path too.
A typo must fail loudly: an unknown key would add a knob no stage reads and silently measure the defaults.
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
