"""From a model spec to a fitted model: label rows, time split, targets, fit, signature.

Every test builds a real project in a temporary folder: a ``tx`` source feeding the
``last_tx`` feature view, and an ``outcomes`` source holding the labels. Outcome row
``i`` is customer ``CUSTOMERS[i % 4]`` at ``START + i hours``; the customer's latest
transaction just before it has ``amount == i``, so the ``amount`` feature of a training
row tells which outcome row it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from driftloop import Project
from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.errors import DefinitionError, InputError
from driftloop.evaluation.metrics import compute_metrics
from driftloop.features.store import load_training_set
from driftloop.training.predict import predict
from driftloop.training.spec import Label, ModelSpec, TimeSplit
from driftloop.training.train import fit, label_rows, prepare, signature

START = datetime(2024, 6, 1, tzinfo=UTC)
H = timedelta(hours=1)
NOW = START + 48 * H
"""The clock when the outcomes are ingested; every outcome row is older."""
CUSTOMERS = ["a", "b", "c", "d"]
CHANNELS = ["web", "app", "pos"]
ROWS = 40

TX_CONTRACT = """\
event_time: event_time
columns:
  - {name: customer_id, type: string, nullable: false}
  - {name: event_time, type: timestamp, nullable: false}
  - {name: amount, type: float}
  - {name: channel, type: category}
"""

OUTCOMES_CONTRACT = """\
event_time: event_time
columns:
  - {name: customer_id, type: string, nullable: false}
  - {name: event_time, type: timestamp, nullable: false}
  - {name: known_at, type: timestamp}
  - {name: fraud, type: bool}
  - {name: flag, type: int}
  - {name: grade, type: int}
  - {name: kind, type: string}
  - {name: value, type: float}
  - {name: region, type: string}
"""

DEFINITIONS = """\
from driftloop import Entity, Feature, FeatureView, Source

tx = Source("tx", contract="contracts/tx.yaml")
outcomes = Source("outcomes", contract="contracts/outcomes.yaml")
customer = Entity("customer", keys={"customer_id": "string"})
last_tx = FeatureView(
    "last_tx", entity=customer, source=tx,
    features=[Feature("amount", "float", default=-1.0),
              Feature("channel", "string", default="none")],
)
"""

FEATURES = ["last_tx:amount", "last_tx:channel"]
TS = pa.timestamp("us", tz="UTC")


@dataclass
class World:
    project: Project
    clock: SimulatedClock

    def outcomes(self, n: int = ROWS, order: list[int] | None = None, **columns: Any) -> None:
        """Ingest ``n`` hourly outcome rows (in ``order``) with the given label columns."""
        body: dict[str, Any] = {
            "customer_id": [CUSTOMERS[i % 4] for i in range(n)],
            "event_time": pa.array([START + i * H for i in range(n)], TS),
            "known_at": pa.nulls(n, TS),
            "fraud": [i % 3 == 0 for i in range(n)],
            "flag": [i % 2 for i in range(n)],
            "grade": [i % 3 for i in range(n)],
            "kind": [CHANNELS[i % 3] for i in range(n)],
            "value": [1.5 * i for i in range(n)],
            "region": ["north" if i % 2 else "south" for i in range(n)],
        }
        for name, values in columns.items():
            body[name] = pa.array(values, TS) if name == "known_at" else values
        table = pa.table(body)
        if order is not None:
            table = table.take(order)
        self.project.ingest("outcomes", table)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    root = tmp_path / "proj"
    (root / "contracts").mkdir(parents=True)
    (root / "contracts" / "tx.yaml").write_text(TX_CONTRACT)
    (root / "contracts" / "outcomes.yaml").write_text(OUTCOMES_CONTRACT)
    (root / "definitions.py").write_text(DEFINITIONS)
    (root / "driftloop.yaml").write_text("online:\n  url: sqlite:///.driftloop/online.db\n")
    sim = SimulatedClock(NOW)
    with use_clock(sim), Project(root) as project:
        project.apply()
        project.ingest(
            "tx",
            pa.table(
                {
                    "customer_id": [CUSTOMERS[i % 4] for i in range(ROWS)],
                    "event_time": pa.array([START + i * H - H / 2 for i in range(ROWS)], TS),
                    "amount": [float(i) for i in range(ROWS)],
                    "channel": [CHANNELS[i % 3] for i in range(ROWS)],
                }
            ),
        )
        yield World(project, sim)


def spec(
    column: str = "fraud",
    *,
    task: str = "binary",
    split: TimeSplit | None = None,
    **label: Any,
) -> ModelSpec:
    return ModelSpec(
        "m",
        task=task,
        features=FEATURES,
        label=Label("outcomes", column, entity="customer", **label),
        split=split or TimeSplit(fraction=0.25),
        trainer="hist_gradient_boosting",
        params={"max_iter": 5},
    )


def amounts(X: np.ndarray) -> list[int]:
    """The outcome row each encoded row came from (the ``amount`` feature)."""
    return [int(v) for v in X[:, 0]]


# -- label rows -------------------------------------------------------------------------


def test_label_rows_are_those_whose_label_is_known_after_the_delay_oldest_first(
    world: World,
) -> None:
    """With known_after=12h, a row is usable once 12 hours have passed since its time;
    rows come back sorted by time however they were ingested."""
    world.outcomes(order=list(reversed(range(ROWS))))
    rows, left_out = label_rows(
        world.project._features(), spec(known_after="12h"), as_of=NOW, extra=[]
    )
    # row i is known at START + (i + 12)h <= NOW = START + 48h for i <= 36
    assert rows.column("event_time").to_pylist() == [START + i * H for i in range(37)]
    assert left_out == 3


def test_label_rows_see_only_the_batches_ingested_by_as_of(world: World) -> None:
    """Outcomes ingested after as_of were not known then, whatever their timestamps."""
    world.outcomes()
    rows, left_out = label_rows(world.project._features(), spec(), as_of=NOW - H, extra=[])
    assert (rows.num_rows, left_out) == (0, 0)


def test_label_rows_are_known_at_the_time_of_the_known_at_column(world: World) -> None:
    """With known_at, each row's own known time decides; a row without one is never known."""
    known: list[datetime | None] = [START + (i + 5) * H for i in range(ROWS)]
    known[3] = None
    known[39] = NOW + H
    world.outcomes(known_at=known)
    rows, left_out = label_rows(
        world.project._features(), spec(known_at="known_at"), as_of=NOW, extra=["region"]
    )
    hours = [int((t - START) / H) for t in rows.column("event_time").to_pylist()]
    assert hours == [i for i in range(ROWS) if i not in (3, 39)]
    assert left_out == 2
    assert rows.column_names[:4] == ["customer_id", "event_time", "fraud", "region"]
    assert "known_at" in rows.column_names


def test_label_rows_with_a_known_at_later_than_as_of_are_left_out(world: World) -> None:
    """A known_at after as_of hides the row even though its timestamp is old."""
    known = [START + i * H for i in range(ROWS)]
    known[0] = NOW + 10 * H
    world.outcomes(known_at=known)
    world.clock.advance(20 * H)
    ctx = world.project._features()
    rows, left_out = label_rows(ctx, spec(known_at="known_at"), as_of=NOW + H, extra=[])
    assert (rows.num_rows, left_out) == (ROWS - 1, 1)
    rows, left_out = label_rows(ctx, spec(known_at="known_at"), as_of=NOW + 10 * H, extra=[])
    assert (rows.num_rows, left_out) == (ROWS, 0)


def test_label_rows_with_a_missing_label_are_left_out_and_counted(world: World) -> None:
    """A null label is no training example."""
    world.outcomes(fraud=[None if i in (4, 9) else i % 3 == 0 for i in range(ROWS)])
    rows, left_out = label_rows(world.project._features(), spec(), as_of=NOW, extra=[])
    assert rows.num_rows == ROWS - 2
    assert left_out == 2
    assert None not in rows.column("fraud").to_pylist()


def test_a_label_column_the_source_lacks_is_a_definition_error(world: World) -> None:
    """The error names the model, the source and the missing column."""
    world.outcomes()
    with pytest.raises(DefinitionError, match=r"'m'.*'outcomes'.*'nope'"):
        label_rows(world.project._features(), spec("nope"), as_of=NOW, extra=[])


def test_a_label_timestamp_that_is_not_a_timestamp_is_a_definition_error(world: World) -> None:
    """The prediction time must be a timestamp column."""
    world.outcomes()
    with pytest.raises(DefinitionError, match=r"'region'.*not a timestamp"):
        label_rows(world.project._features(), spec(timestamp="region"), as_of=NOW, extra=[])


# -- the time split -----------------------------------------------------------------------


def test_validation_is_the_most_recent_fraction_and_training_what_came_before(
    world: World,
) -> None:
    """fraction=0.25 of 40 hourly rows: the last 10 validate, the first 30 train, in order."""
    world.outcomes()
    prepared = prepare(world.project._features(), spec(), as_of=NOW)
    assert amounts(prepared.X_train) == list(range(30))
    assert amounts(prepared.X_valid) == list(range(30, 40))
    assert prepared.valid.column("event_time").to_pylist() == [START + i * H for i in range(30, 40)]
    assert prepared.split["train"]["rows"] == 30
    assert prepared.split["validation"]["rows"] == 10
    assert prepared.split["unused"] == 0
    assert datetime.fromisoformat(prepared.split["cutoff"]) == START + 30 * H


def test_validation_is_the_most_recent_window_and_training_what_came_before(
    world: World,
) -> None:
    """A 10h window ending at the newest row validates on rows 30..39 and trains on all
    the rows before it: none is lost at the cutoff."""
    world.outcomes()
    prepared = prepare(
        world.project._features(), spec(split=TimeSplit(validation="10h")), as_of=NOW
    )
    assert amounts(prepared.X_valid) == list(range(30, 40))
    assert amounts(prepared.X_train) == list(range(30))
    assert prepared.split["unused"] == 0
    assert prepared.split["rule"] == {"validation": "10h", "fraction": None, "gap": "0s"}


def test_a_gap_before_the_window_is_used_for_neither(world: World) -> None:
    """A 5h gap before a 10h window leaves the 5 hourly rows in it out of both parts."""
    world.outcomes()
    prepared = prepare(
        world.project._features(),
        spec(split=TimeSplit(validation="10h", gap="5h")),
        as_of=NOW,
    )
    assert amounts(prepared.X_valid) == list(range(30, 40))
    assert amounts(prepared.X_train) == list(range(25))
    assert prepared.split["unused"] == 5


def test_a_gap_also_applies_to_a_fractional_split(world: World) -> None:
    """With a fraction, the gap is the span just before the first validation row."""
    world.outcomes()
    prepared = prepare(
        world.project._features(), spec(split=TimeSplit(fraction=0.25, gap="3h")), as_of=NOW
    )
    assert amounts(prepared.X_valid) == list(range(30, 40))
    assert amounts(prepared.X_train) == list(range(27))


def test_training_rows_need_their_label_known_by_the_cutoff(world: World) -> None:
    """With a 3h label delay, rows 28 and 29 were not known when validation starts."""
    world.outcomes()
    prepared = prepare(world.project._features(), spec(known_after="3h"), as_of=NOW)
    assert amounts(prepared.X_train) == list(range(28))
    assert amounts(prepared.X_valid) == list(range(30, 40))
    assert prepared.split["unused"] == 2


def test_the_split_is_by_time_never_random(world: World) -> None:
    """Rows ingested in shuffled order still split on time, the same way every time."""
    order = [int(i) for i in np.random.default_rng(3).permutation(ROWS)]
    world.outcomes(order=order)
    ctx = world.project._features()
    first = prepare(ctx, spec(), as_of=NOW)
    again = prepare(ctx, spec(), as_of=NOW)
    assert amounts(first.X_train) == list(range(30))
    assert np.array_equal(first.X_valid, again.X_valid)
    train_end = max(first.training_set.table.column("event_time").to_pylist()[:30])
    assert train_end < min(first.valid.column("event_time").to_pylist())


def test_the_training_set_is_stored_with_its_lineage(world: World) -> None:
    """prepare stores the point-in-time training set; it can be loaded back by id."""
    world.outcomes()
    ctx = world.project._features()
    prepared = prepare(ctx, spec(), as_of=NOW)
    assert prepared.training_set.id is not None
    stored = load_training_set(ctx, prepared.training_set.id)
    assert stored.table.num_rows == ROWS
    assert stored.table.column("amount").to_pylist() == [float(i) for i in range(ROWS)]
    assert [v["name"] for v in prepared.training_set.views] == ["last_tx"]
    assert set(stored.dataset_versions) == {"tx"}


def test_the_split_records_as_of_and_the_rows_left_out(world: World) -> None:
    """The split says when it was taken and how many label rows were not usable."""
    world.outcomes(fraud=[None if i == 0 else i % 3 == 0 for i in range(ROWS)])
    prepared = prepare(world.project._features(), spec(), as_of=NOW)
    assert prepared.split["as_of"] == NOW.isoformat()
    assert prepared.split["label_rows_left_out"] == 1


def test_no_known_labels_is_an_input_error(world: World) -> None:
    """Before the outcomes were ingested there is nothing to train on."""
    world.outcomes()
    with pytest.raises(InputError, match="no labelled rows"):
        prepare(world.project._features(), spec(), as_of=NOW - H)


def test_too_few_rows_for_the_split_is_an_input_error(world: World) -> None:
    """A single row cannot be split into a training and a validation part."""
    world.outcomes(n=1)
    with pytest.raises(InputError, match="0 training and 1 validation rows out of 1"):
        prepare(world.project._features(), spec(), as_of=NOW)


def test_a_window_longer_than_the_data_leaves_no_training_rows(world: World) -> None:
    """A window covering every row is refused rather than trained on nothing."""
    world.outcomes()
    with pytest.raises(InputError, match="0 training"):
        prepare(world.project._features(), spec(split=TimeSplit(validation="7d")), as_of=NOW)


# -- targets -------------------------------------------------------------------------------


def test_a_bool_label_is_a_binary_target(world: World) -> None:
    """True is class 1 and False class 0."""
    world.outcomes()
    prepared = prepare(world.project._features(), spec("fraud"), as_of=NOW)
    assert prepared.classes == [False, True]
    assert prepared.y_train.tolist() == [float(i % 3 == 0) for i in range(30)]


def test_a_zero_one_int_label_is_a_binary_target(world: World) -> None:
    """0 and 1 are taken as they are."""
    world.outcomes()
    prepared = prepare(world.project._features(), spec("flag"), as_of=NOW)
    assert prepared.classes == [0, 1]
    assert prepared.y_valid.tolist() == [float(i % 2) for i in range(30, 40)]


def test_label_positive_names_the_value_meaning_class_one(world: World) -> None:
    """Label(positive="app") makes "app" class 1 and everything else class 0."""
    world.outcomes()
    prepared = prepare(world.project._features(), spec("kind", positive="app"), as_of=NOW)
    assert prepared.y_train.tolist() == [float(CHANNELS[i % 3] == "app") for i in range(30)]
    assert prepared.classes is not None
    assert prepared.classes[1] == "app"


def test_a_binary_label_of_other_ints_is_refused(world: World) -> None:
    """Ints other than 0 and 1 need Label(positive=...)."""
    world.outcomes()
    with pytest.raises(DefinitionError, match=r"'grade'.*\[0, 1, 2\].*positive"):
        prepare(world.project._features(), spec("grade"), as_of=NOW)


def test_a_binary_label_of_strings_is_refused_without_positive(world: World) -> None:
    """A string label has no natural class 1."""
    world.outcomes()
    with pytest.raises(DefinitionError, match="positive"):
        prepare(world.project._features(), spec("kind"), as_of=NOW)


def test_a_classifier_needs_both_classes_in_training(world: World) -> None:
    """Training rows that are all negative are refused."""
    world.outcomes(flag=[int(i >= 30) for i in range(ROWS)])
    with pytest.raises(InputError, match="single class"):
        prepare(world.project._features(), spec("flag"), as_of=NOW)


def test_multiclass_classes_are_sorted_and_coded_by_their_index(world: World) -> None:
    """Classes app < pos < web are coded 0, 1, 2."""
    world.outcomes()
    prepared = prepare(world.project._features(), spec("kind", task="multiclass"), as_of=NOW)
    assert prepared.classes == ["app", "pos", "web"]
    codes = {"app": 0.0, "pos": 1.0, "web": 2.0}
    assert prepared.y_train.tolist() == [codes[CHANNELS[i % 3]] for i in range(30)]


def test_multiclass_int_classes_are_sorted_numerically(world: World) -> None:
    """Int classes keep their values, in numeric order."""
    world.outcomes(grade=[[10, 2, 7][i % 3] for i in range(ROWS)])
    prepared = prepare(world.project._features(), spec("grade", task="multiclass"), as_of=NOW)
    assert prepared.classes == [2, 7, 10]


def test_multiclass_validation_rows_with_a_class_unseen_in_training_are_dropped(
    world: World,
) -> None:
    """A class first seen in validation cannot be predicted: its rows are counted and left
    out, and the classes are those the model is trained on, coded 0..k-1."""
    kinds = ["a" if i % 2 else "c" for i in range(30)] + ["b", "a", "b", "c", "a"] * 2
    world.outcomes(kind=kinds)
    prepared = prepare(world.project._features(), spec("kind", task="multiclass"), as_of=NOW)
    assert prepared.split["validation_rows_with_unseen_class"] == 4
    assert prepared.classes == ["a", "c"]
    assert sorted(set(prepared.y_train.tolist())) == [0.0, 1.0]
    assert prepared.y_valid.tolist() == [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    assert prepared.valid.column("kind").to_pylist() == ["a", "c", "a", "a", "c", "a"]
    assert len(prepared.X_valid) == len(prepared.y_valid) == prepared.valid.num_rows


def test_multiclass_needs_two_classes(world: World) -> None:
    """One class is no classification."""
    world.outcomes(kind=["x"] * ROWS)
    with pytest.raises(InputError, match="1 class"):
        prepare(world.project._features(), spec("kind", task="multiclass"), as_of=NOW)


def test_a_regression_target_is_the_numeric_label(world: World) -> None:
    """Floats (or ints) are taken as the values to predict."""
    world.outcomes()
    prepared = prepare(world.project._features(), spec("value", task="regression"), as_of=NOW)
    assert prepared.y_train.tolist() == [1.5 * i for i in range(30)]
    assert prepared.classes is None


def test_a_regression_label_must_be_numeric(world: World) -> None:
    """A string label cannot be regressed on."""
    world.outcomes()
    with pytest.raises(DefinitionError, match="not numeric"):
        prepare(world.project._features(), spec("kind", task="regression"), as_of=NOW)


# -- inputs, fit and signature ------------------------------------------------------------


def test_inputs_are_the_features_with_categories_learnt_from_training_rows(world: World) -> None:
    """amount is numeric, channel categorical with the sorted channels; refs are pinned."""
    world.outcomes()
    prepared = prepare(world.project._features(), spec(), as_of=NOW)
    amount, channel = prepared.inputs
    assert (amount.name, amount.type) == ("amount", "numeric")
    assert (channel.name, channel.type, channel.categories) == (
        "channel",
        "categorical",
        ("app", "pos", "web"),
    )
    assert amount.ref.startswith("last_tx@")
    assert amount.ref.endswith(":amount")
    assert prepared.keys == ["customer_id"]


def test_slice_columns_of_the_label_source_come_with_the_validation_rows(world: World) -> None:
    """A slice naming a label-source column is carried into the validation table."""
    world.outcomes()
    base = spec()
    sliced = ModelSpec(
        base.name, task=base.task, features=FEATURES, label=base.label, split=base.split,
        slices=["region", "channel"],
    )  # fmt: skip
    prepared = prepare(world.project._features(), sliced, as_of=NOW)
    assert prepared.valid.column("region").to_pylist() == [
        "north" if i % 2 else "south" for i in range(30, 40)
    ]
    assert [i.name for i in prepared.inputs] == ["amount", "channel"]


def test_fit_trains_the_spec_trainer_in_a_child_and_it_predicts_the_validation_rows(
    world: World,
) -> None:
    """HistGradientBoosting learns which inputs are categories and gives one score a row."""
    world.outcomes()
    binary = spec()
    prepared = prepare(world.project._features(), binary, as_of=NOW)
    result = fit(binary, prepared)
    assert result.flavor == "sklearn"
    model: Any = result.model
    assert model.categorical_features == [False, True]
    scores = predict(model, prepared.X_valid, "binary")
    assert scores.shape == (10,)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_a_multiclass_model_scores_every_class_it_was_trained_on(world: World) -> None:
    """With a class only in validation, the model's columns match the classes and the
    validation rows can be scored."""
    kinds = ["a" if i % 2 else "c" for i in range(30)] + ["b", "a", "b", "c", "a"] * 2
    world.outcomes(kind=kinds)
    multi = spec("kind", task="multiclass")
    prepared = prepare(world.project._features(), multi, as_of=NOW)
    result = fit(multi, prepared)
    scores = predict(result.model, prepared.X_valid, "multiclass")
    assert prepared.classes is not None
    assert scores.shape == (len(prepared.y_valid), len(prepared.classes))
    metrics = compute_metrics("multiclass", prepared.y_valid, scores)
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_the_signature_names_inputs_features_keys_and_output(world: World) -> None:
    """A binary signature carries its classes and threshold."""
    world.outcomes()
    binary = spec()
    prepared = prepare(world.project._features(), binary, as_of=NOW)
    sig = signature(binary, prepared)
    assert [i["name"] for i in sig["inputs"]] == ["amount", "channel"]
    assert sig["inputs"][1]["categories"] == ["app", "pos", "web"]
    assert sig["features"] == [i.ref for i in prepared.inputs]
    assert sig["entity_keys"] == ["customer_id"]
    assert sig["output"] == {
        "task": "binary",
        "prediction": "probability of the positive class",
        "classes": [False, True],
        "threshold": 0.5,
    }


def test_regression_and_multiclass_signatures_describe_their_output(world: World) -> None:
    """A regressor gives a value; a multiclass model a probability per class."""
    world.outcomes()
    ctx = world.project._features()
    reg = spec("value", task="regression")
    assert signature(reg, prepare(ctx, reg, as_of=NOW))["output"] == {
        "task": "regression",
        "prediction": "value",
    }
    multi = spec("kind", task="multiclass")
    assert signature(multi, prepare(ctx, multi, as_of=NOW))["output"] == {
        "task": "multiclass",
        "prediction": "probability of each class",
        "classes": ["app", "pos", "web"],
    }
