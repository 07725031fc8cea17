"""Typed project configuration from ``driftloop.yaml`` and the environment.

Every setting is declared once in :data:`SETTINGS` with its type, default and
help. A value comes from the environment (``DRIFTLOOP_`` + the dotted key in
upper case with ``_`` for ``.``, e.g. ``DRIFTLOOP_METADATA_URL``), else from the
file, else from the default. Errors name the key and where the value came from.
Each backend receives its own small config object, never the whole config.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from driftloop.errors import ConfigError

__all__ = [
    "CONFIG_FILE",
    "SETTINGS",
    "ArtifactConfig",
    "Config",
    "IngestConfig",
    "MetadataConfig",
    "OfflineConfig",
    "OnlineConfig",
    "ServingConfig",
    "Setting",
    "env_var",
    "load_config",
    "parse_duration",
]

CONFIG_FILE = "driftloop.yaml"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Parse ``"90s"``, ``"15m"``, ``"6h"``, ``"7d"``, ``"2w"`` (or seconds as a number)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '15m' or '7d', got {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"expected a duration like '15m' or '7d', got {value!r}")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def _parse_str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _parse_optional_str(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


def _parse_choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return parse


def _parse_positive_int(value: Any) -> int:
    number = _parse_int(value)
    if number < 1:
        raise ValueError(f"expected an integer >= 1, got {value!r}")
    return number


def _parse_duration(value: Any) -> timedelta:
    if not isinstance(value, str | int | float | timedelta):
        raise ValueError(f"expected a duration like '15m' or '7d', got {value!r}")
    return parse_duration(value)


@dataclass(frozen=True)
class Setting:
    """One declared setting: dotted key, parser, default and help text."""

    key: str
    parse: Callable[[Any], Any]
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("name", _parse_str, "driftloop", "Project name, shown in listings."),
    Setting(
        "definitions",
        _parse_str,
        "definitions.py",
        "Python module (path relative to the project) that declares sources, features and models.",
    ),
    Setting(
        "metadata.url",
        _parse_str,
        "sqlite:///.driftloop/metadata.db",
        "SQLAlchemy URL of the metadata store; relative SQLite paths are resolved "
        "against the project folder. PostgreSQL: postgresql+psycopg://user@host/db.",
    ),
    Setting(
        "artifacts.uri",
        _parse_str,
        ".driftloop/artifacts",
        "Where content-addressed blobs live: a folder (relative to the project), "
        "file://, memory://, s3://... or any fsspec protocol.",
    ),
    Setting(
        "ingest.future_tolerance",
        _parse_duration,
        timedelta(minutes=5),
        "How far in the future an event time may lie before the row is rejected "
        "(clock skew allowance).",
    ),
    Setting(
        "online.url",
        _parse_str,
        "sqlite:///.driftloop/online.db",
        "Online feature store: sqlite:///path (relative to the project), redis://host:port/db "
        "(needs driftloop[redis]) or memory://.",
    ),
    Setting(
        "offline.memory_limit",
        _parse_str,
        "4GB",
        "DuckDB memory limit for point-in-time joins and aggregates; beyond it DuckDB "
        "spills to offline.temp_directory.",
    ),
    Setting(
        "offline.threads",
        _parse_int,
        0,
        "DuckDB threads for offline feature computation (0: one per core).",
    ),
    Setting(
        "offline.temp_directory",
        _parse_str,
        ".driftloop/duckdb-tmp",
        "Where DuckDB spills when a join does not fit in offline.memory_limit (relative to "
        "the project).",
    ),
    Setting(
        "ingest.sample_failures",
        _parse_int,
        10,
        "How many failing row numbers and values a validation report keeps per rule.",
    ),
    Setting("serving.host", _parse_str, "127.0.0.1", "Address `driftloop serve` listens on."),
    Setting("serving.port", _parse_int, 8080, "Port `driftloop serve` listens on."),
    Setting(
        "serving.workers",
        _parse_positive_int,
        1,
        "Server worker processes (one per core is the usual choice).",
    ),
    Setting(
        "serving.threads",
        _parse_positive_int,
        1,
        "Inference threads (OpenMP/BLAS) per worker; more than cores / workers oversubscribes.",
    ),
    Setting(
        "serving.durability",
        _parse_choice("relaxed", "strict"),
        "relaxed",
        "Prediction log: strict answers only once a prediction's record is fsynced; relaxed "
        "answers at once and writes within serving.flush_interval.",
    ),
    Setting(
        "serving.flush_interval",
        _parse_duration,
        timedelta(milliseconds=200),
        "Relaxed durability: how long records may wait before they are written.",
    ),
    Setting(
        "serving.predictions",
        _parse_str,
        ".driftloop/predictions",
        "Folder of the prediction log (Parquet, model=/date= partitions; relative to the project).",
    ),
    Setting(
        "serving.feedback",
        _parse_str,
        ".driftloop/feedback",
        "Folder of the feedback log (relative to the project).",
    ),
    Setting(
        "serving.poll_interval",
        _parse_duration,
        timedelta(milliseconds=200),
        "How often each worker checks the metadata store for deployment changes.",
    ),
    Setting(
        "serving.max_body_bytes",
        _parse_positive_int,
        1_048_576,
        "Largest request body accepted (larger: 413).",
    ),
    Setting(
        "serving.max_instances",
        _parse_positive_int,
        1000,
        "Most instances in one predict request (or labels in one feedback request).",
    ),
    Setting(
        "serving.max_log_backlog",
        _parse_positive_int,
        200_000,
        "Prediction-log records a worker may hold unwritten; beyond it predict answers 503 "
        "(back-pressure when the disk cannot keep up).",
    ),
    Setting(
        "serving.shadow_queue",
        _parse_positive_int,
        1000,
        "Requests waiting for shadow scoring per worker; beyond it shadow copies are "
        "dropped and counted, never delaying responses.",
    ),
    Setting(
        "serving.client_time",
        _parse_bool,
        False,
        "Accept an x-driftloop-time header that sets the time a prediction or label is "
        "recorded at (replays in simulated time); off, the header is refused.",
    ),
    Setting(
        "loop.executor",
        _parse_choice("local", "inline", "ray"),
        "local",
        "Where the controller (`driftloop run`) runs pipeline steps: local child processes, "
        "inline in the controller, or ray tasks (needs driftloop[ray]); --executor wins.",
    ),
    Setting(
        "loop.ray_address",
        _parse_optional_str,
        "",
        "With loop.executor ray: the cluster to join ('auto': the one on this machine; "
        "empty: start a local one); --ray-address wins.",
    ),
    Setting(
        "monitoring.profiles",
        _parse_str,
        ".driftloop/monitoring",
        "Folder of the per-step profiles of the prediction log that consecutive monitoring "
        "windows share (relative to the project).",
    ),
    Setting(
        "monitoring.reports",
        _parse_str,
        "reports/monitoring",
        "Folder of the HTML report of each monitoring window (relative to the project).",
    ),
    Setting(
        "monitoring.webhook_url",
        _parse_optional_str,
        "",
        "URL alerts are POSTed to as JSON (empty: no webhook; a monitor's webhook= wins).",
    ),
    Setting(
        "monitoring.webhook_timeout",
        _parse_duration,
        timedelta(seconds=5),
        "How long one webhook attempt may take.",
    ),
    Setting(
        "monitoring.webhook_retries",
        _parse_int,
        5,
        "Webhook attempts after the first, with exponential backoff, on connection errors, "
        "timeouts, 429 and 5xx answers.",
    ),
)
_BY_KEY = {s.key: s for s in SETTINGS}


def env_var(key: str) -> str:
    """The environment variable that overrides a setting: ``DRIFTLOOP_METADATA_URL``."""
    return "DRIFTLOOP_" + key.upper().replace(".", "_")


@dataclass(frozen=True)
class MetadataConfig:
    url: str


@dataclass(frozen=True)
class ArtifactConfig:
    uri: str


@dataclass(frozen=True)
class IngestConfig:
    future_tolerance: timedelta = timedelta(minutes=5)
    sample_failures: int = 10


@dataclass(frozen=True)
class OnlineConfig:
    url: str = "sqlite:///.driftloop/online.db"


@dataclass(frozen=True)
class OfflineConfig:
    memory_limit: str = "4GB"
    threads: int = 0
    temp_directory: Path | None = None


@dataclass(frozen=True)
class ServingConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    threads: int = 1
    durability: str = "relaxed"
    flush_interval: timedelta = timedelta(milliseconds=200)
    predictions: Path = Path(".driftloop/predictions")
    feedback: Path = Path(".driftloop/feedback")
    poll_interval: timedelta = timedelta(milliseconds=200)
    max_body_bytes: int = 1_048_576
    max_instances: int = 1000
    max_log_backlog: int = 200_000
    shadow_queue: int = 1000
    client_time: bool = False


@dataclass(frozen=True)
class LoopConfig:
    executor: str = "local"
    ray_address: str = ""


@dataclass(frozen=True)
class MonitoringConfig:
    profiles: Path = Path(".driftloop/monitoring")
    reports: Path = Path("reports/monitoring")
    webhook_url: str = ""
    webhook_timeout: timedelta = timedelta(seconds=5)
    webhook_retries: int = 5


@dataclass(frozen=True)
class Config:
    """The resolved configuration of one project."""

    root: Path
    name: str
    definitions: Path
    metadata: MetadataConfig
    artifacts: ArtifactConfig
    ingest: IngestConfig = field(default_factory=IngestConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    source: str | None = None  # the file it was read from, if any


def _flatten(data: Mapping[str, Any], prefix: str, file: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"keys must be strings, got {key!r}", file=file)
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and not any(s.key == dotted for s in SETTINGS):
            out.update(_flatten(value, dotted + ".", file))
        else:
            out[dotted] = value
    return out


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", file=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}invalid YAML: {problem}", file=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError("expected a mapping of settings at the top level", file=str(path))
    flat = _flatten(data, "", str(path))
    unknown = sorted(set(flat) - set(_BY_KEY))
    if unknown:
        raise ConfigError(
            f"unknown setting (known: {', '.join(sorted(_BY_KEY))})",
            key=unknown[0],
            file=str(path),
        )
    return flat


def _resolve_sqlite(url: str, root: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix:
        rel = url[len(prefix) :]
        if not rel.startswith(":memory:"):
            return prefix + str((root / rel).resolve())
    return url


def load_config(root: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read ``root/driftloop.yaml`` (optional) and the environment into a :class:`Config`."""
    root_path = Path(root).resolve()
    env = os.environ if env is None else env
    file_path = root_path / CONFIG_FILE
    values = _read_file(file_path) if file_path.is_file() else {}
    origin = str(file_path) if file_path.is_file() else None
    resolved: dict[str, Any] = {}
    for setting in SETTINGS:
        name = env_var(setting.key)
        where: str | None
        if name in env:
            raw, where = env[name], f"environment variable {name}"
        elif setting.key in values:
            raw, where = values[setting.key], origin
        else:
            resolved[setting.key] = setting.default
            continue
        try:
            resolved[setting.key] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(str(exc), key=setting.key, file=where) from None
    return Config(
        root=root_path,
        name=resolved["name"],
        definitions=root_path / resolved["definitions"],
        metadata=MetadataConfig(_resolve_sqlite(resolved["metadata.url"], root_path)),
        artifacts=ArtifactConfig(resolved["artifacts.uri"]),
        ingest=IngestConfig(
            future_tolerance=resolved["ingest.future_tolerance"],
            sample_failures=resolved["ingest.sample_failures"],
        ),
        online=OnlineConfig(_resolve_sqlite(resolved["online.url"], root_path)),
        offline=OfflineConfig(
            memory_limit=resolved["offline.memory_limit"],
            threads=resolved["offline.threads"],
            temp_directory=root_path / resolved["offline.temp_directory"],
        ),
        serving=ServingConfig(
            host=resolved["serving.host"],
            port=resolved["serving.port"],
            workers=resolved["serving.workers"],
            threads=resolved["serving.threads"],
            durability=resolved["serving.durability"],
            flush_interval=resolved["serving.flush_interval"],
            predictions=root_path / resolved["serving.predictions"],
            feedback=root_path / resolved["serving.feedback"],
            poll_interval=resolved["serving.poll_interval"],
            max_body_bytes=resolved["serving.max_body_bytes"],
            max_instances=resolved["serving.max_instances"],
            max_log_backlog=resolved["serving.max_log_backlog"],
            shadow_queue=resolved["serving.shadow_queue"],
            client_time=resolved["serving.client_time"],
        ),
        monitoring=MonitoringConfig(
            profiles=root_path / resolved["monitoring.profiles"],
            reports=root_path / resolved["monitoring.reports"],
            webhook_url=resolved["monitoring.webhook_url"],
            webhook_timeout=resolved["monitoring.webhook_timeout"],
            webhook_retries=resolved["monitoring.webhook_retries"],
        ),
        loop=LoopConfig(
            executor=resolved["loop.executor"], ray_address=resolved["loop.ray_address"]
        ),
        source=origin,
    )
