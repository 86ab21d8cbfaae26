"""Training throughput at fp32 and bf16-mixed for one or more model widths and retrieval softmaxes, on the
batches the train stage builds from ``--root`` (its params, split and cached query vectors), with
``timing``'s timed loop. Only the training step is timed: validation runs in fp32 under either precision.
The speed-up depends on the CPU, so the results file keeps one entry per machine (a run replaces only its
own machine's). ``--softmaxes`` also times the sampled softmax with each target's negatives gathered and
read from one product (``train.retrieval_loss.product_columns``): the same loss, computed two ways.

    python benchmarks/precision_bench.py --root ROOT --widths 64 128 [--steps 30]
    python benchmarks/precision_bench.py --root ROOT --widths 128 --precisions bf16-mixed \
        --softmaxes full sampled-gathered sampled-product
    python benchmarks/precision_bench.py --render    # only re-write the block from the results file
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package, when run as a script

from benchmarks.host import add_block_arguments, command_line, machine, machine_id, portable
from benchmarks.markdown_block import write_block
from benchmarks.project_copy import write_overrides
from benchmarks.timing import load_training_setup, training_throughput
from unigrec.train.fit import fresh_network

BLOCK = "precision"  # its block in BENCHMARKS.md
NOTES = "docs/experiments/2026-12-03-training-precision.md"
# Lightning precision name -> the CPU autocast dtype it trains under (None: plain fp32)
AUTOCAST = {"32-true": None, "bf16-mixed": torch.bfloat16}
FF_PER_WIDTH = 4  # d_ff follows d_model, as in the params.yaml default (64 -> 256)
# --softmaxes: name -> the train.retrieval_loss overrides that select it (rows recorded before the option
# existed trained with the full softmax)
SOFTMAXES = {
    "full": ["train.retrieval_loss.softmax=full"],
    "sampled-gathered": ["train.retrieval_loss.softmax=sampled", "train.retrieval_loss.draw=position",
                         "train.retrieval_loss.product_columns=0"],
    "sampled-product": ["train.retrieval_loss.softmax=sampled", "train.retrieval_loss.draw=position",
                        "train.retrieval_loss.product_columns=1000000000"],
}


def measure(root: Path, params: str, widths: list[int], precisions: list[str], steps: int,
            softmaxes: list[str] = ("full",)) -> tuple[list[dict], dict]:
    """One row per (width, softmax, precision), and what the batches were built from. Each one's params are
    ``--root``'s with d_model, d_ff and the softmax overridden by the product's writer, in a scratch folder."""
    rows, data = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for width in widths:
            for softmax in softmaxes:
                scratch = Path(tmp) / f"d{width}-{softmax}"
                scratch.mkdir()
                shutil.copyfile(root / params, scratch / "params.yaml")
                write_overrides(scratch, [f"train.model.d_model={width}", f"train.model.d_ff={FF_PER_WIDTH * width}",
                                          *SOFTMAXES[softmax]])
                setup = load_training_setup(root, str(scratch / "params.yaml"))
                cfg = setup.cfg
                data = {"train_sequences": len(setup.data.train_sequences), "max_events": cfg.max_events,
                        "batch_size": cfg.batch_size, "item_representation": cfg.model.item_representation}
                for precision in precisions:
                    torch.manual_seed(0)  # the same initial weights (and draws) for every arm
                    net = fresh_network(setup.dims, setup.data)
                    rate = training_throughput(net, setup.data.train_sequences, setup.collate_train, setup.spec,
                                               cfg.batch_size, steps, AUTOCAST[precision])
                    rows.append({"d_model": width, "d_ff": FF_PER_WIDTH * width, "n_heads": cfg.model.n_heads,
                                 "softmax": softmax, "precision": precision,
                                 "parameters": sum(p.numel() for p in net.parameters()),
                                 "sequences_per_s": round(rate, 1)})
                    print(f"d_model {width}, {softmax}, {precision}: {rate:.1f} sequences/s", flush=True)
    return rows, data


def machine_key(run: dict) -> tuple[int, str, str, int]:
    """What makes two runs the same machine for this table: the CPU (count, model, units), torch and its
    threads. The platform string is left out: cloud kernels carry a per-boot build tag."""
    m = run["machine"]
    return m["cpus"], m["cpu"], m["torch"], m["torch_threads"]


def load_runs(path: Path) -> list[dict]:
    """The per-machine entries of a results file."""
    return json.loads(path.read_text())["runs"] if path.exists() else []


def merge(runs: list[dict], new: dict) -> list[dict]:
    """``runs`` with ``new`` in place of the entry for its machine, or appended when the machine is new."""
    key = machine_key(new)
    if any(machine_key(r) == key for r in runs):
        return [new if machine_key(r) == key else r for r in runs]
    return [*runs, new]


def _data_line(run: dict) -> str:
    d = run["data"]
    return (f"{d['train_sequences']} sequences of ≤ {d['max_events']} events, batch {d['batch_size']}, "
            f"{d['item_representation']} IDs; {run['steps']} timed steps after warm-up, random weights")


def render(runs: list[dict]) -> str:
    """The block: every machine's command, then one table over all machines in the order first measured."""
    data = {_data_line(run) for run in runs}
    lines = [("## Training throughput: fp32 against bf16-mixed, and the retrieval softmaxes "
             "(`benchmarks/precision_bench.py`)"), "",
             f"Commands (ROOT: a project after `dvc repro split`; [notes]({NOTES})):  "]
    lines += [f"{machine_id(run['machine'])}, {run['date']}: `{portable(run['command'])}`"
              + (f"; {_data_line(run)}" if len(data) > 1 else "") + "  " for run in runs]
    lines += [f"Data: {data.pop()}" if len(data) == 1 else "", "",
              ("| machine | d_model | d_ff | heads | parameters | retrieval softmax | precision | training sequences/s "
              "| vs fp32 |"),
              "|---|---:|---:|---:|---:|---|---|---:|---:|"]
    for run in runs:
        fp32 = {(r["d_model"], r.get("softmax", "full")): r["sequences_per_s"]
                for r in run["rows"] if r["precision"] == "32-true"}
        for r in run["rows"]:
            softmax = r.get("softmax", "full")
            base = fp32.get((r["d_model"], softmax))
            ratio = f"{r['sequences_per_s'] / base:.2f}x" if base else "–"
            lines.append(f"| {machine_id(run['machine'])} | {r['d_model']} | {r['d_ff']} | {r['n_heads']} "
                         f"| {r['parameters']:,} | {softmax} | {r['precision']} | {r['sequences_per_s']} | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="project root after the split stage")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to --root")
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128], help="d_model values")
    parser.add_argument("--precisions", nargs="+", default=list(AUTOCAST), choices=list(AUTOCAST))
    parser.add_argument("--softmaxes", nargs="+", default=["full"], choices=list(SOFTMAXES),
                        help="retrieval softmaxes: the full one, the per-target sampled one gathered / by product")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per measurement")
    add_block_arguments(parser, "benchmarks/results/precision_bench.json")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    out = Path(args.results)
    runs = load_runs(out)
    if not args.render:
        rows, data = measure(Path(args.root), args.params, args.widths, args.precisions, args.steps,
                             args.softmaxes)
        runs = merge(runs, {"machine": machine(), "date": dt.date.today().isoformat(), "data": data, "rows": rows,
                            "command": command_line("benchmarks/precision_bench.py", argv), "steps": args.steps})
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    write_block(Path(args.markdown), BLOCK, render(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
