"""benchmarks.timing.interleaved_latency: every prepared input is timed once, the arms' calls share the same
rounds (in blocks), and each arm's figures count its own calls and requests."""

from __future__ import annotations

from benchmarks.timing import Arm, interleaved_latency


def test_arms_are_interleaved_in_blocks_and_every_input_is_timed_once():
    calls: list[tuple[str, int]] = []

    def arm(name: str, n: int, size: int, block: int) -> Arm:
        return Arm(lambda i, name=name: calls.append((name, i)), list(range(n)), size, block)

    out = interleaved_latency({"small": arm("small", 8, 1, 4), "large": arm("large", 2, 64, 1)})
    warm_up, timed = calls[:2], calls[2:]
    assert warm_up == [("small", 0), ("large", 0)]
    # two rounds: four small calls in a row, then one large one, twice; no call left out or repeated
    assert timed == [*[("small", i) for i in range(4)], ("large", 0), *[("small", i) for i in range(4, 8)], ("large", 1)]
    assert out["small"]["batches"] == 8 and out["large"]["batches"] == 2
    assert out["large"]["requests_per_s"] > out["small"]["requests_per_s"] > 0  # 64 requests a call against 1
