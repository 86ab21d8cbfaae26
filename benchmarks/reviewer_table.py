"""One table a reviewer can check (issue 38 item 4): published figures beside ours on the same dataset, each of
our rows read from the results file of the block that measured it, mean ± std over its seeds, with the facts
of each split (items, ties, the seen-item rule) stated above its rows. Nothing trains here: a row whose runs
do not exist yet says which command makes them, so the table is also the list of what is left to run.

A spec (``benchmarks/specs/*-reviewer.yaml``) lists sections; a section's rows are either published figures
(``hr@10``, ``ndcg@10``, optionally ``auc``, with their ``source``), a row of a ``quality.py`` results file
(``results`` + ``row``), or a ``library_reference.py`` run (``library``: its data label; ``graded_by``: ``ours``
or ``library``, the metric code that graded the same lists). Every section of ours names its split's facts.

    python benchmarks/reviewer_table.py --spec benchmarks/specs/ml1m-reviewer.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package, when run as a script

from benchmarks.markdown_block import write_block
from benchmarks.quality import cell, dig, summary, wrap

RESULTS = ROOT / "benchmarks" / "results"
LIBRARY_RESULTS = "library_reference.json"
METRICS = ("hr@10", "ndcg@10", "auc")
QUALITY_PATHS = {"hr@10": ("test", "rec", "full", "hr@10"), "ndcg@10": ("test", "rec", "full", "ndcg@10"),
                 "auc": ("test", "ranking", "auc")}
MIN_SEEDS = 3  # a row of ours with fewer seeds is flagged: the issue asks mean ± std over 3


@dataclasses.dataclass(frozen=True)
class Figures:
    """A row's values per metric (one value per seed; a published row has one value and no seeds)."""

    values: dict[str, list[float]]
    seeds: tuple[str, ...] = ()
    missing: str = ""  # why the row has no figures yet, and how to make them


def published(raw: Mapping[str, Any]) -> Figures:
    return Figures({m: [float(raw[m])] for m in METRICS if raw.get(m) is not None})


def quality_row(results_dir: Path, name: str, row: str) -> Figures:
    """Test figures of one row of a ``quality.py`` results file, per seed."""
    path = results_dir / name
    runs = json.loads(path.read_text(encoding="utf-8")).get("runs", {}).get(row, {}) if path.exists() else {}
    if not runs:
        spec = Path("benchmarks/specs") / name.replace(".json", ".yaml")
        return Figures({}, missing=f"not run yet (`python benchmarks/quality.py --root ROOT --spec {spec}"
                                   f" --rows \"{row}\"`)")
    values: dict[str, list[float]] = {}
    for metric, keys in QUALITY_PATHS.items():
        found = [dig(run, keys) for run in runs.values()]
        if all(v is not None for v in found):
            values[metric] = found  # type: ignore[assignment]
    return Figures(values, tuple(sorted(runs)))


def library_row(results_dir: Path, label: str, graded_by: str) -> Figures:
    """HR/NDCG@10 of a ``library_reference.py`` run, graded by our metric code or the library's own."""
    path = results_dir / LIBRARY_RESULTS
    run = json.loads(path.read_text(encoding="utf-8")).get("runs", {}).get(label) if path.exists() else None
    if not run:
        return Figures({}, missing=f"not run yet (`python benchmarks/library_reference.py --root ROOT --label {label}"
                                   " --seeds 11 12 13`)")
    per = run["seeds"]
    return Figures({m: [float(r[graded_by][m]) for r in per.values()] for m in ("hr@10", "ndcg@10")},
                   tuple(sorted(per)))


def figures_of(raw: Mapping[str, Any], results_dir: Path) -> Figures:
    if "results" in raw:
        return quality_row(results_dir, str(raw["results"]), str(raw["row"]))
    if "library" in raw:
        if raw.get("graded_by") not in ("ours", "library"):
            raise SystemExit(f"row {raw.get('label')!r}: graded_by must be 'ours' or 'library'")
        return library_row(results_dir, str(raw["library"]), str(raw["graded_by"]))
    if not any(m in raw for m in METRICS):
        raise SystemExit(f"row {raw.get('label')!r} names no figures, results file or library run")
    return published(raw)


def table_lines(rows: Sequence[Mapping[str, Any]], results_dir: Path, ours: bool) -> list[str]:
    head = "| row | rec HR@10 | rec NDCG@10 | ranking AUC | " + ("seeds | from |" if ours else "source |")
    lines = [head, "|---|---:|---:|---:|" + ("---|---|" if ours else "---|")]
    for raw in rows:
        fig = figures_of(raw, results_dir)
        cells = " | ".join(cell(summary(fig.values.get(m, []))) for m in METRICS)
        if not ours:
            lines.append(f"| {raw['label']} | {cells} | {raw.get('source', '')} |")
            continue
        where = f"`{raw['results']}`" if "results" in raw else f"`{LIBRARY_RESULTS}` ({raw['library']})"
        if fig.missing:
            lines.append(f"| {raw['label']} | – | – | – | {fig.missing} | {where} |")
            continue
        short = f" (fewer than {MIN_SEEDS})" if len(fig.seeds) < MIN_SEEDS else ""
        lines.append(f"| {raw['label']} | {cells} | {', '.join(fig.seeds)}{short} | {where} |")
    return lines


def render(spec: Mapping[str, Any], results_dir: Path = RESULTS) -> str:
    note = f" [notes]({spec['note']})" if spec.get("note") else ""
    lines = [f"## {spec['title']} (`benchmarks/reviewer_table.py`)", "",
             (f"Command: `python benchmarks/reviewer_table.py --spec {spec['path']}` (reads the results files, "
              f"trains nothing).{note}"), ""]
    if spec.get("notes"):
        lines += [wrap(str(spec["notes"]).strip()), ""]
    for section in spec["sections"]:
        ours = section.get("kind", "ours") == "ours"
        lines += [f"**{section['heading']}**", ""]
        if section.get("facts"):
            lines += [wrap(str(section["facts"]).strip()), ""]
        lines += [*table_lines(section["rows"], results_dir, ours), ""]
    return "\n".join(lines).rstrip("\n")


def load(path: Path) -> dict[str, Any]:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    missing = {"block", "title", "sections"} - set(spec)
    if missing:
        raise SystemExit(f"{path}: missing {sorted(missing)}")
    for section in spec["sections"]:
        if section.get("kind", "ours") not in ("ours", "published"):
            raise SystemExit(f"{path}: section {section.get('heading')!r}: kind is 'ours' or 'published'")
        if section.get("kind", "ours") == "ours" and not section.get("facts"):
            raise SystemExit(f"{path}: section {section.get('heading')!r} of ours must state its split's facts")
    return {**spec, "path": path.resolve().relative_to(ROOT).as_posix() if path.resolve().is_relative_to(ROOT)
            else str(path)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", required=True, help="the table's spec (benchmarks/specs/*-reviewer.yaml)")
    p.add_argument("--results-dir", default=str(RESULTS), help="where the results files are")
    p.add_argument("--benchmarks-file", default=str(ROOT / "BENCHMARKS.md"))
    args = p.parse_args(argv)
    spec = load(Path(args.spec))
    block = render(spec, Path(args.results_dir))
    print(block)
    write_block(Path(args.benchmarks_file), spec["block"], block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
