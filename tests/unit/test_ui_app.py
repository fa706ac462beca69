"""The Airflow UI page's app through FastAPI's TestClient, signed in through a fake auth
manager (Airflow's own access checks run; only who may do what is the fake's), with a real
/status server on 127.0.0.1 and stateful fakes of the pool and of Airflow's runs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from fastapi.testclient import TestClient

from bursting.errors import PoolUnavailable
from bursting.model import (
    CampaignJob,
    ClusterStatus,
    JobOutcome,
    JobShape,
    JobState,
    PoolSnapshot,
    QueueRow,
    Worker,
)
from bursting.ui.app import create_app
from bursting.ui.runs import RunFacts
from bursting.ui.settings import UISettings

NOW = 1_800_000_000.0
SECRET = "idtoken-s3cr3t-value"


# ----- a fake auth manager: users by name, each with the views and DAG access it has -----
@dataclass
class FakeUser(BaseUser):
    name: str

    def get_id(self) -> str:
        return self.name

    def get_name(self) -> str:
        return self.name


GRANTS: dict[str, dict[str, bool]] = {
    "viewer": {"view": True, "dag": True},
    "operator-no-dags": {"view": True, "dag": False},
    "nobody": {"view": False, "dag": False},
}


class FakeAuthManager(BaseAuthManager[FakeUser]):
    def deserialize_user(self, token: dict[str, Any]) -> FakeUser:
        return FakeUser(token["sub"])

    def serialize_user(self, user: FakeUser) -> dict[str, Any]:
        return {"sub": user.name}

    def get_url_login(self, **kwargs: Any) -> str:
        return "/auth/login"

    def _grant(self, user: FakeUser, what: str, method: str = "GET") -> bool:
        return method == "GET" and GRANTS.get(user.name, {}).get(what, False)

    def is_authorized_view(self, *, access_view: AccessView, user: FakeUser) -> bool:
        return self._grant(user, "view") or (
            access_view is AccessView.WEBSITE and self._grant(user, "dag")
        )

    def is_authorized_dag(self, *, method: str, user: FakeUser, **kwargs: Any) -> bool:
        return self._grant(user, "dag", method)

    def _never(self, **kwargs: Any) -> bool:
        return False

    is_authorized_configuration = is_authorized_connection = is_authorized_asset = _never
    is_authorized_asset_alias = is_authorized_pool = is_authorized_variable = _never
    is_authorized_custom_view = _never

    def filter_authorized_menu_items(self, menu_items: list[Any], *, user: FakeUser) -> list[Any]:
        return menu_items


@pytest.fixture(scope="module")
def auth_manager() -> Iterator[FakeAuthManager]:
    """The fake, installed as Airflow installs its auth manager; and Airflow's tables, which
    the DAG access check reads (the DAG's team)."""
    from airflow import settings
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.models import import_all_models
    from airflow.models.base import Base

    patch = pytest.MonkeyPatch()
    patch.setenv("AIRFLOW__CORE__AUTH_MANAGER", f"{__name__}.FakeAuthManager")
    patch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "unit-test-jwt-secret-" + "x" * 64)
    import_all_models()
    Base.metadata.create_all(settings.engine)
    manager = create_auth_manager()
    manager.init()
    assert isinstance(manager, FakeAuthManager)
    yield manager
    patch.undo()


def token(manager: FakeAuthManager, name: str) -> str:
    return manager.generate_jwt(FakeUser(name))


# ----- a real /status server -----
def status_doc(now: float = NOW) -> dict[str, Any]:
    def instance(i: str, flavor: str, age: float) -> dict[str, Any]:
        return {
            "id": i,
            "flavor": flavor,
            "age_seconds": age,
            "in_state_seconds": age / 2,
            "reason": "",
        }

    return {
        "now": now,
        "ready": True,
        "reason": "last cycle ok",
        "last_cycle": {
            "started_at": now - 4,
            "seconds": 0.42,
            "age_seconds": 4,
            "unschedulable": [
                {"code": "no_flavor_fits", "jobs": 2, "why": "needs 64 cores; largest flavor 4"}
            ],
            "notes": [],
        },
        "jobs": {"idle": 7, "running": 3, "held": 1},
        "demand": [],
        "instances": [
            {
                "cloud": "private",
                "state": "running",
                "count": 2,
                "instances": [instance("p-1", "p.2c", 300), instance("p-2", "p.2c", 200)],
            },
            {
                "cloud": "public",
                "state": "booting",
                "count": 1,
                "instances": [instance("c-9", "c.4c", 30)],
            },
        ],
        "clouds": [
            {
                "name": "private",
                "enabled": True,
                "read": True,
                "error_class": "",
                "error": "",
                "max_instances": 2,
                "quota": {"known": True, "instances": 0, "cores": 4, "memory_mb": None},
                "backoff": [],
                "retry_after_seconds": None,
                "spend_per_hour": 0.0,
                "spent": 0.0,
            },
            {
                "name": "public",
                "enabled": True,
                "read": False,
                "error_class": "CloudUnavailable",
                "error": "nova timed out",
                "max_instances": 3,
                "quota": None,
                "backoff": [{"flavor": "c.2c", "failures": 2, "remaining_seconds": 40}],
                "retry_after_seconds": None,
                "spend_per_hour": 0.24,
                "spent": 0.5,
            },
        ],
        "decisions": [
            {
                "at": now - 60,
                "kind": "create",
                "cloud": "public",
                "instance": "c-9",
                "code": "demand",
                "reason": "7 idle jobs need room",
            }
        ],
        "spend": {"currency": "CHF", "cap_per_hour": 2.0, "per_hour": 0.24, "total": 0.5},
    }


class StatusServer:
    """/status on 127.0.0.1 answering `doc`; `stop()` makes it unreachable."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(outer.doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def controller() -> Iterator[StatusServer]:
    server = StatusServer(status_doc())
    yield server
    if server.thread.is_alive():
        server.stop()


# ----- a stateful fake pool and Airflow runs -----
def shape(cpus: int, memory: int = 1024) -> JobShape:
    return JobShape(cpus=cpus, memory_mb=memory, disk_mb=1024 * 1024)


def worker(name: str, instance: str | None, cpus: int, free: int) -> Worker:
    return Worker(
        name, name, instance, "demo" if instance else None, cpus, 2048, free, 1024, 0, False, 1
    )


class FakePool:
    def __init__(self) -> None:
        self.queue = (
            QueueRow("phys", shape(1), idle=5, running=3, held=1),
            QueueRow("alice", shape(1), idle=2),
            QueueRow("phys", shape(4, 4096), idle=0, running=1),
        )
        self.workers = (
            worker("slot1@p-1", "p-1", 2, 0),
            worker("slot1@p-2", "p-2", 2, 1),
            worker("slot1@submit", None, 4, 2),
        )
        self.fail: Exception | None = None
        self.clusters: dict[int, ClusterStatus] = {}
        self.jobs: dict[str, tuple[CampaignJob, ...]] = {}
        self.keys: dict[str, int] = {}

    def snapshot(self) -> PoolSnapshot:
        if self.fail is not None:
            raise self.fail
        return PoolSnapshot(NOW - 2, (), self.workers, self.queue)

    def job_status(self, cluster_id: int) -> ClusterStatus:
        if self.fail is not None:
            raise self.fail
        return self.clusters[cluster_id]

    def find_cluster(self, attribute: str, value: str) -> int | None:
        return self.keys.get(value)

    def campaign_jobs(self, campaign: str, now: float | None = None) -> tuple[CampaignJob, ...]:
        return self.jobs.get(campaign, ())


class FakeRuns:
    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], RunFacts] = {}

    def run(self, dag_id: str, run_id: str) -> RunFacts | None:
        return self.runs.get((dag_id, run_id))

    def recent(self, dag_id: str) -> list[RunFacts]:
        return [r for (d, _), r in self.runs.items() if d == dag_id]


@dataclass
class Page:
    client: TestClient
    pool: FakePool
    runs: FakeRuns
    settings: UISettings
    manager: FakeAuthManager
    app: Any = None

    def get(self, url: str, user: str | None = "viewer", **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if user is not None:
            headers["Authorization"] = f"Bearer {token(self.manager, user)}"
        return self.client.get(url, headers=headers, **kwargs)


@pytest.fixture
def page(auth_manager: FakeAuthManager, controller: StatusServer, tmp_path: Path) -> Page:
    pool, runs = FakePool(), FakeRuns()
    holder = Page(
        None,  # type: ignore[arg-type]
        pool,
        runs,
        UISettings(controller=f"http://127.0.0.1:{controller.port}/status", sample_seconds=0),
        auth_manager,
    )
    app = create_app(
        settings=lambda: holder.settings,
        pool=lambda settings: pool,  # type: ignore[arg-type,return-value]
        runs=runs,
        clock=lambda: NOW,
    )
    holder.client = TestClient(app)
    holder.app = app
    return holder


ROUTES = (
    "/pool",
    "/pool/body",
    "/campaign?dag_id=mc_production&run_id=r1",
    "/campaign/body?dag_id=mc_production&run_id=r1",
    "/campaign/file?dag_id=mc_production&run_id=r1&name=mass.png",
    "/runs?dag_id=mc_production",
    "/static/bursting.css",
    "/static/bursting.js",
)


# ----- access -----
@pytest.mark.parametrize("route", ROUTES)
def test_anonymous_requests_are_refused_on_every_route(page: Page, route: str) -> None:
    answer = page.get(route, user=None)
    assert answer.status_code == 401
    assert answer.json() == {"detail": "Not authenticated"}


def test_a_browser_without_a_session_gets_a_sign_in_link_not_data(page: Page) -> None:
    answer = page.get("/pool", user=None, headers={"Accept": "text/html"})
    assert answer.status_code == 401
    assert 'href="/auth/login" target="_top"' in answer.text
    assert "private" not in answer.text


def test_no_unauthenticated_documentation_routes(page: Page) -> None:
    for route in ("/docs", "/redoc", "/openapi.json"):
        assert page.get(route, user=None).status_code == 404


def test_the_ui_cookie_signs_in_like_a_bearer_token(page: Page) -> None:
    page.client.cookies.set("_token", token(page.manager, "viewer"))
    answer = page.client.get("/pool")
    assert answer.status_code == 200 and "Burst pool" in answer.text


def test_a_signed_in_user_without_read_access_is_forbidden(page: Page) -> None:
    for route in ROUTES:
        assert page.get(route, user="nobody").status_code == 403, route


def test_the_campaign_tab_needs_access_to_the_dag_runs(page: Page) -> None:
    assert page.get("/pool", user="operator-no-dags").status_code == 200
    for route in ROUTES[2:6]:
        assert page.get(route, user="operator-no-dags").status_code == 403, route


def test_a_forged_token_is_refused(page: Page) -> None:
    forged = token(page.manager, "viewer")[:-4] + "AAAA"
    answer = page.client.get("/pool", headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code in (401, 403)


# ----- the Burst pool page -----
def cell(html: str, marker: str) -> str:
    """The text right after `marker>` up to the next tag."""
    start = html.index(marker) + len(marker)
    start = html.index(">", start) + 1
    return html[start : html.index("<", start)]


def test_pool_page_shows_the_pool_and_the_controller_status(page: Page) -> None:
    answer = page.get("/pool")
    assert answer.status_code == 200
    html = answer.text
    # Queue from the pool: 5 + 2 idle 1-core jobs, 3 + 1 running, 1 held.
    assert cell(html, 'id="idle-jobs"') == "7"
    assert cell(html, 'id="running-jobs"') == "4"
    assert cell(html, 'id="held-jobs"') == "1"
    assert cell(html, 'data-shape="1c-1024mb-1024gb"><td') == "1c-1024mb-1024gb"
    assert cell(html, 'id="burst-workers"') == "2" and cell(html, 'id="cores"') == "8"
    # Instances per cloud and state from /status, with ages.
    assert cell(html, 'data-count="2"') == "2" and cell(html, 'data-count="1"') == "1"
    assert 'data-cloud="public" data-instances="1"' in html
    assert 'data-cloud="private" data-instances="2"' in html
    assert "5m" in html and "30s" in html  # p-1 is 300 s old, c-9 30 s
    # Unschedulable jobs with the reason, quota headroom, backoff, spend vs cap, decisions.
    assert "no_flavor_fits" in html and "needs 64 cores" in html
    assert "0 instances, 4 cores" in html
    assert "c.2c: 2 failure(s), retry in 40s" in html
    assert "failed: CloudUnavailable" in html
    assert "0.24 CHF/h</strong>" in html and "cap of 2 CHF/h" in html
    assert "7 idle jobs need room" in html
    assert f'data-cycle="{NOW - 4}"' in html
    # The chart: server-side SVG, one sample so far, the three series.
    assert 'data-samples="1"' in html and 'data-series="capacity"' in html
    # Refreshes itself with the shipped script; nothing from elsewhere.
    assert 'src="static/bursting.js"' in html and "http" not in cell(html, "<script")
    assert "https://" not in html


def test_the_chart_gets_samples_between_page_views(page: Page) -> None:
    reads: list[float] = []
    snapshot = page.pool.snapshot

    def moving() -> PoolSnapshot:
        reads.append(NOW - 100 + len(reads))
        return replace(snapshot(), taken_at=reads[-1])

    page.pool.snapshot = moving  # type: ignore[method-assign]
    page.settings = replace(page.settings, sample_seconds=0.01)
    try:
        assert 'data-samples="1"' in page.get("/pool").text  # the first view starts sampling
        deadline = time.monotonic() + 5
        while len(reads) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        html = page.get("/pool").text
        count = int(html.split('data-samples="')[1].split('"')[0])
        assert count >= 6  # the sampler's reads, and this view's
    finally:
        page.app.state.sampler.stop()


def test_the_body_fragment_refreshes_the_same_facts(page: Page) -> None:
    html = page.get("/pool/body").text
    assert "<html" not in html and cell(html, 'id="idle-jobs"') == "7"


def test_an_unreachable_controller_is_said_plainly_with_the_last_known_state(
    page: Page, controller: StatusServer
) -> None:
    assert page.get("/pool").status_code == 200  # remembered
    controller.stop()
    html = page.get("/pool").text
    problem = cell(html, 'id="controller-problem"')
    assert f"Cannot reach the controller at http://127.0.0.1:{controller.port}/status" in problem
    assert "(Connection refused)" in problem
    assert "Showing the last known state, read 0s ago." in problem
    assert 'data-cloud="private" data-instances="2"' in html  # the last known instances
    assert "Traceback" not in html and "Errno" not in html


def test_a_controller_never_reached_shows_no_state_and_no_trace(
    page: Page, controller: StatusServer
) -> None:
    controller.stop()
    html = page.get("/pool").text
    assert "Cannot reach the controller" in html and "No state of it is known yet." in html
    assert 'id="instances"' not in html
    assert cell(html, 'id="idle-jobs"') == "7"  # the pool is still read


def test_an_unreadable_pool_is_said_plainly_with_its_age(page: Page) -> None:
    page.get("/pool")
    page.pool.fail = PoolUnavailable("schedd query: timed out after 20s")
    html = page.get("/pool").text
    assert "Cannot read the pool of connection &#39;htcondor_default&#39;" in html
    assert "schedd query: timed out after 20s" in html
    assert "Showing the pool as it was" in html and cell(html, 'id="idle-jobs"') == "7"


def test_an_unexpected_pool_error_shows_its_class_only(page: Page) -> None:
    page.pool.fail = RuntimeError(f"password={SECRET}")
    html = page.get("/pool").text
    assert "(RuntimeError)" in html and SECRET not in html


def test_no_controller_configured_says_where_to_set_it(page: Page) -> None:
    page.settings = UISettings(controller=None)
    html = page.get("/pool").text
    assert "No controller address is configured" in html and "[bursting] controller" in html


def test_credentials_in_the_controller_address_are_never_shown(
    page: Page, controller: StatusServer
) -> None:
    page.settings = UISettings(controller=f"http://ops:{SECRET}@127.0.0.1:{controller.port}/status")
    html = page.get("/pool").text
    assert SECRET not in html and f"127.0.0.1:{controller.port}" in html


def test_settings_come_from_the_htcondor_connection_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bursting.ui.settings import settings_from_airflow

    connection = {
        "conn_type": "htcondor",
        "host": "127.0.0.1",
        "password": SECRET,
        "extra": {"controller": "0.0.0.0:9100"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_HTCONDOR_DEFAULT", json.dumps(connection))
    monkeypatch.setenv("AIRFLOW__BURSTING__CONTROLLER", "elsewhere:1")
    settings = settings_from_airflow()
    assert settings.controller == "http://127.0.0.1:9100/status"
    assert SECRET not in repr(settings)
    monkeypatch.setenv("AIRFLOW_CONN_HTCONDOR_DEFAULT", json.dumps({"conn_type": "htcondor"}))
    assert settings_from_airflow().controller == "http://elsewhere:1/status"


def test_security_headers_forbid_foreign_scripts_and_caching(page: Page) -> None:
    headers = page.get("/pool").headers
    assert headers["Cache-Control"] == "no-store"
    assert "default-src 'self'" in headers["Content-Security-Policy"]


def test_static_files_are_the_shipped_ones_only(page: Page) -> None:
    css = page.get("/static/bursting.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert page.get("/static/..%2Fapp.py").status_code == 404
    assert page.get("/static/app.py").status_code == 404


# ----- the Campaign tab -----
def job(job_id: str, state: JobState, **kwargs: Any) -> JobOutcome:
    return JobOutcome(job_id, state, **kwargs)


@pytest.fixture
def campaign_run(page: Page, tmp_path: Path) -> RunFacts:
    results = tmp_path / "results" / "zmm" / "r1"
    results.mkdir(parents=True)
    (results / "dimuon_mass.png").write_bytes(b"\x89PNG fake plot")
    (results / "merged.root").write_bytes(b"root")
    objects = [{"name": "zmm/r1/summary.json", "url": "https://swift.example/v1/AUTH_x/c/zmm"}]
    (results / "summary.json").write_text(json.dumps({"objects": objects}))
    (tmp_path / "results" / "secret.txt").write_text(SECRET)
    run = RunFacts("mc_production", "r1", "running", None, None, "zmm", 41, 4, None)
    page.runs.runs[("mc_production", "r1")] = run
    page.pool.clusters[41] = ClusterStatus(
        41,
        (
            job("41.0", JobState.COMPLETED, exit_code=0),
            job("41.1", JobState.COMPLETED, exit_code=0),
            job("41.2", JobState.HELD, hold_reason="Transfer input files failure: disk full"),
            job("41.3", JobState.RUNNING),
        ),
    )
    page.pool.jobs["zmm"] = (
        CampaignJob("41.0", JobState.COMPLETED, 1, 3600, "private", "p.2c", "p-1", 0),
        CampaignJob("41.1", JobState.COMPLETED, 1, 3600, "public", "c.2c", "c-1", 0),
        CampaignJob("40.0", JobState.COMPLETED, 1, 3600, "public", "c.2c", "c-1", 0),  # other run
    )
    return replace(run, results=results)


def test_campaign_tab_shows_progress_problems_clouds_and_cost(
    page: Page, campaign_run: RunFacts, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "clouds:\n"
        "  - {name: private, type: local, flavors: [{name: p.2c, cpus: 2, memory_mb: 2048}]}\n"
        "  - name: public\n    type: local\n"
        "    flavors: [{name: c.2c, cpus: 2, memory_mb: 2048, price_per_hour: 0.5}]\n"
        "policy: {spend: {currency: CHF}}\n"
    )
    page.settings = replace(page.settings, config_path=config)
    html = page.get("/campaign?dag_id=mc_production&run_id=r1").text
    assert cell(html, 'id="campaign-name"') == "zmm"
    assert cell(html, 'id="jobs-done"') == "2" and cell(html, 'id="jobs-total"') == "4"
    assert cell(html, 'id="jobs-held"') == "1" and cell(html, 'id="jobs-running"') == "1"
    assert "Transfer input files failure: disk full" in html
    # This run's jobs only: one hour on half a p.2c (free), one on half a c.2c at 0.5/h.
    assert 'data-cloud="private"' in html and 'data-cloud="public"' in html
    assert "0.2500 CHF" in html
    assert "Not published yet" in html


def test_published_plots_are_served_through_the_plugin_only_by_listed_name(
    page: Page, campaign_run: RunFacts
) -> None:
    page.runs.runs[("mc_production", "r1")] = campaign_run
    html = page.get("/campaign?dag_id=mc_production&run_id=r1").text
    src = "campaign/file?dag_id=mc_production&amp;run_id=r1&amp;name=dimuon_mass.png"
    assert f'<img src="{src}"' in html
    assert 'href="https://swift.example/v1/AUTH_x/c/zmm"' in html
    base = "/campaign/file?dag_id=mc_production&run_id=r1&name="
    plot = page.get(base + "dimuon_mass.png")
    assert plot.status_code == 200 and plot.content == b"\x89PNG fake plot"
    assert page.get(base + "merged.root").status_code == 200
    for name in ("../secret.txt", "..%2Fsecret.txt", "/etc/passwd", "summary.json.bak"):
        answer = page.get(base + name)
        assert answer.status_code == 404 and SECRET not in answer.text
    assert page.get(base + "dimuon_mass.png", user=None).status_code == 401


def test_campaign_tab_for_other_dags_and_missing_runs(page: Page) -> None:
    html = page.get("/campaign?dag_id=other_dag&run_id=r1").text
    assert "does not run campaigns" in html and "mc_production" in html
    html = page.get("/campaign?dag_id=mc_production&run_id=nope").text
    assert "Airflow has no run" in html


def test_campaign_tab_before_the_cluster_is_submitted(page: Page) -> None:
    run = RunFacts("mc_production", "r2", "running", None, None, "zmm", None, None, None)
    page.runs.runs[("mc_production", "r2")] = run
    html = page.get("/campaign?dag_id=mc_production&run_id=r2").text
    assert "has not submitted its jobs yet" in html


def test_campaign_tab_finds_the_cluster_by_its_task_key_without_the_xcom(page: Page) -> None:
    page.runs.runs[("mc_production", "r3")] = RunFacts(
        "mc_production", "r3", "running", None, None, "zmm", None, None, None
    )
    page.pool.keys["mc_production/generate/r3/-1"] = 7
    page.pool.clusters[7] = ClusterStatus(7, (job("7.0", JobState.IDLE),))
    html = page.get("/campaign?dag_id=mc_production&run_id=r3").text
    assert cell(html, 'id="cluster"') == "7" and cell(html, 'id="jobs-idle"') == "1"


def test_campaign_tab_when_the_pool_cannot_be_read(page: Page, campaign_run: RunFacts) -> None:
    page.pool.fail = PoolUnavailable("schedd unreachable")
    html = page.get("/campaign?dag_id=mc_production&run_id=r1").text
    assert "Cannot read the pool" in html and cell(html, 'id="run-state"') == "running"


def test_runs_page_links_each_run_to_its_campaign_view(page: Page, campaign_run: RunFacts) -> None:
    html = page.get("/runs?dag_id=mc_production").text
    assert 'href="campaign?dag_id=mc_production&amp;run_id=r1"' in html
    assert "does not run campaigns" in page.get("/runs?dag_id=other").text
