"""The Airflow UI page in a real browser: `airflow api-server` on 127.0.0.1 (SQLite, the Simple
auth manager with fixed test passwords) with the bursting_ui plugin, a running controller
(`bursting run`) on the personal pool bursting onto two local clouds for a real `mc_production`
run, and Debian's chromium driven by Selenium. Each service starts once for the module and is
stopped by its PID.

Set BURSTING_UI_SCREENSHOT=<path.png> to keep a screenshot of the Burst pool page mid-burst
(how docs/ui.png is made).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from bursting.pool.htcondor import HTCondorPool
from bursting.ui.poolview import pool_facts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
VIEWER = ("phys", "phys-test-password-1")
ADMIN = ("admin", "admin-test-password-1")
CAMPAIGN = f"ui-{uuid.uuid4().hex[:6]}"
JOBS = 4
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], T | None], timeout: float, every: float = 1.0) -> T:
    """`check()`'s first truthy answer; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def get(url: str, token: str | None = None, timeout: float = 10) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM to the process group we started, SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


# ----- the controller, bursting onto two local clouds -----
@dataclass
class Controller:
    config: dict[str, Any]
    path: Path
    status_url: str
    log: Path

    def status(self) -> dict[str, Any] | None:
        code, body = get(self.status_url)
        return json.loads(body) if code == 200 else None


@pytest.fixture(scope="module")
def controller(devpool: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    work = tmp_path_factory.mktemp("controller")
    port = free_port()

    def cloud(name: str, priority: int, flavor: str, price: float) -> dict[str, Any]:
        return {
            "name": name,
            "type": "local",
            "priority": priority,
            "max_instances": 1,
            "flavors": [
                {
                    "name": flavor,
                    "cpus": 2,
                    "memory_mb": 2048,
                    "disk_gb": 5,
                    "price_per_hour": price,
                }
            ],
            "local": {"state_dir": str(work / "clouds"), "boot_delay_seconds": 2},
        }

    config = {
        "pool": {"id": f"ui{uuid.uuid4().hex[:6]}"},
        "clouds": [cloud("private", 1, "p.2c", 0.0), cloud("public", 5, "c.2c", 0.6)],
        "policy": {
            "interval_seconds": 3,
            "min_idle_seconds": 2,
            "idle_seconds": 600,  # the workers stay while the module looks at them
            "boot_timeout_seconds": 180,
            "join_timeout_seconds": 180,
            "spend": {"currency": "CHF", "max_per_hour": 5.0},
        },
        "store": {"url": f"sqlite:///{work}/state.db"},
        "metrics": {"listen": f"127.0.0.1:{port}"},
    }
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    log = work / "controller.log"
    process = start([sys.executable, "-m", "bursting.cli", "run", "--config", str(path)], log)
    running = Controller(config, path, f"http://127.0.0.1:{port}/status", log)
    try:
        wait_for("the controller's /status", running.status, 90)
        yield running
    finally:
        stop(process)
        from bursting.clouds.local import LocalCloudProvider
        from bursting.config import parse_config

        parsed = parse_config(config)
        for cloud_config in parsed.clouds:
            provider = LocalCloudProvider(cloud_config, devpool.containers())
            for instance in provider.list_instances(parsed.pool.id).instances:
                provider.delete(instance.id)


# ----- Airflow's api-server with the plugin -----
@dataclass
class Airflow:
    url: str
    env: dict[str, str]
    results: Path

    def token(self, user: tuple[str, str] = VIEWER) -> str:
        request = urllib.request.Request(
            f"{self.url}/auth/token",
            data=json.dumps({"username": user[0], "password": user[1]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return str(json.loads(answer.read())["access_token"])


@pytest.fixture(scope="module")
def airflow(controller: Controller, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    home = tmp_path_factory.mktemp("airflow-home")
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(dict([VIEWER, ADMIN])))
    results = tmp_path_factory.mktemp("results")
    connection = {
        "conn_type": "htcondor",
        "host": "127.0.0.1",
        "port": 9618,
        "extra": {"controller": controller.config["metrics"]["listen"]},
    }
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple."
        "simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN[0]}:admin,{VIEWER[0]}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex * 2,
        "AIRFLOW__BURSTING__REFRESH_SECONDS": "5",
        "AIRFLOW__BURSTING__SAMPLE_SECONDS": "5",
        "AIRFLOW_CONN_HTCONDOR_DEFAULT": json.dumps(connection),
        "BURSTING_RESULTS": str(results),
        "BURSTING_CONFIG": str(controller.path),
    }
    migrated = subprocess.run(
        [AIRFLOW, "db", "migrate"], env=env, capture_output=True, timeout=300, check=False
    )
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    port = free_port()
    log = home / "api-server.log"
    server = start([AIRFLOW, "api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1"], log, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            "airflow api-server's health",
            lambda: get(f"{url}/api/v2/monitor/health")[0] == 200 or server.poll() is not None,
            120,
        )
        assert server.poll() is None, log.read_text()[-3000:]
        yield Airflow(url, env, results)
    finally:
        stop(server)


# ----- a real mc_production run, whose jobs are the burst's demand -----
@dataclass
class Campaign:
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def campaign(airflow: Airflow, htcondor: HTCondorPool) -> Iterator[Campaign]:
    conf = {
        "campaign": CAMPAIGN,
        "process": "zmumu",
        "total_events": JOBS * 10,
        "events_per_job": 10,
        "base_seed": 7,
    }
    log = airflow.results / "dags-test.log"
    process = start(
        [AIRFLOW, "dags", "test", "mc_production", "-c", json.dumps(conf)], log, airflow.env
    )
    yield Campaign(process, log)
    stop(process)
    for cluster in htcondor.find_clusters(f'BurstingCampaign =?= "{CAMPAIGN}"'):
        htcondor.remove(cluster)


# ----- the browser, signed in as the viewer -----
@pytest.fixture(scope="module")
def browser(airflow: Airflow) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("install Debian's chromium and chromium-driver (make system-deps)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--window-size=1400,1050"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(f"{airflow.url}/")
        wait = WebDriverWait(driver, 60)
        wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(VIEWER[0])
        driver.find_element(By.NAME, "password").send_keys(VIEWER[1])
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: "/auth/login" not in d.current_url)
        yield driver
    finally:
        driver.quit()


def enter_frame(driver: Any, title: str, ready_id: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.switch_to.default_content()
    wait = WebDriverWait(driver, 60)
    frame = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f"iframe[title='{title}']"))
    )
    driver.switch_to.frame(frame)
    wait.until(ec.presence_of_element_located((By.ID, ready_id)))


def text_of(html: str, marker: str) -> str | None:
    found = re.search(re.escape(marker) + r"[^>]*>([^<]*)<", html)
    return found.group(1).strip() if found else None


def per_cloud(doc: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for group in doc.get("instances") or []:
        counts[group["cloud"]] = counts.get(group["cloud"], 0) + int(group["count"])
    return counts


# True once the frame holds a newly loaded Burst pool page (not the one being reloaded).
FRESH_PAGE = (
    "return document.readyState === 'complete' && !document.documentElement.dataset.stale"
    " && !!document.getElementById('idle-jobs');"
)


# ----- the tests -----
def plugin_routes(run_id: str = "nope") -> list[str]:
    query = f"dag_id=mc_production&run_id={run_id}"
    return [
        "/bursting/pool",
        "/bursting/pool/body",
        f"/bursting/campaign?{query}",
        f"/bursting/campaign/body?{query}",
        f"/bursting/campaign/file?{query}&name=dimuon_mass.png",
        "/bursting/runs?dag_id=mc_production",
        "/bursting/static/bursting.css",
        "/bursting/static/bursting.js",
    ]


def test_anonymous_requests_to_every_plugin_route_are_refused(airflow: Airflow) -> None:
    token = airflow.token()
    for route in plugin_routes():
        code, body = get(airflow.url + route)
        assert code == 401, (route, code, body[:200])
        assert b"private" not in body
        signed_in, _ = get(airflow.url + route, token)
        assert signed_in in (200, 404), (route, signed_in)  # 404: no such run or plot yet


def test_burst_pool_page_matches_the_controller_and_the_pool(
    browser: Any,
    airflow: Airflow,
    controller: Controller,
    campaign: Campaign,
    htcondor: HTCondorPool,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    # A burst in progress: the campaign's jobs are queued and the controller has instances.
    wait_for(
        "the controller to start burst instances",
        lambda: (doc := controller.status()) is not None and sum(per_cloud(doc).values()) > 0,
        240,
        every=2,
    )
    browser.switch_to.default_content()
    browser.get(f"{airflow.url}/")
    wait = WebDriverWait(browser, 60)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label=Browse]"))).click()
    wait.until(
        ec.element_to_be_clickable((By.XPATH, "//a[normalize-space()='Burst pool']"))
    ).click()
    wait.until(lambda d: d.current_url.endswith("/plugin/burst-pool"))
    enter_frame(browser, "Burst pool", "queue")

    matched = None
    for _ in range(20):  # the page and the sources are read a moment apart: retry until in step
        browser.execute_script("document.documentElement.dataset.stale = '1'; location.reload()")
        wait.until(lambda d: d.execute_script(FRESH_PAGE))
        html = browser.page_source
        doc = controller.status()
        snapshot = htcondor.snapshot()
        cycle = re.search(r'data-cycle="([^"]+)"', html)
        if doc is None or cycle is None or float(cycle.group(1)) != doc["last_cycle"]["started_at"]:
            time.sleep(1)
            continue
        shown = {
            c: int(n) for c, n in re.findall(r'data-cloud="([^"]+)" data-instances="(\d+)"', html)
        }
        expected = {c["name"]: per_cloud(doc).get(c["name"], 0) for c in doc["clouds"]}
        idle = text_of(html, 'id="idle-jobs"')
        if shown == expected and idle == str(pool_facts(snapshot).idle):
            matched = (shown, idle, doc)
            break
        time.sleep(1)
    assert matched is not None, f"page never matched /status and the pool; last page:\n{html}"
    shown, idle, doc = matched
    assert sum(shown.values()) > 0
    for group in doc["instances"]:  # each instance listed with its state
        for row in group["instances"]:
            assert row["id"] in html
    assert "Cannot reach the controller" not in html and "Traceback" not in html
    assert "of a cap of 5 CHF/h" in html

    screenshot = os.environ.get("BURSTING_UI_SCREENSHOT")
    if screenshot:
        take_screenshot(browser, Path(screenshot))


def mid_burst(html: str) -> bool:
    """Jobs running on burst workers and a few chart samples: the moment worth a picture."""
    samples = re.search(r'data-samples="(\d+)"', html)
    return (
        samples is not None
        and int(samples.group(1)) >= 6
        and int(text_of(html, 'id="running-jobs"') or 0) > 0
        and int(text_of(html, 'id="burst-workers"') or 0) > 0
    )


def take_screenshot(browser: Any, path: Path) -> None:
    """The Burst pool page, mid-burst if that comes within two minutes, tall enough to show all
    of it (docs/ui.png)."""
    deadline = time.monotonic() + 120
    while not mid_burst(browser.page_source) and time.monotonic() < deadline:
        time.sleep(1)  # the page refreshes itself every 5 s
    browser.switch_to.default_content()
    browser.set_window_size(1400, 1250)
    time.sleep(1)
    browser.save_screenshot(str(path))
    browser.set_window_size(1400, 1050)


def test_campaign_tab_of_the_finished_run_shows_progress_and_plots(
    browser: Any, airflow: Airflow, campaign: Campaign, htcondor: HTCondorPool
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait_for("the mc_production run", lambda: campaign.process.poll() is not None, 900, 3)
    assert campaign.process.returncode == 0, campaign.log.read_text()[-4000:]
    token = airflow.token()
    status, body = get(f"{airflow.url}/api/v2/dags/mc_production/dagRuns", token)
    assert status == 200
    (run,) = [
        r for r in json.loads(body)["dag_runs"] if (r.get("conf") or {}).get("campaign") == CAMPAIGN
    ]
    run_id = run["dag_run_id"]

    browser.switch_to.default_content()
    browser.get(f"{airflow.url}/dags/mc_production/runs/{urllib.parse.quote(run_id, safe='')}")
    wait = WebDriverWait(browser, 60)
    tab = wait.until(
        ec.element_to_be_clickable(
            (By.XPATH, "//a[substring(@href, string-length(@href) - 15) = '/plugin/campaign']")
        )
    )
    tab.click()
    enter_frame(browser, "Campaign", "progress")
    html = browser.page_source
    assert text_of(html, 'id="campaign-name"') == CAMPAIGN
    assert text_of(html, 'id="jobs-done"') == str(JOBS) and text_of(html, 'id="jobs-total"') == str(
        JOBS
    )
    cluster = int(text_of(html, 'id="cluster"') or 0)
    jobs = htcondor.job_status(cluster).jobs
    assert len(jobs) == JOBS and all(j.state.finished for j in jobs)
    clouds = set(re.findall(r'<tr data-cloud="([^"]+)"', html))
    assert clouds and clouds <= {"private", "public"}, clouds
    assert "Cost so far" in html
    plots = wait_for(
        "the published plots to load",
        lambda: browser.execute_script(
            "const i = Array.from(document.images);"
            "return i.length >= 2 && i.every(x => x.complete && x.naturalWidth > 0) ? i.length : 0;"
        ),
        30,
    )
    assert plots >= 2
    screenshot = os.environ.get("BURSTING_UI_SCREENSHOT")
    if screenshot:  # the tab beside the pool page's picture
        browser.switch_to.default_content()
        browser.save_screenshot(screenshot.removesuffix(".png") + "-campaign.png")
        enter_frame(browser, "Campaign", "progress")
    # The plot is served through the plugin to the signed-in viewer, and to nobody else.
    src = re.search(r'<img src="([^"]+)"', html)
    assert src is not None
    url = f"{airflow.url}/bursting/{src.group(1).replace('&amp;', '&')}"
    assert get(url, token)[0] == 200 and get(url)[0] == 401
