"""One thin entry point per DVC stage: load the stage's params section, call the logic, write outputs.

Every stage module has ``run(cfg, layout, runtime)``: its own params section, where the project lives,
and params.yaml's ``runtime`` section (caches, batch sizes, threads, progress bars), which changes how a
stage runs but never what it writes (validate and split need none of it).

Stages are imported lazily by name so ``unigrec --help`` never pays for torch or Great Expectations.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# stage name -> (module, params section). Order is the pipeline order.
STAGES: dict[str, tuple[str, str]] = {
    "ingest": ("unigrec.stages.ingest", "ingest"),
    "validate": ("unigrec.stages.validate", "validate"),
    "split": ("unigrec.stages.split", "split"),
    "identifiers": ("unigrec.stages.identifiers", "identifiers"),
    "train": ("unigrec.stages.train", "train"),
    "evaluate": ("unigrec.stages.evaluate", "evaluate"),
    "register": ("unigrec.stages.register", "register"),
}


def stage_runner(name: str) -> tuple[Callable[..., dict[str, Any]], str]:
    """Return the stage's ``run(cfg, layout, runtime)`` function and the params section it reads."""
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    module_name, section = STAGES[name]
    module = importlib.import_module(module_name)
    return module.run, section
