"""Write the evaluation's plot data (CSV for ``dvc plots``), its PNG figures and the Markdown report."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unigrec.atomic import atomic_file
from unigrec.config import BaselinesConfig, EvaluateConfig
from unigrec.evaluate.baselines.context import KINDS
from unigrec.evaluate.comparison import MODEL_LABEL, comparison_markdown, method_blocks, relevance_markdown
from unigrec.evaluate.slices import SLICE_NAMES, SLICE_STREAMS
from unigrec.figures import headless_pyplot, save_png

CURVE_CSV = "hr_curve_{stream}.csv"
SLICES_CSV = "slices.csv"
CURVE_PNG = "hr_curve.png"
SLICES_PNG = "slices.png"
FIGURE_DPI = 110
SLICE_BAR_INCHES = 1.4  # figure width per slice in the slices plot
SERVED_LABEL = "unigrec served (retrieve + re-rank)"


def finite_or_none(value: Any) -> Any:
    """NaN/inf -> None (JSON null) all through a nested dict: undefined is not a number to compare."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def curve_frame(curves: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Wide table: k, then one HR@k column per method (what `dvc plots show` draws as lines)."""
    length = len(next(iter(curves.values())))
    frame = pd.DataFrame({"k": np.arange(1, length + 1)})
    for method, values in curves.items():
        frame[method] = np.round(values, 6)
    return frame


def slice_frame(metrics: Mapping[str, Any], cutoff: int) -> pd.DataFrame:
    """Long table of full-catalogue NDCG@cutoff per (slice, stream, method)."""
    rows = []
    for method, block in method_blocks(metrics).items():
        for name in SLICE_NAMES:
            for stream, values in block.get("slices", {}).get(name, {}).items():
                rows.append(
                    {"slice": name, "stream": stream, "method": method, "n": values["n"],
                     f"ndcg@{cutoff}": values["full"][f"ndcg@{cutoff}"]}
                )
    return pd.DataFrame(rows)


def stream_slices(stream: str) -> list[str]:
    """The slices reported for ``stream``, in :data:`SLICE_NAMES` order (search slices: search only)."""
    return [name for name in SLICE_NAMES if stream in SLICE_STREAMS[name]]


def served_block(metrics: Mapping[str, Any], cutoff: int, pipeline_cutoff: int) -> dict[str, Any] | None:
    """The served pipeline's NDCG@``pipeline_cutoff`` (retrieve, re-rank: ``test.pipeline``) in the shape of
    a method's block, filed under the slice table's NDCG@``cutoff``; None when the metrics hold no slices
    for it."""
    pipeline = metrics["test"].get("pipeline", {})
    if not any("slices" in block for block in pipeline.values()):
        return None

    def entry(values: Mapping[str, Any]) -> dict[str, Any]:
        return {"n": values["n"], "full": {f"ndcg@{cutoff}": values[f"ndcg@{pipeline_cutoff}"]}}

    out: dict[str, Any] = {stream: entry(block) for stream, block in pipeline.items()}
    out["slices"] = {}
    for stream, block in pipeline.items():
        for name, values in block.get("slices", {}).items():
            out["slices"].setdefault(name, {})[stream] = entry(values)
    return out


def slice_table(metrics: Mapping[str, Any], cutoff: int, pipeline_cutoff: int) -> list[str]:
    """Markdown rows: every method (columns) on the whole test set and on every slice of each stream, with
    the slice's case count. The model twice: its retrieval list (the full-catalogue protocol, as every
    method) and, when the metrics hold it per slice, the served pipeline's list. "–": the method does not
    serve the stream; "empty": no case falls in the slice (a figure over no case would read as a zero)."""
    blocks = dict(method_blocks(metrics))
    served = served_block(metrics, cutoff, pipeline_cutoff)
    if served is not None:  # beside the model's retrieval column
        label = SERVED_LABEL + (f" (NDCG@{pipeline_cutoff})" if pipeline_cutoff != cutoff else "")
        model, *others = blocks.items()
        blocks = dict([model, (label, served), *others])
    lines = [
        "| stream | slice | n | " + " | ".join(blocks) + " |",
        "|---|---|---:|" + "---:|" * len(blocks),
    ]
    for stream in KINDS:
        rows = [("all test cases", {m: b.get(stream) for m, b in blocks.items()})]
        rows += [
            (name.replace("_", " "), {m: b.get("slices", {}).get(name, {}).get(stream) for m, b in blocks.items()})
            for name in stream_slices(stream)
        ]
        for title, values in rows:
            present = [v for v in values.values() if v is not None]
            if not present:
                continue
            n = present[0]["n"]
            cells = [
                "–" if v is None else "empty" if not n else _f(v["full"][f"ndcg@{cutoff}"]) for v in values.values()
            ]
            lines.append(f"| {stream} | {title} | {n} | " + " | ".join(cells) + " |")
    return lines


def plot_curves(curves: Mapping[str, Mapping[str, np.ndarray]], path: Path) -> None:
    plt = headless_pyplot()

    fig, axes = plt.subplots(1, len(KINDS), figsize=(12, 4.5))
    for ax, stream in zip(axes, KINDS):
        for method, values in curves.get(stream, {}).items():
            label = MODEL_LABEL if method == "unigrec" else method
            ax.plot(np.arange(1, len(values) + 1), values, label=label, linewidth=2.2 if method == "unigrec" else 1.4)
        ax.set_title(f"{stream}: hit rate over the full catalogue")
        ax.set_xlabel("k (list length)")
        ax.set_ylabel("HR@k")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper left")
    fig.tight_layout()
    save_png(fig, path, FIGURE_DPI)


def _tick_label(name: str, n: int) -> str:
    """The slice's name and count over three short lines, so seven slices side by side stay legible."""
    first, _, rest = name.partition("_")
    return f"{first}\n{rest.replace('_', ' ')}\n(n={n})"


def plot_slices(frame: pd.DataFrame, cutoff: int, path: Path) -> None:
    plt = headless_pyplot()

    # Panel widths follow the slice counts (the search panel has the search-only slices too).
    widths = [len(stream_slices(stream)) for stream in KINDS]
    fig, axes = plt.subplots(1, len(KINDS), figsize=(SLICE_BAR_INCHES * sum(widths), 4.5),
                             gridspec_kw={"width_ratios": widths})
    column = f"ndcg@{cutoff}"
    for ax, stream in zip(axes, KINDS):
        part = frame[frame["stream"] == stream]
        methods = list(dict.fromkeys(part["method"]))
        names = stream_slices(stream)
        width = 0.8 / max(len(methods), 1)
        x = np.arange(len(names))
        for j, method in enumerate(methods):
            values = part[part["method"] == method].set_index("slice").reindex(names)[column]
            ax.bar(x + j * width - 0.4 + width / 2, values.fillna(0).to_numpy(), width, label=method)
        counts = part.drop_duplicates("slice").set_index("slice").reindex(names)["n"].fillna(0)
        ax.set_xticks(x, [_tick_label(name, int(n)) for name, n in counts.items()], fontsize="small")
        ax.set_title(f"{stream}: full-catalogue NDCG@{cutoff} by slice")
        ax.set_ylabel(f"NDCG@{cutoff}")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    save_png(fig, path, FIGURE_DPI)


def write_plot_files(
    plots_dir: Path, curves: Mapping[str, Mapping[str, np.ndarray]], metrics: Mapping[str, Any], cutoff: int
) -> dict[str, Path]:
    """CSV files for `dvc plots` and the two PNG figures; returns them by name."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for stream in KINDS:
        if curves.get(stream):
            path = plots_dir / CURVE_CSV.format(stream=stream)
            with atomic_file(path) as fh:
                curve_frame(curves[stream]).to_csv(fh, index=False)
            written[f"curve_{stream}"] = path
    slices = slice_frame(metrics, cutoff)
    with atomic_file(plots_dir / SLICES_CSV) as fh:
        slices.to_csv(fh, index=False)
    written["slices_csv"] = plots_dir / SLICES_CSV
    plot_curves(curves, plots_dir / CURVE_PNG)
    plot_slices(slices, cutoff, plots_dir / SLICES_PNG)
    written["curve_png"] = plots_dir / CURVE_PNG
    written["slices_png"] = plots_dir / SLICES_PNG
    return written


def _f(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.4f}"


def baseline_recipes(cfg: BaselinesConfig, names: Sequence[str], fitted: Mapping[str, Any] | None = None) -> str:
    """The report's line on how the trained baselines among ``names`` were fitted, from their params, and
    from ``fitted`` (the metrics file's ``baselines``) how far this run's fit went.

    A reader compares the model with SASRec and takes "beats SASRec" at face value; whether that SASRec
    stopped on validation, as its published recipe does, or ran a fixed number of epochs (the quick recipe
    that keeps `make run` short) decides what the comparison is worth, so the report says which it was."""
    parts = []
    if "sasrec" in names:
        s = cfg.sasrec
        loss = "full-catalogue cross-entropy (SASRec+)" if s.loss == "ce" else "one sampled negative, BCE (the paper's)"
        stopping = (f"up to {s.epochs} epochs, stopped {s.patience} epochs after the best validation NDCG@"
                    f"{s.monitor_k}, that epoch kept (the published stopping rule)" if s.patience is not None else
                    f"{s.epochs} fixed epochs, no early stopping on validation: a quick recipe, weaker than the "
                    "published one (`--experiment sasrec-published`)")
        windows = (f"trained on each user's last {s.max_len + 1}" if s.train_windows == "latest" else
                   "trained on every window of each history")
        run = ((fitted or {}).get("sasrec") or {}).get("training")
        here = ""
        if run:
            figure = run.get(f"validation_ndcg@{s.monitor_k}")
            kept = f" (validation NDCG@{s.monitor_k} {figure:.4f})" if figure is not None else ""
            here = f"; this run: {run['epochs']} epochs, epoch {run['best_epoch']}'s weights kept{kept}"
        parts.append(f"`sasrec`: the last {s.max_len} events ({windows}), width {s.hidden}, {s.n_blocks} blocks, {s.n_heads} "
                     f"head(s), dropout {s.dropout:g}, {loss}, lr {s.lr:g}, batch {s.batch_size}, {stopping}{here}")
    if any(name.startswith("bm25") for name in names):
        parts.append(f"`bm25`: k1 {cfg.bm25.k1:g}, b {cfg.bm25.b:g} over the item text")
    if not parts:
        return ""
    return "- **Baselines as trained here** (params `baselines`): " + "; ".join(parts) + "."


def report_markdown(
    metrics: Mapping[str, Any],
    cfg: EvaluateConfig,
    n_cases: Mapping[str, int],
    n_negatives: int,
    figures: Mapping[str, str],
    baselines: BaselinesConfig | None = None,
) -> str:
    """The human report; ``figures`` maps figure name -> path relative to the report; ``baselines``: their
    params, for the line that says how they were trained (none when no baseline was asked for).

    A function of the metrics and params only (no wall-clock times, which go to the log and the stage's
    summary): re-running evaluate on the same inputs rewrites the same bytes, so `dvc status` stays clean."""
    test = metrics["test"]
    k = cfg.pipeline_ndcg_cutoff
    slice_k = min(cfg.full_ndcg_cutoffs)
    ranking = test["ranking"]
    recipes = baseline_recipes(baselines, cfg.baselines, metrics.get("baselines")) if baselines else ""
    lines = [
        "# Evaluation on the test split",
        "",
        (f"Held-out test events: {n_cases.get('rec', 0)} recommendation, {n_cases.get('search', 0)} search "
        "(leave-one-out per user and stream; each event's history holds only earlier train/valid events)."),
        "",
        "## Protocol",
        "",
        (f"- **1+{n_negatives}** (GenSAR's 1+99): each target ranked among its {n_negatives} negatives from the split "
        "stage (popularity-sampled outside the user's history for rec, BM25 hard negatives for search). The model's "
        "score is the summed log-probability of the item's ID codes. Ties count against the target."),
        (f"- **Full catalogue** (UniGRF / HSTU): the model decodes with trie-constrained beam search "
        f"(beam {cfg.beam_size}); baselines score every item. **Seen-item rule, for every method:** items "
        "already in the request's history are removed before the list is cut to k (a MovieLens user never "
        "rates a movie twice, so a seen item can never be the target)."),
        ("- **Ranking**: P(<pos>) of each labelled test recommendation (label = rating >= threshold). GAUC is "
        "per user over the liked test item and its sampled unseen negatives (one labelled test event per user "
        "leaves no other group)."),
        (f"- **Unified pipeline**: retrieve {cfg.pipeline_k} unseen items by beam search, re-rank them by "
        f"(1 − w)·log P(item) + w·log P(<pos>), NDCG@{cfg.pipeline_ndcg_cutoff} of the final list. w is chosen "
        "per request kind from the grid " + ", ".join(f"{w:g}" for w in cfg.fusion_weights) + " on the VALIDATION "
        "split and served as is; w = 0 keeps the retrieval order, w = 1 is the ranking head alone. Search adds "
        "λ·BM25/max BM25 (the query's best lexical match = 1) + μ·term coverage (the share of the query's terms "
        f"an item holds, over the best share) and BM25's {cfg.lexical.candidates} best unseen items join the "
        "pool; λ and μ are chosen with w from the grids " + ", ".join(f"{lam:g}" for lam in cfg.lexical.weights)
        + " and " + ", ".join(f"{mu:g}" for mu in cfg.lexical.coverage_weights)
        + " (λ = μ = 0: no lexical signal, the model's own list)."),
        (f"- **Slices** (all measured on the train split): cold users have <= {cfg.cold_user_max_events} train "
        f"events; popular targets are above the {cfg.popular_item_quantile:.0%} quantile of the catalogue's train "
        "counts. Search only: *unseen query*, the query string was never a training search; *target never "
        "searched*, the target was never a training search target; *target no train events*, the target has "
        "no training event in either stream. On these a lookup of the query among the training searches "
        "(`query_lookup`) can only fall back to popularity."),
        (f"- **Search relevance**: every catalogue item graded against the query from its metadata (2 = every "
        "genre / category word, decade and title word of the query, 1 = some, 0 = none); relevance NDCG@"
        f"{cfg.relevance.cutoff} (gains 2^grade − 1) and P@{cfg.relevance.cutoff} (share of the top "
        f"{cfg.relevance.cutoff} fully relevant) of each method's list as served (seen items dropped; the "
        "model's list retrieved and re-ranked). On the test searches, and on the typed-query set: every "
        "query form the generator makes from the catalogue with at least "
        f"{cfg.relevance.typed_queries.min_relevant} fully relevant items, typed five ways (as generated, "
        "reordered, cased, other spellings, one typo) for seeded users, each judged by the form it types."),
        *([recipes] if recipes else []),
        "",
        "## Model vs baselines",
        "",
        comparison_markdown(metrics, n_negatives),
        "## Search relevance (does the list fit the query?)",
        "",
        relevance_markdown(metrics, cfg.relevance.cutoff),
        "## Ranking head (labelled test recommendations)",
        "",
        "| n | positive rate | AUC | GAUC (users) | LogLoss |",
        "|---:|---:|---:|---:|---:|",
        (f"| {ranking['n']} | {_f(ranking['positive_rate'])} | {_f(ranking['auc'])} | {_f(ranking['gauc'])} "
        f"({ranking['gauc_groups']}) | {_f(ranking['logloss'])} |"),
        "",
        f"## Unified pipeline (retrieve {cfg.pipeline_k}, re-rank)",
        "",
        (f"| stream | n | w (validation) | λ (validation) | μ (validation) | retrieval only NDCG@{k} "
         f"| ranking head only NDCG@{k} | re-rank without λ, μ NDCG@{k} | served NDCG@{k} | served HR@{k} |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for stream, values in test["pipeline"].items():
        lines.append(
            f"| {stream} | {values['n']} | {values['fusion_weight']:g} | {values['lexical_weight']:g} "
            f"| {values.get('coverage_weight', 0.0):g} | {_f(values[f'retrieval_only_ndcg@{k}'])} | {_f(values[f'ranking_only_ndcg@{k}'])} "
            f"| {_f(values[f'without_lexical_ndcg@{k}'])} | {_f(values[f'ndcg@{k}'])} | {_f(values[f'hr@{k}'])} |"
        )
    lines += ["", f"Validation NDCG@{k} of the re-ranked list per weight (what chose w):", ""]
    for stream, values in test["pipeline"].items():
        grid = values["validation"][f"ndcg@{k}_by_weight"]
        if not grid:
            lines.append(f"- {stream}: w = {values['fusion_weight']:g} fixed by params (one weight: no validation pass)")
            continue
        coverage = values.get("coverage_weight", 0.0)
        lines.append(f"- {stream} ({values['validation']['n']} cases, at λ = {values['lexical_weight']:g}, "
                     f"μ = {coverage:g}): " + ", ".join(f"w={w:g}: {_f(q)}" for w, q in grid))
        at = {"λ": f"w = {values['fusion_weight']:g}, μ = {coverage:g}",
              "μ": f"w = {values['fusion_weight']:g}, λ = {values['lexical_weight']:g}"}
        for symbol, key in (("λ", "lexical_weight"), ("μ", "coverage_weight")):
            lexical_grid = values["validation"].get(f"ndcg@{k}_by_{key}", [])
            if len(lexical_grid) > 1:
                lines.append(f"- {stream}, {symbol} at {at[symbol]}: "
                             + ", ".join(f"{symbol}={lam:g}: {_f(q)}" for lam, q in lexical_grid))
    lines += [
        "",
        f"## Slices (full-catalogue NDCG@{slice_k})",
        "",
        *slice_table(metrics, slice_k, k),
    ]
    lines += ["", "## Figures", ""]
    for title, path in figures.items():
        lines += [f"![{title}]({path})", ""]
    return "\n".join(lines)
