"""Windowed aggregates, point-in-time correct, computed by DuckDB.

For an entity row with keys k at time t and an ``Aggregate(column c, function f,
window w)``, the rows aggregated are the source rows that

- have the same join keys (a NULL key, on either side, matches nothing),
- have an event time in ``[t - w, t)``: an event at exactly ``t - w`` counts, an event
  at ``t`` does not, so a label recorded at t can never leak into its own features,
- were known at t, ``__created <= t``, when the view has a ``created_time`` column and
  ``known_at_only`` is true (a row with a NULL created time is then never known).
  Without a created-time column a row counts from its event time on, whatever its
  batch's ingestion time: replays see what the source says happened.

Over those rows' non-NULL values of c: ``count`` is how many, ``sum``, ``mean``,
``min`` and ``max`` are the usual ones, ``last`` is the value of the row with the
greatest ``(__event, __created, __batch)`` (a NULL created or batch time ranks below
any time; rows tying on all three may give any of their values). When the window holds
no non-NULL value the result is NULL for every function, ``count`` included: the
caller serves the aggregate's declared default. The view's ``ttl`` does not apply to
aggregates: the window is the aggregate's own bound on age.

Results are typed as ``Aggregate.arrow_type``: ``sum`` and ``mean`` are computed in
that type (DOUBLE by default, exact BIGINT for an ``int`` sum); ``min``, ``max`` and
``last`` are computed on the column and cast to it. Times are compared as integer
microseconds since the epoch, so a ``1d`` window is 86,400 s whatever the session's
time zone and its daylight-saving changes. The result is sorted by ``__row`` and is
the only thing materialised outside DuckDB: pairs, sorts and groups stay in DuckDB,
within its memory limit, spilling to its temp directory.

Three plans
-----------

*Markers* (``plan="window"``). The entity rows are appended to the source rows of
their keys as markers without values; the union is sorted once per key by time, and
each aggregate is a window function with the frame
``RANGE BETWEEN w PRECEDING AND 1 PRECEDING`` (microseconds), kept only at the
markers. Every aggregate of the view is one window expression over that one sort; the
frames are evaluated with DuckDB's segment trees, so the cost is
O((n_source + n_entity) log n) whatever the number of rows per key, and the sort
spills to disk when it must. It cannot express the known-at rule: a row visible at t
must satisfy two independent inequalities (``event`` in the window and
``created <= t``), not one sliding frame.

*Range join* (``plan="join"``). Each entity row is joined to the source rows of its
keys with ``t - W <= event < t`` (W the widest window) and, when known-at applies,
``created <= t``; then ``GROUP BY __row`` with one ``FILTER (WHERE age <= w)`` per
aggregate. DuckDB runs it as a hash join on the keys with the time conditions as a
residual filter, so its cost is the number of candidate pairs. (An IEJoin, forced with
``prefer_range_joins``, ranges over every key's rows before testing the key: it had not
finished the benchmark below after ten minutes.) Alone that is quadratic in the rows of
a key (every entity row meets the key's whole history); so both sides also carry a time
bucket ``time // W`` and each entity row is matched to its bucket and the one before: a
window of width <= W spans at most two buckets, so an entity row's candidates are the
rows of its key within about 2W before it. A key with many rows inside one window
still costs entity rows x window rows: that is the price of the known-at rule, paid in
DuckDB (which spills), never in Python.

*Running totals* (``plan="prefix"``), for views whose aggregates are all counts, sums
and means. Per key, in time order, running totals of each column's count and exact
sum (HUGEINT: integers as they are, floats scaled as below; NaN and infinities counted
apart); a window ``[t - w, t)`` is the totals at the last source time before t minus
those at the last time before t - w, each found by an ASOF join. Integer differences
are exact, so the results are the other plans' to the bit, and the cost is a sort and
a merge per window width whatever the rows per key. Like the markers it cannot express
the known-at rule.

``plan="auto"`` takes the join when the known-at rule applies (the only correct plan).
Otherwise it counts, per key and bucket, the join's candidate pairs (one aggregation
of each side: 0.02-0.05 s on the benchmark below) and takes the join when they are at
most 40 per input row, the markers beyond; for a view of counts, sums and means, the
join up to 30 pairs per row and the running totals beyond (with 500 rows per key:
totals 0.82 s, markers 2.24 s, join 3.37 s). Measured with ``bench/feature_aggregates.py``
(1,000,000 source rows and 1,000,000 entity rows over 30 days, sum/count/mean over 1d
and 7d and max over 28d, DuckDB with 2 threads): with 10 rows per key the join takes
0.37 s and the markers 0.91 s (a window function costs ~0.1 s per expression and
frame there, a probe of the hash join far less); with 100 rows per key both take
1.25 s; with 500 rows per key the join takes 5.3 s and the markers 1.8 s. Both plans
drop source rows outside ``[min t - W, max t)`` and rows of keys absent from the entity
rows first.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import duckdb
import pyarrow as pa

from driftloop.errors import DefinitionError
from driftloop.features.definitions import DUCK_TYPES, Aggregate, FeatureView
from driftloop.features.sourcedata import quote

__all__ = ["Plan", "window_aggregates"]

Plan = Literal["auto", "window", "join", "prefix"]
"""How :func:`window_aggregates` computes: see the module docstring."""

_NUMERIC = (
    "tinyint",
    "smallint",
    "integer",
    "bigint",
    "hugeint",
    "utinyint",
    "usmallint",
    "uinteger",
    "ubigint",
    "uhugeint",
    "float",
    "double",
    "decimal",
)
_TEMPORAL = (
    "date",
    "timestamp",
    "timestamp with time zone",
    "timestamp_s",
    "timestamp_ms",
    "timestamp_ns",
)
# The order of ``last``; a NULL created or batch time ranks below any time.
_OLDEST = "(-4611686018427387904)::BIGINT"
_ORDER = (
    "struct_pack(e := epoch_us(__event), "
    f"c := coalesce(epoch_us(__created), {_OLDEST}), b := coalesce(epoch_us(__batch), {_OLDEST}))"
)
# Candidate pairs per input row up to which the join beats the markers: the crossover
# measured by bench/feature_aggregates.py (see the module docstring).
_JOIN_PAIRS_PER_ROW = 40
# The same against the running totals, whose cost does not grow with the rows per key.
_JOIN_PAIRS_PER_ROW_TOTALS = 30


@dataclass(frozen=True)
class _Agg:
    """One requested aggregate with the SQL names it is computed under."""

    aggregate: Aggregate
    value: str  # the aggregated column, renamed in the query
    micros: int  # the window in microseconds
    exponent: int = 0  # float sums: values are summed exactly as integers of 2**-exponent
    integral: bool = False  # the column holds integers (or booleans): sums are exact as is

    @property
    def name(self) -> str:
        return self.aggregate.feature_name

    @property
    def target(self) -> str:
        return DUCK_TYPES[str(self.aggregate.type)]


def window_aggregates(
    con: duckdb.DuckDBPyConnection,
    entity: str,
    source: str,
    view: FeatureView,
    features: Sequence[str],
    *,
    plan: Plan = "auto",
) -> pa.Table:
    """Each entity row's windowed aggregates, point-in-time correct (see the module doc).

    ``entity`` names a relation with ``__row`` (0..n-1, each once), the entity's join
    keys and ``__ts`` (TIMESTAMPTZ); ``source`` is the name returned by
    :func:`~driftloop.features.sourcedata.register_view_source` for ``features``, which
    are aggregate feature names of ``view``. Returns one row per entity row, sorted by
    ``__row``: ``__row`` then each feature, typed as its ``Aggregate.arrow_type``, NULL
    when its window holds no value. ``plan`` picks the query plan; ``"auto"`` is right
    unless you are measuring.

    >>> import duckdb, pyarrow as pa
    >>> from datetime import datetime, UTC
    >>> from driftloop.features.definitions import Aggregate, Entity, FeatureView
    >>> from driftloop.features.sourcedata import SourceBatch, ViewData, register_view_source
    >>> view = FeatureView("spend", entity=Entity("customer", keys={"id": "int"}),
    ...                    source="tx", aggregates=[Aggregate("amount", "sum", "1d")])
    >>> day = lambda d: datetime(2024, 1, d, tzinfo=UTC)
    >>> tx = pa.table({"id": [1, 1, 1], "at": [day(1), day(2), day(3)], "amount": [1., 2., 4.]})
    >>> data = ViewData(view, "at", [SourceBatch("v1", day(9), table=tx)], tx.schema)
    >>> con = duckdb.connect()
    >>> source = register_view_source(con, data, "tx", ["amount_sum_1d"])
    >>> rows = pa.table({"__row": [0, 1], "id": [1, 1], "__ts": [day(2), day(4)]})
    >>> _ = con.register("rows", rows)
    >>> window_aggregates(con, "rows", source, view, ["amount_sum_1d"]).to_pylist()
    [{'__row': 0, 'amount_sum_1d': 1.0}, {'__row': 1, 'amount_sum_1d': 4.0}]
    """
    aggs = _requested(view, features)
    known_at = view.created_time is not None and view.known_at_only
    if plan not in ("auto", "window", "join", "prefix"):
        raise ValueError(f"plan must be 'auto', 'window', 'join' or 'prefix', not {plan!r}")
    if plan in ("window", "prefix") and known_at:
        raise DefinitionError(
            f"feature view {view.name!r}: the {plan} plan cannot apply the known-at rule "
            "(created_time with known_at_only); use plan='join' or 'auto'"
        )
    entity, source = _quoted(entity), _quoted(source)
    integral = _check_types(con, source, view, aggs)
    aggs = [dataclasses.replace(a, integral=a.aggregate.column in integral) for a in aggs]
    if plan == "prefix" and not _prefixable(aggs):
        raise DefinitionError(
            f"feature view {view.name!r}: the prefix plan computes count, sum and mean "
            "only; use plan='window', 'join' or 'auto'"
        )
    keys = [quote(k) for k in view.entity.keys]
    widest = max((a.micros for a in aggs), default=1)
    wants_last = any(a.aggregate.function == "last" for a in aggs)
    casts = [
        f"CAST({quote(k)} AS {DUCK_TYPES[t]}) AS {quote(k)}" for k, t in view.entity.keys.items()
    ]
    entity_sql = f"SELECT __row, {', '.join(casts)}, epoch_us(__ts) AS __t FROM {entity}"
    live = " AND ".join(f"{k} IS NOT NULL" for k in [*keys, "__t"])
    (bounds,) = con.execute(
        f"SELECT min(__t), max(__t) FROM ({entity_sql}) WHERE {live}"
    ).fetchall()
    low, high = bounds
    # Only rows in [min t - W, max t) can fall in a window.
    in_range = "FALSE" if low is None else f"__t >= {low - widest} AND __t < {high}"
    source_cols = [
        *keys,
        "epoch_us(__event) AS __t",
        "epoch_us(__created) AS __c",
        *(f"{quote(c)} AS {v}" for c, v in sorted({(a.aggregate.column, a.value) for a in aggs})),
    ]
    if wants_last:
        source_cols.append(f"{_ORDER} AS __o")
    source_sql = (
        f"SELECT * FROM (SELECT {', '.join(source_cols)} FROM {source} "
        f"WHERE {' AND '.join(f'{k} IS NOT NULL' for k in [*keys, '__event'])}) "
        f"WHERE {in_range}"
    )
    ctes = f"WITH __e AS ({entity_sql}), __s AS ({source_sql})"
    aggs = _with_exponents(con, ctes, aggs)
    if plan == "auto":
        totals = _prefixable(aggs)
        plan = (
            "join"
            if known_at or low is None
            else _cheaper_plan(con, ctes, keys, widest, totals=totals)
        )
    if plan == "prefix":
        body = _prefix_sql(keys, aggs)
    elif plan == "window":
        body = _window_sql(keys, aggs, wants_last)
    else:
        body = _join_sql(keys, aggs, widest, known_at=known_at, wants_last=wants_last)
    out = ", ".join(["__row", *(quote(a.name) for a in aggs)])
    schema = pa.schema(
        [pa.field("__row", pa.int64())] + [pa.field(a.name, a.aggregate.arrow_type) for a in aggs]
    )
    sql = f"{ctes}, {body} SELECT {out} FROM __g ORDER BY __row"
    return con.sql(sql).to_arrow_table().cast(schema)


# Float sums are exact, hence independent of the order of the additions (which parallel
# aggregation does not fix, so a float sum could differ in its last bit from one run to
# the next, and a training set's hash with it). Each finite value x of a column becomes
# the integer round(x * 2**e), with e chosen so that the column's largest magnitude is
# about 2**90; integers add exactly in a HUGEINT (2**127: room for 2**37 values), and
# the total comes back as a double, rounded once. Values at least 2**-37 times the
# column's largest magnitude keep every bit; smaller ones are rounded at 2**-90 of it.
# NaN and infinities are added apart, as doubles, which is order-independent too.
_HEADROOM_BITS = 90


def _float_sum(agg: _Agg) -> bool:
    """Whether ``agg`` adds floating-point values (a float sum or a mean of a column that
    does not hold integers: integers add exactly in a HUGEINT as they are)."""
    function = agg.aggregate.function
    if agg.integral:
        return False
    return function == "mean" or (function == "sum" and agg.target == "DOUBLE")


def _with_exponents(con: duckdb.DuckDBPyConnection, ctes: str, aggs: list[_Agg]) -> list[_Agg]:
    """``aggs`` with the scaling exponent of each float sum's column (one scan for all)."""
    values = sorted({a.value for a in aggs if _float_sum(a)})
    if not values:
        return aggs
    finite = [f"CAST({v} AS DOUBLE)" for v in values]
    maxima = ", ".join(f"max(abs({x})) FILTER (WHERE isfinite({x}))" for x in finite)
    (row,) = con.execute(f"{ctes} SELECT {maxima} FROM __s").fetchall()
    exponents = {}
    for value, largest in zip(values, row, strict=True):
        exponent = 0
        if largest:
            _, binary = math.frexp(float(largest))  # largest < 2**binary
            exponent = max(-900, min(900, _HEADROOM_BITS - binary))
        exponents[value] = exponent
    return [
        dataclasses.replace(a, exponent=exponents[a.value]) if _float_sum(a) else a for a in aggs
    ]


def _exact_sum(value: str, exponent: int, suffix: str) -> str:
    """The SQL of an order-independent float sum of ``value`` (NULL when no value)."""
    x = f"CAST({value} AS DOUBLE)"
    up, down = repr(math.ldexp(1.0, exponent)), repr(math.ldexp(1.0, -exponent))
    exact = f"sum(CAST(CASE WHEN isfinite({x}) THEN {x} * {up} END AS HUGEINT)){suffix}"
    special = f"sum(CASE WHEN NOT isfinite({x}) THEN {x} END){suffix}"
    return (
        f"CASE WHEN count({value}){suffix} > 0 THEN "
        f"coalesce(CAST({exact} AS DOUBLE) * {down}, 0.0) + coalesce({special}, 0.0) END"
    )


def _cheaper_plan(
    con: duckdb.DuckDBPyConnection, ctes: str, keys: list[str], widest: int, *, totals: bool
) -> Literal["window", "join", "prefix"]:
    """The join when its candidate pairs are few per input row, else the running totals
    (``totals``: counts, sums and means only) or the markers."""
    key_list = ", ".join(keys)
    on = " AND ".join([*(f"s.{k} = e.{k}" for k in keys), "s.__k = e.__k - d.__d"])
    sql = (
        f"{ctes}, __eb AS (SELECT {key_list}, __t // {widest} AS __k, count(*) AS __n FROM __e "
        f"WHERE {' AND '.join(f'{k} IS NOT NULL' for k in [*keys, '__t'])} GROUP BY ALL), "
        f"__sb AS (SELECT {key_list}, __t // {widest} AS __k, count(*) AS __n FROM __s "
        "GROUP BY ALL) "
        "SELECT (SELECT coalesce(sum(__n), 0) FROM __eb) + (SELECT coalesce(sum(__n), 0) "
        "FROM __sb), (SELECT coalesce(sum(e.__n * s.__n), 0) FROM __eb AS e, "
        f"(VALUES (0), (1)) AS d(__d) JOIN __sb AS s ON {on})"
    )
    ((rows, pairs),) = con.execute(sql).fetchall()
    if totals:
        return "join" if pairs <= _JOIN_PAIRS_PER_ROW_TOTALS * rows else "prefix"
    return "join" if pairs <= _JOIN_PAIRS_PER_ROW * rows else "window"


def _prefixable(aggs: list[_Agg]) -> bool:
    """Whether every aggregate is a difference of running totals: a count, or a sum or
    mean that adds exactly (integers, or floats scaled to integers)."""
    return bool(aggs) and all(
        a.aggregate.function == "count"
        or (a.aggregate.function in ("sum", "mean") and (a.integral or _float_sum(a)))
        for a in aggs
    )


def _prefix_sql(keys: list[str], aggs: list[_Agg]) -> str:
    """The running-totals plan: ``__g(__row, features...)``.

    Per key, in time order, running totals of each column's count and exact sum (as
    HUGEINT: integers as they are, floats scaled by 2**exponent; NaN and infinities
    counted apart). A window ``[t - w, t)`` is then the totals at the last source time
    before t minus those at the last time before t - w, each found by an ASOF join:
    two sorts and a merge, whatever the number of rows per key. Integer differences are
    exact, so the sums are the same bits as the other plans'."""
    key_list = ", ".join(keys)
    semi = " AND ".join(f"s.{k} = e.{k}" for k in keys)
    totals: dict[str, str] = {}
    for a in aggs:
        v = a.value
        totals[f"__n_{v}"] = f"count({v})"
        if a.aggregate.function == "count":
            continue
        if a.integral:
            totals[f"__i_{v}"] = f"sum(CAST({v} AS HUGEINT))"
            continue
        x = f"CAST({v} AS DOUBLE)"
        up = repr(math.ldexp(1.0, a.exponent))
        totals[f"__x_{v}"] = f"sum(CAST(CASE WHEN isfinite({x}) THEN {x} * {up} END AS HUGEINT))"
        totals[f"__nan_{v}"] = f"count(CASE WHEN isnan({x}) THEN 1 END)"
        totals[f"__pinf_{v}"] = f"count(CASE WHEN {x} = 'infinity'::DOUBLE THEN 1 END)"
        totals[f"__ninf_{v}"] = f"count(CASE WHEN {x} = '-infinity'::DOUBLE THEN 1 END)"
    running = ", ".join(f"{sql} OVER __run AS {name}" for name, sql in totals.items())
    cumulative = (
        f"__c AS (SELECT {key_list}, __t, {running} FROM __s AS s "
        f"WHERE EXISTS (SELECT 1 FROM __e AS e WHERE {semi}) "
        f"WINDOW __run AS (PARTITION BY {key_list} ORDER BY __t "
        "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))"
    )
    widths = sorted({a.micros for a in aggs})
    starts = ", ".join(f"__t - {w} AS __lo{w}" for w in widths)
    joins = [f"ASOF LEFT JOIN __c AS hi ON {_asof('hi', keys, '__t')}"]
    joins += [f"ASOF LEFT JOIN __c AS lo{w} ON {_asof(f'lo{w}', keys, f'__lo{w}')}" for w in widths]

    def diff(name: str, w: int) -> str:
        # a total is NULL before its first row, or while every value was NULL
        return f"(coalesce(hi.{name}, 0) - coalesce(lo{w}.{name}, 0))"

    exprs = []
    for a in aggs:
        v, w, function = a.value, a.micros, a.aggregate.function
        n = diff(f"__n_{v}", w)
        if function == "count":
            call = f"NULLIF({n}, 0)"
        elif a.integral:
            total = diff(f"__i_{v}", w)
            if function == "mean":
                call = f"CAST({total} AS DOUBLE) / {n}"
            elif a.target != "DOUBLE":
                call = total
            else:
                call = f"CAST({total} AS DOUBLE)"
        else:
            down = repr(math.ldexp(1.0, -a.exponent))
            nan, pinf, ninf = (diff(f"__{k}_{v}", w) for k in ("nan", "pinf", "ninf"))
            special = (
                f"CASE WHEN {nan} > 0 OR ({pinf} > 0 AND {ninf} > 0) THEN 'nan'::DOUBLE "
                f"WHEN {pinf} > 0 THEN 'infinity'::DOUBLE "
                f"WHEN {ninf} > 0 THEN '-infinity'::DOUBLE ELSE 0.0 END"
            )
            exact = f"CAST({diff(f'__x_{v}', w)} AS DOUBLE) * {down} + {special}"
            call = f"({exact}) / {n}" if function == "mean" else exact
        if function != "count":
            call = f"CASE WHEN {n} > 0 THEN {call} END"
        exprs.append(f"CAST({call} AS {a.target}) AS {quote(a.name)}")
    return (
        f"{cumulative}, __eb AS (SELECT *, {starts} FROM __e), "
        f"__g AS (SELECT e.__row, {', '.join(exprs)} FROM __eb AS e {' '.join(joins)})"
    )


def _asof(side: str, keys: list[str], time: str) -> str:
    """An ASOF condition: the same keys, and the last of ``side``'s times before ``time``."""
    return " AND ".join([*(f"e.{k} = {side}.{k}" for k in keys), f"e.{time} > {side}.__t"])


def _window_sql(keys: list[str], aggs: list[_Agg], wants_last: bool) -> str:
    """The markers plan: ``__g(__row, features...)`` from window functions."""
    key_list = ", ".join(keys)
    semi = " AND ".join(f"s.{k} = e.{k}" for k in keys)
    values = sorted({a.value for a in aggs})
    source_cols = [*keys, "__t", "NULL::BIGINT AS __row", *values, *(["__o"] if wants_last else [])]
    # A marker without a time gets NULL keys: a partition of markers only, so NULL results.
    marker_keys = [f"CASE WHEN __t IS NOT NULL THEN {k} END AS {k}" for k in keys]
    union = (
        f"__u AS (SELECT {', '.join(source_cols)} FROM __s AS s "
        f"WHERE EXISTS (SELECT 1 FROM __e AS e WHERE {semi}) "
        f"UNION ALL BY NAME SELECT {', '.join(marker_keys)}, __t, __row FROM __e)"
    )
    if not aggs:
        return f"{union}, __g AS (SELECT __row FROM __e)"
    windows = ", ".join(
        f"__w{w} AS (PARTITION BY {key_list} ORDER BY __t "
        f"RANGE BETWEEN {w} PRECEDING AND 1 PRECEDING)"
        for w in sorted({a.micros for a in aggs})
    )
    exprs = ", ".join(_aggregate_sql(a, f" OVER __w{a.micros}") for a in aggs)
    return (
        f"{union}, __g AS (SELECT __row, {exprs} FROM __u "
        f"WINDOW {windows} QUALIFY __row IS NOT NULL)"
    )


def _join_sql(
    keys: list[str], aggs: list[_Agg], widest: int, *, known_at: bool, wants_last: bool
) -> str:
    """The range-join plan: ``__g(__row, features...)`` from a bucketed join + GROUP BY."""
    on = " AND ".join(
        [
            *(f"s.{k} = e.{k}" for k in keys),
            "s.__k = e.__k",
            "s.__t < e.__t",
            f"s.__t >= e.__t - {widest}",
            *(["s.__c <= e.__t"] if known_at else []),
        ]
    )
    pair_cols = [
        "e.__row",
        "e.__t - s.__t AS __age",
        *sorted({f"s.{a.value}" for a in aggs}),
        *(["s.__o"] if wants_last else []),
    ]
    # Buckets of width W: the window [t - W, t) lies in t's bucket and the one before.
    # A LEFT join keeps every entity row (NULL keys or time: no pair, NULL results).
    pairs = (
        f"__p AS (SELECT {', '.join(pair_cols)} "
        f"FROM (SELECT *, __t // {widest} - __d AS __k FROM __e, (VALUES (0), (1)) AS d(__d)) "
        f"AS e LEFT JOIN (SELECT *, __t // {widest} AS __k FROM __s) AS s ON {on})"
    )
    exprs = [
        _aggregate_sql(a, f" FILTER (WHERE __age <= {a.micros})" if a.micros < widest else "")
        for a in aggs
    ]
    return f"{pairs}, __g AS (SELECT {', '.join(['__row', *exprs])} FROM __p GROUP BY __row)"


def _aggregate_sql(agg: _Agg, suffix: str) -> str:
    """The feature's expression: its aggregate call with ``suffix`` (OVER or FILTER).

    ``mean`` is sum / count so that, beside a sum and a count of the same window, DuckDB
    computes each aggregate once.
    """
    v, function = agg.value, agg.aggregate.function
    count = f"count({v}){suffix}"
    if function == "count":
        call = f"NULLIF({count}, 0)"
    elif function in ("sum", "mean") and agg.integral:
        total = f"CAST(sum(CAST({v} AS HUGEINT)){suffix} AS DOUBLE)"
        call = f"{total} / {count}" if function == "mean" else total
        if function == "sum" and agg.target != "DOUBLE":
            call = f"sum(CAST({v} AS {agg.target})){suffix}"
    elif function == "sum" and agg.target == "DOUBLE":
        call = _exact_sum(v, agg.exponent, suffix)
    elif function == "sum":
        call = f"sum(CAST({v} AS {agg.target})){suffix}"
    elif function == "mean":
        call = f"({_exact_sum(v, agg.exponent, suffix)}) / {count}"
    elif function == "last":
        call = f"arg_max({v}, CASE WHEN {v} IS NOT NULL THEN __o END){suffix}"
    else:
        call = f"{function}({v}){suffix}"
    return f"CAST({call} AS {agg.target}) AS {quote(agg.name)}"


def _requested(view: FeatureView, features: Sequence[str]) -> list[_Agg]:
    if not view.aggregates:
        raise DefinitionError(f"feature view {view.name!r} has no aggregates")
    by_name = {a.feature_name: a for a in view.aggregates}
    unknown = [f for f in features if f not in by_name]
    if unknown:
        raise DefinitionError(
            f"feature view {view.name!r} has no aggregate {unknown[0]!r} "
            f"(it has: {', '.join(by_name)})"
        )
    columns = sorted({by_name[f].column for f in features})
    renamed = {c: f"__v{i}" for i, c in enumerate(columns)}
    out = []
    for name in dict.fromkeys(features):
        agg = by_name[name]
        micros = agg.window_delta // timedelta(microseconds=1)
        out.append(_Agg(agg, renamed[agg.column], max(micros, 1)))
    return out


def _check_types(
    con: duckdb.DuckDBPyConnection, source: str, view: FeatureView, aggs: list[_Agg]
) -> set[str]:
    """Refuse, naming the feature, an aggregate its column's type cannot give; return
    the columns that hold integers or booleans."""
    columns = sorted({a.aggregate.column for a in aggs})
    if not columns:
        return set()
    relation = con.sql(f"SELECT {', '.join(quote(c) for c in columns)} FROM {source} LIMIT 0")
    types = {c: str(t).lower() for c, t in zip(columns, relation.types, strict=True)}
    for agg in aggs:
        column_type = types[agg.aggregate.column]
        kind = (
            "numeric"
            if column_type.split("(")[0] in _NUMERIC
            else "bool"
            if column_type == "boolean"
            else "temporal"
            if column_type in _TEMPORAL
            else column_type
        )
        target, function = str(agg.aggregate.type), agg.aggregate.function
        if function == "count":
            ok = target in ("int", "float")
        elif function in ("sum", "mean"):
            ok = target in ("int", "float") and kind in ("numeric", "bool")
        elif target in ("int", "float"):
            ok = kind in ("numeric", "bool")
        else:
            ok = target == "string" or (target, kind) in (
                ("bool", "bool"),
                ("timestamp", "temporal"),
            )
        if not ok:
            raise DefinitionError(
                f"feature view {view.name!r}: aggregate {agg.name!r} ({function} of column "
                f"{agg.aggregate.column!r}, a {column_type.upper()}) cannot be a {target}; "
                "declare a matching type= on the Aggregate"
            )
    return {
        c
        for c, t in types.items()
        if t == "boolean" or (t in _NUMERIC and "int" in t and t != "uhugeint")
    }


def _quoted(name: str) -> str:
    return name if name.startswith('"') and name.endswith('"') else quote(name)
