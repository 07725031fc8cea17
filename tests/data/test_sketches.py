"""The sketches inside profiles: formats that stored profiles depend on."""

from __future__ import annotations

import hashlib

import pyarrow as pa

from driftloop.data._sketches import HLL_REGISTERS, hll_estimate, hll_registers, merge_hll


def test_the_string_hash_behind_distinct_counts_never_changes() -> None:
    """HyperLogLog registers of fixed strings are pinned: stored format-1 profiles merge with
    new ones only while the hash stays the same."""
    values = pa.array([f"value-{i}" for i in range(1000)], pa.large_string())
    registers = hll_registers(values)
    assert len(registers) == HLL_REGISTERS
    assert hashlib.sha256(registers).hexdigest() == PINNED


def test_merged_registers_estimate_the_union() -> None:
    """The register-wise maximum of two halves estimates the distinct count of the whole."""
    a = hll_registers(pa.array([f"v{i}" for i in range(6000)], pa.large_string()))
    b = hll_registers(pa.array([f"v{i}" for i in range(4000, 10000)], pa.large_string()))
    estimate = hll_estimate(merge_hll([a, b]))
    assert abs(estimate - 10000) / 10000 < 0.05


PINNED = "4e9381742dcbdbd9df461d95f04c468f652d9dbceca4a15ca9217bdb5426a284"
