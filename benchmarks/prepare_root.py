"""Prepare the project root a quality benchmark runs on: a fresh git + DVC copy of this project with its
params changed as ``unigrec run`` changes them (``--experiment`` overlays, ``--data-path``, ``--set``), and
its data stages run through DVC (``unigrec.pipeline.reproduce_stage``).

Why: ``quality.py`` takes a prepared root, and a spec names its root by the overlays that made it. This
makes that root in one command (each spec's header gives it); a misspelt key removes the copy and stops.

    python benchmarks/prepare_root.py ROOT --experiment ml1m --until identifiers     # "ml1m-seeds"
    python benchmarks/prepare_root.py ROOT --experiment ml1m-1pct-searches --data-path ../shared/data/ml-1m

The copy starts with empty caches (no link to this checkout's ``.cache``), so training in the root never
writes into the checkout. Paths are resolved where the command is given.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package, when run as a script

from benchmarks.project_copy import add_override_args, commit, configure, copy_project
from unigrec.logs import setup_logging
from unigrec.pipeline import pipeline_stages, reproduce_stage

DEFAULT_UNTIL = "split"  # what every quality row needs; rows on the root's semantic IDs also need identifiers


def main(argv: list[str] | None = None) -> int:
    stages = pipeline_stages(ROOT)  # the copy's dvc.yaml is this checkout's
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dest", help="the root to create (must not exist)")
    add_override_args(p)
    p.add_argument("--until", default=DEFAULT_UNTIL, choices=stages, help=f"last stage (default: {DEFAULT_UNTIL})")
    args = p.parse_args(argv)
    setup_logging()
    dest = Path(args.dest).resolve()
    if dest.exists():
        raise SystemExit(f"{dest} exists: remove it or name another root")
    copy_project(dest, share_cache=False)
    try:  # a typo fails here; the half-made copy goes with it, so the same command can be rerun
        overrides = configure(dest, args)
    except SystemExit:
        shutil.rmtree(dest)
        raise
    commit(dest, "benchmark root: " + (" ".join(overrides) or "default params"))
    for stage in stages[: stages.index(args.until) + 1]:
        try:
            reproduce_stage(stage, dest)
        except Exception as err:
            raise SystemExit(f"stage {stage} failed in {dest}: {err}\nFix it and run `dvc repro {args.until}` "
                             f"there, or remove {dest} and start again") from err
    print(f"{dest} is ready up to {args.until}: pass it as --root to benchmarks/quality.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
