"""What every command shares: the session (which project), option types, and rendering.

Human output goes through Rich with markup off (values such as ``[EUR, USD]`` or
regexes are printed as they are) and a fixed width when stdout is not a terminal,
so that piped output and tests see whole lines. ``--json`` output is one JSON
document on stdout, written by :func:`print_json`: stable keys, ISO 8601 times.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from driftloop.core.config import CONFIG_FILE
from driftloop.data.profile import (
    DatasetProfile,
    NumericProfile,
    epoch_time,
    profile_summary,
)
from driftloop.data.validation import RuleResult
from driftloop.errors import ConfigError
from driftloop.project import Project, find_project_root

__all__ = [
    "AsOfOption",
    "JsonOption",
    "Session",
    "console",
    "failures_table",
    "fmt_count",
    "fmt_time",
    "jsonable",
    "kv_table",
    "parse_as_of",
    "print_json",
    "profile_json",
    "profile_table",
    "session",
    "table",
]

PLAIN_WIDTH = 160
"""Console width when the output is not a terminal (pipes, files, tests)."""
_TRAILING_SPACES = re.compile(r"[ \t]+\n")


# -- session --------------------------------------------------------------------------------


@dataclass
class Session:
    """One invocation's state: the ``--project`` folder given (if any) and the open project."""

    project_dir: Path | None = None
    _project: Project | None = field(default=None, repr=False)

    def project(self) -> Project:
        """The project of ``--project`` (or DRIFTLOOP_PROJECT), else the one around the cwd."""
        if self._project is None:
            if self.project_dir is None:
                root = find_project_root(Path.cwd())
            else:
                root = self.project_dir.resolve()
                if not (root / CONFIG_FILE).is_file():
                    raise ConfigError(
                        "no such file: not a driftloop project "
                        f"(run `driftloop init {self.project_dir}` to create one)",
                        file=str(root / CONFIG_FILE),
                    )
            self._project = Project(root)
        return self._project

    def close(self) -> None:
        if self._project is not None:
            self._project.close()
            self._project = None


def session(ctx: typer.Context) -> Session:
    """The session the root callback stored on the context."""
    obj = ctx.find_root().obj
    if not isinstance(obj, Session):  # a sub-app invoked on its own, e.g. in a test
        obj = Session()
        ctx.find_root().obj = obj
        ctx.find_root().call_on_close(obj.close)
    return obj


# -- options --------------------------------------------------------------------------------


def parse_as_of(value: str | datetime) -> datetime:
    """An ISO 8601 time with a zone (``2024-05-01T12:00:00Z``); a naive time is refused."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise typer.BadParameter(
                f"{value!r} is not an ISO 8601 time (e.g. 2024-05-01T12:00:00Z)",
                param_hint="'--as-of'",
            ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise typer.BadParameter(
            f"{value!r} has no timezone (write e.g. {parsed.isoformat()}Z)",
            param_hint="'--as-of'",
        )
    return parsed.astimezone(UTC)


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.")
]
AsOfOption = Annotated[
    datetime | None,
    typer.Option(
        "--as-of",
        parser=parse_as_of,
        metavar="ISO",
        help="Only what was known at this time (ISO 8601 with a zone, e.g. 2024-05-01T12:00Z).",
    ),
]


# -- consoles -------------------------------------------------------------------------------


class _TrimmedLines(io.StringIO):
    """Passes text on without the spaces Rich pads table rows with at the end of a line."""

    def __init__(self, target: IO[str]) -> None:
        super().__init__()
        self._target = target

    def write(self, text: str) -> int:
        self._target.write(_TRAILING_SPACES.sub("\n", text))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return False


def console(*, stderr: bool = False) -> Console:
    """A Rich console on the current stdout/stderr (looked up per call, so tests can swap
    them); markup and highlighting off. When not writing to a terminal: a fixed width
    (wide enough for the tables, never wrapped at 80) and no trailing spaces."""
    file: IO[str] = sys.stderr if stderr else sys.stdout
    if getattr(file, "isatty", lambda: False)():
        return Console(file=file, markup=False, highlight=False, emoji=False)
    return Console(
        file=_TrimmedLines(file),
        width=max(PLAIN_WIDTH, _columns()),
        markup=False,
        highlight=False,
        emoji=False,
    )


def _columns() -> int:
    try:
        return int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        return 0


# -- JSON -----------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO strings, tuples as lists, non-finite floats as text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def print_json(data: Any, *, file: IO[str] | None = None) -> None:
    """Write ``data`` as indented JSON (stdout by default), nothing else."""
    out = sys.stdout if file is None else file
    out.write(json.dumps(jsonable(data), indent=2, ensure_ascii=False) + "\n")
    out.flush()


# -- formatting -----------------------------------------------------------------------------


def fmt_time(value: datetime | str | None) -> str:
    """``2024-05-01 12:00:00Z`` (UTC, to the second) for tables."""
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def fmt_count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _fmt_number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):  # "nan", "inf" from JSON-ready dicts
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e9 or abs(value) < 1e-3):
        return f"{value:.4g}"
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def _fmt_value(value: Any, limit: int = 40) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    right: Sequence[str] = (),
) -> Table:
    """A plain table; the columns named in ``right`` are right-aligned (numbers)."""
    out = Table(
        title=title,
        title_justify="left",
        show_edge=False,
        pad_edge=False,
        header_style="bold",
        box=None,
        padding=(0, 2, 0, 0),
    )
    for name in columns:
        out.add_column(name, justify="right" if name in right else "left", overflow="fold")
    for row in rows:
        out.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in row))
    return out


def kv_table(pairs: Iterable[tuple[str, Any]]) -> Table:
    """Two columns, key and value, without a header."""
    out = Table(show_header=False, show_edge=False, pad_edge=False, box=None, padding=(0, 2, 0, 0))
    out.add_column(style="bold", no_wrap=True)
    out.add_column(overflow="fold")
    for key, value in pairs:
        out.add_row(Text(key), value if isinstance(value, Text) else Text(str(value)))
    return out


def failures_table(results: Iterable[RuleResult]) -> Table:
    """Failed rules: rule, column, failing rows, the first row numbers and their values."""
    rows = []
    for r in results:
        if r.passed:
            continue
        first_rows = ", ".join(str(n) for n in r.rows[:5]) + (", …" if r.failing > 5 else "")
        values = ", ".join(_fmt_value(v, 24) for v in r.values[:3])
        rows.append(
            (
                r.rule,
                r.column or "-",
                fmt_count(r.failing) if r.failing else "-",
                first_rows or "-",
                values or "-",
                r.message,
            )
        )
    return table(
        ["rule", "column", "failing rows", "first rows", "first values", "message"],
        rows,
        right=["failing rows"],
    )


# -- profiles -------------------------------------------------------------------------------


def profile_json(profile: DatasetProfile) -> dict[str, Any]:
    """A profile for ``--json``: :func:`driftloop.data.profile.profile_summary`."""
    return profile_summary(profile)


def profile_table(profile: DatasetProfile) -> Table:
    """One row per column: kind, count, nulls, then min/max/mean or the top values."""
    rows: list[tuple[str, ...]] = []
    for name, p in profile.columns.items():
        if isinstance(p, NumericProfile):
            if p.kind == "timestamp":
                lo, hi, mean = fmt_time(epoch_time(p.min)), fmt_time(epoch_time(p.max)), "-"
            else:
                lo, hi, mean = _fmt_number(p.min), _fmt_number(p.max), _fmt_number(p.mean)
            rows.append((name, p.kind, fmt_count(p.count), fmt_count(p.nulls), lo, hi, mean, ""))
        else:
            top = ", ".join(f"{_fmt_value(v, 24)} ({c:,})" for v, c in p.top[:3])
            if len(p.top) > 3 or p.other:
                top += ", …"
            rows.append(
                (
                    name,
                    p.kind,
                    fmt_count(p.count),
                    fmt_count(p.nulls),
                    "-",
                    "-",
                    "-",
                    f"{p.distinct:,} distinct: {top}",
                )
            )
    return table(
        ["column", "kind", "count", "nulls", "min", "max", "mean", "top values"],
        rows,
        right=["count", "nulls", "min", "max", "mean"],
    )
