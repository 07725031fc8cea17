"""The dashboard's routes, under ``/ui``: mounted in ``driftloop serve``'s app, or run
alone by ``driftloop ui``.

- ``GET /ui/`` the overview; ``/ui/models/{model}`` (and its ``monitoring``, window,
  diff and card pages), ``/ui/runs`` and ``/ui/runs/{run}``, ``/ui/lineage/...`` and
  ``/ui/predictions/...``, ``/ui/data``, ``/ui/sources/{source}``,
  ``/ui/datasets/{id}``, ``/ui/quarantine/{entry}``: pages (with
  ``x-driftloop-fragment: main`` only their ``<main>``, for the live refresh); a long
  table pages back with its own query parameter (``?windows=200``);
- ``GET /ui/api/...{.json|.csv}``: every table as data (``offset`` and ``limit`` for
  the long ones), and ``/ui/api/server.json`` the prediction server's health;
- ``POST /ui/models/{model}/rollback|promote`` and ``/ui/rollouts/{id}/abort``: the
  CLI's levers, each refused (400) unless the form's ``confirm`` field repeats the
  model's name or the rollout's id — the page's confirmation dialog fills it in;
- ``GET /ui/static/ui.css|ui.js``: the package's own style and script.

The pieces a page assembles come from :mod:`driftloop.ui.tables` (one function per
table) and :mod:`driftloop.ui.sections`. Errors are JSON bodies with the status of the
:mod:`driftloop.errors` exception.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from driftloop.errors import DriftloopError, InputError, NotFoundError
from driftloop.ui import pages, sections, tables
from driftloop.ui.charts import time_chart
from driftloop.ui.health import HealthProbe, health_table
from driftloop.ui.pages import layout, lever, render_table

if TYPE_CHECKING:
    from driftloop.project import Project

__all__ = ["ui_routes"]

_REFRESH_SECONDS = 5
_RUN_LINKS: dict[str, pages.Link] = {"run": "/ui/runs/{value}", "model": "/ui/models/{value}"}
_SOURCE_LINKS: dict[str, pages.Link] = {"source": "/ui/sources/{value}"}


def _error(exc: DriftloopError) -> JSONResponse:
    body = {"error": {"code": exc.code, "message": str(exc)}}
    return JSONResponse(body, status_code=exc.http_status)


def _page(request: Request, project: Project, title: str, here: str, main: str) -> Response:
    if request.headers.get("x-driftloop-fragment") == "main":
        return HTMLResponse(main)
    return HTMLResponse(
        layout(title, here, main, project=project.config.name, refresh=_REFRESH_SECONDS)
    )


_MAX_LIMIT = 1000


def _whole(request: Request, key: str, default: int, *, most: int | None = None) -> int:
    """A whole-number query parameter (``offset``, ``limit``, a table's page), or a 400
    naming it."""
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or (most is not None and int(raw) > most):
        bound = f" from 0 to {most:,}" if most is not None else ""
        raise InputError(f"{key}={raw!r} must be a whole number{bound}", field=key)
    return int(raw)


def _offset(request: Request, key: str = "offset") -> int:
    return _whole(request, key, 0)


def _limit(request: Request, default: int = 100) -> int:
    return max(1, _whole(request, "limit", default, most=_MAX_LIMIT))


def _pager(request: Request, key: str) -> Callable[[int], str]:
    """The URL of this page with the table ``key`` at another offset."""
    from urllib.parse import urlencode

    def url(offset: int) -> str:
        params = {k: v for k, v in request.query_params.items() if k != key}
        if offset:
            params[key] = str(offset)
        return request.url.path + (f"?{urlencode(params)}" if params else "")

    return url


def _export(table: tables.UiTable, fmt: str) -> Response:
    if fmt == "csv":
        return Response(
            table.to_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{table.name}.csv"'},
        )
    if fmt == "json":
        return JSONResponse(table.to_json())
    raise NotFoundError("export format", fmt, known=["json", "csv"])


def ui_routes(
    get_project: Callable[[], Project], health: HealthProbe | None = None
) -> list[BaseRoute]:
    """The dashboard's routes over the project ``get_project()`` returns; ``health``
    tells the prediction server's health (the overview shows it when given)."""

    def guarded(handler: Callable[[Request, Project], Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return handler(request, get_project())
            except DriftloopError as exc:
                return _error(exc)

        return endpoint

    def overview(request: Request, project: Project) -> Response:
        models = tables.model_overview(project)
        main = (
            "<h1>Overview</h1>"
            + render_table(
                models,
                "/ui/api/models",
                links={"model": "/ui/models/{value}", "last_run": "/ui/runs/{value}"},
            )
            + render_table(tables.sources(project), "/ui/api/sources", links=_SOURCE_LINKS)
            + (render_table(health_table(health()), "/ui/api/server") if health else "")
            + render_table(tables.controller(project), "/ui/api/controller")
            + render_table(
                tables.pipeline_runs(project, limit=10), "/ui/api/runs", links=_RUN_LINKS
            )
        )
        return _page(request, project, "Overview", "/ui/", main)

    def model_page(request: Request, project: Project) -> Response:
        model = request.path_params["model"]
        versions = tables.model_versions(project, model, offset=_offset(request, "versions"))
        aliases = project.model_aliases(model)
        levers = ""
        if "champion" in aliases:
            levers = lever(
                f"/ui/models/{model}/rollback",
                "Roll back the champion",
                f"Roll {model} back from version {aliases['champion']} to the version before it?",
                model,
            )
        active = [r for r in project.rollouts(model, limit=20) if not r.finished_at]
        for r in active:
            levers += " " + lever(
                f"/ui/rollouts/{r.id}/abort",
                f"Abort rollout {r.id}",
                f"Abort rollout {r.id} of {model} (version {r.version})?",
                str(r.id),
            )
        deployment = project.deployment(model)
        if deployment.canary is not None:
            levers += " " + lever(
                f"/ui/models/{model}/promote",
                f"Promote canary v{deployment.canary}",
                f"Make version {deployment.canary} the champion of {model}?",
                model,
            )
        serving = ", ".join(f"{a} v{v}" for a, v in sorted(aliases.items())) or "nothing"
        champion = aliases.get("champion")
        latest = versions.rows[0][0] if versions.rows else None
        name = pages._e(model)
        links = [
            f'<a href="/ui/models/{name}/monitoring">monitoring: drift, quality, latency, '
            "alerts</a>"
        ]
        if champion is not None:
            links.append(f'<a href="/ui/models/{name}/card/{champion}">model card</a>')
        if champion is not None and latest is not None and latest != champion:
            links.append(
                f'<a href="/ui/models/{name}/diff?a={champion}&amp;b={latest}">'
                f"v{champion} against v{latest}</a>"
            )
        main = (
            f"<h1>{name}</h1>"
            f'<p>serving: <span id="aliases">{pages._e(serving)}</span> {levers}</p>'
            f"<p>{' · '.join(links)}</p>"
            + sections.metric_charts(project, model, versions)
            + render_table(
                versions,
                f"/ui/api/models/{model}/versions",
                links={"version": f"/ui/lineage/{model}/{{value}}"},
                pager=_pager(request, "versions"),
            )
            + render_table(
                tables.recent_predictions(project, model),
                f"/ui/api/models/{model}/predictions",
                links={"request_id": sections.prediction_link(model)},
            )
            + sections.alias_section(
                project, model, offset=_offset(request, "aliases"), pager=_pager(request, "aliases")
            )
            + render_table(
                tables.rollouts(project, model, offset=_offset(request, "rollouts")),
                "/ui/api/rollouts",
                links=_RUN_LINKS,
                pager=_pager(request, "rollouts"),
            )
            + render_table(
                tables.pipeline_runs(project, model, offset=_offset(request, "runs")),
                "/ui/api/runs",
                links=_RUN_LINKS,
                pager=_pager(request, "runs"),
            )
        )
        return _page(request, project, model, "", main)

    def diff_page(request: Request, project: Project) -> Response:
        """What differs between two versions: metrics, tags, signature, lineage."""
        model = request.path_params["model"]
        a, b = request.query_params.get("a"), request.query_params.get("b")
        if not a or not b:
            raise InputError("give the two versions to compare: ?a=1&b=2", field="a")
        diff = project.diff_models(model, a, b)
        parts = [f"<h1>{pages._e(model)}: v{pages._e(a)} against v{pages._e(b)}</h1>"]
        for section in ("metrics", "tags", "signature", "lineage"):
            changed = getattr(diff, section)
            table = tables.UiTable(
                f"{model}-diff-{section}", ["key", f"v{a}", f"v{b}"], title=section
            )
            for key, (left, right) in sorted(changed.items()):
                table.rows.append([key, sections.short(left), sections.short(right)])
            parts.append(render_table(table, f"/ui/api/models/{model}/versions"))
        return _page(request, project, f"{model} diff", "", "".join(parts))

    def card_page(request: Request, project: Project) -> Response:
        """The version's model card (the HTML `driftloop models card` writes)."""
        from driftloop.registry.cards import card_html

        model, version = request.path_params["model"], request.path_params["version"]
        return HTMLResponse(card_html(project.model_card(model, int(version))))

    def monitoring_page(request: Request, project: Project) -> Response:
        model = request.path_params["model"]
        project.model_aliases(model)  # an unknown model: 404
        heat = tables.drift_heatmap(project, model)
        series = tables.window_series(project, model, offset=_offset(request, "windows"))
        ends = [row[2] for row in series.rows]
        column = {name: i for i, name in enumerate(series.columns)}
        charts = "".join(
            time_chart(title, ends, [row[column[name]] for row in series.rows])
            for title, name in (
                ("share of drifted columns", "drift_share"),
                ("latency p99 (ms)", "latency_p99_ms"),
                ("error rate", "error_rate"),
                ("prediction drift (statistic)", "prediction_drift"),
                ("live ROC AUC", "roc_auc"),
            )
        )
        alert_table = tables.alerts(project, model, offset=_offset(request, "alerts"))
        main = (
            f"<h1>{pages._e(model)}: monitoring</h1>"
            f'<p><a href="/ui/models/{pages._e(model)}">versions, runs and rollouts</a></p>'
            + f"<section><h2>Over the windows</h2>{charts}</section>"
            + pages.heatmap(heat, model, f"/ui/api/models/{model}/drift")
            + render_table(tables.data_quality(project, model), f"/ui/api/models/{model}/quality")
            + render_table(
                alert_table,
                f"/ui/api/models/{model}/alerts",
                links={
                    "last_window": sections.alert_link(model),
                    "column": sections.alert_link(model),
                },
                pager=_pager(request, "alerts"),
            )
            + render_table(
                series,
                f"/ui/api/models/{model}/windows",
                links={"window": f"/ui/models/{model}/windows/{{value}}"},
                pager=_pager(request, "windows"),
            )
        )
        return _page(request, project, f"{model} monitoring", "", main)

    def window_page(request: Request, project: Project) -> Response:
        """One window's report: drift table, histograms reference vs current, quality,
        performance, operations (the monitoring report, as written to disk)."""
        from driftloop.monitoring import series as series_mod
        from driftloop.monitoring.html import window_fragment

        model, window_id = request.path_params["model"], request.path_params["window"]
        window = series_mod.get_window(project.store, window_id)
        if window is None or window.model != model:
            raise NotFoundError("monitoring window", f"{model}/{window_id}")
        (found,) = series_mod.metrics_of(project.store, [window])
        back = (
            f'<p><a href="/ui/models/{pages._e(model)}/monitoring">all windows of '
            f"{pages._e(model)}</a></p>"
        )
        main = back + f'<div class="report">{window_fragment(found)}</div>'
        return _page(request, project, f"{model} window {window_id}", "", main)

    def run_page(request: Request, project: Project) -> Response:
        """A pipeline run: its trigger's evidence, its timeline, the evaluation report and
        gate verdict of the version it trained, and its rollout's measurements."""
        from driftloop.evaluation.html import report_fragment
        from driftloop.loop.triggers import get_firing

        run_id = request.path_params["run"]
        run, _ = project.pipeline_run(run_id)
        version = run.outputs.get("version")
        facts = [
            ("model", f'<a href="/ui/models/{pages._e(run.model)}">{pages._e(run.model)}</a>'),
            ("state", f'<span class="state-{pages._e(run.state)}">{pages._e(run.state)}</span>'),
            ("version", pages._e(f"v{version}" if version is not None else "-")),
            ("training seconds", pages._e(f"{run.training_seconds:.1f}")),
            ("error", pages._e(run.error or "-")),
        ]
        parts = [
            f"<h1>Pipeline run {pages._e(run.id)}</h1>",
            "<section><table>"
            + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
            + "</table></section>",
        ]
        if run.firing_id is not None:
            firing = get_firing(project.store, run.firing_id)
            parts.append(
                "<section><h2>Why it started</h2>"
                f"<p>trigger firing {firing.id} at {pages._e(firing.at.isoformat())}: "
                f"{pages._e(firing.outcome)} — {pages._e(firing.reason)}</p>"
                f"{pages.evidence(firing.evidence.get('when'))}</section>"
            )
        else:
            parts.append("<section><h2>Why it started</h2><p>started by hand</p></section>")
        parts.append(
            render_table(tables.run_timeline(project, run.id), f"/ui/api/runs/{run.id}/timeline")
        )
        if version is not None:
            try:
                report = project.evaluation_report(run.model, int(version))
            except DriftloopError:
                report = None
            if report is not None:
                parts.append(
                    f'<section class="report"><h2>Evaluation of v{int(version)}</h2>'
                    f"{report_fragment(report, heading_level=3)}</section>"
                )
        rollout_id = run.outputs.get("rollout")
        if isinstance(rollout_id, int):
            parts.append(
                render_table(
                    tables.rollout_measurements(project, rollout_id),
                    f"/ui/api/rollouts/{rollout_id}/measurements",
                    states=("status",),
                )
            )
            parts.append(
                render_table(
                    tables.rollout_timeline(project, rollout_id),
                    f"/ui/api/rollouts/{rollout_id}/timeline",
                )
            )
        return _page(request, project, run.id, "/ui/runs", "".join(parts))

    def lineage_page(request: Request, project: Project) -> Response:
        """Where a model version, or one prediction, came from."""
        from driftloop.registry.lineage import Node, version_lineage

        model = request.path_params["model"]
        request_id = request.path_params.get("request")
        prediction = None
        if request_id is not None:
            around = request.query_params.get("at")
            prediction = sections.find_prediction(project, model, str(request_id), around)
            version = int(prediction["version"])
        else:
            version = int(request.path_params["version"])
        graph = version_lineage(project.store, model, version)
        if prediction is not None:
            facts = {k: prediction.get(k) for k in ("at", "role", "prediction")}
            node = Node("prediction", f"request:{request_id}", str(request_id), facts)
            graph.nodes.insert(0, node)
            graph.edges.insert(0, (node.id, f"{model}:v{version}"))
        training_runs = {
            r.outputs.get("training_run"): r.id for r in project.pipeline_runs(model, limit=None)
        }

        def link(node: Node) -> str | None:
            if node.kind == "model_version":
                return f"/ui/models/{model}"
            if node.kind == "training_run" and node.id in training_runs:
                return f"/ui/runs/{training_runs[node.id]}"
            if node.kind == "dataset_version":
                return f"/ui/datasets/{node.id}"
            return None

        title = f"prediction {request_id}" if request_id else f"{model} v{version}"
        main = (
            f"<h1>Lineage of {pages._e(title)}</h1>"
            f'<p><a href="/ui/api/lineage/{pages._e(model)}/{version}.json">JSON</a></p>'
            + pages.lineage_graph(graph, link)
        )
        return _page(request, project, f"lineage {title}", "", main)

    def lineage_api(request: Request, project: Project) -> Response:
        from driftloop.registry.lineage import version_lineage

        fmt = request.path_params["fmt"]
        if fmt != "json":
            raise NotFoundError("export format", fmt, known=["json"])
        model, version = request.path_params["model"], int(request.path_params["version"])
        graph = version_lineage(project.store, model, version)
        return JSONResponse(json.loads(json.dumps(graph.to_dict(), default=str)))

    def dataset_page(request: Request, project: Project) -> Response:
        """A dataset version, and the model versions trained on it (forward lineage)."""
        dataset = project.version(request.path_params["dataset"])
        users = tables.dataset_users(project, dataset.id)
        provenance = dataset.provenance or {}
        facts = [
            ("source", dataset.source),
            ("rows", f"{dataset.rows:,}"),
            ("created", dataset.created_at.isoformat()),
            ("events", f"{dataset.event_min} .. {dataset.event_max}"),
            ("ingested from", provenance.get("input_uri", "-")),
        ]
        main = (
            f"<h1>Dataset version {pages._e(dataset.id[:16])}</h1><section><table>"
            + "".join(f"<tr><th>{k}</th><td>{pages._e(v)}</td></tr>" for k, v in facts)
            + "</table></section>"
            + render_table(
                users,
                f"/ui/api/datasets/{dataset.id}/users",
                links={"version": lambda row: f"/ui/lineage/{row['model']}/{row['version']}"},
            )
            + render_table(
                tables.column_profiles(f"dataset-{dataset.id[:12]}", dataset.profile),
                f"/ui/api/datasets/{dataset.id}/profile",
            )
            + sections.profile_charts(dataset.profile)
        )
        return _page(request, project, "dataset version", "/ui/data", main)

    def dataset_api(request: Request, project: Project) -> Response:
        dataset = project.version(request.path_params["dataset"])
        kind, fmt = request.path_params["kind"], request.path_params["fmt"]
        if kind == "users":
            return _export(tables.dataset_users(project, dataset.id), fmt)
        if kind == "profile":
            return _export(
                tables.column_profiles(f"dataset-{dataset.id[:12]}", dataset.profile), fmt
            )
        raise NotFoundError("dataset table", kind, known=["profile", "users"])

    def source_page(request: Request, project: Project) -> Response:
        """A source: its contract's freshness rule, its profile over every batch, its
        latest dataset versions and what it has in quarantine."""
        source = request.path_params["source"]
        found = tables.sources(project, only=source).records()
        if not found:
            raise NotFoundError("source", source, known=[s.name for s in project.sources()])
        (fresh,) = found
        profile = project.profile(source)
        facts = [
            ("contract version", fresh["contract_version"]),
            ("dataset versions", fresh["versions"]),
            ("rows", f"{fresh['rows']:,}"),
            ("newest event", fresh["newest_event"] or "-"),
            ("freshness", f"{fresh['freshness']} (age {fresh['age'] or '-'}, "
                          f"max_age {fresh['max_age'] or 'none'})"),
        ]  # fmt: skip
        main = (
            f"<h1>Source {pages._e(source)}</h1><section><table>"
            + "".join(f"<tr><th>{k}</th><td>{pages._e(v)}</td></tr>" for k, v in facts)
            + "</table></section>"
            + render_table(
                tables.column_profiles(source, profile), f"/ui/api/sources/{source}/profile"
            )
            + sections.profile_charts(profile)
            + render_table(
                tables.dataset_versions(
                    project, source=source, offset=_offset(request, "datasets")
                ),
                f"/ui/api/sources/{source}/versions",
                links={"dataset": "/ui/datasets/{value}"},
                pager=_pager(request, "datasets"),
            )
            + render_table(
                tables.quarantine(project, source=source, offset=_offset(request, "quarantine")),
                f"/ui/api/sources/{source}/quarantine",
                links={"entry": "/ui/quarantine/{value}"},
                pager=_pager(request, "quarantine"),
            )
        )
        return _page(request, project, f"source {source}", "/ui/data", main)

    def source_api(request: Request, project: Project) -> Response:
        source, kind = request.path_params["source"], request.path_params["kind"]
        fmt = request.path_params["fmt"]
        if kind == "profile":
            return _export(tables.column_profiles(source, project.profile(source)), fmt)
        offset, limit = _offset(request), _limit(request)
        if kind == "versions":
            found = tables.dataset_versions(project, source=source, offset=offset, limit=limit)
            return _export(found, fmt)
        if kind == "quarantine":
            project.contract(source)  # an unknown source: NotFoundError
            found = tables.quarantine(project, source=source, offset=offset, limit=limit)
            return _export(found, fmt)
        raise NotFoundError("source table", kind, known=["profile", "quarantine", "versions"])

    def quarantine_page(request: Request, project: Project) -> Response:
        """A quarantined batch: where it came from and every rule it failed."""
        entry = project.quarantine_entry(request.path_params["entry"])
        facts = [
            ("source", entry.source),
            ("status", entry.status),
            ("received", entry.created_at.isoformat()),
            ("input", f"{entry.input_uri} ({entry.input_format}, {entry.bytes:,} bytes)"),
            ("contract version", entry.contract_version),
        ]
        main = (
            f"<h1>Quarantined batch {pages._e(entry.id)}</h1><section><table>"
            + "".join(f"<tr><th>{k}</th><td>{pages._e(v)}</td></tr>" for k, v in facts)
            + "</table></section>"
            + render_table(
                tables.validation_report(project, entry.id),
                f"/ui/api/quarantine/{entry.id}/report",
            )
        )
        return _page(request, project, entry.id, "/ui/data", main)

    def quarantine_api(request: Request, project: Project) -> Response:
        table = tables.validation_report(project, request.path_params["entry"])
        return _export(table, request.path_params["fmt"])

    def runs_page(request: Request, project: Project) -> Response:
        main = (
            "<h1>Runs and rollouts</h1>"
            + render_table(
                tables.pipeline_runs(project, offset=_offset(request, "runs")),
                "/ui/api/runs",
                links=_RUN_LINKS,
                pager=_pager(request, "runs"),
            )
            + render_table(
                tables.rollouts(project, offset=_offset(request, "rollouts")),
                "/ui/api/rollouts",
                links=_RUN_LINKS,
                pager=_pager(request, "rollouts"),
            )
            + render_table(
                tables.firings(project, offset=_offset(request, "firings")),
                "/ui/api/firings",
                links={**_RUN_LINKS, "firing": "/ui/firings/{value}"},
                states=("outcome",),
                pager=_pager(request, "firings"),
            )
        )
        return _page(request, project, "Runs", "/ui/runs", main)

    def firing_page(request: Request, project: Project) -> Response:
        """One evaluation of a retraining policy: fired or suppressed, why, and each
        trigger's verdict with the figures it read."""
        from driftloop.loop.firings import get_firing

        firing = get_firing(project.store, request.path_params["firing"])
        run = (
            f'<a href="/ui/runs/{pages._e(firing.run_id)}">{pages._e(firing.run_id)}</a>'
            if firing.run_id
            else "-"
        )
        suppressed = firing.evidence.get("suppressed_by")
        model, outcome = pages._e(firing.model), pages._e(firing.outcome)
        facts = [
            ("model", f'<a href="/ui/models/{model}">{model}</a>'),
            ("at", pages._e(firing.at.isoformat())),
            ("outcome", f'<span class="state-{outcome}">{outcome}</span>'),
            ("reason", pages._e(firing.reason)),
            ("suppressed by", pages._e(suppressed) if suppressed else "-"),
            ("run", run),
        ]  # fmt: skip
        main = (
            f"<h1>Trigger firing {firing.id}</h1><section><table>"
            + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
            + "</table></section>"
            + "<section><h2>What each trigger saw</h2>"
            + pages.evidence(firing.evidence.get("when"))
            + "</section>"
        )
        return _page(request, project, f"firing {firing.id}", "/ui/runs", main)

    def server_api(request: Request, project: Project) -> Response:
        if health is None:
            raise NotFoundError("prediction server", "(this dashboard was given none)")
        return _export(health_table(health()), request.path_params["fmt"])

    def data_page(request: Request, project: Project) -> Response:
        main = (
            "<h1>Data</h1>"
            + render_table(tables.sources(project), "/ui/api/sources", links=_SOURCE_LINKS)
            + render_table(
                tables.quarantine(project, offset=_offset(request, "quarantine")),
                "/ui/api/quarantine",
                links={"entry": "/ui/quarantine/{value}"},
                pager=_pager(request, "quarantine"),
            )
            + render_table(
                tables.dataset_versions(project, offset=_offset(request, "datasets")),
                "/ui/api/datasets",
                links={"dataset": "/ui/datasets/{value}"},
                pager=_pager(request, "datasets"),
            )
        )
        return _page(request, project, "Data", "/ui/data", main)

    whole: dict[str, Callable[[Project], tables.UiTable]] = {
        "models": tables.model_overview,
        "sources": tables.sources,
        "controller": tables.controller,
    }
    paged: dict[str, Callable[..., tables.UiTable]] = {
        "firings": tables.firings,
        "runs": tables.pipeline_runs,
        "rollouts": tables.rollouts,
        "quarantine": tables.quarantine,
        "alerts": tables.alerts,
        "datasets": tables.dataset_versions,
    }

    def api(request: Request, project: Project) -> Response:
        name, fmt = request.path_params["name"], request.path_params["fmt"]
        if name in whole:
            return _export(whole[name](project), fmt)
        if name in paged:
            found = paged[name](project, offset=_offset(request), limit=_limit(request))
            return _export(found, fmt)
        raise NotFoundError("dashboard table", name, known=sorted({*whole, *paged}))

    def model_api(request: Request, project: Project) -> Response:
        model, kind = request.path_params["model"], request.path_params["kind"]
        fmt = request.path_params["fmt"]
        offset = _offset(request)
        if kind == "versions":
            found = tables.model_versions(project, model, offset=offset, limit=_limit(request))
            return _export(found, fmt)
        if kind == "aliases":
            found = tables.alias_history(project, model, offset=offset, limit=_limit(request))
            return _export(found, fmt)
        if kind == "predictions":
            return _export(tables.recent_predictions(project, model), fmt)
        if kind == "drift":
            return _export(tables.drift_heatmap(project, model).table, fmt)
        if kind == "windows":
            found = tables.window_series(
                project, model, offset=offset, windows=_limit(request, default=200)
            )
            return _export(found, fmt)
        if kind == "quality":
            return _export(tables.data_quality(project, model), fmt)
        if kind == "alerts":
            project.model_aliases(model)  # an unknown model: 404
            found = tables.alerts(project, model, offset=offset, limit=_limit(request))
            return _export(found, fmt)
        raise NotFoundError(
            "model table",
            kind,
            known=["alerts", "aliases", "drift", "predictions", "quality", "versions", "windows"],
        )

    def run_api(request: Request, project: Project) -> Response:
        return _export(tables.run_timeline(project, request.path_params["run"]),
                       request.path_params["fmt"])  # fmt: skip

    def rollout_api(request: Request, project: Project) -> Response:
        rollout_id, kind = request.path_params["rollout"], request.path_params["kind"]
        if kind == "measurements":
            return _export(
                tables.rollout_measurements(project, rollout_id), request.path_params["fmt"]
            )
        if kind == "timeline":
            return _export(tables.rollout_timeline(project, rollout_id), request.path_params["fmt"])
        raise NotFoundError("rollout table", kind, known=["measurements", "timeline"])

    async def confirmed(request: Request) -> str:
        """The form's ``confirm`` field (an urlencoded body, as a page's form posts)."""
        body = (await request.body()).decode("utf-8", errors="replace")
        values = parse_qs(body).get("confirm") or [""]
        return values[0]

    async def pull(
        request: Request, what: str, expect: str, act: Callable[[Project], str]
    ) -> Response:
        """A lever: refused (400) unless the form confirms ``expect``; then ``act`` (which
        returns the model whose page to show) and back to that page."""
        if await confirmed(request) != expect:
            kind = "model's name" if what != "abort" else "rollout's id"
            return _error(
                InputError(
                    f"confirm the {what} of {expect!r}: the form's confirm field must be "
                    f"the {kind}",
                    field="confirm",
                )
            )
        try:
            model = act(get_project())
        except DriftloopError as exc:
            return _error(exc)
        return RedirectResponse(f"/ui/models/{model}", status_code=303)

    async def rollback(request: Request) -> Response:
        model = request.path_params["model"]

        def act(project: Project) -> str:
            project.rollback_model(model, reason="rolled back from the dashboard")
            return str(model)

        return await pull(request, "rollback", model, act)

    async def promote(request: Request) -> Response:
        model = request.path_params["model"]

        def act(project: Project) -> str:
            project.promote(model, reason="promoted from the dashboard")
            return str(model)

        return await pull(request, "promotion", model, act)

    async def abort(request: Request) -> Response:
        rollout_id = request.path_params["rollout"]

        def act(project: Project) -> str:
            return project.abort_rollout(rollout_id, reason="aborted from the dashboard").model

        return await pull(request, "abort", str(rollout_id), act)

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "ui.css":
            return Response(pages.STYLE, media_type="text/css; charset=utf-8")
        if name == "ui.js":
            return Response(pages.SCRIPT, media_type="text/javascript; charset=utf-8")
        return _error(NotFoundError("dashboard file", name, known=["ui.css", "ui.js"]))

    def redirect(_: Request) -> Response:
        return RedirectResponse("/ui/", status_code=307)

    return [
        Route("/ui", redirect, methods=["GET"]),
        Route("/ui/", guarded(overview), methods=["GET"]),
        Route("/ui/models/{model}", guarded(model_page), methods=["GET"]),
        Route("/ui/models/{model}/monitoring", guarded(monitoring_page), methods=["GET"]),
        Route("/ui/models/{model}/windows/{window:int}", guarded(window_page), methods=["GET"]),
        Route("/ui/runs", guarded(runs_page), methods=["GET"]),
        Route("/ui/lineage/{model}/{version:int}", guarded(lineage_page), methods=["GET"]),
        Route("/ui/predictions/{model}/{request}", guarded(lineage_page), methods=["GET"]),
        Route("/ui/datasets/{dataset}", guarded(dataset_page), methods=["GET"]),
        Route("/ui/quarantine/{entry}", guarded(quarantine_page), methods=["GET"]),
        Route("/ui/api/quarantine/{entry}/report.{fmt}", guarded(quarantine_api), methods=["GET"]),
        Route("/ui/api/datasets/{dataset}/{kind}.{fmt}", guarded(dataset_api), methods=["GET"]),
        Route("/ui/sources/{source}", guarded(source_page), methods=["GET"]),
        Route("/ui/api/sources/{source}/{kind}.{fmt}", guarded(source_api), methods=["GET"]),
        Route("/ui/api/server.{fmt}", guarded(server_api), methods=["GET"]),
        Route("/ui/api/lineage/{model}/{version:int}.{fmt}", guarded(lineage_api), methods=["GET"]),
        Route("/ui/runs/{run}", guarded(run_page), methods=["GET"]),
        Route("/ui/firings/{firing:int}", guarded(firing_page), methods=["GET"]),
        Route("/ui/api/runs/{run}/timeline.{fmt}", guarded(run_api), methods=["GET"]),
        Route("/ui/api/rollouts/{rollout:int}/{kind}.{fmt}", guarded(rollout_api), methods=["GET"]),
        Route("/ui/data", guarded(data_page), methods=["GET"]),
        Route("/ui/api/models/{model}/{kind}.{fmt}", guarded(model_api), methods=["GET"]),
        Route("/ui/api/{name}.{fmt}", guarded(api), methods=["GET"]),
        Route("/ui/models/{model}/rollback", rollback, methods=["POST"]),
        Route("/ui/models/{model}/promote", promote, methods=["POST"]),
        Route("/ui/models/{model}/diff", guarded(diff_page), methods=["GET"]),
        Route("/ui/models/{model}/card/{version:int}", guarded(card_page), methods=["GET"]),
        Route("/ui/rollouts/{rollout:int}/abort", abort, methods=["POST"]),
        Route("/ui/static/{name}", static, methods=["GET"]),
    ]


def ui_app(project: Project, *, health: HealthProbe | None = None) -> Any:
    """The dashboard alone, as a Starlette app (``driftloop ui``)."""
    from starlette.applications import Starlette

    return Starlette(routes=ui_routes(lambda: project, health))


def create_app_from_env() -> Any:
    """``driftloop serve``'s app (uvicorn's factory in each worker): the prediction
    server of :func:`driftloop.serving.app.create_app_from_env` with the dashboard
    under ``/ui``, reading the same project."""
    from driftloop.serving.app import create_app_from_env as serving_app
    from driftloop.ui.health import engine_probe

    app = serving_app()
    engine = app.state.engine
    app.router.routes.extend(ui_routes(lambda: engine.project, engine_probe(engine)))
    return app
