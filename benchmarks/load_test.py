"""Load test of `unigrec serve` on loopback: concurrent clients for a bounded time and request count while
the champion alias moves, valid and bad requests mixed. Stops by itself.

ROOT is a project whose registry holds at least two versions of ``register.model_name`` with the alias on
one of them: the test moves the alias round the versions every ``--alias-every-s`` seconds (the server
polls it every ``--poll-s``, set through a copy of ROOT's params) and puts it back where it was at the
end. Reported: p50/p95/p99 of valid requests by endpoint, errors (a valid request that did not get a 200
answer, or no answer), the status codes bad requests got (4xx wanted, never 5xx), which model versions
answered after each alias move, and the server's resident memory before and after the load (and its
peak). Writes benchmarks/results/load_test.json and the ``load-test`` block of BENCHMARKS.md; exits 1
when a valid request failed or a bad one got a 5xx.

    python benchmarks/load_test.py --root ROOT [--clients 4] [--duration-s 60] [--max-requests 20000]
        [--alias-every-s 15] [--poll-s 1] [--threads 1]
    python benchmarks/load_test.py --render    # only re-write the block from the results file
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NOTES = "docs/experiments/2026-12-03-serving-speed.md"
SEED = 0
BAD_SHARE = 0.2  # share of requests that break a rule
BATCH_SHARE = 0.1  # share of valid requests sent as a /batch
BATCH_SIZE = 8  # requests in one valid /batch call
RSS_SAMPLE_S = 1.0


@dataclasses.dataclass
class Sample:
    name: str  # request family: "recommend", "search", "batch", or a bad request's name
    valid: bool
    status: int  # HTTP status; 0 = no answer (refused, reset, timed out)
    seconds: float
    version: str | None  # model_version the answer carried
    sent_at: float  # monotonic seconds since the load began


# ----------------------------------------------------------------------------- requests
def request_pool(root: Path) -> tuple[list[str], list[str]]:
    """Known user ids and real search query texts of ROOT's events."""
    import pandas as pd

    from unigrec.paths import Layout

    events = pd.read_parquet(Layout(root).events, columns=["user_id", "kind", "query"])
    users = sorted(events["user_id"].astype(str).unique())
    queries = sorted(events.loc[events["kind"] == "search", "query"].dropna().astype(str).unique())
    return users, queries


def bad_requests(limits: Any, user: str) -> dict[str, tuple[str, Any, bytes | None]]:
    """name -> (path, JSON body, raw bytes instead of a body): each breaks one rule the service states."""
    return {
        "k_zero": ("/recommend", {"user_id": user, "k": 0}, None),
        "k_over_max": ("/recommend", {"user_id": user, "k": limits.max_k + 1}, None),
        "k_huge": ("/recommend", {"user_id": user, "k": 1_000_000_000}, None),
        "k_not_int": ("/recommend", {"user_id": user, "k": "ten"}, None),
        "missing_user": ("/recommend", {"k": 5}, None),
        "user_is_list": ("/recommend", {"user_id": [user]}, None),
        "unknown_field": ("/recommend", {"user_id": user, "colour": "red"}, None),
        "empty_query": ("/search", {"query": "   "}, None),
        "query_too_long": ("/search", {"query": "x" * (limits.max_query_chars + 1)}, None),
        "bad_kind_in_batch": ("/batch", {"requests": [{"kind": "ads", "user_id": user}]}, None),
        "rec_with_query_in_batch": ("/batch", {"requests": [{"kind": "rec", "user_id": user, "query": "q"}]}, None),
        "empty_batch": ("/batch", {"requests": []}, None),
        "batch_too_large": ("/batch", {"requests": [{"kind": "rec", "user_id": user}] * (limits.max_batch + 1)}, None),
        "malformed_json": ("/recommend", None, b'{"user_id": '),
        "not_utf8": ("/recommend", None, b'{"user_id": "\xff\xfe"}'),
        "json_list_body": ("/recommend", [user], None),
    }


def valid_request(rng: random.Random, users: list[str], queries: list[str], k: int) -> tuple[str, str, Any]:
    """(family, path, body) of a request every rule allows (unknown users are valid: cold start)."""
    if rng.random() < BATCH_SHARE:
        requests = [{"kind": "rec", "user_id": rng.choice(users)} if rng.random() < 0.5 else
                    {"kind": "search", "query": rng.choice(queries), "user_id": rng.choice(users)}
                    for _ in range(BATCH_SIZE)]
        return "batch", "/batch", {"requests": requests, "k": k}
    if queries and rng.random() < 0.5:
        return "search", "/search", {"query": rng.choice(queries), "k": k}
    user = rng.choice(users) if rng.random() < 0.9 else f"new-user-{rng.randrange(10**6)}"
    return "recommend", "/recommend", {"user_id": user, "k": k}


# ----------------------------------------------------------------------------- load
def client_loop(port: int, seed: int, users: list[str], queries: list[str], bad: dict, k: int,
                started: float, deadline: float, budget: list[int], lock: threading.Lock, out: list[Sample]) -> None:
    """One client: requests until the deadline or the shared request budget is spent."""
    from benchmarks.service_process import Client

    rng = random.Random(seed)
    client = Client(port)
    names = sorted(bad)
    while time.monotonic() < deadline:
        with lock:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        if rng.random() < BAD_SHARE:
            name = rng.choice(names)
            path, body, raw = bad[name]
            valid = False
        else:
            name, path, body = valid_request(rng, users, queries, k)
            raw, valid = None, True
        sent = time.monotonic()
        try:
            status, answer = client.call("POST", path, body, raw=raw)
        except Exception:  # noqa: BLE001 (any failure to answer is what is counted; the client reconnects)
            status, answer = 0, None
        seconds = time.monotonic() - sent
        version = answer.get("model_version") if isinstance(answer, dict) else None
        with lock:
            out.append(Sample(name, valid, status, seconds, version, sent - started))
    client.close()


def move_alias(cfg: Any, uri: str, versions: list[str], every_s: float, started: float, deadline: float,
               moves: list[dict[str, Any]], stop: threading.Event) -> None:
    """Point the alias at the next version every ``every_s`` seconds until the deadline."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    current = str(client.get_model_version_by_alias(cfg.model_name, cfg.alias).version)
    order = [v for v in versions if v != current] + [current]
    i = 0
    while not stop.wait(every_s) and time.monotonic() + every_s / 2 < deadline:
        target = order[i % len(order)]
        client.set_registered_model_alias(cfg.model_name, cfg.alias, target)
        moves.append({"at_s": round(time.monotonic() - started, 2), "version": str(target)})
        i += 1


def sample_rss(pid: int, started: float, stop: threading.Event, timeline: list[tuple[float, float]]) -> None:
    """The server's resident memory every RSS_SAMPLE_S seconds: (seconds since the load began, MB)."""
    from benchmarks.service_process import process_rss_mb

    while not stop.wait(RSS_SAMPLE_S):
        try:
            timeline.append((round(time.monotonic() - started, 1), process_rss_mb(pid)))
        except (OSError, RuntimeError):
            return


def run_load(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    import mlflow
    import numpy as np
    import yaml

    from benchmarks.service_process import Client, process_rss_mb, served
    from unigrec.config import load_section
    from unigrec.registry.store import tracking_uri

    cfg = load_section("register", root / "params.yaml")
    limits = load_section("serving", root / "params.yaml")
    uri = tracking_uri(cfg, root)
    registry = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = sorted((str(v.version) for v in registry.search_model_versions(f"name='{cfg.model_name}'")), key=int)
    original = str(registry.get_model_version_by_alias(cfg.model_name, cfg.alias).version)
    if len(versions) < 2:
        raise SystemExit(f"{cfg.model_name} has {len(versions)} version(s) in ROOT's registry; the alias needs two "
                         "to move between (register the model once more)")
    users, queries = request_pool(root)
    with tempfile.TemporaryDirectory() as tmp:
        params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
        params["serving"]["poll_s"] = args.poll_s
        params_file = Path(tmp) / "params.yaml"
        params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        log = Path(args.results).with_name("load_test_server.log")
        bad = bad_requests(limits, users[0])
        samples: list[Sample] = []
        moves: list[dict[str, Any]] = []
        try:
            with served(root, ["--params", str(params_file)], threads=args.threads, log=log) as (port, pid):
                warm = Client(port)
                for path, body in (("/recommend", {"user_id": users[0]}), ("/search", {"query": queries[0]})):
                    warm.call("POST", path, body)
                warm.close()
                rss_before = process_rss_mb(pid)
                timeline: list[tuple[float, float]] = []
                lock, stop = threading.Lock(), threading.Event()
                started = time.monotonic()
                deadline = started + args.duration_s
                budget = [args.max_requests]
                threads = [threading.Thread(target=client_loop, args=(port, SEED + i, users, queries, bad, args.k,
                                                                       started, deadline, budget, lock, samples))
                           for i in range(args.clients)]
                helpers = [threading.Thread(target=move_alias, args=(cfg, uri, versions, args.alias_every_s, started,
                                                                     deadline, moves, stop)),
                           threading.Thread(target=sample_rss, args=(pid, started, stop, timeline))]
                for t in threads + helpers:
                    t.start()
                for t in threads:
                    t.join()
                elapsed = time.monotonic() - started
                stop.set()
                for t in helpers:
                    t.join()
                rss_after = process_rss_mb(pid)
        finally:
            registry.set_registered_model_alias(cfg.model_name, cfg.alias, original)

    valid = [s for s in samples if s.valid]
    invalid = [s for s in samples if not s.valid]

    def stats(group: list[Sample]) -> dict[str, Any]:
        ms = np.asarray([s.seconds for s in group]) * 1000.0
        return {"requests": len(group), **({f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)}
                                            if len(group) else {})}

    families = sorted({s.name for s in valid})
    statuses: dict[str, dict[str, int]] = {}
    for s in invalid:
        statuses.setdefault(s.name, {})
        statuses[s.name][str(s.status)] = statuses[s.name].get(str(s.status), 0) + 1
    after_moves = []
    for i, move in enumerate(moves):
        end = moves[i + 1]["at_s"] if i + 1 < len(moves) else elapsed
        seen = [s for s in valid if move["at_s"] <= s.sent_at < end and s.version]
        switched = next((s.sent_at - move["at_s"] for s in seen if s.version == move["version"]), None)
        after_moves.append({**move, "first_answer_from_it_after_s": None if switched is None else round(switched, 2),
                            "versions_answering": sorted({s.version for s in seen})})
    return {
        "clients": args.clients, "duration_s": round(elapsed, 1), "requests": len(samples),
        "requests_per_s": round(len(samples) / elapsed, 1), "versions": versions, "alias_restored_to": str(original),
        "valid": {"all": stats(valid), **{f: stats([s for s in valid if s.name == f]) for f in families}},
        "valid_errors": sum(1 for s in valid if s.status != 200),
        "valid_error_statuses": sorted({s.status for s in valid if s.status != 200}),
        "bad": {"requests": len(invalid), "statuses": statuses,
                "5xx_or_no_answer": sum(1 for s in invalid if s.status >= 500 or s.status == 0),
                "not_4xx": sum(1 for s in invalid if not 400 <= s.status < 500)},
        "alias_moves": after_moves,
        "server_rss_mb": {"before": rss_before, "after": rss_after,
                          "peak": max([rss_before, rss_after, *(mb for _, mb in timeline)]),
                          "by_quarter": [rss_at(timeline, elapsed * q / 4) for q in (1, 2, 3)]},
        "server_rss_timeline": timeline,
    }


def rss_at(timeline: list[tuple[float, float]], at_s: float) -> float | None:
    """The last memory sample taken by ``at_s`` seconds into the load."""
    taken = [mb for t, mb in timeline if t <= at_s]
    return taken[-1] if taken else None


# ----------------------------------------------------------------------------- report
def render(r: dict[str, Any]) -> str:
    from benchmarks.host import machine_id, portable

    load = r["load"]
    v = load["valid"]
    lines = [
        "## Load test: `unigrec serve` on loopback while the champion moves (`benchmarks/load_test.py`)", "",
        f"Command: `{portable(r['command'])}`  ",
        (f"Machine {machine_id(r['machine'])}, {r['date']}; server torch threads {r['server_threads']}; "
         f"[notes]({NOTES})  "),
        (f"1-minute load average {r['load_average_1min']['start']} at the start, {r['load_average_1min']['end']} at "
         f"the end on {r['machine'].get('cpus', '?')} CPUs  "),
        f"ROOT: a project after `dvc repro` with versions {', '.join(load['versions'])} of its model registered", "",
        (f"{load['clients']} clients, {load['duration_s']} s, {load['requests']} requests "
         f"({load['requests_per_s']} per s), {round(BAD_SHARE * 100)}% of them bad; the alias moved "
         f"{len(load['alias_moves'])} times and was put back on v{load['alias_restored_to']}."), "",
        "| valid requests | count | p50 ms | p95 ms | p99 ms |", "|---|---:|---:|---:|---:|"]
    for name, row in v.items():
        if row["requests"]:
            lines.append(f"| {name} | {row['requests']} | {row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} |")
    bad = load["bad"]
    statuses = ", ".join(f"{name} {'/'.join(f'{code}x{n}' for code, n in sorted(codes.items()))}"
                         for name, codes in sorted(bad["statuses"].items()))
    moves = "; ".join(
        f"at {m['at_s']} s to v{m['version']}: "
        + (f"first answer from it {m['first_answer_from_it_after_s']} s later" if m["first_answer_from_it_after_s"]
           is not None else "no answer from it before the next move")
        for m in load["alias_moves"])
    rss = load["server_rss_mb"]
    lines += [
        "",
        (f"Errors on valid requests: **{load['valid_errors']}**"
         + (f" (statuses {load['valid_error_statuses']})" if load["valid_errors"] else "") + ". "
         f"Bad requests: {bad['requests']}, 5xx or no answer: **{bad['5xx_or_no_answer']}**, not 4xx: "
         f"{bad['not_4xx']} ({statuses})."),
        "", f"Alias moves: {moves or 'none'}.",
        "", (f"Server resident memory: {rss['before']} MB before the load; "
             f"{' / '.join(str(mb) for mb in rss['by_quarter'])} MB at a quarter, half and three quarters of it; "
             f"{rss['after']} MB after; peak {rss['peak']} MB.")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from benchmarks.host import add_block_arguments, command_line, machine
    from benchmarks.markdown_block import write_block

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=".", help="project with models/, data/split and two registered versions")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (threads, one connection each)")
    parser.add_argument("--duration-s", type=float, default=60.0, help="stop sending after this many seconds")
    parser.add_argument("--max-requests", type=int, default=20000, help="stop after this many requests in all")
    parser.add_argument("--alias-every-s", type=float, default=15.0, help="seconds between alias moves")
    parser.add_argument("--poll-s", type=float, default=1.0, help="the server's serving.poll_s during the test")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="the server's torch threads (default: torch's)")
    add_block_arguments(parser, "benchmarks/results/load_test.json")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    out = Path(args.results)
    if args.render:
        write_block(Path(args.markdown), "load-test", render(json.loads(out.read_text())))
        return 0
    root = Path(args.root).resolve()
    result: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                              "command": command_line("benchmarks/load_test.py", argv), "root": str(root),
                              "machine": machine(), "server_threads": args.threads or "torch's default",
                              "load_average_1min": {"start": round(os.getloadavg()[0], 2)}}
    result["load"] = run_load(root, args)
    result["load_average_1min"]["end"] = round(os.getloadavg()[0], 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    write_block(Path(args.markdown), "load-test", render(result))
    failed = result["load"]["valid_errors"] or result["load"]["bad"]["5xx_or_no_answer"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
