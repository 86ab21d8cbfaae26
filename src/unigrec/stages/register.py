"""``register`` stage: log the trained model with its metrics and lineage to MLflow, register a new
version, and move the champion alias only if the gate says the candidate is better.

When the champion was evaluated on other data (the split or candidate lists changed since), or holds no
value for a gate metric (registered before the gate chose on validation figures), the stage first evaluates
the champion on this data with this code and registers that as a new version holding the alias, so the
gate compares two models on the same data and figures instead of giving up."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unigrec.atomic import stage_outputs, write_json
from unigrec.config import PARAMS_FILE, RegisterConfig, RuntimeConfig, load_section, read_params_file
from unigrec.errors import UnigrecError
from unigrec.paths import Layout, require_inputs

if TYPE_CHECKING:
    from unigrec.registry.register import Candidate, ChampionRecord

log = logging.getLogger(__name__)

DVC_LOCK = "dvc.lock"


def run(cfg: RegisterConfig, layout: Layout, runtime: RuntimeConfig) -> dict[str, Any]:
    import pandas as pd

    from unigrec.inference.serving import assemble_servable_folder
    from unigrec.registry.gate import check_gate, flatten_mapping, flatten_metrics, split_lineage_changes
    from unigrec.registry.lineage import dvc_lock_hashes, files_fingerprint, git_state
    from unigrec.registry.register import Candidate, current_champion, register_candidate
    from unigrec.registry.serving_contract import request_examples

    require_inputs((
        (layout.model_dir, "train"),
        (layout.evaluate_metrics, "evaluate"),
        (layout.serving_dir, "evaluate"),
        (layout.events, "split"),
    ))
    metrics = flatten_metrics(json.loads(layout.evaluate_metrics.read_text(encoding="utf-8")))
    check_gate(cfg.gate, metrics)  # a gate that cannot judge (or reads test figures) fails before any work
    # The evaluation's inputs: held-out events, their 1+99 lists, and the catalogue ranked against.
    eval_data = [layout.events, layout.candidates, layout.items]
    params_file = layout.root / PARAMS_FILE
    lock = layout.root / DVC_LOCK
    # Serving needs the catalogue, user histories and query vectors beside the weights: register one
    # self-contained folder so the champion can serve anywhere it is loaded.
    raw_params = read_params_file(params_file) if params_file.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = assemble_servable_folder(layout.model_dir, layout.serving_dir, Path(tmp) / "model")
        candidate = Candidate(
            model_dir=folder,
            metrics=metrics,
            eval_data_hash=files_fingerprint([p for p in eval_data if p.exists()]),
            input_example=request_examples(pd.read_parquet(layout.events)),
            params=flatten_mapping(raw_params),
            tags={**git_state(layout.root), **dvc_lock_hashes(lock)},
            # the pyfunc refuses a k above the project's serving limit, as the CLI and the service do
            max_k=load_section("serving", params_file).max_k if "serving" in raw_params else None,
            artifacts={
                "identifiers": layout.ids_dir,
                "lineage": lock,
                "params": params_file,
                "evaluation": layout.evaluate_metrics,
            },
        )
        champion = current_champion(cfg, layout.root)
        reevaluation: dict[str, Any] | None = None
        why = reevaluation_reason(cfg, champion, candidate) if champion is not None else None
        if why is not None and split_lineage_changes(champion.lineage, candidate.tags):
            # made under another split rule: its figures on this split could be on its own training events,
            # so evaluating it here settles nothing (the gate says so and applies register.gate.on_new_split)
            reevaluation = {"of_version": champion.version, "skipped": "made under other ingest/split params"}
            why = None
        if cfg.reevaluate_champion and champion is not None and why is not None:
            work = Path(tmp) / "champion"
            reevaluation = reevaluate_champion(cfg, runtime, layout, champion, candidate, work, why)
        result = register_candidate(cfg, candidate, layout.root)
    # The tracking URI is an absolute path on this machine: kept out of the git-tracked metrics file.
    summary = {k: v for k, v in result.as_dict().items() if k != "tracking_uri"}
    summary["champion_reevaluation"] = reevaluation
    with stage_outputs(layout.root, "register", files=[layout.register_metrics]) as out:
        write_json(out[layout.register_metrics], summary)
    return summary


# The lineage tag (registry/lineage.dvc_lock_hashes) of the evaluate params a version was evaluated with.
EVALUATION_LINEAGE = "dvc.evaluate.params"


def reevaluation_reason(cfg: RegisterConfig, champion: ChampionRecord, candidate: Candidate) -> str | None:
    """Why the gate cannot compare ``candidate`` with ``champion``'s stored figures, or None when it can:
    they were measured on other data or under other evaluate params, or the champion has no value for a gate
    metric (a version registered before the gate chose on validation figures)."""
    from unigrec.registry.gate import short_hash, unrecorded_gate_metrics

    if champion.eval_data_hash != candidate.eval_data_hash:
        return (
            f"was evaluated on data {short_hash(champion.eval_data_hash)}, this candidate on "
            f"{short_hash(candidate.eval_data_hash)}"
        )
    before, now = champion.lineage.get(EVALUATION_LINEAGE), candidate.tags.get(EVALUATION_LINEAGE)
    if before is not None and now is not None and before != now:
        # Its serving bundle holds settings chosen under the old evaluate params (re-ranking and lexical
        # weights, the query reader): a change there alone leaves the gate figures tied, so without this the
        # champion would keep serving the old pipeline for good.
        return "was evaluated with other evaluate params (its served settings were chosen under them)"
    missing = unrecorded_gate_metrics(cfg.gate, champion.metrics)
    if missing:
        return f"has no value for gate metric(s) {missing}"
    return None


def reevaluate_champion(
    cfg: RegisterConfig,
    runtime: RuntimeConfig,
    layout: Layout,
    champion: ChampionRecord,
    candidate: Candidate,
    work: Path,
    why: str,
) -> dict[str, Any]:
    """Evaluate ``champion`` on the candidate's data and register it as a new version that keeps the alias
    (``why``: :func:`reevaluation_reason`, for the log).

    Never raises: a champion that cannot be evaluated here (a model format this code no longer reads, a
    catalogue missing its items) stays champion untouched, and the gate then reports "not compared" as
    before; the reason is logged and written to metrics/register.json.
    """
    from unigrec.evaluate.reevaluate import reevaluate_folder
    from unigrec.inference.serving import BUNDLE_DIR
    from unigrec.registry.download import registered_model_dir
    from unigrec.registry.gate import flatten_metrics
    from unigrec.registry.register import Candidate, register_reevaluation

    log.info("registry: champion v%d %s: evaluating the champion on this data first", champion.version, why)
    try:
        folder = registered_model_dir(cfg, layout.root, work / "download", version=champion.version)
        if folder is None:
            raise UnigrecError(f"could not download {cfg.model_name} v{champion.version} from the registry")
        # Its bundle holds the old data's histories and re-ranking weights; this data's replace it whole.
        shutil.rmtree(folder / BUNDLE_DIR, ignore_errors=True)
        eval_cfg = load_section("evaluate", layout.root / PARAMS_FILE)
        servable, metrics = reevaluate_folder(eval_cfg, runtime, layout, folder, work / "reevaluated")
        metrics_file = work / "evaluate.json"
        write_json(metrics_file, metrics)
        result = register_reevaluation(
            cfg,
            Candidate(
                model_dir=servable,
                metrics=flatten_metrics(metrics),
                eval_data_hash=candidate.eval_data_hash,
                input_example=candidate.input_example,
                params=champion.params,
                # how the model was made; only its evaluation is new, and says under which params
                tags={**champion.lineage, **({EVALUATION_LINEAGE: candidate.tags[EVALUATION_LINEAGE]}
                                             if EVALUATION_LINEAGE in candidate.tags else {})},
                artifacts={"evaluation": metrics_file},
                max_k=candidate.max_k,
            ),
            layout.root,
            champion.version,
        )
    except Exception as exc:  # any failure here must leave the registry as it was
        log.debug("champion re-evaluation failed", exc_info=True)
        log.warning(
            "registry: champion v%d could not be evaluated on this data (%s); it stays champion and the "
            "gate will not compare the candidate with it",
            champion.version, exc,
        )
        return {"of_version": champion.version, "error": f"{type(exc).__name__}: {exc}"}
    return {"of_version": champion.version, "version": result.version, "promoted": result.promoted}
