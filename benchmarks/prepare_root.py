"""Prepare the project root a quality benchmark runs on: a fresh git + DVC copy of this project with
params.yaml overrides, and its data stages run through DVC.

Why: ``seeds.py`` and ``compare.py`` take a prepared root, and a block names its root by the overrides
that made it (ML-1M; ML-1M with 1% searches). This makes that root in one command, with the overrides
written by DVC's own writer (a misspelt key removes the copy and stops), instead of a hand-edited params
file.

    # the root of the "ml1m-protocol" block (ML-1M, 1% of positives recast as searches)
    python benchmarks/prepare_root.py /work/ml1m_p --set ingest.source=movielens-1m \\
        --set ingest.path=../shared/data/ml-1m --set ingest.queries.search_fraction=0.01
    # the root of the "ml1m-seeds" block; its semantic-ID rows need the identifiers stage too
    python benchmarks/prepare_root.py /work/ml1m --set ingest.source=movielens-1m \\
        --set ingest.path=../shared/data/ml-1m --until identifiers

The copy starts with empty caches (no link to this checkout's ``.cache``), so training in the root never
writes into the checkout. ``ingest.path`` is resolved where the command is given.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package, when run as a script

from benchmarks.params_override import write_param_overrides
from benchmarks.project_copy import commit, copy_project
from unigrec.logs import setup_logging
from unigrec.pipeline import pipeline_stages, reproduce_stage

DEFAULT_UNTIL = "split"  # what every row of seeds.py needs; semantic-ID rows also need identifiers


def parse_args(argv: list[str] | None, stages: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dest", help="the root to create (must not exist)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="params.yaml override, dotted key, YAML value (e.g. ingest.source=movielens-1m)")
    p.add_argument("--until", default=DEFAULT_UNTIL, choices=stages,
                   help=f"last stage to run (default: {DEFAULT_UNTIL})")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    stages = pipeline_stages(ROOT)  # the copy's dvc.yaml is this checkout's
    args = parse_args(argv, stages)
    setup_logging()
    dest = Path(args.dest).resolve()
    if dest.exists():
        raise SystemExit(f"{dest} exists: remove it or name another root")
    copy_project(dest, share_cache=False)
    try:  # a typo fails here; the half-made copy goes with it, so the same command can be rerun
        overrides = write_param_overrides(dest, args.overrides)
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
    print(f"{dest} is ready up to {args.until}: pass it as --root to benchmarks/seeds.py or compare.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
