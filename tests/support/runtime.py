"""The ``runtime`` section a test's stages run with: params.yaml's, with any field replaced."""

from __future__ import annotations

import dataclasses
from typing import Any

from unigrec.config import RuntimeConfig, load_section

from . import REPO

PARAMS = REPO / "params.yaml"


def runtime_config(**overrides: Any) -> RuntimeConfig:
    """params.yaml's runtime section, progress bars off (test logs stay readable), ``overrides`` applied;
    nested sections take a dict of their fields, e.g. ``batch_sizes={"evaluation_prompts": 8}``."""
    runtime = dataclasses.replace(load_section("runtime", PARAMS), progress_bar=False)
    for name in ("torch_threads", "batch_sizes"):
        if isinstance(overrides.get(name), dict):
            overrides[name] = dataclasses.replace(getattr(runtime, name), **overrides[name])
    return dataclasses.replace(runtime, **overrides)
