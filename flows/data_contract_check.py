"""Prefect flow ``data-contract-check``: validate a new data drop against data_contracts/, fail loudly.

For CI and for a scheduled data-quality job. The full report (every broken rule, with examples) is a
Markdown artifact of the run, and the run fails when any rule is broken.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prefect import flow

from flows.run_context import publish_markdown, run_logger
from unigrec.config import PARAMS_FILE, load_section
from unigrec.errors import ContractViolation
from unigrec.paths import Layout


@flow(name="data-contract-check")
def data_contract_check(drop_path: str, root: str = ".", report_dir: str | None = None) -> dict[str, Any]:
    """Validate the canonical parquet tables in ``drop_path`` (relative to ``root`` unless absolute).

    Raises ContractViolation, naming every broken rule, after publishing the report; optionally writes
    ``validation.json``/``.md`` to ``report_dir`` as well.
    """
    from unigrec.contracts.runner import validate_paths

    layout = Layout(Path(root))
    cfg = load_section("validate", layout.root / PARAMS_FILE)
    cfg = dataclasses.replace(cfg, contracts_dir=str(layout.resolve(cfg.contracts_dir)))
    drop = layout.resolve(drop_path)
    report = validate_paths([drop], cfg, report_dir=Path(report_dir) if report_dir else None)
    publish_markdown("data-contract-report", report.to_markdown(), f"data contract validation of {drop}")
    if not report.success:
        raise ContractViolation(f"data drop {drop}: {report.describe_failures()}")
    run_logger(__name__).info("data drop %s passed every contract (%d checks)", drop, report.checks_run)
    return report.to_json_dict()

