"""Registered models, their immutable numbered versions, and aliases moved by compare-and-set.

A model version is numbered 1, 2, 3... per model and never changes once written. An
alias (``champion``, ``challenger``, or any name matching ``^[a-z][a-z0-9_-]*$``) is
the only mutable pointer: :func:`set_alias` moves it in one transaction, optionally
only when it still points where the caller expects, and appends the move to the
alias history, so "which version was champion at time t" is a query::

    v = register_version(store, "fraud", artifact_digest=digest, flavor="sklearn", who="ci")
    set_alias(store, "fraud", "champion", v.version, expected=None, who="ci", reason="first")
    resolve(store, "fraud", "champion")  # -> ModelVersion(version=1, ...)
    rollback(store, "fraud", who="oncall", reason="latency regression")
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from driftloop.core import clock
from driftloop.core.metadata import MetadataStore
from driftloop.errors import InputError, NotFoundError, StateError
from driftloop.registry.tables import alias_history as history
from driftloop.registry.tables import model_aliases, model_versions, registered_models

__all__ = [
    "ANY",
    "AliasMove",
    "ModelVersion",
    "RegisteredModel",
    "VersionDiff",
    "alias_history",
    "aliases",
    "create_model",
    "delete_alias",
    "diff_versions",
    "get_model",
    "get_version",
    "list_models",
    "list_versions",
    "move_alias_on",
    "register_version",
    "require_model",
    "resolve",
    "rollback",
    "set_alias",
    "version_at",
]

_MODEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")
_ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_RESERVED_REFS = frozenset({"latest"})
_ATTEMPTS = 5


class _Any(enum.Enum):
    ANY = "any"

    def __repr__(self) -> str:
        return "ANY"


ANY: Final = _Any.ANY
"""``expected=ANY`` (the default) moves an alias whatever it points at now."""

Expected = int | None | Literal[_Any.ANY]


@dataclass(frozen=True)
class RegisteredModel:
    """A model name with its latest version number and current aliases (as read)."""

    name: str
    description: str
    created_at: datetime
    created_by: str
    latest_version: int | None
    aliases: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["created_at"] = self.created_at.isoformat()
        return body


@dataclass(frozen=True)
class ModelVersion:
    """One immutable version of a model: its artifact, metrics, signature and lineage."""

    model: str
    version: int
    artifact_digest: str
    flavor: str
    run_id: str | None
    metrics: dict[str, Any]
    signature: dict[str, Any]
    tags: dict[str, Any]
    lineage: dict[str, Any]
    description: str
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["created_at"] = self.created_at.isoformat()
        return body


@dataclass(frozen=True)
class AliasMove:
    """One row of the alias history: a set (from None), a move, or a delete (to None)."""

    id: int
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    who: str
    at: datetime
    reason: str

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["at"] = self.at.isoformat()
        return body


@dataclass(frozen=True)
class VersionDiff:
    """What differs between two versions: ``{key: (in a, in b)}`` per section.

    An absent key shows as ``None``. Nested signature and lineage keys are joined
    with dots (``"outputs.type"``); lists are compared whole.
    """

    a: str
    b: str
    metrics: dict[str, tuple[Any, Any]]
    tags: dict[str, tuple[Any, Any]]
    signature: dict[str, tuple[Any, Any]]
    lineage: dict[str, tuple[Any, Any]]
    params: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Training hyperparameters, from each version's training run (when it has one)."""

    @property
    def same(self) -> bool:
        return not (self.metrics or self.tags or self.signature or self.lineage or self.params)

    def to_dict(self) -> dict[str, Any]:
        def section(d: dict[str, tuple[Any, Any]]) -> dict[str, list[Any]]:
            return {k: list(v) for k, v in d.items()}

        return {
            "a": self.a,
            "b": self.b,
            "metrics": section(self.metrics),
            "params": section(self.params),
            "tags": section(self.tags),
            "signature": section(self.signature),
            "lineage": section(self.lineage),
        }


# --- validation -----------------------------------------------------------------------


def _check_model_name(name: str) -> None:
    if not isinstance(name, str) or not _MODEL_NAME.match(name):
        raise InputError(
            f"model name {name!r} must start with a letter or _ and use only "
            "letters, digits, '_', '.', '-' (at most 200 characters)",
            model=name,
        )


def _check_alias_name(alias: str) -> None:
    if not isinstance(alias, str) or not _ALIAS_NAME.match(alias):
        raise InputError(
            f"alias {alias!r} must match ^[a-z][a-z0-9_-]*$ (at most 64 characters)",
            alias=alias,
        )
    if alias in _RESERVED_REFS:
        raise InputError(f"alias {alias!r} is reserved: it already means the newest version")


def _json_dict(value: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    """A plain JSON-serialisable dict with string keys and no NaN/Infinity."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"{what} must be a mapping, not {type(value).__name__}", field=what)
    for key in value:
        if not isinstance(key, str):
            raise InputError(f"{what} key {key!r} must be a string", field=what)
    try:
        text = json.dumps(dict(value), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} is not JSON-serialisable: {exc}", field=what) from None
    loaded: dict[str, Any] = json.loads(text)
    return loaded


# --- rows -----------------------------------------------------------------------------


def _version_from_row(row: Any) -> ModelVersion:
    return ModelVersion(
        model=row.model,
        version=row.version,
        artifact_digest=row.artifact_digest,
        flavor=row.flavor,
        run_id=row.run_id,
        metrics=dict(row.metrics),
        signature=dict(row.signature),
        tags=dict(row.tags),
        lineage=dict(row.lineage),
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _move_from_row(row: Any) -> AliasMove:
    return AliasMove(
        id=row.id,
        model=row.model,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        who=row.who,
        at=row.at,
        reason=row.reason,
    )


def _known_models(conn: Connection) -> list[str]:
    query = sa.select(registered_models.c.name).order_by(registered_models.c.name)
    return list(conn.execute(query).scalars())


def _require_model(conn: Connection, model: str, *, lock: bool = False) -> None:
    """Raise NotFoundError unless ``model`` exists; ``lock`` holds its row until commit.

    Every writer of a model's versions or aliases locks the model row first, so on
    PostgreSQL they queue per model (SQLite's BEGIN IMMEDIATE already serialises them).
    """
    query = sa.select(registered_models.c.name).where(registered_models.c.name == model)
    if lock:
        query = query.with_for_update()
    if conn.execute(query).first() is None:
        raise NotFoundError("model", model, known=_known_models(conn))


def _known_versions(conn: Connection, model: str) -> list[str]:
    query = (
        sa.select(model_versions.c.version)
        .where(model_versions.c.model == model)
        .order_by(model_versions.c.version)
    )
    return [str(v) for v in conn.execute(query).scalars()]


def _version_row(conn: Connection, model: str, version: int) -> Any:
    row = conn.execute(
        sa.select(model_versions).where(
            model_versions.c.model == model, model_versions.c.version == version
        )
    ).first()
    if row is None:
        _require_model(conn, model)
        raise NotFoundError(
            "model version", f"{model}/{version}", known=_known_versions(conn, model)
        )
    return row


def _current_aliases(conn: Connection, model: str) -> dict[str, int]:
    query = (
        sa.select(model_aliases.c.alias, model_aliases.c.version)
        .where(model_aliases.c.model == model)
        .order_by(model_aliases.c.alias)
    )
    return {r.alias: r.version for r in conn.execute(query)}


# --- writes ---------------------------------------------------------------------------


def create_model(
    store: MetadataStore, name: str, *, who: str, description: str = ""
) -> RegisteredModel:
    """Register the model ``name`` (a no-op returning the existing one when it exists)."""
    _check_model_name(name)
    for attempt in range(_ATTEMPTS):
        try:
            with store.transaction() as conn:
                _ensure_model(conn, name, who=who, description=description)
            break
        except sa.exc.IntegrityError:
            # another writer created it between our read and our insert: read theirs
            if attempt == _ATTEMPTS - 1:
                raise
    return get_model(store, name)


def _ensure_model(conn: Connection, name: str, *, who: str, description: str) -> None:
    exists = conn.execute(
        sa.select(registered_models.c.name)
        .where(registered_models.c.name == name)
        .with_for_update()
    ).first()
    if exists is None:
        conn.execute(
            registered_models.insert().values(
                name=name, description=description, created_at=clock.now(), created_by=who
            )
        )


def register_version(
    store: MetadataStore,
    model: str,
    *,
    artifact_digest: str,
    flavor: str,
    who: str,
    run_id: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    signature: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    lineage: Mapping[str, Any] | None = None,
    description: str = "",
) -> ModelVersion:
    """Record a new immutable version of ``model`` (created if new) and return it.

    The version number is the model's highest plus one, allocated under a lock on the
    model's row, so concurrent writers in any number of processes never share a number.
    ``artifact_digest`` is the sha256 of the model blob in the artifact store.
    """
    _check_model_name(model)
    if not isinstance(artifact_digest, str) or not _DIGEST.match(artifact_digest):
        raise InputError(
            f"artifact digest {artifact_digest!r} is not a sha256 hex digest (64 hex digits)",
            field="artifact_digest",
        )
    if not flavor or not isinstance(flavor, str):
        raise InputError("a model version needs a flavor (e.g. 'sklearn')", field="flavor")
    values: dict[str, Any] = {
        "artifact_digest": artifact_digest,
        "flavor": flavor,
        "run_id": run_id,
        "metrics": _json_dict(metrics, "metrics"),
        "signature": _json_dict(signature, "signature"),
        "tags": _json_dict(tags, "tags"),
        "lineage": _json_dict(lineage, "lineage"),
        "description": description,
        "created_by": who,
    }
    for attempt in range(_ATTEMPTS):
        try:
            with store.transaction() as conn:
                _ensure_model(conn, model, who=who, description="")
                highest = conn.execute(
                    sa.select(sa.func.max(model_versions.c.version)).where(
                        model_versions.c.model == model
                    )
                ).scalar_one()
                number = (highest or 0) + 1
                conn.execute(
                    model_versions.insert().values(
                        model=model, version=number, created_at=clock.now(), **values
                    )
                )
                row = _version_row(conn, model, number)
            return _version_from_row(row)
        except sa.exc.IntegrityError:
            # two first writers raced to create the model row; the retry finds it
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def set_alias(
    store: MetadataStore,
    model: str,
    alias: str,
    version: int | ModelVersion,
    *,
    expected: Expected = ANY,
    who: str,
    reason: str = "",
) -> AliasMove:
    """Point ``alias`` of ``model`` at ``version``, in one transaction with its history row.

    With ``expected`` (a version number, or ``None`` for "the alias must not exist yet")
    the move happens only when the alias still points there; otherwise
    :class:`StateError` names the current and the expected version and nothing changes.
    Setting the alias to the version it already points at writes nothing and returns
    the move that put it there.
    """
    _check_model_name(model)
    _check_alias_name(alias)
    if isinstance(version, ModelVersion):
        if version.model != model:
            raise StateError(
                f"version {version.ref} belongs to model {version.model!r}, "
                f"not {model!r}; alias {alias!r} can only point at a version of {model!r}",
                model=model,
                alias=alias,
            )
        version = version.version
    with store.transaction() as conn:
        return move_alias_on(conn, model, alias, version, expected=expected, who=who, reason=reason)


def move_alias_on(
    conn: Connection,
    model: str,
    alias: str,
    version: int,
    *,
    expected: Expected = ANY,
    who: str,
    reason: str = "",
) -> AliasMove:
    """:func:`set_alias` inside the caller's transaction ``conn``.

    For a package that changes its own state and an alias atomically (a blue-green
    switch moves ``champion`` in the transaction that updates the deployment): the
    alias moves, or nothing does, when that transaction commits or rolls back. The
    model's row is locked like every registry writer does (see :func:`require_model`).
    """
    _check_model_name(model)
    _check_alias_name(alias)
    if isinstance(version, bool) or not isinstance(version, int):
        raise InputError(f"version {version!r} must be a version number", field="version")
    _require_model(conn, model, lock=True)
    _version_row(conn, model, version)
    current = _alias_version(conn, model, alias)
    _check_expected(model, alias, current, expected)
    if current == version:
        last = _last_move(conn, model, alias)
        if last is not None:
            return last
    return _move(conn, model, alias, current, version, who=who, reason=reason)


def require_model(conn: Connection, model: str, *, lock: bool = False) -> None:
    """Raise NotFoundError (listing the known models) unless ``model`` is registered.

    With ``lock`` the model's row is held until ``conn``'s transaction ends. Every
    writer of a model's versions, aliases or deployment takes this lock first, so on
    PostgreSQL they queue per model and each reads what the previous one committed.
    """
    _require_model(conn, model, lock=lock)


def delete_alias(
    store: MetadataStore,
    model: str,
    alias: str,
    *,
    expected: Expected = ANY,
    who: str,
    reason: str = "",
) -> AliasMove:
    """Remove ``alias`` of ``model`` (compare-and-set like :func:`set_alias`), with history."""
    _check_model_name(model)
    _check_alias_name(alias)
    with store.transaction() as conn:
        _require_model(conn, model, lock=True)
        current = _alias_version(conn, model, alias)
        _check_expected(model, alias, current, expected)
        if current is None:
            raise NotFoundError(
                "alias", f"{model}@{alias}", known=sorted(_current_aliases(conn, model))
            )
        return _move(conn, model, alias, current, None, who=who, reason=reason)


def rollback(
    store: MetadataStore,
    model: str,
    alias: str = "champion",
    *,
    who: str,
    reason: str = "",
) -> AliasMove:
    """Move ``alias`` back to the version it pointed at before its last move.

    Raises :class:`StateError` when the alias has no earlier version (it was only
    ever set once). Rolling back twice returns to where the first rollback started.
    """
    _check_model_name(model)
    _check_alias_name(alias)
    with store.transaction() as conn:
        _require_model(conn, model, lock=True)
        last = _last_move(conn, model, alias)
        if last is None:
            raise NotFoundError(
                "alias", f"{model}@{alias}", known=sorted(_current_aliases(conn, model))
            )
        if last.from_version is None:
            raise StateError(
                f"alias {alias!r} of model {model!r} has no earlier version to roll back to "
                f"(it was first set to version {last.to_version} and never moved)",
                model=model,
                alias=alias,
            )
        current = _alias_version(conn, model, alias)
        return _move(conn, model, alias, current, last.from_version, who=who, reason=reason)


def _alias_version(conn: Connection, model: str, alias: str) -> int | None:
    version: int | None = conn.execute(
        sa.select(model_aliases.c.version).where(
            model_aliases.c.model == model, model_aliases.c.alias == alias
        )
    ).scalar_one_or_none()
    return version


def _check_expected(model: str, alias: str, current: int | None, expected: Expected) -> None:
    if expected is ANY or expected == current:
        return

    def show(v: int | None) -> str:
        return "unset" if v is None else f"version {v}"

    raise StateError(
        f"alias {alias!r} of model {model!r} is at {show(current)}, "
        f"not at the expected {show(expected)}; it was moved by someone else, nothing changed",
        model=model,
        alias=alias,
        current=current,
        expected=expected,
    )


def _last_move(conn: Connection, model: str, alias: str) -> AliasMove | None:
    row = conn.execute(
        sa.select(history)
        .where(history.c.model == model, history.c.alias == alias)
        .order_by(history.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _move_from_row(row)


def _move(
    conn: Connection,
    model: str,
    alias: str,
    current: int | None,
    to: int | None,
    *,
    who: str,
    reason: str,
) -> AliasMove:
    at = clock.now()
    where = (model_aliases.c.model == model, model_aliases.c.alias == alias)
    if to is None:
        conn.execute(model_aliases.delete().where(*where))
    elif current is None:
        conn.execute(
            model_aliases.insert().values(
                model=model, alias=alias, version=to, updated_at=at, updated_by=who
            )
        )
    else:
        conn.execute(
            model_aliases.update().where(*where).values(version=to, updated_at=at, updated_by=who)
        )
    new_id = conn.execute(
        history.insert()
        .values(
            model=model,
            alias=alias,
            from_version=current,
            to_version=to,
            who=who,
            at=at,
            reason=reason,
        )
        .returning(history.c.id)
    ).scalar_one()
    return AliasMove(new_id, model, alias, current, to, who, at, reason)


# --- reads ----------------------------------------------------------------------------


def get_model(store: MetadataStore, name: str) -> RegisteredModel:
    """The registered model ``name`` with its latest version and current aliases."""
    with store.connect() as conn:
        row = conn.execute(
            sa.select(registered_models).where(registered_models.c.name == name)
        ).first()
        if row is None:
            raise NotFoundError("model", name, known=_known_models(conn))
        latest = conn.execute(
            sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.model == name)
        ).scalar_one()
        return RegisteredModel(
            row.name,
            row.description,
            row.created_at,
            row.created_by,
            latest,
            _current_aliases(conn, name),
        )


def list_models(store: MetadataStore) -> list[RegisteredModel]:
    """Every registered model, by name."""
    with store.connect() as conn:
        names = _known_models(conn)
    return [get_model(store, name) for name in names]


def get_version(store: MetadataStore, model: str, version: int) -> ModelVersion:
    """Version ``version`` of ``model``; NotFoundError lists the known ones."""
    with store.connect() as conn:
        return _version_from_row(_version_row(conn, model, version))


def list_versions(store: MetadataStore, model: str) -> list[ModelVersion]:
    """Every version of ``model``, oldest (1) first."""
    with store.connect() as conn:
        _require_model(conn, model)
        rows = conn.execute(
            sa.select(model_versions)
            .where(model_versions.c.model == model)
            .order_by(model_versions.c.version)
        ).all()
    return [_version_from_row(r) for r in rows]


def aliases(store: MetadataStore, model: str) -> dict[str, int]:
    """The current aliases of ``model`` and the version each points at."""
    with store.connect() as conn:
        _require_model(conn, model)
        return _current_aliases(conn, model)


def resolve(store: MetadataStore, model: str, ref: int | str) -> ModelVersion:
    """The version ``ref`` names: a number (``3`` or ``"3"``), ``"latest"`` or an alias."""
    with store.connect() as conn:
        _require_model(conn, model)
        if isinstance(ref, bool):
            raise InputError(f"model reference {ref!r} is not a version, 'latest' or an alias")
        if isinstance(ref, int):
            return _version_from_row(_version_row(conn, model, ref))
        if not isinstance(ref, str):
            raise InputError(f"model reference {ref!r} is not a version, 'latest' or an alias")
        text = ref.strip()
        if text.isdigit():
            return _version_from_row(_version_row(conn, model, int(text)))
        if text == "latest":
            row = conn.execute(
                sa.select(model_versions)
                .where(model_versions.c.model == model)
                .order_by(model_versions.c.version.desc())
                .limit(1)
            ).first()
            if row is None:
                raise NotFoundError("model version", f"{model}/latest", known=[])
            return _version_from_row(row)
        if not _ALIAS_NAME.match(text):
            raise InputError(
                f"model reference {ref!r} is not a version number, 'latest' or an alias name"
            )
        version = _alias_version(conn, model, text)
        if version is None:
            raise NotFoundError(
                "alias", f"{model}@{text}", known=sorted(_current_aliases(conn, model))
            )
        return _version_from_row(_version_row(conn, model, version))


def alias_history(store: MetadataStore, model: str, alias: str | None = None) -> list[AliasMove]:
    """Every move of ``model``'s aliases (or only of ``alias``), oldest first."""
    query = sa.select(history).where(history.c.model == model)
    if alias is not None:
        query = query.where(history.c.alias == alias)
    with store.connect() as conn:
        _require_model(conn, model)
        rows = conn.execute(query.order_by(history.c.id)).all()
    return [_move_from_row(r) for r in rows]


def version_at(store: MetadataStore, model: str, alias: str, at: datetime) -> int | None:
    """The version ``alias`` pointed at at time ``at`` (None when it was unset then).

    Read from the alias history: the last move made at or before ``at`` decides.
    """
    at = clock.ensure_utc(at, what="at")
    with store.connect() as conn:
        _require_model(conn, model)
        version: int | None = conn.execute(
            sa.select(history.c.to_version)
            .where(
                history.c.model == model,
                history.c.alias == alias,
                history.c.at <= at,
            )
            .order_by(history.c.at.desc(), history.c.id.desc())
            .limit(1)
        ).scalar_one_or_none()
    return version


def diff_versions(
    a: ModelVersion,
    b: ModelVersion,
    *,
    params: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
) -> VersionDiff:
    """The metrics, tags, signature and lineage keys whose values differ from ``a`` to ``b``
    (and the training parameters, given as ``(params of a, params of b)``)."""
    return VersionDiff(
        a=a.ref,
        b=b.ref,
        params=_diff(_flatten(params[0]), _flatten(params[1])) if params else {},
        metrics=_diff(a.metrics, b.metrics),
        tags=_diff(a.tags, b.tags),
        signature=_diff(_flatten(a.signature), _flatten(b.signature)),
        lineage=_diff(_flatten(a.lineage), _flatten(b.lineage)),
    )


def _flatten(body: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in body.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
