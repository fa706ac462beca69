"""Debian's real Prometheus scraping a running `bursting run` through a burst on the local clouds.

One burst serves three checks: the story Prometheus tells (instances rose then fell to 0, every
job of the campaign done, boot and join latency observed, no error series, no alert firing),
every query of every panel of deploy/grafana/bursting.json returning data, and
docs/plot_burst.py drawing the burst from Prometheus (into docs/dashboard.png when
BURSTING_DASHBOARD_PNG names it). Everything listens on 127.0.0.1 and is stopped by PID.
Waits poll Prometheus with deadlines, so a loaded machine makes the test slower, not flaky.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bursting.model import CAMPAIGN_ATTRIBUTE, JobState
from bursting.pool.htcondor import HTCondorPool
from tests.integration.test_htcondor_pool import wait_for
from tests.unit.test_dashboard import queries

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
JOBS = 8
JOB_SECONDS = 15
# Seconds between scrapes, and the scrape timeout: a burst of a minute or two leaves dozens of
# points, and a controller slowed by a loaded machine still answers in time.
SCRAPE = 2.0
STEP = 2.0  # query_range resolution
# For $__rate_interval: Grafana puts at least four scrapes; this also spans two cycles, so every
# window holds a cycle's increments.
RATE_INTERVAL = "20s"
# The controller's interval. A cloud listing may take half of it, and a local cloud's listing
# starts the booting nodes' containers: on a loaded machine that takes seconds, which must not
# count as an unreadable cloud in a run the test calls healthy.
INTERVAL = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path.name}: nothing written)"
    return f"--- {path.name} ---\n" + "\n".join(
        path.read_text(errors="replace").splitlines()[-lines:]
    )


def stop(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """SIGTERM by PID, then SIGKILL if it will not go."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


class Prometheus:
    """`prometheus` on 127.0.0.1 with its own storage, scraping one target every second and
    evaluating deploy/prometheus/rules.yml."""

    def __init__(self, tmp: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus not found: apt-get install prometheus (make system-deps)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "prometheus.log"
        config = tmp / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "scrape_interval": f"{SCRAPE:g}s",
                        "scrape_timeout": f"{SCRAPE:g}s",
                        "evaluation_interval": f"{SCRAPE:g}s",
                    },
                    "rule_files": [str(RULES)],
                    "scrape_configs": [
                        {"job_name": "bursting", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1d",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp,
            )

    def get(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        result: list[dict[str, Any]] = self.get("/api/v1/query", **params)["result"]
        return result

    def scalar(self, expr: str, at: float | None = None) -> float | None:
        """The one value of an instant query, None when it returns nothing."""
        result = self.query(expr, at)
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    def query_range(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get(
            "/api/v1/query_range", query=expr, start=start, end=end, step=STEP
        )["result"]
        return result

    def ready(self) -> bool:
        assert self.process.poll() is None, tail(self.log)
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False


def controller_config(tmp: Path, listen: str) -> dict[str, Any]:
    def cloud(name: str, priority: int, price: float, **local: Any) -> dict[str, Any]:
        return {
            "name": name,
            "type": "local",
            "priority": priority,
            "max_instances": 2,
            "max_concurrent_boots": 2,
            "flavors": [
                {
                    "name": f"{name}.2c",
                    "cpus": 2,
                    "memory_mb": 1024,
                    "disk_gb": 5,
                    "price_per_hour": price,
                }
            ],
            "local": {"boot_delay_seconds": 1, "state_dir": str(tmp / "clouds"), **local},
        }

    return {
        "pool": {"id": f"prom{uuid.uuid4().hex[:6]}"},
        "workers": {"idle_shutdown_seconds": 180},
        "clouds": [
            cloud("private", 1, 0.0),
            # A quota, so the dashboard's quota headroom has a cloud to show.
            cloud("public", 5, 0.12, faults={"quota_cores": 16}),
        ],
        "policy": {
            "interval_seconds": INTERVAL,
            "min_idle_seconds": 0,
            "idle_seconds": 6,
            # Generous: a slow boot on a loaded machine must not look like a failing cloud.
            "boot_timeout_seconds": 180,
            "join_timeout_seconds": 180,
            "missing_cycles_before_gone": 2,
            "orphan_grace_seconds": 60,
            "spend": {"currency": "CHF", "max_per_hour": 1.0},
        },
        "store": {"url": f"sqlite:///{tmp}/state.db"},
        "metrics": {"listen": listen},
    }


@pytest.fixture
def burst_world(
    devpool: Any, htcondor: HTCondorPool, tmp_path: Path
) -> Iterator[tuple[dict[str, Any], Prometheus, subprocess.Popen[bytes]]]:
    """`bursting run` and Prometheus scraping it; both stopped by PID, and anything the
    controller left on the local clouds deleted, whatever the test did."""
    port = free_port()
    config = controller_config(tmp_path, f"127.0.0.1:{port}")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "controller.log"
    with log.open("wb") as out:
        controller = subprocess.Popen(
            [sys.executable, "-m", "bursting.cli", "run", "--config", str(path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    prometheus = Prometheus(tmp_path, f"127.0.0.1:{port}")
    try:
        yield config, prometheus, controller
    finally:
        stop(controller)
        stop(prometheus.process)
        print(tail(log), tail(prometheus.log), sep="\n")
        from bursting.clouds.local import LocalCloudProvider
        from bursting.clouds.local_config import LocalCloud
        from bursting.config import parse_config

        settings = parse_config(config)
        for cloud_config in settings.clouds:
            assert isinstance(cloud_config, LocalCloud)
            cloud = LocalCloudProvider(cloud_config, devpool.containers())
            for instance in cloud.list_instances(settings.pool.id).instances:
                cloud.delete(instance.id)


def values(series: list[dict[str, Any]]) -> list[float]:
    return [float(v) for s in series for _, v in s["values"]]


def test_prometheus_tells_the_story_of_a_burst_and_every_panel_has_data(
    burst_world: tuple[dict[str, Any], Prometheus, subprocess.Popen[bytes]],
    htcondor: HTCondorPool,
    job_dir: Path,
    tmp_path: Path,
) -> None:
    config, prom, controller = burst_world
    pool_id = config["pool"]["id"]
    campaign = f"promtest-{pool_id}"
    wait_for("Prometheus to be ready", prom.ready, timeout=60, every=0.5)

    def baseline() -> bool:
        assert controller.poll() is None, "bursting run exited"
        boot = prom.query('bursting_instance_boot_seconds_count{job="bursting"}')
        return prom.scalar('up{job="bursting"}') == 1 and len(boot) == 2

    # The zero latency series are scraped before anything boots, so rate() sees the first boot.
    wait_for("Prometheus to scrape the controller's first cycles", baseline, timeout=90)
    start = time.time()
    wait_for("one more scrape", lambda: time.time() - start > 3 * SCRAPE, timeout=10, every=0.5)
    only_ours = f'requirements = (TARGET.BurstingPool =?= "{pool_id}")'
    cluster = htcondor.submit(
        f"executable = /bin/sleep\narguments = {JOB_SECONDS}\ninitialdir = {job_dir}\n"
        "request_cpus = 1\nrequest_memory = 128\nrequest_disk = 1024\n"
        f'{only_ours}\n+{CAMPAIGN_ATTRIBUTE} = "{campaign}"\nqueue {JOBS}\n'
    )
    # One job no flavor can run: the unsatisfiable-jobs panel must show something real.
    impossible = htcondor.submit(
        f"executable = /bin/true\ninitialdir = {job_dir}\nrequest_cpus = 64\n"
        f"request_memory = 128\n{only_ours}\nqueue 1\n"
    )
    submitted = time.time()
    try:
        wait_for(
            "the campaign's jobs to finish",
            lambda: htcondor.job_status(cluster).done,
            timeout=240,
            every=2,
        )
        done = f'bursting_campaign_jobs{{campaign="{campaign}", state="done"}}'
        wait_for(f"Prometheus to see {JOBS} jobs done", lambda: prom.scalar(done) == JOBS, 60)
        # Each job's wait observed exactly once, whether a cycle saw it running or only the
        # schedd's history shows it (started and ended between two cycles).
        waits = 'bursting_job_wait_seconds_count{job="bursting"}'
        wait_for(f"{JOBS} job waits observed", lambda: prom.scalar(waits) == JOBS, 60)
    finally:
        htcondor.remove(impossible)
    finished = time.time()
    wait_for(
        "Prometheus to see every instance gone",
        lambda: (
            prom.query('bursting_instances{job="bursting"}') == []
            and prom.scalar('bursting_pool_up{job="bursting"}') == 1
        ),
        timeout=180,
        every=2,
    )
    end = time.time() + 2 * SCRAPE
    wait_for("the last scrapes", lambda: time.time() > end, timeout=10, every=0.5)
    span = f"{end - start:.0f}s"
    scrapes = prom.scalar(f'count_over_time(up{{job="bursting"}}[{span}])', end) or 0
    failed = prom.scalar(f'count_over_time((up{{job="bursting"}} == 0)[{span}:])', end) or 0
    slowest = prom.scalar(f'max_over_time(scrape_duration_seconds{{job="bursting"}}[{span}])') or 0
    print(
        f"burst: submitted +{submitted - start:.0f}s, jobs done +{finished - start:.0f}s, "
        f"instances gone +{end - start:.0f}s; {scrapes:.0f} scrapes, {failed:.0f} failed, "
        f"slowest {slowest:.3f}s"
    )

    # Instances rose from 0, then fell back to 0.
    total = prom.query_range('sum(bursting_instances{job="bursting"}) or vector(0)', start, end)
    counts = values(total)
    assert counts[0] == 0 and counts[-1] == 0 and max(counts) >= 2, counts
    rose = counts.index(max(counts))
    assert 0 < rose < len(counts) - 1
    per_cloud = prom.query(
        f"max_over_time(sum by (cloud) (bursting_instances)[{end - start:.0f}s:1s])", end
    )
    peaks = {s["metric"]["cloud"]: float(s["value"][1]) for s in per_cloud}
    assert peaks.get("private", 0) >= 1, peaks  # the free, preferred cloud was used

    # Every job of the campaign done, none left idle or running.
    states = {
        s["metric"]["state"]: float(s["value"][1])
        for s in prom.query(f'bursting_campaign_jobs{{campaign="{campaign}"}}', end)
    }
    assert states == {"idle": 0, "running": 0, "held": 0, "done": JOBS, "removed": 0}, states
    assert htcondor.job_status(cluster).count(JobState.COMPLETED) == JOBS

    # Boot and join latency observed, waits seen, creates done.
    boots = prom.scalar('sum(bursting_instance_boot_seconds_count{job="bursting"})') or 0
    joins = prom.scalar('sum(bursting_instance_join_seconds_count{job="bursting"})') or 0
    creates = prom.scalar(
        'sum(bursting_planned_actions_total{kind="create", outcome="done", job="bursting"})'
    )
    assert creates is not None and 1 <= boots <= creates and 1 <= joins <= creates
    assert (prom.scalar('bursting_job_wait_seconds_count{job="bursting"}') or 0) >= 1
    print(f"instances created {creates:.0f}, boots observed {boots:.0f}, joins {joins:.0f}")
    for quantile in ("0.5", "0.9"):
        latency = prom.scalar(
            f"histogram_quantile({quantile}, sum by (le) "
            f'(bursting_instance_boot_seconds_bucket{{job="bursting"}}))'
        )
        print(f"boot latency p{float(quantile) * 100:.0f} (bucketed): {latency}")

    # A healthy run: no error series at all, and no alert firing.
    window = f"{end - start + 60:.0f}s"
    for errors in (
        "bursting_cloud_api_errors_total",
        "bursting_source_read_failures_total",
        'bursting_planned_actions_total{outcome="failed"}',
        'ALERTS{alertstate="firing"}',
    ):
        assert prom.query(f"count_over_time({errors}[{window}])", end) == [], errors
    rules = prom.get("/api/v1/rules")["groups"]
    assert {g["name"] for g in rules} == {"bursting.recording", "bursting.alerts"}
    broken = [
        (r["name"], r.get("lastError")) for g in rules for r in g["rules"] if r["health"] != "ok"
    ]
    assert broken == []

    # Every query of every dashboard panel returns data over the burst.
    empty = []
    for title, ref, expr in queries(rate_interval=RATE_INTERVAL, interval=f"{STEP:g}s"):
        series = prom.query_range(expr, start, end)
        found = [v for v in values(series) if not math.isnan(v)]
        if not found:
            empty.append(f"{title} [{ref}]: {expr}")
        if title in ("Cloud API errors", "Failed actions"):
            assert found and all(v == 0 for v in found), (title, series)
    assert empty == [], "panels without data:\n" + "\n".join(empty)

    # The README's picture, from the same Prometheus.
    picture = Path(os.environ.get("BURSTING_DASHBOARD_PNG") or tmp_path / "burst.png")
    drawn = subprocess.run(
        [
            sys.executable,
            str(REPO / "docs" / "plot_burst.py"),
            f"--prometheus={prom.url}",
            f"--start={start - 5}",
            f"--end={end}",
            f"--step={STEP:g}",
            f"--out={picture.resolve()}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert drawn.returncode == 0, drawn.stderr
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
