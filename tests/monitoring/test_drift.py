"""Drift of a table: the automatic choice per column, overrides, and false alarms
controlled across columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from driftloop.errors import InputError
from driftloop.monitoring.drift import TableReference, adjust_p_values, detect_drift

RNG = np.random.default_rng(3)


def table(
    n: int,
    shift: float = 0.0,
    *,
    new_category: bool = False,
    rng: np.random.Generator = RNG,
) -> pa.Table:
    channel = rng.choice(["app", "pos", "web"], n, p=[0.5, 0.3, 0.2]).astype(object)
    if new_category:
        channel[: n // 10] = "kiosk"
    return pa.table(
        {
            "amount": rng.lognormal(shift, 1.0, n),
            "age": rng.integers(18, 90, n),
            "channel": pa.array(channel.tolist(), pa.string()),
            "flag": pa.array((rng.random(n) < 0.1).tolist()),
        }
    )


def test_benjamini_hochberg_and_bonferroni_equal_scipys_and_the_formula() -> None:
    p = RNG.random(30) ** 3
    np.testing.assert_allclose(
        adjust_p_values(p.tolist(), "bh"), stats.false_discovery_control(p, method="bh")
    )
    np.testing.assert_allclose(adjust_p_values(p.tolist(), "bonferroni"), np.minimum(p * 30, 1))
    assert adjust_p_values(p.tolist(), None) == p.tolist()


def test_each_column_gets_the_automatic_statistic_for_its_type_and_size() -> None:
    small = detect_drift(TableReference.fit(table(500)), table(500))
    large = detect_drift(TableReference.fit(table(5000)), table(5000))
    assert {c.column: c.statistic.name for c in small.columns} == {
        "amount": "ks",
        "age": "ks",
        "channel": "chisquare",
        "flag": "chisquare",
    }
    assert {c.column: c.statistic.name for c in large.columns} == {
        "amount": "wasserstein",
        "age": "wasserstein",
        "channel": "jensenshannon",
        "flag": "jensenshannon",
    }


def test_drift_is_found_where_it_was_injected_with_its_effect_size() -> None:
    rng = np.random.default_rng(5)
    reference = TableReference.fit(table(800, rng=rng))
    report = detect_drift(reference, table(800, shift=0.5, new_category=True, rng=rng))
    assert set(report.drifted) == {"amount", "channel"}
    amount = next(c for c in report.columns if c.column == "amount")
    assert amount.effect_size == amount.statistic.value  # KS: D
    channel = next(c for c in report.columns if c.column == "channel")
    assert channel.effect_size is not None
    assert 0 < channel.effect_size < 1  # Cramér's V
    assert report.to_dict()["share_drifted"] == 0.5


def test_overrides_by_type_and_by_column() -> None:
    reference = TableReference.fit(table(3000))
    report = detect_drift(
        reference, table(3000), by_type={"numeric": "ks"}, by_column={"channel": "psi"}
    )
    chosen = {c.column: c.statistic.name for c in report.columns}
    assert chosen == {"amount": "ks", "age": "ks", "channel": "psi", "flag": "jensenshannon"}
    with pytest.raises(InputError, match="needs a numeric column"):
        detect_drift(reference, table(100), by_column={"channel": "ks"})
    with pytest.raises(InputError, match="unknown statistic 'magic'"):
        detect_drift(reference, table(100), by_column={"amount": "magic"})  # type: ignore[dict-item]


def test_the_false_alarm_rate_across_undrifted_windows_is_near_the_level() -> None:
    """200 undrifted windows x 4 tested columns: with Bonferroni the share of windows
    with any alarm stays near 5%; without correction it is several times higher."""
    rng = np.random.default_rng(11)  # its own stream: the same windows in any test order
    reference = TableReference.fit(table(600, rng=rng))
    corrected = uncorrected = 0
    for _ in range(200):
        window = table(600, rng=rng)
        corrected += bool(detect_drift(reference, window, correction="bonferroni").drifted)
        uncorrected += bool(detect_drift(reference, window, correction=None).drifted)
    assert corrected / 200 <= 0.10
    assert uncorrected > corrected


def test_a_reference_stored_as_bytes_gives_the_same_verdicts(tmp_path: object) -> None:
    """A reference fitted at training time is stored (one Parquet blob, e.g. in the
    artifact store) and loaded later: every statistic comes out the same."""
    rng = np.random.default_rng(8)
    reference = TableReference.fit(table(2000, rng=rng))
    loaded = TableReference.from_bytes(reference.to_bytes())
    current = table(2000, shift=0.2, rng=rng)
    for statistic in ("psi", "jensenshannon"):
        a = detect_drift(reference, current, by_type={"numeric": statistic})
        b = detect_drift(loaded, current, by_type={"numeric": statistic})
        assert a.to_dict() == b.to_dict()
    assert detect_drift(reference, current).to_dict() == detect_drift(loaded, current).to_dict()
    with pytest.raises(InputError, match="not a drift reference"):
        TableReference.from_bytes(b"garbage")
