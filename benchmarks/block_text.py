"""How a results block names its machine and its command: by the machine's id in BENCHMARKS.md's machines
table (so a machine is described once, not in every block), and without absolute paths (they name one
workspace, not a command anyone can paste)."""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping
from typing import Any

KERNEL_TAG = re.compile(r"-fc-(v\d+(?:-gpu)?)-")  # the build tag of the cloud boxes measured so far
OUTPUT_OPTIONS = ("--results", "--markdown", "--results-dir", "--work")  # where a run wrote, not what it measured


def machine_id(m: Mapping[str, Any]) -> str:
    """The id of a recorded machine: ``id`` where the record names one (old records without a platform),
    else the kernel build tag (cloud boxes whose CPU model reads the same differ by it), else a short hash
    of the CPU and platform."""
    found = KERNEL_TAG.search(m.get("platform", ""))
    if m.get("id") or found:
        return m.get("id") or found.group(1)
    return "m-" + hashlib.sha1(f"{m.get('cpu')}|{m.get('platform')}".encode()).hexdigest()[:6]


def portable(command: str) -> str:
    """``command`` as a block prints it: output options dropped, an absolute path named by its option
    (``--root /x/y`` -> ``--root ROOT``) or ``PATH``."""
    out: list[str] = []
    for word in shlex.split(command):
        if out and out[-1] in OUTPUT_OPTIONS:
            out.pop()
        elif word.startswith("/"):
            out.append(out[-1].lstrip("-").upper().replace("-", "_") if out and out[-1].startswith("--") else "PATH")
        else:
            out.append(word)
    return shlex.join(out)
