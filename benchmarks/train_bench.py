"""Benchmark the generative model: training throughput and constrained beam-search latency.

Measures, on the project's real split + ids (or whatever ``--root`` holds):
  * training throughput (sequences/s) of plain forward+backward+AdamW steps at the configured batch size;
  * beam-search latency per request (p50/p95) at batch 1 and batch 64, with the KV-cached decoder that
    ships, beside a decoder that re-encodes the whole prompt at every level (what the cache saves), and
    beside the lower bound: one forward pass over the prompt + a top-k over the first level's logits;
  * the validation figures of the last ``train`` stage run (metrics/train.json), model vs popularity.
Writes benchmarks/results/train_bench.json and the ``train`` block of BENCHMARKS.md.

    python benchmarks/train_bench.py --root . [--steps 30] [--requests 256]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package, when run as a script

from benchmarks.host import command_line, machine, machine_line
from benchmarks.markdown_block import write_block
from unigrec.config import load_section
from unigrec.ids.embeddings import embed_texts
from unigrec.model.batch import SequenceBatch, collate_sequences
from unigrec.model.card import load_model
from unigrec.model.decoding import IdSpace, beam_search, level_log_probs
from unigrec.model.item_codes import atomic_item_codes, load_item_codes
from unigrec.model.transformer import GenerativeTransformer, TransformerDims
from unigrec.model.vocabulary import PAD
from unigrec.paths import Layout
from unigrec.train.examples import query_table_texts
from unigrec.train.fit import TrainingData, id_spaces, loss_spec, prepare_training_data, transformer_dims
from unigrec.train.losses import LossSpec, sequence_losses

BLOCK = "train"  # its block in BENCHMARKS.md
TRAIN_WARMUP_STEPS = 2  # untimed steps before the timed ones


def percentiles(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples) * 1000.0
    return {"p50_ms": round(float(np.percentile(arr, 50)), 2), "p95_ms": round(float(np.percentile(arr, 95)), 2)}


def sample_training_batches(sequences, collate, batch_size: int, steps: int) -> list[SequenceBatch]:
    """The seeded random batches :func:`training_throughput` runs (warm-up first), so another benchmark
    can count the FLOPs of exactly the batches that were timed."""
    rng = np.random.default_rng(0)
    return [collate([sequences[i] for i in rng.choice(len(sequences), batch_size, replace=len(sequences) < batch_size)])
            for _ in range(steps + TRAIN_WARMUP_STEPS)]


def training_throughput(net: GenerativeTransformer, sequences, collate, spec, batch_size: int, steps: int,
                        autocast_dtype: torch.dtype | None = None) -> float:
    """Sequences/s of forward+backward+AdamW; ``autocast_dtype`` runs the forward pass under CPU autocast
    (what Lightning's ``bf16-mixed`` does: fp32 weights and optimiser, bf16 matmuls)."""
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    batches = sample_training_batches(sequences, collate, batch_size, steps)
    step = functools.partial(_train_step, autocast_dtype=autocast_dtype)
    for batch in batches[:TRAIN_WARMUP_STEPS]:  # warm-up (allocator, first-call overheads)
        step(net, batch, spec, opt)
    started = time.perf_counter()
    for batch in batches[TRAIN_WARMUP_STEPS:]:
        step(net, batch, spec, opt)
    return steps * batch_size / (time.perf_counter() - started)


def _train_step(net, batch, spec, opt, autocast_dtype: torch.dtype | None = None) -> None:
    with torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast_dtype is not None):
        loss = sum(sequence_losses(net, batch, spec).values())
    opt.zero_grad()
    loss.backward()
    opt.step()


@torch.no_grad()
def beam_search_recompute(net: GenerativeTransformer, prompts: SequenceBatch, space: IdSpace, beam_size: int):
    """Reference decoder WITHOUT the cache: every level re-encodes prompt + generated codes for every beam."""
    trie = space.trie
    b = prompts.tokens.shape[0]
    hidden, _ = net.encode(prompts.tokens, prompts.valid, prompts.query_refs, prompts.query_vectors)
    logp = level_log_probs(net, hidden[:, -1], space, 0).masked_fill(
        ~trie.allowed(torch.zeros(b, dtype=torch.long)), float("-inf"))
    scores, codes = logp.topk(min(beam_size, trie.width), dim=-1)
    nodes = trie.step(torch.zeros_like(codes), codes)
    generated = (codes + space.offsets[0])[..., None]  # (B, k, t)
    for level in range(1, space.depth):
        k = codes.shape[1]
        tokens = torch.cat([prompts.tokens.repeat_interleave(k, 0), generated.reshape(b * k, -1)], 1)
        valid = torch.cat([prompts.valid.repeat_interleave(k, 0),
                           torch.ones(b * k, generated.shape[-1], dtype=torch.bool)], 1)
        refs = torch.cat([prompts.query_refs.repeat_interleave(k, 0), torch.full((b * k, generated.shape[-1]), -1)], 1)
        out, _ = net.encode(tokens, valid, refs, prompts.query_vectors)
        logp = level_log_probs(net, out[:, -1], space, level).view(b, k, -1)
        logp = logp.masked_fill(~trie.allowed(nodes), float("-inf"))
        flat = (scores[..., None] + logp).view(b, -1)
        scores, index = flat.topk(min(beam_size, flat.shape[1]), dim=-1)
        parent, codes = index // trie.width, index % trie.width
        nodes = trie.step(nodes.gather(1, parent), codes)
        generated = torch.cat([generated.gather(1, parent[..., None].expand(-1, -1, generated.shape[-1])),
                               (codes + space.offsets[level])[..., None]], -1)
    return nodes


@torch.no_grad()
def one_pass_topk(net: GenerativeTransformer, prompts: SequenceBatch, k: int, width: int):
    """Lower bound: a single forward pass over the prompt and a top-k over one slice of logits."""
    hidden, _ = net.encode(prompts.tokens, prompts.valid, prompts.query_refs, prompts.query_vectors)
    logits = hidden[:, -1] @ net.token_embedding.weight[:width].T
    return logits.topk(min(k, width), dim=-1)


def latency(fn, prompts: list, collate, batch_size: int, repeats: int) -> dict[str, float]:
    """Per-request latency of ``fn`` over consecutive batches: a batch's wall time counts for each request."""
    samples: list[float] = []
    starts = list(range(0, max(len(prompts) - batch_size, 0) + 1, batch_size))[:repeats]
    fn(collate(prompts[:batch_size]))  # warm-up
    for start in starts:
        batch = collate(prompts[start : start + batch_size])
        t0 = time.perf_counter()
        fn(batch)
        samples.append(time.perf_counter() - t0)
    out = percentiles(samples)
    out["batches"] = len(samples)
    out["requests_per_s"] = round(batch_size / float(np.median(samples)), 1)
    return out


@dataclasses.dataclass(frozen=True)
class TrainingSetup:
    """What a training measurement needs from a project: its train config, data, network dims and loss."""

    cfg: Any
    data: TrainingData
    dims: TransformerDims
    spec: LossSpec
    collate_train: Callable[[list], SequenceBatch]


def load_training_setup(root: Path, params: str) -> TrainingSetup:
    """Training data and dims exactly as the train stage builds them (query vectors from its cache)."""
    layout = Layout(root)
    cfg = load_section("train", root / params)
    events = pd.read_parquet(layout.events)
    if cfg.model.item_representation == "atomic":
        items, codebooks = atomic_item_codes(pd.read_parquet(layout.items)["item_id"].astype(str).tolist())
    else:
        items, codebooks = load_item_codes(layout.ids_table, layout.codebooks)
    texts = query_table_texts(events)
    table = embed_texts(list(texts), cfg.query_batch_size, root / cfg.query_cache_dir, show_progress=False)
    data = prepare_training_data(cfg, events, items, codebooks, texts, table)
    pad = data.vocab.token(PAD)
    collate_train = lambda rows: collate_sequences(rows, data.query_table, cfg.model.n_query_tokens, pad)
    dims = transformer_dims(cfg.model, data.vocab, data.serialiser.max_length, data.query_table.shape[1])
    return TrainingSetup(cfg, data, dims, loss_spec(cfg.model, data.vocab), collate_train)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=".")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--requests", type=int, default=256, help="validation prompts used for latency")
    parser.add_argument("--batch1-repeats", type=int, default=100)
    parser.add_argument("--results", default="benchmarks/results/train_bench.json")
    parser.add_argument("--markdown", default="BENCHMARKS.md")
    args = parser.parse_args()

    root = Path(args.root)
    layout = Layout(root)
    setup = load_training_setup(root, args.params)
    cfg, data, dims, collate_train = setup.cfg, setup.data, setup.dims, setup.collate_train
    pad = data.vocab.token(PAD)
    collate_prompt = lambda rows: collate_sequences([r.prompt for r in rows], data.query_table,
                                                    cfg.model.n_query_tokens, pad)
    trained = layout.model_dir.exists()
    net = load_model(layout.model_dir).net if trained else GenerativeTransformer(dims)
    spec = setup.spec

    throughput = training_throughput(GenerativeTransformer(dims), data.train_sequences, collate_train, spec,
                                     cfg.batch_size, args.steps)
    net.eval()
    spaces = id_spaces(data.vocab, data.items)
    rec_prompts = [e for e in data.final_examples if not e.is_search][: args.requests]
    space = spaces[False]
    beam = cfg.eval.beam_size
    decoding = {}
    for batch_size, repeats in ((1, args.batch1_repeats), (64, max(len(rec_prompts) // 64, 1))):
        decoding[f"batch_{batch_size}"] = {
            "beam_search_kv_cache": latency(lambda b: beam_search(net, b, space, beam), rec_prompts,
                                            collate_prompt, batch_size, repeats),
            "beam_search_recompute": latency(lambda b: beam_search_recompute(net, b, space, beam), rec_prompts,
                                             collate_prompt, batch_size, repeats),
            "lower_bound_one_pass_topk": latency(lambda b: one_pass_topk(net, b, beam, space.sizes[0]),
                                                 rec_prompts, collate_prompt, batch_size, repeats),
        }
    mean_prompt = float(np.mean([len(e.prompt) for e in rec_prompts]))
    validation = json.loads(layout.train_metrics.read_text()) if layout.train_metrics.exists() else None
    result = {
        "machine": machine(),
        "model": {"item_representation": cfg.model.item_representation, "d_model": cfg.model.d_model,
                  "n_layers": cfg.model.n_layers, "n_heads": cfg.model.n_heads,
                  "parameters": sum(p.numel() for p in net.parameters()), "weights": "trained" if trained else "random",
                  "levels": {"rec": len(space.sizes), "search": len(spaces[True].sizes)}, "beam_size": beam},
        "data": {"train_sequences": len(data.train_sequences), "mean_rec_prompt_tokens": round(mean_prompt, 1),
                 "max_events": cfg.max_events, "train_windows": cfg.train_windows},
        "training_sequences_per_s": round(throughput, 1),
        "training_batch_size": cfg.batch_size,
        "decoding": decoding,
        "validation": validation,
    }
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    write_block(Path(args.markdown), BLOCK, render(result, command_line("benchmarks/train_bench.py", sys.argv[1:])))
    print(json.dumps(result, indent=2))
    return 0


def render(r: dict, command: str) -> str:
    m = r["model"]
    lines = [
        "## Generative model: training and decoding (`benchmarks/train_bench.py`)",
        "",
        (f"Command: `{command}`. Machine: {machine_line(r['machine'])}, CPU only. "
        f"Model: {m['item_representation']}, d_model {m['d_model']}, {m['n_layers']} layers, {m['n_heads']} heads, "
        f"{m['parameters']:,} parameters ({m['weights']} weights); rec IDs have {m['levels']['rec']} levels; "
        f"beam {m['beam_size']}; mean rec prompt {r['data']['mean_rec_prompt_tokens']} tokens "
        f"(max_events {r['data']['max_events']})."),
        "",
        (f"Training throughput: **{r['training_sequences_per_s']} sequences/s** (forward + backward + AdamW, "
        f"batch {r['training_batch_size']}, {r['data']['train_sequences']} sequences per epoch, "
        f"train_windows={r['data']['train_windows']})."),
        "",
        "| decoder (rec, full catalogue) | batch 1 p50 / p95 ms per request | batch 64 p50 / p95 ms per batch | batch 64 requests/s |",
        "|---|---|---|---|",
    ]
    names = {"beam_search_kv_cache": "trie-constrained beam search, KV cache (shipped)",
             "beam_search_recompute": "same, re-encoding the prompt every level (no cache)",
             "lower_bound_one_pass_topk": "lower bound: one forward pass + top-k"}
    for key, label in names.items():
        b1, b64 = r["decoding"]["batch_1"][key], r["decoding"]["batch_64"][key]
        lines.append(f"| {label} | {b1['p50_ms']} / {b1['p95_ms']} | {b64['p50_ms']} / {b64['p95_ms']} | "
                     f"{b64['requests_per_s']} |")
    lines.append("")
    lines.append("At batch 1 a batch is one request; at batch 64 the batch's wall time is what every request "
                 "in it waits.")
    v = r.get("validation")
    if v:
        val = v["validation"]
        k = next(key.split("@")[1] for key in val["rec"] if key.startswith("hr@"))
        lines += [
            "",
            (f"Validation of the last `train` run (`metrics/train.json`; {v['training']['epochs']} epochs, "
            f"{v['training']['seconds']} s, leave-one-out, full catalogue, beam search):"),
            "",
            f"| stream | users | HR@{k} | NDCG@{k} | popularity HR@{k} | popularity NDCG@{k} |",
            "|---|---|---|---|---|---|",
        ]
        for stream in ("rec", "search"):
            s = val[stream]
            lines.append(f"| {stream} | {s['n']} | {s[f'hr@{k}']:.4f} | {s[f'ndcg@{k}']:.4f} | "
                         f"{s[f'popularity_hr@{k}']:.4f} | {s[f'popularity_ndcg@{k}']:.4f} |")
        rk = val["ranking"]
        lines += ["", (f"Ranking (rec validation events, P(`<pos>`) of the target): AUC {rk['auc']:.4f}, "
                      f"LogLoss {rk['logloss']:.4f}, positive rate {rk['positive_rate']:.3f}, n={rk['n']}.")]
    variants = Path(__file__).resolve().parent / "results" / "train_variants.json"
    if variants.exists():
        lines += _variant_lines(json.loads(variants.read_text()))
    return "\n".join(lines)


def _variant_lines(v: dict) -> list[str]:
    """The design comparisons recorded in results/train_variants.json (runs of the train stage)."""
    pop = v["popularity"]
    lines = ["", f"Design comparisons (`benchmarks/results/train_variants.json`: {v['how']}):", "",
             "| run | rec HR@10 | rec NDCG@10 | search HR@10 | search NDCG@10 | AUC | train seq/s |",
             "|---|---|---|---|---|---|---|"]
    for run in v["runs"]:
        speed = run["train_seq_per_s"] if run["train_seq_per_s"] is not None else "-"
        lines.append(f"| {run['name']} | {run['rec_hr10']:.4f} | {run['rec_ndcg10']:.4f} | {run['search_hr10']:.4f} | "
                     f"{run['search_ndcg10']:.4f} | {run['auc']:.4f} | {speed} |")
    lines.append(f"| popularity | {pop['rec_hr10']:.4f} | {pop['rec_ndcg10']:.4f} | {pop['search_hr10']:.4f} | "
                 f"{pop['search_ndcg10']:.4f} | - | - |")
    lines += ["", f"Not compared: {v['not_finished']}."]
    return lines


if __name__ == "__main__":
    sys.exit(main())
