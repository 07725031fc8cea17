"""``driftloop init``: write a working example project.

The example declares one source, ``transactions``, with a contract, and ships three
batches: two clean ones and one that fails its contract. The data is generated with
a seeded numpy generator, so it depends only on the time of ``init`` (event times lie
in the 14 days before it, so the contract's freshness rule passes).
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import typer

from driftloop.cli.output import console, session
from driftloop.core import clock
from driftloop.core.config import CONFIG_FILE, SETTINGS, env_var
from driftloop.data.contract import format_duration
from driftloop.errors import ConfigError

__all__ = ["example_files", "init", "transactions_batch", "write_example"]

ROWS_PER_BATCH = 2000
BAD_ROWS = 200
_CURRENCIES = np.array(["EUR", "USD", "GBP"])
_COUNTRIES = np.array(["DE", "FR", "NL", "ES", "IT", "GB", "US"])
_HOME_CURRENCY = np.array(["EUR", "EUR", "EUR", "EUR", "EUR", "GBP", "USD"])
_CHANNELS = np.array(["web", "app", "pos"])
_PLAIN = re.compile(r"^[A-Za-z0-9_./:-]+$")


def _template(name: str) -> str:
    return resources.files("driftloop.cli").joinpath("templates", name).read_text("utf-8")


# -- driftloop.yaml -------------------------------------------------------------------------


def _scalar(value: Any) -> str:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    return (
        text if _PLAIN.match(text) and text not in ("true", "false", "null") else json.dumps(text)
    )


def config_yaml(name: str) -> str:
    """A commented ``driftloop.yaml`` listing every setting of ``SETTINGS`` at its default."""
    lines = [
        "# driftloop project settings. Every setting can also come from the environment:",
        "# DRIFTLOOP_ + the key in upper case with _ for . (for example "
        f"{env_var('metadata.url')}),",
        "# which wins over this file.",
    ]
    section = None
    order = {s.key.rpartition(".")[0]: i for i, s in reversed(list(enumerate(SETTINGS)))}
    grouped = sorted(SETTINGS, key=lambda s: order[s.key.rpartition(".")[0]])  # stable
    for setting in grouped:
        head, _, leaf = setting.key.rpartition(".")
        value = name if setting.key == "name" else setting.default
        if head != section:
            lines.append("")
            if head:
                lines.append(f"{head}:")
            section = head
        elif not head:
            lines.append("")
        indent = "  " if head else ""
        for row in textwrap.wrap(setting.help, 86 - len(indent)):
            lines.append(f"{indent}# {row}")
        lines.append(f"{indent}{leaf or setting.key}: {_scalar(value)}")
    return "\n".join(lines) + "\n"


# -- data -----------------------------------------------------------------------------------


def transactions_batch(
    seed: int, rows: int, first_id: int, start: datetime, end: datetime, *, drift: float = 0.0
) -> pa.Table:
    """``rows`` synthetic card payments with event times in ``[start, end)`` (UTC).

    ``drift`` (0..1) shifts the mix towards the app channel and larger amounts, so a
    later batch differs measurably from an earlier one. Fraud is more likely for large
    amounts, web payments and a currency foreign to the country.
    """
    rng = np.random.default_rng(seed)
    span = int((end - start).total_seconds())
    offsets = np.sort(rng.integers(0, span, rows))
    base = np.datetime64(start.astimezone(UTC).replace(tzinfo=None), "s")
    times = base + offsets.astype("timedelta64[s]")
    event_time = np.char.add(np.datetime_as_string(times, unit="s"), "Z")
    ids = np.char.add("tx_", np.arange(first_id, first_id + rows).astype(str))
    customer = rng.integers(1, 501, rows)
    customer_id = np.char.add("cu_", np.char.zfill(customer.astype(str), 4))
    email = np.char.add(customer_id, "@example.com")
    country_idx = rng.choice(len(_COUNTRIES), rows, p=[0.3, 0.2, 0.12, 0.12, 0.1, 0.1, 0.06])
    country = _COUNTRIES[country_idx]
    foreign = rng.random(rows) < 0.15
    currency = np.where(foreign, _CURRENCIES[rng.integers(0, 3, rows)], _HOME_CURRENCY[country_idx])
    channel = _CHANNELS[rng.choice(3, rows, p=[0.45 - 0.15 * drift, 0.35 + 0.15 * drift, 0.2])]
    amount = np.round(np.clip(rng.lognormal(3.6 + 0.3 * drift, 1.0, rows), 0.5, 20000.0), 2)
    logit = (
        -4.6
        + 0.7 * np.log(amount / 36.0)
        + 0.9 * (channel == "web")
        + 1.2 * (currency != _HOME_CURRENCY[country_idx])
    )
    is_fraud = rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))
    return pa.table(
        {
            "transaction_id": ids,
            "customer_id": customer_id,
            "event_time": event_time,
            "amount": amount,
            "currency": currency,
            "country": country,
            "channel": channel,
            "is_fraud": is_fraud,
            "customer_email": email,
        }
    )


def _set(column: npt.NDArray[Any], rows: list[int], values: list[Any]) -> npt.NDArray[Any]:
    out = column.astype(object)
    out[rows] = values
    return out


def _bad_batch(now: datetime) -> pa.Table:
    """A batch that breaks the contract: negative amounts, an unknown currency, a repeated
    transaction id and an event time without a zone."""
    good = transactions_batch(
        3, BAD_ROWS, 900_000, now - timedelta(days=2), now - timedelta(hours=1)
    )
    cols = {name: good.column(name).to_numpy(zero_copy_only=False) for name in good.column_names}
    cols["amount"] = cols["amount"].copy()
    cols["amount"][[5, 17, 42]] = [-12.5, -0.01, -230.0]
    cols["currency"] = _set(cols["currency"], [8], ["JPY"])
    cols["transaction_id"] = _set(cols["transaction_id"], [30], [cols["transaction_id"][29]])
    naive = str(cols["event_time"][12]).removesuffix("Z")
    cols["event_time"] = _set(cols["event_time"], [12], [naive])
    return pa.table(
        {name: pa.array(values, type=good.schema.field(name).type) for name, values in cols.items()}
    )


def _csv(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(quoting_style="none"))
    return bytes(sink.getvalue())


def example_files(name: str, now: datetime) -> dict[str, bytes]:
    """The example project's files (relative path -> content) as of ``now``."""
    now = now.astimezone(UTC).replace(microsecond=0)
    week_ago = now - timedelta(days=7)
    first = transactions_batch(1, ROWS_PER_BATCH, 100_000, now - timedelta(days=14), week_ago)
    second = transactions_batch(
        2,
        ROWS_PER_BATCH,
        100_000 + ROWS_PER_BATCH,
        week_ago,
        now - timedelta(minutes=10),
        drift=0.5,
    )
    return {
        CONFIG_FILE: config_yaml(name).encode(),
        "definitions.py": _template("definitions.py.tmpl").encode(),
        "contracts/transactions.yaml": _template("transactions.yaml").encode(),
        "data/transactions-1.csv": _csv(first),
        "data/transactions-2.csv": _csv(second),
        "data/transactions-bad.csv": _csv(_bad_batch(now)),
        ".gitignore": _template("gitignore.tmpl").encode(),
    }


def write_example(folder: Path, *, force: bool = False, now: datetime | None = None) -> list[Path]:
    """Write the example project into ``folder``; refuse to overwrite unless ``force``."""
    name = folder.resolve().name or "driftloop"
    files: Mapping[str, bytes] = example_files(name, now or clock.now())
    if not force:
        for rel in files:
            target = folder / rel
            if target.exists():
                raise ConfigError("already exists; pass --force to overwrite it", file=str(target))
    written = []
    for rel, content in files.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        written.append(target)
    return written


def init(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Argument(
            metavar="DIR",
            help="Where to create the project (default: --project, else the current folder).",
            file_okay=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Create an example project.

    Settings, a source with its contract, and three batches to ingest (two clean, one
    that fails its contract). Existing files are kept unless --force.
    """
    given = session(ctx).project_dir
    source = ctx.find_root().get_parameter_source("project")
    typed = source is not None and source.name == "COMMANDLINE"  # not DRIFTLOOP_PROJECT
    if directory is None:
        directory = given or Path(".")
    elif typed and given is not None and given.resolve() != directory.resolve():
        raise typer.BadParameter(
            f"--project {given} and DIR {directory} name two folders; give one",
            param_hint="DIR",
        )
    written = write_example(directory, force=force)
    out = console()
    out.print(f"created an example project in {directory}:")
    for path in written:
        out.print(f"  {path.relative_to(directory)}")
    out.print()
    out.print("next steps:")
    if directory.resolve() != Path.cwd().resolve():
        out.print(f"  cd {directory}")
    out.print("  driftloop apply")
    out.print("  driftloop data ingest transactions data/transactions-1.csv")
