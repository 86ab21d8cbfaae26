"""The pipeline benchmark names its machine by id and prints no workspace path, and its block re-renders
from the stored results as BENCHMARKS.md holds it."""

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
        "command": "python benchmarks/pipeline_bench.py --label x --work /work/runs/x --data-path /data/ml-100k",
        "date": "2026-12-01",
        "overrides": ["ingest.path=/work/shared/data/ml-100k", "--experiment ml1m"],
        "stages": {"ingest": {"wall_s": 1.0, "cpu_s": 0.5, "peak_rss_mb": 100}},
    }


def test_machine_record_names_the_cpu_model():
    record = machine()
    assert isinstance(record["cpu"], str) and record["cpu"]


def test_render_names_the_machine_by_id_and_no_workspace_path():
    record = {"cpus": 2, "cpu": "Example CPU", "platform": "Linux-6.18.44-fc-v782-x86_64-with-glibc2.36"}
    text = render({"ml-100k": _run(record)})
    assert "machine v782, load average" in text and "| ingest | 1.0 s (CPU 0.5), 100 MB |" in text
    assert "--work DIR --data-path DIR" in text and "`ingest.path=DIR`, `--experiment ml1m`" in text
    assert "/work" not in text and "/data" not in text


def test_the_block_re_renders_from_its_stored_results_as_benchmarks_md_holds_it(tmp_path, monkeypatch):
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text((ROOT / "BENCHMARKS.md").read_text())
    monkeypatch.setattr(pipeline_bench, "BENCHMARKS_MD", markdown)
    assert pipeline_bench.main(["--render"]) == 0
    block = re.compile(r"<!-- pipeline-bench:start -->.*?<!-- pipeline-bench:end -->", re.DOTALL)
    assert block.search(markdown.read_text()).group(0) == block.search((ROOT / "BENCHMARKS.md").read_text()).group(0)
