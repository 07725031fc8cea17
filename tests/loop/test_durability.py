"""A controller killed with SIGKILL at random points and started again finishes every
run: no duplicate model versions, no stuck aliases, no step left running."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftloop.cli.init import write_example
from driftloop.loop import runs
from driftloop.loop.steps import RUN_TAG
from driftloop.project import Project

KILLS = 8
FINISH_WITHIN_S = 120.0


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    folder = tmp_path / "shop"
    write_example(folder)
    with Project(folder) as opened:
        opened.apply()
        opened.ingest("transactions", folder / "data" / "transactions-1.csv")
        opened.ingest("transactions", folder / "data" / "transactions-2.csv")
        opened.train("fraud", promote=True)
        yield opened


def start_controller(folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "driftloop"),
            "-p",
            str(folder),
            "run",
            "--interval",
            "0.1",
            "--lease-ttl",
            "1",
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def workers_of(folder: Path) -> list[str]:
    """Step processes still running for this project."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [
        line
        for line in out.stdout.splitlines()
        if "driftloop.loop.worker" in line and str(folder) in line
    ]


def test_a_controller_killed_at_random_points_resumes_every_run(project: Project) -> None:
    rng = random.Random(7)
    queued = [project.start_pipeline_run("fraud", reason=f"run {i}").id for i in range(3)]
    for _ in range(KILLS):
        controller = start_controller(project.root)
        time.sleep(rng.uniform(0.5, 5.0))
        os.killpg(controller.pid, signal.SIGKILL)
        controller.wait()
    controller = start_controller(project.root)
    try:
        deadline = time.monotonic() + FINISH_WITHIN_S
        while time.monotonic() < deadline:
            if all(runs.get_run(project.store, r).finished for r in queued):
                break
            time.sleep(0.2)
    finally:
        controller.send_signal(signal.SIGTERM)
        controller.wait(timeout=30)
    finished = [runs.get_run(project.store, r) for r in queued]
    assert [r.state for r in finished] == [runs.PROMOTED] * 3, [r.error for r in finished]
    versions = project.model_versions("fraud")
    for run in finished:
        tagged = [v.version for v in versions if v.tags.get(RUN_TAG) == run.id]
        assert tagged == [run.outputs["version"]]  # one version per run, never two
    assert len(versions) == 1 + len(finished)
    assert project.model_aliases("fraud")["champion"] == finished[-1].outputs["version"]
    moves = project.alias_history("fraud", "champion")
    assert [m.to_version for m in moves][-3:] == [r.outputs["version"] for r in finished]
    still = [r.id for r in project.runs("fraud") if r.status == "running"]
    assert still == []  # the training runs of killed steps were marked abandoned
    for _ in range(50):  # a killed controller's step ends itself
        if not workers_of(project.root):
            break
        time.sleep(0.1)
    assert workers_of(project.root) == []
