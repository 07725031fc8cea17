"""The serving engine of one worker process: routing state, scoring, logging, shadow.

An :class:`Engine` holds, per model, an immutable :class:`ModelState` — the deployment
and the loaded versions it needs — and replaces the whole mapping in one assignment
when something changes. A request reads the mapping once, so it is routed and scored
by one consistent state even while a switch happens underneath it; the version that
computed a prediction is the one its response and log record name.

A background thread polls :func:`~driftloop.serving.deployments.state_token` every
``serving.poll_interval``; when the token moves it reads every deployment, loads and
warms any version not yet loaded (blue-green: a staged version is loaded before the
switch), and only then publishes the new state. A model whose new versions fail to
load keeps serving its previous state and reports the error (``/v1/models``,
``/readyz``); the next poll retries.

The request path (:meth:`Engine.predict`): validate the batch size, route each
instance (sticky hash of its routing value), look its features up and score it with
the routed version, submit the prediction records to the log, queue a copy for the
shadow version. Shadow copies are scored by a separate thread from a bounded queue:
when it is full the copy is dropped and counted, so shadow never delays a response.

A version that raises while scoring (anything but a bad request, a backend that is
down or an unknown name: what answers 500) still leaves records, so monitoring can
count errors per version: one per instance it failed on, with a NaN prediction and
``error`` saying why. They are submitted, never waited for (a failure must not block
in strict durability either), and the exception goes on to the client as before; a
failing shadow version leaves them the same way, with role ``shadow``.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from driftloop.core import clock
from driftloop.errors import BackendUnavailable, InputError, NotFoundError, StateError
from driftloop.features.online import OnlineStore
from driftloop.project import Project
from driftloop.serving.deployments import Deployment, list_deployments, state_token
from driftloop.serving.metrics import ServerMetrics
from driftloop.serving.predictionlog import (
    Durability,
    RecordLog,
    RecordSink,
    feedback_table,
)
from driftloop.serving.records import PredictionRecords
from driftloop.serving.routing import Route, route, routing_value
from driftloop.serving.runtime import LoadedVersion, ModelCache, Scores, ServedFeatures
from driftloop.serving.schemas import FeedbackRequest, Instance, PredictRequest

__all__ = ["Engine", "ModelState", "PredictResult"]

_log = logging.getLogger(__name__)

RETIRED_KEEP_S = 300.0
"""How long a version stays loaded after it stops being deployed (a quick way back)."""
ERROR_CHARS = 500
"""The longest ``error`` text of a record (``"<ExceptionType>: <message>"``)."""
_NOT_THE_VERSION = (InputError, BackendUnavailable, NotFoundError)
"""Scoring errors that are not the version's failure: a bad request, a backend down, an
unknown name (answered 4xx or 503). Anything else is one, and is logged as such."""


@dataclass(frozen=True)
class ModelState:
    """One model as this worker serves it: its deployment and the versions loaded for it."""

    deployment: Deployment
    versions: Mapping[int, LoadedVersion]
    error: str | None = None

    def info(self) -> dict[str, Any]:
        return {
            "model": self.deployment.model,
            "deployment": self.deployment.to_dict(),
            "loaded": sorted(self.versions),
            "error": self.error,
        }


@dataclass
class PredictResult:
    """A predict response body and the futures of its log records (strict mode waits)."""

    body: dict[str, Any]
    logged: list[Future[None]] = field(default_factory=list)


@dataclass(frozen=True)
class _ShadowCopy:
    model: str
    version: int
    instances: list[Instance]
    request_id: str
    at: datetime


class Engine:
    """Everything one worker needs to answer requests (see the module docstring)."""

    def __init__(
        self,
        project: Project,
        *,
        metrics: ServerMetrics | None = None,
        predictions: RecordSink | None = None,
        feedback: RecordSink | None = None,
    ) -> None:
        self.project = project
        self.config = project.config.serving
        self.metrics = metrics or ServerMetrics()
        declared = project.definitions.models
        self._cache = ModelCache(
            project._features(),
            trust_pickle=lambda m: bool(declared[m].trust_pickle) if m in declared else False,
        )
        durability: Durability = "strict" if self.config.durability == "strict" else "relaxed"
        interval = self.config.flush_interval.total_seconds()
        # Compaction runs in its own process (driftloop serve starts it), never in a
        # worker: merging files would take the GIL from requests.
        self.predictions: RecordSink = predictions or RecordLog(
            self.config.predictions,
            durability=durability,
            flush_interval_s=interval,
            compact_every_s=None,
        )
        self.feedback_log: RecordSink = feedback or RecordLog(
            self.config.feedback,
            durability=durability,
            flush_interval_s=interval,
            compact_every_s=None,
        )
        self.strict = durability == "strict"
        self._online: OnlineStore | None = None
        self._states: dict[str, ModelState] = {}
        self._token: tuple[int, int] | None = None
        self._retry = False
        self._metadata_error: str | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._shadow: queue.Queue[_ShadowCopy | None] = queue.Queue(self.config.shadow_queue)
        self._shadow_thread: threading.Thread | None = None
        self._refresh_lock = threading.Lock()
        self._retired: dict[tuple[str, int], float] = {}  # loaded, no longer deployed: since

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Load every deployed version, then start the poller and the shadow thread."""
        self._online = self.project.online
        self.refresh()
        self._poller = threading.Thread(target=self._poll, name="driftloop-poller", daemon=True)
        self._poller.start()
        self._shadow_thread = threading.Thread(
            target=self._shadow_worker, name="driftloop-shadow", daemon=True
        )
        self._shadow_thread.start()

    def stop(self) -> None:
        """Stop the threads and write every queued record."""
        self._stop.set()
        if self._shadow_thread is not None:
            self._shadow.put(None)
            self._shadow_thread.join(10)
        if self._poller is not None:
            self._poller.join(10)
        self.predictions.close(30)
        self.feedback_log.close(30)

    def refresh(self, *, force: bool = False) -> bool:
        """Reload the deployments if anything changed since the last call; True if so."""
        with self._refresh_lock:
            store = self.project.store
            token = state_token(store)
            if token == self._token and not force and not self._retry:
                return False
            states: dict[str, ModelState] = {}
            retry = False
            for deployment in list_deployments(store):
                states[deployment.model], failed = self._load(deployment)
                retry = retry or failed
            self._states = states  # one assignment: requests see the old or the new state
            self._token, self._retry = token, retry
            self._retain(states)
            self.metrics.loaded_versions.set(sum(len(s.versions) for s in states.values()))
            return True

    def _retain(self, states: Mapping[str, ModelState]) -> None:
        """Drop loaded versions no longer deployed, except those retired less than
        ``RETIRED_KEEP_S`` ago: switching back to them (a rollback) needs no load."""
        now = time.monotonic()
        deployed = {(model, v) for model, state in states.items() for v in state.versions}
        for key in self._cache.loaded():
            if key not in deployed:
                self._retired.setdefault(key, now)
        for key in deployed:
            self._retired.pop(key, None)
        self._retired = {k: t for k, t in self._retired.items() if now - t < RETIRED_KEEP_S}
        self._cache.retain(deployed | set(self._retired))

    def _load(self, deployment: Deployment) -> tuple[ModelState, bool]:
        """The new state of one model, or its previous one if a version fails to load."""
        model = deployment.model
        versions: dict[int, LoadedVersion] = {}
        errors = []
        for version in sorted(deployment.versions()):
            try:
                versions[version] = self._cache.get(model, version)
            except Exception as exc:  # any load failure: keep serving what works
                _log.error("cannot load %s version %d: %s", model, version, exc)
                errors.append(f"version {version}: {exc}")
        if not errors:
            return ModelState(deployment, versions), False
        error = "; ".join(errors)
        previous = self._states.get(model)
        if previous is not None and previous.deployment.versions() <= set(previous.versions):
            # the last complete state goes on serving, however many retries fail
            return ModelState(previous.deployment, previous.versions, error), True
        return ModelState(deployment, versions, error), True

    def _poll(self) -> None:
        interval = self.config.poll_interval.total_seconds()
        while not self._stop.wait(interval):
            try:
                self.refresh()
                self._metadata_error = None
            except Exception as exc:  # keep serving the last state; readyz reports it
                if self._metadata_error is None:
                    _log.warning("cannot read deployments: %s", exc)
                self._metadata_error = str(exc)
            self.metrics.log_backlog.set(self.predictions.backlog + self.feedback_log.backlog)
            failed = getattr(self.predictions, "failed_rows", 0)
            self.metrics.log_failed.set(failed + getattr(self.feedback_log, "failed_rows", 0))

    # --- reading the state --------------------------------------------------------------

    def state(self, model: str) -> ModelState:
        state = self._states.get(model)
        if state is None:
            raise NotFoundError("model", model, known=sorted(self._states))
        return state

    def models(self) -> list[dict[str, Any]]:
        return [self._states[m].info() for m in sorted(self._states)]

    def readiness(self) -> list[str]:
        """Why this worker is not ready (empty: ready)."""
        reasons = []
        if self._token is None:
            reasons.append("deployments not loaded yet")
        if self._metadata_error is not None:
            reasons.append(f"metadata store: {self._metadata_error}")
        for model, state in sorted(self._states.items()):
            if state.error is not None:
                reasons.append(f"model {model}: {state.error}")
        try:
            if self._online is not None:
                self._online.views()
        except Exception as exc:  # any backend failure means not ready
            reasons.append(f"online store: {exc}")
        return reasons

    # --- predictions --------------------------------------------------------------------

    def predict(
        self,
        model: str,
        request: PredictRequest,
        request_id: str,
        *,
        at: datetime | None = None,
    ) -> PredictResult:
        """Score a request: the response body, and the log records' futures."""
        started = time.perf_counter()
        state = self.state(model)
        instances = request.batch()
        n = len(instances)
        if n > self.config.max_instances:
            raise InputError(
                f"{n} instances in one request; at most {self.config.max_instances} "
                "(serving.max_instances)",
                field="instances",
            )
        backlog = self.predictions.backlog
        if backlog > self.config.max_log_backlog:
            raise BackendUnavailable(
                "prediction log",
                str(getattr(self.predictions, "root", "")),
                f"{backlog} records are waiting to be written (serving.max_log_backlog "
                f"{self.config.max_log_backlog}); retry later",
            )
        deployment = state.deployment
        if n == 1:
            groups = {self._route(deployment, request, instances[0], request_id): [0]}
        else:
            groups = {}
            for i, instance in enumerate(instances):
                groups.setdefault(
                    self._route(deployment, request, instance, request_id), []
                ).append(i)
        at = at or clock.now()
        outputs: list[dict[str, Any] | None] = [None] * n
        scored = []
        for routed, indices in groups.items():
            loaded = state.versions.get(routed.version)
            if loaded is None:
                raise BackendUnavailable(
                    "model version",
                    f"{model} version {routed.version}",
                    f"not loaded on this worker ({state.error or 'loading'})",
                )
            batch = [instances[i] for i in indices] if len(groups) > 1 else instances
            keys, values, given = _columns(batch)
            try:
                served, scores = self._score(loaded, len(batch), keys, values, given)
                missing_names = _missing_names(served.missing, len(batch))
                for j, out in enumerate(_outputs(scores, routed, missing_names)):
                    outputs[indices[j]] = out
            except _NOT_THE_VERSION:
                raise
            except Exception as exc:  # the version failed: log it, answer as before (500)
                failed = PredictionRecords(
                    request_id=request_id,
                    at=at,
                    version=routed.version,
                    role=routed.role,
                    latency_ms=(time.perf_counter() - started) * 1000.0,
                    prediction=np.full(len(indices), np.nan),
                    instance=np.asarray(indices, dtype=np.int32) if len(groups) > 1 else None,
                    keys=keys,
                    error=_error_text(exc),
                )
                self._submit_failure(model, failed)
                raise
            scored.append((loaded, routed, indices, keys, served, scores))
        latency_ms = (time.perf_counter() - started) * 1000.0
        futures = []
        for loaded, routed, indices, keys, served, scores in scored:
            records = PredictionRecords(
                request_id=request_id,
                at=at,
                version=routed.version,
                role=routed.role,
                latency_ms=latency_ms,
                prediction=scores.score,
                instance=np.asarray(indices, dtype=np.int32) if len(scored) > 1 else None,
                probabilities=scores.probabilities,
                keys=keys,
                features=served.table,
                missing=served.missing,
            )
            futures.append(self.predictions.submit(model, records))
            self.metrics.predicted(model, routed.version, routed.role, len(indices))
            for name, flags in served.missing.items():
                count = int(flags.sum())
                if count:
                    self.metrics.missing_features(model, name, count)
            del loaded
        if deployment.shadow is not None:
            self._queue_shadow(_ShadowCopy(model, deployment.shadow, instances, request_id, at))
        body = {"request_id": request_id, "model": model, "predictions": outputs}
        return PredictResult(body, futures)

    def _score(
        self,
        loaded: LoadedVersion,
        rows: int,
        keys: pa.Table | None,
        values: Mapping[str, Sequence[Any]],
        given: Mapping[str, npt.NDArray[np.bool_]],
    ) -> tuple[ServedFeatures, Scores]:
        """The instances' inputs as served, and the version's scores (their keys,
        values and given flags as :func:`_columns` splits them)."""
        served = loaded.features(self._online, rows, keys=keys, values=values, given=given)
        return served, loaded.score(served.table)

    def _submit_failure(self, model: str, records: PredictionRecords) -> None:
        """Submit the records of a failure without waiting for them; a closed log (the
        worker stopping) is only logged, so the caller raises the failure itself."""
        try:
            self.predictions.submit(model, records)
        except StateError as exc:
            _log.warning("cannot log the failure of %s: %s", model, exc)

    @staticmethod
    def _route(
        deployment: Deployment, request: PredictRequest, instance: Instance, request_id: str
    ) -> Route:
        value = routing_value(request.context, instance.keys, deployment.routing_key, request_id)
        return route(
            champion=deployment.champion,
            canary=deployment.canary,
            canary_weight=deployment.canary_weight or 0.0,
            split=deployment.split,
            split_weights=deployment.split_weights,
            key=value,
        )

    # --- shadow -------------------------------------------------------------------------

    def _queue_shadow(self, copy: _ShadowCopy) -> None:
        try:
            self._shadow.put_nowait(copy)
        except queue.Full:
            self.metrics.shadow_dropped.labels(copy.model).inc()

    def _shadow_worker(self) -> None:
        while (copy := self._shadow.get()) is not None:
            try:
                self._score_shadow(copy)
            except Exception as exc:  # a shadow failure is counted and logged, never raised
                self.metrics.shadow_errors.labels(copy.model).inc()
                _log.warning(
                    "shadow version %d of %s failed on request %s: %s",
                    copy.version,
                    copy.model,
                    copy.request_id,
                    exc,
                )
            finally:
                self._shadow.task_done()

    def drain(self, timeout: float | None = 30.0) -> None:
        """Wait until every queued shadow copy is scored and every record written (a
        replay does this before it analyses what it served)."""
        if self._shadow_thread is not None and self._shadow_thread.is_alive():
            self._shadow.join()
        self.predictions.flush(timeout)
        self.feedback_log.flush(timeout)

    def _score_shadow(self, copy: _ShadowCopy) -> None:
        state = self._states.get(copy.model)
        loaded = state.versions.get(copy.version) if state is not None else None
        if loaded is None:  # no longer the shadow
            return
        started = time.perf_counter()
        keys, values, given = _columns(copy.instances)
        try:
            served, scores = self._score(loaded, len(copy.instances), keys, values, given)
        except _NOT_THE_VERSION:
            raise
        except Exception as exc:  # the shadow version failed: log it, the worker counts it
            failed = PredictionRecords(
                request_id=copy.request_id,
                at=copy.at,
                version=copy.version,
                role="shadow",
                latency_ms=(time.perf_counter() - started) * 1000.0,
                prediction=np.full(len(copy.instances), np.nan),
                keys=keys,
                error=_error_text(exc),
            )
            self._submit_failure(copy.model, failed)
            raise
        records = PredictionRecords(
            request_id=copy.request_id,
            at=copy.at,
            version=copy.version,
            role="shadow",
            latency_ms=(time.perf_counter() - started) * 1000.0,
            prediction=scores.score,
            probabilities=scores.probabilities,
            keys=keys,
            features=served.table,
            missing=served.missing,
        )
        self.predictions.submit(copy.model, records)
        self.metrics.predicted(copy.model, copy.version, "shadow", len(copy.instances))

    # --- feedback -----------------------------------------------------------------------

    def feedback(
        self, request: FeedbackRequest, *, at: datetime | None = None
    ) -> tuple[int, Future[None]]:
        """Store labels (received at ``at``, default now): how many, and the future of
        their records."""
        self.state(request.model)
        items = request.batch()
        if len(items) > self.config.max_instances:
            raise InputError(
                f"{len(items)} labels in one request; at most {self.config.max_instances} "
                "(serving.max_instances)",
                field="labels",
            )
        numbers: list[float | None] = []
        texts: list[str | None] = []
        for item in items:
            if isinstance(item.label, str):
                numbers.append(None)
                texts.append(item.label)
            else:
                numbers.append(float(item.label))
                texts.append(None)
        key_names = sorted({k for item in items for k in (item.keys or {})})
        keys = (
            {k: _key_array([(item.keys or {}).get(k) for item in items], k) for k in key_names}
            if key_names
            else None
        )
        table = feedback_table(
            label=numbers,
            label_text=texts if any(t is not None for t in texts) else None,
            request_id=[item.request_id for item in items],
            instance=[item.instance for item in items],
            keys=keys,
            event_time=[item.event_time for item in items],
            at=at,
        )
        return len(items), self.feedback_log.submit(request.model, table)


def _key_array(values: Sequence[Any], name: str) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(
            f"entity key {name!r} mixes numbers and strings across instances: {exc}",
            field=f"keys.{name}",
        ) from None


def _columns(
    instances: Sequence[Instance],
) -> tuple[pa.Table | None, dict[str, list[Any]], dict[str, npt.NDArray[np.bool_]]]:
    """The instances' keys as a table, their feature values by name, and for a value
    given by only some instances, which ones gave it."""
    if len(instances) == 1:
        only = instances[0]
        keys = (
            pa.table({k: _key_array([v], k) for k, v in only.keys.items()}) if only.keys else None
        )
        return keys, {k: [v] for k, v in only.features.items()}, {}
    key_names = sorted({k for instance in instances for k in instance.keys})
    keys = (
        pa.table({k: _key_array([i.keys.get(k) for i in instances], k) for k in key_names})
        if key_names
        else None
    )
    names = sorted({k for instance in instances for k in instance.features})
    values = {name: [i.features.get(name) for i in instances] for name in names}
    given = {}
    for name in names:
        mask = np.fromiter((name in i.features for i in instances), bool, len(instances))
        if not mask.all():
            given[name] = mask
    return keys, values, given


def _error_text(exc: BaseException) -> str:
    """``"<ExceptionType>: <message>"``, at most ``ERROR_CHARS`` characters."""
    return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]


def _missing_names(missing: Mapping[str, npt.NDArray[np.bool_]], n: int) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in range(n)]
    for name, flags in missing.items():
        if flags.any():
            for i in np.flatnonzero(flags).tolist():
                out[i].append(name)
    return out


def _label_text(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def _outputs(scores: Scores, routed: Route, missing: list[list[str]]) -> list[dict[str, Any]]:
    predictions = scores.prediction.tolist()
    score = scores.score.astype(np.float64, copy=False)
    finite = bool(np.isfinite(score).all())
    scores_out: list[Any] = (
        score.tolist() if finite else [v if math.isfinite(v) else None for v in score.tolist()]
    )
    classes = scores.classes
    names = [_label_text(c) for c in classes] if classes is not None else None
    if names is None:
        probabilities: list[Any] = [None] * len(predictions)
    elif scores.probabilities is not None:
        probabilities = [
            dict(zip(names, row, strict=True)) for row in scores.probabilities.tolist()
        ]
    elif len(names) == 2:
        first, second = names
        probabilities = [{first: 1.0 - v, second: v} for v in score.tolist()]
    else:
        probabilities = [None] * len(predictions)
    if scores.probabilities is None and classes is None and not finite:
        predictions = [
            p if not isinstance(p, float) or math.isfinite(p) else None for p in predictions
        ]
    version, role = routed.version, routed.role
    return [
        {
            "prediction": prediction,
            "score": value,
            "probabilities": probs,
            "version": version,
            "role": role,
            "missing": names_missing,
        }
        for prediction, value, probs, names_missing in zip(
            predictions, scores_out, probabilities, missing, strict=True
        )
    ]
