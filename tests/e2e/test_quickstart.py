"""The quickstart a new user runs (`make quickstart`), end to end, as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "quickstart.sh"


def test_quickstart_runs_from_init_to_time_travel(tmp_path: Path) -> None:
    """examples/quickstart.sh exits 0: both clean batches are accepted, the repeat is a
    duplicate, the bad batch is rejected with exit 3, and the export as of a time between
    the two ingests holds only the first batch."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in ("DRIFTLOOP_PROJECT", "DRIFTLOOP_DEBUG", "COLUMNS"):
        env.pop(name, None)
    result = subprocess.run(
        ["bash", str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    lines = out.splitlines()
    accepted = [line for line in lines if line.startswith("accepted ")]
    assert [line.split()[1] for line in accepted] == [
        "data/transactions-1.csv", "data/transactions-2.csv",
    ]  # fmt: skip
    duplicate = next(line for line in lines if line.startswith("duplicate "))
    assert duplicate.split()[3] == accepted[0].split()[3]
    assert any(line.startswith("rejected   data/transactions-bad.csv  quarantined as q-")
               for line in lines)  # fmt: skip
    assert "(exit code 3: rejected, as expected)" in out
    assert "the export holds 2000 rows" in out
    assert "transactions: 4,000 rows" in out
    assert (tmp_path / "build" / "demo-project" / "export" / "transactions-asof.parquet").is_file()
    assert "batch rejected and kept in quarantine" in result.stderr
