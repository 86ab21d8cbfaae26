"""``unigrec serve`` for real: a tiny model registered as champion in a real MLflow registry, the service
on a free loopback port (uvicorn in a thread), recommend / search / batch / a bad request over HTTP, and a
champion swap picked up by the alias poller. Also the k bound where requests enter (defect 1 of issue
40) and the per-version cache the CLI shares with the service."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from support.evaluate_project import evaluate_cfg, evaluate_runtime, tiny_project

from unigrec.errors import UnigrecError

pytest.importorskip("mlflow")
pytest.importorskip("fastapi")
pytestmark = pytest.mark.slow  # ~25 s on 2 cores: evaluate stage, two registrations, a real server

PARAMS = "params-service.yaml"
MAX_K = 25
POLL_S = 0.3


@pytest.fixture(autouse=True)
def _no_inherited_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The tiny project with its serving bundle, a fast-polling params file and no registry yet."""
    from unigrec.stages.evaluate import run

    layout = tiny_project(tmp_path_factory.mktemp("service"))
    torch.manual_seed(0)
    run(dataclasses.replace(evaluate_cfg(), baselines=()), layout, evaluate_runtime())  # writes models/serving
    raw = yaml.safe_load((layout.root / "params.yaml").read_text())
    raw["serving"].update(max_k=MAX_K, poll_s=POLL_S)
    (layout.root / PARAMS).write_text(yaml.safe_dump(raw))
    return layout


def _register(layout, folder_name: str, bonus: float) -> str:
    """Register the project's model the way the register stage does; metrics + ``bonus`` beat the gate."""
    from unigrec.config import load_section
    from unigrec.inference.serving import assemble_servable_folder
    from unigrec.registry.gate import flatten_metrics
    from unigrec.registry.register import Candidate, register_candidate
    from unigrec.registry.serving_contract import request_examples

    cfg = dataclasses.replace(load_section("register", layout.root / PARAMS), requirements=("pandas",))
    folder = assemble_servable_folder(layout.model_dir, layout.serving_dir, layout.root / "servable" / folder_name)
    metrics = {k: v + bonus for k, v in flatten_metrics(json.loads(layout.evaluate_metrics.read_text())).items()}
    candidate = Candidate(folder, metrics, "data-1", request_examples(pd.read_parquet(layout.events)))
    result = register_candidate(cfg, candidate, layout.root)
    assert result.promoted
    return str(result.version)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(base: str, path: str, body: dict | None = None) -> tuple[int, dict, str]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read().decode()
            return resp.status, json.loads(text), text
    except urllib.error.HTTPError as err:
        text = err.read().decode()
        return err.code, json.loads(text), text


@pytest.fixture(scope="module")
def service(project):
    """The service of the project's champion (v1), on a free loopback port; yields its base URL."""
    import uvicorn

    from unigrec.service.app import build_app

    _register(project, "v1", 0.0)
    app, limits, _ = build_app(project.root, PARAMS)
    assert limits.host == "127.0.0.1"  # the default: loopback only
    server = uvicorn.Server(uvicorn.Config(app, host=limits.host, port=_free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)
    yield f"http://{limits.host}:{server.config.port}"
    server.should_exit = True
    thread.join(timeout=30)


def _known_query(project) -> str:
    """A query whose vector is in the bundle, so no test loads MiniLM."""
    return str(np.load(project.serving_dir / "queries.npz")["texts"][0])


def test_recommend_search_batch_and_health(service, project):
    status, health, _ = _call(service, "/health")
    assert status == 200 and health["model_version"] == "1" and health["status"] == "ok"

    status, rec, _ = _call(service, "/recommend", {"user_id": "u001", "k": 4})
    assert status == 200 and rec["model_version"] == "1" and rec["known_user"] is True
    assert [i["rank"] for i in rec["items"]] == [1, 2, 3, 4]
    events = pd.read_parquet(project.events)
    assert not {i["item_id"] for i in rec["items"]} & set(events.loc[events["user_id"] == "u001", "item_id"])

    query = _known_query(project)
    status, found, _ = _call(service, "/search", {"query": query, "user_id": "u002", "k": 3})
    assert status == 200 and found["model_version"] == "1" and len(found["items"]) == 3 and found["query"] == query

    asks = [{"kind": "rec", "user_id": "u001"}, {"kind": "search", "query": query, "user_id": "u002"},
            {"kind": "rec", "user_id": "stranger"}]
    status, batch, _ = _call(service, "/batch", {"requests": asks, "k": 3})
    assert status == 200 and batch["model_version"] == "1"
    assert [r["kind"] for r in batch["results"]] == ["rec", "search", "rec"]
    assert [r["known_user"] for r in batch["results"]] == [True, True, False]
    # decoded together, answered as if asked one by one
    assert [i["item_id"] for i in batch["results"][0]["items"]] == [i["item_id"] for i in rec["items"][:3]]
    assert [i["item_id"] for i in batch["results"][1]["items"]] == [i["item_id"] for i in found["items"]]


@pytest.mark.parametrize(
    ("path", "body", "field", "rule"),
    [
        ("/recommend", {"user_id": "u001", "k": 1_000_000_000}, "k", f"must be at most {MAX_K} (serving.max_k)"),
        ("/recommend", {"user_id": "u001", "k": 0}, "k", "must be at least 1"),
        ("/search", {"query": "  "}, "query", "a search needs a non-empty query"),
        ("/batch", {"requests": [{"kind": "ads", "user_id": "u001"}]}, "requests.0.kind", "must be one of"),
    ],
)
def test_bad_requests_get_our_422(service, project, path, body, field, rule):
    status, problem, text = _call(service, path, body)
    assert status == 422 and problem["field"] == field and rule in problem["rule"]
    assert problem["model_version"] in {"1", "2"}
    assert "Traceback" not in text and str(project.root) not in text and "site-packages" not in text


def test_the_service_follows_the_champion_alias(service, project):
    assert _call(service, "/health")[1]["model_version"] == "1"
    assert _register(project, "v2", 1.0) == "2"  # better on every gate metric: the alias moves
    deadline = time.monotonic() + 30
    while _call(service, "/health")[1]["model_version"] != "2":
        assert time.monotonic() < deadline, "the service never picked up v2"
        time.sleep(POLL_S)
    status, rec, _ = _call(service, "/recommend", {"user_id": "u001", "k": 2})
    assert status == 200 and rec["model_version"] == "2"


# --------------------------------------------------------------------------- k bound (issue 40, defect 1)
class _Decoded(AssertionError):
    pass


def _no_decoding(*args, **kwargs):
    raise _Decoded("predict started decoding")


def test_predict_refuses_a_huge_k_before_decoding(project, monkeypatch):
    """k = 1e9 asked for a 1e9-wide beam (~13 GB): it must fail with a clear error before any decoding."""
    from unigrec.inference import retrieval
    from unigrec.inference.serving import load_recommender

    monkeypatch.setattr(retrieval, "decode_encoded", _no_decoding)
    requests = pd.DataFrame({"user_id": ["u001"], "kind": ["rec"], "query": [""]})
    limited = load_recommender(project.model_dir, max_k=MAX_K)
    with pytest.raises(UnigrecError, match=f"k must be at most {MAX_K}"):
        limited.predict(requests, 1_000_000_000)
    default = load_recommender(project.model_dir)  # no limit given (the MLflow pyfunc): the catalogue size
    assert default.max_k == default.model.items.n_items
    with pytest.raises(UnigrecError, match="k must be at most"):
        default.predict(requests, default.max_k + 1)
    with pytest.raises(_Decoded):  # the bound is not stricter than it says
        default.predict(requests, default.max_k)


def test_cli_refuses_a_huge_k_before_loading_anything(project, monkeypatch, caplog):
    from unigrec.cli import main
    from unigrec.service import champion

    monkeypatch.setattr(champion, "load_served", lambda *a, **k: pytest.fail("loaded a model"))
    root = str(project.root)
    assert main(["recommend", "--root", root, "--params", PARAMS, "--user", "u001", "--k", "1000000000"]) == 2
    assert main(["search", "--root", root, "--params", PARAMS, "--query", "film", "--k", "0"]) == 2
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        f"--k: must be at most {MAX_K} (serving.max_k), not 1000000000", "--k: must be at least 1, not 0"
    ]


def test_cli_on_a_warm_cache_neither_asks_mlflow_nor_downloads(service, project, monkeypatch, capsys):
    """The CLI shares the service's per-version cache: once a version is fetched, a call with an unchanged
    registry reads the alias answer and the folder from the cache."""
    from unigrec.cli import main
    from unigrec.service.champion import ModelCache

    root = str(project.root)
    assert main(["recommend", "--root", root, "--params", PARAMS, "--user", "u001", "--k", "2"]) == 0  # warms it
    capsys.readouterr()
    monkeypatch.setattr(ModelCache, "_ask_registry", lambda *a: pytest.fail("asked MLflow on a warm cache"))
    monkeypatch.setattr(
        "unigrec.registry.download.registered_model_dir", lambda *a, **k: pytest.fail("downloaded again")
    )
    assert main(["recommend", "--root", root, "--params", PARAMS, "--user", "u001", "--k", "2"]) == 0
    out, err = capsys.readouterr()
    assert "notice" not in err and len(out.strip().splitlines()) == 3
