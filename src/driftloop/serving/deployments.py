"""The deployment state of each model: which versions serve, in which role, and how much.

The champion is the registry's ``champion`` alias, the single source of truth for what
serves by default; a deployment adds the rest, in the ``deployments`` table:

- a **canary** version with a weight (percent of the routing keys),
- a **shadow** version that scores a copy of each request off the hot path,
- an **A/B split** (arm name -> version, with percents summing to 100) that replaces
  the champion/canary routing while it is set,
- a **staged** version (blue-green): loaded and warmed by every server before
  :func:`switch` makes it champion,
- the **routing key**: the request field or entity key hashed for sticky assignment.

Every change is one transaction: it locks the model's row, checks ``expected_revision``
when given (compare-and-set), bumps the revision and appends the full new state to the
append-only ``deployment_history``. :func:`promote` and :func:`switch` move the
``champion`` alias in that same transaction, so the alias and the deployment never
disagree, not even for a moment::

    set_canary(store, "fraud", 4, 10.0, who="ann", reason="new features")
    d = get_deployment(store, "fraud")      # champion=3, canary=4 at 10 %, revision=1
    promote(store, "fraud", who="ann", expected_revision=d.revision)   # champion=4
    deployment_history(store, "fraud")      # both changes, who, when, why, full state

A server polls :func:`state_token` (one cheap query) and reloads the deployments only
when it changed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from driftloop.core import clock
from driftloop.core.metadata import MetadataStore
from driftloop.errors import InputError, NotFoundError, StateError
from driftloop.registry import models as model_registry
from driftloop.registry.tables import alias_history, model_aliases, model_versions
from driftloop.registry.tables import registered_models as models_table
from driftloop.serving.tables import deployment_history as history
from driftloop.serving.tables import deployments as table

__all__ = [
    "CHAMPION",
    "Deployment",
    "DeploymentChange",
    "abort",
    "deployment_history",
    "get_deployment",
    "list_deployments",
    "promote",
    "require_version",
    "set_canary",
    "set_routing_key",
    "set_shadow",
    "set_split",
    "stage",
    "state_token",
    "switch",
]

CHAMPION: Final = "champion"
"""The registry alias that names the version serving by default."""

_ARM_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_ROUTING_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")
_PERCENT = 100


@dataclass(frozen=True)
class Deployment:
    """The deployment state of one model, as read (``revision`` 0: never changed).

    ``champion`` is the registry's ``champion`` alias at the time of reading. When
    ``split`` is set it replaces the champion/canary routing; ``shadow`` and ``staged``
    receive no answered traffic.
    """

    model: str
    champion: int | None
    canary: int | None = None
    canary_weight: float = 0.0
    """Percent (0 < w <= 100) of the routing keys sent to the canary; 0 without one."""
    shadow: int | None = None
    split: dict[str, int] | None = None
    """An A/B split: arm name -> version."""
    split_weights: dict[str, int] | None = None
    """Arm name -> percent of the routing keys; they sum to 100."""
    staged: int | None = None
    routing_key: str | None = None
    """The request field or entity key hashed for sticky assignment (None: the entity
    keys, else the request id)."""
    revision: int = 0
    updated_at: datetime | None = None
    updated_by: str | None = None

    def versions(self) -> set[int]:
        """Every version a server must have loaded: champion, canary, shadow, staged and
        the split's arms."""
        found = {self.champion, self.canary, self.shadow, self.staged}
        found.update((self.split or {}).values())
        return {v for v in found if v is not None}

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["updated_at"] = None if self.updated_at is None else self.updated_at.isoformat()
        return body

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Deployment:
        """The deployment :meth:`to_dict` gave (as stored in the history)."""
        at = body.get("updated_at")
        return cls(
            model=body["model"],
            champion=body.get("champion"),
            canary=body.get("canary"),
            canary_weight=float(body.get("canary_weight") or 0.0),
            shadow=body.get("shadow"),
            split=None if body.get("split") is None else dict(body["split"]),
            split_weights=None
            if body.get("split_weights") is None
            else dict(body["split_weights"]),
            staged=body.get("staged"),
            routing_key=body.get("routing_key"),
            revision=int(body.get("revision") or 0),
            updated_at=None if at is None else datetime.fromisoformat(at),
            updated_by=body.get("updated_by"),
        )

    def _traffic(self) -> tuple[Any, ...]:
        """What a change may alter (everything but the revision stamp)."""
        return (
            self.champion,
            self.canary,
            self.canary_weight,
            self.shadow,
            self.split,
            self.split_weights,
            self.staged,
            self.routing_key,
        )


@dataclass(frozen=True)
class DeploymentChange:
    """One row of the deployment history: the action, who, when, why, and the new state."""

    id: int
    model: str
    revision: int
    action: str
    """``canary``, ``shadow``, ``split``, ``routing_key``, ``stage``, ``switch``,
    ``promote`` or ``abort``."""
    state: Deployment
    who: str
    at: datetime
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "revision": self.revision,
            "action": self.action,
            "who": self.who,
            "at": self.at.isoformat(),
            "reason": self.reason,
            "state": self.state.to_dict(),
        }


# --- validation -----------------------------------------------------------------------


def _check_version(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{what} {value!r} must be a version number (1, 2, ...)", field=what)
    return value


def _check_weight(weight: Any) -> float:
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise InputError(f"weight {weight!r} must be a number of percent", field="weight")
    if not math.isfinite(weight) or not 0 < weight <= _PERCENT:
        raise InputError(
            f"weight {weight!r} must be a percent above 0 and at most 100", field="weight"
        )
    return float(weight)


def _check_split(
    split: Mapping[str, int], weights: Mapping[str, int] | None
) -> tuple[dict[str, int], dict[str, int]]:
    if not isinstance(split, Mapping) or len(split) < 2:
        raise InputError(
            f"split {split!r} must map at least two arm names to versions, e.g. {{'a': 3, 'b': 4}}",
            field="split",
        )
    arms: dict[str, int] = {}
    for name, version in split.items():
        if not isinstance(name, str) or not _ARM_NAME.match(name):
            raise InputError(
                f"split arm name {name!r} must match ^[a-z][a-z0-9_-]*$", field="split"
            )
        arms[name] = _check_version(version, f"split[{name}]")
    if len(set(arms.values())) < len(arms):
        raise InputError(
            f"split {arms} names a version twice; arms need distinct versions", field="split"
        )
    if weights is None:
        if _PERCENT % len(arms):
            raise InputError(
                f"{len(arms)} arms cannot share 100 percent equally: give split_weights",
                field="split_weights",
            )
        return arms, dict.fromkeys(arms, _PERCENT // len(arms))
    if not isinstance(weights, Mapping) or set(weights) != set(arms):
        shown = sorted(weights) if isinstance(weights, Mapping) else weights
        raise InputError(
            f"split_weights name {shown} but the split's arms are {sorted(arms)}",
            field="split_weights",
        )
    shares: dict[str, int] = {}
    for name in arms:
        share = weights[name]
        if isinstance(share, bool) or not isinstance(share, int) or share <= 0:
            raise InputError(
                f"split_weights[{name}] {share!r} must be a whole percent above 0",
                field="split_weights",
            )
        shares[name] = share
    if sum(shares.values()) != _PERCENT:
        raise InputError(
            f"split_weights {shares} sum to {sum(shares.values())}, not 100",
            field="split_weights",
        )
    return arms, shares


def _check_routing_key(key: Any) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not _ROUTING_KEY.match(key):
        raise InputError(
            f"routing key {key!r} must be a field name: a letter or _, then letters, "
            "digits, '_', '.', '-' (at most 200 characters)",
            field="routing_key",
        )
    return key


def _check_expected(expected: Any) -> int | None:
    if expected is None:
        return None
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise InputError(
            f"expected revision {expected!r} must be a revision number (0, 1, ...)",
            field="expected_revision",
        )
    return expected


# --- reads on a connection --------------------------------------------------------------


def _state_query() -> sa.Select[Any]:
    """Each model's deployment row and champion alias, in ONE statement: on PostgreSQL
    every statement reads its own snapshot, so two queries could pair the champion after
    a promote with the deployment before it."""
    champion = model_aliases.alias("champion_alias")
    return (
        sa.select(
            models_table.c.name,
            champion.c.version.label("champion"),
            *(c for c in table.c if c.name != "model"),
        )
        .select_from(models_table)
        .outerjoin(table, table.c.model == models_table.c.name)
        .outerjoin(
            champion,
            sa.and_(champion.c.model == models_table.c.name, champion.c.alias == CHAMPION),
        )
        .order_by(models_table.c.name)
    )


def _from_row(row: Any) -> Deployment:
    if row.revision is None:  # no deployment row: never changed
        return Deployment(row.name, row.champion)
    return Deployment(
        model=row.name,
        champion=row.champion,
        canary=row.canary,
        canary_weight=row.canary_weight,
        shadow=row.shadow,
        split=None if row.split is None else dict(row.split),
        split_weights=None if row.split_weights is None else dict(row.split_weights),
        staged=row.staged,
        routing_key=row.routing_key,
        revision=row.revision,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def _read(conn: Connection, model: str) -> Deployment:
    row = conn.execute(_state_query().where(models_table.c.name == model)).first()
    if row is None:
        known = conn.execute(sa.select(models_table.c.name).order_by(models_table.c.name))
        raise NotFoundError("model", model, known=list(known.scalars()))
    return _from_row(row)


def require_version(conn: Connection, model: str, version: int) -> None:
    """Raise NotFoundError (listing the known versions) unless ``version`` of ``model``
    is registered."""
    found = conn.execute(
        sa.select(model_versions.c.version).where(
            model_versions.c.model == model, model_versions.c.version == version
        )
    ).first()
    if found is None:
        known = conn.execute(
            sa.select(model_versions.c.version)
            .where(model_versions.c.model == model)
            .order_by(model_versions.c.version)
        ).scalars()
        raise NotFoundError("model version", f"{model}/{version}", known=[str(v) for v in known])


def _not_champion(current: Deployment, version: int, role: str) -> None:
    if version == current.champion:
        raise StateError(
            f"version {version} of model {current.model!r} is the champion already; "
            f"a {role} must be another version",
            model=current.model,
            version=version,
        )


# --- the one write path -----------------------------------------------------------------

_Apply = Callable[[Connection, Deployment], Deployment]


def _change(
    store: MetadataStore,
    model: str,
    action: str,
    apply: _Apply,
    *,
    who: str,
    reason: str,
    expected_revision: int | None,
) -> Deployment:
    """Lock the model, check the revision, apply, and write the state with its history row.

    ``apply`` validates against the current state and returns the new one (it may move
    the champion alias on the same connection). A change that leaves the state as it
    was writes nothing and returns the current state, so retrying is safe.
    """
    expected = _check_expected(expected_revision)
    with store.transaction() as conn:
        # Every writer locks the model row first (as the registry's writers do): on
        # PostgreSQL they queue per model, on SQLite BEGIN IMMEDIATE already serialises.
        model_registry.require_model(conn, model, lock=True)
        current = _read(conn, model)
        if expected is not None and expected != current.revision:
            raise StateError(
                f"deployment of model {model!r} is at revision {current.revision}, not at "
                f"the expected revision {expected}; it was changed by someone else, "
                "nothing changed",
                model=model,
                current=current.revision,
                expected=expected,
            )
        new = _without_champion_roles(apply(conn, current))
        if new._traffic() == current._traffic():
            return current
        return _write(conn, current, new, action, who=who, reason=reason)


def _without_champion_roles(d: Deployment) -> Deployment:
    """Clear a canary, shadow or staged version that has become the champion."""
    if d.champion is None:
        return d
    if d.canary == d.champion:
        d = replace(d, canary=None, canary_weight=0.0)
    if d.shadow == d.champion:
        d = replace(d, shadow=None)
    if d.staged == d.champion:
        d = replace(d, staged=None)
    return d


def _write(
    conn: Connection, current: Deployment, new: Deployment, action: str, *, who: str, reason: str
) -> Deployment:
    at = clock.now()
    new = replace(new, revision=current.revision + 1, updated_at=at, updated_by=who)
    values = {
        "canary": new.canary,
        "canary_weight": new.canary_weight,
        "shadow": new.shadow,
        "split": new.split,
        "split_weights": new.split_weights,
        "staged": new.staged,
        "routing_key": new.routing_key,
        "revision": new.revision,
        "updated_at": at,
        "updated_by": who,
    }
    if current.revision == 0:
        conn.execute(table.insert().values(model=new.model, **values))
    else:
        conn.execute(
            table.update()
            .where(table.c.model == new.model, table.c.revision == current.revision)
            .values(**values)
        )
    conn.execute(
        history.insert().values(
            model=new.model,
            revision=new.revision,
            action=action,
            state=new.to_dict(),
            who=who,
            at=at,
            reason=reason,
        )
    )
    return new


def _move_champion(
    conn: Connection, current: Deployment, to: int, *, who: str, reason: str
) -> Deployment:
    model_registry.move_alias_on(
        conn, current.model, CHAMPION, to, expected=current.champion, who=who, reason=reason
    )
    return replace(current, champion=to)


# --- changes --------------------------------------------------------------------------


def set_canary(
    store: MetadataStore,
    model: str,
    version: int,
    weight: float,
    *,
    who: str,
    reason: str = "",
    expected_revision: int | None = None,
) -> Deployment:
    """Send ``weight`` percent of the routing keys (0 < weight <= 100) to ``version``.

    The model needs a champion, the canary must be another version, and no A/B split may
    be active. Raising the weight later keeps every key already on the canary there.
    """
    version = _check_version(version, "version")
    share = _check_weight(weight)

    def apply(conn: Connection, current: Deployment) -> Deployment:
        require_version(conn, model, version)
        if current.champion is None:
            raise StateError(
                f"model {model!r} has no champion for the canary to be compared with; set "
                f"one first (driftloop models alias {model} champion REF)",
                model=model,
            )
        _not_champion(current, version, "canary")
        if current.split is not None:
            raise StateError(
                f"model {model!r} has an A/B split active ({current.split}); abort it "
                "before starting a canary",
                model=model,
            )
        return replace(current, canary=version, canary_weight=share)

    return _change(
        store, model, "canary", apply, who=who, reason=reason, expected_revision=expected_revision
    )


def set_shadow(
    store: MetadataStore,
    model: str,
    version: int | None,
    *,
    who: str,
    reason: str = "",
    expected_revision: int | None = None,
) -> Deployment:
    """Let ``version`` score a copy of every request, logged and never returned
    (``None``: stop shadowing)."""
    if version is not None:
        version = _check_version(version, "version")

    def apply(conn: Connection, current: Deployment) -> Deployment:
        if version is not None:
            require_version(conn, model, version)
            _not_champion(current, version, "shadow")
        return replace(current, shadow=version)

    return _change(
        store, model, "shadow", apply, who=who, reason=reason, expected_revision=expected_revision
    )


def set_split(
    store: MetadataStore,
    model: str,
    split: Mapping[str, int] | None,
    weights: Mapping[str, int] | None = None,
    *,
    who: str,
    reason: str = "",
    expected_revision: int | None = None,
) -> Deployment:
    """Divide the traffic among versions as an A/B test: ``split`` maps arm names to
    distinct versions, ``weights`` arm names to whole percents summing to 100 (default:
    equal shares). While set, it replaces the champion/canary routing; ``None`` ends it.
    """
    arms = shares = None
    if split is not None:
        arms, shares = _check_split(split, weights)
    elif weights is not None:
        raise InputError("split_weights given without a split", field="split_weights")

    def apply(conn: Connection, current: Deployment) -> Deployment:
        for version in (arms or {}).values():
            require_version(conn, model, version)
        if arms is not None and current.canary is not None:
            raise StateError(
                f"model {model!r} has a canary (version {current.canary}); promote or "
                "abort it before starting an A/B split",
                model=model,
            )
        return replace(current, split=arms, split_weights=shares)

    return _change(
        store, model, "split", apply, who=who, reason=reason, expected_revision=expected_revision
    )


def set_routing_key(
    store: MetadataStore,
    model: str,
    key: str | None,
    *,
    who: str,
    reason: str = "",
    expected_revision: int | None = None,
) -> Deployment:
    """Route by the request field or entity key ``key`` (``None``: by the entity keys,
    else the request id)."""
    field = _check_routing_key(key)
    return _change(
        store,
        model,
        "routing_key",
        lambda _conn, current: replace(current, routing_key=field),
        who=who,
        reason=reason,
        expected_revision=expected_revision,
    )


def stage(
    store: MetadataStore,
    model: str,
    version: int,
    *,
    who: str,
    reason: str = "",
    expected_revision: int | None = None,
) -> Deployment:
    """Stage ``version`` for a blue-green switch: servers load and warm it, serving
    nothing with it until :func:`switch`."""
    version = _check_version(version, "version")

    def apply(conn: Connection, current: Deployment) -> Deployment:
        require_version(conn, model, version)
        _not_champion(current, version, "staged version")
        return replace(current, staged=version)

    return _change(
        store, model, "stage", apply, who=who, reason=reason, expected_revision=expected_revision
    )


def switch(
    store: MetadataStore,
    model: str,
    *,
    who: str,
    reason: str = "",
    expected_revision: int | None = None,
) -> Deployment:
    """Make the staged version champion: the ``champion`` alias moves and the staged
    version is cleared in one transaction (StateError when nothing is staged)."""

    def apply(conn: Connection, current: Deployment) -> Deployment:
        if current.staged is None:
            raise StateError(
                f"model {model!r} has no staged version to switch to; stage one first",
                model=model,
            )
        return _move_champion(conn, current, current.staged, who=who, reason=reason)

    return _change(
        store, model, "switch", apply, who=who, reason=reason, expected_revision=expected_revision
    )


def promote(
    store: MetadataStore,
    model: str,
    *,
    who: str,
    reason: str = "",
    expected_revision: int | None = None,
) -> Deployment:
    """Make the canary champion: the ``champion`` alias moves and the canary is cleared
    in one transaction (StateError without a canary)."""

    def apply(conn: Connection, current: Deployment) -> Deployment:
        if current.canary is None:
            raise StateError(f"model {model!r} has no canary to promote", model=model)
        return _move_champion(conn, current, current.canary, who=who, reason=reason)

    return _change(
        store, model, "promote", apply, who=who, reason=reason, expected_revision=expected_revision
    )


def abort(
    store: MetadataStore,
    model: str,
    *,
    who: str,
    reason: str = "",
    expected_revision: int | None = None,
) -> Deployment:
    """Clear the canary, shadow, split and staged version: the champion alone serves.
    The routing key stays; with nothing to clear, nothing is written."""

    def apply(_conn: Connection, current: Deployment) -> Deployment:
        return replace(
            current,
            canary=None,
            canary_weight=0.0,
            shadow=None,
            split=None,
            split_weights=None,
            staged=None,
        )

    return _change(
        store, model, "abort", apply, who=who, reason=reason, expected_revision=expected_revision
    )


# --- reads ----------------------------------------------------------------------------


def get_deployment(store: MetadataStore, model: str) -> Deployment:
    """The deployment of ``model`` (revision 0 and only the champion when never changed)."""
    with store.connect() as conn:
        return _read(conn, model)


def list_deployments(store: MetadataStore) -> list[Deployment]:
    """The deployment of every registered model, by name."""
    with store.connect() as conn:
        return [_from_row(row) for row in conn.execute(_state_query())]


def deployment_history(store: MetadataStore, model: str) -> list[DeploymentChange]:
    """Every change of ``model``'s deployment, oldest first."""
    with store.connect() as conn:
        model_registry.require_model(conn, model)
        rows = conn.execute(
            sa.select(history).where(history.c.model == model).order_by(history.c.id)
        ).all()
    return [
        DeploymentChange(
            id=r.id,
            model=r.model,
            revision=r.revision,
            action=r.action,
            state=Deployment.from_dict(r.state),
            who=r.who,
            at=r.at,
            reason=r.reason,
        )
        for r in rows
    ]


def state_token(store: MetadataStore) -> tuple[int, int]:
    """A value that changes whenever any deployment or any alias changes, and only then.

    It is ``(rows of deployment_history, rows of alias_history)``, read in one query:
    both tables are append-only and every change adds a row in its own transaction, so
    a count grows with each commit. (The largest id would be cheaper but can miss a
    change on PostgreSQL, where ids are drawn before commit: a transaction holding id 9
    may commit after the one holding id 10 was seen.) Servers poll it every few hundred
    milliseconds and reload the deployments when it differs from the last one seen.
    """
    count = sa.func.count()
    query = sa.select(
        sa.select(count).select_from(history).scalar_subquery(),
        sa.select(count).select_from(alias_history).scalar_subquery(),
    )
    with store.connect() as conn:
        row = conn.execute(query).one()
    return int(row[0]), int(row[1])
