"""Request rules of the service and the CLI: each refusal names the field and the rule."""

from __future__ import annotations

import dataclasses

import pytest

from unigrec.config import ServingConfig
from unigrec.service.requests import (
    Request,
    RequestError,
    check_batch,
    check_k,
    check_request,
    requests_frame,
)

LIMITS = ServingConfig(host="127.0.0.1", port=0, max_k=50, max_batch=3, max_query_chars=20, max_body_bytes=4096, poll_s=0)


def _refused(call, *args) -> RequestError:
    with pytest.raises(RequestError) as caught:
        call(*args)
    return caught.value


@pytest.mark.parametrize("k", [1, 7, 50])
def test_k_inside_the_limit_passes(k):
    assert check_k(k, LIMITS) == k


@pytest.mark.parametrize(
    ("k", "rule"),
    [(0, "at least 1, not 0"), (-3, "at least 1, not -3"), (51, "at most 50 (serving.max_k), not 51"),
     (1_000_000_000, "at most 50"), (True, "whole number"), (2.0, "whole number"), ("5", "whole number")],
)
def test_k_outside_the_limit_names_the_field_and_rule(k, rule):
    err = _refused(check_k, k, LIMITS)
    assert err.field == "k" and rule in err.rule and str(err).startswith("k: ")


def test_k_field_name_is_the_callers():
    assert _refused(check_k, 0, LIMITS, "--k").field == "--k"


def test_good_requests_come_back_normalised():
    assert check_request({"kind": "rec", "user_id": " 42 "}, LIMITS) == Request("rec", "42", "")
    assert check_request({"kind": "rec", "user_id": 42, "query": None}, LIMITS) == Request("rec", "42", "")
    assert check_request({"kind": "search", "query": "sci-fi 1990s"}, LIMITS) == Request("search", "", "sci-fi 1990s")
    assert check_request({"kind": "search", "query": "x", "user_id": "u1"}, LIMITS) == Request("search", "u1", "x")


@pytest.mark.parametrize(
    ("raw", "field", "rule"),
    [
        ({"kind": "ads", "user_id": "1"}, "kind", "must be one of 'rec', 'search', not 'ads'"),
        ({"user_id": "1"}, "kind", "is required: one of 'rec', 'search'"),
        ({"kind": "search", "query": ""}, "query", "a search needs a non-empty query"),
        ({"kind": "search", "query": "   "}, "query", "a search needs a non-empty query"),
        ({"kind": "search"}, "query", "a search needs a non-empty query"),
        ({"kind": "search", "query": "q" * 21}, "query", "at most 20 characters (serving.max_query_chars)"),
        ({"kind": "rec", "user_id": ""}, "user_id", "needs a user id"),
        ({"kind": "rec"}, "user_id", "needs a user id"),
        ({"kind": "rec", "user_id": "1", "query": "x"}, "query", "takes no query"),
        ({"kind": "rec", "user_id": 1.5}, "user_id", "must be a string"),
        ({"kind": "search", "query": ["a"]}, "query", "must be a string"),
    ],
)
def test_bad_requests_name_the_field_and_rule(raw, field, rule):
    err = _refused(check_request, raw, LIMITS)
    assert (err.field, rule in err.rule) == (field, True), str(err)


def test_a_long_bad_kind_is_not_echoed():
    err = _refused(check_request, {"kind": "x" * 1000}, LIMITS)
    assert "x" * 30 not in str(err) and "this value" in err.rule


def test_batch_names_the_position_of_the_first_bad_request():
    ok = {"kind": "rec", "user_id": "1"}
    err = _refused(check_batch, [ok, {"kind": "search", "query": ""}], LIMITS)
    assert err.field == "requests.1.query"
    assert _refused(check_batch, [ok, "rec"], LIMITS).field == "requests.1"


@pytest.mark.parametrize(
    ("raw", "rule"), [([], "at least one request"), ([{}] * 4, "at most 3 requests (serving.max_batch), not 4"),
                      ("rec", "a list of requests")],
)
def test_batch_size_is_bounded(raw, rule):
    err = _refused(check_batch, raw, LIMITS)
    assert err.field == "requests" and rule in err.rule


def test_batch_becomes_the_contracts_request_table():
    limits = dataclasses.replace(LIMITS, max_batch=2)
    batch = check_batch([{"kind": "rec", "user_id": "7"}, {"kind": "search", "query": "q", "user_id": "8"}], limits)
    frame = requests_frame(batch)
    assert frame.to_dict("list") == {"user_id": ["7", "8"], "kind": ["rec", "search"], "query": ["", "q"]}
