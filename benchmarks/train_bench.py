"""The generative model's training throughput and constrained beam-search latency on ``--root``'s data:
training sequences/s (forward + backward + AdamW at the configured batch), and rec decoding latency p50/p95
at batch 1 and 64 for the shipped KV-cached beam search, a decoder that re-encodes the prompt every level,
and the bound of one forward pass + top-k; beside them the last train stage's validation figures.
Writes benchmarks/results/train_bench.json and the ``train`` block of BENCHMARKS.md.

    python benchmarks/train_bench.py --root ROOT [--steps 20] [--requests 256]
    python benchmarks/train_bench.py --render    # only re-write the block from the results file
"""

from __future__ import annotations

import argparse
import dataclasses
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

from benchmarks.block_text import machine_id, portable
from benchmarks.host import command_line, machine
from benchmarks.markdown_block import write_block
from unigrec.config import load_section
from unigrec.inference.prompts import query_table_texts
from unigrec.inference.retrieval import id_spaces
from unigrec.model.batch import SequenceBatch, collate_sequences
from unigrec.model.card import load_model
from unigrec.model.decoding import IdSpace, beam_search, level_log_probs
from unigrec.model.item_codes import atomic_item_codes, load_item_codes
from unigrec.model.transformer import GenerativeTransformer, TransformerDims
from unigrec.model.vocabulary import PAD
from unigrec.paths import Layout
from unigrec.text_encoder import embed_texts
from unigrec.train.fit import TrainingData, loss_spec, prepare_training_data, transformer_dims
from unigrec.train.losses import LossSpec, sequence_losses

BLOCK = "train"  # its block in BENCHMARKS.md
NOTES = "docs/experiments/2026-11-25-ml100k-train-bench.md"
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
    for i, batch in enumerate(sample_training_batches(sequences, collate, batch_size, steps)):
        if i == TRAIN_WARMUP_STEPS:  # the untimed steps warm the allocator and first-call paths
            started = time.perf_counter()
        _train_step(net, batch, spec, opt, autocast_dtype)
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
    cfg, runtime = load_section("train", root / params), load_section("runtime", root / params)
    events = pd.read_parquet(layout.events)
    if cfg.model.item_representation == "atomic":
        items, codebooks = atomic_item_codes(pd.read_parquet(layout.items)["item_id"].astype(str).tolist())
    else:
        items, codebooks = load_item_codes(layout.ids_table, layout.codebooks)
    texts = query_table_texts(events)
    table = embed_texts(list(texts), runtime.batch_sizes.text_encoding, layout.resolve(runtime.cache_dir),
                        show_progress=False)
    data = prepare_training_data(cfg, events, items, codebooks, texts, table)
    pad = data.vocab.token(PAD)
    collate_train = lambda rows: collate_sequences(rows, data.query_table, cfg.model.n_query_tokens, pad)
    dims = transformer_dims(cfg.model, data.vocab, data.serialiser.max_length, data.query_table.shape[1])
    return TrainingSetup(cfg, data, dims, loss_spec(cfg.model, data.vocab), collate_train)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.root)
    layout = Layout(root)
    setup = load_training_setup(root, args.params)
    cfg, data, dims = setup.cfg, setup.data, setup.dims
    pad = data.vocab.token(PAD)
    collate_prompt = lambda rows: collate_sequences([r.prompt for r in rows], data.query_table,
                                                    cfg.model.n_query_tokens, pad)
    trained = layout.model_dir.exists()
    net = load_model(layout.model_dir).net if trained else GenerativeTransformer(dims)
    throughput = training_throughput(GenerativeTransformer(dims), data.train_sequences, setup.collate_train,
                                     setup.spec, cfg.batch_size, args.steps)
    net.eval()
    spaces = id_spaces(data.vocab, data.items)
    space, beam = spaces[False], cfg.eval.beam_size
    rec_prompts = [e for e in data.final_examples if not e.is_search][: args.requests]
    decoders = {"beam_search_kv_cache": lambda b: beam_search(net, b, space, beam),
                "beam_search_recompute": lambda b: beam_search_recompute(net, b, space, beam),
                "lower_bound_one_pass_topk": lambda b: one_pass_topk(net, b, beam, space.sizes[0])}
    decoding = {f"batch_{size}": {name: latency(fn, rec_prompts, collate_prompt, size, repeats)
                                  for name, fn in decoders.items()}
                for size, repeats in ((1, args.batch1_repeats), (64, max(len(rec_prompts) // 64, 1)))}
    return {
        "command": command_line("benchmarks/train_bench.py", args.argv),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "model": {"item_representation": cfg.model.item_representation, "d_model": cfg.model.d_model,
                  "n_layers": cfg.model.n_layers, "n_heads": cfg.model.n_heads,
                  "parameters": sum(p.numel() for p in net.parameters()), "weights": "trained" if trained else "random",
                  "levels": {"rec": len(space.sizes), "search": len(spaces[True].sizes)}, "beam_size": beam},
        "data": {"train_sequences": len(data.train_sequences), "max_events": cfg.max_events,
                 "mean_rec_prompt_tokens": round(float(np.mean([len(e.prompt) for e in rec_prompts])), 1),
                 "train_windows": cfg.train_windows},
        "training_sequences_per_s": round(throughput, 1),
        "training_batch_size": cfg.batch_size,
        "decoding": decoding,
        "validation": json.loads(layout.train_metrics.read_text()) if layout.train_metrics.exists() else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=".")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--requests", type=int, default=256, help="validation prompts used for latency")
    parser.add_argument("--batch1-repeats", type=int, default=100)
    parser.add_argument("--results", default="benchmarks/results/train_bench.json")
    parser.add_argument("--markdown", default="BENCHMARKS.md")
    parser.add_argument("--render", action="store_true", help="only re-write the block from the results file")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    out = Path(args.results)
    if args.render:
        result = json.loads(out.read_text())
    else:
        result = measure(args)
        out.write_text(json.dumps(result, indent=2) + "\n")
    write_block(Path(args.markdown), BLOCK, render(result))
    return 0


DECODERS = {"beam_search_kv_cache": "trie-constrained beam search, KV cache (shipped)",
            "beam_search_recompute": "same, re-encoding the prompt every level (no cache)",
            "lower_bound_one_pass_topk": "lower bound: one forward pass + top-k"}


def render(r: dict) -> str:
    m, d = r["model"], r["data"]
    lines = [
        "## Generative model: training and decoding (`benchmarks/train_bench.py`)",
        "",
        f"Command: `{portable(r['command'])}`  ",
        (f"Machine {machine_id(r['machine'])} (CPU only), {r['date']}; ROOT: a project after the train stage  "),
        (f"Model: {m['item_representation']}, d_model {m['d_model']}, {m['n_layers']} layers, {m['n_heads']} heads, "
        f"{m['parameters']:,} parameters ({m['weights']} weights), {m['levels']['rec']}-level rec IDs, "
        f"beam {m['beam_size']}  "),
        (f"Training: **{r['training_sequences_per_s']} sequences/s** (batch {r['training_batch_size']}, "
        f"{d['train_sequences']} sequences per epoch, train_windows {d['train_windows']})  "),
        f"Mean rec prompt {d['mean_rec_prompt_tokens']} tokens (max_events {d['max_events']}); [notes]({NOTES})",
        "",
        ("| decoder (rec, full catalogue) | batch 1 p50 / p95 ms | batch 64 p50 / p95 ms per batch "
        "| batch 64 requests/s |"),
        "|---|---|---|---:|",
    ]
    for key, label in DECODERS.items():
        b1, b64 = r["decoding"]["batch_1"][key], r["decoding"]["batch_64"][key]
        lines.append(f"| {label} | {b1['p50_ms']} / {b1['p95_ms']} | {b64['p50_ms']} / {b64['p95_ms']} "
                     f"| {b64['requests_per_s']} |")
    v = r.get("validation")
    if v:
        val, t = v["validation"], v["training"]
        k = next(key.split("@")[1] for key in val["rec"] if key.startswith("hr@"))
        lines += ["", (f"| validation (`metrics/train.json`: {t['epochs']} epochs, {t['seconds']} s) | users "
                  f"| HR@{k} | NDCG@{k} | popularity HR@{k} | popularity NDCG@{k} |"), "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {s} | {val[s]['n']} | {val[s][f'hr@{k}']:.4f} | {val[s][f'ndcg@{k}']:.4f} "
                  f"| {val[s][f'popularity_hr@{k}']:.4f} | {val[s][f'popularity_ndcg@{k}']:.4f} |"
                  for s in ("rec", "search")]
        rk = val["ranking"]
        lines += ["", (f"Ranking, P(`<pos>`) of the rec validation targets: AUC {rk['auc']:.4f}, LogLoss "
                  f"{rk['logloss']:.4f}, positive rate {rk['positive_rate']:.3f}, n={rk['n']}")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
