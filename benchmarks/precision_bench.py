"""Training throughput at fp32 and bf16-mixed, for one or more model widths, on a project's real data.

Why: on a CPU with bf16 matrix units (AVX-512 BF16, AMX) ``train.trainer.precision: bf16-mixed`` may buy
enough speed to train a wider model in the time the narrow one takes in fp32. This measures that trade on
the batches the train stage would build from ``--root`` (its params.yaml, split and cached query vectors),
with the same timed loop as ``train_bench.py``. Validation is fp32 under either precision (the train
stage's monitor disables autocast), so only the training step is timed. Writes
benchmarks/results/precision_bench.json and the ``precision`` block of BENCHMARKS.md.

    python benchmarks/precision_bench.py --root ROOT --widths 64 128 [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package, when run as a script

from benchmarks.host import cpu_model
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


def render(result: dict, command: str) -> str:
    m, d = result["machine"], result["data"]
    fp32 = {r["d_model"]: r["sequences_per_s"] for r in result["rows"] if r["precision"] == "32-true"}
    lines = [
        "## Training precision: fp32 against bf16-mixed (`benchmarks/precision_bench.py`)",
        "",
        f"Command: `python {command}`  ",
        (f"Machine: {m['cpu']}, {m['platform']}, Python {m['python']}, torch {m['torch']} "
        f"({m['torch_threads']} threads)  "),
        (f"Data: {d['train_sequences']} training sequences of up to {d['max_events']} events, batch "
        f"{d['batch_size']}, {d['item_representation']} IDs; {result['steps']} timed steps after warm-up, "
        "random initial weights."),
        "",
        "| d_model | d_ff | heads | parameters | precision | training sequences/s | vs fp32 at this width |",
        "|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in result["rows"]:
        base = fp32.get(r["d_model"])
        ratio = f"{r['sequences_per_s'] / base:.2f}x" if base else "–"
        lines.append(f"| {r['d_model']} | {r['d_ff']} | {r['n_heads']} | {r['parameters']:,} | {r['precision']} | "
                     f"{r['sequences_per_s']} | {ratio} |")
    lines += ["", ("bf16-mixed keeps fp32 weights and optimiser state and runs the matmuls in bf16; the "
              "cross-entropy is computed in fp32 (autocast's rule for it). Whether it trains as well is a "
              "quality question this block does not answer: see the ML-1M rows that use it.")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="project root after the split stage")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to --root")
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128], help="d_model values")
    parser.add_argument("--precisions", nargs="+", default=list(AUTOCAST), choices=list(AUTOCAST))
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per measurement")
    parser.add_argument("--results", default="benchmarks/results/precision_bench.json")
    parser.add_argument("--markdown", default="BENCHMARKS.md")
    args = parser.parse_args(argv)
    root = Path(args.root)
    rows, data = measure(root, args.params, args.widths, args.precisions, args.steps)
    result = {
        "machine": {"cpu": f"{os.cpu_count()} CPUs ({cpu_model()})", "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads()},
        "data": data,
        "steps": args.steps,
        "rows": rows,
    }
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    write_block(Path(args.markdown), BLOCK, render(result, " ".join(sys.argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
