"""The precision benchmark compares each precision with fp32 at the same width, keeps one entry per machine,
and its bf16 step trains."""

from __future__ import annotations

import json
import shlex

import pytest
import torch

from benchmarks import precision_bench, timing
from benchmarks.precision_bench import load_runs, merge, render


def _row(width: int, precision: str, rate: float) -> dict:
    return {"d_model": width, "d_ff": 4 * width, "n_heads": 2, "precision": precision, "parameters": 1000,
            "sequences_per_s": rate}


def _run(cpu: str, rows: list[dict]) -> dict:
    return {
        "machine": {"cpus": 2, "cpu": cpu, "platform": "linux", "python": "3.11", "torch": "2.13.0",
                    "torch_threads": 2},
        "date": "2026-12-03", "command": "python benchmarks/precision_bench.py --steps 5",
        "data": {"train_sequences": 10, "max_events": 100, "batch_size": 32, "item_representation": "atomic"},
        "steps": 5, "rows": rows,
    }


def test_render_gives_each_speed_up_against_fp32_at_its_own_width():
    run = _run("test CPU", [_row(64, "32-true", 100.0), _row(64, "bf16-mixed", 150.0),
                                     _row(128, "bf16-mixed", 80.0)])
    table = [line for line in render([run]).splitlines() if line.startswith("| ")]
    assert table[1].endswith("| 32-true | 100.0 | 1.00x |")
    assert table[2].endswith("| bf16-mixed | 150.0 | 1.50x |")
    assert table[3].endswith("| bf16-mixed | 80.0 | – |")  # no fp32 run at 128 to compare with


def test_render_compares_each_softmax_with_fp32_under_the_same_softmax():
    rows = [_row(128, "32-true", 50.0), {**_row(128, "32-true", 20.0), "softmax": "sampled-gathered"},
            {**_row(128, "bf16-mixed", 40.0), "softmax": "sampled-gathered"}]
    table = [line for line in render([_run("AMD", rows)]).splitlines() if line.startswith("| ")]
    assert table[1].endswith("| full | 32-true | 50.0 | 1.00x |")  # a row from before the option: full
    assert table[3].endswith("| sampled-gathered | bf16-mixed | 40.0 | 2.00x |")


def test_the_softmax_arms_select_what_they_say(tmp_path):
    from benchmarks.project_copy import write_overrides
    from unigrec.config import load_section

    seen = {}
    for name, overrides in precision_bench.SOFTMAXES.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "params.yaml").write_text((precision_bench.ROOT / "params.yaml").read_text())
        write_overrides(folder, overrides)
        seen[name] = load_section("train", folder / "params.yaml").retrieval_loss
    assert seen["full"].softmax == "full"
    assert seen["sampled-gathered"].product_columns == 0 and seen["sampled-gathered"].softmax == "sampled"
    assert seen["sampled-product"].product_columns >= 10**6 and seen["sampled-product"].draw == "position"


def test_a_run_replaces_only_its_own_machines_entry_and_the_block_shows_every_machine():
    amd = _run("AMD", [_row(64, "32-true", 100.0), _row(64, "bf16-mixed", 160.0)])
    intel = _run("Intel", [_row(64, "32-true", 90.0), _row(64, "bf16-mixed", 99.0)])
    amd_again = _run("AMD", [_row(64, "32-true", 110.0), _row(64, "bf16-mixed", 132.0)])
    runs = merge(merge(merge([], amd), intel), amd_again)
    assert [r["machine"]["cpu"] for r in runs] == ["AMD", "Intel"]  # first-measured order
    assert runs[0] is amd_again and runs[1] is intel
    block = render(runs)
    assert "| bf16-mixed | 132.0 | 1.20x |" in block and "| bf16-mixed | 99.0 | 1.10x |" in block
    assert "| 160.0 |" not in block  # the replaced run is gone
    commands = [line for line in block.splitlines() if "`python benchmarks/precision_bench.py" in line]
    assert len(commands) == 2 and commands[0].split(",")[0] != commands[1].split(",")[0]  # one id per machine


def test_the_results_file_holds_one_entry_per_machine(tmp_path):
    run = _run("AMD", [_row(64, "32-true", 100.0)])
    path = tmp_path / "precision_bench.json"
    path.write_text(json.dumps({"runs": [run, run]}))
    assert load_runs(path) == [run, run]
    assert load_runs(tmp_path / "absent.json") == []


def test_render_flag_rewrites_the_block_from_the_results_file_without_measuring(tmp_path, monkeypatch):
    results, markdown = tmp_path / "precision.json", tmp_path / "BENCHMARKS.md"
    results.write_text(json.dumps({"runs": [_run("AMD", [_row(64, "32-true", 100.0)])]}))
    markdown.write_text("# benchmarks\n\n<!-- precision:start -->\nold\n<!-- precision:end -->\n\ntail\n")
    monkeypatch.setattr(precision_bench, "measure", lambda *a: pytest.fail("--render must not measure"))
    assert precision_bench.main(["--render", "--results", str(results), "--markdown", str(markdown)]) == 0
    text = markdown.read_text()
    assert "old" not in text and "| 32-true | 100.0 | 1.00x |" in text and text.endswith("tail\n")


def test_the_bf16_step_runs_the_forward_in_bf16_and_keeps_fp32_weights(monkeypatch):
    seen = {}

    class Net(torch.nn.Linear):
        def forward(self, x):
            out = super().forward(x)
            seen["dtype"] = out.dtype
            return out

    def l2_loss(net, batch, spec):
        return {"l2": net(batch).float().pow(2).mean()}

    monkeypatch.setattr(timing, "sequence_losses", l2_loss)
    net = Net(4, 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = net.weight.detach().clone()
    timing._train_step(net, torch.randn(5, 4), None, opt, autocast_dtype=torch.bfloat16)
    assert seen["dtype"] == torch.bfloat16 and net.weight.dtype == torch.float32
    assert not torch.equal(net.weight, before)  # the step did update the weights
    timing._train_step(net, torch.randn(5, 4), None, opt)
    assert seen["dtype"] == torch.float32


def test_a_run_records_a_pasteable_command_and_replaces_its_machines_last_entry(tmp_path, monkeypatch):
    results, markdown = tmp_path / "precision.json", tmp_path / "BENCHMARKS.md"
    rates = iter([100.0, 120.0])
    monkeypatch.setattr(precision_bench, "measure", lambda *a: ([_row(64, "32-true", next(rates))], {
        "train_sequences": 10, "max_events": 100, "batch_size": 32, "item_representation": "atomic"}))
    args = ["--root", str(tmp_path / "run_d_model_128_(bf16)-12"), "--widths", "64", "--results", str(results),
            "--markdown", str(markdown)]
    for _ in range(2):
        assert precision_bench.main(args) == 0
    runs = json.loads(results.read_text())["runs"]
    assert len(runs) == 1 and runs[0]["rows"][0]["sequences_per_s"] == 120.0  # same machine: replaced
    # "()" survive a shell; a run under `nice` says so first
    assert shlex.split(runs[0]["command"])[-len(args) - 2:] == ["python", "benchmarks/precision_bench.py", *args]
