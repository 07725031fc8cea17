"""Fuzzing the prediction server with schemathesis, from its own ``/openapi.json``.

Every operation gets requests generated from the document: positive ones (valid per
the schema) and negative ones (each breaking it somewhere), for a made-up model name
and for the served one. Whatever is sent, the server must answer without a 5xx, with a
status code the document lists for that operation, a body that matches the schema of
that status, and the documented content type.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

MODEL = "fraud"
LOOPBACK = "127.0.0.1"
DRIFTLOOP = str(Path(sys.executable).parent / "driftloop")
READY_TIMEOUT_S = 60.0
MAX_EXAMPLES = 60
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(
    served_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A ``driftloop serve`` for the module: its URL and its log file."""
    project_dir = Path(shutil.copytree(served_template, tmp_path_factory.mktemp("fuzz") / "shop"))
    port = _free_port()
    log_path = project_dir.parent / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(DRIFTLOOP, "--project", str(project_dir), "serve"),
                *("--host", LOOPBACK, "--port", str(port)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"driftloop serve exited:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"driftloop serve was not ready:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield url, log_path
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="module")
def api(server: tuple[str, Path]) -> OpenApiSchema:
    """The server's own document, as served; schemathesis validates it on loading."""
    schema = schemathesis.openapi.from_url(f"{server[0]}/openapi.json")
    schema.validate()
    return schema


def _served_model(case: Case) -> Case:
    """Feedback for the served model, so that generated labels reach the feedback log."""
    if isinstance(case.body, dict) and "model" in case.body:
        case.body = {**case.body, "model": MODEL}
    return case


def _strategy(api: OpenApiSchema, operation: str, mode: GenerationMode, served: bool) -> Any:
    strategy = api.find_operation_by_id(operation).as_strategy(
        generation_mode=mode,
        path_parameters={"model": MODEL} if served and operation in ("predict", "model") else None,
    )
    return strategy.map(_served_model) if served and operation == "feedback" else strategy


# (operation, generation mode, aimed at the served model)
RUNS = [
    ("predict", POSITIVE, False),
    ("predict", POSITIVE, True),
    ("predict", NEGATIVE, False),
    ("predict", NEGATIVE, True),
    ("feedback", POSITIVE, False),
    ("feedback", POSITIVE, True),
    ("feedback", NEGATIVE, False),
    ("feedback", NEGATIVE, True),
    ("model", POSITIVE, False),
    ("model", NEGATIVE, False),
    # no parameters or a fixed one, no body: a single request, nothing to make negative
    ("model", POSITIVE, True),
    ("models", POSITIVE, False),
    ("healthz", POSITIVE, False),
    ("readyz", POSITIVE, False),
    ("metrics", POSITIVE, False),
    ("openapi", POSITIVE, False),
]


@pytest.mark.parametrize(
    ("operation", "mode", "served"),
    RUNS,
    ids=[f"{op}-{mode.value}{'-served' if served else ''}" for op, mode, served in RUNS],
)
def test_generated_requests_get_documented_answers_and_never_a_server_error(
    api: OpenApiSchema, operation: str, mode: GenerationMode, served: bool
) -> None:
    @given(case=_strategy(api, operation, mode, served))
    @settings(max_examples=MAX_EXAMPLES, deadline=None)  # deadline: a real server answers
    def run(case: Case) -> None:
        case.call_and_validate(checks=CHECKS)

    run()


def test_every_operation_of_the_document_is_fuzzed(api: OpenApiSchema) -> None:
    documented = {
        op["operationId"] for item in api.raw_schema["paths"].values() for op in item.values()
    }
    assert documented == {operation for operation, _, _ in RUNS}
