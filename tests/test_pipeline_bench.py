"""The pipeline benchmark names the CPU it ran on, and still renders runs recorded before it did."""

from __future__ import annotations

from typing import Any

from benchmarks.pipeline_bench import machine, render


def _run(machine_record: dict[str, Any]) -> dict[str, Any]:
    return {
        "machine": machine_record,
        "command": "python benchmarks/pipeline_bench.py",
        "date": "2026-12-01",
        "overrides": [],
        "stages": {"ingest": {"wall_s": 1.0, "cpu_s": 0.5, "peak_rss_mb": 100}},
    }


def test_machine_record_names_the_cpu_model():
    record = machine()
    assert isinstance(record["cpu"], str) and record["cpu"]


def test_render_puts_the_cpu_model_beside_the_core_count():
    record = {"cpus": 2, "cpu": "Example CPU, AVX-512", "platform": "Linux", "python": "3.11.7",
              "torch": "2.13.0", "memory_gb": 24.0}
    assert "Machine: 2 CPUs (Example CPU, AVX-512), 24.0 GB RAM" in render({"ml-100k": _run(record)})


def test_render_accepts_a_run_recorded_without_the_cpu_model():
    record = {"cpus": 2, "platform": "Linux", "python": "3.11.7", "torch": "2.13.0", "memory_gb": 24.0}
    assert "Machine: 2 CPUs, 24.0 GB RAM" in render({"ml-100k": _run(record)})
