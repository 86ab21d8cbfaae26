"""What a served request may ask, checked before any model work, with messages that name the field and
the rule (the service answers them as 422s, the CLI as its one-line error).

Kept free of FastAPI so the rules are the same wherever a request enters and can be tested on their own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from unigrec.config import ServingConfig
from unigrec.errors import UnigrecError

KINDS = ("rec", "search")


class RequestError(UnigrecError):
    """A request broke a rule: ``field`` (dotted, e.g. ``requests.2.query``) and ``rule`` in words."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


@dataclasses.dataclass(frozen=True)
class Request:
    """One validated request row of the serving contract (``query`` is empty for recommendation)."""

    kind: str
    user_id: str
    query: str


def check_k(k: Any, limits: ServingConfig, field: str = "k") -> int:
    """``k`` as an int in ``1..serving.max_k``: every k asks for a beam at least k wide."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise RequestError(field, "must be a whole number")
    if k < 1:
        raise RequestError(field, f"must be at least 1, not {k}")
    if k > limits.max_k:
        raise RequestError(field, f"must be at most {limits.max_k} (serving.max_k), not {k}")
    return k


def _text(value: Any, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RequestError(field, "must be a string")
    return str(value)


def check_request(raw: Mapping[str, Any], limits: ServingConfig, where: str = "") -> Request:
    """One request: ``kind`` rec or search, a user for rec, a non-blank bounded query for search."""
    if not isinstance(raw, Mapping):
        raise RequestError(where.rstrip(".") or "body", "must be a JSON object")
    kind = raw.get("kind")
    if kind is None:
        raise RequestError(f"{where}kind", f"is required: one of {', '.join(map(repr, KINDS))}")
    if kind not in KINDS:
        shown = repr(kind) if isinstance(kind, str) and len(kind) <= limits.max_query_chars else "this value"
        raise RequestError(f"{where}kind", f"must be one of {', '.join(map(repr, KINDS))}, not {shown}")
    user = _text(raw.get("user_id"), f"{where}user_id").strip()
    query = _text(raw.get("query"), f"{where}query")
    if kind == "rec":
        if not user:
            raise RequestError(f"{where}user_id", "a recommendation needs a user id")
        if query.strip():
            raise RequestError(f"{where}query", "a recommendation takes no query (use kind 'search')")
        return Request("rec", user, "")
    if not query.strip():
        raise RequestError(f"{where}query", "a search needs a non-empty query")
    if len(query) > limits.max_query_chars:
        raise RequestError(
            f"{where}query", f"must be at most {limits.max_query_chars} characters (serving.max_query_chars)"
        )
    return Request("search", user, query)


def check_batch(raw: Sequence[Mapping[str, Any]], limits: ServingConfig, field: str = "requests") -> list[Request]:
    """A batch: 1..serving.max_batch requests, each checked (the first bad one is named by position)."""
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise RequestError(field, "must be a list of requests")
    if not raw:
        raise RequestError(field, "must hold at least one request")
    if len(raw) > limits.max_batch:
        raise RequestError(field, f"must hold at most {limits.max_batch} requests (serving.max_batch), not {len(raw)}")
    return [check_request(r, limits, f"{field}.{i}.") for i, r in enumerate(raw)]


def requests_frame(requests: Sequence[Request]) -> pd.DataFrame:
    """The serving contract's request table (``user_id, kind, query``) of checked requests."""
    return pd.DataFrame(
        {"user_id": [r.user_id for r in requests], "kind": [r.kind for r in requests],
         "query": [r.query for r in requests]}
    )
