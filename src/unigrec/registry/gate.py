"""The champion gate as pure functions: which metrics count, and whether a candidate beats the champion.

The gate chooses on VALIDATION figures only (the ``valid`` block of metrics/evaluate.json): choosing the
champion across versions is model selection, and the test split must never select anything, or its figures
stop being an unbiased estimate of the served model. Test figures are still logged with every version."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

from unigrec.config import ConfigError, GateConfig, flatten_mapping
from unigrec.errors import UnigrecError

_NOT_IN_MLFLOW_NAMES = re.compile(r"[^/\w.\- ]")
GATE_BLOCK = "valid"  # the only block of the metrics file the gate may read (the evaluate stage's TUNING_SPLIT)


def flatten_metrics(nested: Mapping[str, Any]) -> dict[str, float]:
    """Numeric leaves of a nested metrics file under dotted names.

    Strings (e.g. a variant name) and booleans are descriptions, not measurements, and are dropped.
    """
    return {
        name: float(value)
        for name, value in flatten_mapping(nested).items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def mlflow_metric_key(name: str) -> str:
    """A metric name MLflow accepts: ``ndcg@10`` -> ``ndcg_at_10``; other disallowed characters -> ``_``."""
    return _NOT_IN_MLFLOW_NAMES.sub("_", name.replace("@", "_at_"))


def unrecorded_gate_metrics(gate: GateConfig, logged: Mapping[str, float]) -> list[str]:
    """The gate metrics a registered version's run holds no finite value for (``logged``: its run metrics,
    under MLflow names), e.g. a version registered before the gate read validation figures."""
    return [m for m in gate.metrics if not math.isfinite(logged.get(mlflow_metric_key(m), math.nan))]


def check_gate(gate: GateConfig, candidate: Mapping[str, float]) -> None:
    """Fail before anything is logged when the gate cannot judge this candidate."""
    if not gate.metrics:
        raise ConfigError("params.register.gate.metrics: name at least one metric to compare models on")
    not_validation = [m for m in gate.metrics if m.split(".", 1)[0] != GATE_BLOCK]
    if not_validation:
        raise ConfigError(
            f"params.register.gate.metrics: {not_validation} are not validation figures; the gate chooses on "
            f"{GATE_BLOCK}.* only (test figures are stored with each version, never used to choose)"
        )
    stray = sorted(set(gate.lower_is_better) - set(gate.metrics))
    if stray:
        raise ConfigError(f"params.register.gate.lower_is_better: {stray} are not gate metrics")
    missing = [m for m in gate.metrics if m not in candidate]
    if missing:
        known = ", ".join(sorted(candidate)[:20])
        raise UnigrecError(f"gate metric(s) {missing} are not in the evaluation metrics (known: {known} ...)")
    broken = [m for m in gate.metrics if not math.isfinite(candidate[m])]
    if broken:
        raise UnigrecError(f"gate metric(s) {broken} of the candidate are not finite numbers")


@dataclasses.dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str  # one sentence, stored on the model version and in metrics/register.json
    improvements: dict[str, float]  # per gate metric, candidate minus champion, signed so > 0 = better


def gate_decision(
    gate: GateConfig,
    candidate: Mapping[str, float],
    candidate_data_hash: str,
    champion: Mapping[str, float] | None,
    champion_data_hash: str | None,
    champion_label: str = "the champion",
) -> GateDecision:
    """Promote iff some gate metric improves by more than ``min_improvement`` and none worsens by more
    than ``max_regression`` — judged only when both were evaluated on the same data."""
    if champion is None:
        return GateDecision(True, "no champion yet: the first registered model becomes champion", {})
    if champion_data_hash != candidate_data_hash:
        return GateDecision(
            False,
            f"not compared: {champion_label} was evaluated on data {short_hash(champion_data_hash)}, this "
            f"candidate on {short_hash(candidate_data_hash)}; metrics on different data say nothing about which "
            "model is better (register.reevaluate_champion: true evaluates the champion on this data first; "
            "or move the alias by hand)",
            {},
        )
    missing = [m for m in gate.metrics if not math.isfinite(champion.get(m, math.nan))]
    if missing:
        return GateDecision(
            False,
            f"not compared: {champion_label} has no value for gate metric(s) {missing} (registered before "
            "they existed? register.reevaluate_champion: true evaluates it with this code first; or move the "
            "alias by hand)",
            {},
        )

    sign = {m: -1.0 if m in gate.lower_is_better else 1.0 for m in gate.metrics}
    gains = {m: sign[m] * (candidate[m] - champion[m]) for m in gate.metrics}
    versus = {m: f"{m} {candidate[m]:.4f} vs {champion[m]:.4f}" for m in gate.metrics}
    worse = [versus[m] for m, g in gains.items() if g < -gate.max_regression]
    better = [versus[m] for m, g in gains.items() if g > gate.min_improvement]
    if worse:
        return GateDecision(
            False,
            f"kept {champion_label}: worse on {'; '.join(worse)} (allowed regression {gate.max_regression})",
            gains,
        )
    if not better:
        return GateDecision(
            False,
            f"kept {champion_label}: no gate metric improves by more than {gate.min_improvement} "
            f"({'; '.join(versus.values())})",
            gains,
        )
    return GateDecision(True, f"beats {champion_label} on {'; '.join(better)}", gains)


# Lineage tags (registry/lineage.dvc_lock_hashes) of the params that decide which events a split trains on
# and which it holds out: the source and its semi-synthetic searches, and the split rule.
SPLIT_LINEAGE = ("dvc.ingest.params", "dvc.split.params")


def split_lineage_changes(champion_tags: Mapping[str, str], candidate_tags: Mapping[str, str]) -> list[str]:
    """The :data:`SPLIT_LINEAGE` tags both versions record with different values (one side only: no evidence)."""
    return [k for k in SPLIT_LINEAGE if k in champion_tags and k in candidate_tags
            and champion_tags[k] != candidate_tags[k]]


def new_split_decision(
    gate: GateConfig, champion_tags: Mapping[str, str], candidate_tags: Mapping[str, str], champion_label: str
) -> GateDecision | None:
    """The decision when the champion was made under other ingest/split params, else None (gate as usual).

    Why not evaluate it on this split and compare: a split made by another rule can hold out, for
    validation, events the champion trained on (moving from the per-stream to the time-consistent split
    did, for thousands of ml-100k events), and a model scored on its own training events looks better than
    it is. Neither model is compared; ``gate.on_new_split`` says who holds the alias. Lineage recorded on
    only one side (a project without DVC) is no evidence either way: the gate proceeds as usual.
    """
    changed = split_lineage_changes(champion_tags, candidate_tags)
    if not changed:
        return None
    why = (
        f"not compared: {champion_label} was made under other {' and '.join(k.split('.')[1] for k in changed)} "
        f"params ({', '.join(changed)} differ), so this split may hold out events it trained on and its "
        "validation figures would flatter it; "
    )
    if gate.on_new_split == "promote":
        return GateDecision(True, why + "the candidate, validated on events it never saw, takes the alias "
                            "(register.gate.on_new_split: promote)", {})
    return GateDecision(False, why + f"kept {champion_label} (register.gate.on_new_split: keep; move the alias "
                        "by hand to choose)", {})


def short_hash(data_hash: str | None) -> str:
    """An evaluation-data hash as logs and reasons print it."""
    return "(unrecorded)" if not data_hash else data_hash[:12]
