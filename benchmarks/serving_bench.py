"""Benchmark the served path (``Recommender.predict``) against its one-pass bound, and training efficiency.

Measures, on a project root after the evaluate stage (``models/generative`` beside ``models/serving``):
  * latency p50/p95 of ``Recommender.predict(requests, k)`` for ``rec`` and ``search`` requests at batch 1
    (one request per call) and batch 64 (64 requests per call), on the users and search queries of the
    held-out (validation + test) events of ``data/split/events.parquet``; search at batch 1 also with
    query texts the bundle does not hold, which the served path encodes with MiniLM;
  * beside each, the bound: one forward pass of the network over the same prompts + a top-k
    (``train_bench.one_pass_topk``), at the same batch size;
  * training efficiency: this CPU's float32 matmul peak (GFLOP/s), the analytic training FLOPs per
    sequence of the model card's transformer and the measured training throughput -> achieved GFLOP/s.
Writes benchmarks/results/serving_bench.json and the ``serving`` block of BENCHMARKS.md.

    python benchmarks/serving_bench.py --root . [--batch1-repeats 40] [--batch64-repeats 8] [--train-steps 10]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BLOCK = "serving"  # its block in BENCHMARKS.md
HELD_OUT_SPLITS = ("valid", "test")  # events whose users and queries make the benchmark's requests
KINDS = ("rec", "search")
DEFAULT_K = 10
SINGLE, DEFAULT_BATCHED = 1, 64
REQUEST_SEED = 0  # shuffles the request pools, so the timed slices mix users
FLOPS_PER_MAC = 2
BACKWARD_OVER_FORWARD = 2.0  # backward costs ~2x the forward's matmul FLOPs (grads of inputs and of weights)
MATMUL_WARMUP = 2
RANKING_HEAD_ROWS = 2  # P(<pos>) reads the <pos> and <neg> rows of the tied head


# ----------------------------------------------------------------------------- training FLOPs (pure)
@dataclasses.dataclass(frozen=True)
class BatchShape:
    """What the FLOP count needs of one left-padded training batch."""

    padded_length: int
    lengths: tuple[int, ...]  # real tokens per row
    retrieval_targets: int  # positions scored over the whole vocabulary (restricted CE)
    ranking_targets: int  # positions scored by the <pos>/<neg> pair
    query_vectors: int  # sentence vectors projected into soft tokens (once per batch)

    @property
    def rows(self) -> int:
        return len(self.lengths)


def block_matmul_weights(d_model: int, d_ff: int) -> int:
    """Weights one token multiplies in a pre-norm block: QKV (3d²), attention output (d²), MLP (2·d·d_ff)."""
    return 4 * d_model * d_model + 2 * d_model * d_ff


def forward_flops(dims: Any, shape: BatchShape, padded: bool) -> float:
    """Forward matmul FLOPs of one batch.

    2·T·L·(4d² + 2·d·d_ff) for the blocks' linears, 4·L·d·A for QKᵀ and AV over A attended (query, key)
    pairs, 2·d·(V·R + 2·P) for the tied head at R retrieval and P ranking targets, and 2·q·n_q·d per query
    vector. ``padded``: T and A as the kernels run them (every padded position, the full T×T attention
    matrix under its mask); else only real tokens and the causal lower triangle. Embedding lookups,
    norms, softmax and GELU are not matmuls and are left out.
    """
    if padded:
        tokens = shape.rows * shape.padded_length
        pairs = shape.rows * shape.padded_length**2
    else:
        tokens = sum(shape.lengths)
        pairs = sum(n * (n + 1) // 2 for n in shape.lengths)
    d, layers = dims.d_model, dims.n_layers
    linear = tokens * layers * block_matmul_weights(d, dims.d_ff)
    attention = 2 * layers * d * pairs  # two matmuls (QKᵀ, AV), d MACs per pair each
    head = d * (dims.vocab_size * shape.retrieval_targets + RANKING_HEAD_ROWS * shape.ranking_targets)
    query = dims.query_dim * dims.n_query_tokens * d * shape.query_vectors
    return float(FLOPS_PER_MAC * (linear + attention + head + query))


def training_flops_per_sequence(dims: Any, shapes: Sequence[BatchShape], padded: bool) -> float:
    """Forward + backward FLOPs per sequence, averaged over ``shapes`` (the timed batches)."""
    total = sum(forward_flops(dims, s, padded) for s in shapes) * (1.0 + BACKWARD_OVER_FORWARD)
    return total / sum(s.rows for s in shapes)


def batch_shape(batch: Any) -> BatchShape:
    """The :class:`BatchShape` of a collated ``SequenceBatch``."""
    from unigrec.model.tokenizer import RANKING, RETRIEVAL_REC, RETRIEVAL_SEARCH

    groups = batch.groups
    retrieval = int(((groups == RETRIEVAL_REC) | (groups == RETRIEVAL_SEARCH)).sum())
    return BatchShape(
        padded_length=int(batch.tokens.shape[1]),
        lengths=tuple(int(n) for n in batch.valid.sum(1).tolist()),
        retrieval_targets=retrieval,
        ranking_targets=int((groups == RANKING).sum()),
        query_vectors=int(batch.query_vectors.shape[0]),
    )


# ----------------------------------------------------------------------------- machine
def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def matmul_peak(size: int, repeats: int, device: str = "cpu") -> dict[str, Any]:
    """float32 ``size``×``size`` matmul GFLOP/s on ``device`` with the current torch thread count: best and
    median of ``repeats`` (best is the peak the training share is measured against)."""
    import numpy as np
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    for _ in range(MATMUL_WARMUP):
        a @ b
    sync()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        sync()
        rates.append(FLOPS_PER_MAC * size**3 / (time.perf_counter() - t0) / 1e9)
    return {
        "size": size,
        "repeats": repeats,
        "device": device,
        "threads": torch.get_num_threads(),
        "best_gflops": round(max(rates), 1),
        "median_gflops": round(float(np.median(rates)), 1),
    }


# ----------------------------------------------------------------------------- requests
def held_out_requests(events: Any, kind: str, seed: int = REQUEST_SEED) -> list[dict[str, Any]]:
    """Requests of ``kind`` made of the held-out events' users (and, for search, their query texts)."""
    rows = events[(events["kind"] == kind) & events["split"].isin(HELD_OUT_SPLITS)]
    rows = rows.sample(frac=1.0, random_state=seed)
    queries = rows["query"].astype(str).tolist() if kind == "search" else [None] * len(rows)
    return [{"user_id": str(u), "kind": kind, "query": q} for u, q in zip(rows["user_id"], queries)]


def new_query_texts(bundle: Path, count: int, seed: int = REQUEST_SEED) -> list[str]:
    """Real texts of the project that are not among the bundle's known queries: catalogue titles."""
    import numpy as np
    import pandas as pd

    from unigrec.model.serving import CATALOGUE_FILE, QUERIES_FILE

    with np.load(bundle / QUERIES_FILE) as data:
        known = {str(t) for t in data["texts"]}
    titles = pd.read_parquet(bundle / CATALOGUE_FILE)["title"].dropna().astype(str)
    titles = sorted({t for t in titles if t.strip() and t not in known})
    if len(titles) < count:
        raise SystemExit(f"only {len(titles)} catalogue titles are not known queries; {count} needed")
    return np.random.default_rng(seed).choice(titles, count, replace=False).tolist()


# ----------------------------------------------------------------------------- served path and bound
@dataclasses.dataclass
class RecordedPrompts:
    """The token sequences ``predict`` collated, in call order, and the query table it collated them with."""

    sequences: list = dataclasses.field(default_factory=list)
    query_table: Any = None
    n_query_tokens: int = 0
    pad_token: int = 0

    def collate(self, rows: list) -> Any:
        from unigrec.model.batch import collate_sequences

        return collate_sequences(rows, self.query_table, self.n_query_tokens, self.pad_token)


@contextlib.contextmanager
def recording_collate(record: RecordedPrompts) -> Iterator[RecordedPrompts]:
    """Observe ``predict``'s prompts without copying its prompt building: it imports
    ``collate_sequences`` from its module at call time, so a pass-through wrapper sees every batch."""
    import unigrec.model.batch as batch_module

    original = batch_module.collate_sequences

    def recording(sequences, query_table, n_query_tokens, pad_token):
        record.sequences += list(sequences)
        record.query_table, record.n_query_tokens, record.pad_token = query_table, n_query_tokens, pad_token
        return original(sequences, query_table, n_query_tokens, pad_token)

    batch_module.collate_sequences = recording
    try:
        yield record
    finally:
        batch_module.collate_sequences = original


def served_prompts(recommender: Any, requests: list[dict[str, Any]], k: int) -> RecordedPrompts:
    """One untimed ``predict`` over ``requests`` (a single kind, so prompts come back in request order);
    it doubles as the warm-up of the served path."""
    import pandas as pd

    with recording_collate(RecordedPrompts()) as record:
        recommender.predict(pd.DataFrame(requests), k)
    if len(record.sequences) != len(requests):
        raise RuntimeError(f"recorded {len(record.sequences)} prompts for {len(requests)} requests")
    return record


def predict_latency(
    recommender: Any, requests: list[dict[str, Any]], batch_size: int, repeats: int, k: int, warmup: int
) -> dict[str, Any]:
    """p50/p95 per ``predict`` call of ``batch_size`` requests (the request frame is built outside the timing)."""
    import pandas as pd

    from benchmarks.train_bench import latency

    fn: Callable[[Any], Any] = lambda frame: recommender.predict(frame, k)
    for _ in range(warmup):
        fn(pd.DataFrame(requests[:batch_size]))
    return latency(fn, requests, pd.DataFrame, batch_size, repeats)


def bound_latency(
    net: Any, record: RecordedPrompts, batch_size: int, repeats: int, k: int, width: int, device: str
) -> dict[str, Any]:
    """One forward pass over the recorded prompts + top-k of ``width`` logits, same batches as ``predict``."""
    import torch

    from benchmarks.train_bench import latency, one_pass_topk

    if device != "cpu":
        net = copy.deepcopy(net).to(device)  # the recommender keeps its CPU network
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run(batch: Any) -> None:
        one_pass_topk(net, batch.to(device), k, width)
        sync()

    out = latency(run, record.sequences, record.collate, batch_size, repeats)
    out["device"] = device
    return out


def encoder_latency(texts: list[str]) -> dict[str, Any]:
    """MiniLM encoding of one new query text per call: what a new query adds to the served path."""
    from benchmarks.train_bench import percentiles
    from unigrec.ids.embeddings import embed_texts

    samples = []
    for text in texts:
        t0 = time.perf_counter()
        embed_texts([text], cache_dir=None, show_progress=False)
        samples.append(time.perf_counter() - t0)
    return {**percentiles(samples), "calls": len(samples)}


def serving_latencies(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Every latency row: rec and known-query search at both batch sizes, new-query search at batch 1."""
    import pandas as pd

    from unigrec.evaluate.generative import id_space_of
    from unigrec.ids.embeddings import load_text_encoder
    from unigrec.model.serving import find_bundle, load_recommender
    from unigrec.paths import Layout

    layout = Layout(root)
    recommender = load_recommender(layout.model_dir)
    events = pd.read_parquet(layout.events, columns=["user_id", "kind", "query", "split"])
    needed = max(args.batch1_repeats, args.batched * args.batch64_repeats)
    sizes = ((SINGLE, args.batch1_repeats), (args.batched, args.batch64_repeats))
    out: dict[str, Any] = {"settings": {**dataclasses.asdict(recommender.settings), "k": args.k}, "pools": {}}
    for kind in KINDS:
        pool = held_out_requests(events, kind)
        out["pools"][kind] = len(pool)
        if len(pool) < needed:
            raise SystemExit(f"{len(pool)} held-out {kind} requests, {needed} needed: lower the repeats")
        requests = pool[:needed]
        record = served_prompts(recommender, requests, args.k)
        width = id_space_of(recommender.model, kind == "search").sizes[0]
        name = "rec" if kind == "rec" else "search_known_query"
        out[name] = {
            f"batch_{size}": {
                "predict": predict_latency(recommender, requests, size, repeats, args.k, args.warmup),
                "bound": bound_latency(
                    recommender.model.net, record, size, repeats, args.k, width, args.device
                ),
            }
            for size, repeats in sizes
        }
    # Known queries are the bundle's history queries: none of the calls above may have loaded MiniLM.
    out["minilm_loaded_by_known_queries"] = load_text_encoder.cache_info().currsize > 0
    out["search_new_query"] = new_query_latency(recommender, find_bundle(layout.model_dir), events, args)
    return out


def new_query_latency(
    recommender: Any, bundle: Path, events: Any, args: argparse.Namespace
) -> dict[str, Any]:
    """Search at batch 1 with texts the bundle does not hold: the first call loads MiniLM (timed apart),
    every call encodes its query (embeddings of request queries are not cached)."""
    import pandas as pd

    repeats = args.batch1_repeats
    texts = new_query_texts(bundle, 2 * repeats + 1)
    requests = [{**r, "query": t} for r, t in zip(held_out_requests(events, "search"), texts[:repeats])]
    first = {**requests[0], "query": texts[-1]}
    t0 = time.perf_counter()
    recommender.predict(pd.DataFrame([first]), args.k)
    first_ms = round((time.perf_counter() - t0) * 1000.0, 1)
    return {
        "batch_1": {
            "predict": predict_latency(recommender, requests, SINGLE, repeats, args.k, args.warmup),
            "minilm_encode_one_text": encoder_latency(texts[repeats : 2 * repeats]),
        },
        "first_call_ms_incl_minilm_load": first_ms,
        "texts": "catalogue titles that are not among the bundle's known query texts",
    }


# ----------------------------------------------------------------------------- training efficiency
def training_efficiency(root: Path, params: str, steps: int, peak: dict[str, Any]) -> dict[str, Any]:
    """Measured training throughput (train_bench) and the analytic FLOPs of exactly the timed batches."""
    import torch

    from benchmarks.train_bench import (
        TRAIN_WARMUP_STEPS,
        load_training_setup,
        sample_training_batches,
        training_throughput,
    )
    from unigrec.model.card import CARD_FILE
    from unigrec.model.transformer import GenerativeTransformer, TransformerDims
    from unigrec.paths import Layout

    card_dims = TransformerDims(**json.loads((Layout(root).model_dir / CARD_FILE).read_text())["dims"])
    setup = load_training_setup(root, params)
    torch.manual_seed(REQUEST_SEED)
    batch_size, sequences = setup.cfg.batch_size, setup.data.train_sequences
    seq_per_s = training_throughput(
        GenerativeTransformer(setup.dims), sequences, setup.collate_train, setup.spec, batch_size, steps
    )
    batches = sample_training_batches(sequences, setup.collate_train, batch_size, steps)[TRAIN_WARMUP_STEPS:]
    shapes = [batch_shape(b) for b in batches]
    out: dict[str, Any] = {
        "sequences_per_s": round(seq_per_s, 1),
        "batch_size": batch_size,
        "timed_steps": steps,
        "dims": dataclasses.asdict(card_dims),
        "timed_net_dims_match_card": setup.dims == card_dims,
        "parameters": sum(p.numel() for p in GenerativeTransformer(card_dims).parameters()),
        "mean_padded_length": round(sum(s.padded_length for s in shapes) / len(shapes), 1),
        "mean_real_length": round(sum(sum(s.lengths) for s in shapes) / sum(s.rows for s in shapes), 1),
    }
    for basis in ("padded", "real"):
        flops = training_flops_per_sequence(card_dims, shapes, padded=basis == "padded")
        gflops = flops * seq_per_s / 1e9
        out[basis] = {
            "mflops_per_sequence": round(flops / 1e6, 1),
            "achieved_gflops": round(gflops, 2),
            "share_of_peak": round(gflops / peak["best_gflops"], 4),
        }
    return out


# ----------------------------------------------------------------------------- report
def _cell(r: dict[str, Any]) -> str:
    return f"{r['p50_ms']} / {r['p95_ms']}"


def render(r: dict[str, Any], command: str) -> str:
    from benchmarks.host import machine_line

    m, s, t, pk = r["machine"], r["serving"]["settings"], r["training"], r["matmul_peak"]
    lat = r["serving"]
    lines = [
        "## Serving latency and training efficiency (`benchmarks/serving_bench.py`)",
        "",
        (
            f"Command: `{command}`. Date: {r['date']}. Machine: {machine_line(m)}; 1-minute load average "
            f"{r['load_average_1min']['start']} at start, {r['load_average_1min']['end']} at end (shared machine)."
        ),
        "",
        (
            f"`Recommender.predict(requests, k={s['k']})` on `models/generative` + `models/serving` (beam "
            f"{s['beam_size']}, pool {s['pipeline_k']}, decoded in chunks of {s['batch_size']}, fusion weights "
            f"{s['fusion_weights']}); requests from the validation + test events' users "
            f"({lat['pools']['rec']} rec, {lat['pools']['search']} search, shuffled). Bound: one forward pass over the "
            f"same prompts + top-{s['k']} (`train_bench.one_pass_topk`) on {lat['rec']['batch_1']['bound']['device']}."
        ),
        "",
        (
            "| requests | batch | `predict` p50 / p95 ms per call | `predict` requests/s | bound p50 / p95 ms | "
            "p50 predict / bound |"
        ),
        "|---|---:|---|---:|---|---:|",
    ]
    labels = {"rec": "rec", "search_known_query": "search, known query (no MiniLM)"}
    for key, label in labels.items():
        for size_key, row in lat[key].items():
            p, b = row["predict"], row["bound"]
            lines.append(
                f"| {label} | {size_key.split('_')[1]} | {_cell(p)} | {p['requests_per_s']} | {_cell(b)} | "
                f"{p['p50_ms'] / b['p50_ms']:.1f}x |"
            )
    new = lat["search_new_query"]
    p, enc = new["batch_1"]["predict"], new["batch_1"]["minilm_encode_one_text"]
    known_bound = lat["search_known_query"]["batch_1"]["bound"]
    lines += [
        (
            f"| search, new query (MiniLM encodes it) | 1 | {_cell(p)} | {p['requests_per_s']} | {_cell(known_bound)} "
            f"+ MiniLM {_cell(enc)} | {p['p50_ms'] / (known_bound['p50_ms'] + enc['p50_ms']):.1f}x |"
        ),
        "",
        (
            f"First new-query call (loads MiniLM): {new['first_call_ms_incl_minilm_load']} ms. Known queries loaded "
            f"MiniLM: {'yes' if lat['minilm_loaded_by_known_queries'] else 'no'}."
        ),
        "",
        (
            "| matmul peak GFLOP/s (float32, best / median) | training sequences/s | training MFLOP per sequence "
            "(padded / real) | achieved GFLOP/s (padded / real) | share of peak (padded / real) |"
        ),
        "|---|---:|---|---|---|",
        (
            f"| {pk['best_gflops']} / {pk['median_gflops']} ({pk['size']}², {pk['repeats']} runs, "
            f"threads: {pk['threads']}) | {t['sequences_per_s']} | {t['padded']['mflops_per_sequence']} / {t['real']['mflops_per_sequence']} | "
            f"{t['padded']['achieved_gflops']} / {t['real']['achieved_gflops']} | "
            f"{t['padded']['share_of_peak']:.1%} / {t['real']['share_of_peak']:.1%} |"
        ),
        "",
        (
            "Training FLOPs per sequence = 3 × [2·T·L·(4d² + 2·d·d_ff) + 4·L·d·A + 2·d·(V·R + 2·P) "
            "+ 2·q·n_q·d·Q/B]: forward matmuls of the blocks' linears over T tokens, QKᵀ and AV over A attended pairs, the tied head at "
            "R retrieval and P ranking targets, the query projection of Q vectors per batch of B; ×3 = forward + "
            f"backward (2× forward). Model card: d={t['dims']['d_model']}, L={t['dims']['n_layers']}, "
            f"d_ff={t['dims']['d_ff']}, V={t['dims']['vocab_size']}, q={t['dims']['query_dim']}, "
            f"n_q={t['dims']['n_query_tokens']}; {t['parameters']:,} parameters. Padded: T and A as the kernels run "
            f"them (mean padded length {t['mean_padded_length']}, full T×T attention); real: real tokens (mean "
            f"{t['mean_real_length']}) and the causal triangle. Throughput: `train_bench.training_throughput`, "
            f"{t['timed_steps']} timed steps of batch {t['batch_size']}."
        ),
        "",
        (
            "How to read it: the ratio column is what the served path costs over the network's floor; the gap is "
            "the trie-constrained beam search (several levels, many hypotheses per request), history/prompt "
            "building and the result frame. At batch 64 every request waits the whole call. A new query text adds "
            "one MiniLM encoding per call; a kind with a fusion weight > 0 also scores its pool with the ranking "
            "head (a second pass). The share of peak shows how far a small model's training is from the "
            "CPU's matmul limit; on a loaded machine both the peak and the throughput are lower than on an idle one."
        ),
    ]
    lines += _load_note(r["load_average_1min"], m)
    return "\n".join(lines)


def _load_note(loads: dict[str, float], machine: dict[str, Any]) -> list[str]:
    """A caveat when other jobs kept the cores busy (the figures then depend on the thread count)."""
    cpus, threads = machine["cpus"], machine["torch_threads"]
    if max(loads["start"], loads["end"]) <= cpus:
        return []
    if threads > 1:
        note = (
            f"The load was above the {cpus} cores: torch's {threads}-thread kernels then wait on descheduled "
            "threads, which inflates small-batch latencies many-fold; compare rows within this run only."
        )
    else:
        note = (
            f"The load was above the {cpus} cores and this run used one torch thread (on a busy machine a "
            "multi-threaded kernel waits on descheduled threads): the peak and the throughput are per core; an "
            "idle machine with torch's default threads gives its own figures."
        )
    return ["", note]


# ----------------------------------------------------------------------------- entry point
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default=".", help="project root with models/ and data/split")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--k", type=int, default=DEFAULT_K)
    parser.add_argument(
        "--batched", type=int, default=DEFAULT_BATCHED, help="requests per call, batched case"
    )
    parser.add_argument("--batch1-repeats", type=int, default=40, help="timed calls at batch 1")
    parser.add_argument("--batch64-repeats", type=int, default=8, help="timed calls at the batched size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before each timed series")
    parser.add_argument("--train-steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--matmul-repeats", type=int, default=10)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's, as training)"
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where the bound runs (predict and training always run on the CPU, as shipped)",
    )
    parser.add_argument("--skip-training", action="store_true", help="latency rows only")
    parser.add_argument("--results", default="benchmarks/results/serving_bench.json")
    parser.add_argument("--markdown", default="BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device")
    return args


def main(argv: list[str] | None = None) -> int:
    from benchmarks.host import command_line, machine
    from benchmarks.markdown_block import write_block
    from unigrec.ids.threads import torch_threads

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    root = Path(args.root).resolve()
    command = command_line("benchmarks/serving_bench.py", sys.argv[1:] if argv is None else argv)
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "root": str(root),
        "load_average_1min": {"start": load_average()},
    }
    with torch_threads(args.threads):
        result["machine"] = machine()
        result["serving"] = serving_latencies(root, args)
        result["matmul_peak"] = matmul_peak(args.matmul_size, args.matmul_repeats)
        if args.device == "cuda":
            result["matmul_peak_cuda"] = matmul_peak(args.matmul_size, args.matmul_repeats, "cuda")
        if not args.skip_training:
            result["training"] = training_efficiency(
                root, args.params, args.train_steps, result["matmul_peak"]
            )
    result["load_average_1min"]["end"] = load_average()
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if "training" in result:
        write_block(Path(args.markdown), BLOCK, render(result, command))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
