"""Blocks name machines by their id in BENCHMARKS.md's machines table and print commands without absolute
paths; every block of H2's scripts re-renders from its stored results exactly as BENCHMARKS.md holds it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from benchmarks import (
    identifiers_bench,
    precision_bench,
    prefect_overhead,
    scale_bench,
    serving_bench,
    train_bench,
)
from benchmarks.block_text import machine_id, portable

ROOT = Path(__file__).resolve().parents[2]


def test_a_machine_is_named_by_its_kernel_build_tag_or_the_id_an_old_record_carries():
    assert machine_id({"platform": "Linux-6.18.44-fc-v1098-x86_64-with-glibc2.36"}) == "v1098"
    assert machine_id({"platform": "Linux-6.18.44-fc-v657-gpu-x86_64-with-glibc2.39"}) == "v657-gpu"
    assert machine_id({"cpu": "AMD EPYC", "id": "v657"}) == "v657"  # recorded before platforms were
    other = machine_id({"cpu": "Some CPU", "platform": "Linux-6.5.0-generic-x86_64"})
    assert other.startswith("m-") and other == machine_id({"cpu": "Some CPU", "platform": "Linux-6.5.0-generic-x86_64"})


def test_a_printed_command_has_no_absolute_path_and_no_output_options():
    command = ("nice -n 10 python benchmarks/precision_bench.py --root '/work/runs/d_model_128_(bf16)-11' "
               "--widths 64 128 --results /work/scratch/p.json --markdown /work/scratch/p.md")
    assert portable(command) == "nice -n 10 python benchmarks/precision_bench.py --root ROOT --widths 64 128"


def _block(text: str, name: str) -> str:
    return re.search(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", text, re.DOTALL).group(0)


@pytest.mark.parametrize(("name", "render"), [
    ("prefect", lambda md: prefect_overhead.main(
        ["--render", "--results", str(ROOT / "benchmarks/results/prefect_overhead.json"), "--markdown", str(md)])),
    ("identifiers", lambda md: identifiers_bench.main(
        ["--render", "--results-dir", str(ROOT / "benchmarks/results"), "--markdown", str(md)])),
    ("train", lambda md: train_bench.main(
        ["--render", "--results", str(ROOT / "benchmarks/results/train_bench.json"), "--markdown", str(md)])),
    ("precision", lambda md: precision_bench.main(
        ["--render", "--results", str(ROOT / "benchmarks/results/precision_bench.json"), "--markdown", str(md)])),
    ("scale", lambda md: scale_bench.main(
        ["--render", "--results", str(ROOT / "benchmarks/results/scale_bench.json"), "--markdown", str(md)])),
    ("serving", lambda md: serving_bench.main(
        ["--render", "--results", str(ROOT / "benchmarks/results/serving_bench.json"), "--markdown", str(md)])),
])
def test_each_block_re_renders_from_its_stored_results_as_benchmarks_md_holds_it(tmp_path, name, render):
    markdown = tmp_path / "BENCHMARKS.md"
    shutil.copy(ROOT / "BENCHMARKS.md", markdown)
    assert render(markdown) == 0
    assert _block(markdown.read_text(), name) == _block((ROOT / "BENCHMARKS.md").read_text(), name)
