"""The baseline comparison table: the trained generative model against every baseline and reference
system, both protocols, on the project's TEST split, written into BENCHMARKS.md between the ``compare``
markers.

Usage (after `dvc repro train`, so data/split, data/ids and models/generative exist):

    python benchmarks/compare.py [--root .] [--baselines popularity sasrec bm25 dense] \
        [--systems tiger two_stage] [--work-dir DIR]

It runs the evaluate stage's own evaluation code (same cases, same rules) with the baseline list given
here instead of params' default, and leaves the stage's outputs untouched. The reference systems are
trained here, by the project's own stages, into throw-away roots under ``--work-dir`` that link the
project's data (``unigrec.train.reference_systems`` says what each changes):

- ``tiger``: TIGER-style generative retrieval: identifiers from the text embedding alone
  (``identifiers.mode: semantic_only``, the same sizes) and a retrieval-only model;
- ``two_stage``: the separate systems UniGRF replaces: a retrieval-only model and a ranking-only model
  on the project's dual IDs; the second re-ranks what the first retrieves.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package, when run as a script

from benchmarks.host import command_line, machine_line
from benchmarks.host import machine as host_machine
from benchmarks.markdown_block import write_block
from unigrec.config import PARAMS_FILE, load_section
from unigrec.evaluate.baselines import BASELINE_NAMES
from unigrec.evaluate.comparison import comparison_markdown
from unigrec.evaluate.evaluation import evaluate_test_split
from unigrec.evaluate.inputs import TestInputs, load_test_inputs
from unigrec.logs import setup_logging
from unigrec.paths import Layout
from unigrec.train.reference_systems import RANKING_ONLY, RETRIEVAL_ONLY, TIGER_IDENTIFIERS, merged

log = logging.getLogger("benchmarks.compare")


LOAD_NOTE = "; 1-minute load average at start"


def hardware() -> str:
    """The machine without its momentary load: what two runs must share for their minutes to compare.
    Memory stays out: stored records are matched by this very string, and never held it."""
    record = host_machine()
    record.pop("memory_gb")
    return machine_line(record)


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{hardware()}{LOAD_NOTE} {load:.1f}"


def hardware_of(machine_line: str) -> str:
    """The :func:`hardware` part of a :func:`machine` line: the load at start says nothing of the machine."""
    return machine_line.split(LOAD_NOTE)[0]


@dataclasses.dataclass(frozen=True)
class SystemPart:
    """One model of a reference system, trained by the train stage in its own scratch root ``name`` under the
    system's work folder. Named once so that training here and training elsewhere (``seeds.py --export``)
    build the same thing."""

    name: str
    linked: tuple[str, ...]  # the project's data folders the part reads
    train: dict[str, Any]  # override of the train params
    identifiers: dict[str, Any] | None = None  # TIGER: the part builds its own identifiers with this override


_DATA = ("data/canonical", "data/split")
# A system's first part retrieves; a second, where there is one, re-ranks what the first retrieves.
SYSTEM_PARTS: dict[str, tuple[SystemPart, ...]] = {
    "tiger": (SystemPart("tiger", _DATA, RETRIEVAL_ONLY, TIGER_IDENTIFIERS),),
    "two_stage": (SystemPart("retrieval", (*_DATA, "data/ids"), RETRIEVAL_ONLY),
                  SystemPart("ranking", (*_DATA, "data/ids"), RANKING_ONLY)),
}
SYSTEMS = tuple(SYSTEM_PARTS)


def scratch_root(root: Path, dest: Path, linked: tuple[str, ...]) -> Layout:
    """A project root whose inputs are links to ``root``'s (never written through) and whose outputs are
    its own; ``root``'s cached embeddings are linked so texts already embedded are not embedded again."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in linked:
        target, link = (root / rel).resolve(), dest / rel
        if target.exists() and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target)
    layout = Layout(dest)
    if (root / ".cache").is_dir():
        link_caches(root / ".cache", dest / ".cache", layout.train_work_dir)
    return layout


def link_caches(src: Path, dst: Path, own: Path) -> None:
    """Link every entry of cache folder ``src`` into ``dst``, except the run's own scratch ``own`` (the train
    stage's checkpoints and logs, which also live under ``.cache``) and real folders on the way to it:
    linking all of ``.cache`` made every run of one root write the same checkpoint folder, so two runs side
    by side would overwrite each other's best checkpoint."""
    if dst.is_symlink():  # a run folder made when the whole cache was one link
        dst.unlink()
    dst.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        target = dst / entry.name
        if target == own:
            continue
        if entry.is_dir() and own.is_relative_to(target):
            link_caches(entry, target, own)
        elif not target.exists() and not target.is_symlink():
            target.symlink_to(entry.resolve())


TRAINED_WITH = "trained_with.yaml"  # in a reference system's scratch root, once its model is written
IDENTIFIERS_WITH = "identifiers_with.yaml"  # beside it, once a part's own identifiers are written


def train_reference(raw: dict, layout: Layout, override: dict) -> Path:
    """The train stage with ``override`` applied to its params, into ``layout``; returns the model folder.

    A model this scratch root already holds from the same train params and the same input files is reused:
    the two-stage system trains two models of up to ~100 min each on ML-1M, and a benchmark re-run after
    an interruption in the second should not retrain the first (the second resumes by itself, see
    ``unigrec.train.resume``)."""
    from unigrec.config import TrainConfig, build_section
    from unigrec.stages import train

    section = merged(raw["train"], override)
    wanted = {"train": section, "inputs": reference_inputs(layout)}
    marker = layout.root / TRAINED_WITH
    if layout.model_dir.exists() and marker.exists() and yaml.safe_load(marker.read_text(encoding="utf-8")) == wanted:
        log.info("%s: a model trained with these params and inputs is already there, reused", layout.root)
        return layout.model_dir
    marker.unlink(missing_ok=True)
    train.run(build_section(TrainConfig, section, "train"), layout)
    marker.write_text(yaml.safe_dump(wanted, sort_keys=False), encoding="utf-8")
    return layout.model_dir


def reference_inputs(layout: Layout, with_ids: bool = True) -> str:
    """Fingerprint of what the train stage reads: the split, the catalogue and (``with_ids``) the identifiers."""
    from unigrec.registry.lineage import files_fingerprint

    paths = [layout.split_dir, layout.items, *([layout.ids_dir] if with_ids else [])]
    return files_fingerprint([p for p in paths if p.exists()])


def system_parts(name: str) -> tuple[SystemPart, ...]:
    if name not in SYSTEM_PARTS:
        raise ValueError(f"unknown reference system {name!r}; expected one of {SYSTEMS}")
    return SYSTEM_PARTS[name]


def part_root(work: Path, part: SystemPart) -> Path:
    """Where a part trains: a folder of the system's work folder (or of its export) named for the part."""
    return work / part.name


def part_params(raw: dict, part: SystemPart) -> dict:
    """The whole params a part's train stage runs with: what an exported part's params.yaml holds."""
    out = {**raw, "train": merged(raw["train"], part.train)}
    if part.identifiers is not None:
        out["identifiers"] = merged(raw["identifiers"], part.identifiers)
    return out


def prepare_part(root: Path, raw: dict, work: Path, part: SystemPart) -> Layout:
    """The part's scratch root under ``work`` with every input its train stage reads in place (TIGER's own
    identifiers built there)."""
    from unigrec.config import IdentifiersConfig, build_section
    from unigrec.stages import identifiers

    layout = scratch_root(root, part_root(work, part), part.linked)
    if part.identifiers is None:
        return layout
    # Built once per scratch root and params and inputs (ML-1M: ~10 minutes on 2 cores): a re-run of the same
    # seed, or one --export call's seeds (they share the scratch), reuse them, since the identifiers do not
    # depend on the train seed; the marker makes changed params or inputs rebuild them.
    section = part_params(raw, part)["identifiers"]
    wanted = {"identifiers": section, "inputs": reference_inputs(layout, with_ids=False)}
    marker = layout.root / IDENTIFIERS_WITH
    if layout.ids_table.exists() and marker.exists() and yaml.safe_load(marker.read_text(encoding="utf-8")) == wanted:
        log.info("%s: identifiers built with these params and inputs are already there, reused", layout.root)
        return layout
    marker.unlink(missing_ok=True)
    identifiers.run(build_section(IdentifiersConfig, section, "identifiers"), layout)
    marker.write_text(yaml.safe_dump(wanted, sort_keys=False), encoding="utf-8")
    return layout


def build_system(name: str, root: Path, raw: dict, work: Path) -> tuple[Path, Path | None, float]:
    """Train reference system ``name``: (retriever model folder, ranker model folder or None, seconds)."""
    started = time.perf_counter()
    models = [train_reference(raw, prepare_part(root, raw, work, part), part.train) for part in system_parts(name)]
    return models[0], (models[1] if len(models) > 1 else None), time.perf_counter() - started


def pipeline_table(metrics: dict, k: int) -> str:
    """Unified pipeline and ranking quality of the model and each reference system."""
    lines = [
        (f"| system | rec retrieval NDCG@{k} | rec retrieve + re-rank NDCG@{k} (w) | search retrieval NDCG@{k} "
         f"| search retrieve + re-rank NDCG@{k} (w) | ranking AUC | GAUC |"),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = {"unigrec (one model)": metrics["test"], **metrics.get("systems", {})}
    for name, block in rows.items():
        p, r = block["pipeline"], block["ranking"]
        cells = []
        for stream in ("rec", "search"):
            cells += [f"{p[stream][f'retrieval_only_ndcg@{k}']:.4f}",
                      f"{p[stream][f'ndcg@{k}']:.4f} ({p[stream]['fusion_weight']:g})"]
        auc, gauc = (f"{v:.4f}" if v is not None else "–" for v in (r.get("auc"), r.get("gauc")))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {auc} | {gauc} |")
    return "\n".join(lines)


# Published full-catalogue leave-one-out figures on MovieLens-1M (SASRec and HSTU from the HSTU repository's
# README, UniGRF from its paper, as summarised in ../shared/data/README.md). Reference data, not knobs.
PUBLISHED = {
    "ml-1m": {
        "SASRec (HSTU repo)": {"hr@10": 0.2853, "ndcg@10": 0.1603},
        "HSTU": {"hr@10": 0.3097, "ndcg@10": 0.1720},
        "UniGRF": {"hr@10": 0.3219, "ndcg@10": 0.1765, "auc": 0.7932},
    }
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=".", help="project root (params.yaml, data/, models/)")
    parser.add_argument("--baselines", nargs="*", default=list(BASELINE_NAMES), choices=BASELINE_NAMES)
    parser.add_argument("--systems", nargs="*", default=list(SYSTEMS), choices=SYSTEMS,
                        help="reference systems trained here (TIGER-style, two-stage)")
    parser.add_argument("--extra-model", action="append", default=[], metavar="LABEL=MODEL_DIR",
                        help="another trained model folder (same split) evaluated as a row, e.g. the atomic form")
    parser.add_argument("--work-dir", default=None,
                        help="where reference systems are trained (default: a temporary folder, removed)")
    parser.add_argument("--published", choices=sorted(PUBLISHED), default=None,
                        help="add the papers' figures on this dataset beside the rec results")
    parser.add_argument("--from-metrics", default=None, metavar="EVALUATE_JSON",
                        help="render the block from an evaluate stage's metrics file (its params named the "
                             "baselines) instead of scoring anything; --baselines/--systems are then ignored")
    parser.add_argument("--extra-metrics", action="append", default=[], metavar="LABEL=EVALUATE_JSON",
                        help="with --from-metrics: another model's evaluate metrics (same split) as a row")
    parser.add_argument("--block", default="compare", help="name of the BENCHMARKS.md block to (re)write")
    parser.add_argument("--title", default="Model vs baselines on the test split", help="the block's heading")
    parser.add_argument("--benchmarks-file", default="BENCHMARKS.md", help="file holding the marked block")
    parser.add_argument("--results", default="benchmarks/results/compare.json", help="raw metrics (JSON)")
    return parser.parse_args(argv)


def published_table(metrics: dict, dataset: str) -> str:
    """Our rec full-catalogue rows and ranking AUC beside the papers' figures, with the gap to UniGRF."""
    target = PUBLISHED[dataset]["UniGRF"]
    lines = [
        "| method | source | HR@10 | NDCG@10 | ranking AUC | HR@10 vs UniGRF | NDCG@10 vs UniGRF |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, figures in PUBLISHED[dataset].items():
        auc = figures.get("auc")
        lines.append(f"| {name} | published | {figures['hr@10']:.4f} | {figures['ndcg@10']:.4f} | "
                     f"{'–' if auc is None else f'{auc:.4f}'} | | |")
    ours = {MODEL_ROW: metrics["test"], **metrics.get("baselines", {})}
    for name, block in ours.items():
        full = block.get("rec", {}).get("full")
        if not full:
            continue
        ranking = metrics["test"]["ranking"] if name == MODEL_ROW else metrics.get("systems", {}).get(name, {}).get("ranking", {})
        auc = ranking.get("auc") if ranking else None
        lines.append(
            f"| {name} | this run | {full['hr@10']:.4f} | {full['ndcg@10']:.4f} | {'–' if auc is None else f'{auc:.4f}'} "
            f"| {full['hr@10'] - target['hr@10']:+.4f} | {full['ndcg@10'] - target['ndcg@10']:+.4f} |"
        )
    return "\n".join(lines)


MODEL_ROW = "unigrec (generative)"


def add_model_row(metrics: dict[str, Any], label: str, test: dict[str, Any]) -> None:
    """Another generative model's test metrics as a row of the tables (retrieval, pipeline, ranking)."""
    metrics.setdefault("baselines", {})[label] = {s: test[s] for s in ("rec", "search", "slices")}
    metrics.setdefault("systems", {})[label] = {
        "pipeline": test["pipeline"], "ranking": test["ranking"],
    }


def evaluate_row(
    cfg: Any, model_dir: Path, ranker_dir: Path | None, data: TestInputs, root: Path
) -> dict[str, Any]:
    """The model-side protocols of one more trained model (no baselines), on the same cases."""
    return evaluate_test_split(
        dataclasses.replace(cfg, baselines=()), model_dir, data.events, data.candidates, data.items,
        data.query_table, data.query_texts, None, root, ranker_dir=ranker_dir,
    ).metrics["test"]


def evaluate_system(
    cfg: Any, retriever: Path, ranker: Path | None, data: TestInputs, root: Path
) -> dict[str, Any]:
    """A reference system's test metrics. One without a ranking model (TIGER) keeps its retriever's order
    (fusion weight 0) and reports no ranking figures: a retrieval-only model's ranking head was never
    trained, so its AUC would be a coin toss presented as a result."""
    if ranker is not None:
        return evaluate_row(cfg, retriever, ranker, data, root)
    test = evaluate_row(dataclasses.replace(cfg, fusion_weights=(0.0,)), retriever, None, data, root)
    return {**test, "ranking": {}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    setup_logging(None)

    root = Path(args.root)
    layout = Layout(root)
    cfg = dataclasses.replace(load_section("evaluate", root / PARAMS_FILE), baselines=tuple(args.baselines))
    baselines_cfg = load_section("baselines", root / PARAMS_FILE)
    started_at = dt.datetime.now(dt.UTC)
    host = machine()
    if args.from_metrics:
        metrics = json.loads(Path(args.from_metrics).read_text(encoding="utf-8"))
        for spec in args.extra_metrics:
            label, sep, path = spec.partition("=")
            if not sep:
                raise SystemExit(f"--extra-metrics {spec!r}: expected LABEL=EVALUATE_JSON")
            test = json.loads(Path(path).read_text(encoding="utf-8"))["test"]
            add_model_row(metrics, label, test)
        return render_block(args, root, metrics, {}, host, started_at, cfg, 0.0)
    data = load_test_inputs(cfg, layout)
    started_all = time.perf_counter()
    result = evaluate_test_split(
        cfg, layout.model_dir, data.events, data.candidates, data.items, data.query_table, data.query_texts,
        baselines_cfg, root,
    )
    from unigrec.evaluate.report import finite_or_none

    metrics = result.metrics
    seconds = dict(result.seconds)

    for spec in args.extra_model:
        label, sep, folder = spec.partition("=")
        if not sep:
            raise SystemExit(f"--extra-model {spec!r}: expected LABEL=MODEL_DIR")
        started = time.perf_counter()
        add_model_row(metrics, label, evaluate_row(cfg, Path(folder), None, data, root))
        seconds[label] = time.perf_counter() - started
    if args.systems:
        raw = yaml.safe_load((root / PARAMS_FILE).read_text(encoding="utf-8"))
        with contextlib.ExitStack() as stack:
            work = Path(args.work_dir) if args.work_dir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
            for name in args.systems:
                log.info("reference system %s: training", name)
                retriever, ranker, train_s = build_system(name, root, raw, work)
                started = time.perf_counter()
                add_model_row(metrics, name, evaluate_system(cfg, retriever, ranker, data, root))
                seconds[name] = train_s + time.perf_counter() - started
    metrics = finite_or_none(metrics)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    return render_block(args, root, metrics, seconds, host, started_at, cfg, time.perf_counter() - started_all)


def render_block(
    args: argparse.Namespace, root: Path, metrics: dict, seconds: dict[str, float], host: str,
    started_at: dt.datetime, cfg: Any, wall: float,
) -> int:
    """Write the marked block of BENCHMARKS.md from ``metrics`` (and print it)."""
    layout = Layout(root)
    n_cases = {s: metrics["test"][s]["n"] for s in ("rec", "search")}
    n_negatives = load_section("split", root / PARAMS_FILE).n_negatives
    card = json.loads((layout.model_dir / "model.json").read_text(encoding="utf-8"))
    command = command_line("benchmarks/compare.py", args.argv)
    lines = [
        f"## {args.title} (`benchmarks/compare.py`)",
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {host}  ",
        f"Date: {started_at:%Y-%m-%d %H:%M} UTC  ",
        (f"Model: `{layout.model_dir.relative_to(root)}` ({card['item_representation']}, d_model {card['dims']['d_model']}, "
         f"{card['dims']['n_layers']} layers); test events: {n_cases['rec']} rec, "
         f"{n_cases['search']} search; beam {cfg.beam_size}."),
        "",
        ("Same cases and the same code for every method (`unigrec.evaluate`): each test event's history holds "
         "only earlier train/valid events; full-catalogue lists drop the items already in that history for "
         "every method; 1+N ties count against the target. BM25 and dense (MiniLM) search serve search "
         "requests only; popularity and SASRec answer both (SASRec ignores the query)."),
        "",
    ]
    if args.systems and not args.from_metrics:
        lines += [
            ("Rows: `tiger` = TIGER-style (semantic IDs only, retrieval-only model); `two_stage` = a "
             "retrieval-only model whose list a separate ranking-only model re-ranks (retrieval rows: the "
             "retrieval model). Both are trained here with the project's params otherwise "
             "(`unigrec.train.reference_systems`)."),
            "",
        ]
    if args.from_metrics:
        lines += [f"Figures read from `{args.from_metrics}` (the evaluate stage's own run; baselines from its params).", ""]
    lines += [comparison_markdown(metrics, n_negatives)]
    if args.published:
        lines += [
            f"**Published figures on {args.published}** (full-catalogue leave-one-out, rec) beside this run's rec rows",
            "",
            published_table(metrics, args.published),
            "",
        ]
    lines += [
        (f"**Unified pipeline and ranking** (retrieve {cfg.pipeline_k}, re-rank by (1 − w)·log P(item) + "
         "w·log P(<pos>), w chosen per stream on the validation split, or fixed by params where the grid holds "
         "one weight; the ranking AUC is P(<pos>) on "
         "labelled test recommendations)"),
        "",
        pipeline_table(metrics, cfg.pipeline_ndcg_cutoff),
        "",
    ]
    if seconds:
        lines.append("Wall seconds (baselines and reference systems include training): "
                     + ", ".join(f"{m} {s:.1f}" for m, s in seconds.items())
                     + f"; total {wall:.1f}. Raw numbers: `{args.results}`.")
    block = "\n".join(lines)
    write_block(Path(args.benchmarks_file), args.block, block)
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
