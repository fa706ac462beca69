"""The plugin's FastAPI app: the Burst pool page, the Campaign tabs, their plots and the few
static files they need (shipped in the package, served behind the same access check).

Every route depends on an Airflow access check (bursting.ui.auth); nothing here writes.
`create_app` takes its sources as arguments so tests can hand it fakes at the seams.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from bursting.model import PoolSnapshot
from bursting.ui import auth
from bursting.ui.campaignview import CampaignPool, read_campaign, result_files
from bursting.ui.history import History, chart_svg, sample
from bursting.ui.poolview import age_text, clock_text, pool_facts, status_facts
from bursting.ui.reads import Read, Sources, fetch_status, pool_problem, status_problem
from bursting.ui.runs import RunFacts
from bursting.ui.settings import UISettings, display_url, settings_from_airflow

HERE = Path(__file__).parent
STATIC = {  # the only files /static serves, with their types
    "bursting.css": "text/css",
    "bursting.js": "text/javascript",
}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    # Shipped files only: no CDN, no inline script; inline SVG/styles in our own markup only.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'self'",
}


class PoolReader(Protocol):
    def snapshot(self) -> PoolSnapshot: ...


class Pool(PoolReader, CampaignPool, Protocol):
    """What the page reads from the pool: the provider hook's HTCondorPool."""


class RunSource(Protocol):
    """Airflow's runs of a DAG (bursting.ui.runs over the metadata database)."""

    def run(self, dag_id: str, run_id: str) -> RunFacts | None: ...

    def recent(self, dag_id: str) -> list[RunFacts]: ...


class DatabaseRuns:
    """Runs from Airflow's metadata database, one short session per call."""

    def run(self, dag_id: str, run_id: str) -> RunFacts | None:
        from airflow.utils.session import create_session

        from bursting.ui.runs import run_facts

        with create_session() as session:
            return run_facts(session, dag_id, run_id)

    def recent(self, dag_id: str) -> list[RunFacts]:
        from airflow.utils.session import create_session

        from bursting.ui.runs import recent_runs

        with create_session() as session:
            return recent_runs(session, dag_id)


def hook_pool(settings: UISettings) -> Pool:
    """The pool through the provider's hook, as DAG tasks reach it."""
    from bursting.airflow.hooks.htcondor import HTCondorHook

    return HTCondorHook(settings.htcondor_conn_id).get_conn()


def create_app(
    settings: Callable[[], UISettings] = settings_from_airflow,
    pool: Callable[[UISettings], Pool] = hook_pool,
    runs: RunSource | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The app Airflow mounts at the plugin's url_prefix. No OpenAPI or docs routes: every
    route this app has needs a signed-in reader."""
    app = FastAPI(title="bursting", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(HTTPException, auth.refused)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["age"] = age_text
    templates.env.filters["clock"] = clock_text
    sources = Sources()
    history = History()
    run_source = runs or DatabaseRuns()

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def read_status(conf: UISettings, now: float) -> Read[dict[str, Any]] | None:
        url = conf.controller
        if url is None:
            return None
        return sources.status.read(
            lambda: fetch_status(url, conf.timeout_seconds), now, status_problem(url)
        )

    def read_pool(conf: UISettings, now: float) -> Read[PoolSnapshot]:
        read = sources.pool.read(
            lambda: pool(conf).snapshot(), now, pool_problem(conf.htcondor_conn_id)
        )
        if read.value is not None and not read.stale:
            history.add(sample(read.value))
        return read

    sampler = Sampler(lambda: read_pool(settings(), clock()), settings)

    def pool_context(request: Request) -> dict[str, Any]:
        conf = settings()
        sampler.start()
        now = clock()
        status = read_status(conf, now)
        pool_read = read_pool(conf, now)
        return {
            "request": request,
            "now": now,
            "conf": conf,
            "controller": display_url(conf.controller) if conf.controller else None,
            "status": status,
            "facts": status_facts(status.value) if status and status.value else None,
            "pool": pool_read,
            "queue": pool_facts(pool_read.value) if pool_read.value else None,
            "chart": chart_svg(history.since(now), now),
        }

    @app.get("/pool", response_class=HTMLResponse, dependencies=[auth.READ_POOL])
    def pool_page(request: Request) -> Response:
        return templates.TemplateResponse(request, "pool.html", pool_context(request))

    @app.get("/pool/body", response_class=HTMLResponse, dependencies=[auth.READ_POOL])
    def pool_body(request: Request) -> Response:
        return templates.TemplateResponse(request, "pool_body.html", pool_context(request))

    def is_campaign_dag(conf: UISettings, dag_id: str) -> bool:
        return dag_id in conf.campaign_dags

    def campaign_context(request: Request, dag_id: str, run_id: str) -> dict[str, Any]:
        conf = settings()
        context: dict[str, Any] = {"request": request, "dag_id": dag_id, "run_id": run_id}
        context.update(conf=conf, campaign_dag=is_campaign_dag(conf, dag_id), problem=None)
        if not context["campaign_dag"]:
            return context
        run = run_source.run(dag_id, run_id)
        context.update(run=run, facts=None, results=None)
        if run is None:
            return context
        try:
            context["facts"] = read_campaign(pool(conf), run, conf.config_path, clock())
        except Exception as exc:  # the run's facts from Airflow still show
            context["problem"] = pool_problem(conf.htcondor_conn_id)(exc)
        context["results"] = result_files(run.results)
        return context

    @app.get("/campaign", response_class=HTMLResponse, dependencies=[auth.READ_RUN])
    def campaign_page(request: Request, dag_id: str = Query(), run_id: str = Query()) -> Response:
        context = campaign_context(request, dag_id, run_id)
        return templates.TemplateResponse(request, "campaign.html", context)

    @app.get("/campaign/body", response_class=HTMLResponse, dependencies=[auth.READ_RUN])
    def campaign_body(request: Request, dag_id: str = Query(), run_id: str = Query()) -> Response:
        context = campaign_context(request, dag_id, run_id)
        return templates.TemplateResponse(request, "campaign_body.html", context)

    @app.get("/campaign/file", dependencies=[auth.READ_RUN])
    def campaign_file(
        dag_id: str = Query(), run_id: str = Query(), name: str = Query()
    ) -> Response:
        """A plot or download of a published run: only names its results folder lists."""
        conf = settings()
        run = run_source.run(dag_id, run_id) if is_campaign_dag(conf, dag_id) else None
        results = result_files(run.results) if run else None
        if results is None or name not in (*results.plots, *results.downloads):
            raise HTTPException(404, "no such result of this run")
        return FileResponse(results.folder / name, filename=name)

    @app.get("/runs", response_class=HTMLResponse, dependencies=[auth.READ_RUN])
    def runs_page(request: Request, dag_id: str = Query()) -> Response:
        conf = settings()
        campaign_dag = is_campaign_dag(conf, dag_id)
        recent = run_source.recent(dag_id) if campaign_dag else []
        context = {"request": request, "dag_id": dag_id, "campaign_dag": campaign_dag}
        context.update(conf=conf, runs=recent)
        return templates.TemplateResponse(request, "runs.html", context)

    @app.get("/static/{name}", dependencies=[auth.READ_SITE])
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, "no such file")
        return FileResponse(HERE / "static" / name, media_type=STATIC[name])

    app.state.sampler = sampler
    return app


class Sampler:
    """Reads the pool every `sample_seconds` once the page has been asked for, so the chart
    covers the last hour and not just the time someone had the page open. One daemon thread
    per app; `stop()` ends it."""

    def __init__(self, read: Callable[[], object], settings: Callable[[], UISettings]) -> None:
        self._read = read
        self._settings = settings
        self._started = threading.Event()
        self.stopping = threading.Event()

    def start(self) -> None:
        if self._started.is_set() or self._settings().sample_seconds <= 0:
            return
        self._started.set()
        threading.Thread(target=self._run, name="bursting-ui-sampler", daemon=True).start()

    def _run(self) -> None:
        while not self.stopping.wait(self._settings().sample_seconds):
            try:
                self._read()
            except Exception:  # settings or pool trouble: the page says so; keep sampling
                continue

    def stop(self) -> None:
        self.stopping.set()
