"""The HTTP layer on a fake model: answers, our 422s (field + rule, never a traceback or a path), the
model version in every response, and no model work for a refused request."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from unigrec.config import ServingConfig
from unigrec.service.app import create_app
from unigrec.service.champion import Served
from unigrec.service.holder import ModelHolder

LIMITS = ServingConfig(
    host="127.0.0.1", port=0, max_k=5, max_batch=2, max_query_chars=30, max_body_bytes=4096, poll_s=0
)


class FakeModel:
    """Answers k items per request: item "i<request>-<rank>", score -rank; user "u1" has a history."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[dict], int]] = []

    def predict(self, requests: pd.DataFrame, k: int) -> pd.DataFrame:
        self.calls.append((requests.to_dict("records"), k))
        rows = [{"request": r, "rank": j, "item_id": f"i{r}-{j}", "score": -float(j)}
                for r in range(len(requests)) for j in range(k)]
        return pd.DataFrame(rows, columns=["request", "rank", "item_id", "score"])

    def title(self, item_id: str) -> str:
        return f"title of {item_id}"

    def knows_user(self, user_id: str) -> bool:
        return user_id == "u1"


class Broken(FakeModel):
    def predict(self, requests: pd.DataFrame, k: int) -> pd.DataFrame:
        raise RuntimeError("/secret/server/path exploded")


def _client(model: FakeModel, default_k: int = 3) -> TestClient:
    holder = ModelHolder(Served(model, "7", "test model"), None, LIMITS.max_k, follow_alias=False)
    return TestClient(create_app(holder, LIMITS, "unigrec-generative", default_k), raise_server_exceptions=False)


def test_recommend_answers_with_items_titles_and_the_version():
    model = FakeModel()
    got = _client(model).post("/recommend", json={"user_id": "u1", "k": 2})
    assert got.status_code == 200
    body = got.json()
    assert body["model_version"] == "7" and body["known_user"] is True and body["kind"] == "rec"
    assert [i["rank"] for i in body["items"]] == [1, 2]
    assert body["items"][0] == {"rank": 1, "item_id": "i0-0", "score": -0.0, "title": "title of i0-0"}
    assert model.calls == [([{"user_id": "u1", "kind": "rec", "query": ""}], 2)]


def test_search_uses_the_default_k_and_marks_cold_users():
    model = FakeModel()
    body = _client(model, default_k=3).post("/search", json={"query": "space film", "user_id": 9}).json()
    assert len(body["items"]) == 3 and body["known_user"] is False and body["user_id"] == "9"
    assert model.calls == [([{"user_id": "9", "kind": "search", "query": "space film"}], 3)]


def test_batch_decodes_all_requests_in_one_call():
    model = FakeModel()
    body = _client(model).post(
        "/batch", json={"requests": [{"kind": "rec", "user_id": "u1"}, {"kind": "search", "query": "q"}], "k": 1}
    ).json()
    assert body["model_version"] == "7"
    assert [(r["kind"], [i["item_id"] for i in r["items"]]) for r in body["results"]] == [
        ("rec", ["i0-0"]), ("search", ["i1-0"])
    ]
    assert len(model.calls) == 1 and len(model.calls[0][0]) == 2


def test_health_names_the_version():
    assert _client(FakeModel()).get("/health").json() == {
        "status": "ok", "model_name": "unigrec-generative", "model_version": "7"
    }


@pytest.mark.parametrize(
    ("path", "body", "field", "rule"),
    [
        ("/recommend", {"user_id": "u1", "k": 0}, "k", "must be at least 1, not 0"),
        ("/recommend", {"user_id": "u1", "k": 1_000_000_000}, "k", "must be at most 5 (serving.max_k)"),
        ("/recommend", {"user_id": "u1", "k": "3"}, "k", "must be a whole number"),
        ("/recommend", {"user_id": ""}, "user_id", "a recommendation needs a user id"),
        ("/recommend", {}, "user_id", "is required"),
        ("/recommend", {"user_id": "u1", "kind": "search"}, "kind", "is not a field of this request"),
        ("/search", {"query": ""}, "query", "a search needs a non-empty query"),
        ("/search", {"query": "x" * 31}, "query", "at most 30 characters"),
        ("/batch", {"requests": [{"kind": "ads", "user_id": "1"}]}, "requests.0.kind", "must be one of 'rec', 'search'"),
        ("/batch", {"requests": [{"kind": "rec", "user_id": "1"}] * 3}, "requests", "at most 2 requests"),
        ("/batch", {"requests": "rec"}, "requests", "must be a list"),
    ],
)
def test_bad_requests_get_our_422_and_no_model_work(path, body, field, rule):
    model = FakeModel()
    got = _client(model).post(path, json=body)
    assert got.status_code == 422
    problem = got.json()
    assert problem["field"] == field and rule in problem["rule"], problem
    assert problem["error"] == f"{field}: {problem['rule']}" and problem["model_version"] == "7"
    assert set(problem) == {"error", "field", "rule", "model_version"}  # nothing of pydantic's (input, url)
    assert model.calls == []


def test_a_body_that_is_not_json_is_a_422_naming_the_rule():
    got = _client(FakeModel()).post("/recommend", content=b"{not json", headers={"content-type": "application/json"})
    assert got.status_code == 422 and "not valid JSON" in got.json()["rule"]


def test_unknown_paths_and_methods_answer_in_the_same_form():
    client = _client(FakeModel())
    assert client.get("/recommend").json() == {"error": "Method Not Allowed", "field": None, "rule": None,
                                               "model_version": "7"}
    missing = client.post("/recommend/now", json={})
    assert missing.status_code == 404 and missing.json()["model_version"] == "7"


def test_a_bug_is_a_500_without_traceback_or_path():
    got = _client(Broken()).post("/recommend", json={"user_id": "u1"})
    assert got.status_code == 500
    assert got.json() == {"error": "internal error: the server log has the details", "field": None, "rule": None,
                          "model_version": "7"}
    assert "Traceback" not in got.text and "/secret" not in got.text


def test_openapi_docs_describe_the_endpoints():
    schema = _client(FakeModel()).get("/openapi.json").json()
    assert {"/recommend", "/search", "/batch", "/health"} <= set(schema["paths"])
    assert _client(FakeModel()).get("/docs").status_code == 200


def test_a_body_that_is_not_utf8_gets_our_422_naming_the_body_not_a_bare_400():
    """FastAPI answers bytes that are not UTF-8 with a bare 400 "error parsing the body" (issue 40)."""
    model = FakeModel()
    got = _client(model).post("/search", content=b'{"query": "caf\xe9"}', headers={"content-type": "application/json"})
    assert got.status_code == 422
    body = got.json()
    assert body["field"] == "body" and body["rule"] == "must be UTF-8 encoded JSON" and body["model_version"] == "7"
    assert "byte 14" in body["error"] and model.calls == []


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_refused_unparsed_with_413(chunked):
    model = FakeModel()
    payload = b'{"query": "' + b"a" * LIMITS.max_body_bytes + b'"}'
    content = iter([payload]) if chunked else payload  # an iterator: sent without a content-length
    got = _client(model).post("/search", content=content, headers={"content-type": "application/json"})
    assert got.status_code == 413
    assert got.json()["field"] == "body" and "serving.max_body_bytes" in got.json()["error"]
    assert model.calls == []


def test_a_body_within_the_limit_still_reaches_the_endpoint_after_the_check():
    """The middleware reads the body; the endpoint must still get it whole."""
    model = FakeModel()
    got = _client(model).post("/search", json={"query": "caf\u00e9 film"})
    assert got.status_code == 200 and model.calls[0][0][0]["query"] == "café film"


def test_a_body_sent_in_chunks_within_the_limit_reaches_the_endpoint_whole():
    """The gate reads a chunked body (no content-length) piece by piece and hands all of it on."""
    model = FakeModel()
    parts = [b'{"query": "caf\xc3', b'\xa9 film", "k": 2}']  # "\u00e9" split across the two chunks
    got = _client(model).post("/search", content=iter(parts), headers={"content-type": "application/json"})
    assert got.status_code == 200 and len(got.json()["items"]) == 2
    assert model.calls == [([{"user_id": "", "kind": "search", "query": "caf\u00e9 film"}], 2)]
