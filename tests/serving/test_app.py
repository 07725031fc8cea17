"""The prediction server over HTTP, as ``driftloop serve`` runs it: predictions, the
prediction log, feedback, models, health, metrics, the OpenAPI document, and a JSON
error for every bad request.

Read-only tests share one server per module (starting one costs seconds); tests that
change state, stop the server or need other settings start their own on their own
copy of the project.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import jsonschema_rs
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from driftloop.project import Project
from driftloop.serving.predictionlog import join_feedback, read_log
from driftloop.serving.runtime import LoadedVersion

MODEL = "fraud"
INPUTS = [
    "amount",
    "channel",
    "amount_sum_1d",
    "amount_sum_7d",
    "amount_count_7d",
    "amount_max_28d",
]
KNOWN = "cu_0001"
UNKNOWN = "cu_9999"  # no online row: every input falls back to its default
LOOPBACK = "127.0.0.1"
CHANGE_TIMEOUT_S = 30.0
MAX_BODY_BYTES = 400
MAX_INSTANCES = 3


# --- servers shared by a module ---------------------------------------------------------


class Server(Protocol):
    """A running ``driftloop serve`` (conftest's ``RunningServer``)."""

    url: str
    project_dir: Path
    log_path: Path

    def stop(self, sig: int = ...) -> int: ...


@pytest.fixture(scope="module")
def server(module_servers: Callable[..., Server]) -> Server:
    """A server with the default settings (relaxed prediction log)."""
    return module_servers()


@pytest.fixture(scope="module")
def strict(module_servers: Callable[..., Server]) -> Server:
    """A server whose prediction and feedback logs are written before it answers."""
    return module_servers("--durability", "strict")


@pytest.fixture(scope="module")
def limited(module_servers: Callable[..., Server]) -> Server:
    """A server with small serving.max_body_bytes and serving.max_instances."""
    return module_servers(
        env={
            "DRIFTLOOP_SERVING_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            "DRIFTLOOP_SERVING_MAX_INSTANCES": str(MAX_INSTANCES),
        }
    )


# --- helpers ----------------------------------------------------------------------------


Served = Server


def predict(server: Served, body: Any, *, request_id: str | None = None) -> httpx.Response:
    headers = {"x-request-id": request_id} if request_id is not None else {}
    return httpx.post(f"{server.url}/v1/models/{MODEL}/predict", json=body, headers=headers)


def predictions(server: Served, body: Any, *, request_id: str | None = None) -> list[Any]:
    response = predict(server, body, request_id=request_id)
    assert response.status_code == 200, response.text
    answers: list[Any] = response.json()["predictions"]
    return answers


def feedback(server: Served, body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/feedback", json=body)


def prediction_log(server: Served, request_id: str) -> pa.Table:
    table = read_log(server.project_dir / ".driftloop" / "predictions", MODEL)
    if table.num_rows == 0:
        return table
    mine = table.filter(pc.equal(table.column("request_id"), request_id))
    return mine.sort_by("instance")


def feedback_log(server: Served) -> pa.Table:
    return read_log(server.project_dir / ".driftloop" / "feedback", MODEL)


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(server: Served) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return metric_samples(response.text)


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds (the server picks changes up asynchronously)."""
    deadline = time.monotonic() + CHANGE_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {CHANGE_TIMEOUT_S}s")
        time.sleep(0.1)


@dataclass
class Expected:
    score: float
    missing: list[str]
    served: dict[str, Any]


class InProcess:
    """The champion loaded in the test process, on the server's own project."""

    def __init__(self, project_dir: Path) -> None:
        self.project = Project(project_dir)
        self.loaded = LoadedVersion.load(
            self.project._features(), self.project.model_version(MODEL, "champion")
        )

    def score(
        self, keys: dict[str, Any] | None = None, features: dict[str, Any] | None = None
    ) -> Expected:
        served = self.loaded.features(
            self.project.online,
            1,
            keys=pa.table({k: [v] for k, v in keys.items()}) if keys else None,
            values={k: [v] for k, v in (features or {}).items()},
        )
        scores = self.loaded.score(served.table)
        return Expected(
            score=float(scores.score[0]),
            missing=[name for name, flags in served.missing.items() if flags[0]],
            served={name: served.table.column(name)[0].as_py() for name in self.loaded.input_names},
        )


@pytest.fixture(scope="module")
def in_process(server: Server) -> Iterator[InProcess]:
    loaded = InProcess(server.project_dir)
    yield loaded
    loaded.project.close()


# --- predictions ------------------------------------------------------------------------


def test_one_instance_is_scored_by_its_entity_keys(server: Server) -> None:
    """The answer names the request, the model, and for the instance its prediction,
    score, class probabilities, the version and role that answered and the inputs that
    fell back to their defaults."""
    response = predict(server, {"keys": {"customer_id": KNOWN}})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"request_id", "model", "predictions"}
    assert body["model"] == MODEL
    assert body["request_id"] == response.headers["x-request-id"]
    (answer,) = body["predictions"]
    assert set(answer) == {"prediction", "score", "probabilities", "version", "role", "missing"}
    assert 0.0 <= answer["score"] <= 1.0
    assert answer["prediction"] is (answer["score"] >= 0.5)
    assert answer["probabilities"] == {"false": 1.0 - answer["score"], "true": answer["score"]}
    assert (answer["version"], answer["role"]) == (1, "champion")
    assert set(answer["missing"]) <= set(INPUTS)
    assert "amount" not in answer["missing"]


def test_scores_equal_what_the_loaded_champion_computes_in_process(
    server: Server, in_process: InProcess
) -> None:
    """Keys alone, keys with overrides, and raw values: the server's score and missing
    inputs are exactly those of the champion loaded in this process."""
    forms: list[dict[str, Any]] = [
        {"keys": {"customer_id": KNOWN}},
        {"keys": {"customer_id": "cu_0002"}},
        {"keys": {"customer_id": UNKNOWN}},
        {"keys": {"customer_id": KNOWN}, "features": {"amount": 4999.5, "channel": "web"}},
        {"features": {"amount": 120.0, "channel": "pos", "amount_count_7d": 3}},
    ]
    for form in forms:
        (answer,) = predictions(server, form)
        expected = in_process.score(form.get("keys"), form.get("features"))
        assert answer["score"] == expected.score, form
        assert answer["missing"] == expected.missing, form


def test_a_batch_gives_each_instance_the_answer_it_gets_alone(server: Server) -> None:
    """``instances`` are scored in order, each as if sent on its own."""
    customers = [KNOWN, UNKNOWN, "cu_0002"]
    batch = predictions(server, {"instances": [{"keys": {"customer_id": c}} for c in customers]})
    alone = [predictions(server, {"keys": {"customer_id": c}})[0] for c in customers]
    assert batch == alone
    assert batch[1]["missing"] == INPUTS


def test_feature_values_in_the_request_override_the_online_store(
    server: Server, in_process: InProcess
) -> None:
    """A value given with the keys is served instead of the online one, so it is not
    missing, even when the customer is unknown."""
    (answer,) = predictions(
        server, {"keys": {"customer_id": UNKNOWN}, "features": {"amount": 2500.0}}
    )
    assert "amount" not in answer["missing"]
    assert answer["missing"] == [name for name in INPUTS if name != "amount"]
    expected = in_process.score({"customer_id": UNKNOWN}, {"amount": 2500.0})
    assert answer["score"] == expected.score
    assert expected.served["amount"] == 2500.0


def test_a_value_given_by_some_instances_overrides_only_those(server: Server) -> None:
    """In a batch, an input given by one instance leaves the others to the online store."""
    keys = {"customer_id": KNOWN}
    override = {"keys": keys, "features": {"amount": 9000.0, "channel": "pos"}}
    batch = predictions(server, {"instances": [override, {"keys": keys}, override]})
    assert batch[0] == batch[2] == predictions(server, override)[0]
    assert batch[1] == predictions(server, {"keys": keys})[0]


def test_raw_values_without_keys_fill_the_rest_with_defaults_listed_missing(
    server: Server, in_process: InProcess
) -> None:
    features = {"amount": 75.0, "channel": "app"}
    (answer,) = predictions(server, {"features": features})
    assert answer["missing"] == [
        "amount_sum_1d",
        "amount_sum_7d",
        "amount_count_7d",
        "amount_max_28d",
    ]
    assert answer["score"] == in_process.score(None, features).score


def test_the_request_id_header_is_echoed_in_the_body_and_the_response(server: Server) -> None:
    response = predict(server, {"keys": {"customer_id": KNOWN}}, request_id="order-42 retry-1")
    assert response.json()["request_id"] == "order-42 retry-1"
    assert response.headers["x-request-id"] == "order-42 retry-1"


def test_without_a_request_id_each_answer_gets_a_new_one(server: Server) -> None:
    ids = {predict(server, {"keys": {"customer_id": KNOWN}}).json()["request_id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(ids)


# --- the prediction log -----------------------------------------------------------------


def test_the_log_holds_one_record_per_instance_as_served_once_the_server_stops(
    served_project: Path, start_server: Callable[..., Any]
) -> None:
    """Relaxed durability: records are written in the background; SIGTERM writes what is
    left. Each record has the request id, instance, version, role, score, keys and the
    inputs exactly as served, with their missing flags."""
    running = start_server(served_project)
    instances = [
        {"keys": {"customer_id": KNOWN}, "features": {"amount": 321.0}},
        {"keys": {"customer_id": UNKNOWN}},
    ]
    answers = predictions(running, {"instances": instances}, request_id="logged-batch")
    assert running.stop() in (0, -signal.SIGTERM)  # a graceful exit (not SIGKILLed)
    log = prediction_log(running, "logged-batch")
    assert log.num_rows == 2
    assert log.column("instance").to_pylist() == [0, 1]
    assert log.column("version").to_pylist() == [1, 1]
    assert log.column("role").to_pylist() == ["champion", "champion"]
    assert log.column("prediction").to_pylist() == [a["score"] for a in answers]
    assert log.column("key.customer_id").to_pylist() == [KNOWN, UNKNOWN]
    assert log.column("feature.amount").to_pylist() == [321.0, 0.0]
    assert log.column("feature.channel").to_pylist()[1] == "unknown"
    for i, answer in enumerate(answers):
        flagged = [name for name in INPUTS if log.column(f"missing.{name}")[i].as_py()]
        assert flagged == answer["missing"]
    with Project(served_project) as project:
        loaded = LoadedVersion.load(project._features(), project.model_version(MODEL, 1))
        served = loaded.features(
            project.online,
            1,
            keys=pa.table({"customer_id": [KNOWN]}),
            values={"amount": [321.0]},
        )
    for name in INPUTS:
        assert log.column(f"feature.{name}")[0].as_py() == served.table.column(name)[0].as_py()


def test_in_strict_mode_the_records_are_in_the_log_when_the_answer_arrives(
    strict: Server,
) -> None:
    answers = predictions(
        strict,
        {"instances": [{"keys": {"customer_id": KNOWN}}, {"keys": {"customer_id": "cu_0003"}}]},
        request_id="strict-batch",
    )
    log = prediction_log(strict, "strict-batch")
    assert log.column("instance").to_pylist() == [0, 1]
    assert log.column("prediction").to_pylist() == [a["score"] for a in answers]
    assert log.column("key.customer_id").to_pylist() == [KNOWN, "cu_0003"]


# --- feedback ---------------------------------------------------------------------------


def test_feedback_by_request_id_labels_that_requests_predictions(strict: Server) -> None:
    """One label (for instance 0) and a batch of one (for instance 1) are stored in the
    feedback log and joined to the predictions by request id and instance."""
    predictions(
        strict,
        {"instances": [{"keys": {"customer_id": "cu_0010"}}, {"keys": {"customer_id": "cu_0011"}}]},
        request_id="labelled-by-id",
    )
    one = feedback(
        strict, {"model": MODEL, "request_id": "labelled-by-id", "instance": 0, "label": True}
    )
    assert (one.status_code, one.json()) == (202, {"accepted": 1})
    batch = feedback(
        strict,
        {"model": MODEL, "labels": [{"request_id": "labelled-by-id", "instance": 1, "label": 0}]},
    )
    assert (batch.status_code, batch.json()) == (202, {"accepted": 1})
    stored = feedback_log(strict)
    mine = stored.filter(pc.equal(stored.column("request_id"), "labelled-by-id"))
    assert sorted(mine.column("instance").to_pylist()) == [0, 1]
    joined = join_feedback(prediction_log(strict, "labelled-by-id"), stored)
    assert joined.column("label").to_pylist() == [1.0, 0.0]
    assert joined.column("feedback_by").to_pylist() == ["request", "request"]


def test_feedback_by_keys_and_event_time_labels_that_entitys_earlier_predictions(
    strict: Server,
) -> None:
    """A label for some entity keys at a time (with a zone) labels that entity's
    predictions made before it; a batch labels several entities at once."""
    predictions(strict, {"keys": {"customer_id": "cu_0020"}}, request_id="entity-a")
    predictions(strict, {"keys": {"customer_id": "cu_0021"}}, request_id="entity-b")
    predictions(strict, {"keys": {"customer_id": "cu_0022"}}, request_id="entity-c")
    later = datetime.now(UTC).isoformat()
    one = feedback(
        strict,
        {"model": MODEL, "keys": {"customer_id": "cu_0020"}, "event_time": later, "label": 1},
    )
    assert (one.status_code, one.json()) == (202, {"accepted": 1})
    labels = [
        {"keys": {"customer_id": "cu_0021"}, "event_time": later, "label": False},
        {"keys": {"customer_id": "cu_0022"}, "event_time": later, "label": True},
    ]
    batch = feedback(strict, {"model": MODEL, "labels": labels})
    assert (batch.status_code, batch.json()) == (202, {"accepted": 2})
    made = pa.concat_tables(
        [prediction_log(strict, rid) for rid in ("entity-a", "entity-b", "entity-c")]
    )
    joined = join_feedback(made, feedback_log(strict))
    assert joined.column("label").to_pylist() == [1.0, 0.0, 1.0]
    assert joined.column("feedback_by").to_pylist() == ["entity"] * 3


# --- models and health ------------------------------------------------------------------


def test_models_lists_each_deployment_and_the_versions_loaded(server: Server) -> None:
    response = httpx.get(f"{server.url}/v1/models")
    assert response.status_code == 200
    (info,) = response.json()["models"]
    assert info["model"] == MODEL
    assert info["loaded"] == [1]
    assert info["error"] is None
    deployment = info["deployment"]
    assert deployment["champion"] == 1
    assert (deployment["canary"], deployment["shadow"], deployment["split"]) == (None, None, None)
    assert deployment["revision"] == 0
    one = httpx.get(f"{server.url}/v1/models/{MODEL}")
    assert one.status_code == 200
    assert one.json() == info


def test_healthz_says_the_process_is_alive(server: Server) -> None:
    response = httpx.get(f"{server.url}/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "reasons": []})


def test_readyz_says_ready_when_deployed_versions_are_loaded(server: Server) -> None:
    response = httpx.get(f"{server.url}/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "reasons": []})


def _hide_artifact(project_dir: Path, version: int) -> tuple[Path, Path]:
    """Move a version's artifact aside: (where it belongs, where it is now)."""
    with Project(project_dir) as project:
        digest = project.model_version(MODEL, version).artifact_digest
        blob = Path(project.artifacts.blob_path(digest))
    aside = blob.with_name("aside")
    blob.rename(aside)
    return blob, aside


def test_a_version_that_cannot_be_loaded_makes_the_server_not_ready_until_it_can(
    served_project: Path, start_server: Callable[..., Any]
) -> None:
    """Deploying a version whose artifact is gone: /readyz answers 503 naming it and
    /v1/models shows the error, with only the champion loaded. Once the artifact is back
    a later poll loads it and the server is ready with the new deployment."""
    running = start_server(served_project)
    blob, aside = _hide_artifact(served_project, 2)
    with Project(served_project) as project:
        project.deploy_canary(MODEL, 2, 50.0, reason="test")

    def readyz() -> httpx.Response:
        return httpx.get(f"{running.url}/readyz")

    wait_for(lambda: readyz().status_code == 503, "readyz answering 503")
    body = readyz().json()
    assert body["status"] == "not ready"
    assert any(r.startswith(f"model {MODEL}: version 2") for r in body["reasons"])
    info = httpx.get(f"{running.url}/v1/models/{MODEL}").json()
    assert "version 2" in info["error"]
    assert info["loaded"] == [1]

    aside.rename(blob)
    wait_for(lambda: readyz().status_code == 200, "readyz answering 200 again")
    info = httpx.get(f"{running.url}/v1/models/{MODEL}").json()
    assert info["error"] is None
    assert (info["deployment"]["canary"], info["loaded"]) == (2, [1, 2])


def test_while_a_deployed_version_cannot_be_loaded_the_previous_state_keeps_serving(
    served_project: Path, start_server: Callable[..., Any]
) -> None:
    """A canary at 100 percent whose artifact is gone: however many polls retry the
    load, requests are answered by the champion, as before the change."""
    running = start_server(served_project)
    _hide_artifact(served_project, 2)
    with Project(served_project) as project:
        project.deploy_canary(MODEL, 2, 100.0, reason="test")
    wait_for(
        lambda: running.log().count(f"cannot load {MODEL} version 2") >= 3,
        "the load of version 2 failing and being retried",
    )
    info = httpx.get(f"{running.url}/v1/models/{MODEL}").json()
    assert (info["deployment"]["canary"], info["loaded"]) == (None, [1])
    answers = predictions(running, {"instances": [{"keys": {"customer_id": KNOWN}}] * 3})
    assert {(a["version"], a["role"]) for a in answers} == {(1, "champion")}


# --- metrics ----------------------------------------------------------------------------


def test_metrics_count_requests_latency_predictions_and_missing_inputs(server: Server) -> None:
    """Prometheus text: requests by endpoint and status, a latency histogram by
    endpoint, instances by model, version and role, inputs served from their default,
    and the log backlog."""
    before = scrape(server)
    predictions(server, {"keys": {"customer_id": KNOWN}})
    unknown = [{"keys": {"customer_id": UNKNOWN}}, {"keys": {"customer_id": "cu_9998"}}]
    predictions(server, {"instances": unknown})
    assert predict(server, {"features": {"colour": "red"}}).status_code == 422
    assert httpx.get(f"{server.url}/v1/models").status_code == 200
    assert feedback(server, {"model": "nope", "request_id": "r", "label": 1}).status_code == 404
    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    requests = "driftloop_requests_total"
    assert delta(requests, endpoint="predict", status="200") == 2
    assert delta(requests, endpoint="predict", status="422") == 1
    assert delta(requests, endpoint="models", status="200") == 1
    assert delta(requests, endpoint="feedback", status="404") == 1
    latency = "driftloop_request_duration_seconds"
    assert delta(f"{latency}_count", endpoint="predict") == 3
    assert delta(f"{latency}_bucket", endpoint="predict", le="+Inf") == 3
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in after.items()
        if name == f"{latency}_bucket" and dict(labels)["endpoint"] == "predict"
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    roles = {"model": MODEL, "version": "1", "role": "champion"}
    assert delta("driftloop_predictions_total", **roles) == 3
    assert delta("driftloop_missing_features_total", model=MODEL, feature="amount") == 2
    assert ("driftloop_prediction_log_backlog_rows", frozenset()) in after
    assert sample(after, "driftloop_loaded_versions") == 1


def test_metrics_of_several_workers_are_summed(
    served_project: Path, start_server: Callable[..., Any]
) -> None:
    """With --workers 2, any worker answers /metrics with the sum over both: two loaded
    versions (one each), and every request counted once whichever worker served it."""
    running = start_server(served_project, "--workers", "2")
    wait_for(
        lambda: sample(scrape(running), "driftloop_loaded_versions") == 2, "both workers started"
    )
    for i in range(20):  # a new connection each time: either worker may accept it
        predictions(running, {"keys": {"customer_id": f"cu_{i + 1:04d}"}})
    for _ in range(3):
        samples = scrape(running)
        assert sample(samples, "driftloop_requests_total", endpoint="predict", status="200") == 20
        assert (
            sample(
                samples, "driftloop_predictions_total", model=MODEL, version="1", role="champion"
            )
            == 20
        )
        assert sample(samples, "driftloop_request_duration_seconds_count", endpoint="predict") == 20
        assert sample(samples, "driftloop_loaded_versions") == 2


def test_metrics_carry_the_latest_monitoring_window_once_analysed(strict: Server) -> None:
    """Once a window of the served predictions is analysed, /metrics carries its
    figures as driftloop_monitoring_ gauges, each series once."""
    customers = [{"keys": {"customer_id": f"cu_{i + 1:04d}"}} for i in range(40)]
    predictions(strict, {"instances": customers})  # strict: in the log on answering
    with Project(strict.project_dir) as project:
        (run,) = project.monitor(MODEL, last=40)
    (window,) = run.windows
    reference = {"model": MODEL, "against": "reference"}
    rows = "driftloop_monitoring_window_rows"
    # the figures are cached for a few seconds: an earlier scrape may have read none yet
    wait_for(lambda: sample(scrape(strict), rows, **reference) == 40, "the window's gauges")
    text = httpx.get(f"{strict.url}/metrics").text
    samples = metric_samples(text)
    assert sample(samples, rows, **reference) == window.window.rows == 40
    share = window.get("drift.share")
    assert ("driftloop_monitoring_drift_share", frozenset(reference.items())) in samples
    assert sample(samples, "driftloop_monitoring_drift_share", **reference) == share.value
    version = str(window.window.version)
    errors = window.get("error_rate", version=window.window.version)
    assert (
        sample(samples, "driftloop_monitoring_error_rate", **reference, version=version)
        == errors.value
    )
    series = [
        line.rsplit(" ", 1)[0]
        for line in text.splitlines()
        if line.startswith("driftloop_monitoring_")
    ]
    assert series
    assert len(series) == len(set(series))
    assert text.count("# TYPE driftloop_monitoring_window_rows gauge") == 1


# --- the OpenAPI document ---------------------------------------------------------------

ENDPOINTS = {
    ("/v1/models/{model}/predict", "post"),
    ("/v1/feedback", "post"),
    ("/v1/models", "get"),
    ("/v1/models/{model}", "get"),
    ("/healthz", "get"),
    ("/readyz", "get"),
    ("/metrics", "get"),
    ("/openapi.json", "get"),
}


def test_openapi_json_is_a_valid_openapi_3_1_document_naming_every_endpoint(
    server: Server,
) -> None:
    response = httpx.get(f"{server.url}/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"] == "3.1.0"
    OPENAPI_31_VALIDATOR.validate(document)  # the official OpenAPI 3.1 schema
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name  # each a valid JSON Schema 2020-12
    named = {(path, method) for path, item in document["paths"].items() for method in item}
    assert named == ENDPOINTS
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


# --- errors -----------------------------------------------------------------------------

PREDICT = f"/v1/models/{MODEL}/predict"
FEEDBACK = "/v1/feedback"


@dataclass(frozen=True)
class BadRequest:
    path: str
    content: bytes | None
    status: int
    error: str
    field: str | None = None
    method: str = "POST"
    headers: tuple[tuple[str, str | bytes], ...] = ()


def _body(text: str) -> bytes:
    return text.encode()


BAD_REQUESTS = {
    "malformed JSON": BadRequest(PREDICT, b'{"keys": {', 400, "invalid_json"),
    "a key of the wrong type": BadRequest(
        PREDICT,
        _body('{"instances": [{"keys": {"customer_id": [1]}}]}'),
        422,
        "validation_error",
        "instances.0.keys.customer_id",
    ),
    "a key too large for 64 bits": BadRequest(
        PREDICT,
        _body('{"keys": {"customer_id": 99999999999999999999999}}'),
        422,
        "validation_error",
        "keys.customer_id",
    ),
    "keys that mix numbers and strings across instances": BadRequest(
        PREDICT,
        _body('{"instances": [{"keys": {"customer_id": "a"}}, {"keys": {"customer_id": 1}}]}'),
        422,
        "input_error",
        "keys.customer_id",
    ),
    "an unknown field": BadRequest(
        PREDICT,
        _body('{"keys": {"customer_id": "cu_0001"}, "colour": 1}'),
        422,
        "validation_error",
        "colour",
    ),
    "no body": BadRequest(PREDICT, None, 422, "validation_error"),
    "an empty object": BadRequest(PREDICT, b"{}", 422, "validation_error", "instances"),
    "a JSON array": BadRequest(PREDICT, b"[]", 422, "validation_error"),
    "both instances and keys": BadRequest(
        PREDICT,
        _body('{"instances": [{"keys": {"customer_id": "a"}}], "keys": {"customer_id": "b"}}'),
        422,
        "validation_error",
        "keys",
    ),
    "an empty batch": BadRequest(
        PREDICT, b'{"instances": []}', 422, "validation_error", "instances"
    ),
    "an unknown model": BadRequest(
        "/v1/models/nope/predict", b'{"keys": {"customer_id": "a"}}', 404, "not_found"
    ),
    "an unknown feature": BadRequest(
        PREDICT, b'{"features": {"colour": "red"}}', 422, "input_error", "features.colour"
    ),
    "a feature value of the wrong type for the model": BadRequest(
        PREDICT, b'{"features": {"amount": "lots"}}', 422, "input_error", "features.amount"
    ),
    "a string feature given a number": BadRequest(
        PREDICT, b'{"features": {"channel": 3}}', 422, "input_error", "features.channel"
    ),
    "a feature value as an object": BadRequest(
        PREDICT, b'{"features": {"amount": {"x": 1}}}', 422, "validation_error", "features.amount"
    ),
    "NaN": BadRequest(
        PREDICT, b'{"features": {"amount": NaN}}', 422, "validation_error", "features.amount"
    ),
    "Infinity": BadRequest(
        PREDICT, b'{"features": {"amount": Infinity}}', 422, "validation_error", "features.amount"
    ),
    "-Infinity in a batch": BadRequest(
        PREDICT,
        b'{"instances": [{"features": {"amount": -Infinity}}]}',
        422,
        "validation_error",
        "instances.0.features.amount",
    ),
    "1e400": BadRequest(
        PREDICT, b'{"features": {"amount": 1e400}}', 422, "validation_error", "features.amount"
    ),
    "an x-request-id over 200 characters": BadRequest(
        PREDICT,
        b'{"keys": {}}',
        422,
        "input_error",
        "x-request-id",
        headers=(("x-request-id", "r" * 201),),
    ),
    "an x-request-id that is not ASCII": BadRequest(
        PREDICT,
        b'{"keys": {}}',
        422,
        "input_error",
        "x-request-id",
        headers=(("x-request-id", "caf\xe9".encode("latin-1")),),
    ),
    "an empty x-request-id": BadRequest(
        PREDICT,
        b'{"keys": {}}',
        422,
        "input_error",
        "x-request-id",
        headers=(("x-request-id", ""),),
    ),
    "an unknown path": BadRequest("/v2/predict", None, 404, "not_found", method="GET"),
    "a wrong method": BadRequest(PREDICT, None, 405, "method_not_allowed", method="GET"),
    "a wrong method on a read-only path": BadRequest(
        "/v1/models", None, 405, "method_not_allowed", method="DELETE"
    ),
    "an unknown model's details": BadRequest(
        "/v1/models/nope", None, 404, "not_found", method="GET"
    ),
    "feedback without a label": BadRequest(
        FEEDBACK, b'{"model": "fraud", "request_id": "r"}', 422, "validation_error", "label"
    ),
    "feedback with a null label": BadRequest(
        FEEDBACK,
        b'{"model": "fraud", "request_id": "r", "label": null}',
        422,
        "validation_error",
        "label",
    ),
    "feedback without request_id or keys": BadRequest(
        FEEDBACK, b'{"model": "fraud", "label": 1}', 422, "validation_error", "request_id"
    ),
    "feedback with empty keys": BadRequest(
        FEEDBACK,
        b'{"model": "fraud", "label": 1, "keys": {}}',
        422,
        "validation_error",
        "request_id",
    ),
    "a batch label without request_id or keys": BadRequest(
        FEEDBACK,
        b'{"model": "fraud", "labels": [{"request_id": "r", "label": 1}, {"label": 0}]}',
        422,
        "validation_error",
        "labels.1.request_id",
    ),
    "feedback with a naive event_time": BadRequest(
        FEEDBACK,
        _body(
            '{"model": "fraud", "label": 1, "keys": {"customer_id": "a"},'
            ' "event_time": "2024-05-01T12:00:00"}'
        ),
        422,
        "validation_error",
        "event_time",
    ),
    "feedback for an unknown model": BadRequest(
        FEEDBACK, b'{"model": "nope", "request_id": "r", "label": 1}', 404, "not_found"
    ),
    "feedback without a model": BadRequest(
        FEEDBACK, b'{"request_id": "r", "label": 1}', 422, "validation_error", "model"
    ),
    "feedback with both labels and a label": BadRequest(
        FEEDBACK,
        b'{"model": "fraud", "label": 1, "labels": [{"request_id": "r", "label": 1}]}',
        422,
        "validation_error",
        "label",
    ),
    "feedback for a negative instance": BadRequest(
        FEEDBACK,
        b'{"model": "fraud", "request_id": "r", "instance": -1, "label": 1}',
        422,
        "validation_error",
        "instance",
    ),
    "feedback with a label too large for a number": BadRequest(
        FEEDBACK,
        _body('{"model": "fraud", "request_id": "r", "label": 1' + "0" * 400 + "}"),
        422,
        "validation_error",
        "label",
    ),
}


def assert_error(response: httpx.Response, status: int, error: str, field: str | None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body.get("field") == field


@pytest.mark.parametrize("case", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_every_bad_request_gets_a_json_error_naming_the_field(
    server: Server, case: BadRequest
) -> None:
    response = httpx.request(
        case.method, f"{server.url}{case.path}", content=case.content, headers=list(case.headers)
    )
    assert_error(response, case.status, case.error, case.field)


@pytest.mark.parametrize(
    ("name", "value"),
    [("amount_count_7d", 1.5), ("amount", True)],
    ids=["a fraction for an integer input", "a boolean for a number input"],
)
def test_a_value_that_does_not_fit_an_inputs_type_is_refused_not_converted(
    server: Server, name: str, value: Any
) -> None:
    response = predict(server, {"features": {name: value}})
    assert_error(response, 422, "input_error", f"features.{name}")


def test_a_wrong_method_is_told_the_allowed_ones(server: Server) -> None:
    response = httpx.get(f"{server.url}{PREDICT}")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_a_body_over_max_body_bytes_is_refused_with_413(limited: Server) -> None:
    big = {"features": {"channel": "x" * MAX_BODY_BYTES}}
    assert_error(predict(limited, big), 413, "body_too_large", None)
    labels = {"model": MODEL, "request_id": "r", "label": "x" * MAX_BODY_BYTES}
    assert_error(feedback(limited, labels), 413, "body_too_large", None)


def test_a_chunked_body_without_length_is_refused_once_over_the_limit(limited: Server) -> None:
    """No content-length: the server counts the bytes as they arrive."""
    body = b'{"features": {"channel": "' + b"x" * (4 * MAX_BODY_BYTES) + b'"}}'
    chunks = [body[i : i + 100] for i in range(0, len(body), 100)]
    with httpx.Client() as client:
        request = client.build_request("POST", f"{limited.url}{PREDICT}", content=iter(chunks))
        assert "content-length" not in request.headers
        assert request.headers["transfer-encoding"] == "chunked"
        response = client.send(request)
    assert_error(response, 413, "body_too_large", None)


def test_a_body_within_the_limit_is_served(limited: Server) -> None:
    small = {"keys": {"customer_id": KNOWN}}
    assert predict(limited, small).status_code == 200


def test_more_instances_than_max_instances_are_refused_naming_instances(limited: Server) -> None:
    batch = {"instances": [{"keys": {"customer_id": KNOWN}}] * (MAX_INSTANCES + 1)}
    assert_error(predict(limited, batch), 422, "input_error", "instances")
    assert predict(limited, {"instances": batch["instances"][:MAX_INSTANCES]}).status_code == 200
    labels = {"model": MODEL, "labels": [{"request_id": "r", "label": 1}] * (MAX_INSTANCES + 1)}
    assert_error(feedback(limited, labels), 422, "input_error", "labels")


def test_the_server_also_serves_the_dashboard(server: Server) -> None:
    """`driftloop serve` answers /ui/ with the dashboard of the project it serves."""
    page = httpx.get(f"{server.url}/ui/")
    assert page.status_code == 200
    assert "driftloop" in page.text
    models = httpx.get(f"{server.url}/ui/api/models.json").json()["rows"]
    assert [m["model"] for m in models] == [MODEL]
    assert (
        models[0]["champion"]
        == httpx.get(f"{server.url}/v1/models/{MODEL}").json()["deployment"]["champion"]
    )


def test_the_dashboard_inside_the_server_shows_the_workers_health(server: Server) -> None:
    """Inside `driftloop serve` the overview's server table is the worker's own
    readiness and the versions it loaded, as /readyz and /v1/models say."""
    (row,) = httpx.get(f"{server.url}/ui/api/server.json").json()["rows"]
    info = httpx.get(f"{server.url}/v1/models/{MODEL}").json()
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert row["status"] == "ready"
    assert row["server"].startswith("this worker (pid ")
    assert (row["model"], row["champion"]) == (MODEL, info["deployment"]["champion"])
    assert row["loaded_versions"] == ", ".join(f"v{v}" for v in info["loaded"])
    assert "Prediction server" in httpx.get(f"{server.url}/ui/").text
