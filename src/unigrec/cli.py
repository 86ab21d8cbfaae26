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


def _flows_checkout(root: Path) -> Path:
    """Put the checkout holding ``flows/`` on sys.path and return it.

    flows/ is not part of the installed package: it sits in the checkout beside dvc.yaml. Look in
    --root first, then in the checkout this package is installed from (an editable install).
    """
    from unigrec.errors import UnigrecError

    for base in (Path(root).resolve(), Path(__file__).resolve().parents[2]):
        if (base / "flows" / "training_pipeline.py").exists():
            sys.path.insert(0, str(base))
            return base
    raise UnigrecError(f"no flows/ folder in {Path(root).resolve()} nor in the unigrec checkout")


def _cmd_run(args: argparse.Namespace) -> int:
    _flows_checkout(Path(args.root))
    from flows.training_pipeline import training_pipeline

    result = training_pipeline(
        root=args.root,
        source=args.source,
        data_path=args.data_path,
        overrides=args.set or None,
        experiment_name=args.exp_name,
        stages=args.stages or None,
    )
    for outcome in result.outcomes:
        print(f"{outcome.stage:<12} {'ran' if outcome.ran else 'cached'}")
    if result.experiment:
        print(f"DVC experiment {result.experiment} (compare runs with `dvc exp show`)")
    return 0


def _cmd_deploy(args: argparse.Namespace) -> int:
    from unigrec.config import load_section

    root = Path(args.root).resolve()
    checkout = _flows_checkout(root)
    from flows.deploy import deploy_all

    # The flows get the project as a path relative to the checkout the worker runs in, when it is one.
    workspace = args.workspace or ("." if root == checkout else str(root))
    cfg = load_section("orchestration", root / args.params)
    for name, deployment_id in deploy_all(checkout, cfg, workspace=workspace).items():
        print(f"{name}: {deployment_id}")
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
        description=(
            "Run the training-pipeline flow here: every dvc.yaml stage as a Prefect task, DVC deciding\n"
            "what runs. With --set/--source/--data-path the run is a DVC experiment (`dvc exp show`).\n"
            "A second run waits for the first (orchestration.lock_timeout_s). Without PREFECT_API_URL,\n"
            "Prefect starts a temporary local server for the run."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_run.add_argument("--stages", nargs="*", help="only these dvc.yaml stages, in order")
    p_run.add_argument(
        "--set", "-S", action="append", metavar="KEY=VALUE", help="params override, as `dvc exp run -S` (repeatable)"
    )
    p_run.add_argument("--source", default=None, help="dataset source (ingest.source) for this run")
    p_run.add_argument("--data-path", default=None, help="dataset folder (ingest.path) for this run")
    p_run.add_argument("--exp-name", default=None, help="name of the DVC experiment an overrides run records")
    p_run.set_defaults(func=_cmd_run)

    p_dep = sub.add_parser(
        "deploy",
        parents=[common],
        help="create/update the scheduled Prefect deployments (needs PREFECT_API_URL)",
        description=(
            "Create the process work pool (orchestration.work_pool) if missing and create or update the\n"
            "nightly retraining and data-contract deployments with their cron schedules, on the Prefect\n"
            "server at PREFECT_API_URL. Then run a worker: prefect worker start --pool POOL"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_dep.add_argument(
        "--workspace", default=None, help="the flows' root parameter (default: --root as seen from the checkout)"
    )
    p_dep.set_defaults(func=_cmd_deploy)
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
