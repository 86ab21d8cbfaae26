"""``unigrec serve``: the registry's champion over HTTP (FastAPI on uvicorn).

Why FastAPI and not ``mlflow models serve``: MLflow's scoring server answers a bad request with a
generic 400 that buries our message in a stack trace showing server paths, has no per-endpoint request
schema and cannot swap the model when the alias moves. Here every request is checked by
:mod:`unigrec.service.requests` first (422 naming the field and the rule), the OpenAPI docs are at
``/docs``, and the model is followed through the registry alias without a restart. FastAPI and uvicorn
are already in the pinned stack (Prefect's server runs on them).

Endpoints: ``POST /recommend``, ``POST /search``, ``POST /batch`` (many requests decoded together),
``GET /health``. Every answer, errors included, carries ``model_version``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from unigrec.config import ServingConfig
from unigrec.errors import UnigrecError
from unigrec.service.holder import ModelHolder
from unigrec.service.requests import Request as Checked
from unigrec.service.requests import RequestError, check_batch, check_k, check_request, requests_frame

log = logging.getLogger(__name__)

UserId = StrictStr | StrictInt  # numeric ids may come as JSON numbers; they are served as text


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendBody(_Body):
    user_id: UserId = Field(description="the user to recommend for (unknown users get cold-start results)")
    k: StrictInt | None = Field(None, description="items to return: 1..serving.max_k (default register.top_k)")


class SearchBody(_Body):
    query: StrictStr = Field(description="search text, non-empty, at most serving.max_query_chars characters")
    user_id: UserId | None = Field(None, description="personalise by this user's history (optional)")
    k: StrictInt | None = Field(None, description="items to return: 1..serving.max_k (default register.top_k)")


class BatchItem(_Body):
    kind: StrictStr = Field(description="'rec' or 'search'")
    user_id: UserId | None = Field(None, description="required for 'rec'")
    query: StrictStr | None = Field(None, description="required for 'search'")


class BatchBody(_Body):
    requests: list[BatchItem] = Field(description="1..serving.max_batch requests, decoded together")
    k: StrictInt | None = Field(None, description="items per request: 1..serving.max_k (default register.top_k)")


class Item(BaseModel):
    rank: int = Field(description="1 = best")
    item_id: str
    score: float = Field(description="the re-ranking score (higher is better)")
    title: str


class Answer(BaseModel):
    kind: str
    user_id: str
    query: str
    known_user: bool = Field(description="false: the user has no history here, these are cold-start results")
    items: list[Item]


class SingleResponse(Answer):
    model_version: str


class BatchResponse(BaseModel):
    model_version: str
    results: list[Answer] = Field(description="one per request, in request order")


class Health(BaseModel):
    status: str
    model_name: str
    model_version: str


class Problem(BaseModel):
    error: str
    field: str | None = None
    rule: str | None = None
    model_version: str


# pydantic's error types -> our rule, for bodies that are not even the right shape
_SHAPE_RULES = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this request",
    "int_type": "must be a whole number",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "json_invalid": "is not valid JSON",
    "json_type": "is not valid JSON",
}


class _BodyGate:
    """Refuse what no endpoint should parse, in our format, before FastAPI parses it: a body over
    ``serving.max_body_bytes`` (413, read no further: uvicorn has no limit, so one huge request would be
    held in memory whole) and one that is not UTF-8 (FastAPI's own answer is a bare 400 "error parsing the
    body" that names neither the field nor the rule).

    A plain ASGI middleware, not ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` wraps
    every request and response in extra tasks and streams, ~1 ms of a one-request call on 2 cores
    (docs/experiments/2026-12-03-serving-speed.md). The body it reads is handed on unchanged."""

    def __init__(self, app: Any, limit: int, problem: Any) -> None:
        self.app, self.limit, self.problem = app, limit, problem

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = (f"body: larger than {self.limit} bytes (serving.max_body_bytes)", "body",
                     f"at most {self.limit} bytes")
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:  # refused unread
            await self.problem(413, *too_large)(scope, receive, send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nobody to answer
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:  # a chunked body declares no length
                await self.problem(413, *too_large)(scope, receive, send)
                return
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            await self.problem(422, f"body: is not UTF-8 (byte {exc.start} is not valid)", "body",
                               "must be UTF-8 encoded JSON")(scope, receive, send)
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.app(scope, replay, send)


def create_app(holder: ModelHolder, limits: ServingConfig, model_name: str, default_k: int) -> FastAPI:
    """The service over ``holder``'s model; ``default_k`` answers requests that give no ``k``."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        holder.start_polling(limits.poll_s)
        try:
            yield
        finally:
            holder.stop()

    app = FastAPI(
        title="unigrec",
        description="Recommendation and search from one generative model: the MLflow registry's champion.",
        lifespan=lifespan,
    )

    def problem(status: int, error: str, field: str | None = None, rule: str | None = None) -> JSONResponse:
        body = Problem(error=error, field=field, rule=rule, model_version=holder.current.version)
        return JSONResponse(body.model_dump(), status_code=status)

    app.add_middleware(_BodyGate, limit=limits.max_body_bytes, problem=problem)

    @app.exception_handler(RequestValidationError)
    async def _shape(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        field = ".".join(loc) or "body"
        rule = _SHAPE_RULES.get(str(first.get("type")), "has the wrong type or form")
        return problem(422, f"{field}: {rule}", field, rule)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:  # 404, 405: in our format too
        return problem(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestError)
    async def _rule(_: Request, exc: RequestError) -> JSONResponse:
        return problem(422, str(exc), exc.field, exc.rule)

    @app.exception_handler(UnigrecError)
    async def _ours(_: Request, exc: UnigrecError) -> JSONResponse:
        return problem(422, str(exc).splitlines()[0] if str(exc) else "the request cannot be served")

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:  # logged in full here, never sent
        log.error("request failed", exc_info=exc)
        return problem(500, "internal error: the server log has the details")

    def k_of(k: int | None) -> int:
        return check_k(default_k if k is None else k, limits)

    def answer(requests: list[Checked], k: int) -> tuple[str, list[Answer]]:
        served = holder.current  # this request's model, even if the alias moves meanwhile
        results = holder.predict(served, requests_frame(requests), k)
        return served.version, _answers(served.model, requests, results)

    error_responses: dict[int | str, dict[str, Any]] = {422: {"model": Problem}, 500: {"model": Problem}}

    @app.post("/recommend", response_model=SingleResponse, responses=error_responses)
    def recommend(body: RecommendBody) -> SingleResponse:
        """Top-k unseen items for a user."""
        checked = check_request({"kind": "rec", "user_id": body.user_id}, limits)
        version, (one,) = answer([checked], k_of(body.k))
        return SingleResponse(model_version=version, **one.model_dump())

    @app.post("/search", response_model=SingleResponse, responses=error_responses)
    def search(body: SearchBody) -> SingleResponse:
        """Items for a text query, personalised by the user's history when a user is given."""
        checked = check_request({"kind": "search", "user_id": body.user_id, "query": body.query}, limits)
        version, (one,) = answer([checked], k_of(body.k))
        return SingleResponse(model_version=version, **one.model_dump())

    @app.post("/batch", response_model=BatchResponse, responses=error_responses)
    def batch(body: BatchBody) -> BatchResponse:
        """Many recommendation and search requests in one call, decoded together (one k for all)."""
        checked = check_batch([r.model_dump() for r in body.requests], limits)
        k = k_of(body.k)
        version, answers = answer(checked, k)
        return BatchResponse(model_version=version, results=answers)

    @app.get("/health", response_model=Health)
    def health() -> Health:
        """Up, and which model version answers."""
        return Health(status="ok", model_name=model_name, model_version=holder.current.version)

    return app


def _answers(model: Any, requests: list[Checked], results: pd.DataFrame) -> list[Answer]:
    by_request: dict[int, list[Item]] = {i: [] for i in range(len(requests))}
    for row in results.itertuples(index=False):
        by_request[int(row.request)].append(
            Item(rank=int(row.rank) + 1, item_id=str(row.item_id), score=float(row.score), title=model.title(row.item_id))
        )
    return [
        Answer(kind=r.kind, user_id=r.user_id, query=r.query, known_user=bool(r.user_id) and model.knows_user(r.user_id),
               items=by_request[i])
        for i, r in enumerate(requests)
    ]


def build_app(
    root: Path, params_file: str, model_dir: str | None = None, version: int | None = None
) -> tuple[FastAPI, ServingConfig, str]:
    """The service of a project: its champion (followed through the alias), a pinned ``version``, or a
    ``model_dir``; returns the app, the serving params and a description of the model for the log."""
    from unigrec.config import load_section
    from unigrec.service.champion import load_served

    params = Path(root) / params_file
    limits: ServingConfig = load_section("serving", params)
    register = load_section("register", params)
    default_k = check_k(register.top_k, limits, "register.top_k")  # a bad default fails at start, not per call
    served, cache = load_served(Path(root), params_file, model_dir=model_dir, version=version)
    holder = ModelHolder(served, cache, limits.max_k, follow_alias=model_dir is None and version is None)
    name = "local model" if model_dir else register.model_name
    return create_app(holder, limits, name, default_k), limits, served.description


def run_server(app: FastAPI, host: str, port: int, log_level: str = "info") -> None:
    """Serve ``app`` until interrupted (Ctrl-C stops the poller and the server cleanly)."""
    import ipaddress

    import uvicorn

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        loopback = False
    if not loopback:
        log.warning("listening on %s: the service has no authentication; anyone who reaches it can query it", host)

    uvicorn.run(app, host=host, port=port, log_level=log_level)
