"""The prediction server: a Starlette ASGI app over one :class:`~driftloop.serving.engine.Engine`.

Endpoints (see ``docs/serving.md`` and ``/openapi.json``):

- ``POST /v1/models/{model}/predict``, ``POST /v1/feedback``
- ``GET /v1/models``, ``GET /v1/models/{model}``
- ``GET /healthz``, ``GET /readyz``, ``GET /metrics``, ``GET /openapi.json``

Every error is a JSON body ``{"error": code, "message": ..., "field": ...}``: 400 for
malformed JSON, 413 for a body over ``serving.max_body_bytes``, 422 for a body that
does not match the schema or values that do not fit the model, 404 for an unknown
model or path, 409 for a model with nothing deployed, 503 when a backend or a model
version is unavailable. Bodies are parsed and validated in one pass by pydantic's
JSON parser and written with orjson.

Prediction scoring runs on the event loop thread: it is short (about a millisecond)
and CPU-bound, and one process per core is the deployment model (``--workers``), so
handing it to a thread pool would only add a hand-over. In strict durability the
response waits, without blocking the loop, for its log records' fsync.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from driftloop import __version__
from driftloop.errors import DriftloopError, InputError
from driftloop.monitoring.prometheus import MonitoringCollector
from driftloop.project import Project
from driftloop.serving.engine import Engine
from driftloop.serving.metrics import CONTENT_TYPE, ServerMetrics
from driftloop.serving.schemas import (
    REQUEST_ID_PATTERN,
    FeedbackRequest,
    PredictRequest,
    error_field,
    openapi_document,
)

__all__ = ["create_app", "create_app_from_env"]

_log = logging.getLogger(__name__)
_JSON = "application/json"
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


class _BodyTooLarge(Exception):
    """The body is over serving.max_body_bytes (answered 413)."""


class _NoBody(Exception):
    """The request has no body at all (answered 422)."""


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=_JSON, headers=headers)


def _error(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **fields: Any,
) -> Response:
    return _json(
        {"error": code, "message": message, **{k: v for k, v in fields.items() if v is not None}},
        status,
        headers,
    )


def _validation_error(exc: ValidationError) -> Response:
    field, problems = error_field(exc)
    if any(p["type"] == "json_invalid" for p in problems):
        return _error(400, "invalid_json", f"the body is not valid JSON: {problems[0]['message']}")
    first = problems[0] if problems else {"message": "invalid body"}
    where = f"{field}: " if field else ""
    return _error(
        422, "validation_error", f"{where}{first['message']}", field=field, errors=problems
    )


def _driftloop_error(exc: DriftloopError) -> Response:
    status = exc.http_status
    if isinstance(exc, InputError) and "field" in exc.fields:
        status = 422  # a value that does not fit the model, not an unreadable body
    if status >= 500 and status != 503:
        _log.error("request failed: %s", exc)
    return _json(exc.to_dict(), status)


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _BodyTooLarge
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise _NoBody
    return body


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    if given is None:
        return uuid.uuid4().hex
    if _REQUEST_ID.fullmatch(given) is None:
        raise InputError(
            "x-request-id must be 1 to 200 visible ASCII characters (spaces only inside)",
            field="x-request-id",
        )
    return given


def _client_time(request: Request, allowed: bool) -> datetime | None:
    """The time an ``x-driftloop-time`` header asks the request to be recorded at."""
    given = request.headers.get("x-driftloop-time")
    if given is None:
        return None
    if not allowed:
        raise InputError(
            "x-driftloop-time is accepted only when serving.client_time is on "
            "(replays in simulated time)"
        )
    try:
        at = datetime.fromisoformat(given.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"x-driftloop-time {given!r} is not an ISO 8601 time (e.g. 2013-03-01T06:00:00Z)"
        ) from None
    if at.tzinfo is None:
        raise InputError(f"x-driftloop-time {given!r} has no time zone (add Z or +00:00)")
    return at.astimezone(UTC)


def create_app(project: Project, *, engine: Engine | None = None) -> Starlette:
    """The server's ASGI app for ``project`` (started and stopped by its lifespan)."""
    engine = engine or Engine(project, metrics=ServerMetrics())
    metrics = engine.metrics
    metrics.add_collector(MonitoringCollector(engine.project.store))
    limit = engine.config.max_body_bytes
    openapi = orjson.dumps(openapi_document(__version__))

    def measured(
        endpoint: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except _BodyTooLarge:
                response = _error(
                    413,
                    "body_too_large",
                    f"the body is larger than {limit} bytes (serving.max_body_bytes)",
                )
            except _NoBody:
                response = _error(422, "validation_error", "the request needs a JSON body")
            except ValidationError as exc:
                response = _validation_error(exc)
            except DriftloopError as exc:
                response = _driftloop_error(exc)
            except Exception:  # a bug: answer 500 as JSON, log the traceback
                _log.exception("unexpected error answering %s", request.url.path)
                response = _error(500, "internal_error", "internal server error")
            metrics.request(endpoint, response.status_code, time.perf_counter() - started)
            return response

        return run

    async def predict(request: Request) -> Response:
        request_id = _request_id(request)
        at = _client_time(request, engine.config.client_time)
        body = await _read_body(request, limit)
        parsed = PredictRequest.model_validate_json(body)
        result = engine.predict(request.path_params["model"], parsed, request_id, at=at)
        if engine.strict and result.logged:
            try:
                await asyncio.gather(*(asyncio.wrap_future(f) for f in result.logged))
            except OSError as exc:
                return _error(
                    503,
                    "log_unavailable",
                    f"the prediction could not be logged durably: {exc}",
                )
        return _json(result.body, headers={"x-request-id": request_id})

    async def feedback(request: Request) -> Response:
        at = _client_time(request, engine.config.client_time)
        body = await _read_body(request, limit)
        parsed = FeedbackRequest.model_validate_json(body)
        accepted, future = engine.feedback(parsed, at=at)
        if engine.strict:
            try:
                await asyncio.wrap_future(future)
            except OSError as exc:
                return _error(503, "log_unavailable", f"the labels could not be stored: {exc}")
        return _json({"accepted": accepted}, 202)

    async def models(_request: Request) -> Response:
        return _json({"models": engine.models()})

    async def model(request: Request) -> Response:
        return _json(engine.state(request.path_params["model"]).info())

    async def healthz(_request: Request) -> Response:
        return _json({"status": "ok", "reasons": []})

    async def readyz(_request: Request) -> Response:
        reasons = await asyncio.to_thread(engine.readiness)
        if reasons:
            return _json({"status": "not ready", "reasons": reasons}, 503)
        return _json({"status": "ok", "reasons": []})

    async def prometheus(_request: Request) -> Response:
        # off the event loop: the monitoring gauges may query the metadata store
        return Response(await asyncio.to_thread(metrics.render), media_type=CONTENT_TYPE)

    async def openapi_json(_request: Request) -> Response:
        return Response(openapi, media_type=_JSON)

    async def http_error(_request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):
            return _error(500, "internal_error", "internal server error")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        # 405 carries the Allow header starlette puts on the exception
        return _error(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(engine.start)
        # Everything loaded so far (libraries, models) lives as long as the process:
        # keep it out of the cyclic collector, whose full passes over it would
        # otherwise stall requests for tens of milliseconds.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await asyncio.to_thread(engine.stop)
            ServerMetrics.worker_exited(os.getpid())

    routes = [
        Route("/v1/models/{model}/predict", measured("predict", predict), methods=["POST"]),
        Route("/v1/feedback", measured("feedback", feedback), methods=["POST"]),
        Route("/v1/models", measured("models", models), methods=["GET"]),
        Route("/v1/models/{model}", measured("model", model), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )
    app.state.engine = engine
    return app


def create_app_from_env() -> Starlette:
    """The app of the project named by ``DRIFTLOOP_PROJECT`` (uvicorn's factory in each
    worker of ``driftloop serve``), with inference threads limited to
    ``serving.threads``."""
    from threadpoolctl import threadpool_limits

    project = Project(os.environ.get("DRIFTLOOP_PROJECT", "."))
    limits = threadpool_limits(project.config.serving.threads)
    app = create_app(project)
    app.state.thread_limits = limits
    return app
