"""The retraining controller: ``driftloop run``.

A long-running loop. Each :meth:`Controller.tick`:

1. takes or renews the **lease** (:mod:`driftloop.loop.lease`): only one controller
   acts at a time; a second one waits, and takes over once the first stops renewing;
2. gives a pipeline run to every trigger firing recorded without one (a controller
   killed between recording a firing and starting its run loses nothing);
3. evaluates each model's **triggers**; a firing is recorded with its evidence (or why
   it was suppressed) and starts a pipeline run;
4. **advances** every active run one step (:mod:`driftloop.loop.runs`): a pending run's
   ``train`` step goes to the executor; a finished step's result moves the run on —
   gates failed: ``rejected``; passed: the rollout starts; the rollout's own state
   machine is advanced until it promotes, rolls back or pauses.

Every state change is a compare-and-set in the metadata store and every step is
idempotent (the ``train`` step finds a version already registered for its run), so a
controller killed at any point and started again resumes each run where it stopped,
with no duplicate versions and no lost firings. A step that fails is tried again up to
``max_attempts`` times; a step over the model's training-time budget is stopped and
the run marked ``stopped``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from driftloop.core import clock
from driftloop.core.metadata import MetadataStore
from driftloop.errors import StateError
from driftloop.loop import runs
from driftloop.loop import triggers as trigger_mod
from driftloop.loop.executors import Executor, Job, StepFailed
from driftloop.loop.lease import Lease
from driftloop.loop.triggers import RetrainPolicy, RunHistory
from driftloop.registry import models as registry
from driftloop.rollout import engine
from driftloop.rollout.analysis import RolloutLog

__all__ = [
    "Controller",
    "DirectPromotion",
    "NoTriggers",
    "PolicyTriggers",
    "ProgressiveRollout",
    "RolloutDriver",
    "TickReport",
    "Triggers",
]

_log = logging.getLogger("driftloop.loop")


class Triggers(Protocol):
    """A model's retraining triggers, as the controller uses them."""

    def models(self) -> list[str]:
        """The models that have triggers."""
        ...

    def check(self, model: str, now: datetime, history: RunHistory) -> int | None:
        """Evaluate and record; the id of a firing that should start a run, or None."""
        ...

    def unattached(self) -> list[tuple[int, str]]:
        """Fired firings without a run: ``(firing id, model)``."""
        ...

    def attach(self, firing_id: int, run_id: str) -> None: ...

    def max_training_seconds(self, model: str) -> float | None: ...


class NoTriggers:
    """Runs are started by hand only."""

    def models(self) -> list[str]:
        return []

    def check(self, model: str, now: datetime, history: RunHistory) -> int | None:
        return None

    def unattached(self) -> list[tuple[int, str]]:
        return []

    def attach(self, firing_id: int, run_id: str) -> None:
        return None

    def max_training_seconds(self, model: str) -> float | None:
        return None


class PolicyTriggers:
    """The retraining policies declared in the definitions module
    (:mod:`driftloop.loop.triggers`): every fired or suppressed evaluation is recorded
    with its evidence; a fired one starts a run."""

    def __init__(self, store: MetadataStore, policies: Mapping[str, RetrainPolicy]) -> None:
        self.store, self.policies = store, dict(policies)

    def models(self) -> list[str]:
        return sorted(self.policies)

    def check(self, model: str, now: datetime, history: RunHistory) -> int | None:
        firing = trigger_mod.evaluate(self.store, self.policies[model], now=now, history=history)
        if firing.outcome == "quiet":
            return None
        firing_id = trigger_mod.record(self.store, firing)
        return firing_id if firing.fired else None

    def unattached(self) -> list[tuple[int, str]]:
        fired = trigger_mod.list_firings(self.store, limit=None, outcome="fired")
        return [(f.id, f.model) for f in reversed(fired) if f.run_id is None and f.id is not None]

    def attach(self, firing_id: int, run_id: str) -> None:
        trigger_mod.attach_run(self.store, firing_id, run_id)

    def max_training_seconds(self, model: str) -> float | None:
        policy = self.policies.get(model)
        return None if policy is None else policy.max_training_seconds


class RolloutDriver(Protocol):
    """How a version that passed its gates reaches production."""

    def start(self, run: runs.PipelineRun, version: int) -> dict[str, Any]:
        """Start (or find, for this run) the rollout; outputs to record."""
        ...

    def advance(self, run: runs.PipelineRun, now: datetime) -> tuple[str, dict[str, Any]]:
        """``("rollout", ...)`` while it goes on, else the run's final state
        (``promoted``, ``rolled_back`` or ``paused``) and outputs to record."""
        ...

    def settle(self, now: datetime) -> None:
        """Whatever rollouts still need after their run ended (a promotion's rollback
        window to close)."""
        ...


class DirectPromotion:
    """No progressive rollout: the version becomes champion at once, by compare-and-set
    against the champion it was judged against."""

    def __init__(self, store: MetadataStore, who: str = "controller") -> None:
        self.store, self.who = store, who

    def start(self, run: runs.PipelineRun, version: int) -> dict[str, Any]:
        return {"rollout": "direct"}

    def advance(self, run: runs.PipelineRun, now: datetime) -> tuple[str, dict[str, Any]]:
        version = int(run.outputs["version"])
        current = registry.aliases(self.store, run.model).get("champion")
        if current == version:  # done before a crash
            return runs.PROMOTED, {"champion": version}
        expected = run.outputs.get("champion_version")
        try:
            registry.set_alias(
                self.store,
                run.model,
                "champion",
                version,
                expected=expected,
                who=self.who,
                reason=f"gates passed in pipeline run {run.id}",
            )
        except StateError as exc:
            return runs.REJECTED, {"reason": f"the champion changed meanwhile: {exc}"}
        return runs.PROMOTED, {"champion": version}

    def settle(self, now: datetime) -> None:
        return None


class ProgressiveRollout:
    """A version that passed its gates is rolled out by its model's
    :class:`~driftloop.rollout.policy.RolloutPolicy` (the retrain policy's ``rollout``):
    shadow, canary steps judged on live traffic, then promotion, or automatic rollback
    (:mod:`driftloop.rollout.engine`). A model without a rollout policy, or without a
    champion yet to compare against, is promoted at once (:class:`DirectPromotion`)."""

    def __init__(
        self,
        store: MetadataStore,
        policies: Mapping[str, RetrainPolicy],
        log: RolloutLog,
        who: str = "controller",
    ) -> None:
        self.store, self.policies, self.log, self.who = store, dict(policies), log, who
        self.direct = DirectPromotion(store, who)

    def start(self, run: runs.PipelineRun, version: int) -> dict[str, Any]:
        policy = self.policies.get(run.model)
        plan = policy.rollout if policy is not None else None
        champion = registry.aliases(self.store, run.model).get("champion")
        if plan is None or champion is None or champion == version:
            return self.direct.start(run, version)
        rollout = engine.start_rollout(
            self.store,
            run.model,
            version,
            plan,
            who=self.who,
            reason=f"gates passed in pipeline run {run.id}",
            run_id=run.id,
        )
        return {"rollout": rollout.id}

    def advance(self, run: runs.PipelineRun, now: datetime) -> tuple[str, dict[str, Any]]:
        rollout_id = run.outputs.get("rollout")
        if not isinstance(rollout_id, int):
            return self.direct.advance(run, now)
        status = engine.advance(self.store, rollout_id, self.log, now=now)
        r = status.rollout
        outcome = {"rollout_state": r.state, "rollout_reason": r.reason}
        if r.state == "promoted":
            return runs.PROMOTED, outcome
        if r.state in ("rolled_back", "aborted"):
            return runs.ROLLED_BACK, outcome
        if r.state == "paused":
            return runs.PAUSED, outcome
        return runs.ROLLOUT, outcome

    def settle(self, now: datetime) -> None:
        engine.advance_rollouts(self.store, self.log, now=now)


@dataclass
class TickReport:
    """What one tick did."""

    leader: bool
    started: list[str] = field(default_factory=list)
    advanced: dict[str, str] = field(default_factory=dict)
    """Run id -> its state after the tick."""


class Controller:
    """See the module doc."""

    def __init__(
        self,
        store: MetadataStore,
        executor: Executor,
        *,
        triggers: Triggers | None = None,
        rollout: RolloutDriver | None = None,
        lease: Lease | None = None,
        max_attempts: int = 3,
        models: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.triggers: Triggers = triggers or NoTriggers()
        self.rollout: RolloutDriver = rollout or DirectPromotion(store)
        self.lease = lease or Lease(store)
        self.max_attempts = max_attempts
        self.jobs: dict[str, Job] = {}
        """Steps this controller started, by run (a restarted controller has none)."""
        self._models = models

    # -- one tick -------------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> TickReport:
        now = now or clock.now()
        if not self.lease.acquire(now):
            self._drop_jobs()
            return TickReport(leader=False)
        report = TickReport(leader=True)
        for firing_id, model in self.triggers.unattached():
            report.started.append(self._start(model, firing_id, "a trigger fired"))
        for model in self.triggers.models():
            firing = self.triggers.check(model, now, self._history(model, now))
            if firing is not None:
                report.started.append(self._start(model, firing, "a trigger fired"))
        advancing = (*runs.ACTIVE, runs.PAUSED)
        for run in reversed(runs.list_runs(self.store, states=advancing)):  # oldest first
            try:
                report.advanced[run.id] = self._advance(run, now)
            except Exception as exc:  # one broken run must not stop the others
                _log.exception("pipeline run %s could not advance", run.id)
                runs.add_event(self.store, run.id, "error", run.step, {"error": str(exc)})
                report.advanced[run.id] = run.state
        self.rollout.settle(now)
        return report

    def _drop_jobs(self) -> None:
        """Lost the lease: stop the steps this controller started (the new leader
        runs them again; steps are idempotent)."""
        for job in self.jobs.values():
            job.cancel()
        self.jobs.clear()

    def _history(self, model: str, now: datetime) -> RunHistory:
        recent = runs.list_runs(self.store, model, limit=50)
        last = recent[0].created_at if recent else None
        day = sum(1 for r in recent if r.created_at > now - timedelta(days=1))
        active = next((r.id for r in recent if r.state in (*runs.ACTIVE, runs.PAUSED)), None)
        return RunHistory(last_start=last, started_last_24h=day, running=active)

    def _start(self, model: str, firing_id: int | None, reason: str) -> str:
        run = runs.create_run(self.store, model, firing_id=firing_id, reason=reason)
        if firing_id is not None:
            self.triggers.attach(firing_id, run.id)
        return run.id

    # -- advancing a run ----------------------------------------------------------------

    def _advance(self, run: runs.PipelineRun, now: datetime) -> str:
        if run.state == runs.PENDING:
            busy = runs.list_runs(self.store, run.model, states=(runs.TRAINING, runs.ROLLOUT))
            if busy:  # one run of a model at a time: the next waits its turn
                return run.state
            return self._submit(run, run.state, failed=False)
        if run.state == runs.TRAINING:
            return self._training(run)
        if run.state in (runs.ROLLOUT, runs.PAUSED):  # a paused rollout may be resumed
            state, outputs = self.rollout.advance(run, now)
            if state != run.state and runs.transition(
                self.store,
                run.id,
                run.state,
                state,
                step="rollout",
                outputs=outputs,
                detail=outputs,
            ):
                return state
            return run.state
        return run.state

    def _submit(self, run: runs.PipelineRun, expected: str, *, failed: bool) -> str:
        """Hand the ``train`` step to the executor; ``failed``: because the last attempt
        failed (counted against ``max_attempts``; a restart is not a failure)."""
        attempts = run.attempts + 1 if failed else run.attempts
        if not runs.transition(
            self.store,
            run.id,
            expected,
            runs.TRAINING,
            step="train",
            attempts=attempts,
            detail={"failed_attempts": attempts},
        ):
            return runs.get_run(self.store, run.id).state
        self.jobs[run.id] = self.executor.submit(run.id, "train")
        return self._training(runs.get_run(self.store, run.id))  # it may be done already

    def _training(self, run: runs.PipelineRun) -> str:
        job = self.jobs.get(run.id)
        if job is None:  # started by a controller that is gone: run the step again
            return self._submit(run, runs.TRAINING, failed=False)
        try:
            result = job.poll()
        except StepFailed as exc:
            del self.jobs[run.id]
            runs.add_event(self.store, run.id, "step_failed", "train", {"error": str(exc)})
            if run.attempts + 1 >= self.max_attempts:
                runs.transition(
                    self.store,
                    run.id,
                    runs.TRAINING,
                    runs.FAILED,
                    step="train",
                    error=str(exc),
                    attempts=run.attempts + 1,
                )
                return runs.FAILED
            return self._submit(run, runs.TRAINING, failed=True)
        budget = self.triggers.max_training_seconds(run.model)
        if result is None:
            if budget is not None and job.elapsed > budget:
                job.cancel()
                del self.jobs[run.id]
                runs.transition(
                    self.store,
                    run.id,
                    runs.TRAINING,
                    runs.STOPPED,
                    step="train",
                    error=f"over its training-time budget of {budget:g} s",
                    training_seconds=job.elapsed,
                )
                return runs.STOPPED
            return runs.TRAINING
        del self.jobs[run.id]
        seconds = run.training_seconds + job.elapsed
        if not result.get("passed"):
            runs.transition(
                self.store,
                run.id,
                runs.TRAINING,
                runs.REJECTED,
                step="gate",
                outputs=result,
                training_seconds=seconds,
                detail=result,
            )
            return runs.REJECTED
        started = self.rollout.start(run, int(result["version"]))
        runs.transition(
            self.store,
            run.id,
            runs.TRAINING,
            runs.ROLLOUT,
            step="rollout",
            outputs={**result, **started},
            training_seconds=seconds,
            detail=started,
        )
        return runs.ROLLOUT

    # -- the loop -----------------------------------------------------------------------

    def run(self, stop: threading.Event, *, interval: float = 1.0) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set."""
        try:
            while not stop.is_set():
                self.tick()
                stop.wait(interval)
        finally:
            self._drop_jobs()
