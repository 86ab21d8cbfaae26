"""Serving: the registry's contract on a tiny model, the CLI (local fallback, batch mode) and the
champion loaded back from a real MLflow registry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from support.evaluate_project import ROOT, evaluate_cfg, evaluate_runtime, tiny_project

from unigrec.errors import UnigrecError


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from unigrec.stages.evaluate import run

    layout = tiny_project(tmp_path_factory.mktemp("serving"))
    torch.manual_seed(0)
    run(dataclasses.replace(evaluate_cfg(), baselines=()), layout, evaluate_runtime())  # writes models/serving
    return layout


@pytest.fixture(autouse=True)
def _no_inherited_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_predict_honours_the_contract(project):
    from unigrec.inference.serving import load_recommender
    from unigrec.registry.serving_contract import check_results

    model = load_recommender(project.model_dir)
    events = pd.read_parquet(project.events)
    requests = pd.DataFrame(
        {"user_id": ["u001", "u002", "stranger"], "kind": ["rec", "search", "rec"], "query": ["", "genre2 film", None]}
    )
    out = check_results(model.predict(requests, 5), len(requests), 5)
    assert out.groupby("request").size().tolist() == [5, 5, 5]
    for request, user in enumerate(["u001", "u002"]):
        got = out[out["request"] == request]
        assert got["rank"].tolist() == list(range(5))
        assert not set(got["item_id"]) & set(events.loc[events["user_id"] == user, "item_id"])  # seen dropped
        assert got["score"].is_monotonic_decreasing  # best first
        assert (got["score"] <= 0).all()  # a mix of two log-probabilities
    assert not model.knows_user("stranger") and model.knows_user("u001")
    assert model.title("m003") == "m003"


def test_serving_uses_the_bundles_re_ranking_weight(project, tmp_path):
    import json
    import shutil

    from unigrec.inference.serving import load_recommender

    requests = pd.DataFrame({"user_id": ["u001", "u003"], "kind": ["rec", "rec"], "query": [None, None]})
    served = {}
    for weight in (0.0, 1.0):
        folder = tmp_path / f"w{weight}"
        shutil.copytree(project.model_dir, folder / "generative")
        shutil.copytree(project.serving_dir, folder / "serving")
        settings = json.loads((folder / "serving" / "settings.json").read_text())
        settings["fusion_weights"] = {"rec": weight, "search": 0.0}
        (folder / "serving" / "settings.json").write_text(json.dumps(settings))
        served[weight] = load_recommender(folder / "generative").predict(requests, 8)
    # w = 1: the score is log P(<pos>), a probability once exponentiated; w = 0: the retrieval log-prob
    assert np.exp(served[1.0]["score"]).between(0, 1).all()
    for weight, out in served.items():
        for request in (0, 1):
            assert out[out["request"] == request]["score"].is_monotonic_decreasing, weight
    assert not served[0.0]["score"].equals(served[1.0]["score"])


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_serving_and_evaluation_give_identical_lists_for_the_same_request(project, weight):
    """The served model and the evaluate stage decode through one path: for a request whose context is the
    user's whole history, Recommender.predict and the evaluation's re-ranked pool are the same list."""
    from unigrec.evaluate.generative import score_prompts
    from unigrec.inference.prompts import PromptExample, group_user_events, query_table_texts
    from unigrec.inference.serving import load_recommender

    model = load_recommender(project.model_dir)
    model.settings = dataclasses.replace(model.settings, fusion_weights={"rec": weight, "search": weight})
    events = pd.read_parquet(project.events)
    texts = query_table_texts(events)
    table = np.load(project.serving_dir / "queries.npz")["vectors"]
    assert list(np.load(project.serving_dir / "queries.npz")["texts"]) == list(texts)
    users = {u.user_id: u for u in group_user_events(events, model.model.items, texts)}
    asks = [("u001", "rec", None), ("u002", "rec", None), ("u003", "search", texts[0]), ("u004", "search", texts[-1])]
    examples = []
    for user, kind, query in asks:  # the evaluation's prompt of this request: the whole history as context
        history = users[user].events
        prompt = model.model.serialiser.prompt(history, kind == "search", texts.index(query) if query else -1)
        examples.append(PromptExample(user, kind == "search", -1, 0, prompt, np.unique(history.items)))
    k = 5
    no_lists = np.zeros((len(asks), 0), np.int64)
    scores = score_prompts(model.model, examples, no_lists, [e.seen for e in examples], table, model.settings)
    evaluated = [scores.reranked(np.array([row]), weight)[0][:k] for row in range(len(asks))]

    requests = pd.DataFrame(asks, columns=["user_id", "kind", "query"])
    served = model.predict(requests, k)
    assert [served[served["request"] == row]["item_id"].tolist() for row in range(len(asks))] == evaluated
    assert all(len(items) == k for items in evaluated)


def test_a_batch_returns_what_each_request_returns_alone(project):
    """Requests decoded together (several chunks, both kinds, a stranger, a repeated request) get the lists
    they get one by one: same items in the same order; scores equal to float rounding (a batch pads its
    prompts to the longest one, which changes the summation order, not the result)."""
    from unigrec.inference.serving import load_recommender

    model = load_recommender(project.model_dir)
    model.settings = dataclasses.replace(model.settings, batch_size=3)  # 9 requests: several chunks per kind
    requests = pd.DataFrame({
        "user_id": ["u001", "u002", "stranger", "u003", "u001", "u004", "u002", "u005", "u001"],
        "kind": ["rec", "search", "rec", "rec", "search", "rec", "rec", "search", "rec"],
        "query": [None, "genre2 film", None, None, "genre1 film", None, None, "genre2 film", None],
    })
    k = 6
    batch = model.predict(requests, k)
    alone = pd.concat([model.predict(requests.iloc[[row]], k).assign(request=row) for row in range(len(requests))],
                      ignore_index=True)
    assert batch["request"].tolist() == alone["request"].tolist() == [r for r in range(len(requests)) for _ in range(k)]
    assert batch["rank"].tolist() == alone["rank"].tolist()
    assert batch["item_id"].tolist() == alone["item_id"].tolist()
    np.testing.assert_allclose(batch["score"], alone["score"], rtol=1e-5, atol=1e-6)
    first, last = (batch[batch["request"] == r]["item_id"].tolist() for r in (0, 8))
    assert first == last  # the same request twice in one batch


def test_bad_requests_fail_with_a_clear_error(project):
    from unigrec.inference.serving import load_recommender

    model = load_recommender(project.model_dir)
    with pytest.raises(UnigrecError, match="query"):
        model.predict(pd.DataFrame({"user_id": ["u001"], "kind": ["search"], "query": [""]}), 3)
    with pytest.raises(UnigrecError, match="kind"):
        model.predict(pd.DataFrame({"user_id": ["u001"], "kind": ["ads"], "query": [""]}), 3)
    with pytest.raises(UnigrecError, match="does not exist"):
        load_recommender(project.root / "nowhere")
    bare = project.root / "models" / "bare" / "generative"
    bare.mkdir(parents=True)
    with pytest.raises(UnigrecError, match="no serving bundle"):
        from unigrec.inference.serving import find_bundle

        find_bundle(bare)


def test_cli_recommend_search_and_batch_on_the_local_model(project, capsys, tmp_path):
    from unigrec.cli import main

    root = str(project.root)
    assert main(["recommend", "--root", root, "--user", "u001", "--k", "3"]) == 0
    out, err = capsys.readouterr()
    assert "no unigrec-generative@champion in the registry" in err
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["rank", "item", "score"] and len(lines) == 4
    assert lines[1].split()[0] == "1" and lines[1].split()[1].startswith("m")

    assert main(["search", "--root", root, "--query", "genre1 film", "--user", "u003", "--k", "2"]) == 0
    out, _ = capsys.readouterr()
    assert len(out.strip().splitlines()) == 3

    users = tmp_path / "users.txt"
    users.write_text("u001\nu002\nnobody\n")
    target = tmp_path / "recs.parquet"
    assert main(["recommend", "--root", root, "--users-file", str(users), "--output", str(target), "--k", "4"]) == 0
    recs = pd.read_parquet(target)
    assert list(recs.columns) == ["user_id", "rank", "item_id", "score", "title"]
    assert recs.groupby("user_id").size().to_dict() == {"nobody": 4, "u001": 4, "u002": 4}

    assert main(["recommend", "--root", root]) == 2  # neither --user nor --users-file: one clear line


def test_cli_serves_the_registry_champion(project, capsys, tmp_path):
    """Register the assembled folder (model + serving bundle) the way the register stage does, then the
    CLI must load models:/<name>@champion from that registry without the local-fallback notice."""
    pytest.importorskip("mlflow")
    from unigrec.cli import main
    from unigrec.config import load_section
    from unigrec.inference.serving import assemble_servable_folder
    from unigrec.registry.gate import flatten_metrics
    from unigrec.registry.register import Candidate, register_candidate
    from unigrec.registry.serving_contract import request_examples

    cfg = dataclasses.replace(load_section("register", ROOT / "params.yaml"), requirements=("pandas",))
    folder = assemble_servable_folder(project.model_dir, project.serving_dir, tmp_path / "servable")
    metrics = flatten_metrics(__import__("json").loads(project.evaluate_metrics.read_text()))
    candidate = Candidate(folder, metrics, "data-1", request_examples(pd.read_parquet(project.events)))
    result = register_candidate(cfg, candidate, project.root)
    assert result.promoted

    assert main(["recommend", "--root", str(project.root), "--user", "u001", "--k", "3"]) == 0
    out, err = capsys.readouterr()
    assert "no unigrec-generative@champion" not in err
    assert len(out.strip().splitlines()) == 4
