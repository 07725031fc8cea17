"""The feature store through a Project: training sets, materialization, online lookups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from driftloop import Aggregate, Entity, Feature, FeatureView, Project, Source
from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.errors import DefinitionError, InputError, NotFoundError, StateError

T0 = datetime(2024, 6, 1, tzinfo=UTC)
H = timedelta(hours=1)

CONTRACT = """\
event_time: event_time
columns:
  - {name: customer_id, type: string, nullable: false}
  - {name: event_time, type: timestamp, nullable: false}
  - {name: amount, type: float}
  - {name: channel, type: category}
"""

DEFINITIONS = """\
from driftloop import Aggregate, Entity, Feature, FeatureView, Source

tx = Source("tx", contract="contracts/tx.yaml")
customer = Entity("customer", keys={"customer_id": "string"})
last_tx = FeatureView(
    "last_tx", entity=customer, source=tx, ttl="2d",
    features=[Feature("amount", "float", default=-1.0),
              Feature("channel", "string", default="none"),
              Feature("big", "bool", default=False, expr="amount > 100")],
)
spend = FeatureView(
    "spend", entity=customer, source=tx,
    aggregates=[Aggregate("amount", "sum", "1d", default=0.0),
                Aggregate("amount", "count", "7d", default=0)],
)
"""


def _batch(rows: list[tuple[str, datetime, float, str]]) -> pa.Table:
    customers, times, amounts, channels = zip(*rows, strict=True)
    return pa.table(
        {
            "customer_id": list(customers),
            "event_time": pa.array(list(times), pa.timestamp("us", tz="UTC")),
            "amount": list(amounts),
            "channel": list(channels),
        }
    )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "proj"
    (root / "contracts").mkdir(parents=True)
    (root / "contracts" / "tx.yaml").write_text(CONTRACT)
    (root / "definitions.py").write_text(DEFINITIONS)
    (root / "driftloop.yaml").write_text("online:\n  url: sqlite:///.driftloop/online.db\n")
    sim = SimulatedClock(T0)
    with use_clock(sim), Project(root) as proj:
        proj.apply()
        proj.ingest(
            "tx",
            _batch(
                [
                    ("a", T0 - 30 * H, 10.0, "web"),
                    ("a", T0 - 5 * H, 200.0, "app"),
                    ("b", T0 - 3 * H, 7.0, "pos"),
                ]
            ),
        )
        sim.advance(H)
        yield proj  # type: ignore[misc]


def _entities(rows: list[tuple[str, datetime]]) -> pa.Table:
    return pa.table(
        {
            "customer_id": [r[0] for r in rows],
            "event_time": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
        }
    )


def test_a_training_set_has_each_feature_as_of_each_rows_time(project: Project) -> None:
    """Every input row comes back once, in order, with the values known at its time."""
    rows = _entities([
        ("a", T0 - 10 * H),   # sees the 10.0 row (30h before T0)
        ("a", T0),            # sees the 200.0 row
        ("b", T0 - 4 * H),    # before b's only row: defaults
        ("a", T0),            # a duplicate comes back twice
        ("zz", T0),           # unknown entity: defaults
    ])  # fmt: skip
    result = project.get_training_set(
        rows, ["last_tx:amount", "last_tx:channel", "last_tx:big", "spend:*"]
    )
    table = result.table
    assert table.column_names == [
        "customer_id", "event_time", "amount", "channel", "big",
        "amount_sum_1d", "amount_count_7d",
    ]  # fmt: skip
    assert table.column("amount").to_pylist() == [10.0, 200.0, -1.0, 200.0, -1.0]
    assert table.column("channel").to_pylist() == ["web", "app", "none", "app", "none"]
    assert table.column("big").to_pylist() == [False, True, False, True, False]
    assert table.column("amount_sum_1d").to_pylist() == [10.0, 200.0, 0.0, 200.0, 0.0]
    assert table.column("amount_count_7d").to_pylist() == [1, 2, 0, 2, 0]


def test_the_ttl_hides_values_older_than_it(project: Project) -> None:
    """Three days after a's last row, the 2-day TTL serves the default."""
    table = project.get_training_set(
        _entities([("a", T0 + 72 * H)]), ["last_tx:amount"], store=False
    ).table
    assert table.column("amount").to_pylist() == [-1.0]


def test_missing_flags_tell_defaults_from_values(project: Project) -> None:
    """With missing flags, a served default is marked as such."""
    table = project.get_training_set(
        _entities([("a", T0), ("zz", T0)]), ["last_tx:amount"], missing_flags=True
    ).table
    assert table.column("amount__missing").to_pylist() == [False, True]


def test_name_collisions_need_full_names(project: Project) -> None:
    """Two views with a feature of the same name collide unless full names are asked for."""
    other = FeatureView(
        "other_tx",
        entity=project.definitions.entities["customer"],
        source="tx",
        features=[Feature("amount", "float")],
    )
    project.apply(other)
    rows = _entities([("a", T0)])
    with pytest.raises(DefinitionError, match="full_names"):
        project.get_training_set(rows, ["last_tx:amount", "other_tx:amount"])
    table = project.get_training_set(
        rows, ["last_tx:amount", "other_tx:amount"], full_names=True
    ).table
    assert table.column("last_tx__amount").to_pylist() == [200.0]
    assert table.column("other_tx__amount").to_pylist() == [200.0]


def test_a_training_set_is_stored_with_its_lineage(project: Project) -> None:
    """The stored training set names its view versions and source dataset versions."""
    result = project.get_training_set(_entities([("a", T0)]), ["last_tx:amount"])
    stored = project.training_set(result.id[:10])
    assert stored.table.equals(result.table)
    assert stored.views == [{"name": "last_tx", "version": project.feature_view("last_tx").version}]
    assert stored.dataset_versions == {"tx": [v.id for v in project.versions("tx")]}
    again = project.get_training_set(_entities([("a", T0)]), ["last_tx:amount"])
    assert again.id == result.id


def test_a_changed_view_is_a_new_version_and_the_old_one_stays_usable(
    project: Project,
) -> None:
    """After a definition change, name@old_version still computes the old features."""
    old = project.feature_view("last_tx")
    changed = FeatureView(
        "last_tx",
        entity=old.entity,
        source="tx",
        ttl="2d",
        features=[Feature("amount", "float", default=-1.0, expr="amount * 2")],
    )
    applied = project.apply(changed)
    assert applied.views[0].new
    assert project.feature_view("last_tx").version == changed.version != old.version
    rows = _entities([("a", T0)])
    assert project.get_training_set(rows, ["last_tx:amount"]).table.column(
        "amount"
    ).to_pylist() == [400.0]
    assert project.get_training_set(rows, [f"last_tx@{old.version}:amount"]).table.column(
        "amount"
    ).to_pylist() == [200.0]
    versions = project.feature_views("last_tx")
    assert [v.current for v in versions] == [False, True]


def test_bad_requests_name_what_is_wrong(project: Project) -> None:
    """Unknown views and features, missing keys and naive timestamps are clear errors."""
    rows = _entities([("a", T0)])
    with pytest.raises(NotFoundError, match="unknown feature view 'nope'"):
        project.get_training_set(rows, ["nope:x"])
    with pytest.raises(NotFoundError, match="unknown feature of view 'last_tx' 'nope'"):
        project.get_training_set(rows, ["last_tx:nope"])
    with pytest.raises(DefinitionError, match="not of the form"):
        project.get_training_set(rows, ["last_tx"])
    with pytest.raises(InputError, match="no column 'customer_id'"):
        project.get_training_set(rows.rename_columns(["who", "event_time"]), ["last_tx:amount"])
    naive = pa.table({"customer_id": ["a"], "event_time": pa.array([datetime(2024, 1, 1)])})
    with pytest.raises(InputError, match="without a timezone"):
        project.get_training_set(naive, ["last_tx:amount"])
    with pytest.raises(InputError, match="no timestamp column 'when'"):
        project.get_training_set(rows, ["last_tx:amount"], timestamp_column="when")


def test_materialized_online_values_equal_offline_values(project: Project) -> None:
    """Online values after materializing at T equal the offline point-in-time values at T."""
    until = T0 + H
    project.materialize(until=until)
    keys = pa.table({"customer_id": ["a", "b", "zz"]})
    features = ["last_tx:amount", "last_tx:channel", "last_tx:big", "spend:*"]
    online = project.get_online_features(keys, features)
    offline = project.get_training_set(
        _entities([("a", until), ("b", until), ("zz", until)]), features, store=False
    ).table
    for name in ["amount", "channel", "big", "amount_sum_1d", "amount_count_7d"]:
        assert online.column(name).to_pylist() == offline.column(name).to_pylist(), name
    assert online.column("last_tx__found").to_pylist() == [True, True, False]


def test_online_values_carry_their_age_and_expire_with_the_ttl(project: Project) -> None:
    """A value's age is now minus its event time; past the TTL the default is served."""
    project.materialize(until=T0 + H)
    keys = pa.table({"customer_id": ["a"]})
    sim = SimulatedClock(T0 + H)
    with use_clock(sim):
        fresh = project.get_online_features(keys, ["last_tx:amount"])
        assert fresh.column("amount").to_pylist() == [200.0]
        assert fresh.column("last_tx__age_s").to_pylist() == [6 * 3600.0]
        assert fresh.column("last_tx__stale").to_pylist() == [False]
        sim.advance(timedelta(days=3))
        old = project.get_online_features(keys, ["last_tx:amount"])
        assert old.column("amount").to_pylist() == [-1.0]
        assert old.column("last_tx__stale").to_pylist() == [True]


def test_materialization_is_incremental_and_picks_up_late_rows(project: Project) -> None:
    """A second run writes only changed entities, including a late row for an old time."""
    first = project.materialize(views=["last_tx"], until=T0 + H)
    assert first[0].entities == 2
    assert first[0].previous_watermark is None
    sim = SimulatedClock(T0 + 2 * H)
    with use_clock(sim):
        # a late-arriving row: it happened before the watermark, it is known only now
        project.ingest("tx", _batch([("c", T0 - 2 * H, 55.0, "web")]))
        second = project.materialize(views=["last_tx"], until=T0 + 2 * H)
    assert second[0].previous_watermark == T0 + H
    assert second[0].entities == 1
    keys = pa.table({"customer_id": ["a", "c"]})
    with use_clock(SimulatedClock(T0 + 2 * H)):
        online = project.get_online_features(keys, ["last_tx:amount"])
    assert online.column("amount").to_pylist() == [200.0, 55.0]


def test_windowed_aggregates_slide_between_materializations(project: Project) -> None:
    """An entity whose rows leave the window gets its value updated, not left stale."""
    project.materialize(views=["spend"], until=T0 + H)
    later = T0 + 2 * timedelta(days=1)
    project.materialize(views=["spend"], until=later)
    with use_clock(SimulatedClock(later)):
        online = project.get_online_features(pa.table({"customer_id": ["a"]}), ["spend:*"])
    assert online.column("amount_sum_1d").to_pylist() == [0.0]
    assert online.column("amount_count_7d").to_pylist() == [2]


def test_a_view_over_an_unknown_source_fails_at_use(project: Project) -> None:
    """A view whose source was never registered is reported when its features are asked."""
    ghost = FeatureView(
        "ghost",
        entity=Entity("customer", keys={"customer_id": "string"}),
        source=Source("ghost_src", contract="contracts/tx.yaml"),
        features=[Feature("amount", "float")],
    )
    project.apply(ghost)
    with pytest.raises(NotFoundError, match="ghost_src"):
        project.get_training_set(_entities([("a", T0)]), ["ghost:amount"])


def test_an_entity_cannot_change_its_keys(project: Project) -> None:
    """Changing an entity's join keys is refused: views built on it would break."""
    changed = Entity("customer", keys={"customer_id": "int"})
    view = FeatureView("v2", entity=changed, source="tx", features=[Feature("amount", "float")])
    with pytest.raises(StateError, match="cannot change"):
        project.apply(view)


def test_aggregates_and_features_cannot_share_a_view() -> None:
    """A view is either latest values or windowed aggregates."""
    customer = Entity("customer", keys={"customer_id": "string"})
    with pytest.raises(DefinitionError, match="either features or aggregates"):
        FeatureView(
            "bad",
            entity=customer,
            source="tx",
            features=[Feature("x", "float")],
            aggregates=[Aggregate("x", "sum", "1d")],
        )


WORKED_CONTRACT = """\
event_time: event_time
columns:
  - {name: customer_id, type: string, nullable: false}
  - {name: event_time, type: timestamp, nullable: false}
  - {name: known_at, type: timestamp, nullable: false}
  - {name: amount, type: float}
"""


def test_the_worked_example_of_the_features_guide_holds(tmp_path: Path) -> None:
    """docs/features.md's worked example: known-at, ties, TTL, exactly as the table says."""
    root = tmp_path / "worked"
    root.mkdir()
    (root / "tx.yaml").write_text(WORKED_CONTRACT)
    (root / "driftloop.yaml").write_text("name: worked\n")
    day = lambda d, h, m=0: datetime(2024, 6, d, h, m, tzinfo=UTC)  # noqa: E731
    source = Source("tx", contract=str(root / "tx.yaml"))
    view = FeatureView(
        "last_tx",
        entity=Entity("customer", keys={"customer_id": "string"}),
        source=source,
        ttl="2d",
        created_time="known_at",
        features=[Feature("amount", "float")],
    )
    with use_clock(SimulatedClock(day(6, 0))), Project(root) as project:
        project.apply(source, view)
        project.ingest(
            "tx",
            pa.table(
                {
                    "customer_id": ["a", "a", "a"],
                    "event_time": pa.array(
                        [day(1, 9), day(2, 12), day(2, 12)], pa.timestamp("us", "UTC")
                    ),
                    "known_at": pa.array(
                        [day(1, 9, 5), day(2, 12, 1), day(4, 8)], pa.timestamp("us", "UTC")
                    ),
                    "amount": [10.0, 20.0, 25.0],
                }
            ),
        )
        times = [day(1, 9), day(1, 10), day(3, 0), day(4, 9), day(5, 13)]
        table = project.get_training_set(
            pa.table(
                {"customer_id": ["a"] * 5, "event_time": pa.array(times, pa.timestamp("us", "UTC"))}
            ),
            ["last_tx:amount"],
            store=False,
        ).table
    assert table.column("amount").to_pylist() == [None, 10.0, 20.0, 25.0, None]


def test_an_aggregate_may_count_the_join_key_itself(project: Project) -> None:
    """Counting the key column works like counting any column."""
    counted = FeatureView(
        "tx_count",
        entity=project.definitions.entities["customer"],
        source="tx",
        aggregates=[Aggregate("customer_id", "count", "7d", default=0)],
    )
    project.apply(counted)
    table = project.get_training_set(
        _entities([("a", T0), ("zz", T0)]), ["tx_count:*"], store=False
    ).table
    assert table.column("customer_id_count_7d").to_pylist() == [2, 0]


def _doubled(table: pa.Table) -> pa.Table:
    """A Python transformation: amounts in cents."""
    import pyarrow.compute as pc

    return table.set_column(
        table.column_names.index("amount"), "amount", pc.multiply(table.column("amount"), 100)
    )


def test_a_python_transform_runs_before_features_are_taken(project: Project) -> None:
    """A view's transform sees the source's rows; its output feeds the features."""
    cents = FeatureView(
        "cents",
        entity=project.definitions.entities["customer"],
        source="tx",
        transform=_doubled,
        features=[Feature("amount", "float")],
    )
    project.apply(cents)
    table = project.get_training_set(_entities([("a", T0)]), ["cents:amount"], store=False).table
    assert table.column("amount").to_pylist() == [20000.0]
    assert "transform" in cents.to_dict()


def test_features_read_sources_on_any_artifact_filesystem(tmp_path: Path) -> None:
    """With artifacts on memory://, training sets read the Parquet blobs through pyarrow."""
    import uuid

    root = tmp_path / "mem"
    (root / "contracts").mkdir(parents=True)
    (root / "contracts" / "tx.yaml").write_text(CONTRACT)
    (root / "definitions.py").write_text(DEFINITIONS)
    (root / "driftloop.yaml").write_text(
        f"artifacts:\n  uri: memory://{uuid.uuid4().hex}/a\nonline:\n  url: memory://\n"
    )
    with use_clock(SimulatedClock(T0)), Project(root) as project:
        project.apply()
        project.ingest("tx", _batch([("a", T0 - 5 * H, 200.0, "app")]))
        assert project.artifacts.local_path(project.versions("tx")[0].id) is None
        table = project.get_training_set(
            _entities([("a", T0)]), ["last_tx:amount", "spend:*"]
        ).table
        assert table.column("amount").to_pylist() == [200.0]
        assert table.column("amount_sum_1d").to_pylist() == [200.0]
        project.materialize(until=T0)
        online = project.get_online_features(pa.table({"customer_id": ["a"]}), ["last_tx:amount"])
        assert online.column("amount").to_pylist() == [200.0]
