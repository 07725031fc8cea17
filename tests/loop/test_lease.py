"""The controller's lease: one holder at a time, taken over once it expires — on SQLite
and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from driftloop.core.metadata import MetadataStore
from driftloop.loop.lease import Lease

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TTL = timedelta(seconds=10)


@pytest.fixture
def store(metadata_url: str) -> Iterator[MetadataStore]:
    """A metadata store on SQLite, then on PostgreSQL."""
    opened = MetadataStore.open(metadata_url)
    yield opened
    opened.close()


def test_the_first_holder_gets_the_lease_and_renews_it(store: MetadataStore) -> None:
    first, second = Lease(store, holder="a", ttl=TTL), Lease(store, holder="b", ttl=TTL)
    assert first.acquire(T0)
    assert not second.acquire(T0 + timedelta(seconds=5))
    assert first.acquire(T0 + timedelta(seconds=9))  # renewed: now until T0 + 19 s
    assert not second.acquire(T0 + timedelta(seconds=15))
    state = first.state()
    assert state is not None
    assert (state.holder, state.expires_at, state.generation) == (
        "a",
        T0 + timedelta(seconds=19),
        1,
    )


def test_an_expired_lease_is_taken_over_with_a_new_generation(store: MetadataStore) -> None:
    first, second = Lease(store, holder="a", ttl=TTL), Lease(store, holder="b", ttl=TTL)
    assert first.acquire(T0)
    assert second.acquire(T0 + TTL + timedelta(seconds=1))
    assert second.generation == 2
    assert not first.acquire(T0 + TTL + timedelta(seconds=2))  # the old holder lost it
    assert first.generation is None


def test_a_released_lease_is_free_at_once(store: MetadataStore) -> None:
    first, second = Lease(store, holder="a", ttl=TTL), Lease(store, holder="b", ttl=TTL)
    assert first.acquire()
    first.release()
    assert second.acquire()


def test_of_many_contenders_at_once_exactly_one_wins(store: MetadataStore) -> None:
    contenders = [Lease(store, holder=f"c{i}", ttl=TTL) for i in range(8)]
    results: list[bool] = []
    barrier = threading.Barrier(len(contenders))

    def contend(lease: Lease) -> None:
        barrier.wait()
        results.append(lease.acquire(T0))

    threads = [threading.Thread(target=contend, args=(c,)) for c in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
