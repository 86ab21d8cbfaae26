"""``unigrec`` command line: run a pipeline stage, validate data drops, run the whole pipeline."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from unigrec import __version__

log = logging.getLogger("unigrec")


def _cmd_stage(args: argparse.Namespace) -> int:
    from unigrec.config import load_section
    from unigrec.paths import Layout
    from unigrec.stages import stage_runner

    run, section = stage_runner(args.name)
    cfg = load_section(section, Path(args.root) / args.params)
    started = time.perf_counter()
    log.info("stage %s: starting", args.name)
    summary = run(cfg, Layout(Path(args.root)))
    log.info("stage %s: done in %.1fs", args.name, time.perf_counter() - started)
    if summary:
        print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from unigrec.config import load_section
    from unigrec.contracts.runner import validate_paths

    import dataclasses

    cfg = load_section("validate", Path(args.root) / args.params)
    # contracts_dir in params.yaml is relative to the project root, wherever the command runs from.
    cfg = dataclasses.replace(cfg, contracts_dir=str(Path(args.root) / cfg.contracts_dir))
    report = validate_paths([Path(p) for p in args.paths], cfg, report_dir=Path(args.report_dir) if args.report_dir else None)
    print(report.to_markdown())
    return 0 if report.success else 1


def _cmd_outputs(args: argparse.Namespace) -> int:
    from unigrec.paths import Layout

    layout = Layout(Path(args.root))
    print("unigrec outputs (relative to the project root):")
    for name in sorted(n for n, v in vars(type(layout)).items() if isinstance(v, property)):
        path = getattr(layout, name)
        mark = "ok " if path.exists() else "-- "
        print(f"  {mark}{name:<24} {path}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    # The Prefect flow lives in flows/ at the project root, beside dvc.yaml.
    sys.path.insert(0, str(Path(args.root).resolve()))
    from flows.training_pipeline import training_pipeline

    outcomes = training_pipeline(root=args.root, stages=args.stages or None)
    for outcome in outcomes:
        print(f"{outcome.stage:<12} {'ran' if outcome.ran else 'cached'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from unigrec.stages import STAGES

    parser = argparse.ArgumentParser(
        prog="unigrec",
        description=(
            "unigrec: one generative model for recommendation and search retrieval and ranking.\n"
            "Pipeline: " + " -> ".join(STAGES) + " (run them all with `dvc repro`)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"unigrec {__version__}")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", default=".", help="project root holding params.yaml and data/ (default: .)")
    common.add_argument("--params", default="params.yaml", help="params file relative to --root")

    p_stage = sub.add_parser(
        "stage",
        parents=[common],
        help="run one pipeline stage (what dvc.yaml calls)",
        description="Run one pipeline stage with the knobs of its params.yaml section.",
    )
    p_stage.add_argument("name", choices=list(STAGES), help="stage to run")
    p_stage.set_defaults(func=_cmd_stage)

    p_val = sub.add_parser(
        "validate",
        parents=[common],
        help="check parquet tables against the data contracts (for CI and new data drops)",
        description=(
            "Validate canonical tables (items, interactions, searches) against the pandera schemas and\n"
            "Great Expectations suites in data_contracts/. PATH is a folder holding items.parquet,\n"
            "interactions.parquet and searches.parquet, or the parquet files themselves.\n"
            "Exit status 1 on any violation, with every failed rule listed."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_val.add_argument("paths", nargs="+", metavar="PATH")
    p_val.add_argument("--report-dir", default=None, help="also write validation.json/.md here")
    p_val.set_defaults(func=_cmd_validate)

    p_out = sub.add_parser("outputs", parents=[common], help="list where every pipeline output lives")
    p_out.set_defaults(func=_cmd_outputs)

    p_run = sub.add_parser(
        "run",
        parents=[common],
        help="run the pipeline as a local Prefect flow (each stage through DVC's cache)",
    )
    p_run.add_argument("--stages", nargs="*", choices=list(STAGES), help="only these stages, in order")
    p_run.set_defaults(func=_cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from unigrec.logs import setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one readable line for known failures; traceback only at DEBUG
        from unigrec.errors import UnigrecError

        if isinstance(exc, UnigrecError):
            log.error("%s", exc)
            log.debug("details", exc_info=True)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
