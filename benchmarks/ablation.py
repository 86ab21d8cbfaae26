"""Ablation of UniGRF's joint optimisation on the validation split: what the enhancer, the adaptive weighter
and unification itself each buy.

Variants (every one a plain ``train`` params override, trained by the stage's own ``fit_generative_model``):
  full               enhancer on, adaptive weighter (params.yaml's mode)
  no_enhancer        enhancer off, adaptive weighter
  fixed_weights      enhancer on, fixed weights
  plain              enhancer off, fixed weights (naive joint training)
  two_stage          a retrieval-only model (ranking weight 0) and a ranking-only model (retrieval weights 0)
                     of the same size, trained separately; the ranker re-ranks the retriever's list
  full_<mode>        optional: the full model with another weighter mode (dwa | gradnorm | uncertainty)

Each variant is the same params change a DVC experiment of the train stage would make, e.g. ``no_enhancer``
= ``-S train.enhancer.enabled=false``, ``plain`` = that plus ``-S train.weighter.mode=fixed``, the two
stage models = ``-S train.loss_weights.ranking=0`` / ``-S train.loss_weights.retrieval_rec=0
-S train.loss_weights.retrieval_search=0``; this script runs them in one process so the prepared data,
seeds and evaluation are shared and the table comes out in one command.

Metrics, all on VALIDATION events (the test split is never read): rec / search NDCG@10 by full-catalogue
trie-constrained beam search; ranking AUC of P(<pos>) on labelled rec validation events, and GAUC over
the split's 1+99 rec candidate lists (target vs its 99 popularity negatives, users whose target is a
positive); end-to-end NDCG@10 per stream after re-ranking the beam's top-K by P(<pos>). Mean ± std over
seeds. Writes benchmarks/results/ablation.json, plots/ablation/*.png and the ``ablation`` block of
BENCHMARKS.md.

    python benchmarks/ablation.py --root <project root with data/split and data/ids> \
        [--seeds 11 12 13] [--epochs 8] [--users all] [--eval-users all] [--variants ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package, when run as a script

from benchmarks.host import command_line, machine, machine_line
from benchmarks.markdown_block import write_block
from unigrec.config import TrainConfig, build_section
from unigrec.evaluate.metrics import auc, gauc, ndcg_at_k
from unigrec.ids.embeddings import embed_texts
from unigrec.logs import progress
from unigrec.model.decoding import beam_search, score_candidates
from unigrec.model.item_codes import load_item_codes
from unigrec.model.transformer import GenerativeTransformer
from unigrec.model.vocabulary import PAD
from unigrec.paths import Layout
from unigrec.train.curves import epoch_curve, write_curve, write_task_weights_plot
from unigrec.train.datamodule import PromptCollator
from unigrec.train.examples import PromptExample, query_table_texts
from unigrec.train.fit import TrainingData, fit_generative_model, id_spaces, prepare_training_data
from unigrec.train.quick_eval import target_ranks
from unigrec.train.reference_systems import PLAIN, RANKING_ONLY, RETRIEVAL_ONLY, merged
from unigrec.train.resume import mark_complete

BLOCK = "ablation"  # its block in BENCHMARKS.md
BASE_VARIANTS = ("full", "no_enhancer", "fixed_weights", "plain", "two_stage")
ADAPTIVE_MODES = ("dwa", "gradnorm", "uncertainty")
METRICS = ("rec_ndcg@10", "search_ndcg@10", "auc", "gauc", "e2e_rec_ndcg@10", "e2e_search_ndcg@10")
log = logging.getLogger("ablation")


# ------------------------------------------------------------------------------------------ variants
def variant_overrides(name: str, adaptive_mode: str) -> list[dict[str, Any]]:
    """The ``train`` overrides of each model a variant trains (two for the two-stage system)."""
    fixed = {"weighter": {"mode": "fixed"}}
    adaptive = {"weighter": {"mode": adaptive_mode}}
    on, off = {"enhancer": {"enabled": True}}, {"enhancer": {"enabled": False}}
    if name == "full":
        return [{**on, **adaptive}]
    if name.startswith("full_") and name.removeprefix("full_") in ADAPTIVE_MODES:
        return [{**on, "weighter": {"mode": name.removeprefix("full_")}}]
    if name == "no_enhancer":
        return [{**off, **adaptive}]
    if name == "fixed_weights":
        return [{**on, **fixed}]
    if name == "plain":
        return [PLAIN]
    if name == "two_stage":
        return [RETRIEVAL_ONLY, RANKING_ONLY]
    raise ValueError(f"unknown variant {name!r}")


# ------------------------------------------------------------------------------------------ evaluation
def rec_candidate_lists(layout: Layout, data: TrainingData) -> dict[str, np.ndarray]:
    """user -> the 99 popularity negatives of its rec validation event (dense item indices)."""
    frame = pd.read_parquet(layout.candidates)
    frame = frame[(frame["kind"] == "rec") & (frame["split"] == "valid")]
    return {str(u): data.items.indices_of([str(x) for x in negs])
            for u, negs in zip(frame["user_id"], frame["negatives"])}


@torch.no_grad()
def evaluate(
    retriever: GenerativeTransformer,
    ranker: GenerativeTransformer,
    examples: Sequence[PromptExample],
    data: TrainingData,
    negatives: dict[str, np.ndarray],
    collate: PromptCollator,
    beam: int,
    k: int,
    batch_size: int,
) -> dict[str, float]:
    """Validation metrics of a retriever + ranker pair (the same network for the unified model)."""
    retriever.eval()
    ranker.eval()
    spaces = id_spaces(data.vocab, data.items)
    out: dict[str, float] = {}
    rank_scores, rank_labels, g_groups, g_labels, g_scores = [], [], [], [], []
    for search, name in ((False, "rec"), (True, "search")):
        pool = [e for e in examples if e.is_search == search]
        ranks, e2e = [], []
        for start in progress(range(0, len(pool), batch_size), desc=f"eval {name}", leave=False):
            rows = pool[start : start + batch_size]
            prompts, targets, _, labels, seen = collate(rows)
            retrieved, _ = beam_search(retriever, prompts, spaces[search], beam, exclude=seen)
            ranks.append(target_ranks(retrieved, targets).numpy())
            _, probs = score_candidates(ranker, prompts, retrieved.clamp(min=0), spaces[search])
            order = probs.masked_fill(retrieved < 0, -1.0).argsort(dim=1, descending=True, stable=True)
            e2e.append(target_ranks(retrieved.gather(1, order), targets).numpy())
            if not search:
                _, p_target = score_candidates(ranker, prompts, targets[:, None], spaces[search])
                rank_scores.append(p_target[:, 0].numpy())
                rank_labels.append(labels.numpy())
                lists = [np.r_[r.target, negatives[r.user_id]] for r in rows if r.user_id in negatives and r.label]
                with_lists = [r for r in rows if r.user_id in negatives and r.label]
                if lists:
                    sub, _, _, _, _ = collate(with_lists)
                    cands = torch.as_tensor(np.stack(lists), dtype=torch.long)
                    _, p = score_candidates(ranker, sub, cands, spaces[search])
                    g_groups.append(np.repeat([r.user_id for r in with_lists], cands.shape[1]))
                    g_labels.append(np.tile(np.r_[1, np.zeros(cands.shape[1] - 1, dtype=int)], len(with_lists)))
                    g_scores.append(p.reshape(-1).numpy())
        out[f"{name}_ndcg@{k}"] = ndcg_at_k(np.concatenate(ranks), k)
        out[f"e2e_{name}_ndcg@{k}"] = ndcg_at_k(np.concatenate(e2e), k)
        out[f"{name}_n"] = len(pool)
    out["auc"] = auc(np.concatenate(rank_labels), np.concatenate(rank_scores))
    out["gauc"] = gauc(np.concatenate(g_groups), np.concatenate(g_labels), np.concatenate(g_scores))
    return out


# ------------------------------------------------------------------------------------------ runs
def load_data(root: Path, raw_train: dict, users: int | None) -> tuple[TrainingData, Layout]:
    layout = Layout(root)
    cfg = build_section(TrainConfig, raw_train, "train")
    events = pd.read_parquet(layout.events)
    if users is not None:
        keep = sorted(events["user_id"].astype(str).unique())[:users]
        events = events[events["user_id"].astype(str).isin(keep)]
    items, codebooks = load_item_codes(layout.ids_table, layout.codebooks)
    texts = query_table_texts(events)
    table = embed_texts(list(texts), cfg.query_batch_size, root / cfg.query_cache_dir, show_progress=False)
    return prepare_training_data(cfg, events, items, codebooks, texts, table), layout


def run_variant(
    name: str, seed: int, raw_train: dict, data: TrainingData, layout: Layout, negatives: dict, args: argparse.Namespace
) -> dict[str, Any]:
    nets, seconds, speeds, epochs = [], 0.0, [], []
    for i, override in enumerate(variant_overrides(name, raw_train["weighter"]["mode"])):
        cfg = build_section(TrainConfig, merged(raw_train, {**override, "seed": seed}), "train")
        work = Path(args.work_dir) / f"{name}_{i}_{seed}"
        log.info("training %s (model %d) seed %d", name, i, seed)
        result = fit_generative_model(cfg, data, work)
        if result.finished:  # a re-run of the ablation trains afresh, as before
            mark_complete(work)
        nets.append(result.net)
        seconds += result.seconds
        speeds.append(result.sequences_per_second)
        epochs.append(result.epochs_run)
        if seed == args.seeds[0] and result.metrics_csv is not None:
            plots = Path(args.plots)
            write_curve(epoch_curve(result.metrics_csv), work / "curve.csv", plots / f"{name}_{i}_validation.png")
            write_task_weights_plot(result.metrics_csv, plots / f"{name}_{i}_task_weights.png")
    cfg = build_section(TrainConfig, raw_train, "train")
    collate = PromptCollator(data.query_table, cfg.model.n_query_tokens, data.vocab.token(PAD), data.items.n_items)
    metrics = evaluate(nets[0], nets[-1], data.final_examples, data, negatives, collate, cfg.eval.beam_size,
                       cfg.eval.k, cfg.eval.batch_size)
    metrics.update(train_seconds=seconds, train_sequences_per_s=float(np.mean(speeds)), epochs=epochs)
    log.info("%s seed %d: %s", name, seed, {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
    return metrics


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, list[float]]]:
    """variant -> metric -> [mean, std] over seeds (std with ddof=1; 0 for one seed)."""
    out: dict[str, dict[str, list[float]]] = {}
    for name, per_seed in runs.items():
        out[name] = {}
        for metric in (*METRICS, "train_seconds", "train_sequences_per_s"):
            values = np.array([r[metric] for r in per_seed], dtype=float)
            std = float(values.std(ddof=1)) if values.size > 1 else 0.0
            out[name][metric] = [float(values.mean()), std]
    return out


def training_step_costs(raw_train: dict, data: TrainingData, steps: int) -> dict[str, Any]:
    """Median wall time of one training step: plain, with the enhancer, with GradNorm's gradient norms.

    The arms run interleaved on the same batches (A, B, C, A, B, C, ...) so load from other jobs on a
    shared machine hits every arm alike; the ratio is what the enhancer / weighter cost.
    """
    from unigrec.model.batch import collate_sequences
    from unigrec.train.fit import loss_spec, ranking_enhancer, task_weighter, transformer_dims
    from unigrec.train.lightning_module import GenerativeRecModule

    arms = {
        "plain": {"enhancer": {"enabled": False}, "weighter": {"mode": "fixed", "log_grad_norms": False}},
        "enhancer_every_step": {"enhancer": {"enabled": True, "every_n_steps": 1},
                                "weighter": {"mode": "fixed", "log_grad_norms": False}},
        "gradnorm": {"enhancer": {"enabled": False}, "weighter": {"mode": "gradnorm"}},
    }
    cfg = build_section(TrainConfig, raw_train, "train")
    dims = transformer_dims(cfg.model, data.vocab, data.serialiser.max_length, data.query_table.shape[1])
    modules, optimisers = {}, {}
    for name, override in arms.items():
        arm_cfg = build_section(TrainConfig, merged(raw_train, override), "train")
        torch.manual_seed(cfg.seed)
        module = GenerativeRecModule(GenerativeTransformer(dims), loss_spec(arm_cfg.model, data.vocab),
                                     task_weighter(arm_cfg), arm_cfg.optim, id_spaces(data.vocab, data.items),
                                     cfg.eval.beam_size, cfg.eval.k, ranking_enhancer(arm_cfg, data.vocab))
        modules[name] = module.train()
        optimisers[name] = torch.optim.AdamW(module.net.parameters(), lr=cfg.optim.lr)
    rng = np.random.default_rng(cfg.seed)
    pad = data.vocab.token(PAD)
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in progress(range(steps + 1), desc="step costs", leave=False):
        rows = rng.choice(len(data.train_sequences), cfg.batch_size, replace=False)
        batch = collate_sequences([data.train_sequences[i] for i in rows], data.query_table,
                                  cfg.model.n_query_tokens, pad)
        for name, module in modules.items():
            started = time.perf_counter()
            total, losses, tasks, _ = module.training_objective(batch)
            if module.weighter.needs_grad_norms:
                module.weighter.update(torch.stack([losses[n].detach() for n in losses]),
                                       module._task_grad_norms(tasks))
            optimisers[name].zero_grad()
            total.backward()
            optimisers[name].step()
            times[name].append(time.perf_counter() - started)
    median = {name: float(np.median(t[1:])) for name, t in times.items()}  # the first step warms up
    every = raw_train["enhancer"]["every_n_steps"]
    per_step = median["enhancer_every_step"] / median["plain"] - 1.0
    return {
        "steps": steps,
        "batch_size": cfg.batch_size,
        "median_step_seconds": median,
        "enhancer_overhead_per_enhancer_step": per_step,
        "enhancer_every_n_steps": every,
        "enhancer_overhead_amortised": per_step / every,
        "gradnorm_overhead": median["gradnorm"] / median["plain"] - 1.0,
    }


# ------------------------------------------------------------------------------------------ report
def render(result: dict[str, Any]) -> str:
    s = result["summary"]
    header = ("| variant | rec NDCG@10 | search NDCG@10 | ranking AUC | GAUC (1+99) | e2e rec NDCG@10 | "
              "e2e search NDCG@10 | train s (seq/s) |")
    lines = ["## UniGRF joint optimisation: ablation (`benchmarks/ablation.py`)", "",
             f"Command: `{result['command']}`  ", f"Setup: {result['setup']}  ",
             f"Machine: {result['machine']}", "", header, "|---|---|---|---|---|---|---|---|"]
    for name, m in s.items():
        cells = [f"{m[k][0]:.4f} ± {m[k][1]:.4f}" for k in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {m['train_seconds'][0]:.0f} ({m['train_sequences_per_s'][0]:.1f}) |")
    lines += ["", "Mean ± std over seeds " + ", ".join(map(str, result["seeds"])) + ". " + result["notes"]]
    c = result.get("costs")
    if c:
        med = c["median_step_seconds"]
        lines += ["", (f"Training-step cost (median of {c['steps']} interleaved steps, batch {c['batch_size']}, "
                       f"same batches for every arm): plain {med['plain']:.3f} s; with the enhancer on that step "
                       f"{med['enhancer_every_step']:.3f} s (+{100 * c['enhancer_overhead_per_enhancer_step']:.0f}%), "
                       f"i.e. +{100 * c['enhancer_overhead_amortised']:.0f}% at every_n_steps="
                       f"{c['enhancer_every_n_steps']}; GradNorm's per-task gradient norms {med['gradnorm']:.3f} s "
                       f"(+{100 * c['gradnorm_overhead']:.0f}%).")]
    lines += result.get("findings", [])
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=".", help="project root holding data/split and data/ids")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--epochs", type=int, default=None, help="max epochs (default: params)")
    parser.add_argument("--users", type=int, default=None, help="train and validate on the first N users only")
    parser.add_argument("--eval-users", type=int, default=None, help="validation users per stream in the table")
    parser.add_argument("--epoch-users", type=int, default=None, help="validation users per stream each epoch")
    parser.add_argument("--variants", nargs="+", default=list(BASE_VARIANTS))
    parser.add_argument("--log-every", type=int, default=2, help="training steps between logged rows")
    parser.add_argument("--work-dir", default=".cache/unigrec/ablation")
    parser.add_argument("--plots", default="plots/ablation")
    parser.add_argument("--results", default="benchmarks/results/ablation.json")
    parser.add_argument("--markdown", default="BENCHMARKS.md")
    parser.add_argument("--no-markdown", action="store_true")
    parser.add_argument("--cost-steps", type=int, default=20, help="interleaved steps timing the enhancer/gradnorm")
    parser.add_argument("--costs-only", action="store_true",
                        help="only time the training steps and merge them into an existing results file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    root = Path(args.root)
    raw = yaml.safe_load((Path(args.params) if Path(args.params).is_absolute() else root / args.params).read_text())
    raw_train = raw["train"]
    raw_train["trainer"].update(progress_bar=False, log_every_n_steps=args.log_every, logger="csv")
    if args.epochs is not None:
        raw_train["trainer"]["max_epochs"] = args.epochs
    raw_train["eval"]["final_users"] = args.eval_users
    if args.epoch_users is not None:
        raw_train["eval"]["epoch_users"] = args.epoch_users
    data, layout = load_data(root, raw_train, args.users)
    out = Path(args.results)
    if args.costs_only:
        result = json.loads(out.read_text())
        result["costs"] = training_step_costs(raw_train, data, args.cost_steps)
        out.write_text(json.dumps(result, indent=2) + "\n")
        if not args.no_markdown:
            write_block(Path(args.markdown), BLOCK, render(result))
        print(json.dumps(result["costs"], indent=2))
        return 0
    negatives = rec_candidate_lists(layout, data)
    runs: dict[str, list[dict[str, Any]]] = {}
    started = time.time()
    for seed in args.seeds:
        for name in args.variants:
            runs.setdefault(name, []).append(run_variant(name, seed, raw_train, data, layout, negatives, args))
            # a long run keeps what it has measured even if it is stopped early
            partial = Path(args.results).with_suffix(".partial.json")
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(runs, indent=2) + "\n")
    summary = summarise(runs)
    t = raw_train["trainer"]
    result = {
        "command": command_line("benchmarks/ablation.py", sys.argv[1:]),
        "setup": (f"ml-100k, {len(data.users)} users ({len(data.train_sequences)} training sequences), "
                  f"max_epochs {t['max_epochs']} (patience {t['patience']}, best validation checkpoint), "
                  f"weighter mode of `full`/`no_enhancer`: {raw_train['weighter']['mode']}, "
                  f"d_model {raw_train['model']['d_model']}, beam/K {raw_train['eval']['beam_size']}; "
                  f"{sum(r['rec_n'] for r in runs[args.variants[0]][:1]):.0f} rec / "
                  f"{sum(r['search_n'] for r in runs[args.variants[0]][:1]):.0f} search validation events"),
        # the load says whether other jobs shared the cores (this script's timings assume they may have)
        "machine": (f"{machine_line(machine())}; 1-minute load average at the end {os.getloadavg()[0]:.1f}; "
                    f"wall {time.time() - started:.0f} s"),
        "seeds": args.seeds,
        "notes": ("Validation split only; checkpoints are selected on the per-epoch validation sample, so "
                  "all variants share the same (small) optimism. two_stage's ranking-only model is selected on "
                  "validation AUC, every other model on validation NDCG@10. `train s` is the summed fit time "
                  "of the variant's model(s), seq/s the training-batch throughput (validation excluded)."),
        "summary": summary,
        "runs": runs,
    }
    result["costs"] = training_step_costs(raw_train, data, args.cost_steps)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():  # keep hand-written findings across re-runs
        result["findings"] = json.loads(out.read_text()).get("findings", [])
    out.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_markdown:
        write_block(Path(args.markdown), BLOCK, render(result))
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
