"""The prediction server's request and response bodies, and its OpenAPI document.

The same pydantic models validate incoming JSON (in pydantic's Rust JSON parser, so a
body is parsed and checked in one pass) and describe the API in the OpenAPI document
served at ``/openapi.json``. Request models forbid unknown fields and non-finite
numbers; their validation errors become 422 responses naming the field
(``instances.0.keys.customer_id``), see :func:`error_field`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic.json_schema import models_json_schema
from pydantic_core import PydanticCustomError

__all__ = [
    "ErrorBody",
    "FeedbackItem",
    "FeedbackRequest",
    "FeedbackResponse",
    "Instance",
    "ModelInfo",
    "ModelsResponse",
    "PredictRequest",
    "PredictResponse",
    "Prediction",
    "error_field",
    "openapi_document",
]

MODEL_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$"
REQUEST_ID_PATTERN = r"^[!-~]([ -~]{0,198}[!-~])?$"
"""An ``x-request-id``: 1 to 200 visible ASCII characters, spaces only inside."""

Value = StrictBool | StrictInt | StrictFloat | StrictStr | None
"""A feature value or request field: JSON null, boolean, number or string."""
Key = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)] | StrictStr
"""An entity key value: a 64-bit integer or a string."""
Label = StrictBool | Annotated[StrictInt, Field(ge=-(2**53), le=2**53)] | StrictFloat | StrictStr
"""An outcome: a class (boolean, integer or string) or a value. Labels are stored as
float64, so integers are limited to the ones it holds exactly."""
Index = Annotated[StrictInt, Field(ge=0, le=2**31 - 1)]
"""An instance's index within its request."""


def _given(name: str, schema: JsonDict | None = None) -> JsonDict:
    """JSON Schema: ``name`` is present and not null."""
    return {"required": [name], "properties": {name: schema or {"not": {"type": "null"}}}}


def _absent(*names: str) -> JsonDict:
    """JSON Schema: none of ``names`` is given (absent or null)."""
    return {"properties": {name: {"type": "null"} for name in names}}


_ADDRESSED: JsonDict = {
    "anyOf": [_given("request_id"), _given("keys", {"type": "object", "minProperties": 1})]
}
"""JSON Schema of a label's address: a request id, or at least one entity key."""


def _form_error(kind: str, field: str, message: str) -> PydanticCustomError:
    """A whole-body problem (a form missing, or two forms at once) charged to ``field``
    (:func:`error_field` names it)."""
    return PydanticCustomError(kind, message, {"field": field})


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class Instance(_Request):
    """One instance to score: entity keys to look its features up by, and/or feature
    values (which override the looked-up ones)."""

    keys: dict[str, Key] = Field(
        default_factory=dict, description='Entity keys, e.g. {"customer_id": 42}.'
    )
    features: dict[str, Value] = Field(
        default_factory=dict,
        description="Model inputs given directly, by input name; they override the online "
        "store. null stands for a missing value.",
    )


class PredictRequest(_Request):
    """One instance (``keys`` and/or ``features``) or a batch (``instances``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"allOf": [_given("instances"), _absent("keys", "features")]},
                {"allOf": [_absent("instances"), {"anyOf": [_given("keys"), _given("features")]}]},
            ]
        }
    )

    instances: Annotated[list[Instance], Field(min_length=1)] | None = Field(
        default=None, description="A batch of instances (at most serving.max_instances)."
    )
    keys: dict[str, Key] | None = Field(default=None, description="One instance's entity keys.")
    features: dict[str, Value] | None = Field(
        default=None, description="One instance's feature values."
    )
    context: dict[str, Value] = Field(
        default_factory=dict,
        description="Request fields that are not features, e.g. a session id used as the "
        "deployment's routing key.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> PredictRequest:
        single = [name for name in ("keys", "features") if getattr(self, name) is not None]
        if self.instances is not None and single:
            raise _form_error(
                "conflict",
                single[0],
                "give either instances (a batch) or keys/features (one instance)",
            )
        if self.instances is None and not single:
            raise _form_error(
                "missing",
                "instances",
                "give instances (a batch) or keys and/or features (one instance)",
            )
        return self

    def batch(self) -> list[Instance]:
        """The instances, the single form as a batch of one."""
        if self.instances is not None:
            return self.instances
        return [Instance(keys=self.keys or {}, features=self.features or {})]


class Prediction(BaseModel):
    """What the model said about one instance, and which version said it."""

    prediction: Value = Field(
        description="The predicted class (classification) or value (regression)."
    )
    score: float | None = Field(
        description="P(positive class) (binary), P(predicted class) (multiclass), or the "
        "value; null if the model returned NaN."
    )
    probabilities: dict[str, float] | None = Field(
        default=None, description="Classification: the probability of each class."
    )
    version: int = Field(description="The model version that computed this prediction.")
    role: str = Field(description="champion, canary or split:<arm>.")
    missing: list[str] = Field(
        description="Inputs that fell back to their declared default (no online value, "
        "older than the view's TTL, or null)."
    )


class PredictResponse(BaseModel):
    request_id: str
    model: str
    predictions: list[Prediction]


class FeedbackItem(_Request):
    """The true outcome of earlier predictions: by request id (and instance), or by
    entity keys and the time the outcome happened."""

    model_config = ConfigDict(json_schema_extra=_ADDRESSED)

    request_id: StrictStr | None = None
    instance: Index | None = Field(
        default=None, description="Index within the request; omitted: every instance."
    )
    keys: dict[str, Key] | None = None
    event_time: AwareDatetime | None = Field(
        default=None,
        description="When the outcome happened (ISO 8601 with a zone, e.g. 2024-05-01T12:00:00Z).",
    )
    label: Label = Field(description="The outcome: a class (number, boolean or string) or a value.")

    @model_validator(mode="after")
    def _addressed(self) -> FeedbackItem:
        _check_addressed(self.request_id, self.keys)
        return self


def _check_addressed(request_id: str | None, keys: dict[str, Any] | None) -> None:
    if request_id is None and not keys:
        raise _form_error("missing", "request_id", "give request_id, or keys (and event_time)")


class FeedbackRequest(_Request):
    """Labels for one model: one (the fields of a label) or a batch (``labels``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "allOf": [
                        _given("labels"),
                        _absent("label", "request_id", "instance", "keys", "event_time"),
                    ]
                },
                {"allOf": [_absent("labels"), _given("label"), _ADDRESSED]},
            ]
        }
    )

    model: Annotated[StrictStr, Field(pattern=MODEL_NAME_PATTERN)]
    labels: Annotated[list[FeedbackItem], Field(min_length=1)] | None = None
    request_id: StrictStr | None = None
    instance: Index | None = None
    keys: dict[str, Key] | None = None
    event_time: AwareDatetime | None = None
    label: Label | None = None

    @model_validator(mode="after")
    def _one_form(self) -> FeedbackRequest:
        single = [
            name
            for name in ("label", "request_id", "instance", "keys", "event_time")
            if getattr(self, name) is not None
        ]
        if self.labels is not None and single:
            raise _form_error(
                "conflict", single[0], "give either labels (a batch) or the fields of one label"
            )
        if self.labels is None:
            if self.label is None:
                raise _form_error("missing", "label", "give labels (a batch) or label (one label)")
            _check_addressed(self.request_id, self.keys)
        return self

    def batch(self) -> list[FeedbackItem]:
        if self.labels is not None:
            return self.labels
        return [
            FeedbackItem(
                request_id=self.request_id,
                instance=self.instance,
                keys=self.keys,
                event_time=self.event_time,
                label=self.label if self.label is not None else 0,
            )
        ]


class FeedbackResponse(BaseModel):
    accepted: int = Field(description="Labels stored.")


class ModelInfo(BaseModel):
    model: str
    deployment: dict[str, Any] = Field(
        description="Champion, canary and weight, shadow, split, staged, routing key, revision."
    )
    loaded: list[int] = Field(description="Versions this worker has loaded.")
    error: str | None = Field(default=None, description="Why a deployed version is not loaded.")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class ErrorBody(BaseModel):
    error: str = Field(description="A stable code: invalid_json, validation_error, not_found...")
    message: str
    field: str | None = Field(default=None, description="The request field at fault.")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Every validation problem, each with its field."
    )


class HealthBody(BaseModel):
    status: Literal["ok", "not ready"]
    reasons: list[str] = Field(default_factory=list)


_UNION_TAGS = {
    "bool",
    "int",
    "float",
    "str",
    "none",
    "constrained-str",
    "constrained-int",
    "list",
    "dict",
}
_EXPECTED = {
    "bool": "a boolean",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "none": "null",
    "constrained-str": "a string",
    "constrained-int": "an integer",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "less_than_equal": ("le", "at most"),
}


def error_field(error: ValidationError) -> tuple[str | None, list[dict[str, Any]]]:
    """The first field at fault (dotted path) and every problem as ``{field, message}``.

    The alternatives of a union (a feature value may be a number, a string, a boolean
    or null) are folded into one problem naming what the field accepts. A problem of
    the whole body (no form given, or two at once) names the field it is charged to.
    """
    problems: list[dict[str, Any]] = []
    folded: dict[str, dict[str, Any]] = {}
    for e in error.errors(include_url=False, include_input=False, include_context=True):
        loc = [str(part) for part in e["loc"]]
        ctx = e.get("ctx") or {}
        if e["type"] in ("missing", "conflict") and isinstance(ctx.get("field"), str):
            loc.append(ctx["field"])  # a _form_error
        tag = loc[-1] if len(loc) > 1 and loc[-1] in _UNION_TAGS else None
        path = ".".join(loc[:-1] if tag else loc) or None
        if tag is None:
            problems.append({"field": path, "message": e["msg"], "type": e["type"]})
            continue
        key = path or ""
        entry = folded.get(key)
        if entry is None:
            entry = folded[key] = {"field": path, "message": "", "type": e["type"], "wanted": []}
            problems.append(entry)
        wanted = _EXPECTED.get(tag, tag)
        bound = _BOUNDS.get(e["type"])
        if bound is not None and bound[0] in ctx:
            wanted = f"{wanted} {bound[1]} {ctx[bound[0]]}"
            entry["type"] = e["type"]
        entry["wanted"].append(wanted)
        if e["type"] == "finite_number":
            entry["type"] = "finite_number"
    for entry in folded.values():
        wanted = entry.pop("wanted")
        if entry["type"] == "finite_number":
            entry["message"] = "NaN and infinite numbers are not allowed"
        else:
            entry["message"] = "expected " + " or ".join(dict.fromkeys(wanted))
    return (problems[0]["field"] if problems else None), problems


_ERRORS = {
    "400": "Malformed JSON.",
    "404": "Unknown model.",
    "409": "The model has nothing deployed.",
    "413": "The body is larger than serving.max_body_bytes.",
    "422": "The body does not match the schema, or values do not fit the model's inputs.",
    "503": "A backend (online store, metadata store) is unavailable.",
}


def _errors(*codes: str) -> dict[str, Any]:
    return {
        code: {
            "description": _ERRORS[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        }
        for code in codes
    }


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def openapi_document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the prediction server."""
    _, schemas = models_json_schema(
        [
            (PredictRequest, "validation"),
            (FeedbackRequest, "validation"),
            (PredictResponse, "serialization"),
            (FeedbackResponse, "serialization"),
            (ModelsResponse, "serialization"),
            (ErrorBody, "serialization"),
            (HealthBody, "serialization"),
        ],
        ref_template="#/components/schemas/{model}",
    )
    model_param = {
        "name": "model",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": MODEL_NAME_PATTERN},
    }
    request_id_header = {
        "name": "x-request-id",
        "in": "header",
        "required": False,
        "description": "The request id to use (default: a new one); echoed in the response.",
        "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "driftloop prediction server",
            "version": version,
            "description": "Predictions with canary, shadow, A/B and blue-green traffic, "
            "a durable prediction log and label feedback.",
        },
        "paths": {
            "/v1/models/{model}/predict": {
                "post": {
                    "summary": "Score one instance or a batch",
                    "operationId": "predict",
                    "parameters": [model_param, request_id_header],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/PredictRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": _json("PredictResponse", "The predictions."),
                        **_errors("400", "404", "409", "413", "422", "503"),
                    },
                }
            },
            "/v1/feedback": {
                "post": {
                    "summary": "Store labels for earlier predictions",
                    "operationId": "feedback",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/FeedbackRequest"}
                            }
                        },
                    },
                    "responses": {
                        "202": _json("FeedbackResponse", "The labels are stored."),
                        **_errors("400", "404", "413", "422", "503"),
                    },
                }
            },
            "/v1/models": {
                "get": {
                    "summary": "Deployed models, their traffic and loaded versions",
                    "operationId": "models",
                    "responses": {"200": _json("ModelsResponse", "Every model.")},
                }
            },
            "/v1/models/{model}": {
                "get": {
                    "summary": "One model's deployment and loaded versions",
                    "operationId": "model",
                    "parameters": [model_param],
                    "responses": {
                        "200": _json("ModelInfo", "The model."),
                        **_errors("404"),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "The process is alive",
                    "operationId": "healthz",
                    "responses": {"200": _json("HealthBody", "Alive.")},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Deployed models are loaded and the online store answers",
                    "operationId": "readyz",
                    "responses": {
                        "200": _json("HealthBody", "Ready."),
                        "503": _json("HealthBody", "Not ready, with the reasons."),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3.1 document of the server.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": schemas["$defs"]},
    }
