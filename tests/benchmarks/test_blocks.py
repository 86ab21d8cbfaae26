"""Every block of the speed benchmarks re-renders from its stored results exactly as BENCHMARKS.md holds it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from benchmarks import (
    identifiers_bench,
    load_test,
    precision_bench,
    prefect_overhead,
    scale_bench,
    serving_bench,
)
from benchmarks.markdown_block import read_block

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("name", "render"), [
    ("prefect", lambda md: prefect_overhead.main(
        ["--render", "--results", str(ROOT / "benchmarks/results/prefect_overhead.json"), "--markdown", str(md)])),
    ("identifiers", lambda md: identifiers_bench.main(
        ["--render", "--results-dir", str(ROOT / "benchmarks/results"), "--markdown", str(md)])),
    ("precision", lambda md: precision_bench.main(
        ["--render", "--results", str(ROOT / "benchmarks/results/precision_bench.json"), "--markdown", str(md)])),
    ("scale", lambda md: scale_bench.main(
        ["--render", "--results", str(ROOT / "benchmarks/results/scale_bench.json"), "--markdown", str(md)])),
    ("serving", lambda md: serving_bench.main(
        ["--render", "--results", str(ROOT / "benchmarks/results/serving_bench.json"), "--markdown", str(md)])),
    ("load-test", lambda md: load_test.main(
        ["--render", "--results", str(ROOT / "benchmarks/results/load_test.json"), "--markdown", str(md)])),
])
def test_each_block_re_renders_from_its_stored_results_as_benchmarks_md_holds_it(tmp_path, name, render):
    markdown = tmp_path / "BENCHMARKS.md"
    shutil.copy(ROOT / "BENCHMARKS.md", markdown)
    assert render(markdown) == 0
    assert read_block(markdown.read_text(), name) == read_block((ROOT / "BENCHMARKS.md").read_text(), name)


def test_no_block_prints_a_path_outside_the_checkout_and_every_link_resolves():
    text = (ROOT / "BENCHMARKS.md").read_text()
    for block in re.findall(r"<!-- ([\w-]+):start -->", text):
        body = read_block(text, block)
        assert not re.search(r"(^|[\s`=(])(/work|/tmp|/home|\.\./)", body), f"{block}: a workspace path"
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        assert (ROOT / target).exists(), f"BENCHMARKS.md links {target}, which does not exist"
