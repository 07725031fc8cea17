"""Traffic strategies on a real ``driftloop serve``: canary, shadow, A/B split, blue-green
and promotion, changed while the server answers.

Every test runs the server in a subprocess (mostly with two workers) and sends it real
HTTP requests. The response does not say which worker answered, and the server gets
nothing added for the tests; instead the clients use keep-alive connections pinned to
known workers: a connection is served by the worker that accepted it, found by the
socket's inode in ``/proc`` (Linux). So every answer is attributed to its worker, and
every worker answers.

A deployment change reaches every worker within one second (``PROPAGATION_S``): a
request sent one second or more after the change returned must be answered by the new
state, on every worker. Before that, either state may answer.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from driftloop.project import Project
from driftloop.serving.predictionlog import read_log
from driftloop.serving.routing import Route, route, routing_value
from driftloop.serving.runtime import LoadedVersion

PROPAGATION_S = 1.0
"""The spec: a deployment change reaches every worker within one second."""
WAIT_S = 30.0
"""How long to wait for something that should happen much sooner (a loaded machine)."""
WORKERS = 2
PACE = 50.0
"""Requests per second of each client, unless a test is about load: saturated workers
would measure the machine (shared with other tests), not the server."""
CUSTOMERS = [f"cu_{n:04d}" for n in range(1, 201)]
DRIFTLOOP = str(Path(sys.executable).parent / "driftloop")
PREDICT = "/v1/models/fraud/predict"

Scores = dict[tuple["Ask", int], float]
"""The score of an instance by a version, computed in this process."""


# --- connections pinned to workers --------------------------------------------------------


class Pinned:
    """A keep-alive HTTP connection to the server, and the worker process serving it."""

    def __init__(self, server: Any) -> None:
        host, port = server.url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=WAIT_S)
        try:
            self.request("GET", "/healthz")  # accepted by a worker from here on
            self.worker = _worker_of(server.pid, int(port), self.connection.sock.getsockname()[1])
        except BaseException:
            self.close()
            raise

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """Send a request; its status and JSON body."""
        data = None if body is None else json.dumps(body).encode()
        self.connection.request(
            method, path, body=data, headers={"content-type": "application/json", **(headers or {})}
        )
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())

    def close(self) -> None:
        self.connection.close()


def _worker_of(server_pid: int, port: int, client_port: int) -> int:
    """The child of ``server_pid`` holding the server side of the connection from
    ``client_port`` to ``port``."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[2].endswith(f":{client_port:04X}"):
            inodes.add(f"socket:[{fields[9]}]")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != server_pid:
                continue
            fds = os.listdir(f"/proc/{entry}/fd")
            if any(os.readlink(f"/proc/{entry}/fd/{fd}") in inodes for fd in fds):
                return int(entry)
        except OSError:  # a process or descriptor that just went away
            continue
    raise LookupError(f"no worker of {server_pid} serves the connection from {client_port}")


def pin(server: Any, per_worker: int) -> list[Pinned]:
    """``per_worker`` connections to each of the server's WORKERS workers (opening new
    ones until the kernel has handed enough to each; waits for a worker still starting)."""
    pinned: dict[int, list[Pinned]] = defaultdict(list)
    deadline = time.monotonic() + WAIT_S
    try:
        while len(pinned) < WORKERS or min(len(c) for c in pinned.values()) < per_worker:
            if time.monotonic() > deadline:
                pytest.fail(f"connections to {WORKERS} workers: only {dict(pinned)}")
            connection = Pinned(server)
            if len(pinned[connection.worker]) < per_worker:
                pinned[connection.worker].append(connection)
            else:
                connection.close()
    except BaseException:
        for connection in itertools.chain(*pinned.values()):
            connection.close()
        raise
    return [c for cs in zip(*pinned.values(), strict=True) for c in cs]


# --- requests and answers ---------------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    """One predict request: a customer, request fields and feature values given."""

    customer: str
    context: tuple[tuple[str, str], ...] = ()
    features: tuple[tuple[str, Any], ...] = ()

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"keys": {"customer_id": self.customer}}
        if self.context:
            body["context"] = dict(self.context)
        if self.features:
            body["features"] = dict(self.features)
        return body

    @property
    def instance(self) -> Ask:
        """What is scored (the request fields only route it)."""
        return Ask(self.customer, features=self.features)

    def key(self, routing_key: str | None = None) -> str:
        """The routing value the server hashes for this request."""
        return routing_value(
            dict(self.context), {"customer_id": self.customer}, routing_key, "unused"
        )


@dataclass
class Answer:
    """What a worker answered to one request (status None: no answer at all)."""

    ask: Ask
    request_id: str
    worker: int
    sent: float
    received: float = 0.0
    status: int | None = None
    body: dict[str, Any] | None = None
    error: str | None = None

    @property
    def prediction(self) -> dict[str, Any]:
        assert self.body is not None, self
        (prediction,) = self.body["predictions"]
        return prediction

    @property
    def route(self) -> Route:
        return Route(self.prediction["version"], self.prediction["role"])

    @property
    def version(self) -> int:
        return self.route.version


class Traffic:
    """Clients in threads, ``per_worker`` pinned to each worker, sending ``asks`` round
    and round, each request with its own id, ``rate`` requests per second each (None:
    as fast as answered), until stopped; every answer (or failure) is recorded with its
    worker and when it was sent."""

    def __init__(
        self,
        server: Any,
        asks: Sequence[Ask],
        *,
        per_worker: int = 2,
        rate: float | None = PACE,
    ) -> None:
        self.asks = list(asks)
        self.interval = 0.0 if rate is None else 1.0 / rate
        self.pinned = pin(server, per_worker)
        self._answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i, c), daemon=True)
            for i, c in enumerate(self.pinned)
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(WAIT_S)
        for connection in self.pinned:
            connection.close()

    @property
    def answers(self) -> list[Answer]:
        with self._lock:
            return list(self._answers)

    def wait(self, condition: Callable[[list[Answer]], bool], what: str) -> None:
        """Wait (at most WAIT_S) until the answers so far satisfy ``condition``."""
        wait_until(lambda: condition(self.answers), what)

    def _run(self, index: int, pinned: Pinned) -> None:
        start = index * len(self.asks) // len(self.pinned)
        due = time.monotonic()
        for n, ask in enumerate(itertools.islice(itertools.cycle(self.asks), start, None)):
            due += self.interval
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            answer = Answer(ask, f"rq-{index}-{n}", pinned.worker, time.monotonic())
            try:
                answer.status, answer.body = pinned.request(
                    "POST", PREDICT, ask.body(), {"x-request-id": answer.request_id}
                )
            except Exception as exc:  # recorded: the tests assert there is none
                answer.error = repr(exc)
            answer.received = time.monotonic()
            with self._lock:
                self._answers.append(answer)
            if answer.error is not None:
                return  # the connection is unusable


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> float:
    """Poll ``condition`` until it holds; the time it took. Fails after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not within {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - started


def failures(answers: Iterable[Answer]) -> list[Answer]:
    return [a for a in answers if a.status != 200]


def new_client() -> httpx.Client:
    """A client opening a new connection per request (answered by either worker)."""
    return httpx.Client(timeout=WAIT_S, limits=httpx.Limits(max_keepalive_connections=0))


def predict(url: str, ask: Ask, request_id: str) -> dict[str, Any]:
    with new_client() as client:
        response = client.post(
            f"{url}{PREDICT}", json=ask.body(), headers={"x-request-id": request_id}
        )
    assert response.status_code == 200, response.text
    return response.json()


def metric(url: str, name: str) -> float:
    """The value of a metric summed over its labels (and over the workers)."""
    text = httpx.get(f"{url}/metrics", timeout=WAIT_S).text
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))


# --- what the server wrote -----------------------------------------------------------------


def predictions_root(project_dir: Path) -> Path:
    with Project(project_dir) as project:
        return project.config.serving.predictions


def log_records(project_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Request id -> its prediction records, as read back from the log."""
    table = read_log(predictions_root(project_dir), "fraud")
    records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in table.select(
        ["request_id", "instance", "version", "role", "prediction"]
    ).to_pylist():
        records[row["request_id"]].append(row)
    return records


def by_worker(answers: Iterable[Answer]) -> dict[int, list[Answer]]:
    grouped: dict[int, list[Answer]] = defaultdict(list)
    for answer in answers:
        grouped[answer.worker].append(answer)
    return grouped


def by_customer(answers: Iterable[Answer]) -> dict[str, dict[int, list[Answer]]]:
    """Customer -> worker -> the answers it gave about that customer."""
    grouped: dict[str, dict[int, list[Answer]]] = defaultdict(lambda: defaultdict(list))
    for answer in answers:
        grouped[answer.ask.customer][answer.worker].append(answer)
    return grouped


def by_session(answers: Iterable[Answer]) -> dict[str, set[int]]:
    """Session -> the workers that answered requests of that session."""
    grouped: dict[str, set[int]] = defaultdict(set)
    for answer in answers:
        if answer.ask.context:
            grouped[dict(answer.ask.context)["session"]].add(answer.worker)
    return grouped


def assert_propagated(
    answers: Sequence[Answer],
    changed: float,
    *,
    before: Callable[[Ask], Route] | None,
    after: Callable[[Ask], Route],
    record: Callable[[str, object], None],
    what: str,
) -> None:
    """Each request sent after the change is answered as the state ``before`` or
    ``after`` it routes (None: any other way), and each sent PROPAGATION_S or more after
    it as ``after`` routes, on every worker (each of which answered such requests).

    Records, per worker, when the change became visible for good: after the latest
    send of a request answered the old way, and by the earliest receipt of one sent
    after it and answered the new way, among the requests the change reroutes."""
    since = [a for a in answers if a.sent >= changed]
    if before is not None:
        odd = [a for a in since if a.route not in {before(a.ask), after(a.ask)}]
        assert not odd, f"{what}: answered neither as before nor as after: {odd[:3]}"
    late = [a for a in since if a.sent >= changed + PROPAGATION_S]
    grouped = by_worker(late)
    assert len(grouped) == WORKERS, f"{what}: only workers {sorted(grouped)} answered after 1 s"
    stale = [a for a in late if a.route != after(a.ask)]
    assert not stale, (
        f"{what}: {len(stale)} of {len(late)} requests sent {PROPAGATION_S}s or more after the "
        f"change were answered by the old state, e.g. one sent "
        f"{stale[0].sent - changed:.3f}s after: {stale[0].body}"
    )
    brackets = {}
    for pid, group in by_worker(since).items():
        rerouted = [a for a in group if before is None or before(a.ask) != after(a.ask)]
        last_old = max((a.sent for a in rerouted if a.route != after(a.ask)), default=changed)
        first_new = min(
            (a.received for a in rerouted if a.route == after(a.ask) and a.sent >= last_old),
            default=float("nan"),
        )
        brackets[pid] = f"{last_old - changed:.3f}..{first_new - changed:.3f}s"
    record(f"propagation {what}", brackets)


# --- expected scores --------------------------------------------------------------------


def scores_of(project: Project, versions: Iterable[int], asks: Iterable[Ask]) -> Scores:
    """The score each version computes in-process for each ask (one instance at a time,
    as the server scores a request of one instance)."""
    scores: Scores = {}
    instances = {ask.instance for ask in asks}
    for version in versions:
        loaded = LoadedVersion.load(project._features(), project.model_version("fraud", version))
        for instance in instances:
            served = loaded.features(
                project.online,
                1,
                keys=pa.table({"customer_id": [instance.customer]}),
                values={name: [value] for name, value in instance.features},
            )
            (scores[instance, version],) = loaded.score(served.table).score.tolist()
    return scores


def expected_score(expected: Scores, answer: Answer) -> float:
    return expected[answer.ask.instance, answer.version]


def assert_scored_by_the_named_version(answers: Iterable[Answer], expected: Scores) -> None:
    wrong = [a for a in answers if a.prediction["score"] != expected_score(expected, a)]
    assert not wrong, (
        f"{len(wrong)} predictions do not have the score of the version they name, e.g. "
        f"{wrong[0].ask} -> {wrong[0].prediction}, expected "
        f"{expected_score(expected, wrong[0])}"
    )


@pytest.fixture(scope="module")
def expected(served_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Scores:
    """Every customer's score by version 1 and version 2, computed in this process."""
    folder = Path(shutil.copytree(served_template, tmp_path_factory.mktemp("expected") / "shop"))
    with Project(folder) as project:
        return scores_of(project, (1, 2), [Ask(c) for c in CUSTOMERS])


@pytest.fixture
def measured(request: pytest.FixtureRequest) -> Callable[[str, object], None]:
    """Record a measurement (e.g. a propagation time) in the test's report properties."""
    return lambda name, value: request.node.user_properties.append((name, value))


@pytest.fixture
def project(served_project: Path) -> Iterator[Project]:
    with Project(served_project) as opened:
        yield opened


def canary_route(ask: Ask, weight: float) -> Route:
    return route(champion=1, canary=2, canary_weight=weight, key=ask.key())


def deploy_cli(project_dir: Path, *args: str) -> float:
    """Run ``driftloop deploy fraud ARGS`` for real; the time it returned."""
    done = subprocess.run(
        [DRIFTLOOP, "--project", str(project_dir), "deploy", "fraud", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return time.monotonic()


# --- canary -----------------------------------------------------------------------------


def test_a_canary_serves_its_share_of_customers_on_every_worker_within_a_second(
    start_server: Callable[..., Any],
    served_project: Path,
    project: Project,
    expected: Scores,
    measured: Callable[[str, object], None],
) -> None:
    """deploy_canary(fraud, 2, 30) while the server answers: from one second after it,
    each worker sends the customers whose bucket falls in the first 30 percent to v2
    (role canary) and the rest to v1 (champion), as routing.route computes it; a
    customer gets the same version on every request and every worker."""
    server = start_server(served_project, "--workers", "2")
    asks = [Ask(c) for c in CUSTOMERS]
    with Traffic(server, asks) as traffic:
        traffic.wait(lambda a: len(a) >= 100, "traffic before the change")
        before = time.monotonic()
        project.deploy_canary("fraud", 2, 30)
        changed = time.monotonic()

        def covered(answers: list[Answer]) -> bool:
            late = by_customer(a for a in answers if a.sent >= changed + PROPAGATION_S)
            return len(late) == len(asks) and all(len(w) == WORKERS for w in late.values())

        traffic.wait(covered, "every customer answered by every worker after the change")
    server.stop()

    answers = traffic.answers
    assert not failures(answers), failures(answers)[:3]
    assert_scored_by_the_named_version(answers, expected)
    assert {a.route for a in answers if a.received <= before} == {Route(1, "champion")}
    for answer in answers:
        assert answer.route in {Route(1, "champion"), canary_route(answer.ask, 30)}, answer

    assert_propagated(
        answers,
        changed,
        before=lambda _: Route(1, "champion"),
        after=lambda ask: canary_route(ask, 30),
        record=measured,
        what="canary",
    )
    late = by_customer(a for a in answers if a.sent >= changed + PROPAGATION_S)
    versions = {c: {a.version for g in w.values() for a in g} for c, w in late.items()}
    assert all(len(w) == WORKERS for w in late.values())
    assert all(len(v) == 1 for v in versions.values())  # sticky, on every worker
    on_canary = {c for c, v in versions.items() if v == {2}}
    assert on_canary == {c for c in CUSTOMERS if canary_route(Ask(c), 30).version == 2}
    assert 0.2 <= len(on_canary) / len(CUSTOMERS) <= 0.4


def test_each_prediction_is_computed_by_the_version_it_names(
    start_server: Callable[..., Any],
    served_project: Path,
    project: Project,
    expected: Scores,
) -> None:
    """With a canary at 50 percent, single requests and batches mixing both versions:
    each prediction's score is the one its named version computes in-process for that
    instance, and its log record names the same version, role and score."""
    project.deploy_canary("fraud", 2, 50)
    server = start_server(served_project, "--workers", "2")
    asks = [Ask(c) for c in CUSTOMERS[:60]]
    singles = {f"one-{i}": predict(server.url, ask, f"one-{i}") for i, ask in enumerate(asks)}
    batches = {}
    with new_client() as client:
        for i in range(0, len(asks), 12):
            request_id = f"batch-{i}"
            response = client.post(
                f"{server.url}/v1/models/fraud/predict",
                json={"instances": [{"keys": ask.body()["keys"]} for ask in asks[i : i + 12]]},
                headers={"x-request-id": request_id},
            )
            assert response.status_code == 200, response.text
            batches[request_id] = (asks[i : i + 12], response.json())
    server.stop()

    records = log_records(served_project)
    seen_routes = set()
    for (request_id, body), ask in zip(singles.items(), asks, strict=True):
        answer = Answer(ask, request_id, 0, 0.0, status=200, body=body)
        assert answer.route == canary_route(ask, 50)
        assert answer.prediction["score"] == expected[ask, answer.version]
        (record,) = records[request_id]
        assert (record["version"], record["role"]) == (answer.version, answer.route.role)
        assert record["prediction"] == answer.prediction["score"]
        seen_routes.add(answer.route)
    assert seen_routes == {Route(1, "champion"), Route(2, "canary")}
    for request_id, (batch, body) in batches.items():
        logged = {r["instance"]: r for r in records[request_id]}
        assert len(body["predictions"]) == len(logged) == len(batch)
        for i, (ask, prediction) in enumerate(zip(batch, body["predictions"], strict=True)):
            assert Route(prediction["version"], prediction["role"]) == canary_route(ask, 50)
            assert prediction["score"] == expected[ask, prediction["version"]]
            record = logged[i]
            assert (record["version"], record["role"], record["prediction"]) == (
                prediction["version"],
                prediction["role"],
                prediction["score"],
            )
    assert any(len({p["version"] for p in b["predictions"]}) == 2 for _, b in batches.values())


# --- shadow -------------------------------------------------------------------------------


def test_a_shadow_version_scores_a_copy_of_every_request_and_never_answers(
    start_server: Callable[..., Any],
    served_project: Path,
    project: Project,
    expected: Scores,
) -> None:
    """deploy_shadow(fraud, 2): every response comes from the champion (v1); the log,
    read after SIGTERM, holds for every request a champion record and a shadow record
    of version 2 with version 2's score."""
    project.deploy_shadow("fraud", 2)
    server = start_server(served_project, "--workers", "2")
    with Traffic(server, [Ask(c) for c in CUSTOMERS]) as traffic:
        traffic.wait(lambda a: len(a) >= 200, "200 answers")
    assert server.stop() == 0

    answers = traffic.answers
    assert not failures(answers), failures(answers)[:3]
    assert {a.route for a in answers} == {Route(1, "champion")}
    assert_scored_by_the_named_version(answers, expected)
    records = log_records(served_project)
    for answer in answers:
        by_role = {r["role"]: r for r in records[answer.request_id]}
        assert set(by_role) == {"champion", "shadow"}, records[answer.request_id]
        assert by_role["shadow"]["version"] == 2
        assert by_role["shadow"]["prediction"] == expected[answer.ask, 2]
        assert by_role["champion"]["prediction"] == answer.prediction["score"]


def test_a_failing_shadow_never_affects_the_answers(
    start_server: Callable[..., Any],
    served_project: Path,
    project: Project,
    expected: Scores,
) -> None:
    """A shadow version trained without the input 'channel' fails on every request that
    gives 'channel' as a feature value (an unknown feature for it), while the champion
    uses the value: those requests are answered by the champion as usual, the failures
    are counted in driftloop_shadow_errors_total, and the other requests are shadowed."""
    definitions = served_project / "definitions.py"
    source = definitions.read_text()
    assert '"last_transaction:channel",\n' in source
    definitions.write_text(source.replace('"last_transaction:channel",\n', "", 1))
    with Project(served_project) as changed:
        trained = changed.train("fraud")
        assert "channel" not in {c["name"] for c in trained.version.signature["inputs"]}
    shadow = trained.version.version
    project.deploy_shadow("fraud", shadow)

    overriding = [Ask(c, features=(("channel", "web"),)) for c in CUSTOMERS[:40]]
    plain = [Ask(c) for c in CUSTOMERS[40:80]]
    expected = {**expected, **scores_of(project, (1,), overriding)}
    server = start_server(served_project, "--workers", "2")
    with Traffic(server, [*overriding, *plain]) as traffic:
        traffic.wait(lambda a: len(a) >= 240, "240 answers")
    failed = [a for a in traffic.answers if a.ask.features]
    wait_until(
        lambda: metric(server.url, "driftloop_shadow_errors_total") == len(failed),
        "every failed shadow copy counted",
    )
    assert server.stop() == 0

    answers = traffic.answers
    assert not failures(answers), failures(answers)[:3]
    assert {a.route for a in answers} == {Route(1, "champion")}
    assert_scored_by_the_named_version(answers, expected)
    # the champion used the value given (scored otherwise than with the looked-up one)
    assert any(expected[ask, 1] != expected[Ask(ask.customer), 1] for ask in overriding)
    records = log_records(served_project)
    for answer in answers:
        logged = sorted((r["role"], r["version"]) for r in records[answer.request_id])
        if answer.ask.features:
            assert logged == [("champion", 1)]
        else:
            assert logged == [("champion", 1), ("shadow", shadow)]


def test_a_full_shadow_queue_drops_copies_and_counts_them_without_failing_requests(
    start_server: Callable[..., Any],
    served_project: Path,
    project: Project,
) -> None:
    """With room for one shadow copy per worker, a burst of concurrent requests is all
    answered (200); the copies that did not fit are counted in
    driftloop_shadow_dropped_total, and every other copy is in the log."""
    project.deploy_shadow("fraud", 2)
    server = start_server(
        served_project, "--workers", "2", env={"DRIFTLOOP_SERVING_SHADOW_QUEUE": "1"}
    )
    traffic = Traffic(server, [Ask(c) for c in CUSTOMERS], per_worker=6, rate=None)
    with traffic:
        wait_until(
            lambda: metric(server.url, "driftloop_shadow_dropped_total") > 0, "a dropped copy"
        )
        traffic.wait(lambda a: len(a) >= 300, "300 answers")
    dropped = metric(server.url, "driftloop_shadow_dropped_total")
    assert server.stop() == 0

    answers = traffic.answers
    assert not failures(answers), failures(answers)[:3]
    records = log_records(served_project)
    shadowed = sum(1 for rs in records.values() for r in rs if r["role"] == "shadow")
    assert dropped > 0
    assert shadowed + dropped == len(answers)


# --- A/B split ----------------------------------------------------------------------------


def test_an_ab_split_assigns_each_session_to_one_arm_on_every_worker(
    start_server: Callable[..., Any],
    served_project: Path,
    project: Project,
    expected: Scores,
) -> None:
    """A 50/50 split of v1 (arm a) and v2 (arm b) routed by the request field 'session':
    a session keeps its arm whichever customer it asks about and whichever worker
    answers, as routing.route computes it; a request without a session is routed by its
    entity keys."""
    project.deploy_routing_key("fraud", "session")
    project.deploy_split("fraud", {"a": 1, "b": 2}, {"a": 50, "b": 50})
    server = start_server(served_project, "--workers", "2")
    sessions = [f"s-{n}" for n in range(1, 41)]
    asks = [
        Ask(CUSTOMERS[(7 * i) % len(CUSTOMERS)], context=(("session", sessions[i % 40]),))
        for i in range(200)
    ]
    asks += [Ask(c) for c in CUSTOMERS[:40]]  # no session

    def covered(answers: list[Answer]) -> bool:
        workers = by_session(answers)
        return len(workers) == len(sessions) and all(len(w) == WORKERS for w in workers.values())

    with Traffic(server, asks) as traffic:
        traffic.wait(lambda a: len(a) >= len(asks) and covered(a), "every session on each worker")
    server.stop()

    answers = traffic.answers
    assert not failures(answers), failures(answers)[:3]
    assert_scored_by_the_named_version(answers, expected)
    split = {"a": 1, "b": 2}
    weights = {"a": 50.0, "b": 50.0}
    arms: dict[str, set[Route]] = defaultdict(set)
    for answer in answers:
        key = answer.ask.key("session")
        assert answer.route == route(champion=1, split=split, split_weights=weights, key=key)
        arms[key].add(answer.route)
    assert all(len(a) == 1 for a in arms.values())
    assert {r for a in arms.values() for r in a} == {Route(1, "split:a"), Route(2, "split:b")}
    answered_by = by_session(answers)  # so each session kept its arm on every worker
    assert set(answered_by) == set(sessions)
    assert all(len(workers) == WORKERS for workers in answered_by.values())


# --- blue-green ---------------------------------------------------------------------------


def test_a_staged_version_is_loaded_on_every_worker_before_the_switch_serves_it(
    start_server: Callable[..., Any],
    served_project: Path,
    project: Project,
    expected: Scores,
    measured: Callable[[str, object], None],
) -> None:
    """stage(fraud, 2) while v1 answers everything: within a second GET
    /v1/models/fraud on every worker shows v2 staged and loaded (a worker never shows
    it staged before it is loaded), and still only v1 answers. switch(fraud): within a
    second every response on every worker says version 2, and no request fails."""
    server = start_server(served_project, "--workers", "2")
    views = pin(server, 1)
    try:
        with Traffic(server, [Ask(c) for c in CUSTOMERS]) as traffic:
            traffic.wait(lambda a: len(a) >= 100, "traffic before staging")
            project.stage("fraud", 2)
            staged = time.monotonic()
            seen = []  # (worker, sent after staging, its view of the model)
            while time.monotonic() < staged + PROPAGATION_S + 0.5:
                for view in views:
                    sent = time.monotonic() - staged
                    status, body = view.request("GET", "/v1/models/fraud")
                    assert status == 200, body
                    seen.append((view.worker, sent, body))
            traffic.wait(lambda a: len(a) >= 300, "traffic while staged")
            switch_started = time.monotonic()
            project.switch("fraud")
            switched = time.monotonic()
            traffic.wait(
                lambda a: sum(x.sent >= switched + PROPAGATION_S for x in a) >= 200,
                "200 requests after the switch",
            )
    finally:
        for view in views:
            view.close()
    assert server.stop() == 0

    for worker, sent, view in seen:
        assert view["deployment"]["staged"] in (None, 2), view
        if view["deployment"]["staged"] == 2:
            assert view["loaded"] == [1, 2], view  # published only once loaded
        if sent >= PROPAGATION_S:
            assert view["deployment"]["staged"] == 2, (worker, sent, view)
    for worker in {w for w, _, _ in seen}:
        old = [t for w, t, v in seen if w == worker and v["deployment"]["staged"] is None]
        new = [t for w, t, v in seen if w == worker and v["deployment"]["staged"] == 2]
        measured(f"staged on {worker}", f"{max(old, default=0.0):.3f}..{min(new):.3f}s")
    answers = traffic.answers
    assert not failures(answers), failures(answers)[:3]
    assert_scored_by_the_named_version(answers, expected)
    assert {a.route for a in answers if a.received <= switch_started} == {Route(1, "champion")}
    assert {a.route for a in answers} == {Route(1, "champion"), Route(2, "champion")}
    assert_propagated(
        answers,
        switched,
        before=lambda _: Route(1, "champion"),
        after=lambda _: Route(2, "champion"),
        record=measured,
        what="switch",
    )


# --- switching under load -----------------------------------------------------------------


def test_switching_the_champion_repeatedly_under_load_fails_no_request(
    start_server: Callable[..., Any],
    served_project: Path,
    project: Project,
    expected: Scores,
    measured: Callable[[str, object], None],
) -> None:
    """Concurrent clients on a two-worker server while the champion moves between v1
    and v2 twenty times, about every 0.3 s, by stage+switch, canary at 100 + promote and
    moving the champion alias: every request is answered 200, each score is the one
    the version it names computes, both versions answer, the log names the same version
    as each response, and a second after the last switch only its version answers."""
    server = start_server(served_project, "--workers", "2")
    moves, last = 0, 0.0
    with Traffic(server, [Ask(c) for c in CUSTOMERS], per_worker=3, rate=None) as traffic:
        traffic.wait(lambda a: len(a) >= 100, "traffic before switching")
        champion = 1
        for moves in range(1, 21):
            other = 3 - champion
            if moves % 3 == 1:
                project.stage("fraud", other)
                project.switch("fraud")
            elif moves % 3 == 2:
                project.deploy_canary("fraud", other, 100)
                project.promote("fraud")
            else:
                project.set_alias("fraud", "champion", other)
            champion = other
            last = time.monotonic()
            time.sleep(0.3)  # the pace of the switches, not a wait for a result
        traffic.wait(
            lambda a: sum(x.sent >= last + PROPAGATION_S for x in a) >= 300,
            "300 requests after the last switch",
        )
    assert server.stop() == 0

    answers = traffic.answers
    measured("requests", len(answers))
    measured("rate (per s)", round(len(answers) / (answers[-1].sent - answers[0].sent)))
    assert moves == 20
    assert champion == 1
    assert not failures(answers), f"{len(failures(answers))} failed, e.g. {failures(answers)[:3]}"
    assert_scored_by_the_named_version(answers, expected)
    seen = Counter(a.route for a in answers)
    assert set(seen) <= {
        Route(1, "champion"),
        Route(2, "champion"),
        Route(1, "canary"),
        Route(2, "canary"),
    }
    assert seen[Route(1, "champion")] > 50, seen
    assert seen[Route(2, "champion")] > 50, seen
    records = log_records(served_project)
    for answer in answers:
        (record,) = records[answer.request_id]
        assert Route(record["version"], record["role"]) == answer.route
        assert record["prediction"] == answer.prediction["score"]
    assert_propagated(
        answers,
        last,
        before=None,  # canary v1 at 100 percent: every request is rerouted
        after=lambda _: Route(1, "champion"),
        record=measured,
        what="last switch",
    )


# --- the CLI ------------------------------------------------------------------------------


def test_the_deploy_cli_changes_what_a_running_server_answers_within_a_second(
    start_server: Callable[..., Any],
    served_project: Path,
    expected: Scores,
    measured: Callable[[str, object], None],
) -> None:
    """driftloop deploy fraud --canary 2 --weight 10, then --promote, --shadow 1 and
    --abort: a second after each command returns, every worker answers as the new
    deployment says, and shadows exactly while a shadow is set."""
    on_canary = [c for c in CUSTOMERS if canary_route(Ask(c), 10).version == 2]
    asks = [Ask(c) for c in on_canary[:15] + CUSTOMERS[:15]]

    def canary(ask: Ask) -> Route:
        return canary_route(ask, 10)

    def champion(version: int) -> Callable[[Ask], Route]:
        return lambda _: Route(version, "champion")

    # (arguments, how requests are routed after the command, the shadow version after it)
    steps: list[tuple[tuple[str, ...], Callable[[Ask], Route], int | None]] = [
        (("--canary", "2", "--weight", "10"), canary, None),
        (("--promote",), champion(2), None),
        (("--shadow", "1"), champion(2), 1),
        (("--abort",), champion(2), None),
    ]
    server = start_server(served_project, "--workers", "2")
    phases = []
    with Traffic(server, asks) as traffic:
        traffic.wait(lambda a: len(a) >= 50, "traffic before the first command")
        for args, _, _ in steps:
            started = time.monotonic()
            done = deploy_cli(served_project, *args)
            phases.append((started, done))
            traffic.wait(
                lambda a, done=done: sum(x.sent >= done + PROPAGATION_S for x in a) >= 150,
                f"150 requests a second after deploy {' '.join(args)}",
            )
        phases.append((time.monotonic(), 0.0))
    assert server.stop() == 0

    answers = traffic.answers
    assert not failures(answers), failures(answers)[:3]
    assert_scored_by_the_named_version(answers, expected)
    assert {a.route for a in answers if a.received <= phases[0][0]} == {Route(1, "champion")}
    records = log_records(served_project)
    before = champion(1)
    for (args, after, shadow), (_, done), (end, _) in zip(steps, phases, phases[1:], strict=False):
        during = [a for a in answers if done <= a.sent < end]
        what = "deploy " + " ".join(args)
        assert_propagated(during, done, before=before, after=after, record=measured, what=what)
        for answer in during:
            if answer.sent >= done + PROPAGATION_S:
                shadows = [
                    r["version"] for r in records[answer.request_id] if r["role"] == "shadow"
                ]
                assert shadows == ([] if shadow is None else [shadow]), (what, answer)
        before = after
