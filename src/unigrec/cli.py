"""``unigrec`` command line: run a pipeline stage, validate data drops, run the whole pipeline."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
import typing
from pathlib import Path

from unigrec import __version__

log = logging.getLogger("unigrec")


def _cmd_stage(args: argparse.Namespace) -> int:
    from unigrec.config import load_section
    from unigrec.paths import Layout
    from unigrec.stages import stage_runner

    run, section = stage_runner(args.name)
    params = Path(args.root) / args.params
    cfg = load_section(section, params)
    runtime = load_section("runtime", params)
    started = time.perf_counter()
    log.info("stage %s: starting", args.name)
    summary = run(cfg, Layout(Path(args.root)), runtime)
    log.info("stage %s: done in %.1fs", args.name, time.perf_counter() - started)
    if summary:
        print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    import dataclasses

    from unigrec.config import load_section
    from unigrec.contracts.runner import validate_paths
    from unigrec.paths import Layout

    report_dir = Path(args.report_dir) if args.report_dir else None
    if report_dir is not None:
        _check_writable_dir(report_dir, "--report-dir")
    cfg = load_section("validate", Path(args.root) / args.params)
    cfg = dataclasses.replace(cfg, contracts_dir=str(Layout(Path(args.root)).resolve(cfg.contracts_dir)))
    report = validate_paths([Path(p) for p in args.paths], cfg, report_dir=report_dir)
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
    from unigrec.orchestration.experiments import (
        experiment_overrides,
        params_file_overrides,
        params_file_section,
    )

    # A bad params file or overlay fails here, in one line, before Prefect starts.
    params_file_overrides(Path(args.root), args.params)
    params_file_section(Path(args.root), args.params, "orchestration")
    experiment_overrides(Path(args.root), args.experiment or [])
    _flows_checkout(Path(args.root))
    from flows.training_pipeline import training_pipeline

    result = training_pipeline(
        root=args.root,
        source=args.source,
        data_path=args.data_path,
        overrides=args.set or None,
        experiment_name=args.exp_name,
        stages=args.stages or None,
        experiments=args.experiment or None,
        params_file=args.params,
    )
    for outcome in result.outcomes:
        print(f"{outcome.stage:<12} {'ran' if outcome.ran else 'cached'}")
    if result.experiment:
        print(f"DVC experiment {result.experiment} (compare runs with `dvc exp show`)")
    return 0


def _cmd_experiments(args: argparse.Namespace) -> int:
    from unigrec.orchestration.experiments import EXPERIMENTS_DIR, list_experiments

    found = list_experiments(Path(args.root))
    width = max((len(name) for name, _ in found), default=0)
    for name, summary in found:
        print(f"{name:<{width}}  {summary}")
    if not found:
        print(f"no overlays in {Path(args.root) / EXPERIMENTS_DIR}")
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


def _serving_model(args: argparse.Namespace):
    """The registry's champion, fetched once per version into the runtime cache (shared with ``unigrec
    serve``); the project's own model folder (with a notice) when there is none.

    ``--k`` is checked against ``serving.max_k`` first, so a bad k fails before seconds of loading.
    """
    from unigrec.config import load_section
    from unigrec.service.champion import LOCAL_VERSION, load_served
    from unigrec.service.requests import check_k

    root = Path(args.root)
    check_k(args.k, load_section("serving", root / args.params), "--k")
    served, _ = load_served(root, args.params, model_dir=args.model_dir, fallback_to_local=True)
    if served.version == LOCAL_VERSION and not args.model_dir:
        print(f"notice: {served.description}", file=sys.stderr)
    return served.model


def _item_details(root: Path) -> dict[str, str]:
    """item_id -> " (1995) [Action, Sci-Fi]" from the project's items table, so a reader sees whether each
    result fits the query; empty (titles only) when the project has no items table to read."""
    import pandas as pd

    from unigrec.data.relevance import item_years
    from unigrec.paths import Layout

    path = Layout(root).items
    if not path.exists():
        return {}
    items = pd.read_parquet(path)
    out = {}
    for item, category, year in zip(items["item_id"].astype(str), items["category"], item_years(items), strict=True):
        genres = [] if pd.isna(category) else [g.strip() for g in re.split(r"[|>]", str(category)) if g.strip()]
        out[item] = (f" ({year})" if year is not None else "") + (f" [{', '.join(genres)}]" if genres else "")
    return out


def _print_ranked(model, results, user: str | None, root: Path) -> None:
    if user is not None and not model.knows_user(user):
        print(f"notice: user {user} has no history; these are cold-start results", file=sys.stderr)
    details = _item_details(root)
    print(f"{'rank':>4}  {'item':<10} {'score':>9}  title (year) [genres]")
    for row in results.itertuples(index=False):
        print(f"{row.rank + 1:>4}  {row.item_id:<10} {row.score:>9.4f}  {model.title(row.item_id)}"
              f"{details.get(str(row.item_id), '')}")


# A users file holds ids as the data writes them. These spellings are what a spreadsheet or a float column
# makes of an id ("42" -> "42.0", "1e3") or how a missing value is written: served, they would silently be
# cold-start users, so they are refused with the line that holds them.
_FLOAT_LOOKING = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+)")
_MISSING_SPELLINGS = frozenset({"nan", "none", "null", "na", "n/a", "<na>", "nat", "-"})
USER_ID_COLUMN = "user_id"


def _user_id_problem(value: str) -> str | None:
    """Why ``value`` (already stripped) cannot be a user id, or None when it can."""
    if not value:
        return "empty user id"
    if any(ch.isspace() for ch in value) or not value.isprintable():
        return f"{value!r} holds blanks or control characters: one user id per line, nothing else"
    if _FLOAT_LOOKING.fullmatch(value):
        return f"{value!r} looks like a number written as a float; write the id as the data does (e.g. '42')"
    if value.lower() in _MISSING_SPELLINGS:
        return f"{value!r} spells a missing value, not a user id"
    return None


def _check_users(path: Path, rows: list[tuple[str, str]]) -> list[str]:
    """The ids of ``rows`` ((where, raw value) pairs) in order, each once; the first bad one is an error.

    Duplicates are served once, at their first place, with a notice: the output then has one block of
    recommendations per user, never the same user's rows twice.
    """
    from unigrec.errors import UnigrecError

    first_seen: dict[str, str] = {}
    duplicates: list[tuple[str, str]] = []
    for where, raw in rows:
        value = raw.strip()
        problem = _user_id_problem(value)
        if problem:
            raise UnigrecError(f"{path}:{where}: {problem}")
        if value in first_seen:
            duplicates.append((value, where))
        else:
            first_seen[value] = where
    if not first_seen:
        raise UnigrecError(f"{path}: no user ids in the file")
    if duplicates:
        value, where = duplicates[0]
        print(
            f"notice: {path}: {len(duplicates)} duplicate user id(s) skipped, each user is served once "
            f"(e.g. {value!r} at {_at(where)}, first at {_at(first_seen[value])})",
            file=sys.stderr,
        )
    return list(first_seen)


def _at(where: str) -> str:
    return f"line {where}" if where.isdigit() else where


def _read_users(path: Path) -> list[str]:
    """User ids from a parquet/CSV file with a user_id column, or a text file with one id per line.

    Strict: a malformed line, a float-looking or missing-value id is an error naming file and line (CSV:
    the file's line, header = line 1; parquet: the row, from 1), read before any model loads.
    """
    from unigrec.errors import UnigrecError

    if not path.exists():
        raise UnigrecError(f"{path}: users file not found")
    if not path.is_file():
        raise UnigrecError(f"{path}: users file is not a file")
    if path.suffix == ".parquet":
        return _check_users(path, _parquet_user_rows(path))
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UnigrecError(f"{path}: cannot read the users file: {err.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UnigrecError(f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x})") from None
    if path.suffix == ".csv":
        return _check_users(path, _csv_user_rows(path, text))
    rows = [(f"{n}", line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if rows and rows[0][1].strip() == USER_ID_COLUMN:
        raise UnigrecError(f"{path}:{rows[0][0]}: a header line; a text users file holds ids only "
                           f"(a header belongs in a .csv)")
    return _check_users(path, rows)


def _csv_user_rows(path: Path, text: str) -> list[tuple[str, str]]:
    import csv
    import io

    from unigrec.errors import UnigrecError

    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or USER_ID_COLUMN not in [h.strip() for h in header]:
            found = ", ".join(repr(h) for h in header or []) or "nothing"
            raise UnigrecError(f"{path}:1: no {USER_ID_COLUMN} column in the header (found {found})")
        column = [h.strip() for h in header].index(USER_ID_COLUMN)
        rows = []
        for fields in reader:
            where = f"{reader.line_num}"
            if not fields:
                continue  # a blank line
            if len(fields) != len(header):
                raise UnigrecError(f"{path}:{where}: {len(fields)} field(s), the header has {len(header)}")
            rows.append((where, fields[column]))
    except csv.Error as err:
        raise UnigrecError(f"{path}:{reader.line_num}: not valid CSV: {err}") from None
    return rows


def _parquet_user_rows(path: Path) -> list[tuple[str, str]]:
    import pandas as pd

    from unigrec.errors import UnigrecError

    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises many types for a corrupt or non-parquet file
        raise UnigrecError(f"{path}: cannot read the users file as parquet: {err}") from err
    if USER_ID_COLUMN not in frame.columns:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise UnigrecError(f"{path}: no {USER_ID_COLUMN} column (found {found})")
    column = frame[USER_ID_COLUMN]
    if pd.api.types.is_float_dtype(column):
        raise UnigrecError(f"{path}: the {USER_ID_COLUMN} column holds floats; write ids as text or integers")
    rows = []
    for n, value in enumerate(column.tolist(), start=1):
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            raise UnigrecError(f"{path}:row {n}: missing user id")
        rows.append((f"row {n}", str(value)))
    return rows


def _check_writable_dir(path: Path, option: str, given: Path | None = None) -> None:
    """``path`` can become a folder: it is one, or it and its missing parents can be made (``given``: the
    path the user typed, for the message)."""
    from unigrec.errors import UnigrecError

    for here in (path, *path.parents):
        if here.exists():
            if not here.is_dir():
                raise UnigrecError(f"{option} {given or path}: {here} is a file, not a folder")
            return


def _check_output_file(path: Path, option: str) -> None:
    """``path`` can be written as a file: it is not a folder, and no ancestor of it is a file."""
    from unigrec.errors import UnigrecError

    if path.is_dir():
        raise UnigrecError(f"{option} {path}: is a folder; give a file name, e.g. {path / 'recommendations.parquet'}")
    _check_writable_dir(path.parent, option, given=path)


def _cmd_recommend(args: argparse.Namespace) -> int:
    import pandas as pd

    from unigrec.atomic import atomic_file
    from unigrec.errors import UnigrecError

    if bool(args.user) == bool(args.users_file):
        raise UnigrecError("give either --user U or --users-file F (with --output)")
    if args.users_file and not args.output:
        raise UnigrecError("--users-file needs --output out.parquet")
    if args.output:
        _check_output_file(Path(args.output), "--output")
    # Every argument is checked before the model loads (seconds): a bad users file fails at once.
    users = [args.user] if args.user else _read_users(Path(args.users_file))
    model = _serving_model(args)
    requests = pd.DataFrame({"user_id": users, "kind": "rec", "query": ""})
    results = model.predict(requests, args.k)
    if args.user:
        _print_ranked(model, results, args.user, Path(args.root))
        return 0
    results.insert(0, "user_id", [users[i] for i in results["request"]])
    results["title"] = [model.title(i) for i in results["item_id"]]
    with atomic_file(Path(args.output), mode="wb", encoding=None) as fh:
        results.drop(columns="request").to_parquet(fh, index=False)
    print(f"{len(users)} users, {len(results)} recommendations -> {args.output}")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    import pandas as pd

    model = _serving_model(args)
    user = args.user if args.user is not None else ""
    requests = pd.DataFrame({"user_id": [user], "kind": ["search"], "query": [args.query]})
    results = model.predict(requests, args.k)
    _print_ranked(model, results, args.user, Path(args.root))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from unigrec.service.app import build_app, run_server

    app, limits, description = build_app(Path(args.root), args.params, args.model_dir, args.model_version)
    host = args.host or limits.host
    port = limits.port if args.port is None else args.port
    log.info("serving %s on http://%s:%d (API docs: /docs)", description, host, port)
    run_server(app, host, port)
    return 0


class _OneLineErrors(argparse.ArgumentParser):
    """argparse with its usage errors on one line (status 2 as before), like every other CLI error;
    the usage itself is one ``--help`` away. Subcommand parsers inherit the class."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from unigrec.stages import STAGES

    parser = _OneLineErrors(
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
            "what runs. With --experiment/--set/--source/--data-path the run is a DVC experiment\n"
            "(`dvc exp show`). --experiment NAME applies configs/experiments/NAME.yaml (or a YAML path), an\n"
            "overlay of params.yaml; several apply in order, and --source/--data-path/--set win over them.\n"
            "--params FILE runs with FILE's values (a whole params file, or only the keys it changes) in\n"
            "place of params.yaml's: DVC stages read params.yaml, so its changed values are written in for\n"
            "the run, recorded as a DVC experiment, and params.yaml is put back; overlays and flags win over it.\n"
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
    p_run.add_argument(
        "--experiment", "-e", action="append", metavar="NAME",
        help="params overlay: a file stem of configs/experiments/ or a YAML path (repeatable, applied in order)",
    )
    p_run.set_defaults(func=_cmd_run)

    p_exps = sub.add_parser(
        "experiments", parents=[common], help="list the params overlays `unigrec run --experiment` takes"
    )
    p_exps.set_defaults(func=_cmd_experiments)

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

    serve = argparse.ArgumentParser(add_help=False)
    serve.add_argument("--k", type=int, default=10, help="items to return (default: 10)")
    serve.add_argument(
        "--model-dir", default=None, help="serve this model folder instead of the registry's champion"
    )
    p_rec = sub.add_parser(
        "recommend",
        parents=[common, serve],
        help="recommend items for a user (or many) with the champion model",
        description=(
            "Load models:/<register.model_name>@<register.alias> from the MLflow registry (the local\n"
            "models/generative when there is no registry), retrieve unseen items by beam search, re-rank\n"
            "them with the ranking head, print rank, item, score and title. Batch: --users-file F --output\n"
            "out.parquet (F: one user id per line, or a parquet/CSV with a user_id column).\n"
            "The users file is read strictly, before the model loads: a line that is not one id, an id\n"
            "that looks like a float (42.0, 1e3) or spells a missing value (nan, null), or an empty id\n"
            "exits with status 2 naming FILE:LINE (parquet: the row). Blank lines are skipped; a user\n"
            "listed twice is served once, at its first place, with a notice on stderr."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_rec.add_argument("--user", default=None, help="user id")
    p_rec.add_argument("--users-file", default=None, help="batch mode: file of user ids")
    p_rec.add_argument("--output", default=None, help="batch mode: parquet file to write")
    p_rec.set_defaults(func=_cmd_recommend)

    p_search = sub.add_parser(
        "search",
        parents=[common, serve],
        help="search the catalogue with a text query (personalised with --user)",
        description="Answer a text query with the champion model; --user conditions on that user's history.",
    )
    p_search.add_argument("--query", required=True, help='query text, e.g. "sci-fi thriller 1990s"')
    p_search.add_argument("--user", default=None, help="user id whose history personalises the results")
    p_search.set_defaults(func=_cmd_search)

    p_serve = sub.add_parser(
        "serve",
        parents=[common],
        help="serve the champion over HTTP: /recommend, /search, /batch, /health (docs at /docs)",
        description=(
            "Serve models:/<register.model_name>@<register.alias> over HTTP (FastAPI on uvicorn), bound to\n"
            "serving.host:serving.port (loopback by default). The alias is polled every serving.poll_s\n"
            "seconds and a new champion is swapped in without a restart. Versions are fetched once into\n"
            "runtime.cache_dir. Requests are checked first: 422 names the field and the rule."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_serve.add_argument("--host", default=None, help="interface to bind (default: serving.host)")
    p_serve.add_argument("--port", type=int, default=None, help="port (default: serving.port)")
    pinned = p_serve.add_mutually_exclusive_group()
    pinned.add_argument(
        "--model-version", type=int, default=None, metavar="N", help="serve this registered version (no polling)"
    )
    pinned.add_argument("--model-dir", default=None, help="serve this model folder instead of the registry")
    p_serve.set_defaults(func=_cmd_serve)
    return parser


def _check_text_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every argument is UTF-8 text. Python hands undecodable argv bytes over as lone surrogates, which
    fail far away (pyarrow, print); refuse them here, naming the option and the byte."""
    from unigrec.errors import UnigrecError

    options = {a.dest: (a.option_strings[0] if a.option_strings else a.metavar or a.dest)
               for a in _all_actions(parser)}
    for dest, value in vars(args).items():
        for text in value if isinstance(value, list) else [value]:
            if not isinstance(text, str):
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                raw = text.encode("utf-8", "surrogateescape")[err.start : err.start + 1]
                byte = f"0x{raw[0]:02x}" if raw else "a lone surrogate"
                raise UnigrecError(
                    f"{options.get(dest, dest)}: not valid UTF-8 text (byte {byte} at character {err.start}); "
                    "pass arguments in UTF-8"
                ) from None


def _all_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    actions = []
    for action in parser._actions:
        actions.append(action)
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                actions += _all_actions(child)
    return actions


def main(argv: list[str] | None = None) -> int:
    from unigrec.logs import setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        _check_text_arguments(parser, args)
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
