"""What every benchmark records about its run: the command that reproduces it, which has to paste back into
a shell and prints without workspace paths, and the machine, which has to read the same in every block, old
records included, and is named by its id in BENCHMARKS.md's machines table."""

from __future__ import annotations

import re
import shlex

from benchmarks import host
from benchmarks.host import command_line, machine, machine_id, machine_line, portable

# a quality.py row label and run dir as they really look: spaces, commas and parentheses
ARGS = ["--root", "/runs/ml1m-protocol-unigrec,_d_model_128_(bf16)-12", "--rows", "unigrec, d_model 128 (bf16)"]


def test_the_command_splits_back_into_the_arguments_it_was_given(monkeypatch):
    monkeypatch.setattr(host.os, "nice", lambda increment: 0)
    command = command_line("benchmarks/quality.py", ARGS)
    assert shlex.split(command) == ["python", "benchmarks/quality.py", *ARGS]


def test_a_deprioritised_run_says_so_in_its_command(monkeypatch):
    monkeypatch.setattr(host.os, "nice", lambda increment: 10)
    command = command_line("benchmarks/scale_bench.py", ["--sizes", "1000"])
    assert shlex.split(command) == ["nice", "-n", "10", "python", "benchmarks/scale_bench.py", "--sizes", "1000"]


def test_a_fresh_record_reads_as_cores_cpu_memory_and_torch_threads():
    line = machine_line(machine())
    assert line.split(" CPUs (")[0].isdigit() and " GB RAM, " in line and " threads)" in line


def test_records_kept_before_the_shared_record_read_the_same_way():
    new = {"cpus": 2, "cpu": "AMD EPYC", "memory_gb": 23.5, "python": "3.11.7", "torch": "2.13.0", "torch_threads": 2}
    old = {"nproc": 2, "cpu": "AMD EPYC", "ram_gb": 23.5, "python": "3.11.7", "torch": "2.13.0", "torch_threads": 2}
    assert machine_line(old) == machine_line(new) == "2 CPUs (AMD EPYC), 23.5 GB RAM, Python 3.11.7, torch 2.13.0 (2 threads)"


def test_a_record_without_cpu_model_or_torch_leaves_those_parts_out():
    assert machine_line({"cpus": 2, "platform": "Linux", "python": "3.11.7"}) == "2 CPUs, Linux, Python 3.11.7"


def test_the_quality_blocks_machine_identity_keeps_its_old_form():
    """Stored quality records are matched against this string, so it must not gain the memory field."""
    from benchmarks.quality import hardware

    # the form seeds records hold: "2 CPUs (AMD EPYC, AVX-512 BF16), Linux-..., Python 3.11.7, torch 2.13.0+cpu (2 threads)"
    assert re.fullmatch(r"\d+ CPUs \(.+\), [^,]+, Python [\d.]+, torch \S+ \(\d+ threads\)", hardware())
    assert " GB RAM" not in hardware()


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
    data = "python benchmarks/pipeline_bench.py --label x --data-path ../shared/data/ml-1m --set ingest.path=/d/ml-1m"
    assert portable(data) == "python benchmarks/pipeline_bench.py --label x --data-path DATA_PATH --set ingest.path=DIR"


def test_cpu_model_is_read_from_cpuinfo_with_its_most_notable_unit(monkeypatch):
    """The CPU line of a record names the model and its best matmul unit (what makes bf16 fast or not):
    read from /proc/cpuinfo's first processor, not guessed."""
    cpuinfo = (
        "processor\t: 0\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n"
        "flags\t\t: fpu sse avx2 avx512f avx512_bf16\n\n"
        "processor\t: 1\nmodel name\t: Something Else\nflags\t\t: fpu\n"
    )

    class FakePath:
        def __init__(self, path):
            assert str(path) == "/proc/cpuinfo"

        def read_text(self):
            return cpuinfo

    monkeypatch.setattr(host, "Path", FakePath)
    assert host.cpu_model() == "AMD EPYC 9R14 96-Core Processor, AVX-512 BF16"
    cpuinfo = "model name\t: Intel Xeon\nflags\t\t: avx2\n"
    assert host.cpu_model() == "Intel Xeon, AVX2"
