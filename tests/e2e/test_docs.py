"""The Python examples in the README and docs/ run as written."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftloop.cli import app

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _blocks(page: str) -> list[str]:
    return BLOCK.findall((ROOT / page).read_text())


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Path]:
    """An example project made by `driftloop init shop`, with the cwd at its parent."""
    result = CliRunner().invoke(app, ["init", str(tmp_path / "shop")])
    assert result.exit_code == 0, result.output
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path / "shop"
    finally:
        os.chdir(cwd)


def _run(blocks: list[str]) -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": "docs_example"}
    for block in blocks:
        exec(compile(block, "<docs>", "exec"), namespace)
    return namespace


def test_the_readme_python_example_runs(shop: Path) -> None:
    """The README's Python quickstart ingests, rejects, reads, profiles and trains."""
    namespace = _run(_blocks("README.md"))
    assert namespace["table"].num_rows == 2000  # type: ignore[attr-defined]
    assert namespace["card"]["version"] == 1  # type: ignore[index]


def test_the_data_guide_examples_run_in_order(shop: Path) -> None:
    """docs/data.md's examples run one after another in an initialised project."""
    os.chdir(shop)
    namespace = _run(_blocks("docs/data.md"))
    assert namespace["version"].rows == 2000  # type: ignore[attr-defined]
    assert len(namespace["known_then"]) == 1  # type: ignore[arg-type]


def test_the_evaluation_guide_examples_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/evaluation.md's examples run one after another, reach a verdict and write
    the HTML report."""
    monkeypatch.chdir(tmp_path)
    namespace = _run(_blocks("docs/evaluation.md"))
    assert (tmp_path / "fraud-report.html").read_text().startswith("<!DOCTYPE html>")
    assert isinstance(namespace["verdict"].passed, bool)  # type: ignore[attr-defined]
    assert namespace["cost"] >= 0  # type: ignore[operator]


def test_the_training_guide_examples_run_in_order(shop: Path) -> None:
    """docs/training.md trains the example model, repeats it byte for byte, and trains
    a model with a trainer function from the definitions module."""
    namespace = _run(_blocks("docs/training.md"))
    assert namespace["outcome"].version.ref == "fraud/1"  # type: ignore[attr-defined]
    assert namespace["again"].version.version == 2  # type: ignore[attr-defined]
    assert namespace["forest"].run.trainer == "definitions.balanced_forest"  # type: ignore[attr-defined]


def test_the_registry_guide_examples_run_in_order(shop: Path) -> None:
    """docs/registry.md registers, moves, rolls back and diffs versions, then trains one
    and renders its model card."""
    namespace = _run(_blocks("docs/registry.md"))
    assert namespace["markdown"].startswith("# Model card: fraud_gbm v1")  # type: ignore[attr-defined]
    assert namespace["report"]["verdict"]["passed"] in (True, False)  # type: ignore[index]


CONSOLE = re.compile(r"```console\n(.*?)```", re.DOTALL)
DOCS_URL = "http://127.0.0.1:8080"


def _curl_commands(page: str) -> list[str]:
    """The ``$ curl`` commands of the page's console blocks, continuation lines joined
    (a command goes on while a line ends with a backslash or a quote is open)."""
    commands = []
    for block in CONSOLE.findall((ROOT / page).read_text()):
        command: list[str] = []
        for line in block.splitlines():
            if not command and not line.startswith("$ curl"):
                continue
            text = line.removeprefix("$ ").strip()
            command.append(text.removesuffix("\\").strip())
            joined = " ".join(command)
            if not text.endswith("\\") and joined.count("'") % 2 == 0:
                commands.append(joined)
                command = []
    return commands


@pytest.fixture
def serving(shop: Path) -> Iterator[str]:
    """The example project trained, promoted and materialized, served on a free port."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from driftloop.project import Project

    with Project(shop) as project:
        project.apply()
        project.ingest("transactions", shop / "data" / "transactions-1.csv")
        project.train("fraud", promote=True)
        project.materialize()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "driftloop"),
            *("--project", str(shop), "serve", "--port", str(port), "--workers", "2"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def test_the_serving_guide_curl_examples_answer_as_shown(serving: str) -> None:
    """Every curl example of docs/serving.md runs against a real server: predictions
    and feedback succeed, the error example gets its 422 naming the field."""
    import json
    import subprocess

    commands = _curl_commands("docs/serving.md")
    assert len(commands) >= 5
    port = serving.rsplit(":", 1)[1]
    for example in commands:
        command = example.replace("localhost:8080", f"127.0.0.1:{port}")
        command = command.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
        body = json.loads(done.stdout)
        if "lots" in command:
            assert body["field"] == "features.amount"
        elif "/predict" in command:
            assert body["predictions"][0]["version"] == 1, body
        else:
            assert body["accepted"] >= 1, body


def test_the_serving_guide_python_examples_run(serving: str) -> None:
    """docs/serving.md's Python examples (deployments, routing, client, prediction log,
    feedback) run in order, the client against a real server."""
    blocks = [b.replace(DOCS_URL, serving) for b in _blocks("docs/serving.md")]
    namespace = _run(blocks)
    assert namespace["first"].version == 1  # type: ignore[attr-defined]
    assert namespace["ready"] is True


def test_the_monitoring_guide_example_runs() -> None:
    """docs/monitoring.md's example computes all five statistics of a subtle shift."""
    namespace = _run(_blocks("docs/monitoring.md"))
    assert set(namespace["found"]) == {  # type: ignore[arg-type]
        "ks",
        "wasserstein",
        "chisquare",
        "psi",
        "jensenshannon",
    }


def test_the_loop_guide_rollout_examples_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/loop.md's progressive rollout examples run one after another: a policy, then
    a challenger failing 40 % of its predictions is rolled back after one measurement."""
    monkeypatch.chdir(tmp_path)
    page = (ROOT / "docs/loop.md").read_text()
    section = page.split("\n## Progressive rollout\n", 1)[1].split("\n## ", 1)[0]
    namespace = _run(BLOCK.findall(section))
    assert namespace["status"].rollout.state == "rolled_back"  # type: ignore[attr-defined]
    assert [m.status for m in namespace["detail"].measurements] == ["failed", "successful"]  # type: ignore[attr-defined]
