"""What the speed benchmarks time with: the train stage's own batches and a timed training loop (used by
``precision_bench.py`` and ``serving_bench.py``), per-request latency over consecutive batches, and the
one-forward-pass bound a decoder is compared with.

The former ``train_bench.py`` (KV-cached beam search against re-encoding the prompt every level) measured
its table once: docs/experiments/2026-11-25-ml100k-train-bench.md keeps it with the script's last version.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from unigrec.config import load_section
from unigrec.inference.prompts import query_table_texts
from unigrec.model.batch import SequenceBatch, collate_sequences
from unigrec.model.transformer import GenerativeTransformer, TransformerDims
from unigrec.model.vocabulary import PAD
from unigrec.paths import Layout
from unigrec.stages.train import training_items
from unigrec.text_encoder import embed_texts
from unigrec.train.fit import TrainingData, loss_spec, prepare_training_data, transformer_dims
from unigrec.train.losses import LossSpec, sequence_losses
from unigrec.train.sizing import sized_for

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
def one_pass_topk(net: GenerativeTransformer, prompts: SequenceBatch, k: int, width: int):
    """Lower bound: a single forward pass over the prompt and a top-k over one slice of logits."""
    hidden, _ = net.encode(prompts.tokens, prompts.valid, prompts.query_refs, prompts.query_vectors)
    logits = hidden[:, -1] @ net.token_embedding.weight[:width].T
    return logits.topk(min(k, width), dim=-1)


def latency(fn, prompts: list, collate, batch_size: int, repeats: int) -> dict[str, float]:
    """Per-request latency of ``fn`` over consecutive batches: a batch's wall time counts for each request.

    ``cpu_p50_ms``: the median CPU time of the process per call, beside the wall time: on a shared,
    loaded machine a call waits for a core, which wall time counts and CPU time does not.
    """
    samples: list[float] = []
    cpu: list[float] = []
    starts = list(range(0, max(len(prompts) - batch_size, 0) + 1, batch_size))[:repeats]
    fn(collate(prompts[:batch_size]))  # warm-up
    for start in starts:
        _timed_call(fn, collate(prompts[start : start + batch_size]), samples, cpu)
    return _call_figures(samples, cpu, batch_size)


def _timed_call(fn: Callable[[Any], Any], argument: Any, walls: list[float], cpus: list[float]) -> None:
    """Call ``fn(argument)`` once, appending its wall and process CPU seconds."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn(argument)
    walls.append(time.perf_counter() - t0)
    cpus.append(time.process_time() - c0)


def _call_figures(walls: list[float], cpus: list[float], requests_per_call: int) -> dict[str, float]:
    """p50/p95 wall ms, median CPU ms, call count and requests/s (at the median call) of timed calls."""
    out = percentiles(walls)
    out["cpu_p50_ms"] = round(float(np.median(cpus)) * 1000.0, 2)
    out["batches"] = len(walls)
    out["requests_per_s"] = round(requests_per_call / float(np.median(walls)), 1)
    return out


@dataclasses.dataclass(frozen=True)
class Arm:
    """One thing :func:`interleaved_latency` times: ``fn`` called once per prepared input of ``inputs``
    (the first is also the untimed warm-up), each call serving ``size`` requests, ``block`` calls in a row."""

    fn: Callable[[Any], Any]
    inputs: list[Any]
    size: int
    block: int = 1


def interleaved_latency(arms: dict[Any, Arm]) -> dict[Any, dict[str, float]]:
    """:func:`latency`'s figures for several arms whose calls are interleaved: each arm's calls, in blocks
    of ``Arm.block`` in a row, are spread evenly over the same rounds, so every arm sees the same stretch
    of machine time.

    Why: on a shared virtual machine the speed of a core drifts over seconds (the same call's CPU time
    moved by 2x between runs minutes apart), and a ratio of two figures timed one after the other (a
    call against its bound, batch 64 against batch 1) then measures the drift as much as the code. Blocks:
    a small call right after a large one finds its caches cold, which single calls would make every
    small call pay.
    """
    for arm in arms.values():
        arm.fn(arm.inputs[0])  # warm-up
    blocks = {name: -(-len(arm.inputs) // arm.block) for name, arm in arms.items()}
    rounds = max(blocks.values())
    walls: dict[Any, list[float]] = {name: [] for name in arms}
    cpus: dict[Any, list[float]] = {name: [] for name in arms}
    for r in range(rounds):
        for name, arm in arms.items():
            for j in (j for j in range(blocks[name]) if j * rounds // blocks[name] == r):  # this round's blocks
                for i in range(j * arm.block, min((j + 1) * arm.block, len(arm.inputs))):
                    _timed_call(arm.fn, arm.inputs[i], walls[name], cpus[name])
    return {name: _call_figures(walls[name], cpus[name], arm.size) for name, arm in arms.items()}


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
    cfg, _ = sized_for(cfg, events)  # the sizes the train stage would give this data
    items, codebooks, composition = training_items(cfg, layout)
    texts = query_table_texts(events)
    table = embed_texts(list(texts), runtime.batch_sizes.text_encoding, layout.resolve(runtime.cache_dir),
                        show_progress=False)
    data = prepare_training_data(cfg, events, items, codebooks, texts, table, composition=composition)
    pad = data.vocab.token(PAD)
    collate_train = lambda rows: collate_sequences(rows, data.query_table, cfg.model.n_query_tokens, pad)
    dims = transformer_dims(cfg.model, cfg.retrieval_loss, data.vocab, data.serialiser.max_length,
                            data.query_table.shape[1], data.items.n_items, data.composition)
    return TrainingSetup(cfg, data, dims, loss_spec(cfg.retrieval_loss, data.vocab), collate_train)
