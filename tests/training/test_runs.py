"""Training runs, recorded on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.core.metadata import MetadataStore
from driftloop.errors import NotFoundError, StateError
from driftloop.training.runs import (
    TrainingRun,
    fail_run,
    finish_run,
    get_run,
    list_runs,
    set_run_version,
    start_run,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SPEC = {
    "name": "fraud",
    "task": "binary",
    "trainer": "lightgbm",
    "params": {"n_estimators": 50},
    "seed": 7,
}


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


def start(store: MetadataStore, model: str = "fraud") -> str:
    return start_run(
        store,
        model=model,
        spec={**SPEC, "name": model},
        spec_version="abc123",
        code_version={"git": "deadbeef", "dirty": False},
        who="ci",
    )


def finish(store: MetadataStore, run_id: str, **overrides: Any) -> TrainingRun:
    body: dict[str, Any] = {
        "training_set_id": "ts-1",
        "views": [{"name": "last_tx", "version": "v1"}],
        "dataset_versions": {"tx": ["d1", "d2"]},
        "split": {"train": {"rows": 30}, "validation": {"rows": 10}},
        "metrics": {"roc_auc": 0.91, "ece": None},
        "library_versions": {"numpy": "2.0"},
        "fit_seconds": 1.5,
        "total_seconds": 2.5,
        "peak_memory_mb": 120.0,
        "artifact_digest": "f" * 64,
        "flavor": "lightgbm",
        "signature": {"inputs": [{"name": "amount", "type": "numeric"}]},
        "evaluation": {"passed": True, "reasons": []},
    }
    body.update(overrides)
    return finish_run(store, run_id, **body)


def test_a_started_run_is_running_with_its_spec(store: MetadataStore, sim: SimulatedClock) -> None:
    """A run is recorded at its start: running, with the spec's trainer, task, params and seed."""
    run = get_run(store, start(store))
    assert run.status == "running"
    assert run.model == "fraud"
    assert (run.trainer, run.task, run.params, run.seed) == (
        "lightgbm",
        "binary",
        {"n_estimators": 50},
        7,
    )
    assert run.spec == SPEC
    assert run.spec_version == "abc123"
    assert run.code_version == {"git": "deadbeef", "dirty": False}
    assert run.created_by == "ci"
    assert run.started_at == T0
    assert run.finished_at is None
    assert run.metrics == {}
    assert run.model_version is None


def test_a_finished_run_keeps_everything_it_produced(
    store: MetadataStore, sim: SimulatedClock
) -> None:
    """finish_run marks the run succeeded and it reads back with every field."""
    run_id = start(store)
    sim.advance(timedelta(minutes=3))
    done = finish(store, run_id)
    assert done == get_run(store, run_id)
    assert done.status == "succeeded"
    assert done.finished_at == T0 + timedelta(minutes=3)
    assert done.training_set_id == "ts-1"
    assert done.views == [{"name": "last_tx", "version": "v1"}]
    assert done.dataset_versions == {"tx": ["d1", "d2"]}
    assert done.split == {"train": {"rows": 30}, "validation": {"rows": 10}}
    assert done.metrics == {"roc_auc": 0.91, "ece": None}
    assert done.library_versions == {"numpy": "2.0"}
    assert (done.fit_seconds, done.total_seconds, done.peak_memory_mb) == (1.5, 2.5, 120.0)
    assert (done.artifact_digest, done.flavor) == ("f" * 64, "lightgbm")
    assert done.signature == {"inputs": [{"name": "amount", "type": "numeric"}]}
    assert done.evaluation == {"passed": True, "reasons": []}
    assert done.error is None


def test_a_failed_run_keeps_its_error(store: MetadataStore, sim: SimulatedClock) -> None:
    """fail_run marks the run failed with the error and how long it ran."""
    run_id = start(store)
    sim.advance(timedelta(seconds=5))
    failed = fail_run(store, run_id, "training lightgbm failed: ValueError", total_seconds=4.0)
    assert failed.status == "failed"
    assert failed.error == "training lightgbm failed: ValueError"
    assert failed.total_seconds == 4.0
    assert failed.finished_at == T0 + timedelta(seconds=5)
    assert failed.artifact_digest is None
    assert get_run(store, run_id) == failed


def test_finishing_a_run_twice_is_a_state_error(store: MetadataStore) -> None:
    """A run ends once; the second ending is refused and changes nothing."""
    run_id = start(store)
    first = finish(store, run_id)
    with pytest.raises(StateError, match="already ended"):
        finish(store, run_id, metrics={"roc_auc": 0.5})
    with pytest.raises(StateError, match=r"already ended \(succeeded\)"):
        fail_run(store, run_id, "late failure", total_seconds=1.0)
    assert get_run(store, run_id) == first


def test_a_failed_run_cannot_succeed_afterwards(store: MetadataStore) -> None:
    """Failing ends the run as surely as finishing."""
    run_id = start(store)
    fail_run(store, run_id, "boom", total_seconds=1.0)
    with pytest.raises(StateError, match=r"\(failed\)"):
        finish(store, run_id)
    assert get_run(store, run_id).status == "failed"


def test_ending_an_unknown_run_is_not_found(store: MetadataStore) -> None:
    """Neither finish_run nor fail_run invents a run."""
    with pytest.raises(NotFoundError):
        finish(store, "run-nope")
    with pytest.raises(NotFoundError):
        fail_run(store, "run-nope", "boom", total_seconds=1.0)
    assert list_runs(store) == []


def test_a_run_is_found_by_a_unique_prefix_of_its_id(
    store: MetadataStore, sim: SimulatedClock
) -> None:
    """Any unique prefix finds the run; an unknown or empty one does not."""
    run_id = start(store)
    assert get_run(store, run_id[:-3]).id == run_id
    with pytest.raises(NotFoundError):
        get_run(store, "run-1999")
    with pytest.raises(NotFoundError):
        get_run(store, "")


def test_an_ambiguous_prefix_finds_no_run(store: MetadataStore, sim: SimulatedClock) -> None:
    """A prefix shared by two runs does not pick one of them."""
    first, second = start(store), start(store)
    shared = "run-"
    assert first.startswith(shared)
    assert second.startswith(shared)
    with pytest.raises(NotFoundError):
        get_run(store, shared)


def test_a_prefix_is_matched_literally_not_as_a_pattern(store: MetadataStore) -> None:
    """SQL wildcards in a prefix match themselves, not any run."""
    start(store)
    for pattern in ("%", "_", "run%"):
        with pytest.raises(NotFoundError):
            get_run(store, pattern)


def test_runs_are_listed_newest_first_and_by_model(
    store: MetadataStore, sim: SimulatedClock
) -> None:
    """list_runs orders by start time, newest first, filters by model and limits."""
    ids = []
    for model in ("fraud", "churn", "fraud", "fraud"):
        ids.append(start(store, model))
        sim.advance(timedelta(minutes=1))
    assert [r.id for r in list_runs(store)] == ids[::-1]
    assert [r.id for r in list_runs(store, "fraud")] == [ids[3], ids[2], ids[0]]
    assert [r.id for r in list_runs(store, "fraud", limit=2)] == [ids[3], ids[2]]
    assert list_runs(store, "nobody") == []


def test_the_registered_version_is_set_once(store: MetadataStore) -> None:
    """set_run_version fills in the model version; a second call does not move it."""
    run_id = start(store)
    finish(store, run_id)
    set_run_version(store, run_id, 3)
    set_run_version(store, run_id, 4)
    assert get_run(store, run_id).model_version == 3


def test_to_dict_renders_times_as_iso_strings(store: MetadataStore, sim: SimulatedClock) -> None:
    """A run's dict holds every field, with ISO times."""
    run_id = start(store)
    body = get_run(store, run_id).to_dict()
    assert body["id"] == run_id
    assert body["started_at"] == T0.isoformat()
    assert body["finished_at"] is None
    finished = finish(store, run_id).to_dict()
    assert finished["finished_at"] == T0.isoformat()
    assert set(finished) == set(body)
