"""The one exception tree of driftloop.

Every error carries structured fields (which file, key, column, version...) and
builds its message from them. Errors become CLI exit codes and HTTP responses in
exactly one place at the edge (``driftloop.cli`` and, later, the server), using
``exit_code``, ``http_status`` and ``to_dict()``.

::

    DriftloopError
    ├── ConfigError                 driftloop.yaml or an environment override is wrong
    ├── DefinitionError             the project's definitions module failed to load
    ├── ContractError               a data contract does not parse or is inconsistent
    │   └── BreakingContractChange  a new contract version would break the old data
    ├── NotFoundError               an unknown source, dataset version, quarantine entry...
    ├── InputError                  an input file cannot be read at all
    │   └── InputNotFound           the path does not exist
    ├── BatchRejected               a batch failed its contract; it is kept in quarantine
    ├── StateError                  an operation is not allowed in the current state
    ├── ArtifactError               the artifact store failed
    │   ├── ArtifactNotFound        no blob with that digest
    │   └── ArtifactCorrupted       a blob's content does not match its digest
    ├── MetadataStoreError          the metadata store cannot be opened or migrated
    ├── BackendUnavailable          a server driftloop uses (Redis...) does not answer
    ├── ServerError                 the prediction server answered a client with an error
    └── MissingExtraError           an optional backend's package is not installed
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ArtifactCorrupted",
    "ArtifactError",
    "ArtifactNotFound",
    "BackendUnavailable",
    "BatchRejected",
    "BreakingContractChange",
    "ConfigError",
    "ContractError",
    "DefinitionError",
    "DriftloopError",
    "InputError",
    "InputNotFound",
    "MetadataStoreError",
    "MissingExtraError",
    "NotFoundError",
    "ServerError",
    "StateError",
]


class DriftloopError(Exception):
    """Root of every error driftloop raises on purpose.

    Subclasses declare ``code`` (a stable machine-readable name), ``exit_code``
    (for the CLI) and ``http_status`` (for the server), and keep their fields as
    attributes so callers never parse messages.
    """

    code: ClassVar[str] = "driftloop_error"
    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = {k: v for k, v in fields.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready body: ``{"error": code, "message": ..., **fields}``."""
        return {"error": self.code, "message": self.message, **self.fields}


class ConfigError(DriftloopError):
    """A setting is missing, unknown or has the wrong type."""

    code = "config_error"
    exit_code = 5
    http_status = 500

    def __init__(self, problem: str, *, key: str | None = None, file: str | None = None) -> None:
        where = ": ".join(p for p in (file, key) if p)
        super().__init__(f"{where}: {problem}" if where else problem, key=key, file=file)
        self.key = key
        self.file = file


class DefinitionError(DriftloopError):
    """The project's definitions module cannot be imported or defines something twice."""

    code = "definition_error"
    exit_code = 5

    def __init__(self, problem: str, *, file: str | None = None) -> None:
        super().__init__(f"{file}: {problem}" if file else problem, file=file)
        self.file = file


class ContractError(DriftloopError):
    """A data contract cannot be parsed or contradicts itself."""

    code = "contract_error"
    exit_code = 5
    http_status = 422

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        where = file or ""
        if line is not None:
            where += f":{line}"
        if field:
            where = f"{where}: {field}" if where else field
        super().__init__(
            f"{where}: {problem}" if where else problem, file=file, field=field, line=line
        )
        self.file = file
        self.field = field
        self.line = line


class BreakingContractChange(ContractError):
    """A new contract version would make already accepted data invalid."""

    code = "breaking_contract_change"

    def __init__(self, source: str, changes: list[str]) -> None:
        listed = "; ".join(changes)
        DriftloopError.__init__(
            self,
            f"source {source!r}: the new contract breaks the accepted data ({listed}); "
            "declare a new source for incompatible data",
            source=source,
            changes=changes,
        )
        self.file = None
        self.field = None
        self.line = None
        self.source = source
        self.changes = changes


class NotFoundError(DriftloopError):
    """Something named by the user does not exist."""

    code = "not_found"
    exit_code = 4
    http_status = 404

    def __init__(self, kind: str, name: str, *, known: list[str] | None = None) -> None:
        msg = f"unknown {kind} {name!r}"
        if known is not None:
            msg += f" (known: {', '.join(known) if known else 'none'})"
        super().__init__(msg, kind=kind, name=name)
        self.kind = kind
        self.name = name


class InputError(DriftloopError):
    """An input cannot be read at all (as opposed to read and found invalid)."""

    code = "input_error"
    exit_code = 3
    http_status = 400

    def __init__(self, problem: str, *, path: str | None = None, **fields: Any) -> None:
        super().__init__(f"{path}: {problem}" if path else problem, path=path, **fields)
        self.path = path


class InputNotFound(InputError):
    """The input path does not exist."""

    code = "input_not_found"

    def __init__(self, path: str) -> None:
        super().__init__("no such file", path=path)


class BatchRejected(DriftloopError):
    """A batch failed its contract. It is kept byte-identical in quarantine."""

    code = "batch_rejected"
    exit_code = 3
    http_status = 422

    def __init__(self, source: str, quarantine_id: str, failures: list[str]) -> None:
        shown = "; ".join(failures[:5])
        more = f" (+{len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(
            f"source {source!r}: batch rejected and kept in quarantine as {quarantine_id}: "
            f"{shown}{more}",
            source=source,
            quarantine_id=quarantine_id,
            failures=failures,
        )
        self.source = source
        self.quarantine_id = quarantine_id
        self.failures = failures


class StateError(DriftloopError):
    """The operation is not allowed in the object's current state."""

    code = "state_error"
    exit_code = 6
    http_status = 409


class ArtifactError(DriftloopError):
    """The artifact store failed."""

    code = "artifact_error"


class ArtifactNotFound(ArtifactError):
    """No blob with that digest is stored."""

    code = "artifact_not_found"
    exit_code = 4
    http_status = 404

    def __init__(self, digest: str, *, location: str | None = None) -> None:
        super().__init__(
            f"no artifact {digest}" + (f" in {location}" if location else ""),
            digest=digest,
            location=location,
        )
        self.digest = digest


class ArtifactCorrupted(ArtifactError):
    """A blob's bytes do not hash to the digest it is stored under."""

    code = "artifact_corrupted"

    def __init__(self, digest: str, actual: str, *, path: str | None = None) -> None:
        super().__init__(
            f"artifact {digest} is corrupted: its content hashes to {actual}"
            + (f" ({path})" if path else ""),
            digest=digest,
            actual=actual,
            path=path,
        )
        self.digest = digest
        self.actual = actual
        self.path = path


class MetadataStoreError(DriftloopError):
    """The metadata store cannot be reached, opened or migrated."""

    code = "metadata_store_error"


class BackendUnavailable(DriftloopError):
    """A server driftloop talks to (the Redis online store...) cannot be reached."""

    code = "backend_unavailable"
    exit_code = 7
    http_status = 503

    def __init__(self, backend: str, location: str, problem: str) -> None:
        super().__init__(
            f"{backend} at {location} is unavailable: {problem}", backend=backend, location=location
        )
        self.backend = backend
        self.location = location


class MissingExtraError(DriftloopError):
    """An optional backend needs a package that is not installed."""

    code = "missing_extra"
    exit_code = 5

    def __init__(self, feature: str, extra: str, package: str) -> None:
        super().__init__(
            f"{feature} needs the {package!r} package: pip install 'driftloop[{extra}]'",
            feature=feature,
            extra=extra,
            package=package,
        )
        self.extra = extra
        self.package = package


class ServerError(DriftloopError):
    """The prediction server answered a :mod:`driftloop.client` request with an error.

    ``status`` is the HTTP status, ``error`` the server's error code (``not_found``,
    ``validation_error``...), ``field`` the request field at fault when there is one,
    and ``body`` the whole JSON error body.
    """

    code = "server_error"
    exit_code = 3

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        error = str(body.get("error", "http_error"))
        message = str(body.get("message", f"HTTP {status}"))
        field = body.get("field")
        super().__init__(
            f"the server answered {status} {error}: {message}",
            status=status,
            server_error=error,
            field=field,
        )
        self.status = status
        self.error = error
        self.field = field
        self.body = body

    @property
    def http_status(self) -> int:  # type: ignore[override]
        return self.status
