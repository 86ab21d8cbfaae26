"""The code's shape, checked: imports only go down the floors, and dvc.yaml declares exactly the code and
params each stage reads, so editing a module re-runs every stage that imports it and nothing else.

Imports are read statically from the source (function-level ones included: stages import lazily), so the
derived dependencies are conservative: a module a stage could import counts as one it imports.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import yaml
from support import REPO

ROOT = REPO
SRC = ROOT / "src"
PACKAGE = SRC / "unigrec"

# Bottom to top. A module may import modules of lower floors and of its own package; the ground floor's
# modules may import each other. Nothing imports upwards, so a floor can be read without the ones above.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("", "errors", "logs", "atomic", "config", "paths", "figures", "threads", "text_encoder", "averaging"),
    ("sasrec",),  # plain torch SASRec: the IDs' sequential source and the evaluation's baseline train it
    ("data", "contracts", "ids"),
    ("model",),
    ("inference",),
    ("evaluate",),  # below train: the training's validation report uses evaluate's metrics
    ("train",),
    ("registry",),
    ("stages", "pipeline"),
    ("orchestration", "service"),  # service: `unigrec serve` and the per-version model cache
    ("cli",),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


@functools.cache
def _imports(module: str) -> frozenset[str]:
    """The unigrec modules ``module`` imports anywhere in its source (``from pkg import submodule`` counts
    as the submodule), and sibling files it names as "name.py" (code it ships, e.g. MLflow's entry file)."""
    modules = _modules()
    path = modules[module]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".py"):
            sibling = path.with_name(node.value)
            if sibling.is_file() and sibling != path:
                out.add(_module_name(sibling))
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "unigrec"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "unigrec":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in modules else node.module)
    return frozenset(m for m in out if m in modules)


def _closure(module: str) -> set[str]:
    """Every unigrec module importing ``module`` runs: its imports, theirs, and each one's parent packages."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += _imports(name)
    return seen


def _package(module: str) -> str:
    """The part of unigrec a module belongs to ("" for the package's own __init__)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _floor(package: str) -> int:
    return next(i for i, names in enumerate(FLOORS) if package in names)


def test_every_package_has_a_floor():
    assert {_package(m) for m in _modules()} <= {name for floor in FLOORS for name in floor}


def test_imports_only_go_down_the_floors():
    upward = []
    for module in sorted(_modules()):
        source = _package(module)
        for target in sorted(_imports(module)):
            dest = _package(target)
            if dest == source or (_floor(dest) == _floor(source) == 0):
                continue
            if _floor(dest) >= _floor(source):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that run up (or across) a floor:\n" + "\n".join(upward)


def _stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _expected_code_deps(stage: str) -> set[str]:
    """The source files the stage's module can import, folded into folders where a whole folder is used."""
    files = {_modules()[m].relative_to(ROOT).as_posix() for m in _closure(f"unigrec.stages.{stage}")}
    folders = set()
    for folder in {Path(f).parent for f in files}:
        while folder != PACKAGE.relative_to(ROOT):
            if {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*.py")} <= files:
                folders.add(folder.as_posix())
            folder = folder.parent
    top = {d for d in folders if not any(d.startswith(o + "/") for o in folders)}
    return top | {f for f in files if not any(f.startswith(d + "/") for d in top)}


def test_dvc_yaml_declares_exactly_the_code_each_stage_imports():
    wrong = []
    for name, stage in _stages().items():
        declared = {d for d in stage.get("deps", []) if d.startswith("src/")}
        expected = _expected_code_deps(name)
        if declared != expected:
            wrong.append(
                f"{name}: add {sorted(expected - declared)}, remove {sorted(declared - expected)}\n"
                f"  (the whole list: {sorted(expected)})"
            )
    assert not wrong, "dvc.yaml code deps differ from what the stages import:\n" + "\n".join(wrong)


def _sections_loaded(module: str) -> set[str]:
    """params sections a module reads itself with ``load_section("name", ...)``."""
    tree = ast.parse(_modules()[module].read_text(encoding="utf-8"))
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", None)) == "load_section"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def test_params_deps_are_the_stages_own_sections_and_never_runtime():
    from unigrec.stages import STAGES

    problems = []
    for name, stage in _stages().items():
        params = {str(p).split(".")[0] for p in stage.get("params", [])}
        reads = {STAGES[name][1]} | set().union(*(_sections_loaded(m) for m in _closure(f"unigrec.stages.{name}")))
        if "runtime" in params:
            problems.append(f"{name} depends on runtime, which changes how stages run, never what they write")
        if reads - params:
            problems.append(f"{name} reads params section(s) {sorted(reads - params)} that dvc.yaml does not list")
    assert not problems, "\n".join(problems)
