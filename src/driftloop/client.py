"""A Python client for the prediction server (``driftloop serve``), over httpx.

::

    from driftloop.client import Client

    with Client("http://127.0.0.1:8080") as client:
        answer = client.predict("fraud", keys={"customer_id": "cu_0001"})
        p = answer.predictions[0]
        print(p.prediction, p.score, p.version, p.role, answer.request_id)
        client.feedback("fraud", label=True, request_id=answer.request_id)

:class:`AsyncClient` has the same methods as coroutines. An error answer raises
:class:`~driftloop.errors.ServerError` with the status, the server's error code and
the field at fault; a server that cannot be reached raises
:class:`~driftloop.errors.BackendUnavailable`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
import orjson

from driftloop.errors import BackendUnavailable, ServerError
from driftloop.serving.schemas import ModelInfo, PredictResponse

__all__ = ["AsyncClient", "Client"]

_DEFAULT_URL = "http://127.0.0.1:8080"


def _predict_body(
    instances: Sequence[Mapping[str, Any]] | None,
    keys: Mapping[str, Any] | None,
    features: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if instances is not None:
        body["instances"] = [dict(i) for i in instances]
    if keys is not None:
        body["keys"] = dict(keys)
    if features is not None:
        body["features"] = dict(features)
    if context:
        body["context"] = dict(context)
    return body


def _feedback_body(
    model: str,
    label: Any,
    *,
    request_id: str | None,
    instance: int | None,
    keys: Mapping[str, Any] | None,
    event_time: datetime | None,
    labels: Sequence[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model}
    if labels is not None:
        body["labels"] = [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in item.items()}
            for item in labels
        ]
    one = {
        "label": label,
        "request_id": request_id,
        "instance": instance,
        "keys": dict(keys) if keys is not None else None,
        "event_time": event_time.isoformat() if event_time is not None else None,
    }
    body.update({k: v for k, v in one.items() if v is not None})
    return body


def _model_path(model: str, suffix: str = "") -> str:
    """The path of a model's endpoint, its name quoted as one path segment (a name with
    ``/``, ``?`` or ``#`` must not change the URL's structure)."""
    return f"/v1/models/{quote(model, safe='')}{suffix}"


def _readiness(response: httpx.Response) -> tuple[bool, list[str]]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):  # not the server's answer (a proxy's error page...)
        return False, [f"HTTP {response.status_code}: {response.text[:200]}"]
    return response.status_code == 200, [str(r) for r in body.get("reasons", [])]


def _metrics_text(response: httpx.Response) -> str:
    if response.status_code >= 400:
        _answer(response)
    return response.text


def _answer(response: httpx.Response) -> Any:
    try:
        body = orjson.loads(response.content) if response.content else {}
    except orjson.JSONDecodeError:
        body = {"error": "http_error", "message": response.text[:500]}
    if response.status_code >= 400:
        raise ServerError(response.status_code, body if isinstance(body, dict) else {})
    return body


def _unreachable(url: str, exc: httpx.TransportError) -> BackendUnavailable:
    return BackendUnavailable("prediction server", url, f"{type(exc).__name__}: {exc}")


class Client:
    """A synchronous client; keeps one connection pool (close it, or use ``with``)."""

    def __init__(
        self,
        url: str = _DEFAULT_URL,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def _call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        content = orjson.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else {}
        headers.update(kw.pop("headers", {}))
        try:
            response = self._http.request(method, path, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from exc
        return _answer(response)

    def predict(
        self,
        model: str,
        instances: Sequence[Mapping[str, Any]] | None = None,
        *,
        keys: Mapping[str, Any] | None = None,
        features: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> PredictResponse:
        """Score one instance (``keys`` and/or ``features``) or a batch (``instances``,
        each ``{"keys": ..., "features": ...}``)."""
        headers = {"x-request-id": request_id} if request_id is not None else {}
        body = self._call(
            "POST",
            _model_path(model, "/predict"),
            _predict_body(instances, keys, features, context),
            headers=headers,
        )
        return PredictResponse.model_validate(body)

    def feedback(
        self,
        model: str,
        label: Any = None,
        *,
        request_id: str | None = None,
        instance: int | None = None,
        keys: Mapping[str, Any] | None = None,
        event_time: datetime | None = None,
        labels: Sequence[Mapping[str, Any]] | None = None,
    ) -> int:
        """Store one label (by request id, or keys and event time) or a batch
        (``labels``); returns how many were stored."""
        body = _feedback_body(
            model,
            label,
            request_id=request_id,
            instance=instance,
            keys=keys,
            event_time=event_time,
            labels=labels,
        )
        return int(self._call("POST", "/v1/feedback", body)["accepted"])

    def models(self) -> list[ModelInfo]:
        return [ModelInfo.model_validate(m) for m in self._call("GET", "/v1/models")["models"]]

    def model(self, name: str) -> ModelInfo:
        return ModelInfo.model_validate(self._call("GET", _model_path(name)))

    def ready(self) -> tuple[bool, list[str]]:
        """Whether the server is ready, and if not, why."""
        try:
            response = self._http.get("/readyz")
        except httpx.TransportError as exc:
            return False, [str(_unreachable(self.url, exc))]
        return _readiness(response)

    def metrics(self) -> str:
        """The Prometheus text exposition."""
        try:
            response = self._http.get("/metrics")
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from exc
        return _metrics_text(response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient:
    """The same calls as :class:`Client`, as coroutines."""

    def __init__(
        self,
        url: str = _DEFAULT_URL,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, transport=transport)

    async def _call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        content = orjson.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else {}
        headers.update(kw.pop("headers", {}))
        try:
            response = await self._http.request(method, path, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from exc
        return _answer(response)

    async def predict(
        self,
        model: str,
        instances: Sequence[Mapping[str, Any]] | None = None,
        *,
        keys: Mapping[str, Any] | None = None,
        features: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> PredictResponse:
        headers = {"x-request-id": request_id} if request_id is not None else {}
        body = await self._call(
            "POST",
            _model_path(model, "/predict"),
            _predict_body(instances, keys, features, context),
            headers=headers,
        )
        return PredictResponse.model_validate(body)

    async def feedback(
        self,
        model: str,
        label: Any = None,
        *,
        request_id: str | None = None,
        instance: int | None = None,
        keys: Mapping[str, Any] | None = None,
        event_time: datetime | None = None,
        labels: Sequence[Mapping[str, Any]] | None = None,
    ) -> int:
        body = _feedback_body(
            model,
            label,
            request_id=request_id,
            instance=instance,
            keys=keys,
            event_time=event_time,
            labels=labels,
        )
        return int((await self._call("POST", "/v1/feedback", body))["accepted"])

    async def models(self) -> list[ModelInfo]:
        body = await self._call("GET", "/v1/models")
        return [ModelInfo.model_validate(m) for m in body["models"]]

    async def model(self, name: str) -> ModelInfo:
        return ModelInfo.model_validate(await self._call("GET", _model_path(name)))

    async def ready(self) -> tuple[bool, list[str]]:
        try:
            response = await self._http.get("/readyz")
        except httpx.TransportError as exc:
            return False, [str(_unreachable(self.url, exc))]
        return _readiness(response)

    async def metrics(self) -> str:
        try:
            response = await self._http.get("/metrics")
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from exc
        return _metrics_text(response)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
