"""The pipeline benchmark names its machine by id and prints no path outside the checkout, and its block
re-renders from the stored results as BENCHMARKS.md holds it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from benchmarks import pipeline_bench
from benchmarks.pipeline_bench import machine, render

ROOT = Path(__file__).resolve().parents[2]


def _run(machine_record: dict[str, Any]) -> dict[str, Any]:
    return {
        "machine": machine_record,
        "commands": [("python benchmarks/pipeline_bench.py --label x --work /work/runs/x --experiment ml1m "
                     "--data-path ../shared/data/ml-1m --until train (stopped: out of time)")],
        "date": "2026-12-01",
        "overrides": ["--experiment ml1m", "--data-path ../shared/data/ml-1m",
                      "evaluate.baselines=[popularity] (edited into /work/runs/x/params.yaml)"],
        "stages": {"ingest": {"wall_s": 1.0, "cpu_s": 0.5, "peak_rss_mb": 100}},
    }


def test_machine_record_names_the_cpu_model():
    record = machine()
    assert isinstance(record["cpu"], str) and record["cpu"]


def test_render_names_the_machine_by_id_and_no_path_outside_the_checkout():
    record = {"cpus": 2, "cpu": "Example CPU", "platform": "Linux-6.18.44-fc-v782-x86_64-with-glibc2.36"}
    text = render({"ml-100k": _run(record)})
    words = " ".join(text.split())  # the runs list is wrapped
    assert "(v782, 2026-12-01)" in text and "| ingest | 1.0 s (CPU 0.5), 100 MB |" in text
    assert "--experiment ml1m --data-path DATA_PATH --until train`" in words, "no --work, no remark, no path"
    assert "besides: evaluate.baselines=[popularity] (edited into DIR)" in words, "only what the command lacks"
    assert "/work" not in text and "../shared" not in text and "stopped" not in text


def test_the_block_re_renders_from_its_stored_results_as_benchmarks_md_holds_it(tmp_path, monkeypatch):
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text((ROOT / "BENCHMARKS.md").read_text())
    monkeypatch.setattr(pipeline_bench, "BENCHMARKS_MD", markdown)
    assert pipeline_bench.main(["--render"]) == 0
    block = re.compile(r"<!-- pipeline-bench:start -->.*?<!-- pipeline-bench:end -->", re.DOTALL)
    assert block.search(markdown.read_text()).group(0) == block.search((ROOT / "BENCHMARKS.md").read_text()).group(0)
