"""`serving.client_time`: a replay in simulated time stamps its predictions and labels
with an `x-driftloop-time` header; without the setting the header is refused."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from driftloop.project import Project

MODEL = "fraud"
AT = datetime(2013, 3, 1, 6, 15, tzinfo=UTC)
RunningServer = Any  # the conftest's running `driftloop serve`


@pytest.fixture(scope="module")
def replay_server(module_servers: Callable[..., RunningServer]) -> RunningServer:
    return module_servers(env={"DRIFTLOOP_SERVING_CLIENT_TIME": "true"})


def _logged(server: RunningServer, read: Callable[[Project], Any], rows: int) -> Any:
    with Project(server.project_dir) as project:
        for _ in range(300):
            table = read(project)
            if table.num_rows >= rows:
                return table
            time.sleep(0.1)
    pytest.fail("the records did not reach the log")


def test_a_prediction_and_its_label_are_recorded_at_the_time_the_header_gives(
    replay_server: RunningServer,
) -> None:
    headers = {"x-driftloop-time": "2013-03-01T06:15:00Z", "x-request-id": "replay-1"}
    answer = httpx.post(
        f"{replay_server.url}/v1/models/{MODEL}/predict",
        json={"keys": {"customer_id": "cu_0001"}},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    label = httpx.post(
        f"{replay_server.url}/v1/feedback",
        json={"model": MODEL, "request_id": "replay-1", "label": 1},
        headers={"x-driftloop-time": "2013-03-01T09:00:00+00:00"},
    )
    assert label.status_code == 202, label.text
    predictions = _logged(replay_server, lambda p: p.predictions(MODEL), 1)
    assert predictions.column("at").to_pylist() == [AT]
    feedback = _logged(replay_server, lambda p: p.feedback(MODEL), 1)
    assert feedback.column("at").to_pylist() == [datetime(2013, 3, 1, 9, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("value", "message"),
    [("yesterday", "not an ISO 8601 time"), ("2013-03-01T06:15:00", "no time zone")],
)
def test_a_bad_time_header_is_a_400_naming_it(
    replay_server: RunningServer, value: str, message: str
) -> None:
    answer = httpx.post(
        f"{replay_server.url}/v1/models/{MODEL}/predict",
        json={"keys": {"customer_id": "cu_0001"}},
        headers={"x-driftloop-time": value},
    )
    assert answer.status_code == 400
    assert message in answer.json()["message"]


def test_without_the_setting_the_header_is_refused(
    module_servers: Callable[..., RunningServer],
) -> None:
    server = module_servers()
    answer = httpx.post(
        f"{server.url}/v1/models/{MODEL}/predict",
        json={"keys": {"customer_id": "cu_0001"}},
        headers={"x-driftloop-time": "2013-03-01T06:15:00Z"},
    )
    assert answer.status_code == 400
    assert "serving.client_time" in answer.json()["message"]
