"""Retraining triggers: each fires on its evidence and not below it, combined with
any/all, suppressed by a run in progress, the cooldown or the daily budget; schedules
fire once per cron tick across restarts; fired and suppressed firings are recorded.

The store's state is built through the real APIs in simulated time: model versions
registered and made champion by hand, monitoring windows recorded with
:func:`~driftloop.monitoring.series.record_window`, batches ingested into a project's
source, training runs started and finished.
"""

from __future__ import annotations

import doctest
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import driftloop
from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.core.metadata import MetadataStore
from driftloop.errors import DefinitionError, NotFoundError, StateError
from driftloop.loop import triggers
from driftloop.loop.triggers import (
    Age,
    AllOf,
    AnyOf,
    Decay,
    Drift,
    Firing,
    NewData,
    Quality,
    RetrainPolicy,
    RunHistory,
    Schedule,
    attach_run,
    evaluate,
    get_firing,
    list_firings,
    record,
)
from driftloop.monitoring.series import MetricValue, record_window
from driftloop.project import Project
from driftloop.registry import models as registry
from driftloop.training import runs
from driftloop.training.spec import Label, ModelSpec

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MODEL = "fraud"
DIGEST = "0" * 64
IDLE = RunHistory()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    """A metadata store on SQLite."""
    store = MetadataStore.open(f"sqlite:///{tmp_path / 'metadata.db'}")
    yield store
    store.close()


@pytest.fixture
def any_store(metadata_url: str) -> Iterator[MetadataStore]:
    """A metadata store on SQLite, then on PostgreSQL."""
    store = MetadataStore.open(metadata_url)
    yield store
    store.close()


def champion(store: MetadataStore, at: datetime, **metrics: float) -> int:
    """Register a version of the model at ``at`` and make it champion."""
    with use_clock(SimulatedClock(at)):
        version = registry.register_version(
            store, MODEL, artifact_digest=DIGEST, flavor="sklearn", who="test", metrics=metrics
        )
        registry.set_alias(store, MODEL, "champion", version.version, who="test")
    return version.version


def window(store: MetadataStore, end: datetime, version: int | None, *metrics: MetricValue) -> int:
    """Record a daily monitoring window ending at ``end``, served by ``version``."""
    with use_clock(SimulatedClock(end)):
        return record_window(
            store,
            model=MODEL,
            against="reference",
            start=end - DAY,
            end=end,
            rows=1000,
            version=version,
            reference={"version": version},
            metrics=list(metrics),
        ).id


def share(value: float) -> MetricValue:
    return MetricValue("drift.share", value, details={"drifted": ["feature.amount"], "columns": 4})


def auc(value: float, version: int, labelled: int = 500) -> MetricValue:
    return MetricValue(
        "performance.roc_auc", value, version=version, details={"labelled": labelled}
    )


def check(
    store: MetadataStore,
    when: Any,
    now: datetime,
    history: RunHistory = IDLE,
    **policy: Any,
) -> Firing:
    return evaluate(store, RetrainPolicy(MODEL, when=when, **policy), now=now, history=history)


def trigger_evidence(firing: Firing) -> dict[str, Any]:
    when: dict[str, Any] = firing.evidence["when"]
    return when


# --- declarations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declare", "names"),
    [
        (lambda: Schedule("61 * * * *"), "cron"),
        (lambda: Schedule("every day"), "cron"),
        (lambda: Schedule(timezone="Mars/Olympus"), "timezone"),
        (lambda: NewData(rows=0), "rows"),
        (lambda: NewData(rows=10, versions=1), "rows or versions"),
        (lambda: NewData(source=""), "source"),
        (Drift, "share or column"),
        (lambda: Drift(share=1.5), "share"),
        (lambda: Drift(share=0.3, statistic_above=0.1), "statistic_above"),
        (lambda: Drift(column="amount", windows=0), "windows"),
        (Quality, "above"),
        (lambda: Quality("drift.share", above=0.1), "metric"),
        (lambda: Decay("roc_auc"), "below, above or drop"),
        (lambda: Decay(drop=-0.1), "drop"),
        (lambda: Decay(below=0.7, relative=True), "relative"),
        (lambda: Decay("cost", drop=1.0), "greater_is_better"),
        (lambda: Decay(below=0.7, min_labelled=0), "min_labelled"),
        (lambda: Age("soon"), "max_age"),
        (lambda: Age("0s"), "max_age"),
        (AnyOf, "at least one trigger"),
        (lambda: AnyOf(Drift), "the class Drift"),
        (lambda: AllOf(Age(), "drift"), "'drift' is not a trigger"),
        (lambda: RetrainPolicy("fraud", when=Age(), cooldown="soon"), "'fraud': cooldown"),
        (lambda: RetrainPolicy("fraud", when=Age(), max_runs_per_day=0), "max_runs_per_day"),
        (lambda: RetrainPolicy("fraud", when=Age(), max_training_time="0s"), "max_training_time"),
        (lambda: RetrainPolicy("fraud", when=[Age()]), "'fraud': when"),  # type: ignore[arg-type]
        (lambda: RetrainPolicy("no such model!", when=Age()), "model"),
    ],
)
def test_a_bad_declaration_is_a_definition_error_naming_the_field(declare: Any, names: str) -> None:
    """Every field is checked when the trigger or policy is declared; the message names
    the trigger (or the policy's model) and the field."""
    with pytest.raises(DefinitionError, match=re.escape(names)):
        declare()


def test_a_policy_carries_its_limits_for_the_controller() -> None:
    """A policy names its model from a name or a spec and gives the cooldown and the
    training time limit as durations."""
    policy = RetrainPolicy(
        MODEL, when=AnyOf(Age("30d"), Drift(share=0.3)), cooldown="2h", max_training_time="1h"
    )
    assert policy.name == MODEL
    assert policy.cooldown_length == 2 * HOUR
    assert policy.max_training_seconds == 3600.0
    assert policy.to_dict()["when"] == {
        "trigger": "any_of",
        "of": [
            {"trigger": "age", "max_age": "30d"},
            {
                "trigger": "drift",
                "share": 0.3,
                "column": None,
                "statistic_above": None,
                "windows": 1,
            },
        ],
    }


def test_the_triggers_and_the_policy_are_exported_at_the_top() -> None:
    """A definitions module imports them from ``driftloop``."""
    for name in ("RetrainPolicy", "Schedule", "NewData", "Drift", "Quality", "Decay", "Age"):
        assert getattr(driftloop, name) is getattr(triggers, name)
    assert driftloop.AnyOf is AnyOf
    assert driftloop.AllOf is AllOf


def test_the_module_examples_run() -> None:
    """The examples in the module docstring pass."""
    result = doctest.testmod(triggers, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# --- discovery ------------------------------------------------------------------------

CONTRACT = """\
event_time: event_time
primary_key: [tx_id]
columns:
  - {name: tx_id, type: string, nullable: false}
  - {name: event_time, type: timestamp, nullable: false}
  - {name: amount, type: float}
"""

DEFINITIONS = """\
from driftloop import AnyOf, Drift, NewData, RetrainPolicy, Schedule, Source

tx = Source("tx", contract="contracts/tx.yaml")
policy = RetrainPolicy(
    "fraud", when=AnyOf(Schedule("0 3 * * *"), NewData(rows=10, source="tx")), cooldown="1h"
)
"""


def _project(root: Path, definitions: str) -> Project:
    (root / "contracts").mkdir(parents=True)
    (root / "driftloop.yaml").write_text("name: test\n")
    (root / "contracts" / "tx.yaml").write_text(CONTRACT)
    (root / "definitions.py").write_text(definitions)
    return Project(root)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """A project with one source ``tx`` and a retrain policy for ``fraud``."""
    with use_clock(SimulatedClock(T0 - 10 * DAY)), _project(tmp_path / "p", DEFINITIONS) as p:
        p.apply()
        yield p


def test_a_policy_in_the_definitions_module_is_found_by_model(project: Project) -> None:
    """RetrainPolicy objects are discovered as monitors are, keyed by their model."""
    policy = project.definitions.policies[MODEL]
    assert isinstance(policy.when, AnyOf)
    assert policy.cooldown_length == HOUR


def test_two_policies_for_one_model_are_a_definition_error(tmp_path: Path) -> None:
    """A model has one retraining policy."""
    twice = DEFINITIONS + 'other = RetrainPolicy("fraud", when=Drift(share=0.5))\n'
    with _project(tmp_path / "p", twice) as p, pytest.raises(DefinitionError, match="twice"):
        _ = p.definitions


# --- new data -------------------------------------------------------------------------


def ingest(project: Project, at: datetime, rows: int, first: int) -> str:
    """Ingest ``rows`` new rows into ``tx`` at ``at``; the new version's id."""
    table = pa.table(
        {
            "tx_id": [f"tx_{first + i}" for i in range(rows)],
            "event_time": pa.array([at - HOUR] * rows, pa.timestamp("us", tz="UTC")),
            "amount": [float(i) for i in range(rows)],
        }
    )
    with use_clock(SimulatedClock(at)):
        return project.ingest("tx", table).id


def trained(project: Project, at: datetime, versions: list[str]) -> str:
    """A succeeded training run of the model started at ``at`` that read ``versions``."""
    spec = {"label": {"source": "tx"}, "features": []}
    with use_clock(SimulatedClock(at)):
        run_id = runs.start_run(
            project.store, model=MODEL, spec=spec, spec_version="s", code_version={}, who="t"
        )
        runs.finish_run(
            project.store,
            run_id,
            training_set_id=None,
            views=[],
            dataset_versions={"tx": versions},
            split={},
            metrics={},
            library_versions={},
            fit_seconds=1.0,
            total_seconds=1.0,
            peak_memory_mb=1.0,
            artifact_digest=DIGEST,
            flavor="sklearn",
            signature={},
            evaluation={},
        )
    return run_id


def test_new_data_fires_on_rows_ingested_since_the_last_training(project: Project) -> None:
    """Rows of the model's sources not in its last training set count; once they reach
    ``rows`` the trigger fires, below it does not."""
    old = ingest(project, T0 - 5 * DAY, 30, 0)
    run_id = trained(project, T0 - 4 * DAY, [old])
    ingest(project, T0 - 2 * DAY, 6, 100)
    quiet = check(project.store, NewData(rows=10), T0)
    assert quiet.outcome == "quiet"
    assert trigger_evidence(quiet)["rows"] == 6
    ingest(project, T0 - DAY, 4, 200)
    fired = check(project.store, NewData(rows=10), T0)
    assert fired.outcome == "fired"
    evidence = trigger_evidence(fired)
    assert evidence["rows"] == 10
    assert evidence["threshold"] == 10
    assert evidence["since"]["what"] == f"training run {run_id}"
    assert evidence["sources"] == {"tx": {"versions": 2, "rows": 10}}


def test_new_data_counts_dataset_versions_and_only_those_known_by_now(project: Project) -> None:
    """``versions`` counts new dataset versions; a batch ingested after ``now`` (a
    backtest's future) is not seen."""
    old = ingest(project, T0 - 5 * DAY, 5, 0)
    trained(project, T0 - 4 * DAY, [old])
    ingest(project, T0 - DAY, 5, 100)
    ingest(project, T0 + DAY, 5, 200)
    assert check(project.store, NewData(versions=2), T0).outcome == "quiet"
    assert check(project.store, NewData(versions=1), T0).outcome == "fired"
    assert check(project.store, NewData(versions=2), T0 + 2 * DAY).outcome == "fired"


def test_new_data_without_a_training_counts_every_row_of_the_named_source(
    project: Project,
) -> None:
    """A model never trained has seen nothing: every batch of its source is new."""
    ingest(project, T0 - DAY, 12, 0)
    firing = check(project.store, NewData(rows=10, source="tx"), T0)
    assert firing.outcome == "fired"
    assert trigger_evidence(firing)["since"] is None


def test_new_data_finds_the_sources_from_the_models_spec(project: Project) -> None:
    """Without ``source``, the label source of the spec recorded by the last training run
    is read: a batch ingested after that run is new data."""
    trained(project, T0 - 4 * DAY, [])
    ingest(project, T0 - DAY, 3, 0)
    firing = check(project.store, NewData(), T0)
    assert firing.outcome == "fired"
    assert trigger_evidence(firing)["sources"] == {"tx": {"versions": 1, "rows": 3}}


def test_new_data_reads_the_label_source_of_the_policys_spec(project: Project) -> None:
    """A policy declared with the model's spec knows its sources before any training."""
    spec = ModelSpec(
        MODEL, task="binary", features=["spend:total"], label=Label("tx", "amount", "customer")
    )
    ingest(project, T0 - DAY, 3, 0)
    policy = RetrainPolicy(spec, when=NewData())
    firing = evaluate(project.store, policy, now=T0, history=IDLE)
    assert firing.outcome == "fired"
    assert trigger_evidence(firing)["sources"] == {"tx": {"versions": 1, "rows": 3}}


# --- drift, quality, decay, age ---------------------------------------------------------


def test_drift_fires_when_the_share_of_drifted_features_reaches_the_threshold(
    store: MetadataStore,
) -> None:
    """The latest window the champion served decides, with its figures as evidence."""
    v = champion(store, T0 - 10 * DAY)
    window(store, T0 - DAY, v, share(0.2))
    assert check(store, Drift(share=0.3), T0).outcome == "quiet"
    latest = window(store, T0, v, share(0.4))
    firing = check(store, Drift(share=0.3), T0)
    assert firing.outcome == "fired"
    evidence = trigger_evidence(firing)
    assert evidence["trigger"] == "drift"
    assert evidence["value"] == 0.4
    assert evidence["threshold"] == 0.3
    assert evidence["window"]["id"] == latest
    assert evidence["drifted"] == ["feature.amount"]


def test_drift_over_several_windows_needs_each_of_them(store: MetadataStore) -> None:
    """``windows=2`` fires only when the latest two windows both drifted."""
    v = champion(store, T0 - 10 * DAY)
    window(store, T0 - DAY, v, share(0.1))
    window(store, T0, v, share(0.5))
    assert check(store, Drift(share=0.3, windows=2), T0).outcome == "quiet"
    window(store, T0 + DAY, v, share(0.6))
    firing = check(store, Drift(share=0.3, windows=2), T0 + DAY)
    assert firing.outcome == "fired"
    assert [s["value"] for s in trigger_evidence(firing)["series"]] == [0.5, 0.6]


def test_drift_of_a_named_column_or_its_statistic(store: MetadataStore) -> None:
    """A column drifted by its test, or its drift statistic above a bound."""
    v = champion(store, T0 - 10 * DAY)
    details = {"statistic": "ks", "p_value": 0.001, "drifted": True}
    window(
        store,
        T0,
        v,
        MetricValue("drift.detected", 1.0, "feature.amount"),
        MetricValue("drift.value", 0.25, "feature.amount", details=details),
        MetricValue("drift.detected", 0.0, "feature.channel"),
    )
    assert check(store, Drift(column="amount"), T0).outcome == "fired"
    assert check(store, Drift(column="feature.channel"), T0).outcome == "quiet"
    above = check(store, Drift(column="amount", statistic_above=0.2), T0)
    assert above.outcome == "fired"
    assert trigger_evidence(above)["statistic"] == "ks"
    assert check(store, Drift(column="amount", statistic_above=0.3), T0).outcome == "quiet"


def test_windows_of_a_former_champion_or_after_now_are_not_evidence(store: MetadataStore) -> None:
    """A new champion is judged on the traffic it served, and a backtest does not see
    windows that end after its simulated now."""
    old = champion(store, T0 - 10 * DAY)
    window(store, T0 - DAY, old, share(0.9))
    new = champion(store, T0 - HOUR)
    firing = check(store, Drift(share=0.3), T0)
    assert firing.outcome == "quiet"
    assert trigger_evidence(firing)["summary"] == "no monitoring window with drift.share yet"
    window(store, T0 + DAY, new, share(0.9))
    assert check(store, Drift(share=0.3), T0).outcome == "quiet"
    assert check(store, Drift(share=0.3), T0 + DAY).outcome == "fired"


def test_quality_fires_when_its_figure_is_above_the_bound(store: MetadataStore) -> None:
    """The share of inputs that fell back to defaults, for the window or one column."""
    v = champion(store, T0 - 10 * DAY)
    window(
        store,
        T0,
        v,
        MetricValue("quality.missing_rate", 0.05),
        MetricValue("quality.null_rate", 0.3, "feature.amount"),
    )
    assert check(store, Quality(above=0.1), T0).outcome == "quiet"
    assert check(store, Quality(above=0.01), T0).outcome == "fired"
    null_rate = Quality("quality.null_rate", "amount", above=0.2)
    firing = check(store, null_rate, T0)
    assert firing.outcome == "fired"
    assert trigger_evidence(firing)["column"] == "feature.amount"


def test_decay_below_an_absolute_bound(store: MetadataStore) -> None:
    """The champion's live metric on labelled traffic below ``below`` fires."""
    v = champion(store, T0 - 10 * DAY, roc_auc=0.9)
    window(store, T0, v, auc(0.75, v))
    assert check(store, Decay("roc_auc", below=0.7), T0).outcome == "quiet"
    window(store, T0 + DAY, v, auc(0.65, v))
    firing = check(store, Decay("roc_auc", below=0.7), T0 + DAY)
    assert firing.outcome == "fired"
    assert trigger_evidence(firing)["labelled"] == 500


def test_decay_relative_to_the_champions_offline_reference(store: MetadataStore) -> None:
    """A drop from the version's registered metric, in its units or as a fraction."""
    v = champion(store, T0 - 10 * DAY, roc_auc=0.9)
    window(store, T0, v, auc(0.87, v))
    assert check(store, Decay(drop=0.05), T0).outcome == "quiet"
    window(store, T0 + DAY, v, auc(0.84, v))
    firing = check(store, Decay(drop=0.05), T0 + DAY)
    assert firing.outcome == "fired"
    evidence = trigger_evidence(firing)
    assert evidence["reference"] == 0.9
    assert evidence["worse_by"] == pytest.approx(0.06)
    assert check(store, Decay(drop=0.07, relative=True), T0 + DAY).outcome == "quiet"
    assert check(store, Decay(drop=0.06, relative=True), T0 + DAY).outcome == "fired"


def test_decay_of_a_metric_where_lower_is_better_is_a_rise(store: MetadataStore) -> None:
    """log_loss decays upwards: a rise of ``drop`` fires, a fall never does."""
    v = champion(store, T0 - 10 * DAY, log_loss=0.30)
    loss = MetricValue("performance.log_loss", 0.40, version=v, details={"labelled": 500})
    window(store, T0, v, loss)
    assert check(store, Decay("log_loss", drop=0.05), T0).outcome == "fired"
    better = MetricValue("performance.log_loss", 0.20, version=v, details={"labelled": 500})
    window(store, T0 + DAY, v, better)
    assert check(store, Decay("log_loss", drop=0.05), T0 + DAY).outcome == "quiet"


def test_decay_skips_windows_with_too_few_labels(store: MetadataStore) -> None:
    """A window whose labels have not arrived yet is not evidence: the latest window with
    ``min_labelled`` labelled predictions decides."""
    v = champion(store, T0 - 10 * DAY, roc_auc=0.9)
    good = window(store, T0 - DAY, v, auc(0.88, v, labelled=400))
    window(store, T0, v, auc(0.5, v, labelled=20))
    firing = check(store, Decay(below=0.7, min_labelled=100), T0)
    assert firing.outcome == "quiet"
    assert trigger_evidence(firing)["window"]["id"] == good
    assert check(store, Decay(below=0.7, min_labelled=10), T0).outcome == "fired"


def test_decay_reads_the_champions_figure_in_a_window_a_canary_served(
    store: MetadataStore,
) -> None:
    """Performance is per version: the champion's figure counts whoever served most."""
    v = champion(store, T0 - 10 * DAY, roc_auc=0.9)
    canary = v + 1
    with use_clock(SimulatedClock(T0 - DAY)):
        registry.register_version(store, MODEL, artifact_digest=DIGEST, flavor="sklearn", who="t")
    window(store, T0, canary, auc(0.6, v), auc(0.95, canary))
    firing = check(store, Decay(below=0.7), T0)
    assert firing.outcome == "fired"
    assert trigger_evidence(firing)["value"] == 0.6


def test_age_fires_once_the_champion_is_old_enough(store: MetadataStore) -> None:
    """The champion's age is counted from when its version was registered."""
    assert trigger_evidence(check(store, Age("30d"), T0))["summary"] == (
        "model 'fraud' has no champion"
    )
    champion(store, T0 - 30 * DAY)
    assert check(store, Age("30d"), T0 - HOUR).outcome == "quiet"
    firing = check(store, Age("30d"), T0)
    assert firing.outcome == "fired"
    assert trigger_evidence(firing)["age"] == "30d"


# --- combinators ----------------------------------------------------------------------


def test_any_of_fires_when_one_fires_and_keeps_every_verdict(store: MetadataStore) -> None:
    """Each trigger is evaluated, so the evidence shows what fired and what did not."""
    v = champion(store, T0 - 40 * DAY)
    window(store, T0, v, share(0.1))
    firing = check(store, AnyOf(Drift(share=0.3), Age("30d")), T0)
    assert firing.outcome == "fired"
    evidence = trigger_evidence(firing)
    assert [(c["trigger"], c["fired"]) for c in evidence["checks"]] == [
        ("drift", False),
        ("age", True),
    ]
    assert firing.reason.startswith("age: champion fraud/1 is 40d old")


def test_all_of_fires_only_when_every_trigger_fires(store: MetadataStore) -> None:
    """AllOf(Drift, Age) waits for both; nesting works."""
    v = champion(store, T0 - 40 * DAY)
    window(store, T0, v, share(0.1))
    both = AllOf(Drift(share=0.3), Age("30d"))
    assert check(store, both, T0).outcome == "quiet"
    window(store, T0 + DAY, v, share(0.5))
    assert check(store, both, T0 + DAY).outcome == "fired"
    nested = AnyOf(AllOf(Drift(share=0.9), Age("30d")), Age("60d"))
    assert check(store, nested, T0 + DAY).outcome == "quiet"


# --- suppression ----------------------------------------------------------------------


def test_the_cooldown_suppresses_a_firing_and_says_until_when(store: MetadataStore) -> None:
    """Within ``cooldown`` of the last run's start a firing is suppressed; after, it fires."""
    champion(store, T0 - 40 * DAY)
    history = RunHistory(last_start=T0 - 2 * HOUR, started_last_24h=1)
    firing = check(store, Age("30d"), T0, history, cooldown="6h")
    assert firing.outcome == "suppressed"
    until = T0 + 4 * HOUR
    assert firing.reason.startswith(f"cooldown until {until.isoformat()}")
    assert firing.evidence["suppressed_by"][0]["until"] == until.isoformat()
    assert trigger_evidence(firing)["fired"] is True
    assert check(store, Age("30d"), until, history, cooldown="6h").outcome == "fired"


def test_the_daily_budget_suppresses_a_firing(store: MetadataStore) -> None:
    """``max_runs_per_day`` runs started in the last 24 hours suppress the next one."""
    champion(store, T0 - 40 * DAY)
    spent = RunHistory(last_start=T0 - 7 * HOUR, started_last_24h=3)
    firing = check(store, Age("30d"), T0, spent, max_runs_per_day=3)
    assert firing.outcome == "suppressed"
    assert firing.reason == "budget of 3 runs per day reached (3 started in the last 24 h)"
    left = RunHistory(last_start=T0 - 7 * HOUR, started_last_24h=2)
    assert check(store, Age("30d"), T0, left, max_runs_per_day=3).outcome == "fired"


def test_a_run_in_progress_suppresses_a_firing(store: MetadataStore) -> None:
    """No second run starts while one is in progress, whatever the cooldown."""
    champion(store, T0 - 40 * DAY)
    busy = RunHistory(last_start=T0 - DAY, started_last_24h=0, running="prun_1")
    firing = check(store, Age("30d"), T0, busy, cooldown="0s")
    assert firing.outcome == "suppressed"
    assert firing.reason == "a run is already in progress (prun_1)"


def test_nothing_is_suppressed_when_nothing_fires(store: MetadataStore) -> None:
    """A quiet evaluation in the cooldown is quiet."""
    busy = RunHistory(last_start=T0 - HOUR, started_last_24h=5, running="prun_1")
    firing = check(store, Age("30d"), T0, busy, max_runs_per_day=1)
    assert firing.outcome == "quiet"
    assert firing.reason == "no trigger fired"


# --- schedules ------------------------------------------------------------------------


def test_a_schedule_fires_once_per_tick_and_not_again_after_a_restart(tmp_path: Path) -> None:
    """The tick at or before now fires; once recorded, a controller restarted on the same
    store does not fire it again; the next tick fires."""
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    daily = Schedule("0 3 * * *")
    tick = T0.replace(hour=3)
    first = MetadataStore.open(url)
    firing = check(first, daily, tick)
    assert firing.outcome == "fired"
    assert trigger_evidence(firing)["tick"] == tick.isoformat()
    record(first, firing)
    first.close()
    restarted = MetadataStore.open(url)
    try:
        assert check(restarted, daily, tick + 5 * HOUR).outcome == "quiet"
        assert check(restarted, daily, tick + DAY - timedelta(seconds=1)).outcome == "quiet"
        following = check(restarted, daily, tick + DAY)
        assert following.outcome == "fired"
        assert trigger_evidence(following)["last_fired"] == tick.isoformat()
    finally:
        restarted.close()


def test_missed_ticks_fire_once(store: MetadataStore) -> None:
    """Ticks missed while the controller was down fire once, at the next evaluation."""
    daily = Schedule("0 3 * * *")
    record(store, check(store, daily, T0.replace(hour=3)))
    later = T0 + 3 * DAY
    firing = check(store, daily, later)
    assert firing.outcome == "fired"
    assert trigger_evidence(firing)["tick"] == later.replace(hour=3).isoformat()
    record(store, firing)
    assert check(store, daily, later + HOUR).outcome == "quiet"


def test_a_suppressed_tick_fires_once_the_cooldown_is_over(store: MetadataStore) -> None:
    """Suppression does not use up a tick: it fires when the cooldown ends."""
    daily = Schedule("0 3 * * *")
    tick = T0.replace(hour=3)
    history = RunHistory(last_start=tick - HOUR, started_last_24h=1)
    suppressed = check(store, daily, tick, history, cooldown="6h")
    assert suppressed.outcome == "suppressed"
    record(store, suppressed)
    assert check(store, daily, tick + 5 * HOUR, history, cooldown="6h").outcome == "fired"


def test_a_training_after_the_tick_uses_it_up(project: Project) -> None:
    """A model trained (by hand or by another trigger's run) since the tick is fresh."""
    tick = T0.replace(hour=3)
    trained(project, tick + HOUR, [])
    assert check(project.store, Schedule("0 3 * * *"), tick + 2 * HOUR).outcome == "quiet"


def test_a_schedule_reads_its_cron_in_its_timezone(store: MetadataStore) -> None:
    """03:00 in Paris is 02:00 UTC in March (before the summer time switch)."""
    paris = Schedule("0 3 * * *", timezone="Europe/Paris")
    firing = check(store, paris, T0)
    assert trigger_evidence(firing)["tick"] == T0.replace(hour=2).isoformat()
    assert trigger_evidence(firing)["next"] == (T0 + DAY).replace(hour=2).isoformat()


# --- recording ------------------------------------------------------------------------


def _fired(store: MetadataStore, at: datetime) -> Firing:
    return check(store, Schedule("* * * * *"), at)


def test_fired_and_suppressed_firings_are_recorded_with_their_evidence(
    any_store: MetadataStore,
) -> None:
    """``record`` keeps the outcome, reason and evidence; ``list_firings`` returns the
    newest first and filters by model and outcome."""
    fired = _fired(any_store, T0)
    fired_id = record(any_store, fired)
    busy = RunHistory(last_start=T0, started_last_24h=1, running="prun_1")
    suppressed = check(any_store, Schedule("* * * * *"), T0 + HOUR, busy)
    suppressed_id = record(any_store, suppressed)
    assert [f.id for f in list_firings(any_store)] == [suppressed_id, fired_id]
    assert [f.id for f in list_firings(any_store, MODEL, outcome="fired")] == [fired_id]
    assert list_firings(any_store, "other") == []
    assert len(list_firings(any_store, limit=1)) == 1
    stored = get_firing(any_store, fired_id)
    assert stored.outcome == "fired"
    assert stored.at == T0
    assert stored.reason == fired.reason
    assert stored.evidence == fired.evidence
    assert get_firing(any_store, suppressed_id).reason == ("a run is already in progress (prun_1)")


def test_a_quiet_evaluation_is_not_recorded(any_store: MetadataStore) -> None:
    """Quiet evaluations would fill the table: recording one is a StateError."""
    quiet = check(any_store, Age("30d"), T0)
    with pytest.raises(StateError, match="quiet"):
        record(any_store, quiet)
    assert list_firings(any_store) == []


def test_a_repeated_suppression_is_recorded_once(any_store: MetadataStore) -> None:
    """Polling during one cooldown writes one row; a new reason writes another."""
    history = RunHistory(last_start=T0, started_last_24h=1)
    policy = {"cooldown": "6h"}
    first = record(any_store, check(any_store, Schedule("* * * * *"), T0 + HOUR, history, **policy))
    again = check(any_store, Schedule("* * * * *"), T0 + 2 * HOUR, history, **policy)
    assert record(any_store, again) == first
    busy = RunHistory(last_start=T0, started_last_24h=1, running="prun_2")
    other = check(any_store, Schedule("* * * * *"), T0 + 3 * HOUR, busy, **policy)
    assert record(any_store, other) != first
    assert len(list_firings(any_store)) == 2


def test_a_fired_firing_names_the_run_it_started_once(any_store: MetadataStore) -> None:
    """``attach_run`` sets the run id once; the same run again is a no-op, another run,
    a suppressed firing or an unknown id are errors."""
    firing_id = record(any_store, _fired(any_store, T0))
    attach_run(any_store, firing_id, "prun_1")
    attach_run(any_store, firing_id, "prun_1")
    assert get_firing(any_store, firing_id).run_id == "prun_1"
    with pytest.raises(StateError, match="already started run prun_1"):
        attach_run(any_store, firing_id, "prun_2")
    busy = RunHistory(running="prun_1")
    suppressed_id = record(any_store, check(any_store, Schedule("* * * * *"), T0 + HOUR, busy))
    with pytest.raises(StateError, match="only a fired one"):
        attach_run(any_store, suppressed_id, "prun_3")
    with pytest.raises(NotFoundError):
        attach_run(any_store, 10_000, "prun_4")


# --- docs -----------------------------------------------------------------------------


def _docs_blocks() -> list[str]:
    """The Python examples of the Triggers section (docs/loop.md once merged)."""
    merged = ROOT / "docs" / "loop.md"
    text = merged.read_text() if merged.exists() else ""
    if "## Triggers" in text:
        section = text.split("## Triggers", 1)[1]
        section = section.split("\n## ", 1)[0]
    else:
        section = (ROOT / "docs" / "_triggers_section.md").read_text()
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def test_the_docs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Triggers section's examples run as written."""
    monkeypatch.chdir(tmp_path)
    blocks = _docs_blocks()
    assert blocks
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    for block in blocks:
        exec(compile(block, "<docs>", "exec"), namespace)
    assert namespace["firing"].outcome == "fired"
