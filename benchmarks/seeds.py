"""Quality over seeds: the generative model's variants, the reference systems and the baselines on one
prepared project, each run with several seeds; test metrics as mean ± std in a block of BENCHMARKS.md.

A spec file (YAML, e.g. ``benchmarks/specs/ml1m.yaml``) names the rows, each a params.yaml override set,
and the seeds. Every (row, seed) run is kept in the results JSON as soon as it finishes, so a long
benchmark can be run a row or a seed at a time, stopped and resumed; the block is re-rendered from
everything the JSON holds, with the number of seeds behind each figure.

Usage:
    # a project root whose data stages are done (ingest, validate, split; identifiers for the
    # semantic-ID rows); the spec file's header gives the benchmarks/prepare_root.py command that makes it
    python benchmarks/seeds.py --root /work/ml1m --spec benchmarks/specs/ml1m.yaml --work /work/bench_runs/ml1m
    # one row, one seed (resumable; --render only re-writes the block from the JSON)
    python benchmarks/seeds.py ... --rows "SASRec+ (full softmax)" --seeds 1
    python benchmarks/seeds.py --root /work/ml1m --spec benchmarks/specs/ml1m.yaml --render
    # a long model row trained on a GPU machine: export its project, train it there, evaluate it here
    python benchmarks/seeds.py ... --export "unigrec, semantic IDs (GenSAR's form)@12=/tmp/s12"
    #   (there: set train.trainer.accelerator: gpu in /tmp/s12/params.yaml; cd /tmp/s12 && unigrec stage train)
    python benchmarks/seeds.py ... --adopt "unigrec, semantic IDs (GenSAR's form)@12=/tmp/s12"
    # a reference system the same way: one project per model (/tmp/ts11/retrieval and /tmp/ts11/ranking);
    # benchmarks/train_exported.sh trains every project of an export side by side and packs what they wrote
    python benchmarks/seeds.py ... --export "two-stage, atomic IDs (retrieval model + ranking model)@11=/tmp/ts11"
    #   (there: benchmarks/train_exported.sh --accelerator gpu --limit 450 --out OUT /tmp/ts11;
    #    back here: tar xzf OUT/ts11.tgz -C /tmp, then --adopt "...@11=/tmp/ts11")

Rows (``kind``): ``model`` trains the generative model with the row's params (train stage) and evaluates
it; ``system`` builds a reference system of ``benchmarks/compare.py`` (``tiger``, ``two_stage``);
``baseline`` fits one baseline of the evaluate stage. Rows without ``seed_key`` are deterministic and
run once. Test data never chooses anything: checkpoints are picked on validation NDCG, re-ranking
weights on the validation split.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package, when run as a script

from benchmarks.compare import (
    PUBLISHED,
    build_system,
    evaluate_row,
    evaluate_system,
    hardware,
    hardware_of,
    machine,
    part_params,
    part_root,
    prepare_part,
    scratch_root,
    system_parts,
)
from benchmarks.markdown_block import write_block
from benchmarks.params_override import set_param
from unigrec.config import PARAMS_FILE, EvaluateConfig, Params, params_from_dict
from unigrec.evaluate.inputs import TestInputs, load_test_inputs
from unigrec.logs import setup_logging
from unigrec.paths import Layout

log = logging.getLogger("benchmarks.seeds")

KINDS = ("model", "system", "baseline")
DATA_LINKS = ("data/canonical", "data/split", "data/ids")
# (column, path in a run's test metrics); every cell is the mean ± std over the row's seeds
COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rec HR@10", ("rec", "full", "hr@10")),
    ("rec NDCG@10", ("rec", "full", "ndcg@10")),
    ("rec HR@50", ("rec", "full", "hr@50")),
    ("rec NDCG@50", ("rec", "full", "ndcg@50")),
    ("rec MRR", ("rec", "full", "mrr")),
    ("rec 1+99 HR@10", ("rec", "sampled", "hr@10")),
    ("search HR@10", ("search", "full", "hr@10")),
    ("search NDCG@10", ("search", "full", "ndcg@10")),
    ("ranking AUC", ("ranking", "auc")),
    ("GAUC", ("ranking", "gauc")),
)


@dataclasses.dataclass(frozen=True)
class Row:
    label: str
    kind: str
    params: dict[str, Any]  # dotted params.yaml keys -> values, on top of the spec's common overrides
    seed_key: str | None  # the params key the seed goes into; None = deterministic, run once
    baseline: str | None = None  # kind baseline: its name in the evaluate stage
    system: str | None = None  # kind system: tiger | two_stage


@dataclasses.dataclass(frozen=True)
class Spec:
    title: str
    block: str
    published: str | None
    seeds: tuple[int, ...]
    common: dict[str, Any]
    rows: tuple[Row, ...]
    notes: str


def load_spec(path: Path) -> Spec:
    """A benchmark spec. With ``rows_from: OTHER.yaml`` (beside it) a row may be just a label of that spec's
    rows, taken with its params, and ``common`` defaults to that spec's: a probe on other data then runs
    the very rows of the main benchmark instead of a copy that could drift from them. A row with ``from:
    LABEL`` (an earlier row of this spec, or one of rows_from) is that row with its own ``label`` and extra
    ``params`` on top (a one-knob variant of it); it takes no other keys, since they would be ignored."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    base = load_spec(path.parent / raw["rows_from"]) if raw.get("rows_from") else None
    rows: list[Row] = []

    def base_row(label: str, own: bool = False) -> Row:
        found = [b for b in [*(rows if own else ()), *(base.rows if base else ())] if b.label == label]
        if not found:
            where = "an earlier row or a row of rows_from" if own else "a row of rows_from"
            raise SystemExit(f"{path}: row {label!r} is not {where} ({raw.get('rows_from')})")
        return found[0]

    for r in raw["rows"]:
        if isinstance(r, str):
            rows.append(base_row(r))
            continue
        if "from" in r:
            extra = sorted(set(r) - {"label", "from", "params"})
            if extra:
                raise SystemExit(f"{path}: row {r.get('label')!r} is a variant (from:); it takes only label and "
                                 f"params, not {extra}")
            parent = base_row(str(r["from"]), own=True)
            rows.append(dataclasses.replace(parent, label=str(r["label"]),
                                            params={**parent.params, **(r.get("params") or {})}))
            continue
        row = Row(label=str(r["label"]), kind=str(r["kind"]), params=dict(r.get("params") or {}),
                  seed_key=r.get("seed_key"), baseline=r.get("baseline"), system=r.get("system"))
        if row.kind not in KINDS:
            raise SystemExit(f"{path}: row {row.label!r}: kind must be one of {KINDS}")
        if (row.kind == "baseline") != (row.baseline is not None) or (row.kind == "system") != (row.system is not None):
            raise SystemExit(f"{path}: row {row.label!r}: a baseline row names a baseline, a system row a system")
        rows.append(row)
    if len({r.label for r in rows}) != len(rows):
        raise SystemExit(f"{path}: row labels must be unique")
    return Spec(title=str(raw["title"]), block=str(raw["block"]), published=raw.get("published"),
                seeds=tuple(int(s) for s in raw["seeds"]),
                common=dict(raw.get("common", base.common if base else None) or {}),
                rows=tuple(rows), notes=str(raw.get("notes", "")).strip())


def with_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of params ``raw`` with dotted-key ``overrides``; unknown keys are an error, not a new knob."""
    out = json.loads(json.dumps(raw))
    for key, value in overrides.items():
        set_param(out, key, value)
    return out


def root_params(root_raw: dict[str, Any], checkout_raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The root's params, with the keys it lacks taken from this checkout's params.yaml; and those keys.

    A root is prepared once and benchmarked for days while the product gains knobs; without this, every
    new key would make the old root's params.yaml fail to load. The root's own values always win, and the
    caller logs the filled keys so a run never silently differs from the root's recorded settings.
    """
    from unigrec.train.reference_systems import merged

    filled = merged(checkout_raw, root_raw)
    return filled, sorted(set(flat(filled)) - set(flat(root_raw)))


def run_params(base: dict[str, Any], spec: Spec, row: Row, seed: int | None) -> dict[str, Any]:
    """The params one (row, seed) run uses: the root's, then the spec's common overrides, the row's, the seed."""
    overrides = {**spec.common, **row.params}
    if row.seed_key is not None and seed is not None:
        overrides[row.seed_key] = seed
    return with_overrides(base, overrides)


def run_seeds(row: Row, wanted: Sequence[int]) -> list[int | None]:
    """Seeds to run for ``row``: the wanted ones, or the single deterministic run."""
    return list(wanted) if row.seed_key is not None else [None]


def needs_identifiers(row: Row, params: dict[str, Any]) -> bool:
    """Whether the run trains on the root's GenSAR identifiers (``data/ids``): a model or two-stage row with
    semantic item IDs. TIGER-style builds its own identifiers; atomic IDs and baselines need none."""
    if row.kind == "baseline" or row.system == "tiger":
        return False
    return params["train"]["model"]["item_representation"] != "atomic"


def check_inputs(root: Path, spec: Spec, rows: Sequence[Row], base: dict[str, Any]) -> None:
    """Fail before any run, not hours into the queue, when a selected row needs identifiers the root lacks."""
    if Layout(root).ids_table.exists():
        return
    lacking = [r.label for r in rows if needs_identifiers(r, run_params(base, spec, r, None))]
    if lacking:
        raise SystemExit(
            f"rows {lacking} train on semantic IDs, but {Layout(root).ids_table} is missing: run "
            f"`unigrec stage identifiers --root {root}` first (or leave these rows out with --rows)"
        )


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def dig(block: dict[str, Any], path: Sequence[str]) -> float | None:
    for key in path:
        if not isinstance(block, dict) or block.get(key) is None:
            return None
        block = block[key]
    return float(block)


def aggregate(runs: dict[str, dict[str, Any]]) -> dict[str, tuple[float, float, int]]:
    """Column -> (mean, std, n) over a row's runs (seed -> run record); columns no run has are left out."""
    out = {}
    for column, path in COLUMNS:
        values = [v for v in (dig(r["test"], path) for r in runs.values()) if v is not None]
        if values:
            out[column] = (*mean_std(values), len(values))
    return out


def cell(stat: tuple[float, float, int] | None) -> str:
    if stat is None:
        return "–"
    mean, std, n = stat
    return f"{mean:.4f}" if n == 1 else f"{mean:.4f} ± {std:.4f}"


# ---------------------------------------------------------------------------------------------- running
def run_one(root: Path, work: Path, params: dict[str, Any], row: Row, data: TestInputs) -> dict[str, Any]:
    """Train (where the row needs it) and evaluate one run; returns its record for the results JSON."""
    from unigrec.evaluate.evaluation import evaluate_baselines

    cfg: Params = params_from_dict(params)
    started = time.perf_counter()
    record: dict[str, Any] = {}
    if row.kind == "model":
        from unigrec.stages import train

        layout = scratch_root(root, work, DATA_LINKS)
        (work / PARAMS_FILE).write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        record["train"] = train.run(cfg.train, layout)
        record["training"] = json.loads(layout.train_metrics.read_text(encoding="utf-8"))["training"]
        record["test"] = evaluate_row(no_baselines(cfg.evaluate), layout.model_dir, None, data, root)
    elif row.kind == "system":
        retriever, ranker, _ = build_system(str(row.system), root, params, work)
        record["parts"] = {
            part.name: json.loads(Layout(part_root(work, part)).train_metrics.read_text(encoding="utf-8"))["training"]
            for part in system_parts(str(row.system))
        }
        record["test"] = evaluate_system(no_baselines(cfg.evaluate), retriever, ranker, data, root)
    else:
        test_cfg = dataclasses.replace(cfg.evaluate, baselines=(str(row.baseline),))
        metrics = evaluate_baselines(test_cfg, cfg.baselines, root, data.events, data.candidates, data.items)
        record["test"] = metrics[str(row.baseline)]
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record


def check_trained_with(root: Path, project: Path, params: dict[str, Any], own_ids: bool = False) -> dict[str, Any]:
    """``project``'s train metrics, once it is checked to have trained this run: exactly ``params``' train
    section, on the same files as ``root`` (its identifiers aside when it built its own, as TIGER does: then
    with the same identifiers params).

    Only the train keys that do not change what is computed may differ (``resume.COSMETIC_KEYS``: progress
    bar, resume, accelerator), so a run trained on a GPU machine can be evaluated here."""
    import filecmp

    from unigrec.config import load_section
    from unigrec.stages.train import inputs
    from unigrec.train.resume import config_digest

    wanted = flat(config_digest(params_from_dict(params).train))
    had = flat(config_digest(load_section("train", project / PARAMS_FILE)))
    if own_ids:
        raw = yaml.safe_load((project / PARAMS_FILE).read_text(encoding="utf-8"))
        wanted |= flat(params["identifiers"], "identifiers.")
        had |= flat(raw["identifiers"], "identifiers.")
    if wanted != had:
        diff = sorted(k for k in wanted.keys() | had.keys() if wanted.get(k) != had.get(k))
        raise SystemExit(f"--adopt: {project} was trained with other params than this run: {diff}")
    layout = Layout(project)
    for path, _ in inputs(params_from_dict(params).train, layout):
        if own_ids and path.is_relative_to(layout.ids_dir):
            continue
        here = root / path.relative_to(project)
        if not filecmp.cmp(path, here, shallow=False):
            raise SystemExit(f"--adopt: {path} differs from {here}: that run trained on other data than this root's")
    metrics_file = Layout(project).train_metrics
    if not metrics_file.exists():
        raise SystemExit(f"--adopt: {metrics_file} is missing: run `unigrec stage train` in {project} first")
    return json.loads(metrics_file.read_text(encoding="utf-8"))


def adopt_run(root: Path, trained: Path, params: dict[str, Any], row: Row, data: TestInputs) -> dict[str, Any]:
    """A run whose training was done in ``trained`` (a project ``--export`` wrote, whose train stage then ran
    elsewhere, e.g. on a GPU): its params are checked, and only the evaluation is done here, so a long
    training is not paid twice. The record keeps the device each model trained on."""
    started = time.perf_counter()
    record: dict[str, Any] = {"adopted_from": str(trained)}
    cfg = params_from_dict(params)
    if row.kind == "model":
        record["training"] = check_trained_with(root, trained, params)["training"]
        record["test"] = evaluate_row(no_baselines(cfg.evaluate), Layout(trained).model_dir, None, data, root)
        spent = [record["training"]["seconds"]]
    elif row.kind == "system":
        parts = system_parts(str(row.system))
        record["parts"] = {
            p.name: check_trained_with(root, part_root(trained, p), part_params(params, p), p.identifiers is not None)
            ["training"] for p in parts
        }
        retriever, *ranker = (Layout(part_root(trained, p)).model_dir for p in parts)
        ranker_dir = ranker[0] if ranker else None
        record["test"] = evaluate_system(no_baselines(cfg.evaluate), retriever, ranker_dir, data, root)
        spent = [t["seconds"] for t in record["parts"].values()]
    else:
        raise SystemExit(f"--adopt: row {row.label!r} is a baseline: it is fitted where seeds.py runs")
    record["seconds"] = round(sum(spent) + time.perf_counter() - started, 1)
    return record


def export_project(src: Path, dest: Path, params: dict[str, Any]) -> list[Path]:
    """Copies (not links, so ``dest`` can travel) of what the train stage of project ``src`` reads, and the
    params it is to run with. Returns the files written."""
    import shutil

    import pandas as pd

    from unigrec.ids.embeddings import embedding_cache_file
    from unigrec.stages.train import inputs
    from unigrec.train.examples import query_table_texts

    cfg = params_from_dict(params).train
    layout = Layout(src)
    pairs = [(path, dest / path.relative_to(src)) for path, _ in inputs(cfg, layout)]
    texts = list(query_table_texts(pd.read_parquet(layout.events)))
    cached = embedding_cache_file(texts, src / cfg.query_cache_dir)
    if cached.exists():  # else the other machine embeds the queries itself (it then needs the text encoder)
        pairs.append((cached, dest / cfg.query_cache_dir / cached.name))
    for source, target in pairs:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    (dest / PARAMS_FILE).write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return [target for _, target in pairs] + [dest / PARAMS_FILE]


def export_run(root: Path, dest: Path, params: dict[str, Any], row: Row, work: Path) -> list[Path]:
    """Self-contained projects at ``dest`` for one run's training, to do on another machine, e.g. a GPU one
    with ``train.trainer.accelerator: gpu`` (the only edit --adopt allows, with the progress bar and resume),
    then bring back and evaluate here with ``--adopt``. A model row is one project; a reference system is one
    per part (``dest/retrieval`` and ``dest/ranking``, or ``dest/tiger``, whose identifiers are built here
    first since that needs the text encoder). ``work`` is scratch shared by one call's exports, so TIGER's
    seeds build their identifiers once. Returns the files written."""
    if dest.exists() and any(dest.iterdir()):
        raise SystemExit(f"--export: {dest} is not empty; name a new folder (an earlier export's trained model "
                         "there would be adopted as this run's)")
    if row.kind == "model":
        return export_project(root, dest, params)
    if row.kind != "system":
        raise SystemExit(f"--export: row {row.label!r} is a baseline: it is fitted where seeds.py runs")
    files: list[Path] = []
    for part in system_parts(str(row.system)):
        layout = prepare_part(root, params, work, part)
        files += export_project(layout.root, part_root(dest, part), part_params(params, part))
    return files


def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def no_baselines(cfg: EvaluateConfig) -> EvaluateConfig:
    return dataclasses.replace(cfg, baselines=())


def load_data(root: Path, params: dict[str, Any]) -> TestInputs:
    """The evaluation inputs every run shares (events, candidate lists, items, query vectors)."""
    return load_test_inputs(params_from_dict(params).evaluate, Layout(root))


def save_results(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def seed_name(seed: int | None) -> str:
    return "deterministic" if seed is None else str(seed)


# ---------------------------------------------------------------------------------------------- report
def render(spec: Spec, results: dict[str, Any], command: str) -> str:
    runs = results.get("runs", {})
    header = "| method | seeds | " + " | ".join(c for c, _ in COLUMNS) + " | minutes per run |"
    lines = [
        f"## {spec.title} (`benchmarks/seeds.py`)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {results.get('machine', '?')}  ",
        f"Runs dated: {', '.join(sorted({r['date'] for rr in runs.values() for r in rr.values()}))}",
        "",
    ]
    if spec.notes:
        lines += [spec.notes, ""]
    lines += [
        ("Full-catalogue figures (the model by constrained beam search, every method without the items "
         "already in the user's history); `rec 1+99` ranks the target among 99 popularity-sampled "
         "negatives; AUC/GAUC score P(<pos>) of labelled test recommendations. Mean ± sample std over "
         "the seeds listed (one figure: one run)."),
        "",
        header,
        "|---|---|" + "---:|" * (len(COLUMNS) + 1),
    ]
    for row in spec.rows:
        row_runs = runs.get(row.label, {})
        if not row_runs:
            continue
        stats = aggregate(row_runs)
        minutes = statistics.fmean(r["seconds"] for r in row_runs.values()) / 60
        seeds = ", ".join(sorted(row_runs))
        lines.append(f"| {row.label} | {seeds} | " + " | ".join(cell(stats.get(c)) for c, _ in COLUMNS)
                     + f" | {minutes:.1f} |")
    if spec.published:
        lines += ["", published_rows(spec, runs)]
    not_run, short = [], []
    for row in spec.rows:
        done = runs.get(row.label, {})
        todo = [name for name in map(seed_name, run_seeds(row, spec.seeds)) if name not in done]
        if not done:
            not_run.append(row.label)
        elif todo:
            short.append(f"{row.label} ({', '.join(todo)})")
    here = hardware_of(str(results.get("machine", "?")))
    # Other machines get a letter, so a machine shared by many runs is spelled out once.
    others: dict[str, str] = {}
    for row in spec.rows:
        for _, record in sorted(runs.get(row.label, {}).items()):
            if record.get("machine", here) != here:
                others.setdefault(record["machine"], f"machine {chr(ord('B') + len(others))}")
    elsewhere = [f"{row.label} seed {name}: {', '.join(notes)}" for row in spec.rows
                 for name, record in sorted(runs.get(row.label, {}).items())
                 if (notes := provenance(record, here, others))]
    if elsewhere:
        lines += ["", ("Runs not trained in one go on the machine above (their minutes are the recorded training "
                       "and evaluation time, so they are not comparable with the others'): " + "; ".join(elsewhere) + ".")]
    if others:
        lines += ["", "Other machines: " + "; ".join(f"{name}: {hw}" for hw, name in others.items()) + "."]
    if not_run:
        lines += ["", "Not run yet: " + "; ".join(not_run) + "."]
    if short:
        lines += ["", "Seeds still to run: " + "; ".join(short) + "."]
    return "\n".join(lines)


def provenance(record: dict[str, Any], here: str, names: dict[str, str] | None = None) -> list[str]:
    """What a reader must know of how a run's model came to be, when it is not "trained here in one go":
    the machine it ran on when not ``here`` (the block's; ``names`` gives it a short name), the device it
    trained on, the epoch it resumed after, and that it was trained in another project. A record without a
    machine (written before records kept one) ran on the block's."""
    other = record.get("machine", here)
    notes = [f"ran on {(names or {}).get(other) or f'another machine: {other}'}"] if other != here else []
    for part, training in (record.get("parts") or {"": record.get("training", {})}).items():
        whose = f"{part} model " if part else ""
        if training.get("device", "cpu") != "cpu":
            notes.append(f"{whose}trained on {training['device']}")
        if training.get("resumed_after_epoch") is not None:
            notes.append(f"{whose}resumed after epoch {training['resumed_after_epoch']}")
    if "adopted_from" in record:
        notes.append("evaluated here (--adopt)")
    return notes


def published_rows(spec: Spec, runs: dict[str, Any]) -> str:
    """The papers' figures beside each row's mean, with the gap to UniGRF."""
    papers = PUBLISHED[str(spec.published)]
    target = papers["UniGRF"]
    lines = [
        (f"**Published figures on {spec.published}** (full-catalogue leave-one-out, recommendation) and the gap "
        "of each row's mean to UniGRF"),
        "",
        "| method | source | HR@10 | NDCG@10 | ranking AUC | HR@10 − UniGRF | NDCG@10 − UniGRF | AUC − UniGRF |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, fig in papers.items():
        auc = fig.get("auc")
        lines.append(f"| {name} | published | {fig['hr@10']:.4f} | {fig['ndcg@10']:.4f} | "
                     f"{'–' if auc is None else f'{auc:.4f}'} | | | |")
    for row in spec.rows:
        stats = aggregate(runs.get(row.label, {}))
        if "rec HR@10" not in stats:
            continue
        hr, ndcg, auc = (stats.get(c, (None,))[0] for c in ("rec HR@10", "rec NDCG@10", "ranking AUC"))
        gaps = [f"{hr - target['hr@10']:+.4f}", f"{ndcg - target['ndcg@10']:+.4f}",
                "–" if auc is None else f"{auc - target['auc']:+.4f}"]
        lines.append(f"| {row.label} | this benchmark | {hr:.4f} | {ndcg:.4f} | "
                     f"{'–' if auc is None else f'{auc:.4f}'} | " + " | ".join(gaps) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="prepared project root (params.yaml, data/canonical, data/split, ...)")
    p.add_argument("--spec", required=True, help="the benchmark's YAML spec (rows, seeds, common overrides)")
    p.add_argument("--work", default=None, help="where runs train their models (default: ROOT/.cache/seeds)")
    p.add_argument("--rows", nargs="*", default=None, help="only these row labels (default: all)")
    p.add_argument("--seeds", nargs="*", type=int, default=None, help="only these seeds (default: the spec's)")
    p.add_argument("--rerun", action="store_true", help="run (row, seed) pairs the results already hold again")
    p.add_argument("--adopt", action="append", default=[], metavar="LABEL@SEED=PROJECT",
                   help="take a model or system row's run from the project(s) --export wrote, once their train "
                        "stage ran with exactly that run's train params (checked): it is evaluated, nothing else "
                        "runs in this call")
    p.add_argument("--export", action="append", default=[], metavar="LABEL@SEED=DIR",
                   help="write self-contained project(s) holding a model or system row's train inputs and run "
                        "params (one per model: a system's parts are DIR/retrieval and DIR/ranking, or DIR/tiger), "
                        "to train elsewhere (e.g. on a GPU) and bring back with --adopt; nothing else runs")
    p.add_argument("--render", action="store_true", help="only re-write the block from the results JSON")
    p.add_argument("--results", default=None, help="results JSON (default: benchmarks/results/BLOCK.json)")
    p.add_argument("--benchmarks-file", default=str(ROOT / "BENCHMARKS.md"))
    return p.parse_args(argv)


def parse_run_arg(spec: Spec, arg: str, option: str) -> tuple[Row, int, Path]:
    """``LABEL@SEED=DIR`` -> (the spec's row, seed, DIR)."""
    label_seed, sep, folder = arg.partition("=")
    label, at, seed = label_seed.rpartition("@")
    row = next((r for r in spec.rows if r.label == label), None)
    if not (sep and at and seed.isdigit()) or row is None:
        raise SystemExit(f"{option} {arg!r}: expected LABEL@SEED=DIR with a row label of the spec")
    return row, int(seed), Path(folder).resolve()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(None)
    root = Path(args.root).resolve()
    spec = load_spec(Path(args.spec))
    results_file = Path(args.results) if args.results else ROOT / "benchmarks" / "results" / f"{spec.block}.json"
    results = json.loads(results_file.read_text(encoding="utf-8")) if results_file.exists() else {}
    command = f"python benchmarks/seeds.py --root {shlex.quote(str(args.root))} --spec {shlex.quote(args.spec)}"
    # --render alone needs no project: it re-writes the block from the results JSON
    base: dict[str, Any] = {}
    if not args.render or args.export:
        base, filled = root_params(yaml.safe_load((root / PARAMS_FILE).read_text(encoding="utf-8")),
                                   yaml.safe_load((ROOT / PARAMS_FILE).read_text(encoding="utf-8")))
        if filled:
            log.warning("%s lacks %s: taken from %s", root / PARAMS_FILE, ", ".join(filled), ROOT / PARAMS_FILE)
    if args.export:
        with tempfile.TemporaryDirectory(prefix="unigrec-export-") as work:
            for spec_arg in args.export:
                row, seed, dest = parse_run_arg(spec, spec_arg, "--export")
                check_inputs(root, spec, [row], base)
                files = export_run(root, dest, run_params(base, spec, row, seed), row, Path(work))
                size = sum(f.stat().st_size for f in files) / 2**20
                where = " and ".join(sorted({str(f.parent) for f in files if f.name == PARAMS_FILE}))
                print(f"{dest}: {len(files)} files, {size:.1f} MiB; train with `unigrec stage train` run in {where}")
        return 0
    if not args.render:
        work_root = Path(args.work) if args.work else root / ".cache" / "seeds"
        rows = [r for r in spec.rows if args.rows is None or r.label in args.rows]
        if args.rows is not None and len(rows) != len(args.rows):
            raise SystemExit(f"unknown row label(s): {sorted(set(args.rows) - {r.label for r in spec.rows})}")
        check_inputs(root, spec, rows if not args.adopt else [], base)
        data = load_data(root, base)
        # the block's machine is the first one's; a run on another keeps its own and the block names it
        results.setdefault("machine", machine())
        for spec_arg in args.adopt:
            row, seed, project = parse_run_arg(spec, spec_arg, "--adopt")
            record = adopt_run(root, project, run_params(base, spec, row, seed), row, data)
            record["machine"] = hardware()  # where it was evaluated; its training device is in its record
            record["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
            results.setdefault("runs", {}).setdefault(row.label, {})[seed_name(seed)] = record
            save_results(results_file, results)
        for row in [] if args.adopt else rows:
            for seed in run_seeds(row, args.seeds or spec.seeds):
                done = results.setdefault("runs", {}).setdefault(row.label, {})
                if seed_name(seed) in done and not args.rerun:
                    log.info("%s, seed %s: kept from %s", row.label, seed_name(seed), results_file)
                    continue
                log.info("%s, seed %s: running", row.label, seed_name(seed))
                work = work_root / f"{spec.block}-{row.label}-{seed_name(seed)}".replace(" ", "_").replace("/", "_")
                record = run_one(root, work, run_params(base, spec, row, seed), row, data)
                record["machine"] = hardware()
                record["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
                done[seed_name(seed)] = record
                save_results(results_file, results)
    block = render(spec, results, command)
    write_block(Path(args.benchmarks_file), spec.block, block)
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
