"""One result shape for every kind of contract check, and its JSON and Markdown renderings."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from unigrec.atomic import atomic_file, write_json

REPORT_JSON = "validation.json"
REPORT_MD = "validation.md"


@dataclasses.dataclass(frozen=True)
class Failure:
    """One broken rule: where, which rule, how many rows and a few of them.

    ``column`` is None when the rule is about the whole table (row count, unreadable file);
    ``failing_rows`` is None when it is about a table or column as a whole (missing column, wrong type),
    where counting rows would mean nothing.
    """

    table: str
    column: str | None
    rule: str  # pandera check name, GX expectation type, or a reading / relational rule name
    failing_rows: int | None
    examples: list[dict[str, Any]]
    detail: str
    source: str  # "reading" | "pandera" | "great_expectations" | "relations"

    @property
    def where(self) -> str:
        return f"{self.table}.{self.column}" if self.column else self.table

    def describe(self) -> str:
        """One line for logs and exception messages."""
        count = "whole column/table" if self.failing_rows is None else f"{self.failing_rows} failing row(s)"
        text = f"{self.where}: {self.rule} ({count})"
        if self.detail:
            text += f" - {self.detail}"
        if self.examples:
            text += "; examples: " + "; ".join(_compact(e) for e in self.examples)
        return text


@dataclasses.dataclass
class CheckResults:
    """What one family of checks found; the runner merges these into one report."""

    failures: list[Failure] = dataclasses.field(default_factory=list)
    checks_run: int = 0
    skipped: list[str] = dataclasses.field(default_factory=list)  # checks that could not apply, and why

    def merge(self, other: CheckResults) -> None:
        self.failures.extend(other.failures)
        self.checks_run += other.checks_run
        self.skipped.extend(other.skipped)


@dataclasses.dataclass(frozen=True)
class ValidationReport:
    """Everything a validation found. ``success`` is True only when no rule failed."""

    success: bool
    failures: list[Failure]
    row_counts: dict[str, int]  # rows per table that could be read
    checks_run: int
    skipped: list[str]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "n_failures": len(self.failures),
            "checks_run": self.checks_run,
            "row_counts": dict(self.row_counts),
            "failures": [dataclasses.asdict(f) for f in self.failures],
            "skipped": list(self.skipped),
        }

    def to_markdown(self) -> str:
        status = "PASSED" if self.success else f"FAILED ({len(self.failures)} rule(s) broken)"
        counts = ", ".join(f"{t}: {n:,} rows" for t, n in self.row_counts.items()) or "no table read"
        lines = [
            "# Data contract validation",
            "",
            f"**{status}** - {self.checks_run} checks run; {counts}.",
            "",
        ]
        if self.failures:
            lines += [
                "| table | column | rule | failing rows | detail | examples |",
                "|---|---|---|---|---|---|",
            ]
            for f in self.failures:
                count = "whole" if f.failing_rows is None else str(f.failing_rows)
                examples = "<br>".join(_compact(e) for e in f.examples)
                cells = [f.table, f.column or "-", f.rule, count, f.detail, examples]
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
            lines.append("")
        if self.skipped:
            lines += ["Checks not run:", ""] + [f"- {s}" for s in self.skipped] + [""]
        return "\n".join(lines)

    def describe_failures(self) -> str:
        """Every failure on its own line: the message of the ContractViolation the stage raises."""
        header = f"{len(self.failures)} data contract rule(s) broken:"
        return "\n".join([header] + [f"  - {f.describe()}" for f in self.failures])

    def write_json(self, path: Path) -> None:
        write_json(Path(path), self.to_json_dict())

    def write_markdown(self, path: Path) -> None:
        with atomic_file(Path(path)) as fh:
            fh.write(self.to_markdown())

    def write(self, folder: Path) -> None:
        """Write ``validation.json`` and ``validation.md`` into ``folder`` (each atomically)."""
        folder = Path(folder)
        self.write_json(folder / REPORT_JSON)
        self.write_markdown(folder / REPORT_MD)


def _compact(example: dict[str, Any]) -> str:
    return json.dumps(example, ensure_ascii=False, sort_keys=False, default=str)


def _cell(text: str) -> str:
    # A pipe or a newline inside a cell would break the Markdown table.
    return str(text).replace("|", "\\|").replace("\n", " ")
