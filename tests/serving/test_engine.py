"""A model version that fails to score, on a real ``driftloop serve``: the client gets
the 500 it always got, and the prediction log keeps a record of the failure (a NaN
prediction and the ``error`` text, with the version and role), so error rates can be
counted per version; a failing shadow version leaves the same records, with role
``shadow``, and never changes an answer.

Version 3 of ``fraud`` is a model of the project's own (trusted pickle) that raises for
an instance with a negative amount. One server serves it as champion (strict
durability: the failure's records are not waited for), another as the shadow of
version 1.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx
import pyarrow.compute as pc
import pytest

from driftloop.project import Project
from driftloop.serving.engine import ERROR_CHARS

MODEL = "fraud"
FAILING = 3
KNOWN = "cu_0001"
WAIT_S = 30.0
"""How long to wait for what a server writes in the background (much sooner, usually)."""
INTERNAL_ERROR = {"error": "internal_error", "message": "internal server error"}

FAILING_MODEL = '''
import numpy as np


class RefusesNegativeAmounts:
    """Scores by the amount, and raises for a negative one: a version that fails."""

    def fit(self, X, y):
        self.mean = float(np.nanmean(X[:, 0]))
        self.scale = float(np.nanstd(X[:, 0])) or 1.0
        return self

    def predict_proba(self, X):
        amount = X[:, 0]
        if (amount <= -1e6).any():
            raise ValueError("amount out of range: " + "9" * 1000)
        if (amount < 0).any():
            raise ValueError(f"cannot score a negative amount ({amount.min()})")
        p = 1.0 / (1.0 + np.exp(-(amount - self.mean) / self.scale))
        return np.column_stack([1.0 - p, p])


def refuses_negative_amounts(X, y, params):
    return RefusesNegativeAmounts().fit(X, y)


'''


class Server(Protocol):
    """A running ``driftloop serve`` (conftest's ``RunningServer``)."""

    url: str
    project_dir: Path


# --- projects and servers shared by the module ------------------------------------------


@pytest.fixture(scope="module")
def failing_template(served_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The served project with ``fraud`` version 3 trained by ``refuses_negative_amounts``
    (not deployed)."""
    folder = Path(shutil.copytree(served_template, tmp_path_factory.mktemp("failing") / "shop"))
    definitions = folder / "definitions.py"
    source = definitions.read_text()
    trainer = 'trainer="hist_gradient_boosting",\n'
    assert "fraud = ModelSpec(" in source
    assert trainer in source
    source = source.replace("fraud = ModelSpec(", FAILING_MODEL + "fraud = ModelSpec(", 1)
    source = source.replace(trainer, "trainer=refuses_negative_amounts,\n    trust_pickle=True,\n")
    definitions.write_text(source)
    with Project(folder) as project:
        trained = project.train(MODEL)
    assert trained.version.version == FAILING
    assert trained.version.signature["inputs"][0]["name"] == "amount"
    return folder


def deployed(template: Path, tmp_path_factory: pytest.TempPathFactory, **how: int) -> Path:
    """A copy of ``template`` where version 3 is the champion or the shadow."""
    folder = Path(shutil.copytree(template, tmp_path_factory.mktemp("deployed") / "shop"))
    with Project(folder) as project:
        if "champion" in how:
            project.set_alias(MODEL, "champion", how["champion"])
        if "shadow" in how:
            project.deploy_shadow(MODEL, how["shadow"])
    return folder


@pytest.fixture(scope="module")
def failing_champion(
    module_servers: Callable[..., Server],
    failing_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Server:
    """A server answering with version 3; the prediction log is strict."""
    project = deployed(failing_template, tmp_path_factory, champion=FAILING)
    return module_servers("--durability", "strict", template=project)


@pytest.fixture(scope="module")
def failing_shadow(
    module_servers: Callable[..., Server],
    failing_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Server:
    """A server answering with version 1, version 3 as its shadow."""
    project = deployed(failing_template, tmp_path_factory, shadow=FAILING)
    return module_servers(template=project)


# --- helpers ----------------------------------------------------------------------------


def predict(server: Server, body: Any, request_id: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/models/{MODEL}/predict",
        json=body,
        headers={"x-request-id": request_id},
        timeout=WAIT_S,
    )


def logged(server: Server, request_id: str, rows: int) -> list[dict[str, Any]]:
    """The ``rows`` records of ``request_id`` in the server's prediction log, read with
    ``Project.predictions`` once they are all written, by role then instance."""
    deadline = time.monotonic() + WAIT_S
    while True:
        with Project(server.project_dir) as project:
            table = project.predictions(MODEL)
        if table.num_rows:  # (an empty log has no columns but `at` and `model`)
            table = table.filter(pc.equal(table.column("request_id"), request_id))
        if table.num_rows >= rows or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    records = sorted(table.to_pylist(), key=lambda r: (r["role"], r["instance"]))
    assert len(records) == rows, records
    return records


def features_of(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k.startswith("feature.")}


def shadow_errors(server: Server) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("driftloop_shadow_errors_total{")
    )


# --- a failing version --------------------------------------------------------------------


def test_a_version_that_fails_to_score_answers_500_and_logs_an_error_record(
    failing_champion: Server,
) -> None:
    """The answer is the JSON 500 of any failure; the log holds one record for the
    instance, with the version and role routed, a NaN prediction, the error text and the
    keys, and no inputs."""
    body = {"keys": {"customer_id": KNOWN}, "features": {"amount": -5.0}}
    response = predict(failing_champion, body, "fails-alone")
    assert response.status_code == 500
    assert response.json() == INTERNAL_ERROR

    (record,) = logged(failing_champion, "fails-alone", 1)
    assert (record["version"], record["role"], record["instance"]) == (FAILING, "champion", 0)
    assert math.isnan(record["prediction"])
    assert record["error"] == "ValueError: cannot score a negative amount (-5.0)"
    assert record["key.customer_id"] == KNOWN
    assert record["latency_ms"] >= 0.0
    assert set(features_of(record).values()) <= {None}


def test_records_the_version_scored_have_a_null_error_in_the_same_log(
    failing_champion: Server,
) -> None:
    """A request the failing version can score is answered and logged as usual."""
    failing = predict(failing_champion, {"features": {"amount": -1.0}}, "fails-first")
    assert failing.status_code == 500
    response = predict(failing_champion, {"keys": {"customer_id": KNOWN}}, "scored")
    assert response.status_code == 200, response.text
    (answer,) = response.json()["predictions"]
    assert answer["version"] == FAILING

    (failed,) = logged(failing_champion, "fails-first", 1)
    (scored,) = logged(failing_champion, "scored", 1)
    assert failed["error"] is not None
    assert scored["error"] is None
    assert scored["prediction"] == answer["score"]
    assert scored["feature.amount"] is not None


def test_every_instance_of_a_batch_the_version_fails_on_is_logged_with_the_error(
    failing_champion: Server,
) -> None:
    """One instance the version cannot score fails the batch it scores at once: every
    instance of it gets an error record."""
    batch = {
        "instances": [
            {"keys": {"customer_id": KNOWN}},
            {"keys": {"customer_id": "cu_0002"}, "features": {"amount": -7.5}},
        ]
    }
    response = predict(failing_champion, batch, "fails-batch")
    assert response.status_code == 500
    assert response.json() == INTERNAL_ERROR

    records = logged(failing_champion, "fails-batch", 2)
    assert [r["instance"] for r in records] == [0, 1]
    assert [r["key.customer_id"] for r in records] == [KNOWN, "cu_0002"]
    assert {(r["version"], r["role"], r["error"]) for r in records} == {
        (FAILING, "champion", "ValueError: cannot score a negative amount (-7.5)")
    }
    assert all(math.isnan(r["prediction"]) for r in records)


def test_a_long_error_message_is_cut_to_500_characters(failing_champion: Server) -> None:
    response = predict(failing_champion, {"features": {"amount": -1e7}}, "fails-long")
    assert response.status_code == 500

    (record,) = logged(failing_champion, "fails-long", 1)
    assert len(record["error"]) == ERROR_CHARS == 500
    assert record["error"].startswith("ValueError: amount out of range: 999")


def test_a_bad_request_is_not_a_failure_of_the_version(failing_champion: Server) -> None:
    """An unknown input answers 422 and leaves no record: the client's error, not the
    version's."""
    response = predict(failing_champion, {"features": {"colour": 1.0}}, "bad-request")
    assert response.status_code == 422
    assert predict(failing_champion, {"features": {"amount": -2.0}}, "after-bad").status_code == 500
    logged(failing_champion, "after-bad", 1)  # in order: a record of bad-request is in too
    with Project(failing_champion.project_dir) as project:
        table = project.predictions(MODEL)
    assert "bad-request" not in table.column("request_id").to_pylist()


# --- a failing shadow ---------------------------------------------------------------------


def test_a_failing_shadow_version_logs_error_records_with_role_shadow(
    failing_shadow: Server,
) -> None:
    """The champion answers as always; the shadow's failure is counted in
    driftloop_shadow_errors_total and logged with version 3, role shadow, a NaN
    prediction and the error."""
    body = {"keys": {"customer_id": KNOWN}, "features": {"amount": -3.0}}
    response = predict(failing_shadow, body, "shadow-fails")
    assert response.status_code == 200, response.text
    (answer,) = response.json()["predictions"]
    assert (answer["version"], answer["role"]) == (1, "champion")

    champion, shadow = logged(failing_shadow, "shadow-fails", 2)
    assert (champion["role"], champion["version"], champion["error"]) == ("champion", 1, None)
    assert champion["prediction"] == answer["score"]
    assert (shadow["role"], shadow["version"]) == ("shadow", FAILING)
    assert math.isnan(shadow["prediction"])
    assert shadow["error"] == "ValueError: cannot score a negative amount (-3.0)"
    assert shadow["key.customer_id"] == KNOWN
    assert set(features_of(shadow).values()) <= {None}
    assert shadow_errors(failing_shadow) >= 1


def test_a_shadow_that_scores_logs_a_null_error(failing_shadow: Server) -> None:
    response = predict(failing_shadow, {"keys": {"customer_id": KNOWN}}, "shadow-scores")
    assert response.status_code == 200, response.text

    champion, shadow = logged(failing_shadow, "shadow-scores", 2)
    assert (shadow["role"], shadow["version"], shadow["error"]) == ("shadow", FAILING, None)
    assert champion["error"] is None
    assert math.isfinite(shadow["prediction"])
