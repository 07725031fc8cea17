"""The model registry, run on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.core.metadata import MetadataStore
from driftloop.errors import InputError, NotFoundError, StateError
from driftloop.registry.models import (
    ModelVersion,
    alias_history,
    aliases,
    create_model,
    delete_alias,
    diff_versions,
    get_model,
    get_version,
    list_models,
    list_versions,
    register_version,
    resolve,
    rollback,
    set_alias,
    version_at,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def digest(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


@pytest.fixture
def store(metadata_url: str) -> Iterator[MetadataStore]:
    store = MetadataStore.open(metadata_url)
    yield store
    store.close()


@pytest.fixture
def sim() -> Iterator[SimulatedClock]:
    clock = SimulatedClock(T0)
    with use_clock(clock):
        yield clock


def register(store: MetadataStore, model: str = "fraud", n: int = 1, **extra: Any) -> ModelVersion:
    return register_version(
        store, model, artifact_digest=digest(n), flavor="sklearn", who="ci", **extra
    )


def test_versions_are_numbered_from_one_per_model(store: MetadataStore) -> None:
    """Each model numbers its versions 1, 2, 3... independently of other models."""
    assert [register(store, "fraud", n).version for n in range(3)] == [1, 2, 3]
    assert register(store, "churn").version == 1
    assert [v.version for v in list_versions(store, "fraud")] == [1, 2, 3]
    assert [m.name for m in list_models(store)] == ["churn", "fraud"]
    assert get_model(store, "fraud").latest_version == 3


def test_a_version_keeps_everything_it_was_registered_with(
    store: MetadataStore, sim: SimulatedClock
) -> None:
    """A version reads back with its digest, flavor, run, metrics, signature, tags and lineage."""
    signature = {"inputs": [{"name": "amount", "type": "float64"}], "outputs": {"type": "float64"}}
    lineage = {"training_set": "ts1", "feature_views": {"tx": "abc123"}, "datasets": ["d1"]}
    v = register(
        store,
        run_id="run-7",
        metrics={"auc": 0.91},
        signature=signature,
        tags={"team": "risk"},
        lineage=lineage,
        description="first",
    )
    got = get_version(store, "fraud", 1)
    assert got == v
    assert got.artifact_digest == digest(1)
    assert got.run_id == "run-7"
    assert got.signature == signature
    assert got.lineage == lineage
    assert got.created_at == T0
    assert got.to_dict()["created_at"] == T0.isoformat()


def test_concurrent_registrations_never_share_a_number(metadata_url: str) -> None:
    """Writers in several threads, each with its own store, get distinct consecutive numbers."""
    MetadataStore.open(metadata_url).close()
    got: list[int] = []
    lock = threading.Lock()

    def writer(worker: int) -> None:
        own = MetadataStore.open(metadata_url)
        try:
            for i in range(5):
                v = register(own, "fraud", worker * 100 + i)
                with lock:
                    got.append(v.version)
        finally:
            own.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 21))


def test_set_alias_with_the_expected_version_moves_it(store: MetadataStore) -> None:
    """A compare-and-set whose expectation holds moves the alias and records the move."""
    register(store, n=1)
    register(store, n=2)
    first = set_alias(store, "fraud", "champion", 1, expected=None, who="ann", reason="first")
    second = set_alias(store, "fraud", "champion", 2, expected=1, who="bob", reason="better")
    assert (first.from_version, first.to_version) == (None, 1)
    assert (second.from_version, second.to_version, second.who) == (1, 2, "bob")
    assert aliases(store, "fraud") == {"champion": 2}


def test_set_alias_with_a_stale_expectation_is_refused(store: MetadataStore) -> None:
    """A compare-and-set against a moved alias raises StateError naming both and changes nothing."""
    for n in range(3):
        register(store, n=n)
    set_alias(store, "fraud", "champion", 2, who="ann")
    with pytest.raises(StateError, match="at version 2, not at the expected version 1") as info:
        set_alias(store, "fraud", "champion", 3, expected=1, who="bob")
    assert info.value.fields["current"] == 2
    with pytest.raises(StateError, match="expected unset"):
        set_alias(store, "fraud", "champion", 3, expected=None, who="bob")
    assert resolve(store, "fraud", "champion").version == 2
    assert len(alias_history(store, "fraud", "champion")) == 1


def test_concurrent_compare_and_set_lets_exactly_one_writer_win(metadata_url: str) -> None:
    """Many writers expecting the same version: one moves the alias, the rest get StateError."""
    store = MetadataStore.open(metadata_url)
    for n in range(9):
        register(store, n=n)
    set_alias(store, "fraud", "champion", 1, who="seed")
    outcomes: list[str] = []
    lock = threading.Lock()

    def mover(target: int) -> None:
        own = MetadataStore.open(metadata_url)
        try:
            set_alias(own, "fraud", "champion", target, expected=1, who=f"w{target}")
            result = "won"
        except StateError:
            result = "lost"
        finally:
            own.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=mover, args=(t,)) for t in range(2, 10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    assert len(alias_history(store, "fraud", "champion")) == 2
    store.close()


def test_every_move_appends_one_history_row(store: MetadataStore, sim: SimulatedClock) -> None:
    """Set, move and delete each add a row with from, to, who, time and reason."""
    register(store, n=1)
    register(store, n=2)
    set_alias(store, "fraud", "champion", 1, who="ann", reason="launch")
    sim.advance(timedelta(hours=1))
    set_alias(store, "fraud", "champion", 2, who="bob", reason="retrained")
    set_alias(store, "fraud", "challenger", 1, who="bob", reason="keep old")
    sim.advance(timedelta(hours=1))
    delete_alias(store, "fraud", "challenger", expected=1, who="cy", reason="done")
    rows = [
        (m.alias, m.from_version, m.to_version, m.who, m.at, m.reason)
        for m in alias_history(store, "fraud")
    ]
    assert rows == [
        ("champion", None, 1, "ann", T0, "launch"),
        ("champion", 1, 2, "bob", T0 + timedelta(hours=1), "retrained"),
        ("challenger", None, 1, "bob", T0 + timedelta(hours=1), "keep old"),
        ("challenger", 1, None, "cy", T0 + timedelta(hours=2), "done"),
    ]
    assert aliases(store, "fraud") == {"champion": 2}


def test_setting_an_alias_to_where_it_points_writes_nothing(store: MetadataStore) -> None:
    """Re-setting an alias to its current version adds no history row."""
    register(store)
    first = set_alias(store, "fraud", "champion", 1, who="ann")
    assert set_alias(store, "fraud", "champion", 1, expected=1, who="bob") == first
    assert len(alias_history(store, "fraud")) == 1


def test_version_at_answers_from_the_history(store: MetadataStore, sim: SimulatedClock) -> None:
    """version_at gives None before the alias existed, then the version current at each time."""
    register(store, n=1)
    register(store, n=2)
    sim.advance(timedelta(days=1))
    set_alias(store, "fraud", "champion", 1, who="ann")
    sim.advance(timedelta(days=1))
    set_alias(store, "fraud", "champion", 2, who="ann")
    sim.advance(timedelta(days=1))
    delete_alias(store, "fraud", "champion", who="ann")
    assert version_at(store, "fraud", "champion", T0) is None
    assert version_at(store, "fraud", "champion", T0 + timedelta(days=1)) == 1
    assert version_at(store, "fraud", "champion", T0 + timedelta(days=1, hours=23)) == 1
    assert version_at(store, "fraud", "champion", T0 + timedelta(days=2, minutes=1)) == 2
    assert version_at(store, "fraud", "champion", T0 + timedelta(days=4)) is None


def test_rollback_returns_the_alias_to_its_previous_version(store: MetadataStore) -> None:
    """Rollback moves champion back to where it pointed before its last move, with history."""
    for n in range(3):
        register(store, n=n)
    set_alias(store, "fraud", "champion", 1, who="ann")
    set_alias(store, "fraud", "champion", 3, who="ann")
    move = rollback(store, "fraud", who="oncall", reason="latency")
    assert (move.from_version, move.to_version, move.reason) == (3, 1, "latency")
    assert resolve(store, "fraud", "champion").version == 1
    assert alias_history(store, "fraud", "champion")[-1] == move


def test_rollback_without_an_earlier_version_is_refused(store: MetadataStore) -> None:
    """An alias set only once cannot be rolled back; an unknown one is not found."""
    register(store)
    set_alias(store, "fraud", "champion", 1, who="ann")
    with pytest.raises(StateError, match="no earlier version"):
        rollback(store, "fraud", who="oncall")
    with pytest.raises(NotFoundError, match="known: champion"):
        rollback(store, "fraud", "challenger", who="oncall")


def test_resolve_accepts_numbers_latest_and_aliases(store: MetadataStore) -> None:
    """A reference is a version number, its digits as text, 'latest' or an alias name."""
    for n in range(3):
        register(store, n=n)
    set_alias(store, "fraud", "champion", 2, who="ann")
    assert resolve(store, "fraud", 1).version == 1
    assert resolve(store, "fraud", "3").version == 3
    assert resolve(store, "fraud", "latest").version == 3
    assert resolve(store, "fraud", "champion").version == 2


def test_unknown_names_are_not_found_with_the_known_ones(store: MetadataStore) -> None:
    """Unknown models, versions and aliases raise NotFoundError listing what exists."""
    register(store, n=1)
    register(store, n=2)
    set_alias(store, "fraud", "champion", 1, who="ann")
    with pytest.raises(NotFoundError, match=r"unknown model 'churn' \(known: fraud\)"):
        get_version(store, "churn", 1)
    with pytest.raises(NotFoundError, match=r"'fraud/7' \(known: 1, 2\)"):
        get_version(store, "fraud", 7)
    with pytest.raises(NotFoundError, match=r"'fraud@staging' \(known: champion\)"):
        resolve(store, "fraud", "staging")
    with pytest.raises(NotFoundError, match="fraud/9"):
        set_alias(store, "fraud", "champion", 9, who="ann")


def test_bad_aliases_and_foreign_versions_are_refused(store: MetadataStore) -> None:
    """Alias names must match ^[a-z][a-z0-9_-]*$ and may only point at their own model."""
    register(store, "fraud")
    churn = register(store, "churn")
    for bad in ("Champion", "9lives", "with space", "latest"):
        with pytest.raises(InputError, match="alias"):
            set_alias(store, "fraud", bad, 1, who="ann")
    with pytest.raises(StateError, match="belongs to model 'churn'"):
        set_alias(store, "fraud", "champion", churn, who="ann")
    assert set_alias(store, "fraud", "shadow-2_x", 1, who="ann").to_version == 1


def test_bad_registration_input_is_refused(store: MetadataStore) -> None:
    """A digest that is not sha256 hex, or metrics that are not JSON, raise InputError."""
    with pytest.raises(InputError, match="sha256"):
        register_version(store, "fraud", artifact_digest="abc", flavor="sklearn", who="ci")
    with pytest.raises(InputError, match="metrics"):
        register(store, metrics={"auc": float("nan")})
    with pytest.raises(InputError, match="model name"):
        register(store, "no spaces please")
    with pytest.raises(NotFoundError):
        list_versions(store, "fraud")


def test_create_model_is_idempotent(store: MetadataStore) -> None:
    """Creating an existing model returns it unchanged."""
    first = create_model(store, "fraud", who="ann", description="card fraud")
    again = create_model(store, "fraud", who="bob", description="other")
    assert again == first
    assert again.description == "card fraud"
    assert first.latest_version is None


def test_diff_versions_shows_what_changed(store: MetadataStore) -> None:
    """The diff lists changed metrics, tags, signature fields and lineage entries only."""
    a = register(
        store,
        n=1,
        metrics={"auc": 0.9, "loss": 0.3},
        tags={"team": "risk"},
        signature={"outputs": {"type": "float64"}},
        lineage={"training_set": "ts1", "views": {"tx": "v1"}},
    )
    b = register(
        store,
        n=2,
        metrics={"auc": 0.92, "loss": 0.3},
        tags={"team": "risk", "tuned": "yes"},
        signature={"outputs": {"type": "float32"}},
        lineage={"training_set": "ts2", "views": {"tx": "v1"}},
    )
    diff = diff_versions(a, b)
    assert diff.metrics == {"auc": (0.9, 0.92)}
    assert diff.tags == {"tuned": (None, "yes")}
    assert diff.signature == {"outputs.type": ("float64", "float32")}
    assert diff.lineage == {"training_set": ("ts1", "ts2")}
    assert diff_versions(a, a).same
    assert diff.to_dict()["metrics"] == {"auc": [0.9, 0.92]}
