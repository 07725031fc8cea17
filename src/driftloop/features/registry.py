"""Registered entities and feature view versions, and feature references.

A feature is referred to as ``"view:feature"`` (the view's current version),
``"view@version:feature"`` (an exact version, usable after the definition changed)
or ``"view:*"`` (every feature of the view).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from driftloop.core import clock
from driftloop.core.hashing import sha256_json
from driftloop.core.metadata import MetadataStore
from driftloop.errors import DefinitionError, NotFoundError, StateError
from driftloop.features.definitions import Aggregate, Entity, Feature, FeatureView
from driftloop.features.tables import entities, feature_view_heads, feature_views

__all__ = [
    "FeatureRef",
    "RegisteredView",
    "get_entity",
    "list_views",
    "parse_refs",
    "register_entity",
    "register_view",
    "resolve_view",
    "view_from_dict",
]

_REF = re.compile(
    r"^(?P<view>[A-Za-z_][A-Za-z0-9_]*)(?:@(?P<version>[0-9a-f]{6,16}))?:(?P<feature>\*|[A-Za-z_][A-Za-z0-9_]*)$"
)


@dataclass(frozen=True)
class FeatureRef:
    """One parsed feature reference."""

    view: str
    version: str | None
    feature: str

    def __str__(self) -> str:
        version = f"@{self.version}" if self.version else ""
        return f"{self.view}{version}:{self.feature}"


def parse_refs(refs: Sequence[str]) -> list[FeatureRef]:
    """Parse ``"view:feature"`` / ``"view@version:feature"`` / ``"view:*"`` strings."""
    if isinstance(refs, str):
        refs = [refs]
    parsed = []
    for ref in refs:
        match = _REF.match(ref.strip())
        if match is None:
            raise DefinitionError(
                f"feature reference {ref!r} is not of the form view:feature, "
                "view@version:feature or view:*"
            )
        parsed.append(FeatureRef(match["view"], match["version"], match["feature"]))
    if not parsed:
        raise DefinitionError("no features were asked for")
    return parsed


@dataclass(frozen=True)
class RegisteredView:
    """A feature view version as stored, with the definition object when available."""

    name: str
    version: str
    body: dict[str, Any]
    created_at: datetime
    current: bool

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def register_entity(store: MetadataStore, entity: Entity) -> None:
    """Record an entity (its join keys); changing an entity's keys is refused."""
    body = entity.to_dict()
    digest = sha256_json(body)
    now = clock.now()
    with store.transaction() as conn:
        row = conn.execute(sa.select(entities).where(entities.c.name == entity.name)).first()
        if row is None:
            conn.execute(
                entities.insert().values(
                    name=entity.name, hash=digest, body=body, created_at=now, updated_at=now
                )
            )
            return
        if row.hash == digest:
            return
        if dict(row.body["keys"]) != dict(body["keys"]):
            raise StateError(
                f"entity {entity.name!r} already has join keys {dict(row.body['keys'])}; "
                f"its keys cannot change to {dict(body['keys'])} (declare a new entity)",
                entity=entity.name,
            )
        conn.execute(
            entities.update()
            .where(entities.c.name == entity.name)
            .values(hash=digest, body=body, updated_at=now)
        )


def get_entity(store: MetadataStore, name: str) -> Entity:
    """A registered entity by name (:class:`NotFoundError` lists the known ones)."""
    with store.connect() as conn:
        row = conn.execute(sa.select(entities.c.body).where(entities.c.name == name)).first()
        if row is None:
            known = sorted(conn.execute(sa.select(entities.c.name)).scalars())
            raise NotFoundError("entity", name, known=known)
    body = dict(row.body)
    return Entity(body["name"], dict(body["keys"]), body.get("description", ""))


def register_view(store: MetadataStore, view: FeatureView, *, who: str) -> tuple[str, bool]:
    """Record ``view``'s current definition; returns its version and whether it is new."""
    register_entity(store, view.entity)
    version = view.version
    now = clock.now()
    with store.transaction() as conn:
        exists = conn.execute(
            sa.select(feature_views.c.version).where(
                feature_views.c.name == view.name, feature_views.c.version == version
            )
        ).first()
        if exists is None:
            conn.execute(
                feature_views.insert().values(
                    name=view.name,
                    version=version,
                    body=view.to_dict(),
                    created_at=now,
                    created_by=who,
                )
            )
        head = conn.execute(
            sa.select(feature_view_heads).where(feature_view_heads.c.name == view.name)
        ).first()
        if head is None:
            conn.execute(
                feature_view_heads.insert().values(name=view.name, version=version, updated_at=now)
            )
        elif head.version != version:
            conn.execute(
                feature_view_heads.update()
                .where(feature_view_heads.c.name == view.name)
                .values(version=version, updated_at=now)
            )
    return version, exists is None


def list_views(store: MetadataStore, name: str | None = None) -> list[RegisteredView]:
    """Every registered view version (current ones flagged), oldest first."""
    query = (
        sa.select(feature_views, feature_view_heads.c.version.label("head"))
        .join(feature_view_heads, feature_view_heads.c.name == feature_views.c.name)
        .order_by(feature_views.c.name, feature_views.c.created_at)
    )
    if name is not None:
        query = query.where(feature_views.c.name == name)
    with store.connect() as conn:
        rows = conn.execute(query).all()
    return [
        RegisteredView(r.name, r.version, dict(r.body), r.created_at, r.version == r.head)
        for r in rows
    ]


def resolve_view(
    store: MetadataStore, name: str, version: str | None, declared: Mapping[str, FeatureView]
) -> FeatureView:
    """The FeatureView object for ``name`` at ``version`` (default: its current version).

    The declared definition is used when its version matches (it carries the Python
    transform, if any); otherwise the stored definition is rebuilt.
    """
    with store.connect() as conn:
        if version is None:
            head = conn.execute(
                sa.select(feature_view_heads.c.version).where(feature_view_heads.c.name == name)
            ).scalar_one_or_none()
            if head is None:
                known = sorted(conn.execute(sa.select(feature_view_heads.c.name)).scalars())
                raise NotFoundError("feature view", name, known=known)
            version = head
            rows = [
                conn.execute(
                    sa.select(feature_views.c.version, feature_views.c.body).where(
                        feature_views.c.name == name, feature_views.c.version == head
                    )
                ).one()
            ]
        else:
            rows = list(
                conn.execute(
                    sa.select(feature_views.c.version, feature_views.c.body).where(
                        feature_views.c.name == name, feature_views.c.version.startswith(version)
                    )
                )
            )
    if not rows:
        raise NotFoundError("feature view version", f"{name}@{version}")
    if len(rows) > 1:
        raise StateError(f"feature view version {name}@{version} is ambiguous")
    full_version, body = rows[0].version, dict(rows[0].body)
    candidate = declared.get(name)
    if candidate is not None and candidate.version == full_version:
        return candidate
    if "transform" in body:
        raise StateError(
            f"feature view {name}@{full_version} uses a Python transform that the "
            "definitions module no longer declares; keep that definition to use this version",
            view=name,
            version=full_version,
        )
    return view_from_dict(body)


def view_from_dict(body: Mapping[str, Any]) -> FeatureView:
    """Rebuild a FeatureView (without a Python transform) from its stored definition."""
    entity_body = body["entity"]
    entity = Entity(
        entity_body["name"], dict(entity_body["keys"]), entity_body.get("description", "")
    )
    common: dict[str, Any] = {
        "entity": entity,
        "source": body["source"],
        "ttl": body.get("ttl"),
        "event_time": body.get("event_time"),
        "created_time": body.get("created_time"),
        "known_at_only": body.get("known_at_only", True),
        "description": body.get("description", ""),
    }
    if "aggregates" in body:
        aggregates = [
            Aggregate(
                a["column"],
                a["function"],
                a["window"],
                a.get("default"),
                name=a["name"],
                type=a["type"],
            )
            for a in body["aggregates"]
        ]
        return FeatureView(body["name"], aggregates=aggregates, **common)
    features = [
        Feature(
            f["name"],
            f["type"],
            f.get("default"),
            expr=None if f.get("expr") == f["name"] else f.get("expr"),
            description=f.get("description", ""),
        )
        for f in body["features"]
    ]
    return FeatureView(body["name"], features=features, **common)
