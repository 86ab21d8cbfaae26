"""MLflow registry with a champion gate: gate logic, registrations on a real SQLite store, the pyfunc
round trip, concurrent registrations and the register stage."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
from pathlib import Path

import pandas as pd
import pytest
from support import REPO
from support.runtime import runtime_config

from unigrec.config import ConfigError, GateConfig, load_section
from unigrec.errors import UnigrecError
from unigrec.registry.gate import check_gate, flatten_metrics, gate_decision, mlflow_metric_key
from unigrec.registry.lineage import dvc_lock_hashes, files_fingerprint
from unigrec.registry.serving_contract import resolve_loader
from unigrec.registry.store import using_tracking_uri

ROOT = REPO
LOADER = "tests.unit.registry.test_registry:load_dummy_model"
GATE = GateConfig(
    metrics=("valid.rec.full.ndcg@10", "valid.search.full.ndcg@10"),
    lower_is_better=(),
    min_improvement=0.0,
    max_regression=0.0,
    on_new_split="promote",
)


# --------------------------------------------------------------------------- a tiny servable model
class DummyRecommender:
    """Ranks a fixed catalogue by stored scores; a search whose query names an item puts it first."""

    def __init__(self, scores: dict[str, float], tag: str) -> None:
        self.scores = scores
        self.tag = tag  # which folder it was loaded from

    def predict(self, requests: pd.DataFrame, k: int) -> pd.DataFrame:
        rows = []
        for request, query in enumerate(requests["query"].fillna("")):
            scores = {item: s + (10.0 if item == query else 0.0) for item, s in self.scores.items()}
            ranked = sorted(scores, key=lambda i: -scores[i])[:k]
            rows += [
                {"request": request, "rank": r, "item_id": i, "score": scores[i]}
                for r, i in enumerate(ranked)
            ]
        return pd.DataFrame(rows)


def load_dummy_model(folder: Path) -> DummyRecommender:
    stored = json.loads((Path(folder) / "scores.json").read_text())
    return DummyRecommender(stored["scores"], stored["tag"])


def make_model_dir(path: Path, tag: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "scores.json").write_text(json.dumps({"tag": tag, "scores": {"a": 0.9, "b": 0.5, "c": 0.1}}))
    return path


EXAMPLE = pd.DataFrame({"user_id": ["1", "2"], "kind": ["rec", "search"], "query": ["", "b"]})


def evaluation(valid: tuple[float, float], test: tuple[float, float]) -> dict:
    """metrics/evaluate.json's shape: (rec, search) full-catalogue NDCG@10 on validation and on test."""

    def block(rec: float, search: float) -> dict:
        return {s: {"n": 50, "full": {"ndcg@10": v, "hr@10": min(1.0, 2 * v)}} for s, v in (("rec", rec), ("search", search))}

    return {"valid": block(*valid), "test": block(*test), "variant": "x"}


def nested_metrics(rec: float, search: float) -> dict:
    """The gate's validation figures ``rec``/``search``; test figures half of them (stored, never compared)."""
    return evaluation((rec, search), (rec / 2, search / 2))


# --------------------------------------------------------------------------- pure gate logic
def test_flatten_and_mlflow_names():
    flat = flatten_metrics({"test": {"rec": {"ndcg@10": 0.1, "hr@10": 0.2}, "search": {"ndcg@10": 0.2}}, "variant": "x"})
    assert flat == {"test.rec.ndcg@10": 0.1, "test.rec.hr@10": 0.2, "test.search.ndcg@10": 0.2}
    assert mlflow_metric_key("test.rec.ndcg@10") == "test.rec.ndcg_at_10"
    assert mlflow_metric_key("a+b(c)") == "a_b_c_"


@pytest.mark.parametrize(
    ("candidate", "champion", "promote", "words"),
    [
        ((0.2, 0.3), None, True, "first"),
        ((0.2, 0.3), (0.1, 0.3), True, "beats"),
        ((0.2, 0.3), (0.2, 0.3), False, "no gate metric improves"),
        ((0.3, 0.2), (0.2, 0.3), False, "worse on valid.search.full.ndcg@10"),
        ((0.1, 0.1), (0.2, 0.3), False, "worse"),
    ],
)
def test_gate_decision(candidate, champion, promote, words):
    cand = dict(zip(GATE.metrics, candidate))
    champ = dict(zip(GATE.metrics, champion)) if champion else None
    decision = gate_decision(GATE, cand, "h", champ, "h" if champ else None, "champion v1")
    assert decision.promote is promote
    assert words in decision.reason


def project_gate() -> GateConfig:
    return load_section("register", ROOT / "params.yaml").gate


def test_a_candidate_better_on_test_but_worse_on_validation_is_not_promoted():
    """Issue 35: the gate chooses on validation; test figures never choose (this failed while the
    project's gate read test.*)."""
    champion = flatten_metrics(evaluation(valid=(0.30, 0.30), test=(0.20, 0.20)))
    candidate = flatten_metrics(evaluation(valid=(0.29, 0.30), test=(0.40, 0.40)))
    decision = gate_decision(project_gate(), candidate, "h", champion, "h", "champion v1")
    assert not decision.promote
    assert decision.reason.startswith("kept champion v1: worse on valid.rec.full.ndcg@10 0.2900 vs 0.3000")


def test_a_candidate_better_on_validation_is_promoted_whatever_its_test_figures():
    champion = flatten_metrics(evaluation(valid=(0.30, 0.30), test=(0.40, 0.40)))
    candidate = flatten_metrics(evaluation(valid=(0.31, 0.30), test=(0.10, 0.10)))
    decision = gate_decision(project_gate(), candidate, "h", champion, "h", "champion v1")
    assert decision.promote
    assert decision.reason == "beats champion v1 on valid.rec.full.ndcg@10 0.3100 vs 0.3000"
    assert set(decision.improvements) == {"valid.rec.full.ndcg@10", "valid.search.full.ndcg@10"}


def test_gate_tolerances_and_lower_is_better():
    gate = dataclasses.replace(
        GATE,
        metrics=("ndcg", "logloss"),
        lower_is_better=("logloss",),
        min_improvement=0.01,
        max_regression=0.005,
    )
    champ = {"ndcg": 0.30, "logloss": 0.50}
    # a tiny ndcg gain is not enough ...
    assert not gate_decision(gate, {"ndcg": 0.305, "logloss": 0.50}, "h", champ, "h").promote
    # ... a lower logloss is a gain, and a regression within tolerance is accepted
    assert gate_decision(gate, {"ndcg": 0.297, "logloss": 0.45}, "h", champ, "h").promote
    assert not gate_decision(gate, {"ndcg": 0.29, "logloss": 0.45}, "h", champ, "h").promote


def test_gate_refuses_to_compare_across_evaluation_data():
    cand = dict.fromkeys(GATE.metrics, 0.9)
    champ = dict.fromkeys(GATE.metrics, 0.1)
    decision = gate_decision(GATE, cand, "aaaa", champ, "bbbb")
    assert not decision.promote and "not compared" in decision.reason and "aaaa" in decision.reason


def test_check_gate_names_missing_metrics():
    with pytest.raises(UnigrecError, match="valid.search.full.ndcg@10"):
        check_gate(GATE, {"valid.rec.full.ndcg@10": 0.1})
    with pytest.raises(UnigrecError, match="lower_is_better"):
        check_gate(dataclasses.replace(GATE, lower_is_better=("other",)), dict.fromkeys(GATE.metrics, 0.1))


@pytest.mark.parametrize("name", ["test.rec.full.ndcg@10", "baselines.popularity.rec.full.ndcg@10", "ndcg"])
def test_check_gate_refuses_figures_other_than_validation(name):
    """Test figures (and anything outside the valid block) never choose the champion: one clear line."""
    gate = dataclasses.replace(GATE, metrics=(GATE.metrics[0], name))
    everything = flatten_metrics(nested_metrics(0.2, 0.3)) | {name: 0.5}
    with pytest.raises(ConfigError) as error:
        check_gate(gate, everything)
    assert str(error.value) == (
        f"params.register.gate.metrics: [{name!r}] are not validation figures; the gate chooses on valid.* only "
        "(test figures are stored with each version, never used to choose)"
    )
    check_gate(project_gate(), everything)  # the project's own gate reads validation figures only


def test_resolve_loader_errors_name_the_spec():
    assert resolve_loader(LOADER).__name__ == "load_dummy_model"
    for spec in ("no_colon", "unigrec.nope:f", "unigrec.config:no_such_function"):
        with pytest.raises(UnigrecError, match="loader"):
            resolve_loader(spec)


def test_a_version_registered_before_serving_moved_still_resolves_its_loader():
    """Versions logged before serving moved to unigrec.inference name unigrec.model.serving in their
    model_config; the registry must keep serving them (a champion is never lost to a refactor)."""
    from unigrec.inference.serving import load_recommender

    assert resolve_loader("unigrec.model.serving:load_recommender") is load_recommender


def test_files_fingerprint_and_dvc_lock(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.bin").write_bytes(b"123")
    first = files_fingerprint([tmp_path / "d"])
    assert first == files_fingerprint([tmp_path / "d"])
    (tmp_path / "d" / "x.bin").write_bytes(b"124")
    assert files_fingerprint([tmp_path / "d"]) != first
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\nstages:\n  split:\n    params:\n      params.yaml:\n        split: {seed: 1}\n"
        "    outs:\n    - path: data/split\n      hash: md5\n      md5: abc.dir\n"
    )
    hashes = dvc_lock_hashes(lock)
    assert hashes["dvc.split.data/split"] == "abc.dir" and len(hashes["dvc.split.params"]) == 32
    assert dvc_lock_hashes(tmp_path / "missing.lock") == {}


# --------------------------------------------------------------------------- real MLflow store
def register_cfg():
    """The project's register params, pointed at the dummy loader and a store in each test's root."""
    cfg = load_section("register", ROOT / "params.yaml")
    return dataclasses.replace(
        cfg,
        loader=LOADER,
        model_name="tiny",
        requirements=("pandas",),
        tracking_uri="sqlite:///mlflow.db",
        gate=GATE,
    )


def register(root: Path, rec: float, search: float, data_hash: str = "data-1", tag: str = "m"):
    from unigrec.registry.register import Candidate, register_candidate

    candidate = Candidate(
        model_dir=make_model_dir(root / "models" / tag, tag),
        metrics=flatten_metrics(nested_metrics(rec, search)),
        eval_data_hash=data_hash,
        input_example=EXAMPLE,
        params={"train.lr": 0.001},
        tags={"git_commit": "abc"},
    )
    return register_candidate(register_cfg(), candidate, root)


@pytest.fixture(autouse=True)
def _no_inherited_tracking_uri(monkeypatch):
    # MLFLOW_TRACKING_URI wins over params: one set outside the tests would send them elsewhere.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store shared by the tests below (MLflow is slow to import and to create a DB)."""
    pytest.importorskip("mlflow")
    root = tmp_path_factory.mktemp("registry")
    old = os.environ.pop("MLFLOW_TRACKING_URI", None)
    results = {
        "first": register(root, 0.10, 0.20, tag="first"),
        "better": register(root, 0.15, 0.25, tag="better"),
        "worse": register(root, 0.12, 0.30, tag="worse"),
        "other_data": register(root, 0.90, 0.90, data_hash="data-2", tag="other"),
    }
    yield root, results
    if old is not None:
        os.environ["MLFLOW_TRACKING_URI"] = old


def _client(root: Path):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{root.resolve() / 'mlflow.db'}")


def test_champion_gate_keeps_the_better_model(store):
    root, r = store
    assert r["first"].promoted and r["first"].version == 1 and r["first"].previous_champion is None
    assert r["better"].promoted and r["better"].previous_champion == 1
    assert not r["worse"].promoted and r["worse"].champion_version == 2
    assert "worse on valid.rec.full.ndcg@10" in r["worse"].reason
    assert not r["other_data"].promoted and "not compared" in r["other_data"].reason

    client = _client(root)
    versions = sorted(int(v.version) for v in client.search_model_versions("name='tiny'"))
    assert versions == [1, 2, 3, 4]  # every candidate kept, none overwritten
    assert int(client.get_model_version_by_alias("tiny", "champion").version) == 2
    worse = client.get_model_version("tiny", "3")
    assert worse.tags["unigrec.promoted"] == "false" and "worse" in worse.tags["unigrec.gate_reason"]
    assert worse.tags["unigrec.eval_data_hash"] == "data-1" and worse.tags["git_commit"] == "abc"
    run = client.get_run(worse.run_id)
    assert run.data.metrics["valid.rec.full.ndcg_at_10"] == pytest.approx(0.12)
    assert run.data.metrics["test.rec.full.ndcg_at_10"] == pytest.approx(0.06)  # stored, never compared
    assert run.data.params["train.lr"] == "0.001"


def test_champion_round_trips_as_pyfunc(store):
    import mlflow.pyfunc

    root, _ = store
    with using_tracking_uri(f"sqlite:///{root.resolve() / 'mlflow.db'}"):
        model = mlflow.pyfunc.load_model("models:/tiny@champion")
    out = model.predict(EXAMPLE, params={"k": 2})
    assert list(out.columns) == ["request", "rank", "item_id", "score"]
    assert out[out["request"] == 0]["item_id"].tolist() == ["a", "b"]
    assert out[out["request"] == 1]["item_id"].tolist()[0] == "b"  # the query names b
    # the champion's own model folder, not the last registered one
    assert model.unwrap_python_model()._model.tag == "better"
    sig = model.metadata.signature
    assert sig.inputs.input_names() == ["user_id", "kind", "query"] and sig.params.params[0].name == "k"


def test_unservable_model_is_not_registered(tmp_path):
    from unigrec.registry.register import Candidate, register_candidate

    bad = Candidate(
        model_dir=tmp_path / "empty",
        metrics=flatten_metrics(nested_metrics(0.1, 0.1)),
        eval_data_hash="h",
        input_example=EXAMPLE,
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnigrecError, match="does not serve"):
        register_candidate(register_cfg(), bad, tmp_path)
    client = _client(tmp_path)
    assert not client.search_model_versions("name='tiny'")


def _register_in_child(root: str, rec: float, tag: str) -> None:
    register(Path(root), rec, 0.2, tag=tag)


def test_concurrent_registrations_keep_both_versions_and_one_champion(tmp_path):
    pytest.importorskip("mlflow")
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters, as two `dvc repro` would be
    procs = [
        ctx.Process(target=_register_in_child, args=(str(tmp_path), rec, tag))
        for rec, tag in ((0.1, "p1"), (0.2, "p2"))
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0, 0]
    client = _client(tmp_path)
    versions = client.search_model_versions("name='tiny'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    champion = client.get_model_version_by_alias("tiny", "champion")
    assert {a: int(v) for a, v in client.get_registered_model("tiny").aliases.items()} == {
        "champion": int(champion.version)
    }
    # the lock serialised them: one run ended before the other started
    first, second = sorted((client.get_run(v.run_id).info for v in versions), key=lambda r: r.start_time)
    assert first.end_time <= second.start_time
    # whichever ran first, the better model (rec 0.2) must hold the alias at the end
    assert client.get_run(champion.run_id).data.metrics["valid.rec.full.ndcg_at_10"] == pytest.approx(0.2)


def test_register_stage_writes_its_decision(tmp_path):
    from unigrec.paths import Layout
    from unigrec.stages.register import run

    layout = Layout(tmp_path)
    make_model_dir(layout.model_dir, "stage")
    layout.serving_dir.mkdir(parents=True)
    (layout.serving_dir / "bundle.txt").write_text("catalogue and histories")
    layout.evaluate_metrics.parent.mkdir(parents=True)
    layout.evaluate_metrics.write_text(json.dumps(nested_metrics(0.2, 0.3)))
    layout.split_dir.mkdir(parents=True)
    events = pd.DataFrame(
        {
            "user_id": ["1", "1", "1"],
            "item_id": ["a", "b", "c"],
            "timestamp": [1, 2, 3],
            "kind": ["rec", "search", "rec"],
            "query": [None, "b", None],
            "label": [1, 1, 1],
            "order": [0, 1, 2],
            "split": ["train", "test", "test"],
        }
    )
    events.to_parquet(layout.events)
    pd.DataFrame({"user_id": ["1"], "item_id": ["c"]}).to_parquet(layout.candidates)
    layout.ids_dir.mkdir(parents=True)
    (layout.ids_dir / "codebooks.json").write_text("{}")
    (tmp_path / "params.yaml").write_text("train:\n  optim:\n    lr: 0.003\n")

    first = run(register_cfg(), layout, runtime_config())
    second = run(register_cfg(), layout, runtime_config())  # same model, same numbers: registered, not promoted
    assert first["promoted"] and first["version"] == 1
    assert not second["promoted"] and second["version"] == 2 and second["champion_version"] == 1
    written = json.loads(layout.register_metrics.read_text())
    assert written == second and "no gate metric improves" in written["reason"]
    client = _client(tmp_path)
    run_data = client.get_run(written["run_id"]).data
    assert run_data.params["train.optim.lr"] == "0.003"
    assert run_data.tags["unigrec.eval_data_hash"] == written["eval_data_hash"]
    assert run_data.tags["git_commit"]
    artifacts = {a.path for a in client.list_artifacts(written["run_id"])}
    assert {"identifiers", "params", "evaluation"} <= artifacts



def test_the_pyfunc_refuses_a_k_above_the_serving_limit_it_was_registered_with(tmp_path):
    """Issue 40: over `mlflow models serve`, params.k is anyone's to set; the registered model bounds it by
    serving.max_k (the catalogue size is no bound for a large catalogue), before any model work."""
    from types import SimpleNamespace

    from unigrec.errors import UnigrecError
    from unigrec.registry.pyfunc_model import MODEL_DIR_ARTIFACT, RegisteredRecommender, model_config

    folder = make_model_dir(tmp_path / "m", "m")
    served = RegisteredRecommender()
    served.load_context(SimpleNamespace(model_config=model_config(LOADER, 2, max_k=2),
                                        artifacts={MODEL_DIR_ARTIFACT: str(folder)}))
    assert len(served.predict(None, EXAMPLE, {"k": 2})) == 4
    with pytest.raises(UnigrecError, match="k must be at most 2 .serving.max_k"):
        served.predict(None, EXAMPLE, {"k": 1_000_000_000})
    unbounded = RegisteredRecommender()  # a version registered before the bound: the loader's own limit
    unbounded.load_context(SimpleNamespace(model_config={"loader": LOADER, "top_k": 2},
                                           artifacts={MODEL_DIR_ARTIFACT: str(folder)}))
    assert len(unbounded.predict(None, EXAMPLE, {"k": 3})) == 6
