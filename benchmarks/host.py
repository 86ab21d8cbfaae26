"""What machine a benchmark ran on and the command it ran, in the words its results and blocks keep.

"2 CPUs" alone does not tell two cloud boxes apart: one may be twice the other per core, or have bf16
matrix units. Virtual machines often report a generic model name ("Intel(R) Xeon(R) Processor"), so the
widest vector and matrix units the kernel lists go beside it. A block names a machine by its id in
BENCHMARKS.md's machines table (described once there) and prints its command without paths that name one
workspace.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# /proc/cpuinfo flag -> how results name it, widest last: the units that set a CPU's matmul peak
NOTABLE_UNITS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX-512 BF16", "amx_bf16": "AMX-BF16"}
KERNEL_TAG = re.compile(r"-fc-(v\d+(?:-gpu)?)-")  # the build tag of the cloud boxes measured so far
OUTPUT_OPTIONS = ("--results", "--markdown", "--results-dir", "--work")  # where a run wrote, not what it measured


def cpu_model() -> str:
    """The CPU's name and notable units from /proc/cpuinfo (Linux), else whatever ``platform`` knows."""
    name, flags = "", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not name:
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    units = [label for flag, label in NOTABLE_UNITS.items() if flag in flags]
    return f"{name}, {units[-1]}" if units else name


def machine() -> dict[str, Any]:
    """What a benchmark's timings depend on, kept with its results: cores, CPU and its units, memory,
    and the software whose kernels did the work (torch and its thread count)."""
    import torch

    return {
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def machine_line(m: Mapping[str, Any]) -> str:
    """A recorded machine in one line, for a results block.

    Reads records kept before :func:`machine` was shared too: they spell cores and memory ``nproc`` and
    ``ram_gb``, and the oldest lack the CPU model or torch, so each part is written only when recorded."""
    cpus = m.get("cpus", m.get("nproc"))
    parts = [f"{cpus} CPUs" + (f" ({m['cpu']})" if m.get("cpu") else "")] if cpus is not None else []
    memory = m.get("memory_gb", m.get("ram_gb"))
    parts += [f"{memory} GB RAM"] if memory is not None else []
    parts += [m["platform"]] if "platform" in m else []
    parts += [f"Python {m['python']}"] if "python" in m else []
    if "torch" in m:
        threads = f" ({m['torch_threads']} threads)" if "torch_threads" in m else ""
        parts.append(f"torch {m['torch']}{threads}")
    return ", ".join(parts)


def command_line(script: str, argv: Sequence[str]) -> str:
    """The command a benchmark's results print, written so that it pastes back into a shell.

    Shell-quoted because run directories and row labels hold spaces, commas and parentheses, which a plain
    ``" ".join`` turned into a command that did not run. Prefixed with ``nice -n N`` when this process was
    deprioritised, because a timing taken under ``nice`` means something else."""
    niceness = os.nice(0)
    return f"{f'nice -n {niceness} ' if niceness else ''}python {shlex.join([script, *argv])}"


def machine_id(m: Mapping[str, Any]) -> str:
    """The id of a recorded machine: ``id`` where the record names one (old records without a platform),
    else the kernel build tag (cloud boxes whose CPU model reads the same differ by it), else a short hash
    of the CPU and platform."""
    found = KERNEL_TAG.search(m.get("platform", ""))
    if m.get("id") or found:
        return m.get("id") or found.group(1)
    return "m-" + hashlib.sha1(f"{m.get('cpu')}|{m.get('platform')}".encode()).hexdigest()[:6]


def portable(command: str) -> str:
    """``command`` as a block prints it: output options dropped, a path outside the checkout (absolute, or
    up from it) named by its option (``--root /x/y`` -> ``--root ROOT``), ``KEY=DIR`` or ``PATH``."""
    out: list[str] = []
    for word in shlex.split(command):
        key, eq, value = word.partition("=")
        if out and out[-1] in OUTPUT_OPTIONS:
            out.pop()
        elif word.startswith(("/", "../")):
            out.append(out[-1].lstrip("-").upper().replace("-", "_") if out and out[-1].startswith("--") else "PATH")
        else:
            out.append(f"{key}=DIR" if eq and value.startswith(("/", "../")) else word)
    return shlex.join(out)


def add_block_arguments(parser: Any, results: str, markdown: str = "BENCHMARKS.md") -> None:
    """The three options every benchmark script takes: where its results JSON lives, the Markdown file its
    block is written into, and ``--render`` (re-write the block from the stored results, measure nothing)."""
    parser.add_argument("--results", default=results, help="results JSON (measurements kept for --render)")
    parser.add_argument("--markdown", default=markdown, help="Markdown file holding the block")
    parser.add_argument("--render", action="store_true", help="only re-write the block from the results file")
