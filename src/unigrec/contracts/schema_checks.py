"""Row-level contract checks with pandera: every failure of a table in one lazy pass."""

from __future__ import annotations

from typing import Any

import pandas as pd

from unigrec.contracts.examples import example_rows, plain_value
from unigrec.contracts.report import CheckResults, Failure

SOURCE = "pandera"
# pandera reports these at DataFrameSchema level with the column's name in ``failure_case``.
_COLUMN_PRESENCE_CHECKS = {
    "column_in_dataframe": "column required by the contract is missing",
    "column_in_schema": "column is not in the contract (strict)",
}


def check_with_model(table: str, frame: pd.DataFrame, model: Any, max_examples: int) -> CheckResults:
    """Validate ``frame`` against a pandera ``DataFrameModel``, collecting all failures (lazy)."""
    import pandera.errors

    schema = model.to_schema()
    results = CheckResults(checks_run=count_schema_checks(schema))
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        results.failures.extend(_failures_from_cases(table, frame, exc.failure_cases, max_examples))
    return results


def count_schema_checks(schema: Any) -> int:
    """How many rules a schema applies: presence, type, nullability, uniqueness and value checks."""
    total = len(schema.checks) + int(bool(schema.strict))
    for column in schema.columns.values():
        total += 2  # present, right dtype
        total += int(not column.nullable) + int(bool(column.unique)) + len(column.checks)
    return total


def _failures_from_cases(
    table: str, frame: pd.DataFrame, cases: pd.DataFrame, max_examples: int
) -> list[Failure]:
    cases = cases.copy()
    is_presence = cases["check"].isin(list(_COLUMN_PRESENCE_CHECKS))
    # Presence failures name the table in "column" and the column in "failure_case": swap to the column.
    cases["target"] = cases["column"].where(~is_presence, cases["failure_case"])
    frame_level = (cases["schema_context"] == "DataFrameSchema") & ~is_presence
    cases.loc[frame_level, "target"] = None

    failures = []
    for (column, check), group in cases.groupby(["target", "check"], dropna=False, sort=True):
        column = None if pd.isna(column) else str(column)
        failures.append(_failure_for_group(table, column, str(check), group, frame, max_examples))
    return failures


def _failure_for_group(
    table: str, column: str | None, check: str, group: pd.DataFrame, frame: pd.DataFrame, max_examples: int
) -> Failure:
    labels = list(dict.fromkeys(group["index"].dropna().tolist()))
    if labels:
        values = list(dict.fromkeys(str(plain_value(v)) for v in group["failure_case"]))
        # A rule on whole rows (duplicates) lists every cell of each row as a "value": the rows say it better.
        detail = "failing values: " + ", ".join(values[:max_examples]) if column is not None else (
            "failing rows (every column shown in the examples)")
        return Failure(
            table=table,
            column=column,
            rule=check,
            failing_rows=len(labels),
            examples=example_rows(frame, labels, max_examples),
            detail=detail,
            source=SOURCE,
        )
    # No row index: the rule is about the column as a whole (presence, dtype) or it could not run.
    if check in _COLUMN_PRESENCE_CHECKS:
        detail = _COLUMN_PRESENCE_CHECKS[check]
    elif check.startswith("dtype("):
        detail = f"expected {check[len('dtype(') : -1]}, found {group['failure_case'].iloc[0]}"
    else:
        detail = f"check could not run: {group['failure_case'].iloc[0]}"
    shown = [column] if column is not None and column in frame.columns else []
    examples = example_rows(frame, frame.index[:max_examples], max_examples, columns=shown) if shown else []
    return Failure(
        table=table,
        column=column,
        rule=check,
        failing_rows=None,
        examples=examples,
        detail=detail,
        source=SOURCE,
    )
