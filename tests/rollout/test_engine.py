"""Progressive rollouts driven minute by minute against a simulated server, in simulated
time, on SQLite and PostgreSQL: promotion, automatic rollback, pause, shadow phase,
crash safety and the instant rollback."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from driftloop.core.clock import use_clock
from driftloop.core.metadata import MetadataStore
from driftloop.errors import NotFoundError, StateError
from driftloop.registry import models as registry
from driftloop.rollout import engine
from driftloop.rollout.policy import AnalysisMetric, RolloutPolicy, Step
from driftloop.serving import deployments

MODEL = "fraud"
MINUTE = timedelta(minutes=1)


def policy(**changes: Any) -> RolloutPolicy:
    """Three short steps, a measurement a minute, a five-minute rollback window."""
    base: dict[str, Any] = {
        "steps": [Step(10, "3m"), Step(50, "3m"), Step(100, "2m")],
        "interval": "1m",
        "delay": "0s",
        "rollback_window": "5m",
    }
    return RolloutPolicy(**{**base, **changes})


def traffic_history(store: MetadataStore) -> list[tuple[str, float, int | None, int | None]]:
    """(action, canary weight, champion, staged) of each deployment change."""
    return [
        (c.action, c.state.canary_weight, c.state.champion, c.state.staged)
        for c in deployments.deployment_history(store, MODEL)
    ]


def test_a_healthy_canary_walks_through_its_steps_to_promotion(world: Any) -> None:
    """10 % -> 50 % -> 100 % -> promoted, every measurement successful; the previous
    champion stays staged for the rollback window, then is unstaged."""
    started = world.start(policy())
    assert (started.state, started.where()) == ("canary", "step 1/3 (10%)")
    status = world.run(started.id)
    r = status.rollout
    assert (r.state, status.done) == ("promoted", True)
    assert r.reason.startswith("all 3 canary steps passed: 8 measurements, 16 successful")
    assert registry.aliases(world.store, MODEL)["champion"] == 2
    assert traffic_history(world.store) == [
        ("canary", 10.0, 1, None),
        ("canary", 50.0, 1, None),
        ("canary", 100.0, 1, None),
        ("promote", 0.0, 2, None),
        ("stage", 0.0, 2, 1),
        ("abort", 0.0, 2, None),
    ]
    detail = engine.get_rollout(world.store, r.id)
    assert {m.status for m in detail.measurements} == {"successful"}
    assert [m.seq for m in detail.measurements] == [n for n in range(1, 9) for _ in range(2)]
    assert [e["kind"] for e in detail.timeline()].count("promoted") == 1


def test_an_error_rate_failure_rolls_back_within_one_interval(world: Any) -> None:
    """A challenger failing 30 % of its predictions is off the traffic after the first
    measurement: the champion alone serves, the challenger alias is gone, and the
    rollout keeps the evidence."""
    world.traffic.behave(2, errors=0.3)
    started = world.start(policy())
    status = world.minute(started.id)
    r = status.rollout
    assert (r.state, status.done) == ("rolled_back", True)
    assert r.reason.startswith(
        "error_rate failed 1 measurement(s), more than its failure limit 0: error_rate 0.3"
    )
    d = deployments.get_deployment(world.store, MODEL)
    assert (d.champion, d.canary, d.shadow) == (1, None, None)
    assert "challenger" not in registry.aliases(world.store, MODEL)
    removed = registry.alias_history(world.store, MODEL, "challenger")[-1]
    assert (removed.to_version, removed.who) == (None, f"rollout:{r.id}")
    assert removed.reason.startswith(f"rejected in rollout {r.id}: error_rate failed")
    assert r.evidence is not None
    failing = [m for m in r.evidence["measurements"] if m["status"] == "failed"]
    assert [m["metric"] for m in failing] == ["error_rate"]
    assert failing[0]["value"] == pytest.approx(0.3, abs=0.1)
    assert engine.rejected_versions(world.store, MODEL)[2].id == r.id


def test_inconclusive_measurements_past_the_limit_pause_the_rollout(world: Any) -> None:
    """Too little canary traffic to judge: the third inconclusive measurement (limit 2)
    pauses the rollout at its weight and says why; nothing is measured while paused;
    a resume starts the step again and the rollout goes on."""
    world.traffic.per_minute = 30  # about 3 canary requests a minute at 10 %
    started = world.start(policy(inconclusive_limit=2))
    status = world.run(started.id)
    r = status.rollout
    assert (r.state, r.measurements) == ("paused", 3)
    assert r.reason.startswith("error_rate was inconclusive 3 times, more than its inconclusive")
    assert "fewer than min_rows 10" in r.reason
    d = deployments.get_deployment(world.store, MODEL)
    assert (d.canary, d.canary_weight) == (2, 10.0)
    still = world.minute(r.id)
    assert (still.rollout.state, still.measurements, still.next_at) == ("paused", [], None)
    world.traffic.per_minute = 200
    resumed = engine.resume_rollout(world.store, r.id, who="ann", reason="traffic is back")
    assert (resumed.state, resumed.counts["error_rate"]["inconclusive"]) == ("canary", 0)
    assert world.run(r.id).rollout.state == "promoted"
    messages = [e.message for e in engine.get_rollout(world.store, r.id).events]
    assert "resumed at step 1/3 (10%) by ann: traffic is back" in messages


def test_a_shadow_phase_comes_before_the_canary(world: Any) -> None:
    """With shadow='2m' and 300 requests, the challenger scores copies for two minutes
    (400 requests), then the canary starts at 10 % and the shadow is removed."""
    started = world.start(policy(shadow="2m", shadow_requests=300))
    d = deployments.get_deployment(world.store, MODEL)
    assert (started.state, d.shadow, d.canary) == ("shadow", 2, None)
    world.minute(started.id)
    status = world.minute(started.id)
    r = status.rollout
    assert (r.state, r.where(), r.shadow_requests) == ("canary", "step 1/3 (10%)", 400)
    d = deployments.get_deployment(world.store, MODEL)
    assert (d.shadow, d.canary, d.canary_weight) == (None, 2, 10.0)
    measured = engine.get_rollout(world.store, r.id).measurements
    assert {(m.phase, m.rows) for m in measured if m.metric == "error_rate"} == {("shadow", 200)}
    assert world.run(r.id).rollout.state == "promoted"


def test_advance_called_again_or_concurrently_records_each_measurement_once(world: Any) -> None:
    """Calls at the same time, one after another or from four threads at once, leave
    one measurement per metric and interval."""
    r = world.start(policy())
    world.traffic.serve_minute(world.now)
    world.clock.advance(MINUTE)
    now = world.now

    def call() -> None:
        engine.advance(world.store, r.id, world.traffic.log, now=now)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    again = engine.advance(world.store, r.id, world.traffic.log, now=now)
    assert again.measurements == []
    detail = engine.get_rollout(world.store, r.id)
    assert [(m.seq, m.metric) for m in detail.measurements] == [
        (1, "error_rate"),
        (1, "latency_p99"),
    ]
    assert detail.rollout.measurements == 1


def test_one_rollout_per_model_and_starting_again_returns_it(world: Any) -> None:
    """A second version cannot start while one is active; the same version (or the same
    pipeline run) gets the rollout already started."""
    first = world.start(policy(), run_id="run-1")
    assert world.start(policy()).id == first.id
    assert world.start(policy(), run_id="run-1").id == first.id
    with pytest.raises(StateError, match=rf"active rollout \({first.id}, version 2"):
        world.start(policy(), version=3)
    engine.abort_rollout(world.store, first.id, who="ann")
    with pytest.raises(StateError, match="is the champion already"):
        world.start(policy(), version=1)
    with pytest.raises(NotFoundError, match="unknown model version 'fraud/9'"):
        world.start(policy(), version=9)
    with pytest.raises(StateError, match="is aborted already"):
        engine.abort_rollout(world.store, first.id, who="ann")


def test_a_change_of_the_deployment_by_someone_else_pauses_the_rollout(world: Any) -> None:
    """A manual abort during the canary is not fought: the rollout pauses naming it,
    and a resume applies its step again."""
    r = world.start(policy())
    deployments.abort(world.store, MODEL, who="ann", reason="looks odd")
    status = world.minute(r.id)
    assert status.rollout.state == "paused"
    assert "changed outside the rollout (deployment revision 2 by ann)" in status.rollout.reason
    engine.resume_rollout(world.store, r.id, who="ann")
    d = deployments.get_deployment(world.store, MODEL)
    assert (d.canary, d.canary_weight, d.updated_by) == (2, 10.0, f"rollout:{r.id}")


def test_rollback_after_promotion_is_instant_and_restores_the_previous_champion(
    world: Any,
) -> None:
    """Within the rollback window the previous champion is staged: rollback switches
    back to it without a load, and marks the promotion rolled back."""
    r = world.start(policy(rollback_window="1h"))
    for _ in range(8):
        status = world.minute(r.id)
    assert (status.rollout.state, status.done) == ("promoted", False)
    assert deployments.get_deployment(world.store, MODEL).staged == 1
    back = engine.rollback(world.store, MODEL, who="oncall", reason="complaints")
    assert (back.from_version, back.to_version, back.moved, back.preloaded) == (2, 1, True, True)
    assert back.rolled_back == [r.id]
    d = deployments.get_deployment(world.store, MODEL)
    assert (d.champion, d.staged, d.canary) == (1, None, None)
    undone = engine.get_rollout(world.store, r.id).rollout
    assert (undone.state, undone.reason) == ("rolled_back", "rolled back by oncall: complaints")
    assert engine.advance(world.store, r.id, world.traffic.log).done


def test_rollback_during_a_canary_ends_it_and_keeps_the_champion(world: Any) -> None:
    r = world.start(policy())
    back = engine.rollback(world.store, MODEL, who="oncall")
    assert (back.moved, back.aborted, back.to_version) == (False, r.id, 1)
    d = deployments.get_deployment(world.store, MODEL)
    assert (d.champion, d.canary) == (1, None)
    assert engine.get_rollout(world.store, r.id).rollout.state == "rolled_back"


def test_rollback_to_a_given_version_and_without_anything_to_roll_back(world: Any) -> None:
    """--to moves the champion to any version (staged and switched); with no earlier
    champion and no rollout there is nothing to roll back."""
    with pytest.raises(StateError, match="no earlier champion to roll back to"):
        engine.rollback(world.store, MODEL, who="oncall")
    back = engine.rollback(world.store, MODEL, to_version=3, who="oncall")
    assert (back.from_version, back.to_version, back.preloaded) == (1, 3, False)
    assert [a for a, *_ in traffic_history(world.store)] == ["stage", "switch"]
    again = engine.rollback(world.store, MODEL, who="oncall")
    assert again.to_version == 1
    with pytest.raises(StateError, match="is the champion already"):
        engine.rollback(world.store, MODEL, to_version=1, who="oncall")
    with pytest.raises(NotFoundError):
        engine.rollback(world.store, "nope", who="oncall")


# --- crashes ---------------------------------------------------------------------------


class Crash(Exception):
    """The process died here."""


@contextmanager
def crash_at(store: MetadataStore, n: int) -> Iterator[list[int]]:
    """Raise :class:`Crash` at the ``n``-th write statement (1-based) sent to ``store``;
    yields a one-item list counting the writes seen."""
    seen = [0]

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            seen[0] += 1
            if seen[0] == n:
                raise Crash(statement)

    sa.event.listen(store.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", before)


def _drive(url: str, folder: Path, new_world: Callable[..., Any], crash: int | None) -> Any:
    """A short rollout to promotion and the end of its rollback window, minute by
    minute; with ``crash``, the process dies at that write and a new one (a fresh
    store handle) calls the same step again."""
    store = MetadataStore.open(url)
    world = new_world(store, folder)
    short = policy(steps=[Step(50, "2m"), Step(100, "1m")], rollback_window="2m")
    crashed = []

    def step(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Crash:
            crashed.append(True)
            world.store.close()
            world.store = world.traffic.store = MetadataStore.open(url)
            return fn()

    with use_clock(world.clock), crash_at(store, crash or 0) as writes:
        r = step(lambda: world.start(short))
        status = step(lambda: engine.advance(world.store, r.id, world.traffic.log))
        for _ in range(60):
            if status.done:
                break
            world.traffic.serve_minute(world.now)
            world.clock.advance(MINUTE)
            status = step(lambda: engine.advance(world.store, r.id, world.traffic.log))
    assert bool(crashed) == (crash is not None and crash <= writes[0])
    summary = _summary(world.store, r.id)
    world.store.close()
    return summary, writes[0]


def _summary(store: MetadataStore, rollout_id: int) -> dict[str, Any]:
    detail = engine.get_rollout(store, rollout_id)
    body = detail.rollout.to_dict()
    for volatile in ("revision", "updated_at", "deployment_revision"):
        body.pop(volatile)
    return {
        "rollout": body,
        "measurements": [
            (m.seq, m.metric, m.status, m.window, m.rows) for m in detail.measurements
        ],
        "events": [(e.kind, e.message, e.at) for e in detail.events],
        "deployments": [
            (c.revision, c.action, c.who, c.at, c.state.to_dict())
            for c in deployments.deployment_history(store, MODEL)
        ],
        "aliases": [
            (m.alias, m.from_version, m.to_version, m.who)
            for m in registry.alias_history(store, MODEL)
        ],
    }


def test_a_crash_at_any_write_then_a_restart_gives_the_same_end_state(
    tmp_path: Path, new_world: Callable[..., Any]
) -> None:
    """Killed at each write of a whole rollout in turn, and restarted from a fresh store
    handle, the rollout ends as it does uninterrupted: same measurements (none twice),
    same timeline, one promotion."""
    expected, writes = _drive(f"sqlite:///{tmp_path / 'ref.db'}", tmp_path / "ref", new_world, None)
    promotions = [d for d in expected["deployments"] if d[1] == "promote"]
    assert len(promotions) == 1
    assert expected["rollout"]["state"] == "promoted"
    for n in range(1, writes + 1):
        got, _ = _drive(f"sqlite:///{tmp_path / f'{n}.db'}", tmp_path / str(n), new_world, n)
        assert got == expected, f"crash at write {n} of {writes}"


def test_a_new_rollout_closes_the_rollback_window_of_the_last_promotion(world: Any) -> None:
    """The previous champion is unstaged when the next challenger starts: the new
    rollout compares v3 with the champion v2."""
    first = world.start(policy(rollback_window="1h"))
    for _ in range(8):
        world.minute(first.id)
    assert deployments.get_deployment(world.store, MODEL).staged == 1
    second = world.start(policy(), version=3)
    assert (second.previous, second.state) == (2, "canary")
    d = deployments.get_deployment(world.store, MODEL)
    assert (d.champion, d.staged, d.canary) == (2, None, 3)
    closed = engine.get_rollout(world.store, first.id)
    assert closed.rollout.settled
    assert closed.events[-1].message == (
        "rollback window closed early: another rollout of the model started"
    )
    assert [s.rollout.id for s in engine.advance_rollouts(world.store, world.traffic.log)] == [
        second.id
    ]


def test_a_challenger_worse_on_labelled_traffic_is_rolled_back(world: Any) -> None:
    """With labels arriving within the minute, a challenger scoring noise loses AUC to
    the champion on live traffic: roc_auc_delta fails and the rollout rolls back."""
    world.traffic.labels = True
    world.traffic.behave(2, skill=0.0)
    metrics = [AnalysisMetric("error_rate"), AnalysisMetric("roc_auc_delta", min_labelled=50)]
    r = world.start(policy(metrics=metrics))
    status = world.run(r.id)
    assert status.rollout.state == "rolled_back"
    assert status.rollout.reason.startswith("roc_auc_delta failed 1 measurement(s)")
    [delta] = [m for m in status.measurements if m.metric == "roc_auc_delta"]
    assert delta.value is not None
    assert delta.value < -0.05
