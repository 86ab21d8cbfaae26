"""The precision benchmark compares each precision with fp32 at the same width, and its bf16 step trains."""

from __future__ import annotations

import torch

from benchmarks import train_bench
from benchmarks.precision_bench import render


def _row(width: int, precision: str, rate: float) -> dict:
    return {"d_model": width, "d_ff": 4 * width, "n_heads": 2, "precision": precision, "parameters": 1000,
            "sequences_per_s": rate}


def test_render_gives_each_speed_up_against_fp32_at_its_own_width():
    result = {
        "machine": {"cpu": "2 CPUs (test CPU)", "platform": "linux", "python": "3.11", "torch": "2.13.0",
                    "torch_threads": 2},
        "data": {"train_sequences": 10, "max_events": 100, "batch_size": 32, "item_representation": "atomic"},
        "steps": 5,
        "rows": [_row(64, "32-true", 100.0), _row(64, "bf16-mixed", 150.0), _row(128, "bf16-mixed", 80.0)],
    }
    table = [line for line in render(result, "benchmarks/precision_bench.py").splitlines() if line.startswith("| ")]
    assert table[1].endswith("| 32-true | 100.0 | 1.00x |")
    assert table[2].endswith("| bf16-mixed | 150.0 | 1.50x |")
    assert table[3].endswith("| bf16-mixed | 80.0 | – |")  # no fp32 run at 128 to compare with


def test_the_bf16_step_runs_the_forward_in_bf16_and_keeps_fp32_weights(monkeypatch):
    seen = {}

    class Net(torch.nn.Linear):
        def forward(self, x):
            out = super().forward(x)
            seen["dtype"] = out.dtype
            return out

    def l2_loss(net, batch, spec):
        return {"l2": net(batch).float().pow(2).mean()}

    monkeypatch.setattr(train_bench, "sequence_losses", l2_loss)
    net = Net(4, 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = net.weight.detach().clone()
    train_bench._train_step(net, torch.randn(5, 4), None, opt, autocast_dtype=torch.bfloat16)
    assert seen["dtype"] == torch.bfloat16 and net.weight.dtype == torch.float32
    assert not torch.equal(net.weight, before)  # the step did update the weights
    train_bench._train_step(net, torch.randn(5, 4), None, opt)
    assert seen["dtype"] == torch.float32
