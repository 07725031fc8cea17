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
