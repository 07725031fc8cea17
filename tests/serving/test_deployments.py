"""Deployment state by compare-and-set with its history, on SQLite and on a real
PostgreSQL server."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.core.metadata import MetadataStore
from driftloop.errors import InputError, NotFoundError, StateError
from driftloop.registry.models import (
    alias_history,
    aliases,
    create_model,
    register_version,
    set_alias,
)
from driftloop.serving.deployments import (
    Deployment,
    abort,
    deployment_history,
    get_deployment,
    list_deployments,
    promote,
    set_canary,
    set_routing_key,
    set_shadow,
    set_split,
    stage,
    state_token,
    switch,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(metadata_url: str) -> Iterator[MetadataStore]:
    store = MetadataStore.open(metadata_url)
    yield store
    store.close()


@pytest.fixture
def fraud(store: MetadataStore) -> MetadataStore:
    """The model 'fraud' with versions 1..4 and champion = 1."""
    for n in range(1, 5):
        register_version(
            store,
            "fraud",
            artifact_digest=hashlib.sha256(str(n).encode()).hexdigest(),
            flavor="sklearn",
            who="ci",
        )
    set_alias(store, "fraud", "champion", 1, who="ci", reason="first")
    return store


@pytest.fixture
def sim() -> Iterator[SimulatedClock]:
    clock = SimulatedClock(T0)
    with use_clock(clock):
        yield clock


def test_a_model_never_deployed_serves_its_champion_alone(fraud: MetadataStore) -> None:
    """With no change yet the deployment is revision 0 with only the champion alias."""
    d = get_deployment(fraud, "fraud")
    assert d == Deployment("fraud", champion=1)
    assert (d.revision, d.updated_at, d.updated_by) == (0, None, None)
    assert d.versions() == {1}
    assert deployment_history(fraud, "fraud") == []


def test_unknown_models_and_versions_are_named_with_the_known_ones(fraud: MetadataStore) -> None:
    """An unknown model or version raises NotFoundError listing what exists."""
    with pytest.raises(NotFoundError, match=r"unknown model 'churn' \(known: fraud\)"):
        get_deployment(fraud, "churn")
    with pytest.raises(NotFoundError, match="known: fraud"):
        set_canary(fraud, "churn", 2, 10, who="ann")
    with pytest.raises(NotFoundError, match=r"'fraud/9' \(known: 1, 2, 3, 4\)"):
        set_canary(fraud, "fraud", 9, 10, who="ann")
    with pytest.raises(NotFoundError, match="fraud/7"):
        set_split(fraud, "fraud", {"a": 1, "b": 7}, who="ann")
    assert get_deployment(fraud, "fraud").revision == 0


def test_a_canary_gets_its_weight_and_a_revision(fraud: MetadataStore, sim: SimulatedClock) -> None:
    """set_canary records version and weight, bumps the revision and stamps who and when."""
    d = set_canary(fraud, "fraud", 2, 10, who="ann", reason="new features")
    assert (d.champion, d.canary, d.canary_weight, d.revision) == (1, 2, 10.0, 1)
    assert (d.updated_at, d.updated_by) == (T0, "ann")
    assert d.versions() == {1, 2}
    assert get_deployment(fraud, "fraud") == d
    sim.advance(timedelta(minutes=5))
    raised = set_canary(fraud, "fraud", 2, 25.5, who="ann", expected_revision=1)
    assert (raised.canary_weight, raised.revision) == (25.5, 2)
    assert raised.updated_at == T0 + timedelta(minutes=5)


@pytest.mark.parametrize("weight", [0, -1, 100.5, float("nan"), float("inf"), True, "10"])
def test_a_canary_weight_outside_0_to_100_is_refused(fraud: MetadataStore, weight: object) -> None:
    """A weight that is not a percent in (0, 100] raises InputError naming the field."""
    with pytest.raises(InputError, match="weight") as info:
        set_canary(fraud, "fraud", 2, weight, who="ann")  # type: ignore[arg-type]
    assert info.value.fields["field"] == "weight"
    assert get_deployment(fraud, "fraud").revision == 0


def test_a_canary_needs_a_champion_other_than_itself(store: MetadataStore) -> None:
    """A canary of the champion itself, or of a model without champion, is a StateError."""
    for n in (1, 2):
        register_version(
            store,
            "fraud",
            artifact_digest=hashlib.sha256(bytes([n])).hexdigest(),
            flavor="x",
            who="ci",
        )
    with pytest.raises(StateError, match="no champion"):
        set_canary(store, "fraud", 2, 10, who="ann")
    set_alias(store, "fraud", "champion", 2, who="ci")
    with pytest.raises(StateError, match="champion already"):
        set_canary(store, "fraud", 2, 10, who="ann")
    assert set_canary(store, "fraud", 1, 100, who="ann").canary_weight == 100.0


def test_a_stale_expected_revision_is_refused_and_changes_nothing(fraud: MetadataStore) -> None:
    """A compare-and-set against an old revision names both revisions; nothing is written."""
    set_canary(fraud, "fraud", 2, 10, who="ann", expected_revision=0)
    with pytest.raises(StateError, match="at revision 1, not at the expected revision 0") as info:
        set_shadow(fraud, "fraud", 3, who="bob", expected_revision=0)
    assert (info.value.fields["current"], info.value.fields["expected"]) == (1, 0)
    d = get_deployment(fraud, "fraud")
    assert (d.shadow, d.revision) == (None, 1)
    assert len(deployment_history(fraud, "fraud")) == 1
    with pytest.raises(InputError, match="expected revision"):
        set_shadow(fraud, "fraud", 3, who="bob", expected_revision=-1)


def test_concurrent_compare_and_set_writers_exactly_one_wins(
    fraud: MetadataStore, metadata_url: str
) -> None:
    """Writers in several threads, each with its own store, all expecting revision 0:
    one change is applied, every other raises StateError, the history has one row."""
    wins: list[int] = []
    losses: list[StateError] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def writer(worker: int) -> None:
        own = MetadataStore.open(metadata_url)
        try:
            start.wait()
            try:
                set_canary(
                    own, "fraud", 2 + worker % 3, 5 + worker, who=f"w{worker}", expected_revision=0
                )
            except StateError as exc:
                with lock:
                    losses.append(exc)
            else:
                with lock:
                    wins.append(worker)
        finally:
            own.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert len(losses) == 5
    assert all(e.fields["current"] == 1 for e in losses)
    d = get_deployment(fraud, "fraud")
    assert (d.revision, d.updated_by, d.canary_weight) == (1, f"w{wins[0]}", 5 + wins[0])
    assert [c.who for c in deployment_history(fraud, "fraud")] == [f"w{wins[0]}"]


def test_promote_moves_the_champion_alias_and_records_both_histories(
    fraud: MetadataStore,
) -> None:
    """promote makes the canary champion through the alias, clears the canary, and
    writes one alias move and one deployment change."""
    set_canary(fraud, "fraud", 3, 20, who="ann")
    set_shadow(fraud, "fraud", 3, who="ann")
    d = promote(fraud, "fraud", who="bob", reason="canary healthy", expected_revision=2)
    assert (d.champion, d.canary, d.canary_weight, d.revision) == (3, None, 0.0, 3)
    assert d.shadow is None  # the shadow became champion: shadowing itself is pointless
    assert aliases(fraud, "fraud") == {"champion": 3}
    move = alias_history(fraud, "fraud", "champion")[-1]
    assert (move.from_version, move.to_version, move.who, move.reason) == (
        1,
        3,
        "bob",
        "canary healthy",
    )
    change = deployment_history(fraud, "fraud")[-1]
    assert (change.action, change.who, change.reason, change.revision) == (
        "promote",
        "bob",
        "canary healthy",
        3,
    )
    assert change.state == d
    with pytest.raises(StateError, match="no canary to promote"):
        promote(fraud, "fraud", who="bob")


def test_promote_refused_by_revision_leaves_the_alias_alone(fraud: MetadataStore) -> None:
    """A promote with a stale revision moves neither the alias nor the deployment."""
    set_canary(fraud, "fraud", 2, 10, who="ann")
    with pytest.raises(StateError):
        promote(fraud, "fraud", who="bob", expected_revision=0)
    assert aliases(fraud, "fraud") == {"champion": 1}
    assert len(alias_history(fraud, "fraud")) == 1


def test_stage_then_switch_makes_the_staged_version_champion(fraud: MetadataStore) -> None:
    """Blue-green: the staged version is loaded (in versions()) and then becomes champion."""
    with pytest.raises(StateError, match="no staged version"):
        switch(fraud, "fraud", who="ann")
    with pytest.raises(StateError, match="champion already"):
        stage(fraud, "fraud", 1, who="ann")
    staged = stage(fraud, "fraud", 4, who="ann", reason="v4 ready")
    assert (staged.champion, staged.staged) == (1, 4)
    assert staged.versions() == {1, 4}
    switched = switch(fraud, "fraud", who="ann", expected_revision=staged.revision)
    assert (switched.champion, switched.staged, switched.revision) == (4, None, 2)
    assert aliases(fraud, "fraud") == {"champion": 4}
    assert [c.action for c in deployment_history(fraud, "fraud")] == ["stage", "switch"]


def test_switch_is_atomic_for_concurrent_readers(fraud: MetadataStore, metadata_url: str) -> None:
    """While versions are switched back and forth, a reader never sees the alias of one
    revision with the deployment row of another."""
    seen: list[Deployment] = []
    reading = threading.Event()
    done = threading.Event()
    own = MetadataStore.open(metadata_url)

    def reader() -> None:
        while not done.is_set():
            seen.append(get_deployment(own, "fraud"))
            reading.set()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert reading.wait(30)
        for i in range(12):
            stage(fraud, "fraud", 2 if i % 2 == 0 else 1, who="ann")
            switch(fraud, "fraud", who="ann")
    finally:
        done.set()
        thread.join()
        own.close()
    by_revision = {c.revision: c.state for c in deployment_history(fraud, "fraud")}
    assert len(by_revision) == 24
    assert seen
    for d in seen:
        assert d.staged != d.champion
        if d.revision:
            assert d.champion == by_revision[d.revision].champion, d


def test_shadow_is_set_and_cleared(fraud: MetadataStore) -> None:
    """set_shadow adds a loaded version that answers nothing; None removes it."""
    with pytest.raises(StateError, match="champion already"):
        set_shadow(fraud, "fraud", 1, who="ann")
    d = set_shadow(fraud, "fraud", 4, who="ann")
    assert (d.shadow, d.versions()) == (4, {1, 4})
    assert set_shadow(fraud, "fraud", None, who="ann").shadow is None


def test_a_split_replaces_champion_and_canary_routing(fraud: MetadataStore) -> None:
    """A split maps arms to versions with percents summing to 100 (equal by default)
    and excludes a canary while it runs."""
    d = set_split(fraud, "fraud", {"a": 2, "b": 3}, who="ann")
    assert (d.split, d.split_weights) == ({"a": 2, "b": 3}, {"a": 50, "b": 50})
    assert d.versions() == {1, 2, 3}
    with pytest.raises(StateError, match="A/B split active"):
        set_canary(fraud, "fraud", 4, 10, who="ann")
    d = set_split(fraud, "fraud", {"a": 2, "b": 3}, {"a": 90, "b": 10}, who="ann")
    assert d.split_weights == {"a": 90, "b": 10}
    cleared = set_split(fraud, "fraud", None, who="ann")
    assert (cleared.split, cleared.split_weights) == (None, None)
    set_canary(fraud, "fraud", 4, 10, who="ann")
    with pytest.raises(StateError, match="has a canary"):
        set_split(fraud, "fraud", {"a": 2, "b": 3}, who="ann")


@pytest.mark.parametrize(
    ("split", "weights", "field"),
    [
        ({"a": 2}, None, "split"),
        ({"a": 2, "B": 3}, None, "split"),
        ({"a": 2, "b": 2}, None, "split"),
        ({"a": 2, "b": 0}, None, "split[b]"),
        ({"a": 1, "b": 2, "c": 3}, None, "split_weights"),
        ({"a": 2, "b": 3}, {"a": 50, "b": 40}, "split_weights"),
        ({"a": 2, "b": 3}, {"a": 50, "c": 50}, "split_weights"),
        ({"a": 2, "b": 3}, {"a": 100, "b": 0}, "split_weights"),
        ({"a": 2, "b": 3}, {"a": 50.5, "b": 49.5}, "split_weights"),
    ],
)
def test_a_bad_split_is_refused_naming_the_field(
    fraud: MetadataStore, split: dict[str, int], weights: dict[str, int] | None, field: str
) -> None:
    """One arm, a bad arm name, a repeated version or weights that do not make 100 raise
    InputError with the field."""
    with pytest.raises(InputError) as info:
        set_split(fraud, "fraud", split, weights, who="ann")
    assert info.value.fields["field"] == field
    assert get_deployment(fraud, "fraud").revision == 0


def test_routing_key_is_set_validated_and_cleared(fraud: MetadataStore) -> None:
    """The routing key is a field name; None goes back to the entity keys."""
    assert set_routing_key(fraud, "fraud", "customer_id", who="ann").routing_key == "customer_id"
    with pytest.raises(InputError, match="routing key") as info:
        set_routing_key(fraud, "fraud", "customer id", who="ann")
    assert info.value.fields["field"] == "routing_key"
    assert set_routing_key(fraud, "fraud", None, who="ann").routing_key is None


def test_abort_clears_every_experiment_and_keeps_the_champion(fraud: MetadataStore) -> None:
    """abort clears canary, shadow and staged (and a split) in one change; the champion
    and the routing key stay; a second abort writes nothing."""
    set_routing_key(fraud, "fraud", "customer_id", who="ann")
    set_canary(fraud, "fraud", 2, 10, who="ann")
    set_shadow(fraud, "fraud", 3, who="ann")
    stage(fraud, "fraud", 4, who="ann")
    d = abort(fraud, "fraud", who="oncall", reason="latency")
    assert d == Deployment(
        "fraud",
        champion=1,
        routing_key="customer_id",
        revision=5,
        updated_at=d.updated_at,
        updated_by="oncall",
    )
    assert d.versions() == {1}
    assert aliases(fraud, "fraud") == {"champion": 1}
    assert abort(fraud, "fraud", who="oncall") == d
    assert len(deployment_history(fraud, "fraud")) == 5


def test_a_change_that_changes_nothing_writes_nothing(fraud: MetadataStore) -> None:
    """Repeating a change returns the current state without a new revision."""
    first = set_canary(fraud, "fraud", 2, 10, who="ann")
    assert set_canary(fraud, "fraud", 2, 10, who="bob") == first
    assert set_shadow(fraud, "fraud", None, who="bob") == first
    assert len(deployment_history(fraud, "fraud")) == 1


def test_state_token_changes_on_every_change_and_only_then(fraud: MetadataStore) -> None:
    """Each deployment change and each alias move changes the token; reads and no-op
    changes do not."""
    tokens = [state_token(fraud)]

    def changed() -> bool:
        tokens.append(state_token(fraud))
        return tokens[-1] != tokens[-2]

    get_deployment(fraud, "fraud")
    list_deployments(fraud)
    assert not changed()
    set_canary(fraud, "fraud", 2, 10, who="ann")
    assert changed()
    set_canary(fraud, "fraud", 2, 10, who="ann")
    assert not changed()
    set_alias(fraud, "fraud", "challenger", 3, who="ci")
    assert changed()
    set_alias(fraud, "fraud", "champion", 4, who="ci")
    assert changed()
    promote(fraud, "fraud", who="ann")
    assert changed()
    abort(fraud, "fraud", who="ann")
    assert not changed()
    with pytest.raises(StateError):
        switch(fraud, "fraud", who="ann")
    assert not changed()
    assert len(set(tokens)) == 5


def test_history_is_append_only_and_complete(fraud: MetadataStore, sim: SimulatedClock) -> None:
    """Every change appends one row with consecutive revisions and the full state it
    produced; earlier rows never change."""
    steps = [
        lambda: set_canary(fraud, "fraud", 2, 5, who="ann", reason="start"),
        lambda: set_canary(fraud, "fraud", 2, 50, who="ann", reason="ramp"),
        lambda: set_shadow(fraud, "fraud", 3, who="bob"),
        lambda: set_routing_key(fraud, "fraud", "customer_id", who="bob"),
        lambda: promote(fraud, "fraud", who="carl", reason="good"),
        lambda: stage(fraud, "fraud", 4, who="carl"),
        lambda: switch(fraud, "fraud", who="carl"),
        lambda: set_split(fraud, "fraud", {"a": 4, "b": 2}, {"a": 70, "b": 30}, who="dee"),
        lambda: abort(fraud, "fraud", who="dee"),
    ]
    states: list[Deployment] = []
    previous: list[object] = []
    for step in steps:
        sim.advance(timedelta(seconds=1))
        states.append(step())
        rows = deployment_history(fraud, "fraud")
        assert rows[: len(previous)] == previous
        previous = list(rows)
    assert [c.revision for c in previous] == list(range(1, 10))
    assert [c.state for c in previous] == states  # type: ignore[attr-defined]
    assert [c.action for c in previous] == [  # type: ignore[attr-defined]
        "canary",
        "canary",
        "shadow",
        "routing_key",
        "promote",
        "stage",
        "switch",
        "split",
        "abort",
    ]
    last = deployment_history(fraud, "fraud")[-1]
    assert last.to_dict()["state"] == states[-1].to_dict()
    assert Deployment.from_dict(states[-1].to_dict()) == states[-1]
    assert last.at == T0 + timedelta(seconds=9)


def test_list_deployments_gives_every_model_by_name(fraud: MetadataStore) -> None:
    """Every registered model appears, deployed or not."""
    create_model(fraud, "churn", who="ci")
    set_canary(fraud, "fraud", 2, 10, who="ann")
    found = list_deployments(fraud)
    assert [(d.model, d.champion, d.canary, d.revision) for d in found] == [
        ("churn", None, None, 0),
        ("fraud", 1, 2, 1),
    ]
    assert found[1] == get_deployment(fraud, "fraud")
