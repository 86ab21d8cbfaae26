"""Statistical contract checks with Great Expectations: one ephemeral context, every suite, every rule.

Suites are plain JSON (``<table>.json``). A bound that depends on the run itself, such as "no later
than one day from now", cannot be frozen in JSON: the suite refers to it as ``{"$PARAMETER": name}``
and declares it in ``meta.parameters``; :func:`resolve_suite_parameters` computes it at validation time.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import pandas as pd

from unigrec.contracts.definitions import ContractDefinitionError
from unigrec.contracts.examples import example_rows, plain_value
from unigrec.contracts.report import CheckResults, Failure

log = logging.getLogger(__name__)

SOURCE = "great_expectations"
# kwargs that say how an expectation runs, not what it expects: left out of the failure's detail.
_BOOKKEEPING_KWARGS = {"column", "batch_id", "result_format", "catch_exceptions"}
# The package logger, and the module that sets its own logger to INFO when imported (GX 1.24).
_GX_CHATTY_LOGGERS = ("great_expectations", "great_expectations.data_context.types.base")


def resolve_suite_parameters(spec: dict[str, Any], now: float) -> dict[str, float | int]:
    """Values for a suite's ``$PARAMETER`` references, from its ``meta.parameters`` declaration.

    A declaration is either a number, or ``{"now_plus_seconds": S}``: the Unix time of this
    validation plus S seconds (S may be negative), so time bounds move with the calendar.
    """
    values: dict[str, float | int] = {}
    for name, declared in spec.items():
        if isinstance(declared, (int, float)) and not isinstance(declared, bool):
            values[name] = declared
        elif isinstance(declared, dict) and set(declared) == {"now_plus_seconds"}:
            values[name] = int(now + float(declared["now_plus_seconds"]))
        else:
            raise ContractDefinitionError(
                f"suite parameter {name!r}: expected a number or {{'now_plus_seconds': S}}, got {declared!r}"
            )
    return values


def check_with_suites(
    frames: dict[str, pd.DataFrame], suites: dict[str, dict[str, Any]], max_examples: int, now: float
) -> CheckResults:
    """Run each table's suite on its frame. Frames must have a default RangeIndex (see below)."""
    results = CheckResults()
    runnable = {t: f for t, f in frames.items() if t in suites}
    for table in sorted(frames.keys() - suites.keys()):
        results.skipped.append(f"{table}: no Great Expectations suite, statistical rules not run")
    if not runnable:
        return results

    _quiet_great_expectations()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    _quiet_great_expectations()  # again: importing GX resets one of its loggers to INFO

    # One ephemeral context per validation: writes no files, and data-source names never clash.
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("unigrec_tables")
    for table, frame in runnable.items():
        # GX 1.24 misreads null masks on a non-default index (every value counted null), and its
        # unexpected_index_list must line up with our example rows: insist on positions as labels.
        if not frame.index.equals(pd.RangeIndex(len(frame))):
            raise ValueError(f"{table}: frame must have a default RangeIndex for Great Expectations")
        spec = suites[table]
        kept, skipped = _expectations_for_columns(spec, frame, table)
        results.skipped.extend(skipped)
        suite = gx.ExpectationSuite(
            name=str(spec.get("name", table)),
            meta=spec.get("meta", {}),
            expectations=[_build_expectation(e, table) for e in kept],
        )
        parameters = resolve_suite_parameters(spec.get("meta", {}).get("parameters", {}), now)
        batch = (
            source.add_dataframe_asset(table)
            .add_batch_definition_whole_dataframe("whole")
            .get_batch(batch_parameters={"dataframe": frame})
        )
        try:
            outcome = batch.validate(
                suite,
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": max_examples},
                expectation_parameters=parameters,
            )
        except gx.exceptions.SuiteParameterError as exc:
            raise ContractDefinitionError(
                f"suite {table}: {exc} (declare it under meta.parameters in {table}.json)"
            ) from exc
        results.checks_run += len(outcome.results)
        for result in outcome.results:
            if not result.success:
                results.failures.append(_failure_from_result(table, frame, result, max_examples))
        log.debug("%s: %d expectation(s) evaluated", table, len(outcome.results))
    return results


def _quiet_great_expectations() -> None:
    """Keep GX's warnings but not the dozens of INFO lines it logs per import and context, unless
    the user asked for DEBUG logs."""
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return
    for name in _GX_CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _build_expectation(spec: dict[str, Any], table: str) -> Any:
    """One expectation from its JSON. Built one by one because ``ExpectationSuite`` only logs a
    malformed expectation and drops it, which would silently switch a rule off."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    try:
        return ExpectationConfiguration(**spec).to_domain_obj()
    except Exception as exc:  # GX raises many types here; every one means "fix the suite JSON"
        raise ContractDefinitionError(
            f"suite {table}.json: expectation {spec.get('type')!r} is invalid: {type(exc).__name__}: {exc}"
        ) from exc


def _expectations_for_columns(
    spec: dict[str, Any], frame: pd.DataFrame, table: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Drop expectations on columns the frame lacks: the missing column is already a failure."""
    kept, skipped = [], []
    for expectation in spec.get("expectations", []):
        column = expectation.get("kwargs", {}).get("column")
        if column is not None and column not in frame.columns:
            skipped.append(f"{table}.{column}: {expectation.get('type')} not run (column missing)")
        else:
            kept.append(copy.deepcopy(expectation))
    return kept, skipped


def _failure_from_result(table: str, frame: pd.DataFrame, result: Any, max_examples: int) -> Failure:
    config = result.expectation_config
    column = config.kwargs.get("column")
    expected = ", ".join(
        f"{k}={_readable(v)}" for k, v in sorted(config.kwargs.items()) if k not in _BOOKKEEPING_KWARGS
    )
    error = _exception_message(result.exception_info)
    body = result.result or {}
    failing_rows: int | None = None
    examples: list[dict[str, Any]] = []
    if error:
        detail = f"could not be evaluated: {error}"
    elif "unexpected_count" in body:
        failing_rows = int(body["unexpected_count"])
        examples = example_rows(frame, body.get("partial_unexpected_index_list") or [], max_examples)
        detail = f"expected {expected}"
    else:
        detail = f"observed {plain_value(body.get('observed_value'))}, expected {expected}"
    return Failure(
        table=table,
        column=column,
        rule=config.type,
        failing_rows=failing_rows,
        examples=examples,
        detail=detail,
        source=SOURCE,
    )


def _readable(value: Any) -> Any:
    # GX turns every bound into a float; 1795705919.0 reads worse than the Unix time it is.
    value = plain_value(value)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _exception_message(info: Any) -> str:
    """GX reports an exception either flat or keyed by metric id; return the first message, or ''."""
    if not isinstance(info, dict):
        return ""
    if "raised_exception" in info:
        return str(info.get("exception_message") or "") if info["raised_exception"] else ""
    for nested in info.values():
        message = _exception_message(nested)
        if message:
            return message
    return ""
