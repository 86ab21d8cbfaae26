"""Experiment overlays: small YAML files under ``configs/experiments/``, each in params.yaml's shape with only
the keys it changes, turned into the ``section.key=value`` overrides ``dvc exp run -S`` takes, every key and
value checked against the project's params.yaml before anything runs."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from unigrec.config import PARAMS_FILE, Params, build_section, read_params_file
from unigrec.errors import UnigrecError

EXPERIMENTS_DIR = Path("configs") / "experiments"  # relative to the project root; one overlay per file
OVERLAY_SUFFIX = ".yaml"
INCLUDE_KEY = "include"  # an overlay's list of overlays applied before its own keys (not a params.yaml key)

_V = typing.TypeVar("_V")


def experiment_file(root: Path, name: str) -> Path:
    """The overlay ``name`` names: a file stem in ``configs/experiments/``, or a path to a YAML file."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    path = Path(root) / EXPERIMENTS_DIR / f"{name}{OVERLAY_SUFFIX}"
    if not path.is_file():
        known = ", ".join(n for n, _ in list_experiments(root)) or "none"
        raise UnigrecError(f"no experiment {name!r}: not a YAML file, nor {path} (known: {known})")
    return path


def list_experiments(root: Path) -> list[tuple[str, str]]:
    """(name, first line of its header comment) of every overlay in ``configs/experiments/``."""
    found = []
    for path in sorted((Path(root) / EXPERIMENTS_DIR).glob(f"*{OVERLAY_SUFFIX}")):
        lines = path.read_text(encoding="utf-8").splitlines()
        first = next((line.lstrip("# ").strip() for line in lines if line.startswith("#")), "")
        found.append((path.stem, first))
    return found


def override_value(value: Any) -> str:
    """``value`` in the override grammar DVC parses (Hydra's), so that it comes back as the same YAML value.

    Strings are always quoted: unquoted, ``null``, ``1e-3`` or a path with ``=`` would read as something
    else. (DVC's writer puts a float under 1e-4 down as ``1e-05``, which PyYAML reads back as a string, as
    it does for ``dvc exp run -S``.)"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if isinstance(value, Sequence):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    raise UnigrecError(f"{value!r}: an overlay holds YAML scalars, lists and mappings only")


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        both = isinstance(value, Mapping) and isinstance(base.get(key), Mapping)
        out[key] = _deep_merge(base[key], value) if both else value
    return out


def overlay_assignments(overlay: Mapping[str, Any], params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """An overlay (params.yaml's shape; a key may also be dotted) as ``{"section.key": value}``, checked.

    Every key must already be in ``params``: a misspelt one would otherwise add a knob no stage reads, and
    the run would silently measure the defaults. A mapping replaces a mapping leaf (``{}`` in params) as a
    whole. The sections :class:`unigrec.config.Params` knows are then validated with the overlay applied,
    so a wrong type fails here, naming ``where`` (the overlay file), not hours later in a stage."""
    flat: dict[str, Any] = {}

    def walk(node: Mapping[str, Any], known: Mapping[str, Any], prefix: str) -> None:
        for raw_key, value in node.items():
            *parents, leaf = str(raw_key).split(".")
            here, dotted = known, prefix
            for part in [*parents, leaf]:
                dotted = f"{dotted}{part}"
                if not isinstance(here, Mapping) or part not in here:
                    raise UnigrecError(f"{where}: {dotted} is not a key of {PARAMS_FILE}")
                here, dotted = here[part], f"{dotted}."
            if isinstance(value, Mapping) and isinstance(here, Mapping) and here:
                walk(value, here, dotted)
            else:
                flat[dotted.rstrip(".")] = value

    walk(overlay, params, "")
    updated: dict[str, Any] = dict(params)
    for key, value in flat.items():
        updated = _deep_merge(updated, _nested(key, value))
    hints = typing.get_type_hints(Params)
    for section in sorted({key.split(".")[0] for key in flat} & set(hints)):
        if not _loads(hints[section], params[section], section):
            continue  # params.yaml itself is broken there: the stage reading it reports that, not the overlay
        try:
            build_section(hints[section], updated[section], f"params.{section}")
        except UnigrecError as err:
            raise UnigrecError(f"{where}: {err}") from err
    return flat


def _loads(cls: type, raw: Any, section: str) -> bool:
    try:
        build_section(cls, raw, f"params.{section}")
    except UnigrecError:
        return False
    return True


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    node: Any = value
    for part in reversed(dotted.split(".")):
        node = {part: node}
    return node


def assignments_to_overrides(assignments: Mapping[str, Any]) -> list[str]:
    """``{"train.seed": 3}`` -> ``["train.seed=3"]``, in the grammar :func:`apply_param_overrides` reads."""
    return [f"{key}={override_value(value)}" for key, value in assignments.items()]


def experiment_overrides(root: Path, names: Iterable[str]) -> list[str]:
    """The overrides of the named overlays, in order, each checked against ``root``'s params.yaml."""
    params = read_params_file(Path(root) / PARAMS_FILE)
    overrides: list[str] = []
    for name in names:
        overrides += assignments_to_overrides(_overlay(root, name, params, ()))
    return overrides


def _overlay(root: Path, name: str, params: Mapping[str, Any], chain: tuple[Path, ...]) -> dict[str, Any]:
    """Overlay ``name``'s assignments, those of the overlays its ``include`` names first (in order, each with
    its own includes), its own keys after them.

    Why includes: a recipe that is another recipe plus a few keys (the ML-1M 1% recipe is the ML-1M headline
    in another layout) then says so, instead of copying keys that would silently stop following a change to
    the original. The overlay's own keys are checked with its includes applied, so a pair of keys that is
    only valid together may be split between the two.
    """
    path = experiment_file(root, name)
    if path.resolve() in chain:
        cycle = " -> ".join(p.stem for p in (*chain, path.resolve()))
        raise UnigrecError(f"{path}: overlays include one another in a cycle ({cycle})")
    overlay = read_params_file(path)
    if not isinstance(overlay, Mapping):
        raise UnigrecError(f"{path}: an experiment overlay is a mapping in params.yaml's shape")
    overlay = dict(overlay)
    included = overlay.pop(INCLUDE_KEY, [])
    if isinstance(included, str):
        included = [included]
    if not isinstance(included, list) or not all(isinstance(n, str) for n in included):
        raise UnigrecError(f"{path}: {INCLUDE_KEY} is an overlay name or a list of them, got {included!r}")
    # a later include wins, as a later --experiment does
    inherited = _keep_last(
        item for inner in included for item in _overlay(root, inner, params, (*chain, path.resolve())).items()
    )
    base = dict(params)
    for key, value in inherited.items():
        base = _deep_merge(base, _nested(key, value))
    return _keep_last([*inherited.items(), *overlay_assignments(overlay, base, str(path)).items()])


def _keep_last(pairs: Iterable[tuple[str, _V]]) -> dict[str, _V]:
    """One value per key, the last one given, ordered by where each key was LAST set (so a key set again
    lands after the keys it overrides, as the override list DVC reads must have it)."""
    kept: dict[str, _V] = {}
    for key, value in pairs:
        kept.pop(key, None)
        kept[key] = value
    return kept


def params_file_overrides(root: Path, params_file: str | Path | None) -> list[str]:
    """``unigrec run --params FILE``: FILE's values as overrides of ``root``'s params.yaml, only where they
    differ.

    DVC stages read params.yaml by name, so another params file reaches them the way an overlay does:
    FILE (relative to ``root``; a whole params file or only the keys it changes) is checked key by key
    and type by type against params.yaml, its changed values are written in for the run, and the run is
    recorded as a DVC experiment, after which params.yaml is put back. FILE being params.yaml itself, or
    changing nothing, gives no overrides: a plain run.
    """
    if params_file is None:
        return []
    root = Path(root)
    path = root / params_file
    base_path = root / PARAMS_FILE
    if path.resolve() == base_path.resolve():
        return []
    params = read_params_file(base_path)
    changed = {
        key: value
        for key, value in overlay_assignments(read_params_file(path), params, str(path)).items()
        if not _same_value(params, key, value)
    }
    return assignments_to_overrides(changed)


def _same_value(params: Mapping[str, Any], dotted: str, value: Any) -> bool:
    node: Any = params
    for part in dotted.split("."):
        node = node[part]  # overlay_assignments checked that every key exists
    return node == value and isinstance(node, bool) == isinstance(value, bool)  # 4 == 4.0, but True != 1


def params_file_section(root: Path, params_file: str | Path | None, name: str) -> Any:
    """Section ``name`` as a run with ``--params FILE`` sees it: params.yaml's, with FILE's keys over it."""
    root = Path(root)
    params = read_params_file(root / PARAMS_FILE)
    section = params.get(name, {})
    if params_file is not None:
        section = _deep_merge(section, read_params_file(root / params_file).get(name, {}))
    return build_section(typing.get_type_hints(Params)[name], section, f"params.{name}")


def merge_overrides(*groups: Iterable[str]) -> list[str]:
    """The groups' overrides, one per key: where two set the same key the later one is kept (``--set`` over
    an overlay, a second overlay over a first), so DVC never sees a key twice."""
    return list(_keep_last((o.partition("=")[0], o) for group in groups for o in group).values())
