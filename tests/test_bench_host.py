"""A benchmark prints the command that reproduces it; that command has to paste back into a shell."""

from __future__ import annotations

import shlex

from benchmarks import host
from benchmarks.host import command_line

# a seeds.py row label and run dir as they really look: spaces, commas and parentheses
ARGS = ["--root", "/runs/ml1m-protocol-unigrec,_d_model_128_(bf16)-12", "--rows", "unigrec, d_model 128 (bf16)"]


def test_the_command_splits_back_into_the_arguments_it_was_given(monkeypatch):
    monkeypatch.setattr(host.os, "nice", lambda increment: 0)
    command = command_line("benchmarks/seeds.py", ARGS)
    assert shlex.split(command) == ["python", "benchmarks/seeds.py", *ARGS]


def test_a_deprioritised_run_says_so_in_its_command(monkeypatch):
    monkeypatch.setattr(host.os, "nice", lambda increment: 10)
    command = command_line("benchmarks/scale_bench.py", ["--sizes", "1000"])
    assert shlex.split(command) == ["nice", "-n", "10", "python", "benchmarks/scale_bench.py", "--sizes", "1000"]
