"""Feature tables to one float matrix, the same way at training and at serving."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from driftloop.errors import DefinitionError, InputError
from driftloop.training.encoding import (
    MAX_CATEGORIES,
    InputColumn,
    encode,
    fit_inputs,
    inputs_from_signature,
)

TRAIN = pa.table(
    {
        "amount": pa.array([1.5, None, 3.0], pa.float64()),
        "count": pa.array([1, 2, None], pa.int32()),
        "big": pa.array([True, False, None]),
        "channel": pa.array(["web", "pos", None]),
        "country": pa.array(["fr", "de", "fr"]).dictionary_encode(),
    }
)
COLUMNS = ["amount", "count", "big", "channel", "country"]


def test_numbers_and_bools_are_numeric_and_strings_categorical() -> None:
    """Ints, floats and bools are numeric; strings and dictionaries are categorical."""
    inputs = fit_inputs(TRAIN, COLUMNS)
    assert [(i.name, i.type) for i in inputs] == [
        ("amount", "numeric"),
        ("count", "numeric"),
        ("big", "numeric"),
        ("channel", "categorical"),
        ("country", "categorical"),
    ]
    assert inputs[1].arrow_type == "int32"


def test_categories_are_the_sorted_distinct_values_seen_in_training_without_null() -> None:
    """Categories are sorted, so the codes do not depend on the order rows came in."""
    inputs = fit_inputs(TRAIN, COLUMNS)
    assert inputs[3].categories == ("pos", "web")
    assert inputs[4].categories == ("de", "fr")
    assert fit_inputs(TRAIN.take([2, 1, 0]), COLUMNS) == inputs


def test_encode_gives_floats_with_category_codes_and_nan_for_missing() -> None:
    """Numbers as floats, bools as 0/1, categories as their index, nulls as NaN."""
    inputs = fit_inputs(TRAIN, COLUMNS)
    X = encode(TRAIN, inputs)
    assert X.dtype == np.float64
    assert X.shape == (3, 5)
    expected = [
        [1.5, 1.0, 1.0, 1.0, 1.0],
        [math.nan, 2.0, 0.0, 0.0, 0.0],
        [3.0, math.nan, math.nan, math.nan, 1.0],
    ]
    np.testing.assert_array_equal(X, np.array(expected))


def test_a_category_unseen_in_training_is_nan() -> None:
    """At serving, a value the model never saw is missing, not a new code."""
    inputs = fit_inputs(TRAIN, ["channel"])
    X = encode(pa.table({"channel": ["app", "web", "pos"]}), inputs)
    np.testing.assert_array_equal(X[:, 0], [math.nan, 1.0, 0.0])


def test_encode_selects_columns_by_name_in_the_inputs_order() -> None:
    """Extra columns are ignored and the matrix follows the inputs, not the table."""
    inputs = fit_inputs(TRAIN, ["channel", "amount"])
    table = pa.table({"other": [9], "amount": [7.0], "channel": ["web"]})
    assert encode(table, inputs).tolist() == [[1.0, 7.0]]


def test_a_string_column_with_too_many_distinct_values_is_refused_as_an_id() -> None:
    """More than MAX_CATEGORIES distinct strings looks like an identifier."""
    ids = pa.table({"user": [f"u{i}" for i in range(MAX_CATEGORIES + 1)]})
    with pytest.raises(DefinitionError, match=r"'user'.*identifier"):
        fit_inputs(ids, ["user"])
    fit_inputs(ids.slice(0, MAX_CATEGORIES), ["user"])


def test_a_timestamp_feature_is_refused() -> None:
    """A model cannot take a timestamp; the error says to derive a number."""
    table = pa.table({"seen": pa.array([datetime(2024, 1, 1, tzinfo=UTC)])})
    with pytest.raises(DefinitionError, match=r"'seen'.*timestamp.*expression"):
        fit_inputs(table, ["seen"])


def test_fitting_a_column_the_table_lacks_is_an_input_error() -> None:
    """The missing column is named."""
    with pytest.raises(InputError, match="'absent'"):
        fit_inputs(TRAIN, ["absent"])


def test_encoding_a_table_without_an_input_column_is_an_input_error() -> None:
    """Serving rows must hold every input."""
    inputs = fit_inputs(TRAIN, ["amount"])
    with pytest.raises(InputError, match="'amount' is missing"):
        encode(pa.table({"x": [1.0]}), inputs)


def test_a_numeric_input_given_strings_is_an_input_error() -> None:
    """A numeric input is not silently parsed from text."""
    inputs = fit_inputs(TRAIN, ["amount"])
    with pytest.raises(InputError, match="'amount' must be numeric"):
        encode(pa.table({"amount": ["1.5"]}), inputs)


def test_a_categorical_input_may_arrive_as_another_string_type() -> None:
    """Large strings and dictionaries are encoded like plain strings."""
    inputs = fit_inputs(TRAIN, ["channel"])
    large = pa.table({"channel": pa.array(["web", "pos"], pa.large_string())})
    coded = pa.table({"channel": pa.array(["web", "pos"]).dictionary_encode()})
    assert encode(large, inputs).tolist() == [[1.0], [0.0]]
    assert encode(coded, inputs).tolist() == [[1.0], [0.0]]


def test_the_refs_given_are_recorded_on_each_input() -> None:
    """Each input remembers the feature reference it came from."""
    inputs = fit_inputs(TRAIN, ["amount", "channel"], {"amount": "last_tx@abc:amount"})
    assert [i.ref for i in inputs] == ["last_tx@abc:amount", ""]


def test_inputs_round_trip_through_a_json_signature() -> None:
    """to_dict, JSON and inputs_from_signature give back the same inputs."""
    refs = {name: f"v@1:{name}" for name in COLUMNS}
    inputs = fit_inputs(TRAIN, COLUMNS, refs)
    signature = json.loads(json.dumps({"inputs": [i.to_dict() for i in inputs]}))
    back = inputs_from_signature(signature)
    assert back == inputs
    assert [i.arrow_type for i in back] == [i.arrow_type for i in inputs]
    np.testing.assert_array_equal(encode(TRAIN, back), encode(TRAIN, inputs))


def test_only_categorical_inputs_list_categories() -> None:
    """A numeric input's dict has no categories key."""
    numeric = InputColumn("amount", "numeric", ref="r", arrow_type="double")
    assert numeric.to_dict() == {
        "name": "amount",
        "type": "numeric",
        "ref": "r",
        "arrow_type": "double",
    }
    assert InputColumn("c", "categorical", ("a",)).to_dict()["categories"] == ["a"]


def test_a_signature_without_inputs_has_none() -> None:
    """An empty signature gives an empty input list."""
    assert inputs_from_signature({}) == []
