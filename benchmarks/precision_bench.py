"""Training throughput at fp32 and bf16-mixed, for one or more model widths, on a project's real data.

Why: on a CPU with bf16 matrix units (AVX-512 BF16, AMX) ``train.trainer.precision: bf16-mixed`` may buy
enough speed to train a wider model in the time the narrow one takes in fp32. This measures that trade on
the batches the train stage would build from ``--root`` (its params.yaml, split and cached query vectors),
with the same timed loop as ``train_bench.py``. Validation is fp32 under either precision (the train
stage's monitor disables autocast), so only the training step is timed.

The speed-up is a property of the CPU as much as of the model (the same command gave 1.6x on one 2-CPU
cloud box and 1.2x on another), so the results file keeps one entry per machine: a run replaces its own
machine's entry and leaves the others, and the ``precision`` block of BENCHMARKS.md shows them all.

    python benchmarks/precision_bench.py --root ROOT --widths 64 128 [--steps 30]
    python benchmarks/precision_bench.py --render    # only re-write the block from the results file
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package, when run as a script

from benchmarks.host import command_line, machine, machine_line
from benchmarks.markdown_block import write_block
from benchmarks.params_override import set_param
from benchmarks.train_bench import load_training_setup, training_throughput
from unigrec.model.transformer import GenerativeTransformer

BLOCK = "precision"  # its block in BENCHMARKS.md
# Lightning precision name -> the CPU autocast dtype it trains under (None: plain fp32)
AUTOCAST = {"32-true": None, "bf16-mixed": torch.bfloat16}
FF_PER_WIDTH = 4  # d_ff follows d_model, as in the params.yaml default (64 -> 256)


def measure(root: Path, params: str, widths: list[int], precisions: list[str], steps: int) -> tuple[list[dict], dict]:
    """One row per (width, precision), and what the batches were built from."""
    base = yaml.safe_load((root / params).read_text())
    rows, data = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for width in widths:
            set_param(base, "train.model.d_model", width)
            set_param(base, "train.model.d_ff", FF_PER_WIDTH * width)
            path = Path(tmp) / f"params_d{width}.yaml"
            path.write_text(yaml.safe_dump(base))
            setup = load_training_setup(root, str(path))
            cfg = setup.cfg
            data = {"train_sequences": len(setup.data.train_sequences), "max_events": cfg.max_events,
                    "batch_size": cfg.batch_size, "item_representation": cfg.model.item_representation}
            for precision in precisions:
                torch.manual_seed(0)  # the same initial weights for both precisions
                net = GenerativeTransformer(setup.dims)
                rate = training_throughput(net, setup.data.train_sequences, setup.collate_train, setup.spec,
                                           setup.cfg.batch_size, steps, AUTOCAST[precision])
                rows.append({"d_model": width, "d_ff": FF_PER_WIDTH * width, "n_heads": setup.cfg.model.n_heads,
                             "precision": precision, "parameters": sum(p.numel() for p in net.parameters()),
                             "sequences_per_s": round(rate, 1)})
                print(f"d_model {width}, {precision}: {rate:.1f} sequences/s", flush=True)
    return rows, data


def machine_key(run: dict) -> tuple[int, str, str, int]:
    """What makes two runs the same machine for this table: the CPU (count, model, units), torch and its
    threads. The platform string is left out: cloud kernels carry a per-boot build tag."""
    m = run["machine"]
    return m["cpus"], m["cpu"], m["torch"], m["torch_threads"]


def load_runs(path: Path) -> list[dict]:
    """The per-machine entries of a results file; a file from before entries were kept holds one run."""
    if not path.exists():
        return []
    saved = json.loads(path.read_text())
    return saved.get("runs", [saved])


def merge(runs: list[dict], new: dict) -> list[dict]:
    """``runs`` with ``new`` in place of the entry for its machine, or appended when the machine is new."""
    key = machine_key(new)
    if any(machine_key(r) == key for r in runs):
        return [new if machine_key(r) == key else r for r in runs]
    return [*runs, new]


def _table(run: dict) -> list[str]:
    m, d = run["machine"], run["data"]
    fp32 = {r["d_model"]: r["sequences_per_s"] for r in run["rows"] if r["precision"] == "32-true"}
    lines = [
        f"Command: `{run['command']}`  ",
        f"Machine: {machine_line(m)}{', ' + run['date'] if run.get('date') else ''}  ",
        (f"Data: {d['train_sequences']} training sequences of up to {d['max_events']} events, batch "
         f"{d['batch_size']}, {d['item_representation']} IDs; {run['steps']} timed steps after warm-up, "
         "random initial weights."),
        "",
        "| d_model | d_ff | heads | parameters | precision | training sequences/s | vs fp32 at this width |",
        "|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in run["rows"]:
        base = fp32.get(r["d_model"])
        ratio = f"{r['sequences_per_s'] / base:.2f}x" if base else "–"
        lines.append(f"| {r['d_model']} | {r['d_ff']} | {r['n_heads']} | {r['parameters']:,} | {r['precision']} | "
                     f"{r['sequences_per_s']} | {ratio} |")
    return lines


def render(runs: list[dict]) -> str:
    """The block: one table per machine, in the order they were first measured."""
    lines = ["## Training precision: fp32 against bf16-mixed (`benchmarks/precision_bench.py`)", ""]
    if len(runs) > 1:
        note = f"Measured on {len(runs)} machines; the speed-up depends on the CPU, so read the one closest to yours."
        lines += [note, ""]
    for run in runs:
        lines += [*_table(run), ""]
    lines.append("bf16-mixed keeps fp32 weights and optimiser state and runs the matmuls in bf16; the "
                 "cross-entropy is computed in fp32 (autocast's rule for it). Whether it trains as well is a "
                 "quality question this block does not answer: see the ML-1M rows that use it.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="project root after the split stage")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to --root")
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128], help="d_model values")
    parser.add_argument("--precisions", nargs="+", default=list(AUTOCAST), choices=list(AUTOCAST))
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per measurement")
    parser.add_argument("--results", default="benchmarks/results/precision_bench.json",
                        help="results file, one entry per machine")
    parser.add_argument("--markdown", default="BENCHMARKS.md")
    parser.add_argument("--render", action="store_true", help="only re-write the block from the results file")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    out = Path(args.results)
    runs = load_runs(out)
    if not args.render:
        rows, data = measure(Path(args.root), args.params, args.widths, args.precisions, args.steps)
        run = {
            "machine": machine(),
            "date": dt.date.today().isoformat(),
            "command": command_line("benchmarks/precision_bench.py", argv),
            "data": data,
            "steps": args.steps,
            "rows": rows,
        }
        runs = merge(runs, run)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    write_block(Path(args.markdown), BLOCK, render(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
