"""The ``ingest.queries`` section a test's recast runs with: params.yaml's, with any field replaced."""

from __future__ import annotations

import dataclasses
from typing import Any

from unigrec.config import QueryConfig, load_section

from . import REPO


def query_config(**overrides: Any) -> QueryConfig:
    """params.yaml's ``ingest.queries`` with ``overrides`` applied, so a test names only what it relies on
    and follows the shipped defaults (generator, form weights) otherwise."""
    return dataclasses.replace(load_section("ingest", REPO / "params.yaml").queries, **overrides)
