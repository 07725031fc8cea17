"""``driftloop.client``: the synchronous and the asynchronous client against a real
``driftloop serve`` (strict durability, so what a call stored can be read at once)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import pytest

from driftloop.client import AsyncClient, Client
from driftloop.errors import BackendUnavailable, ServerError
from driftloop.serving.predictionlog import read_log
from driftloop.serving.schemas import ModelInfo, PredictResponse

MODEL = "fraud"
KNOWN = "cu_0001"
LOOPBACK = "127.0.0.1"


@pytest.fixture(scope="module")
def served(module_servers: Callable[..., Any]) -> Any:
    """A ``driftloop serve --durability strict`` shared by the module."""
    return module_servers("--durability", "strict")


@pytest.fixture(scope="module")
def project_dir(served: Any) -> Path:
    return Path(served.project_dir)


@pytest.fixture(scope="module")
def url(served: Any) -> str:
    return str(served.url)


@pytest.fixture
def client(url: str) -> Iterator[Client]:
    with Client(url) as opened:
        yield opened


@pytest.fixture
def unreachable() -> str:
    """A loopback URL nobody listens on."""
    with socket.socket() as sock:  # a port nobody listens on once the socket closes
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
    return f"http://{LOOPBACK}:{port}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _feedback(project_dir: Path, request_id: str) -> list[dict[str, object]]:
    table = read_log(project_dir / ".driftloop" / "feedback", MODEL)
    if table.num_rows == 0:
        return []
    rows: list[dict[str, object]] = table.filter(
        pc.equal(table.column("request_id"), request_id)
    ).to_pylist()
    return rows


# --- Client -----------------------------------------------------------------------------


def test_predict_scores_one_instance_by_its_keys(client: Client) -> None:
    answer = client.predict(MODEL, keys={"customer_id": KNOWN})
    assert isinstance(answer, PredictResponse)
    assert answer.model == MODEL
    assert answer.request_id
    (p,) = answer.predictions
    assert (p.version, p.role) == (1, "champion")
    assert p.score is not None
    assert 0.0 <= p.score <= 1.0
    assert p.prediction is (p.score >= 0.5)
    assert p.probabilities == {"false": 1.0 - p.score, "true": p.score}


def test_predict_scores_a_batch_in_order(client: Client) -> None:
    customers = [KNOWN, "cu_9999", "cu_0002"]
    batch = client.predict(MODEL, [{"keys": {"customer_id": c}} for c in customers])
    alone = [client.predict(MODEL, keys={"customer_id": c}).predictions[0] for c in customers]
    assert batch.predictions == alone


def test_predict_sends_feature_values_context_and_the_request_id(client: Client) -> None:
    answer = client.predict(
        MODEL,
        keys={"customer_id": KNOWN},
        features={"amount": 1234.5},
        context={"session": "s-1"},
        request_id="client-sync-1",
    )
    assert answer.request_id == "client-sync-1"
    assert "amount" not in answer.predictions[0].missing
    raw = client.predict(MODEL, features={"amount": 10.0, "channel": "web"})
    assert raw.predictions[0].missing == [
        "amount_sum_1d",
        "amount_sum_7d",
        "amount_count_7d",
        "amount_max_28d",
    ]


def test_feedback_stores_labels_and_says_how_many(client: Client, project_dir: Path) -> None:
    """One label by request id, one by keys and an aware event time, and a batch."""
    answer = client.predict(
        MODEL,
        [{"keys": {"customer_id": KNOWN}}, {"keys": {"customer_id": "cu_0002"}}],
        request_id="client-sync-fb",
    )
    assert client.feedback(MODEL, True, request_id=answer.request_id, instance=0) == 1
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert client.feedback(MODEL, False, keys={"customer_id": KNOWN}, event_time=when) == 1
    labels = [
        {"request_id": "client-sync-fb", "instance": 1, "label": "chargeback"},
        {"keys": {"customer_id": "cu_0002"}, "event_time": when + timedelta(hours=1), "label": 0},
    ]
    assert client.feedback(MODEL, labels=labels) == 2
    stored = _feedback(project_dir, "client-sync-fb")
    assert sorted((r["instance"], r["label"], r.get("label_text")) for r in stored) == [
        (0, 1.0, None),
        (1, None, "chargeback"),
    ]
    table = read_log(project_dir / ".driftloop" / "feedback", MODEL)
    by_entity = table.filter(pc.is_null(table.column("request_id"))).to_pylist()
    assert {(r["key.customer_id"], r["event_time"], r["label"]) for r in by_entity} >= {
        (KNOWN, when, 0.0),
        ("cu_0002", when + timedelta(hours=1), 0.0),
    }


def test_models_and_model_describe_the_deployments(client: Client) -> None:
    (info,) = client.models()
    assert isinstance(info, ModelInfo)
    assert (info.model, info.loaded, info.error) == (MODEL, [1], None)
    assert info.deployment["champion"] == 1
    assert client.model(MODEL) == info


def test_ready_is_true_with_no_reasons_when_the_server_is_ready(client: Client) -> None:
    assert client.ready() == (True, [])


def test_metrics_returns_the_prometheus_text(client: Client) -> None:
    client.predict(MODEL, keys={"customer_id": KNOWN})
    text = client.metrics()
    assert 'driftloop_requests_total{endpoint="predict",status="200"}' in text
    assert "driftloop_request_duration_seconds_bucket" in text


def test_an_error_answer_raises_server_error_with_status_code_and_field(client: Client) -> None:
    with pytest.raises(ServerError) as unknown:
        client.predict("nope", keys={"customer_id": KNOWN})
    assert (unknown.value.status, unknown.value.error, unknown.value.field) == (
        404,
        "not_found",
        None,
    )
    assert unknown.value.http_status == 404
    assert unknown.value.body["name"] == "nope"
    with pytest.raises(ServerError) as feature:
        client.predict(MODEL, features={"colour": "red"})
    assert (feature.value.status, feature.value.error, feature.value.field) == (
        422,
        "input_error",
        "features.colour",
    )
    with pytest.raises(ServerError) as invalid:
        client.predict(MODEL, [{"keys": {"customer_id": [1]}}])
    assert (invalid.value.status, invalid.value.error, invalid.value.field) == (
        422,
        "validation_error",
        "instances.0.keys.customer_id",
    )
    with pytest.raises(ServerError) as unaddressed:
        client.feedback(MODEL, 1)
    assert (unaddressed.value.status, unaddressed.value.field) == (422, "request_id")
    with pytest.raises(ServerError, match="404 not_found"):
        client.model("nope")


def test_a_model_name_is_sent_as_one_path_segment(client: Client) -> None:
    """Characters with a meaning in URLs (``/ ? #``) are quoted: the server is asked
    about that exact name, and says it does not know it."""
    for name in ("a/b", "a?b=1", "x#y"):
        with pytest.raises(ServerError) as predict_error:
            client.predict(name, keys={"customer_id": KNOWN})
        assert predict_error.value.status == 404
        with pytest.raises(ServerError) as model_error:
            client.model(name)
        assert model_error.value.status == 404
    with pytest.raises(ServerError) as named:
        client.model("a?b=1")
    assert named.value.body["name"] == "a?b=1"


def test_an_unreachable_server_raises_backend_unavailable(unreachable: str) -> None:
    with Client(unreachable, timeout=2) as client:
        with pytest.raises(BackendUnavailable, match="prediction server"):
            client.predict(MODEL, keys={"customer_id": KNOWN})
        with pytest.raises(BackendUnavailable):
            client.feedback(MODEL, 1, request_id="r")
        with pytest.raises(BackendUnavailable):
            client.models()
        with pytest.raises(BackendUnavailable):
            client.metrics()
        ready, reasons = client.ready()
    assert not ready
    assert "unavailable" in reasons[0]


def test_an_answer_that_is_not_the_servers_reads_as_not_ready_or_an_error() -> None:
    """Behind a proxy answering 502 with an HTML page, ready() says not ready with the
    status, and metrics() raises ServerError instead of returning the page."""

    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad Gateway</html>")

    with Client("http://proxy.invalid", transport=httpx.MockTransport(proxy)) as client:
        ready, reasons = client.ready()
        assert not ready
        assert reasons[0].startswith("HTTP 502")
        with pytest.raises(ServerError) as error:
            client.metrics()
    assert (error.value.status, error.value.error) == (502, "http_error")


# --- AsyncClient ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_async_client_predicts_and_stores_feedback(url: str, project_dir: Path) -> None:
    async with AsyncClient(url) as client:
        one = await client.predict(MODEL, keys={"customer_id": KNOWN}, request_id="client-async")
        assert one.request_id == "client-async"
        assert (one.predictions[0].version, one.predictions[0].role) == (1, "champion")
        batch = await client.predict(
            MODEL, [{"keys": {"customer_id": KNOWN}}, {"keys": {"customer_id": "cu_0002"}}]
        )
        assert batch.predictions[0] == one.predictions[0]
        assert len(batch.predictions) == 2
        assert await client.feedback(MODEL, True, request_id="client-async") == 1
        when = datetime.now(UTC)
        labels = [{"keys": {"customer_id": KNOWN}, "event_time": when, "label": 1}]
        assert await client.feedback(MODEL, labels=labels) == 1
    assert [r["label"] for r in _feedback(project_dir, "client-async")] == [1.0]


@pytest.mark.anyio
async def test_the_async_client_reads_models_readiness_and_metrics(url: str) -> None:
    async with AsyncClient(url) as client:
        (info,) = await client.models()
        assert info == await client.model(MODEL)
        assert info.loaded == [1]
        assert await client.ready() == (True, [])
        assert "driftloop_loaded_versions 1.0" in await client.metrics()


@pytest.mark.anyio
async def test_the_async_client_raises_server_error_on_an_error_answer(url: str) -> None:
    async with AsyncClient(url) as client:
        with pytest.raises(ServerError) as feature:
            await client.predict(MODEL, features={"amount": "lots"})
        assert (feature.value.status, feature.value.error, feature.value.field) == (
            422,
            "input_error",
            "features.amount",
        )
        with pytest.raises(ServerError) as unknown:
            await client.model("nope")
        assert (unknown.value.status, unknown.value.error) == (404, "not_found")
        with pytest.raises(ServerError) as unlabelled:
            await client.feedback(MODEL, request_id="r")
        assert (unlabelled.value.status, unlabelled.value.field) == (422, "label")


@pytest.mark.anyio
async def test_the_async_client_raises_backend_unavailable_when_unreachable(
    unreachable: str,
) -> None:
    async with AsyncClient(unreachable, timeout=2) as client:
        with pytest.raises(BackendUnavailable, match="prediction server"):
            await client.predict(MODEL, keys={"customer_id": KNOWN})
        with pytest.raises(BackendUnavailable):
            await client.models()
        with pytest.raises(BackendUnavailable):
            await client.metrics()
        ready, reasons = await client.ready()
    assert not ready
    assert reasons
