"""The Ray executor: the ``train`` step of a pipeline run as a Ray task, on a local Ray
cluster this module starts (one CPU, no dashboard) and shuts down at its end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftloop.cli import app
from driftloop.cli.init import write_example
from driftloop.errors import MissingExtraError
from driftloop.loop import runs
from driftloop.loop.controller import Controller
from driftloop.loop.executors import StepFailed
from driftloop.loop.ray_executor import RayExecutor
from driftloop.loop.steps import RUN_TAG, existing_version
from driftloop.project import Project

WAIT_S = 180.0
"""How long a test waits for Ray before it gives up (a bound against hangs, not a
timing assertion: Ray starts its workers slowly on a small machine)."""

SLOW_MODEL = '''

def slow_trainer(X, y, params):
    """Says that it runs (its pid, next to this file), then trains for five minutes."""
    import os
    import time
    from pathlib import Path

    Path(__file__).with_name("slow-trainer.pid").write_text(str(os.getpid()))
    time.sleep(300)


slow = ModelSpec(
    "slow",
    task="binary",
    features=["last_transaction:amount"],
    label=Label("transactions", "is_fraud", entity=customer, known_after="1d"),
    trainer=slow_trainer,
    split=TimeSplit(fraction=0.3),
)
'''


def missing_backend(reason: str) -> None:
    """Skip, or fail under ``DRIFTLOOP_REQUIRE_BACKENDS=1`` (the suite's conftest rule)."""
    from tests.conftest import missing_backend as skip_or_fail

    skip_or_fail(reason)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project with both batches, fraud v1 as champion, and a model whose
    trainer never ends on its own."""
    folder = tmp_path_factory.mktemp("ray") / "shop"
    write_example(folder)
    definitions = folder / "definitions.py"
    definitions.write_text(definitions.read_text() + SLOW_MODEL)
    with Project(folder) as project:
        project.apply()
        project.ingest("transactions", folder / "data" / "transactions-1.csv")
        project.ingest("transactions", folder / "data" / "transactions-2.csv")
        project.train("fraud", promote=True)
    return folder


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A local Ray cluster with one CPU, started by the executor's own connection and
    shut down (with every process it started) at the end of the module."""
    try:
        import ray
    except ImportError:
        ray = None
    if ray is None:
        missing_backend("ray is not installed: pip install 'driftloop[ray]'")
        return
    if ray.is_initialized():
        pytest.fail("this process is already connected to a Ray cluster")
    RayExecutor(tmp_path_factory.getbasetemp(), num_cpus=1)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def project(cluster: None, template: Path, tmp_path: Path) -> Iterator[Project]:
    with Project(shutil.copytree(template, tmp_path / "shop")) as opened:
        yield opened


def wait_until(done: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting for {what} after {WAIT_S:g} s")
        time.sleep(0.1)


def run_until_done(controller: Controller, run_id: str) -> runs.PipelineRun:
    def finished() -> bool:
        controller.tick()
        return runs.get_run(controller.store, run_id).finished

    wait_until(finished, f"pipeline run {run_id} to finish")
    return runs.get_run(controller.store, run_id)


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_run_queued_by_hand_is_trained_by_a_ray_task_and_promoted(project: Project) -> None:
    queued = project.start_pipeline_run("fraud", reason="new data")
    controller = project.controller(executor="ray")
    assert isinstance(controller.executor, RayExecutor)
    run = run_until_done(controller, queued.id)
    assert run.state == runs.PROMOTED, run.error
    version = run.outputs["version"]
    assert project.model_aliases("fraud")["champion"] == version
    assert project.model_version("fraud", version).tags[RUN_TAG] == run.id
    _, timeline = project.pipeline_run(run.id)
    steps = [e["step"] for e in timeline if e["kind"] == "step"]
    assert steps == ["started", "training_set", "train", "evaluate", "gate", "register"]


def test_a_failing_task_is_tried_again_then_the_run_fails(project: Project) -> None:
    """A run of a model without a spec: each task's error becomes StepFailed, the
    controller tries three times, then marks the run failed with the step's message."""
    queued = runs.create_run(project.store, "ghost", reason="no such model")
    run = run_until_done(project.controller(executor="ray"), queued.id)
    assert run.state == runs.FAILED
    assert run.attempts == 3
    assert "NotFoundError" in (run.error or "")
    assert "ghost" in (run.error or "")
    _, timeline = project.pipeline_run(run.id)
    assert len([e for e in timeline if e["kind"] == "step_failed"]) == 3


def test_cancel_stops_a_running_task_and_the_processes_it_started(project: Project) -> None:
    queued = project.start_pipeline_run("slow")
    job = RayExecutor(project.root).submit(queued.id, "train")
    started = project.root / "slow-trainer.pid"

    def trainer_running() -> bool:
        assert job.poll() is None
        return started.exists() and started.read_text() != ""

    wait_until(trainer_running, "the slow trainer to start")
    trainer = int(started.read_text())
    job.cancel()
    with pytest.raises(StepFailed, match="TaskCancelledError"):
        job.poll()
    wait_until(lambda: not running(trainer), f"the trainer's process {trainer} to end")
    assert existing_version(project.store, "slow", queued.id) is None


def test_driftloop_run_takes_the_ray_executor_and_its_address(project: Project) -> None:
    """``--ray-address auto`` joins a running cluster: here, the one this process uses."""
    args = ["-p", str(project.root), "run", "--once", "--executor", "ray", "--ray-address", "auto"]
    result = CliRunner().invoke(app, args, env={"DRIFTLOOP_PROJECT": None})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["leader"] is True


def test_a_ray_address_without_the_ray_executor_is_refused(template: Path) -> None:
    args = ["-p", str(template), "run", "--once", "--ray-address", "auto"]
    result = CliRunner().invoke(app, args, env={"DRIFTLOOP_PROJECT": None})
    assert result.exit_code == 2
    assert "--executor ray" in result.stderr


def test_without_ray_the_executor_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does when it is absent
    with pytest.raises(MissingExtraError, match=r"driftloop\[ray\]") as raised:
        RayExecutor(tmp_path)
    assert raised.value.extra == "ray"


def test_importing_driftloop_does_not_import_ray() -> None:
    code = (
        "import sys, driftloop, driftloop.project, driftloop.cli, driftloop.loop.controller; "
        "print('ray' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "False"
