"""Mutation testing of the modules the reported figures rest on (issue 42), with mutmut.

Run from the repository root; it is never part of CI or ``make test``:

    nice -n 10 .venv/bin/python tools/mutation.py                    # every group (~30-40 min on 2 cores)
    nice -n 10 .venv/bin/python tools/mutation.py -g metrics -g gate # some groups; their rows are replaced
    .venv/bin/python tools/mutation.py --list                        # groups, the files they mutate, tests

It installs the ``mutation`` extra (``pip install -e '.[mutation]'``, mutmut) when mutmut is missing. Each
group mutates only its files and runs only its tests, in a scratch folder ``.mutation/<group>/`` (git
ignores it): a generated ``pyproject.toml`` (the project's plus a ``[tool.mutmut]`` section) beside links to
``src``, ``tests`` and the files the tests read. mutmut records which selected test calls which function,
then runs each mutant against the tests that call the mutated function only, stopping at the first failure.

Results are merged into ``docs/experiments/mutation.json`` per file (killed / survived / timeout /
no tests, score = (killed + timeout) / all mutants) and written as a Markdown table, with the diff of every
mutant not killed, to ``docs/experiments/mutation.md``. Re-running a group replaces only its rows.

Survivors that change nothing observable (equivalent mutants) are listed, each with its reason, in
``tools/mutation_equivalent.yaml``; the table then also gives the score without them, and the Markdown
groups the survivors by reason, the unexplained ones first. ``--render`` rewrites the Markdown from the
JSON after that file is edited, without running mutmut.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MUTMUT_VERSION = "3.8.1"
WORK = REPO / ".mutation"
# what the copied tests read beside src/ and tests/ (support.REPO is the copy's root)
ALSO_COPY = ("params.yaml", "dvc.yaml", "data_contracts", "configs")
# Libraries the code under test imports lazily would be imported again in every mutant's fork: a group's
# ``preload`` is imported once by the fork server instead, by a generated pytest plugin (see prepare).
# One enhancer test in a fork: 7.4 s without, 1.8 s with. Each extra pytest run (stats, clean run) pays it.
TORCH_STACK = ("lightning", "torchmetrics", "transformers", "sentence_transformers")
PRELOAD_PLUGIN = "mutation_preload"
EQUIVALENT = REPO / "tools" / "mutation_equivalent.yaml"


@dataclass(frozen=True)
class Group:
    """Files mutated together and the tests that may kill their mutants."""

    files: tuple[str, ...]  # under src/unigrec/
    tests: tuple[str, ...]  # test files or node ids
    # folders whose property-based tests (test_properties*.py) and mutant-killing tests
    # (test_*_mutants.py) join the selection when they exist
    folders: tuple[str, ...] = ()
    deselect: tuple[str, ...] = field(default=())  # node ids left out (too slow per mutant; see the note)
    preload: tuple[str, ...] = field(default=())  # modules the fork server imports (see TORCH_STACK)

    def selection(self, baseline: bool = False) -> list[str]:
        found = [t for t in self.tests if (REPO / t.partition("::")[0]).exists()]
        for folder in self.folders:
            for pattern in ("test_properties*.py",) if baseline else ("test_properties*.py", "test_*_mutants.py"):
                found += sorted(p.relative_to(REPO).as_posix() for p in (REPO / folder).glob(pattern))
        return list(dict.fromkeys(found))


GROUPS: dict[str, Group] = {
    "metrics": Group(
        ("evaluate/metrics.py", "evaluate/protocols.py"),
        ("tests/unit/evaluate/test_metrics.py", "tests/unit/evaluate/test_evaluate_protocols.py"),
        ("tests/unit/evaluate",),
    ),
    "split": Group(
        ("data/split.py", "data/negatives.py"),
        ("tests/unit/data/test_split.py", "tests/unit/data/test_negatives.py"),
        ("tests/unit/data",),
        preload=("bm25s",),
    ),
    "prompts": Group(
        ("inference/prompts.py", "evaluate/baselines/context.py"),
        ("tests/unit/inference/test_inference_prompts.py", "tests/unit/evaluate/test_baselines.py"),
        ("tests/unit/inference", "tests/unit/evaluate"),
        preload=(*TORCH_STACK, "bm25s"),
    ),
    "decoding": Group(
        ("model/decoding.py", "model/trie.py", "inference/retrieval.py"),
        (
            "tests/unit/model/test_model_trie.py",
            "tests/unit/model/test_model_decoding.py",
            "tests/unit/inference/test_inference_retrieval.py",
            "tests/unit/inference/test_decode_once.py",
            "tests/unit/train/test_quick_eval.py",  # stream_batches, seen_mask, target_ranks via rank_prompts
        ),
        ("tests/unit/model", "tests/unit/inference"),
        preload=TORCH_STACK,
    ),
    "collisions": Group(
        ("ids/collisions.py",), ("tests/unit/ids/test_ids_collisions.py",), ("tests/unit/ids",)
    ),
    "gate": Group(
        ("registry/gate.py",),
        ("tests/unit/registry/test_registry.py",),
        ("tests/unit/registry",),
        # MLflow-backed registrations (5-15 s each): they reach gate.py only through the pure functions the
        # other tests call directly, and would make every gate mutant cost minutes
        deselect=tuple(
            f"tests/unit/registry/test_registry.py::{name}"
            for name in (
                "test_champion_gate_keeps_the_better_model",
                "test_champion_round_trips_as_pyfunc",
                "test_unservable_model_is_not_registered",
                "test_concurrent_registrations_keep_both_versions_and_one_champion",
                "test_register_stage_writes_its_decision",
            )
        ),
    ),
    "weighter": Group(
        ("train/weighter.py",), ("tests/unit/train/test_weighter.py",), ("tests/unit/train",), preload=TORCH_STACK
    ),
    "enhancer": Group(
        ("train/enhancer.py",), ("tests/unit/train/test_enhancer.py",), ("tests/unit/train",), preload=TORCH_STACK
    ),
    "atomic": Group(("atomic.py",), ("tests/unit/test_atomic.py", "tests/unit/test_stage_outputs.py"), ("tests/unit",)),
    "relations": Group(
        ("contracts/relations.py",),
        ("tests/unit/contracts/test_contracts.py",),
        ("tests/unit/contracts",),
        preload=("pandera", "great_expectations"),
    ),
}


def ensure_mutmut() -> None:
    """Install the ``mutation`` extra when mutmut is missing or another version."""
    from importlib import metadata

    try:
        if metadata.version("mutmut") == MUTMUT_VERSION and importlib.util.find_spec("mutmut"):
            return
    except metadata.PackageNotFoundError:
        pass
    print(f"installing the mutation extra (mutmut=={MUTMUT_VERSION})", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", ".[mutation]"], cwd=REPO, check=True)


def undecorate(source: str) -> str:
    """Move function decorators below their function as a plain call: ``f = deco(f)``.

    mutmut 3 never mutates a decorated function (other than a static or class method), which would leave
    ``atomic_dir``, ``beam_search`` (``@torch.no_grad()``) and the properties untested. Applying the
    decorator after the definition is the same program, and mutmut mutates the undecorated body.
    """
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, str]] = []  # (first line, last line) 0-based, replaced by text

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body)
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or not node.decorator_list:
                continue
            names = [ast.get_source_segment(source, d) for d in node.decorator_list]
            if len(names) == 1 and names[0] in ("staticmethod", "classmethod"):
                continue
            indent = " " * node.col_offset
            wrapped = node.name
            for deco in reversed(names):
                wrapped = f"({deco})({wrapped})"
            first = node.decorator_list[0].lineno - 1
            edits.append((first, node.lineno - 2, ""))
            edits.append((node.end_lineno, node.end_lineno - 1, f"{indent}{node.name} = {wrapped}\n"))

    visit(tree.body)
    for first, last, text in sorted(edits, reverse=True):
        lines[first : last + 1] = [text] if text else []
    return "".join(lines)


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def prepare(name: str, group: Group, *, fresh: bool, baseline: bool) -> Path:
    """The group's scratch folder: links to the checkout and a pyproject.toml with its mutmut section."""
    work = WORK / name
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for rel in ("tests", *ALSO_COPY):
        link = work / rel
        if not link.is_symlink():
            link.symlink_to(REPO / rel)
    # src is copied: the mutated files get their decorators applied as calls (see undecorate)
    shutil.rmtree(work / "src", ignore_errors=True)
    shutil.copytree(REPO / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for rel in group.files:
        path = work / "src" / "unigrec" / rel
        path.write_text(undecorate(path.read_text()))
    plugin = "\n".join(['"""Written by tools/mutation.py: heavy imports done once, in the fork server."""',
                         "import importlib", "", f"for _name in {group.preload!r}:", "    importlib.import_module(_name)",
                         ""])
    (work / f"{PRELOAD_PLUGIN}.py").write_text(plugin)
    pytest_args = [*(["-p", PRELOAD_PLUGIN] if group.preload else []), *(f"--deselect={n}" for n in group.deselect)]
    section = "\n".join(
        [
            "",
            "[tool.mutmut]",
            'source_paths = ["src"]',
            f"only_mutate = {toml_list([f'src/unigrec/{f}' for f in group.files])}",
            f"pytest_add_cli_args_test_selection = {toml_list(group.selection(baseline))}",
            f"pytest_add_cli_args = {toml_list(['-p', 'no:cacheprovider', *pytest_args])}",
            f"also_copy = {toml_list([*ALSO_COPY, f'{PRELOAD_PLUGIN}.py'])}",
            # torch is not fork-safe once its thread pool ran: fork mutants from a clean server process
            'process_isolation = "forkserver"',
            "use_git_change_detection = false",
            "",
        ]
    )
    (work / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text() + section)
    return work


def run_group(name: str, group: Group, *, jobs: int, fresh: bool, baseline: bool) -> dict | None:
    work = prepare(name, group, fresh=fresh, baseline=baseline)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1", PYTHONDONTWRITEBYTECODE="1")
    mutmut = Path(sys.executable).with_name("mutmut")
    command = [str(mutmut), "run", "--max-children", str(jobs)]
    print(f"== {name}: {', '.join(group.files)} against {len(group.selection(baseline))} test files", flush=True)
    # what was measured: the commit, and any of the group's files that differed from it (the copy of src/
    # taken above is the working tree, not the commit)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", *(f"src/unigrec/{f}" for f in group.files)],
                           cwd=REPO, capture_output=True, text=True, check=False).stdout.split("\n")
    start = time.monotonic()
    with open(work / "mutmut.log", "w") as log:
        rc = subprocess.run(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    seconds = round(time.monotonic() - start, 1)
    if rc != 0:  # e.g. a selected test fails on unmutated code: mutmut refuses to start
        tail = (work / "mutmut.log").read_text(errors="replace")[-2000:]
        print(f"mutmut failed on group {name} (exit {rc}); see {work / 'mutmut.log'}:\n{tail}", flush=True)
        return None
    return {"seconds": seconds, "files": collect(work, group, name), "commit": commit[:12],
            "uncommitted": [line[3:] for line in dirty if line.strip()]}


def collect(work: Path, group: Group, name: str) -> dict:
    """Per file: counts by mutmut status, the score, and every mutant not killed with its diff."""
    from mutmut.stats import status_by_exit_code

    out, wanted = {}, []
    for rel in group.files:
        meta = json.loads((work / "mutants" / "src" / "unigrec" / f"{rel}.meta").read_text())
        counts: dict[str, int] = {}
        not_killed = []
        for key, code in sorted(meta["exit_code_by_key"].items()):
            status = status_by_exit_code[code]
            counts[status] = counts.get(status, 0) + 1
            if status not in ("killed", "timeout"):
                not_killed.append({"mutant": key, "status": status})
                wanted.append((key, f"src/unigrec/{rel}"))
        total = sum(counts.values())
        caught = counts.get("killed", 0) + counts.get("timeout", 0)
        out[f"src/unigrec/{rel}"] = {
            "group": name,
            "total": total,
            "killed": counts.get("killed", 0),
            "survived": counts.get("survived", 0),
            "timeout": counts.get("timeout", 0),
            "no_tests": counts.get("no tests", 0),
            "other": total - caught - counts.get("survived", 0) - counts.get("no tests", 0),
            "score": round(caught / total, 4) if total else None,
            "not_killed": not_killed,
        }
    diffs = diffs_of(work, wanted)
    for r in out.values():
        for m in r["not_killed"]:
            m["diff"] = diffs.get(m["mutant"], "(no diff)")
    return out


DIFFS = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
wanted = json.load(sys.stdin)
print(json.dumps({key: get_diff_for_mutant(key, path=path) for key, path in wanted}))
"""


def diffs_of(work: Path, wanted: list[tuple[str, str]]) -> dict[str, str]:
    """Each mutant's diff against the original function, read by mutmut in one process."""
    if not wanted:
        return {}
    res = subprocess.run([sys.executable, "-c", DIFFS], cwd=work, input=json.dumps(wanted), capture_output=True,
                         text=True, check=False)
    if res.returncode != 0:
        return dict.fromkeys((k for k, _ in wanted), f"(mutmut could not show it: {res.stderr.strip()[-300:]})")
    return json.loads(res.stdout)


def load_survivor_list(path: Path = EQUIVALENT) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """The hand-checked survivor list: (reason key -> its text, mutant -> reason key of an equivalent mutant,
    mutant -> the test that kills it for a survivor of the recorded run killed by a test added since).

    An entry naming an unknown reason is an error: a typo would otherwise silently count as explained. The
    next run of a group supersedes its ``killed_after_run`` entries (they were checked by applying the mutant
    by hand).
    """
    import yaml

    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    reasons: dict[str, str] = data.get("reasons") or {}
    mutants: dict[str, str] = {}
    for key, names in (data.get("mutants") or {}).items():
        if key not in reasons:
            raise ValueError(f"{path}: mutants listed under {key!r}, which is not one of the reasons")
        for name in names:
            if name in mutants:
                raise ValueError(f"{path}: {name} is listed under both {mutants[name]!r} and {key!r}")
            mutants[name] = key
    return reasons, mutants, dict(data.get("killed_after_run") or {})


def markdown(results: dict) -> str:
    reasons, marked, later = load_survivor_list()
    rows = [
        (
            "| file | group | mutants | killed | timeout | survived | no tests | score | equivalent | "
            "score without them | unexplained |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_reason: dict[str | None, list[dict]] = {}
    for path, r in sorted(results["files"].items(), key=lambda kv: (kv[1]["group"], kv[0])):
        score = "-" if r["score"] is None else f"{100 * r['score']:.1f}%"
        equal = sum(m["mutant"] in marked for m in r["not_killed"])
        caught, left = r["killed"] + r["timeout"], r["total"] - equal
        without = f"{100 * caught / left:.1f}%" if left else "-"
        killed_since = sum(m["mutant"] in later for m in r["not_killed"])
        rows.append(f"| `{path}` | {r['group']} | {r['total']} | {r['killed']} | {r['timeout']} | "
                    f"{r['survived']} | {r['no_tests']} | {score} | {equal} | {without} | "
                    f"{len(r['not_killed']) - equal - killed_since} |")
        for m in r["not_killed"]:
            key = "__later__" if m["mutant"] in later else marked.get(m["mutant"])
            by_reason.setdefault(key, []).append(m)
    lines = [
        "# Mutation scores (generated by tools/mutation.py; do not edit)",
        "",
        (
            f"mutmut {results['mutmut']}; score = (killed + timeout) / mutants; \"score without them\" leaves "
            "out the survivors listed as equivalent in `tools/mutation_equivalent.yaml`. Groups, run dates, "
            "the commit measured and times:"
        ),
        "",
        *[f"- {g}: {r['date']}, commit {r.get('commit', '?')}"
          f"{' with uncommitted ' + ', '.join(r['uncommitted']) if r.get('uncommitted') else ''}, "
          f"{r['seconds']} s, tests: {', '.join(r['tests'])}"
          for g, r in sorted(results["groups"].items())],
        "",
        *rows,
        "",
        "## Mutants not killed and not explained",
    ]

    def listing(mutants: list[dict]) -> list[str]:
        out: list[str] = []
        for m in sorted(mutants, key=lambda m: m["mutant"]):
            out += ["", f"`{m['mutant']}` ({m['status']})", "", "```diff", m["diff"].strip(), "```"]
        return out

    lines += listing(by_reason.pop(None, [])) or ["", "None."]
    if "__later__" in by_reason:
        lines += ["", "## Killed by tests added after the run (checked by applying each mutant by hand)", ""]
        lines += [f"- `{m['mutant']}`: `{later[m['mutant']]}`" for m in sorted(by_reason.pop("__later__"),
                                                                              key=lambda m: m["mutant"])]
    survivors = {m["mutant"] for r in results["files"].values() for m in r["not_killed"]}
    stale = sorted((set(marked) | set(later)) - survivors)  # killed since, or renumbered after an edit of their function
    if stale:
        lines += ["", "Listed as equivalent but not among the mutants not killed (re-check the list):", "",
                  *[f"- `{name}`" for name in stale]]
    lines += ["", "## Equivalent mutants, by reason"]
    for key, text in reasons.items():
        if key in by_reason:
            lines += ["", f"### {key} ({len(by_reason[key])})", "", text.strip(), *listing(by_reason[key])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("-g", "--group", action="append", choices=sorted(GROUPS),
                        help="a group to run (repeatable; default: all)")
    parser.add_argument("--list", action="store_true", help="print the groups, their files and tests, and exit")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--baseline", action="store_true",
                        help="leave out the tests written to kill survivors (test_*_mutants.py): the score before them")
    parser.add_argument("--keep", action="store_true",
                        help="reuse .mutation/<group>/ (mutmut's cache) instead of starting fresh")
    parser.add_argument("--results", type=Path, default=REPO / "docs/experiments/mutation.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs/experiments/mutation.md")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite the Markdown from the JSON results (after editing mutation_equivalent.yaml)")
    args = parser.parse_args(argv)

    names = args.group or list(GROUPS)
    if args.list:
        for name in names:
            g = GROUPS[name]
            print(f"{name}: {', '.join(g.files)}\n    tests: {' '.join(g.selection())}")
        return 0
    if args.render:
        args.markdown.write_text(markdown(json.loads(args.results.read_text())))
        return 0
    ensure_mutmut()
    from importlib import metadata

    results = json.loads(args.results.read_text()) if args.results.exists() else {"groups": {}, "files": {}}
    results["mutmut"] = metadata.version("mutmut")
    failed = []
    for name in names:
        group = GROUPS[name]
        outcome = run_group(name, group, jobs=args.jobs, fresh=not args.keep, baseline=args.baseline)
        if outcome is None:
            failed.append(name)
            continue
        results["groups"][name] = {"date": date.today().isoformat(), "seconds": outcome["seconds"],
                                   "commit": outcome["commit"], "uncommitted": outcome["uncommitted"],
                                   "tests": group.selection(args.baseline), "deselected": list(group.deselect),
                                   "baseline": args.baseline}
        results["files"] = {p: r for p, r in results["files"].items() if r["group"] != name} | outcome["files"]
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        args.markdown.write_text(markdown(results))
        for path, r in outcome["files"].items():
            print(f"   {path}: {r['killed'] + r['timeout']}/{r['total']} caught, {r['survived']} survived, "
                  f"{r['no_tests']} without tests ({outcome['seconds']} s for the group)", flush=True)
    if failed:
        print(f"groups that did not run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
