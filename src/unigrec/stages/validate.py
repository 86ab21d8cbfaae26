"""DVC stage ``validate``: check the canonical tables against data_contracts/ and stop the pipeline on
any violation, after writing the report that says what is wrong."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from unigrec.atomic import stage_outputs
from unigrec.config import RuntimeConfig, ValidateConfig
from unigrec.contracts.runner import validate_paths
from unigrec.errors import ContractViolation
from unigrec.paths import Layout

log = logging.getLogger(__name__)


def run(cfg: ValidateConfig, layout: Layout, runtime: RuntimeConfig | None = None) -> dict[str, Any]:
    """Validate ``layout.items/interactions/searches``; write the report always, raise on violations."""
    cfg = dataclasses.replace(cfg, contracts_dir=str(layout.resolve(cfg.contracts_dir)))
    report = validate_paths([layout.items, layout.interactions, layout.searches], cfg)
    # Written on failure too: the report is the diagnosis a failed `dvc repro` points to.
    reports = [layout.validation_json, layout.validation_md]
    with stage_outputs(layout.root, "validate", files=reports) as out:
        report.write_json(out[layout.validation_json])
        report.write_markdown(out[layout.validation_md])
    if not report.success:
        raise ContractViolation(f"{report.describe_failures()}\n(full report: {layout.validation_md})")
    return {"row_counts": report.row_counts, "checks_run": report.checks_run}
