"""Quality of rows x seeds on one prepared project root, through the product's own override path: each row
is a list of params overlays (``configs/experiments/``, what ``unigrec run --experiment`` applies) plus a
few ``set`` keys and a seed, written into a run folder's params.yaml by DVC's writer
(``unigrec.pipeline.apply_param_overrides``); the folder links the root's data, the train stage
(``unigrec stage train``) trains there, and the evaluate stage's evaluation scores the test split.

A spec (``benchmarks/specs/*.yaml``) names the block, the seeds, the overlays of the data (the root is
made with the same ones: its header gives the ``benchmarks/prepare_root.py`` command) and the rows:

- a model row trains one model (``experiments``: overlays in order; ``set``: dotted keys after them);
- a row with ``ranker`` trains a second model from those overlays that re-ranks what the first retrieves
  (the two-stage system: ``retrieval-only`` + ``ranking-only``);
- a ``baseline`` row fits that baseline of the evaluate stage;
- ``from: LABEL`` is an earlier row with its own label and more ``set`` keys; a bare label is a row of
  the spec named by ``rows_from``.

A row with ``seed_key`` runs once per seed (the seed goes into that key), one without is deterministic;
a row's own ``seeds`` replace the spec's for it (a row screened on one seed owes no others).
Every (row, seed) run is kept in the results JSON as soon as it ends, so a benchmark can be run a row or
a seed at a time, stopped and resumed; the block is re-rendered from everything the JSON holds (runs not
trained here in one go are marked, and ``--render`` prints how each came to be, for the spec's ``note``).
Layouts: ``seeds`` (mean +- std per row, and its gap to UniGRF's published figures) and ``comparison`` (one
seed: the full-catalogue table per stream and method, then the retrieve-and-re-rank table). Columns:
``test`` (the evaluate stage's figures) or ``validation`` (the train stage's own validation report).

    python benchmarks/prepare_root.py ROOT --experiment ml1m --until identifiers
    python benchmarks/quality.py --root ROOT --spec benchmarks/specs/ml1m.yaml [--rows LABEL ...] [--seeds 11]
    python benchmarks/quality.py --spec benchmarks/specs/ml1m.yaml --render        # the block from the JSON
    # a long run trained on another machine (e.g. a GPU): copy its training inputs out, train them there
    # with benchmarks/train_exported.sh, unpack what it packed over the export, evaluate here
    python benchmarks/quality.py --root ROOT --spec SPEC --export "LABEL@SEED=DIR"
    python benchmarks/quality.py --root ROOT --spec SPEC --adopt "LABEL@SEED=DIR"
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import filecmp
import hashlib
import json
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package, when run as a script

from benchmarks.host import machine as host_machine
from benchmarks.host import machine_id, machine_line, portable
from benchmarks.markdown_block import write_block
from benchmarks.project_copy import write_overrides
from benchmarks.results_file import update_results
from unigrec.cli import main as unigrec_cli
from unigrec.config import PARAMS_FILE, load_section
from unigrec.orchestration.experiments import (
    assignments_to_overrides,
    experiment_overrides,
    merge_overrides,
    overlay_assignments,
)
from unigrec.paths import Layout
from unigrec.registry.gate import flatten_mapping

log = logging.getLogger("benchmarks.quality")

ROW_KEYS = {"label", "experiments", "set", "seed_key", "baseline", "ranker", "seeds"}
LAYOUTS = ("seeds", "comparison")
DATA_SECTIONS = ("ingest", "split")  # what the root's data was made with; a row must agree on them
LINKED = ("data/canonical", "data/split")
WRAP = 110  # prose lines of a block, so BENCHMARKS.md reads in an editor
# (column, path in a run record); every cell is the mean +- std over the row's seeds
COLUMNS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "test": (
        ("rec HR@10", ("test", "rec", "full", "hr@10")), ("rec NDCG@10", ("test", "rec", "full", "ndcg@10")),
        ("rec HR@50", ("test", "rec", "full", "hr@50")), ("rec NDCG@50", ("test", "rec", "full", "ndcg@50")),
        ("rec MRR", ("test", "rec", "full", "mrr")), ("rec 1+99 HR@10", ("test", "rec", "sampled", "hr@10")),
        ("search HR@10", ("test", "search", "full", "hr@10")),
        ("search NDCG@10", ("test", "search", "full", "ndcg@10")),
        ("ranking AUC", ("test", "ranking", "auc")), ("GAUC", ("test", "ranking", "gauc")),
    ),
    # Issue 35's protocol: search as retrieved and as served (re-ranked with BM25 fused), on the whole test
    # set and on the slices that expose memorisation (a baseline's list is its own: no served column).
    "protocol": (
        ("rec HR@10", ("test", "rec", "full", "hr@10")), ("rec NDCG@10", ("test", "rec", "full", "ndcg@10")),
        ("rec served NDCG@10", ("test", "pipeline", "rec", "ndcg@10")),
        ("search HR@10", ("test", "search", "full", "hr@10")),
        ("search NDCG@10", ("test", "search", "full", "ndcg@10")),
        ("search served HR@10", ("test", "pipeline", "search", "hr@10")),
        ("search served NDCG@10", ("test", "pipeline", "search", "ndcg@10")),
        ("unseen-query NDCG@10", ("test", "slices", "unseen_query", "search", "full", "ndcg@10")),
        ("unseen-query served NDCG@10", ("test", "pipeline", "search", "slices", "unseen_query", "ndcg@10")),
        ("never-searched target NDCG@10", ("test", "slices", "target_never_searched", "search", "full", "ndcg@10")),
        ("never-searched target served NDCG@10",
         ("test", "pipeline", "search", "slices", "target_never_searched", "ndcg@10")),
        ("ranking AUC", ("test", "ranking", "auc")),
    ),
    # Issue 41: does the served search list fit the query? Engagement beside relevance (graded from item
    # metadata) on the test searches and on the typed-query set, by how the query was typed. A baseline has
    # one list (its own); the model's own list is what it retrieves, before re-ranking and lexical fusion.
    "relevance": (
        ("search NDCG@10, own list", ("test", "search", "full", "ndcg@10")),
        ("search served NDCG@10", ("test", "pipeline", "search", "ndcg@10")),
        ("test searches relevance P@10", ("test", "relevance", "test_searches", "p@10")),
        ("typed P@10", ("test", "relevance", "typed_queries", "all", "p@10")),
        ("typed as generated", ("test", "relevance", "typed_queries", "by_variant", "as_generated", "p@10")),
        ("typed other spellings", ("test", "relevance", "typed_queries", "by_variant", "spelled", "p@10")),
        ("typed one typo", ("test", "relevance", "typed_queries", "by_variant", "misspelled", "p@10")),
        ("typed unseen forms", ("test", "relevance", "typed_queries", "unseen_forms", "p@10")),
    ),
    # Issue 37 item 6: items whose training events were removed on purpose (split.cold_items) as targets, where
    # only an item's text (its codes, BM25 fusion) can place it; beside the whole test set.
    "cold_items": (
        ("rec NDCG@10", ("test", "rec", "full", "ndcg@10")),
        ("cold-item rec cases", ("test", "slices", "target_no_train_events", "rec", "n")),
        ("cold-item rec HR@50", ("test", "slices", "target_no_train_events", "rec", "full", "hr@50")),
        ("cold-item rec NDCG@10", ("test", "slices", "target_no_train_events", "rec", "full", "ndcg@10")),
        ("search NDCG@10", ("test", "search", "full", "ndcg@10")),
        ("search served NDCG@10", ("test", "pipeline", "search", "ndcg@10")),
        ("cold-item search cases", ("test", "slices", "target_no_train_events", "search", "n")),
        ("cold-item search NDCG@10", ("test", "slices", "target_no_train_events", "search", "full", "ndcg@10")),
        ("cold-item search served NDCG@10",
         ("test", "pipeline", "search", "slices", "target_no_train_events", "ndcg@10")),
        ("ranking AUC", ("test", "ranking", "auc")),
    ),
    "validation": (
        ("rec HR@10", ("validation", "rec", "hr@10")), ("rec NDCG@10", ("validation", "rec", "ndcg@10")),
        ("search HR@10", ("validation", "search", "hr@10")),
        ("search NDCG@10", ("validation", "search", "ndcg@10")),
        ("ranking AUC", ("validation", "ranking", "auc")),
    ),
}
# Published full-catalogue leave-one-out figures on MovieLens-1M (SASRec and HSTU from the HSTU repository's
# README, UniGRF from its paper). Reference data, not knobs.
PUBLISHED = {
    "ml-1m": {
        "SASRec (HSTU repo)": {"hr@10": 0.2853, "ndcg@10": 0.1603},
        "HSTU": {"hr@10": 0.3097, "ndcg@10": 0.1720},
        "UniGRF": {"hr@10": 0.3219, "ndcg@10": 0.1765, "auc": 0.7932},
    }
}


@dataclasses.dataclass(frozen=True)
class Row:
    label: str
    experiments: tuple[str, ...] = ()
    set: dict[str, Any] = dataclasses.field(default_factory=dict)  # dotted params keys, after the overlays
    seed_key: str | None = None  # the params key the seed goes into; None = deterministic, run once
    baseline: str | None = None  # a baseline of the evaluate stage, fitted instead of the model
    ranker: tuple[str, ...] | None = None  # overlays of a second model re-ranking the first's list
    # the seeds the row is planned for when they are not the spec's (a row screened on one seed); None = the spec's
    seeds: tuple[int, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Spec:
    path: Path
    title: str
    block: str
    seeds: tuple[int, ...]
    rows: tuple[Row, ...]
    experiments: tuple[str, ...] = ()  # the data's overlays: every row starts from them
    set: dict[str, Any] = dataclasses.field(default_factory=dict)
    until: str = "split"  # the last stage prepare_root.py runs for this spec's root
    layout: str = "seeds"
    columns: str = "test"
    published: str | None = None
    notes: str = ""
    note: str = ""  # the dated note under docs/experiments/ that tells the block's story
    results: str = ""  # its results JSON under benchmarks/results/ (default: BLOCK.json)
    recorded: str = ""  # a removed script's results under benchmarks/results/: the block until ``results`` has runs
    # a row's label: every other row gets Welch's t-test p-value against it on ``compare_columns``
    compare_to: str | None = None
    compare_columns: tuple[str, ...] = ()


def load_spec(path: Path) -> Spec:
    """A spec file; with ``rows_from: OTHER.yaml`` (beside it) a bare label is that spec's row, and the data
    overlays default to its, so a probe on other data runs the very rows of the main benchmark."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    base = load_spec(Path(path).parent / raw["rows_from"]) if raw.get("rows_from") else None
    rows: list[Row] = []

    def named(label: str) -> Row:
        found = [r for r in [*rows, *(base.rows if base else ())] if r.label == label]
        if not found:
            raise SystemExit(f"{path}: row {label!r} is neither an earlier row nor one of rows_from")
        return found[0]

    for r in raw["rows"]:
        if isinstance(r, str):
            rows.append(named(r))
        elif "from" in r:
            if set(r) - {"label", "from", "set", "seeds"}:
                raise SystemExit(f"{path}: row {r.get('label')!r} is a variant (from:): label, set and seeds only")
            parent = named(str(r["from"]))
            rows.append(dataclasses.replace(parent, label=str(r["label"]), set={**parent.set, **(r.get("set") or {})},
                                            seeds=row_seeds(r) or parent.seeds))
        else:
            if set(r) - ROW_KEYS:
                raise SystemExit(f"{path}: row {r.get('label')!r}: unknown keys {sorted(set(r) - ROW_KEYS)}")
            ranker = r.get("ranker")
            rows.append(Row(str(r["label"]), tuple(r.get("experiments") or ()), dict(r.get("set") or {}),
                            r.get("seed_key"), r.get("baseline"), None if ranker is None else tuple(ranker),
                            row_seeds(r)))
    if len({r.label for r in rows}) != len(rows):
        raise SystemExit(f"{path}: row labels must be unique")
    inherit = {f: getattr(base, f) for f in ("experiments", "set", "until")} if base else {}
    spec = Spec(path=Path(path), title=str(raw["title"]), block=str(raw["block"]),
                seeds=tuple(int(s) for s in raw["seeds"]), rows=tuple(rows),
                **{**inherit, **{k: raw[k] for k in ("experiments", "set", "until") if k in raw}},
                layout=raw.get("layout", "seeds"), columns=raw.get("columns", "test"),
                published=raw.get("published"), notes=str(raw.get("notes", "")).strip(),
                note=str(raw.get("note", "")), results=str(raw.get("results", f"{raw['block']}.json")),
                recorded=str(raw.get("recorded", "")), compare_to=raw.get("compare_to"),
                compare_columns=tuple(raw.get("compare_columns") or ()))
    spec = dataclasses.replace(spec, experiments=tuple(spec.experiments), set=dict(spec.set))
    if spec.layout not in LAYOUTS or spec.columns not in COLUMNS:
        raise SystemExit(f"{path}: layout is one of {LAYOUTS}, columns one of {tuple(COLUMNS)}")
    if spec.layout == "comparison" and len(spec.seeds) != 1:
        raise SystemExit(f"{path}: a comparison block shows one run per row: give one seed")
    if spec.compare_to is not None:
        if spec.compare_to not in {r.label for r in spec.rows}:
            raise SystemExit(f"{path}: compare_to {spec.compare_to!r} is not a row of the spec")
        known = {c for c, _ in COLUMNS[spec.columns]}
        if not spec.compare_columns or set(spec.compare_columns) - known:
            raise SystemExit(f"{path}: compare_columns must name columns of {spec.columns!r}: {sorted(known)}")
    return spec


def row_seeds(raw: dict[str, Any]) -> tuple[int, ...] | None:
    """A spec row's own ``seeds`` (a row screened on fewer seeds than the spec's), or None."""
    return tuple(int(s) for s in raw["seeds"]) if raw.get("seeds") else None


# ---------------------------------------------------------------------------------------------- params
def planned_seeds(spec: Spec, row: Row, asked: Sequence[int] | None = None) -> list[int | None]:
    """The seeds a run of ``row`` trains: those asked on the command line, else the row's own, else the
    spec's; the block's "Seeds still to run" line is these minus the runs stored."""
    return list(asked or row.seeds or spec.seeds) if row.seed_key is not None else [None]


def seed_name(seed: int | None) -> str:
    return "deterministic" if seed is None else str(seed)


def part_overrides(spec: Spec, row: Row, seed: int | None) -> dict[str, list[str]]:
    """Part name -> the overrides its params.yaml gets: the data's overlays and keys, the part's overlays,
    the row's keys, the seed. One part (``model``) for a model or baseline row, two for a row with a ranker
    (``retrieval``, ``ranking``), each trained in its own folder."""
    base = ROOT / PARAMS_FILE
    params = yaml.safe_load(base.read_text(encoding="utf-8"))
    check = [(spec.set, f"{spec.path}: set"), (row.set, f"{spec.path}: row {row.label!r}")]
    keys = [assignments_to_overrides(overlay_assignments(tree, params, where)) for tree, where in check]
    seed = [f"{row.seed_key}={seed}"] if row.seed_key is not None and seed is not None else []
    data = experiment_overrides(ROOT, spec.experiments)

    def of(experiments: Sequence[str]) -> list[str]:
        return merge_overrides(data, keys[0], experiment_overrides(ROOT, experiments), keys[1], seed)

    if row.ranker is None:
        return {"model": of(row.experiments)}
    return {"retrieval": of(row.experiments), "ranking": of(row.ranker)}


def write_params(dest: Path, overrides: list[str]) -> dict[str, Any]:
    """``dest/params.yaml``: this checkout's, with ``overrides`` written by the product's writer."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / PARAMS_FILE, dest / PARAMS_FILE)
    write_overrides(dest, overrides)
    return yaml.safe_load((dest / PARAMS_FILE).read_text(encoding="utf-8"))


def differences(ours: dict[str, Any], theirs: dict[str, Any], sections: Sequence[str]) -> list[str]:
    """Keys of ``sections`` both params hold with other values (``ingest.path``, where the files were read
    from, aside): a root prepared before a knob existed, or after one went, is not flagged for it."""
    a = flatten_mapping({s: ours.get(s, {}) for s in sections})
    b = flatten_mapping({s: theirs.get(s, {}) for s in sections})
    return sorted(k for k in a.keys() & b.keys() if a[k] != b[k] and k != "ingest.path")


def check_rows(root: Path, spec: Spec, rows: Sequence[Row]) -> None:
    """Fail before any run, not hours into the queue: every row's overrides apply, the root's data was made
    with the spec's data params, and rows on the root's identifiers find them."""
    root_params = yaml.safe_load((root / PARAMS_FILE).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="quality-check-") as scratch:
        for row in rows:
            for name, overrides in part_overrides(spec, row, None).items():
                params = write_params(Path(scratch) / f"{len(os.listdir(scratch))}", overrides)
                if wrong := differences(params, root_params, DATA_SECTIONS):
                    raise SystemExit(f"{root} was prepared with other data params than {spec.path} gives row "
                                     f"{row.label!r}: {wrong}")
                linked_ids = not differences(params, root_params, ("identifiers",))
                semantic = params["train"]["model"]["item_representation"] != "atomic"
                if row.baseline is None and semantic and linked_ids and not Layout(root).ids_table.exists():
                    raise SystemExit(f"row {row.label!r} ({name}) trains on semantic IDs, but "
                                     f"{Layout(root).ids_table} is missing: prepare the root --until identifiers")


# ---------------------------------------------------------------------------------------------- running
def stage(name: str, root: Path) -> None:
    """``unigrec stage NAME --root ROOT``: the entry point dvc.yaml calls, in this process."""
    if unigrec_cli(["stage", name, "--root", str(root)]) != 0:
        raise SystemExit(f"`unigrec stage {name} --root {root}` failed (see the log above)")


def link(target: Path, link_path: Path) -> None:
    if target.exists() and not link_path.exists() and not link_path.is_symlink():
        link_path.parent.mkdir(parents=True, exist_ok=True)
        link_path.symlink_to(target.resolve())


def link_caches(src: Path, dst: Path, own: Path) -> None:
    """Link every entry of cache folder ``src`` into ``dst`` (texts already embedded are not embedded again)
    except the run's own training scratch ``own`` and the real folders on the way to it, so two runs side by
    side never write the same checkpoint folder."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        target = dst / entry.name
        if target == own:
            continue
        if entry.is_dir() and own.is_relative_to(target):
            link_caches(entry, target, own)
        else:
            link(entry, target)


def prepare_folder(root: Path, dest: Path, overrides: list[str]) -> dict[str, Any]:
    """``dest`` with its params and links to the root's data and caches; returns the params."""
    params = write_params(dest, overrides)
    for rel in LINKED:
        link(root / rel, dest / rel)
    if (root / ".cache").is_dir():
        link_caches(root / ".cache", dest / ".cache", Layout(dest).train_work_dir)
    return params


def prepare_part(root: Path, dest: Path, overrides: list[str], work: Path) -> dict[str, Any]:
    """A run folder at ``dest`` (:func:`prepare_folder`) with identifiers: the root's where its identifiers
    params are the root's, else built by the identifiers stage (TIGER-style) once per identifiers params
    beside the run folders, and linked. Returns the params."""
    params = prepare_folder(root, dest, overrides)
    root_params = yaml.safe_load((root / PARAMS_FILE).read_text(encoding="utf-8"))
    if not differences(params, root_params, ("identifiers",)):
        link(Layout(root).ids_dir, Layout(dest).ids_dir)
        return params
    digest = hashlib.sha256(json.dumps(params["identifiers"], sort_keys=True).encode()).hexdigest()[:12]
    own = work.parent / f"identifiers-{digest}"
    if not Layout(own).ids_table.exists():
        prepare_folder(root, own, overrides)
        stage("identifiers", own)
    link(Layout(own).ids_dir, Layout(dest).ids_dir)
    return params


# the per-epoch columns of a run's train curve its record keeps: the run folder stays behind on the machine
# that trained it, and benchmarks/arm_curves.py draws a block's arms from these where the folder is gone
CURVE_COLUMNS = ("train/loss_retrieval_rec", "train/loss_ranking", "val/rec_ndcg@10", "val/ranking_auc",
                 "weight_task/retrieval", "weight_task/ranking")
CURVE_DIGITS = 6


def kept_curve(folder: Path) -> dict[str, list[float | None]] | None:
    """The :data:`CURVE_COLUMNS` a one-part run in ``folder`` logged, per epoch (Lightning's 0-based epochs, as
    in its train_curve.csv); None where it has no curve (a baseline, or a two-part run: its parts' curves
    are different models')."""
    import pandas as pd

    path = Layout(folder).train_curve
    if not path.exists():
        return None
    frame = pd.read_csv(path)
    logged = [c for c in CURVE_COLUMNS if c in frame.columns]
    return {"epoch": [int(e) for e in frame["epoch"]],
            **{c: [None if pd.isna(v) else round(float(v), CURVE_DIGITS) for v in frame[c]] for c in logged}}


TRAINED_WITH = ".trained_with"  # in a run folder once its train stage finished: what it trained with
# params sections no training reads (dvc.yaml: the stages after train): a change to them alone, e.g. a new
# re-ranking grid, re-scores the trained model instead of training it again
AFTER_TRAINING = ("evaluate", "register", "serving", "orchestration")


def trained_with(dest: Path) -> str:
    """The params file and the bytes of the training inputs (their fingerprint last): what the marker holds."""
    return (dest / PARAMS_FILE).read_text(encoding="utf-8") + inputs_fingerprint(dest)


def inputs_fingerprint(dest: Path) -> str:
    from unigrec.registry.lineage import files_fingerprint

    layout = Layout(dest)
    return files_fingerprint([p for p in (layout.split_dir, layout.items, layout.ids_dir) if p.exists()])


def same_training(marker: str, dest: Path) -> bool:
    """Was the model in ``dest`` trained as its params and inputs would train it now? The same input bytes
    and the same params outside :data:`AFTER_TRAINING`, so a model is reused when only how it is scored
    changed."""
    fingerprint = inputs_fingerprint(dest)
    if not marker.endswith(fingerprint):
        return False

    def training_sections(text: str) -> dict[str, Any]:
        return {k: v for k, v in (yaml.safe_load(text) or {}).items() if k not in AFTER_TRAINING}

    then = marker[: len(marker) - len(fingerprint)]
    return training_sections(then) == training_sections((dest / PARAMS_FILE).read_text(encoding="utf-8"))


def train_part(root: Path, dest: Path, overrides: list[str], work: Path) -> dict[str, Any]:
    """Train one part in ``dest`` through the train stage; a model trained there with the same training
    params and inputs is reused (the two-stage system's first model when its second was interrupted, a
    row re-scored under new evaluate params)."""
    prepare_part(root, dest, overrides, work)
    marker = dest / TRAINED_WITH
    if not (marker.exists() and Layout(dest).model_dir.exists() and same_training(marker.read_text(), dest)):
        marker.unlink(missing_ok=True)
        stage("train", dest)
        marker.write_text(trained_with(dest), encoding="utf-8")
    return json.loads(Layout(dest).train_metrics.read_text(encoding="utf-8"))


def evaluate(data: Any, models: list[Path], params_root: Path) -> dict[str, Any]:
    """Test metrics of the first model, re-ranked by the second where there is one, with the evaluate and
    runtime params of ``params_root`` (the ranking part's). A model whose ranking head was never trained
    reports no ranking figures: its AUC would be a coin toss presented as a result."""
    from unigrec.evaluate.evaluation import evaluate_test_split
    from unigrec.evaluate.report import finite_or_none

    cfg = dataclasses.replace(load_section("evaluate", params_root / PARAMS_FILE), baselines=())
    runtime = load_section("runtime", params_root / PARAMS_FILE)
    ranker = models[1] if len(models) > 1 else None
    result = evaluate_test_split(cfg, data, models[0], runtime, Layout(params_root), ranker_dir=ranker)
    test = finite_or_none(result.metrics)["test"]
    if load_section("train", params_root / PARAMS_FILE).loss_weights.ranking == 0:
        test["ranking"] = {}
    return test


def run_one(root: Path, work: Path, spec: Spec, row: Row, seed: int | None, data: Any) -> dict[str, Any]:
    """Train (where the row needs it) and evaluate one run; its record for the results JSON."""
    started = time.perf_counter()
    parts = part_overrides(spec, row, seed)
    if row.baseline is not None:
        from unigrec.evaluate.evaluation import evaluate_baselines
        from unigrec.evaluate.report import finite_or_none

        prepare_part(root, work, parts["model"], work)
        params = work / PARAMS_FILE
        cfg = dataclasses.replace(load_section("evaluate", params), baselines=(row.baseline,))
        metrics = evaluate_baselines(cfg, data, load_section("baselines", params), load_section("runtime", params),
                                     Layout(work))
        test = finite_or_none(metrics)[row.baseline]
        fitted = test.pop("training", None)  # how a trained baseline stopped: its validation figure, read on screens
        return {"test": test, **({"training": fitted} if fitted else {}),
                "seconds": round(time.perf_counter() - started, 1)}
    roots = {name: work if len(parts) == 1 else work / name for name in parts}
    trained = {name: train_part(root, roots[name], overrides, work) for name, overrides in parts.items()}
    record = training_record(trained)
    if spec.columns != "validation":
        record["test"] = evaluate(data, [Layout(r).model_dir for r in roots.values()], list(roots.values())[-1])
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record


def training_record(trained: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How each part trained, and the validation report: retrieval figures from the first part, ranking
    from the last (the one that re-ranks)."""
    parts = list(trained.values())
    first, last = parts[0], parts[-1]
    validation = {**first["validation"], "ranking": last["validation"]["ranking"]}
    if len(trained) == 1:
        return {"training": first["training"], "validation": validation}
    return {"parts": {name: metrics["training"] for name, metrics in trained.items()}, "validation": validation}


# ---------------------------------------------------------------------------------------------- elsewhere
def export_run(root: Path, work: Path, spec: Spec, row: Row, seed: int | None, dest: Path) -> list[Path]:
    """Copies (not links: ``dest`` travels) of what each part's train stage reads, with its params, to train
    on another machine (``benchmarks/train_exported.sh``) and bring back with ``--adopt``. One part is
    ``dest`` itself, two are ``dest/retrieval`` and ``dest/ranking``. Returns the files written."""
    import pandas as pd

    from unigrec.stages.train import inputs, query_texts
    from unigrec.text_encoder import embed_texts, embedding_cache_file

    if row.baseline is not None:
        raise SystemExit(f"--export: row {row.label!r} is a baseline: it is fitted where quality.py runs")
    if dest.exists() and any(dest.iterdir()):
        raise SystemExit(f"--export: {dest} is not empty; an earlier export's model there would be adopted")
    parts = part_overrides(spec, row, seed)
    written: list[Path] = []
    for name, overrides in parts.items():
        here, there = (work, dest) if len(parts) == 1 else (work / name, dest / name)
        prepare_part(root, here, overrides, work)
        layout, params = Layout(here), here / PARAMS_FILE
        runtime, train = load_section("runtime", params), load_section("train", params)
        files = [path for path, _ in inputs(train, layout)]
        # the query vectors travel too (embedded here if not cached yet): the other machine may lack the
        # text encoder's weights, and a GPU machine has no registry to fetch them from
        texts = list(query_texts(train, pd.read_parquet(layout.events), pd.read_parquet(layout.items))[0])
        cache_dir = layout.resolve(runtime.cache_dir)
        embed_texts(texts, batch_size=runtime.batch_sizes.text_encoding, cache_dir=cache_dir, show_progress=False)
        files.append(embedding_cache_file(texts, cache_dir))
        for path in [*files, here / PARAMS_FILE]:
            if path.exists():
                target = there / path.relative_to(here)
                target.parent.mkdir(parents=True, exist_ok=True)
                written.append(Path(shutil.copy2(path, target)))
    return written


def adopt_run(root: Path, work: Path, spec: Spec, row: Row, seed: int | None, project: Path, data: Any) -> dict:
    """A run whose training was done in ``project`` (what ``--export`` wrote, trained elsewhere): each part is
    checked to have trained exactly this run (its train params, the runtime section aside, and the bytes of
    every input), then only the evaluation is done here. The record keeps where each part trained."""
    from unigrec.stages.train import inputs
    from unigrec.train.resume import config_digest

    started = time.perf_counter()
    parts = part_overrides(spec, row, seed)
    trained: dict[str, dict[str, Any]] = {}
    for name, overrides in parts.items():
        here, there = (work, project) if len(parts) == 1 else (work / name, project / name)
        prepare_part(root, here, overrides, work)
        # params.yaml's keys before sizing: the tier table decides what the auto keys train with, so it counts
        wanted, had = (flatten_mapping(config_digest(load_section("train", p / PARAMS_FILE), with_sizing=True))
                       for p in (here, there))
        if wanted != had:
            raise SystemExit(f"--adopt: {there} trained with other params than this run: "
                             f"{sorted(k for k in wanted.keys() | had.keys() if wanted.get(k) != had.get(k))}")
        for path, _ in inputs(load_section("train", here / PARAMS_FILE), Layout(here)):
            if not filecmp.cmp(path, there / path.relative_to(here), shallow=False):
                raise SystemExit(f"--adopt: {there / path.relative_to(here)} differs from {path}: other data")
        if not Layout(there).train_metrics.exists():
            raise SystemExit(f"--adopt: {Layout(there).train_metrics} is missing: train {there} first")
        trained[name] = json.loads(Layout(there).train_metrics.read_text(encoding="utf-8"))
    record = {"adopted_from": str(project), **training_record(trained)}
    models = [Layout(project if len(parts) == 1 else project / name).model_dir for name in parts]
    record["test"] = evaluate(data, models, work if len(parts) == 1 else work / list(parts)[-1])
    spent = sum(t["training"]["seconds"] for t in trained.values())
    record["seconds"] = round(spent + time.perf_counter() - started, 1)
    return record


# ---------------------------------------------------------------------------------------------- report
LOAD_NOTE = "; 1-minute load average at start"


def hardware() -> str:
    """The machine without its momentary load: what two runs must share for their minutes to compare.
    Memory stays out: stored records are matched by this very string, and never held it."""
    record = host_machine()
    record.pop("memory_gb")
    return machine_line(record)


def machine_label(line: str) -> str:
    """A recorded machine line as blocks name machines: its id in BENCHMARKS.md's machines table, with the
    torch thread count (it sets the minutes) and the load at start where recorded."""
    hw, _, load = line.partition(LOAD_NOTE)
    threads = re.search(r"\((\d+) threads\)", hw)
    return (machine_id({"platform": hw}) + (f" (torch threads {threads.group(1)})" if threads else "")
            + (f"; 1-minute load average at start{load}" if load else ""))


def dig(record: Any, path: Sequence[str]) -> float | None:
    for key in path:
        if not isinstance(record, dict) or record.get(key) is None:
            return None
        record = record[key]
    return float(record)


def summary(values: Sequence[float]) -> tuple[float, float, int] | None:
    """(mean, sample std, n) of a row's per-seed values (std 0 for one value); None for none."""
    if not values:
        return None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values)


def aggregate(runs: dict[str, dict[str, Any]], columns: str = "test") -> dict[str, tuple[float, float, int]]:
    """Column -> (mean, sample std, n) over a row's runs; columns no run has are left out."""
    out = {}
    for column, path in COLUMNS[columns]:
        if stat := summary([v for v in (dig(r, path) for r in runs.values()) if v is not None]):
            out[column] = stat
    return out


def column_values(runs: dict[str, dict[str, Any]], columns: str, column: str) -> list[float]:
    """One column's value in each of a row's runs (runs without it left out)."""
    path = dict(COLUMNS[columns])[column]
    return [float(v) for v in (dig(r, path) for r in runs.values()) if v is not None]


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of Welch's t-test (unequal variances) between two rows' per-seed values: the test
    issue 39 asks for, since an arm and its reference need not vary alike. None where it is undefined
    (fewer than two runs on a side, or no spread on either)."""
    if len(a) < 2 or len(b) < 2 or (statistics.variance(a) == 0.0 and statistics.variance(b) == 0.0):
        return None
    from scipy import stats

    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def cell(stat: tuple[float, float, int] | None, count: bool = False) -> str:
    """A column's mean ± std over seeds; a count of cases (``count``) as a whole number where no seed differs."""
    if stat is None:
        return "–"
    mean, std, n = stat
    if count and std == 0.0:
        return f"{mean:.0f}"
    return f"{mean:.4f}" if n == 1 else f"{mean:.4f} ± {std:.4f}"


def wrap(text: str) -> str:
    return "\n".join(textwrap.fill(p, WRAP, break_on_hyphens=False) for p in text.split("\n\n"))


def command(spec: Spec) -> tuple[str, str]:
    """The commands that rebuild the block: the root (once), then the rows."""
    spec_path = os.path.relpath(spec.path.resolve(), ROOT)
    options = [*(f"--experiment {e}" for e in spec.experiments),
               *(f"--set {assignment}" for assignment in assignments_to_overrides(spec.set)),
               *([f"--until {spec.until}"] if spec.until != "split" else [])]
    return (f"`{' '.join(['python benchmarks/prepare_root.py ROOT', *options])}`",
            f"`python benchmarks/quality.py --root ROOT --spec {spec_path}`")


def render(spec: Spec, results: dict[str, Any]) -> str:
    runs = results.get("runs", {})
    dates = sorted({r["date"] for rr in runs.values() for r in rr.values()})
    note = f"; [notes]({spec.note})" if spec.note else ""
    root, rows = command(spec)
    lines = [f"## {spec.title} (`benchmarks/quality.py`)", "", f"Commands: {root} (once), then  ", f"{rows}  ",
             f"Machine: {machine_label(str(results.get('machine', '?')))}; runs dated {', '.join(dates)}{note}", ""]
    if spec.notes:
        lines += [wrap(spec.notes), ""]
    elsewhere = trained_elsewhere(spec, results)
    lines += comparison(spec, results, elsewhere) if spec.layout == "comparison" else table(spec, runs, elsewhere)
    if elsewhere:
        lines += ["", wrap("† Not every run of the row trained here in one go (another machine or project, resumed, or "
                           "`--adopt`ed): its time is the recorded one, not comparable; which runs and how: the notes.")]
    not_run, short = [], []
    for row in spec.rows:
        done = runs.get(row.label, {})
        todo = [name for name in map(seed_name, planned_seeds(spec, row)) if name not in done]
        if not done:
            not_run.append(row.label)
        elif todo:
            short.append(f"{row.label} ({', '.join(todo)})")
    if not_run:
        lines += ["", wrap("Not run yet: " + "; ".join(not_run) + ".")]
    if short:
        lines += ["", wrap("Seeds still to run: " + "; ".join(short) + ".")]
    return "\n".join(lines)


def trained_elsewhere(spec: Spec, results: dict[str, Any]) -> dict[str, str]:
    """Row label -> how its runs that were not trained in one go on the block's machine came to be, seeds
    with the same story together (``--render`` prints it for the notes; the block marks the row)."""
    here = str(results.get("machine", "?")).split(LOAD_NOTE)[0]
    out = {}
    for row in spec.rows:
        seeds_by_note: dict[str, list[str]] = {}
        for name, record in sorted(results.get("runs", {}).get(row.label, {}).items()):
            if notes := provenance(record, here):
                seeds_by_note.setdefault(", ".join(notes), []).append(name)
        if seeds_by_note:
            out[row.label] = "; ".join(f"seed{'s' * (len(names) > 1)} {', '.join(names)}: {note}"
                                       for note, names in seeds_by_note.items())
    return out


def table(spec: Spec, runs: dict[str, Any], elsewhere: dict[str, str]) -> list[str]:
    """The seeds layout: a row per spec row, mean +- std per column, and the gap of each mean to UniGRF's
    published figures where the spec names them."""
    columns = COLUMNS[spec.columns]
    split = "Validation (the train stage's report; no test data read)" if spec.columns == "validation" else "Test"
    papers = PUBLISHED.get(str(spec.published), {})
    gaps = [("HR@10", "rec HR@10", "hr@10"), ("NDCG@10", "rec NDCG@10", "ndcg@10"), ("AUC", "ranking AUC", "auc")]
    lines = [wrap(f"{split} figures, full catalogue, seen items dropped; `rec 1+99`: the target among 99 "
                  "popularity-sampled negatives; AUC/GAUC: P(<pos>) of labelled recommendations; mean ± std over seeds."), "",
             "| method | seeds | " + " | ".join(c for c, _ in columns) + " | minutes per run |"
             + "".join(f" {name} − UniGRF |" for name, _, _ in gaps if papers)
             + "".join(f" p, {c} |" for c in spec.compare_columns),
             "|---|---|" + "---:|" * (len(columns) + 1 + 3 * bool(papers) + len(spec.compare_columns))]
    reference = runs.get(spec.compare_to or "", {})
    for row in spec.rows:
        row_runs = runs.get(row.label, {})
        if row_runs:
            stats = aggregate(row_runs, spec.columns)
            minutes = statistics.fmean(r["seconds"] for r in row_runs.values()) / 60
            gap = [("–" if column not in stats else f"{stats[column][0] - papers['UniGRF'][key]:+.4f}")
                   for _, column, key in gaps if papers]
            p_values = [
                None if row.label == spec.compare_to else welch_p(
                    column_values(row_runs, spec.columns, c), column_values(reference, spec.columns, c))
                for c in spec.compare_columns
            ]
            lines.append(f"| {row.label} | {', '.join(sorted(row_runs))} | "
                         + " | ".join(cell(stats.get(c), count=path[-1] == "n") for c, path in columns)
                         + f" | {minutes:.1f}{'†' * (row.label in elsewhere)} |" + "".join(f" {g} |" for g in gap)
                         + "".join(" – |" if p is None else f" {p:.3f} |" for p in p_values))
    if spec.compare_columns:
        lines += ["", wrap(f"p: two-sided Welch's t-test of the row's per-seed values against \"{spec.compare_to}\" "
                           "(unequal variances; – where undefined or for that row itself).")]
    if papers:
        quoted = ", ".join(f"{name} " + " / ".join(f"{v:.4f}" for v in fig.values()) for name, fig in papers.items())
        lines += ["", wrap(f"Gaps: each row's mean minus UniGRF's. Published on {spec.published} (full-catalogue "
                           f"leave-one-out, rec HR@10 / NDCG@10 / AUC): {quoted}.")]
    return lines


def provenance(record: dict[str, Any], here: str) -> list[str]:
    """What a reader must know of how a run's model came to be when it is not "trained here in one go": the
    machine when not ``here`` (the block's), the device, the epoch it resumed after, that it trained in
    another project, and any note the record carries. A record without a machine ran on the block's."""
    other = record.get("machine", here)
    notes = [f"ran on {machine_id({'platform': other})}"] if other != here else []
    for part, training in (record.get("parts") or {"": record.get("training", {})}).items():
        whose = f"{part} model " if part else ""
        if training.get("device", "cpu") != "cpu":
            notes.append(f"{whose}trained on {training['device']}")
        if training.get("resumed_after_epoch") is not None:
            # the metrics file counts epochs from 0 (metrics.csv's); a reader counts from 1, as the train log does
            notes.append(f"{whose}resumed after epoch {training['resumed_after_epoch'] + 1}")
    if "adopted_from" in record:
        notes.append("evaluated here (--adopt)")
    return notes + ([record["note"]] if record.get("note") else [])


def comparison(spec: Spec, results: dict[str, Any], elsewhere: dict[str, str]) -> list[str]:
    """The comparison layout: the evaluate stage's full-catalogue table over every row (the first row is the
    model), then each trained row's retrieve-and-re-rank and ranking figures."""
    from unigrec.evaluate.comparison import PROTOCOL_TITLES, protocol_table

    first = {row.label: next(iter(results.get("runs", {}).get(row.label, {}).values()), None) for row in spec.rows}
    done = {label: record for label, record in first.items() if record is not None}
    if not done:
        return []
    model, *others = done.items()
    metrics = {"test": model[1]["test"], "baselines": {label: r["test"] for label, r in others}}
    k = next(key for key in model[1]["test"]["pipeline"]["rec"] if key.startswith("ndcg@")).partition("@")[2]
    lines = [f"**{PROTOCOL_TITLES['full']}**", "", protocol_table(metrics, "full"), "",
             wrap(f"**Unified pipeline and ranking** (retrieve {results['pipeline_k']}, re-rank by (1 − w)·log P(item) "
                  "+ w·log P(<pos>), w per stream chosen on validation; AUC: P(<pos>) of labelled test recommendations)"),
             "",
             (f"| system | rec retrieval NDCG@{k} | rec retrieve + re-rank NDCG@{k} (w) | search retrieval NDCG@{k} "
              f"| search retrieve + re-rank NDCG@{k} (w) | ranking AUC | GAUC |"), "|---|---:|---:|---:|---:|---:|---:|"]
    for label, record in done.items():
        pipeline, ranking = record["test"].get("pipeline"), record["test"].get("ranking", {})
        if pipeline is None:
            continue  # a baseline: no generative pipeline
        cells = [f"{pipeline[s][f'retrieval_only_ndcg@{k}']:.4f} | {pipeline[s][f'ndcg@{k}']:.4f} "
                 f"({pipeline[s]['fusion_weight']:g})" for s in ("rec", "search")]
        auc, gauc = (f"{v:.4f}" if v is not None else "–" for v in (ranking.get("auc"), ranking.get("gauc")))
        name = "unigrec (one model)" if label == model[0] else label
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {auc} | {gauc} |")
    seconds = ", ".join(f"{label} {record['seconds']:.1f}{'†' * (label in elsewhere)}" for label, record in done.items())
    return lines + ["", wrap(f"Wall seconds per row, training included: {seconds}.")]


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", required=True, help="the benchmark's spec (benchmarks/specs/*.yaml)")
    p.add_argument("--root", default=None, help="the prepared project root (benchmarks/prepare_root.py)")
    p.add_argument("--work", default=None, help="where runs train (default: ROOT/.cache/quality)")
    p.add_argument("--rows", nargs="*", default=None, help="only these row labels (default: all)")
    p.add_argument("--seeds", nargs="*", type=int, default=None, help="only these seeds (default: the spec's)")
    p.add_argument("--rerun", action="store_true", help="run (row, seed) pairs the results already hold again")
    p.add_argument("--export", action="append", default=[], metavar="LABEL@SEED=DIR",
                   help="copy a model row's training inputs and params to DIR, to train elsewhere; nothing runs")
    p.add_argument("--adopt", action="append", default=[], metavar="LABEL@SEED=DIR",
                   help="evaluate a run --export wrote once it trained (checked to be that run); nothing else runs")
    p.add_argument("--render", action="store_true", help="only re-write the block from the results JSON")
    p.add_argument("--results", default=None, help="results JSON (default: benchmarks/results/BLOCK.json)")
    p.add_argument("--benchmarks-file", default=str(ROOT / "BENCHMARKS.md"))
    return p.parse_args(argv)


def keep_run(results_file: Path, results: dict[str, Any], label: str, seed: str, record: dict[str, Any]) -> dict[str, Any]:
    """Write ``record`` as run (``label``, ``seed``) into ``results_file`` and return what the file now holds.

    The file is read again under a lock just before the write, and the record merged into that: two
    quality.py processes of one block (one CPU thread each, on a 2-core machine) each loaded the file
    when they started, and writing a copy from then would drop the other's runs that ended since.
    ``results`` (this process's copy) only fills in what the file lacks (the header of a block's first
    run)."""
    def add(latest: dict[str, Any]) -> None:
        for key, value in results.items():  # the file is the truth; this copy only adds a header it lacks
            latest.setdefault(key, value)
        latest.setdefault("runs", {}).setdefault(label, {})[seed] = record

    return update_results(results_file, add)


def parse_run_arg(spec: Spec, arg: str, option: str) -> tuple[Row, int, Path]:
    """``LABEL@SEED=DIR`` -> (the spec's row, seed, DIR)."""
    label_seed, sep, folder = arg.partition("=")
    label, at, seed = label_seed.rpartition("@")
    row = next((r for r in spec.rows if r.label == label), None)
    if not (sep and at and seed.isdigit()) or row is None:
        raise SystemExit(f"{option} {arg!r}: expected LABEL@SEED=DIR with a row label of the spec")
    return row, int(seed), Path(folder).resolve()


def run_dir(work: Path, spec: Spec, row: Row, seed: int | None) -> Path:
    return work / f"{spec.block}-{row.label}-{seed_name(seed)}".replace(" ", "_").replace("/", "_")


def main(argv: list[str] | None = None) -> int:
    from unigrec.logs import setup_logging

    args = parse_args(argv)
    setup_logging(None)
    spec = load_spec(Path(args.spec))
    results_file = Path(args.results or ROOT / "benchmarks" / "results" / spec.results)
    results = json.loads(results_file.read_text(encoding="utf-8")) if results_file.exists() else {}
    if not all(isinstance(runs, dict) for runs in results.get("runs", {}).values()):
        raise SystemExit(f"{results_file} holds another script's results (runs are seed -> record here)")
    if not args.render:
        if args.root is None:
            raise SystemExit("--root is needed to run rows (only --render works without one)")
        root = Path(args.root).resolve()
        work = Path(args.work).resolve() if args.work else root / ".cache" / "quality"
        rows = [r for r in spec.rows if args.rows is None or r.label in args.rows]
        if args.rows is not None and len(rows) != len(args.rows):
            raise SystemExit(f"unknown row label(s): {sorted(set(args.rows) - {r.label for r in spec.rows})}")
        for arg in args.export:
            row, seed, dest = parse_run_arg(spec, arg, "--export")
            files = export_run(root, run_dir(work, spec, row, seed), spec, row, seed, dest)
            size = sum(f.stat().st_size for f in files) / 2**20
            print(f"{dest}: {len(files)} files, {size:.1f} MiB; train there: benchmarks/train_exported.sh {dest}")
        if args.export:
            return 0
        check_rows(root, spec, [] if args.adopt else rows)
        from unigrec.evaluate.inputs import load_test_inputs

        data = load_test_inputs(load_section("runtime", ROOT / PARAMS_FILE), Layout(root))
        results.setdefault("machine", f"{hardware()}{LOAD_NOTE} {os.getloadavg()[0]:.1f}")
        results.setdefault("n_negatives", load_section("split", root / PARAMS_FILE).n_negatives)
        results.setdefault("pipeline_k", load_section("evaluate", ROOT / PARAMS_FILE).pipeline_k)
        todo = [(row, seed, None) for row in ([] if args.adopt else rows) for seed in planned_seeds(spec, row, args.seeds)]
        todo += [parse_run_arg(spec, arg, "--adopt") for arg in args.adopt]
        for row, seed, project in todo:
            done = results.setdefault("runs", {}).setdefault(row.label, {})
            if seed_name(seed) in done and not args.rerun and project is None:
                log.info("%s, seed %s: kept from %s", row.label, seed_name(seed), results_file)
                continue
            log.info("%s, seed %s: %s", row.label, seed_name(seed), "adopting" if project else "running")
            where = run_dir(work, spec, row, seed)
            record = (run_one(root, where, spec, row, seed, data) if project is None
                      else adopt_run(root, where, spec, row, seed, project, data))
            record |= {"machine": hardware(), "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")}
            if (curve := kept_curve(where if project is None else project)) is not None:
                record["curve"] = curve
            results = keep_run(results_file, results, row.label, seed_name(seed), record)
    if results.get("runs"):
        block = render(spec, results)
        elsewhere = trained_elsewhere(spec, results)
        print(block, "\n\nRuns not trained in one go on the block's machine (for the notes):", *(
            f"- {label}: {story}" for label, story in elsewhere.items()), sep="\n")
    elif spec.recorded:  # the removed script's table stands until this spec's runs replace it
        block = recorded_block(spec, json.loads((ROOT / "benchmarks" / "results" / spec.recorded).read_text()))
    else:  # never replace a block (maybe recorded by an older script) with an empty one
        raise SystemExit(f"{results_file} holds no runs: nothing to render")
    write_block(Path(args.benchmarks_file), spec.block, block)
    return 0


def recorded_block(spec: Spec, old: dict[str, Any]) -> str:
    """The ablation as the removed ``benchmarks/ablation.py`` recorded it (mean ± std over its seeds), with
    the command that ran it and this spec's, which replaces the block once run."""
    hw, *setting = old["machine"].split(", ")[:1] + old["machine"].split(", ")[3:]
    columns = ("rec_ndcg@10", "search_ndcg@10", "auc", "gauc", "e2e_rec_ndcg@10", "e2e_search_ndcg@10")
    root, rows = command(spec)
    lines = [f"## {spec.title.split(' (')[0]} (`benchmarks/ablation.py`, since removed)", "",
             f"Recorded {old['date']} by `benchmarks/ablation.py` (its last version: `git show {old['script']}`):  ",
             wrap(f"`{portable(old['command'])}`") + "  ",
             wrap(f"Its successor, which replaces this block when run: {root}, then {rows}") + "  ",
             f"Machine: {machine_id({'platform': hw})} ({', '.join(setting)}); [notes]({spec.note})  ",
             wrap(f"Setup: {old['setup']}; mean ± std over seeds {', '.join(map(str, old['seeds']))}, validation split"),
             "", ("| variant | rec NDCG@10 | search NDCG@10 | ranking AUC | GAUC (1+99) | e2e rec NDCG@10 "
                  "| e2e search NDCG@10 | train s (seq/s) |"), "|---|---|---|---|---|---|---|---|"]
    for variant, figures in old["summary"].items():
        lines.append(f"| {variant} | " + " | ".join(f"{figures[c][0]:.4f} ± {figures[c][1]:.4f}" for c in columns)
                     + f" | {figures['train_seconds'][0]:.0f} ({figures['train_sequences_per_s'][0]:.1f}) |")
    return "\n".join(lines)

if __name__ == "__main__":
    sys.exit(main())
