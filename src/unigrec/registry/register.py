"""Register a candidate model version and decide, under a lock, whether it becomes the champion."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from unigrec.config import RegisterConfig
from unigrec.errors import UnigrecError
from unigrec.registry.gate import (
    GateDecision,
    check_gate,
    gate_decision,
    mlflow_metric_key,
    new_split_decision,
    short_hash,
)
from unigrec.registry.serving_contract import resolve_loader
from unigrec.registry.store import (
    artifact_location,
    lock_file,
    quiet_mlflow_environment,
    registration_lock,
    reroot_artifacts,
    sqlite_file,
    tracking_uri,
    using_tracking_uri,
)

log = logging.getLogger(__name__)

EVAL_DATA_HASH_TAG = "unigrec.eval_data_hash"
PROMOTED_TAG = "unigrec.promoted"
REASON_TAG = "unigrec.gate_reason"
REEVALUATED_TAG = "unigrec.reevaluated_from"  # on a version that is an older version re-evaluated
_OWN_TAG_PREFIX = "unigrec."  # tags this module writes; the rest of a version's tags are its lineage


@dataclasses.dataclass(frozen=True)
class Candidate:
    """Everything recorded about one model: what it is, how good it is, on what data, from where."""

    model_dir: Path  # the model folder the loader rebuilds a servable model from
    metrics: Mapping[str, float]  # flat dotted names (see gate.flatten_metrics)
    eval_data_hash: str  # fingerprint of the data the metrics were measured on
    input_example: pd.DataFrame  # a few real requests (user_id, kind, query)
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # flat, logged as run params
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)  # lineage, on run and version
    artifacts: Mapping[str, Path] = dataclasses.field(default_factory=dict)  # run artifact dir -> file/folder
    max_k: int | None = None  # the largest k the registered pyfunc serves (params serving.max_k)


@dataclasses.dataclass(frozen=True)
class RegistrationResult:
    model_name: str
    version: int
    promoted: bool
    reason: str
    champion_version: int  # who holds the alias after this registration
    previous_champion: int | None
    run_id: str
    eval_data_hash: str
    tracking_uri: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ChampionRecord:
    """What the registry says about the version holding the alias (read without the lock: a hint for
    deciding whether to re-evaluate, re-checked under the lock before the alias moves)."""

    version: int
    eval_data_hash: str | None
    lineage: Mapping[str, str]  # the version's own tags (git commit, DVC hashes), not gate bookkeeping
    params: Mapping[str, str]  # the run params it was trained with
    metrics: Mapping[str, float]  # its run metrics under MLflow names (which gate metrics it was measured on)


def pinned_requirements(packages: tuple[str, ...]) -> list[str]:
    """``name==installed version`` for each package, so the model's environment matches this one."""
    out = []
    for name in packages:
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            raise UnigrecError(f"params.register.requirements: {name} is not installed") from None
    return out


# Decides, under the lock, whether the candidate takes the alias: (client, champion version or None,
# candidate) -> decision.
Decide = Callable[[Any, Any, Candidate], GateDecision]


def register_candidate(cfg: RegisterConfig, candidate: Candidate, root: Path) -> RegistrationResult:
    """Log ``candidate`` as a new version of ``cfg.model_name`` and move ``cfg.alias`` only if it wins.

    Versions are only ever added, never deleted or rewritten; the gate decision and its reason are
    tagged on the version whatever the outcome.
    """

    def decide(client: Any, champion: Any | None, candidate: Candidate) -> GateDecision:
        if champion is None:
            return gate_decision(cfg.gate, candidate.metrics, candidate.eval_data_hash, None, None)
        label = f"champion v{champion.version}"
        unjudgeable = new_split_decision(cfg.gate, champion.tags, candidate.tags, label)
        if unjudgeable is not None:
            return unjudgeable
        champion_metrics = client.get_run(champion.run_id).data.metrics
        return gate_decision(
            cfg.gate,
            candidate.metrics,
            candidate.eval_data_hash,
            {
                m: champion_metrics[mlflow_metric_key(m)]
                for m in cfg.gate.metrics
                if mlflow_metric_key(m) in champion_metrics
            },
            champion.tags.get(EVAL_DATA_HASH_TAG),
            champion_label=label,
        )

    return _register(cfg, candidate, root, decide)


def register_reevaluation(
    cfg: RegisterConfig, candidate: Candidate, root: Path, champion_version: int
) -> RegistrationResult:
    """Log ``candidate`` — champion ``champion_version``'s own model, re-evaluated on new data — as a new
    version that takes over the alias, so later candidates are judged against numbers from their data.

    No gate: the model is the one already serving, only its metrics are new. If another registration
    moved the alias meanwhile, the re-evaluation is kept as a version but the alias stays where it is.
    """

    def decide(_: Any, champion: Any | None, candidate: Candidate) -> GateDecision:
        if champion is None or int(champion.version) != champion_version:
            holder = "no version" if champion is None else f"v{champion.version}"
            return GateDecision(
                False,
                f"not promoted: {holder} held the alias by the time this re-evaluation of "
                f"v{champion_version} was registered",
                {},
            )
        return GateDecision(
            True,
            f"re-evaluation of champion v{champion_version} on data {short_hash(candidate.eval_data_hash)}: the "
            "same model keeps the alias, with metrics that candidates on this data can be compared with",
            {},
        )

    tagged = dataclasses.replace(candidate, tags={**candidate.tags, REEVALUATED_TAG: str(champion_version)})
    return _register(cfg, tagged, root, decide)


def current_champion(cfg: RegisterConfig, root: Path) -> ChampionRecord | None:
    """The version holding ``cfg.alias`` with its evaluation-data hash, lineage, params and metrics; None when
    there is no store yet, no such model or no alias."""
    uri = tracking_uri(cfg, root)
    db = sqlite_file(uri)
    if db is not None and not db.exists():
        return None  # do not create an empty store just to look
    quiet_mlflow_environment()
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(uri)
    try:
        champion = _current_champion(client, cfg.model_name, cfg.alias)
    except MlflowException:  # no registered model of that name
        log.debug("registry lookup failed", exc_info=True)
        return None
    if champion is None:
        return None
    run = client.get_run(champion.run_id)
    return ChampionRecord(
        version=int(champion.version),
        eval_data_hash=champion.tags.get(EVAL_DATA_HASH_TAG),
        lineage={k: v for k, v in champion.tags.items() if not k.startswith(_OWN_TAG_PREFIX)},
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
    )


def _register(cfg: RegisterConfig, candidate: Candidate, root: Path, decide: Decide) -> RegistrationResult:
    check_gate(cfg.gate, candidate.metrics)
    resolve_loader(cfg.loader)  # fail before logging anything if the model could never be served
    if not Path(candidate.model_dir).is_dir():
        raise UnigrecError(f"model folder {candidate.model_dir} does not exist")
    requirements = pinned_requirements(cfg.requirements)
    quiet_mlflow_environment()
    uri = tracking_uri(cfg, root)
    with registration_lock(lock_file(cfg, uri, root), cfg.lock_timeout_s), using_tracking_uri(uri):
        reroot_artifacts(cfg, uri, root, locked=True)  # a moved project registers into its own folder
        return _register_locked(cfg, candidate, root, uri, requirements, decide)


def _register_locked(
    cfg: RegisterConfig,
    candidate: Candidate,
    root: Path,
    uri: str,
    requirements: list[str],
    decide: Decide,
) -> RegistrationResult:
    import mlflow
    from mlflow import MlflowClient

    from unigrec.registry.pyfunc_model import (
        ENTRY_FILE,
        MODEL_DIR_ARTIFACT,
        model_config,
        recommender_signature,
    )

    client = MlflowClient(uri)
    experiment_id = _experiment_id(client, cfg.experiment, artifact_location(cfg, uri, root))
    tags = {**candidate.tags, EVAL_DATA_HASH_TAG: candidate.eval_data_hash}

    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.set_tags(tags)
        if candidate.params:
            mlflow.log_params({k: str(v) for k, v in candidate.params.items()})
        mlflow.log_metrics({mlflow_metric_key(k): v for k, v in candidate.metrics.items()})
        mlflow.log_dict(dict(candidate.metrics), "evaluation/metrics.json")
        for name, path in candidate.artifacts.items():
            path = Path(path)
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=name)
            elif path.exists():
                mlflow.log_artifact(str(path), artifact_path=name)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(ENTRY_FILE),
            model_config=model_config(cfg.loader, cfg.top_k, candidate.max_k),
            artifacts={MODEL_DIR_ARTIFACT: str(candidate.model_dir)},
            signature=recommender_signature(cfg.top_k),
            input_example=candidate.input_example,
            pip_requirements=requirements,
        )
        _check_round_trip(info.model_uri, candidate.input_example)
        version = mlflow.register_model(info.model_uri, cfg.model_name, tags=tags)

        champion = _current_champion(client, cfg.model_name, cfg.alias)
        decision = decide(client, champion, candidate)
        if decision.promote:
            client.set_registered_model_alias(cfg.model_name, cfg.alias, version.version)
        _record_decision(client, cfg.model_name, version.version, decision)
        mlflow.set_tags({PROMOTED_TAG: str(decision.promote).lower(), REASON_TAG: decision.reason})

    new_version = int(version.version)
    previous = int(champion.version) if champion is not None else None
    result = RegistrationResult(
        model_name=cfg.model_name,
        version=new_version,
        promoted=decision.promote,
        reason=decision.reason,
        champion_version=new_version if decision.promote or previous is None else previous,
        previous_champion=previous,
        run_id=run.info.run_id,
        eval_data_hash=candidate.eval_data_hash,
        tracking_uri=uri,
    )
    log.info(
        "registry: %s v%d %s (%s)",
        cfg.model_name,
        result.version,
        f"is now {cfg.alias}" if result.promoted else f"registered, {cfg.alias} stays v{previous}",
        result.reason,
    )
    return result


def _experiment_id(client: Any, name: str, artifacts: str | None) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifacts)


def _current_champion(client: Any, model_name: str, alias: str) -> Any | None:
    """The version holding ``alias``, or None; read from the model's alias map, not by catching errors
    (MLflow reports a missing alias with a generic error code)."""
    version = client.get_registered_model(model_name).aliases.get(alias)
    return client.get_model_version(model_name, version) if version is not None else None


def _check_round_trip(model_uri: str, example: pd.DataFrame) -> None:
    """Load the logged artefact back and serve the example: an unservable model is never registered."""
    import mlflow.pyfunc

    try:
        mlflow.pyfunc.load_model(model_uri).predict(example)
    except Exception as exc:
        raise UnigrecError(f"the logged model does not serve its input example: {exc}") from exc


def _record_decision(client: Any, model_name: str, version: str, decision: GateDecision) -> None:
    client.set_model_version_tag(model_name, version, PROMOTED_TAG, str(decision.promote).lower())
    client.set_model_version_tag(model_name, version, REASON_TAG, decision.reason)
    for metric, gain in decision.improvements.items():
        client.set_model_version_tag(
            model_name, version, f"unigrec.gain.{mlflow_metric_key(metric)}", f"{gain:.6g}"
        )
