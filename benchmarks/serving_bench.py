"""The served path (``Recommender.predict``) against its one-pass bound.

On a project after the evaluate stage: latency p50/p95 of ``predict(requests, k)`` for rec and search
requests of the held-out (validation + test) events at batch 1 and 64, search at batch 1 also with query
texts the bundle does not hold (MiniLM encodes them); beside each, one forward pass over the same prompts
+ a top-k. Writes benchmarks/results/serving_bench.json and the ``serving`` block of BENCHMARKS.md.
The training-FLOPs table this script once printed beside it (against the CPU's matmul peak) is kept with
its last version in docs/experiments/2026-11-25-serving.md.

    python benchmarks/serving_bench.py --root . [--threads 1] [--batch1-repeats 40] [--batch64-repeats 8]
    python benchmarks/serving_bench.py --render    # only re-write the block from the results file
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NOTES = "docs/experiments/2026-11-25-serving.md"
HELD_OUT_SPLITS = ("valid", "test")  # events whose users and queries make the benchmark's requests
BATCHED, WARMUP, REQUEST_SEED = 64, 2, 0


# ----------------------------------------------------------------------------- requests and prompts
def held_out_requests(events: Any, kind: str) -> list[dict[str, Any]]:
    """Requests of ``kind`` made of the held-out events' users (and, for search, their query texts)."""
    rows = events[(events["kind"] == kind) & events["split"].isin(HELD_OUT_SPLITS)].sample(
        frac=1.0, random_state=REQUEST_SEED)
    queries = rows["query"].astype(str).tolist() if kind == "search" else [None] * len(rows)
    return [{"user_id": str(u), "kind": kind, "query": q} for u, q in zip(rows["user_id"], queries)]


def new_query_texts(bundle: Path, count: int) -> list[str]:
    """Real texts of the project that are not among the bundle's known queries: catalogue titles."""
    import numpy as np
    import pandas as pd

    from unigrec.inference.serving import CATALOGUE_FILE, QUERIES_FILE

    with np.load(bundle / QUERIES_FILE) as data:
        known = {str(t) for t in data["texts"]}
    titles = pd.read_parquet(bundle / CATALOGUE_FILE)["title"].dropna().astype(str)
    titles = sorted({t for t in titles if t.strip() and t not in known})
    if len(titles) < count:
        raise SystemExit(f"only {len(titles)} catalogue titles are not known queries; {count} needed")
    return np.random.default_rng(REQUEST_SEED).choice(titles, count, replace=False).tolist()


def served_prompts(recommender: Any, requests: list[dict[str, Any]], k: int) -> tuple[list, Any]:
    """One untimed ``predict`` over ``requests`` of one kind, recording the prompts it collated (it imports
    ``collate_sequences`` at call time, so a pass-through wrapper sees every batch without copying its
    prompt building); returns them in request order and a collate that batches them the same way."""
    from unittest import mock

    import pandas as pd

    import unigrec.model.batch as batch_module

    original, calls = batch_module.collate_sequences, []

    def recording(sequences, *rest):
        calls.append((list(sequences), rest))
        return original(sequences, *rest)

    with mock.patch.object(batch_module, "collate_sequences", recording):
        recommender.predict(pd.DataFrame(requests), k)
    prompts = [p for sequences, _ in calls for p in sequences]
    if len(prompts) != len(requests):
        raise RuntimeError(f"recorded {len(prompts)} prompts for {len(requests)} requests")
    return prompts, lambda rows: original(rows, *calls[0][1])


# ----------------------------------------------------------------------------- latencies
def predict_latency(recommender: Any, requests: list[dict[str, Any]], size: int, repeats: int, k: int) -> dict:
    """p50/p95 per ``predict`` call of ``size`` requests (the request frame is built outside the timing)."""
    import pandas as pd

    from benchmarks.timing import latency

    for _ in range(WARMUP):
        recommender.predict(pd.DataFrame(requests[:size]), k)
    return latency(lambda frame: recommender.predict(frame, k), requests, pd.DataFrame, size, repeats)


def serving_latencies(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Rec and known-query search at batch 1 and 64 with their bounds; new-query search at batch 1."""
    import pandas as pd

    from benchmarks.timing import latency, one_pass_topk, percentiles
    from unigrec.inference.retrieval import id_spaces
    from unigrec.inference.serving import find_bundle, load_recommender
    from unigrec.paths import Layout
    from unigrec.text_encoder import embed_texts, load_text_encoder

    layout = Layout(root)
    rec = load_recommender(layout.model_dir)
    events = pd.read_parquet(layout.events, columns=["user_id", "kind", "query", "split"])
    needed = max(args.batch1_repeats, BATCHED * args.batch64_repeats)
    spaces = id_spaces(rec.model.vocab, rec.model.items)
    out: dict[str, Any] = {"settings": {**dataclasses.asdict(rec.settings), "k": args.k}, "pools": {}}
    for kind, name in (("rec", "rec"), ("search", "search_known_query")):
        pool = held_out_requests(events, kind)
        out["pools"][kind] = len(pool)
        if len(pool) < needed:
            raise SystemExit(f"{len(pool)} held-out {kind} requests, {needed} needed: lower the repeats")
        prompts, collate = served_prompts(rec, pool[:needed], args.k)
        width = spaces[kind == "search"].sizes[0]
        bound = lambda batch, width=width: one_pass_topk(rec.model.net, batch, args.k, width)
        out[name] = {f"batch_{size}": {
            "predict": predict_latency(rec, pool[:needed], size, repeats, args.k),
            "bound": latency(bound, prompts, collate, size, repeats) | {"device": "cpu"}}
            for size, repeats in ((1, args.batch1_repeats), (BATCHED, args.batch64_repeats))}
    # Known queries are the bundle's history queries: none of the calls above may have loaded MiniLM.
    out["minilm_loaded_by_known_queries"] = load_text_encoder.cache_info().currsize > 0
    repeats = args.batch1_repeats
    texts = new_query_texts(find_bundle(layout.model_dir), 2 * repeats + 1)
    requests = [{**r, "query": t} for r, t in zip(held_out_requests(events, "search"), texts[:repeats])]
    t0 = time.perf_counter()
    rec.predict(pd.DataFrame([{**requests[0], "query": texts[-1]}]), args.k)  # loads MiniLM
    first_ms = round((time.perf_counter() - t0) * 1000.0, 1)
    encodings = []
    for text in texts[repeats: 2 * repeats]:
        t0 = time.perf_counter()
        embed_texts([text], cache_dir=None, show_progress=False)
        encodings.append(time.perf_counter() - t0)
    out["search_new_query"] = {
        "batch_1": {"predict": predict_latency(rec, requests, 1, repeats, args.k),
                    "minilm_encode_one_text": {**percentiles(encodings), "calls": repeats}},
        "first_call_ms_incl_minilm_load": first_ms,
        "texts": "catalogue titles that are not among the bundle's known query texts"}
    return out


# ----------------------------------------------------------------------------- report
def render(r: dict[str, Any]) -> str:
    from benchmarks.host import machine_id, portable

    s, lat = r["serving"]["settings"], r["serving"]

    def cell(x: dict[str, Any]) -> str:
        return f"{x['p50_ms']} / {x['p95_ms']}"

    lines = [
        "## Serving latency (`benchmarks/serving_bench.py`)", "",
        f"Command: `{portable(r['command'])}`  ",
        (f"Machine {machine_id(r['machine'])} (torch threads {r['machine']['torch_threads']}), {r['date']}; "
        f"ROOT: a project after `dvc repro`  "),
        (f"`Recommender.predict(requests, k={s['k']})`: beam {s['beam_size']}, pool {s['pipeline_k']}, chunks of "
        f"{s['batch_size']}, fusion weights {s['fusion_weights']}  "),
        (f"Requests: {lat['pools']['rec']} rec, {lat['pools']['search']} search (held out); bound: one forward pass + "
         f"top-{s['k']}; [notes]({NOTES})"), "",
        ("| requests | batch | `predict` p50 / p95 ms per call | `predict` requests/s | bound p50 / p95 ms "
        "| p50 predict / bound |"), "|---|---:|---|---:|---|---:|"]
    for key, label in (("rec", "rec"), ("search_known_query", "search, known query (no MiniLM)")):
        for size, row in lat[key].items():
            p, b = row["predict"], row["bound"]
            lines.append(f"| {label} | {size.split('_')[1]} | {cell(p)} | {p['requests_per_s']} | {cell(b)} "
                         f"| {p['p50_ms'] / b['p50_ms']:.1f}x |")
    new = lat["search_new_query"]
    p, enc = new["batch_1"]["predict"], new["batch_1"]["minilm_encode_one_text"]
    bound = lat["search_known_query"]["batch_1"]["bound"]
    lines += [
        (f"| search, new query (MiniLM encodes it) | 1 | {cell(p)} | {p['requests_per_s']} | {cell(bound)} + MiniLM "
        f"{cell(enc)} | {p['p50_ms'] / (bound['p50_ms'] + enc['p50_ms']):.1f}x |"), "",
        (f"First new-query call (loads MiniLM): {new['first_call_ms_incl_minilm_load']} ms. Known queries loaded "
        f"MiniLM: {'yes' if lat['minilm_loaded_by_known_queries'] else 'no'}.")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from benchmarks.host import add_block_arguments, command_line, machine
    from benchmarks.markdown_block import write_block
    from unigrec.threads import torch_threads

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=".", help="project root with models/ and data/split")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch1-repeats", type=int, default=40, help="timed calls at batch 1")
    parser.add_argument("--batch64-repeats", type=int, default=8, help="timed calls at batch 64")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, as training)")
    add_block_arguments(parser, "benchmarks/results/serving_bench.json")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    out = Path(args.results)
    if args.render:
        write_block(Path(args.markdown), "serving", render(json.loads(out.read_text())))
        return 0
    logging.basicConfig(level=logging.WARNING)
    root = Path(args.root).resolve()
    result: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                              "command": command_line("benchmarks/serving_bench.py", argv), "root": str(root),
                              "load_average_1min": {"start": round(os.getloadavg()[0], 2)}}
    with torch_threads(args.threads):
        result["machine"] = machine()
        result["serving"] = serving_latencies(root, args)
    result["load_average_1min"]["end"] = round(os.getloadavg()[0], 2)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    write_block(Path(args.markdown), "serving", render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
