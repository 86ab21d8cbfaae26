"""Validate canonical tables against every contract and collect all failures into one report.

Order of business: reading problems (missing file, corrupt parquet, bad UTF-8), then the pandera
models (types, nulls, uniqueness, value ranges), the Great Expectations suites (row counts, null
rates, time window, label rate, lengths) and the cross-table rules. Nothing stops at the first
failure: the report lists everything wrong with the data at once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from unigrec.config import ValidateConfig
from unigrec.contracts.definitions import Contracts, load_contracts
from unigrec.contracts.expectations import check_with_suites
from unigrec.contracts.reading import path_problem, read_table
from unigrec.contracts.relations import check_foreign_keys
from unigrec.contracts.report import CheckResults, Failure, ValidationReport
from unigrec.contracts.schema_checks import check_with_model

log = logging.getLogger(__name__)

PARQUET_SUFFIX = ".parquet"


def validate_tables(tables: dict[str, pd.DataFrame], cfg: ValidateConfig) -> ValidationReport:
    """Validate in-memory tables (name -> frame). Tables not given are not checked, nor are rules
    that need them; a name the contracts do not know is a ``known_table`` failure."""
    contracts = load_contracts(Path(cfg.contracts_dir))
    return _validate(tables, contracts, cfg.max_examples, CheckResults())


def validate_paths(
    paths: list[Path], cfg: ValidateConfig, report_dir: Path | None = None
) -> ValidationReport:
    """Validate parquet tables on disk and optionally write ``validation.json``/``.md`` to ``report_dir``.

    Each PATH is a folder (every table of the contracts is expected in it as ``<table>.parquet``; one
    that is absent fails ``table_present``) or a parquet file named after its table (``items.parquet``).
    """
    contracts = load_contracts(Path(cfg.contracts_dir))
    located, reading = _locate_tables([Path(p) for p in paths], contracts.tables)
    frames: dict[str, pd.DataFrame] = {}
    for table, path in located.items():
        log.info("reading %s from %s", table, path)
        frame, failures = read_table(path, table, cfg.max_examples)
        reading.failures.extend(failures)
        reading.checks_run += 1
        if frame is not None:
            frames[table] = frame
    report = _validate(frames, contracts, cfg.max_examples, reading)
    if report_dir is not None:
        report.write(Path(report_dir))
        log.info("validation report written to %s", report_dir)
    return report


def _locate_tables(paths: list[Path], tables: list[str]) -> tuple[dict[str, Path], CheckResults]:
    located: dict[str, Path] = {}
    results = CheckResults()
    for path in paths:
        problem = path_problem(path) if not path.is_dir() and path.stem not in tables else None
        if problem is not None:  # a PATH that is no folder of tables nor a table file: say what it is
            results.checks_run += 1
            results.failures.append(Failure(table=path.name, column=None, rule=problem[0], failing_rows=None,
                                            examples=[], detail=problem[1], source="reading"))
            continue
        if path.is_dir():
            candidates = {table: path / f"{table}{PARQUET_SUFFIX}" for table in tables}
        else:
            candidates = {path.stem: path}
        for table, file in candidates.items():
            results.checks_run += 1
            if table not in tables:
                results.failures.append(_unknown_table(table, tables, f"file {file}"))
            elif table in located and located[table] != file:
                results.failures.append(
                    Failure(
                        table=table,
                        column=None,
                        rule="table_given_once",
                        failing_rows=None,
                        examples=[],
                        detail=f"given as both {located[table]} and {file}",
                        source="reading",
                    )
                )
            else:
                located[table] = file
    return located, results


def _validate(
    tables: dict[str, pd.DataFrame], contracts: Contracts, max_examples: int, results: CheckResults
) -> ValidationReport:
    started = time.perf_counter()
    frames: dict[str, pd.DataFrame] = {}
    for table, frame in tables.items():
        if table in contracts.models:
            # Positions as labels: example rows then name the row number in the file, and GX needs it.
            frames[table] = frame.reset_index(drop=True)
        else:
            results.failures.append(_unknown_table(table, contracts.tables, "table"))

    for table, frame in frames.items():
        log.info("checking %s (%d rows) against its pandera model", table, len(frame))
        results.merge(check_with_model(table, frame, contracts.models[table], max_examples))
    log.info("checking statistical rules (Great Expectations)")
    results.merge(check_with_suites(frames, contracts.suites, max_examples, now=time.time()))
    results.merge(check_foreign_keys(frames, contracts.foreign_keys, max_examples))

    order = {t: i for i, t in enumerate(contracts.tables)}
    failures = sorted(
        results.failures,
        key=lambda f: (order.get(f.table, len(order)), f.table, f.column or "", f.rule),
    )
    report = ValidationReport(
        success=not failures,
        failures=failures,
        row_counts={t: len(frames[t]) for t in contracts.tables if t in frames},
        checks_run=results.checks_run,
        skipped=results.skipped,
    )
    log.info(
        "validation %s: %d checks, %d failure(s) in %.1fs",
        "passed" if report.success else "FAILED",
        report.checks_run,
        len(failures),
        time.perf_counter() - started,
    )
    return report


def _unknown_table(table: str, known: list[str], what: str) -> Failure:
    return Failure(
        table=table,
        column=None,
        rule="known_table",
        failing_rows=None,
        examples=[],
        detail=f"{what} names no contract; known tables: {', '.join(known)}",
        source="reading",
    )
