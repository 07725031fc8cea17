"""Fuzzing the prediction server with schemathesis, from its own ``/openapi.json``.

Every operation gets requests generated from the document: positive ones (valid per
the schema) and negative ones (each breaking it somewhere), for a made-up model name
and for the served one. Whatever is sent, the server must answer without a 5xx, with a
status code the document lists for that operation, a body that matches the schema of
that status, and the documented content type.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

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
MAX_EXAMPLES = 60
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE


@pytest.fixture(scope="module")
def server(module_servers: Callable[..., Any]) -> tuple[str, Path]:
    """A ``driftloop serve`` for the module: its URL and its log file."""
    served = module_servers()
    return str(served.url), Path(served.log_path)


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
