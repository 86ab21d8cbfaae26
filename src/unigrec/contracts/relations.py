"""Cross-table rules, which Great Expectations cannot express: every referenced item must exist."""

from __future__ import annotations

import pandas as pd

from unigrec.contracts.definitions import ForeignKey
from unigrec.contracts.examples import example_rows
from unigrec.contracts.report import CheckResults, Failure

RULE = "referential_integrity"
SOURCE = "relations"


def check_foreign_keys(
    frames: dict[str, pd.DataFrame], foreign_keys: list[ForeignKey], max_examples: int
) -> CheckResults:
    """Check each foreign key; a key whose table or column is absent is skipped (already reported)."""
    results = CheckResults()
    for key in foreign_keys:
        child = frames.get(key.child_table)
        parent = frames.get(key.parent_table)
        missing = _missing_part(key, child, parent)
        if child is None or parent is None or missing:
            results.skipped.append(f"{RULE} {key}: not run ({missing})")
            continue
        results.checks_run += 1
        values = child[key.child_column]
        # Nulls are the nullability rule's business; counting them here would report them twice.
        dangling = values.notna() & ~values.isin(parent[key.parent_column].dropna().unique())
        n_dangling = int(dangling.sum())
        if n_dangling:
            results.failures.append(
                Failure(
                    table=key.child_table,
                    column=key.child_column,
                    rule=RULE,
                    failing_rows=n_dangling,
                    examples=example_rows(child, child.index[dangling.to_numpy()], max_examples),
                    detail=f"{key}: {n_dangling} of {len(child)} rows reference a value missing from "
                    f"{key.parent_table}.{key.parent_column}",
                    source=SOURCE,
                )
            )
    return results


def _missing_part(key: ForeignKey, child: pd.DataFrame | None, parent: pd.DataFrame | None) -> str:
    if child is None:
        return f"table {key.child_table} not available"
    if parent is None:
        return f"table {key.parent_table} not available"
    if key.child_column not in child.columns:
        return f"column {key.child_table}.{key.child_column} missing"
    if key.parent_column not in parent.columns:
        return f"column {key.parent_table}.{key.parent_column} missing"
    return ""
