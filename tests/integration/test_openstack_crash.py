"""kill -9 the controller while it bursts onto real OpenStack (devcloud): right after it stored
an intent (Nova has no server of that id yet) and right after its create call (Nova has the
server, the store still says requested). Repeated, with where each kill landed read back from
the store and Nova. After restarts: no instance id ever had two servers, nothing leaked, every
job ran once; a tagged server the store never knew is reaped after the orphan grace."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bursting.model import InstanceState, JobState
from bursting.pool.htcondor import HTCondorPool
from bursting.store import open_store
from tests.integration.leftover_servers import cleaned_after
from tests.integration.test_htcondor_pool import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WAVES = 2
AIM = ("intent", "create")
JOBS_PER_WAVE = 6
AIM_SECONDS = 30.0
SETTLE_SECONDS = 300.0


def write_config(tmp: Path, clouds_yaml: Path) -> tuple[Path, dict[str, Any]]:
    from bursting.devcloud import PRIVATE_CLOUD, PUBLIC_CLOUD

    def cloud(name: str, entry: str, priority: int, price: float) -> dict[str, Any]:
        return {
            "name": name,
            "type": "openstack",
            "priority": priority,
            "max_instances": 2,
            "max_concurrent_boots": 2,
            "call_timeout_seconds": 15,
            "flavors": [
                {
                    "name": "w1.medium",
                    "cpus": 2,
                    "memory_mb": 2048,
                    "disk_gb": 4,
                    "price_per_hour": price,
                }
            ],
            "openstack": {
                "cloud": entry,
                "clouds_yaml": str(clouds_yaml),
                "image": "bursting-worker",
                "network": "bursting-net",
                "security_groups": ["bursting-worker"],
            },
        }

    config = {
        "pool": {"id": f"oc{uuid.uuid4().hex[:5]}"},
        "clouds": [
            cloud("private", PRIVATE_CLOUD, 1, 0.0),
            cloud("public", PUBLIC_CLOUD, 5, 0.1),
        ],
        "policy": {
            "interval_seconds": 1,
            "min_idle_seconds": 0,
            "idle_seconds": 5,
            "boot_timeout_seconds": 60,
            "join_timeout_seconds": 90,
            "missing_cycles_before_gone": 3,
            "orphan_grace_seconds": 20,
        },
        "store": {"url": f"sqlite:///{tmp}/state.db"},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, config


# Every pool id here is "oc" and five hex digits (write_config).
MY_SERVERS = "^oc[0-9a-f]{5}-"


@pytest.fixture
def admin(devcloud: Any) -> Iterator[Any]:
    """The admin's connection; whatever servers the test left (it failed mid-wave) deleted."""
    yield from cleaned_after(devcloud, MY_SERVERS)


@pytest.fixture
def controllers(admin: Any) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The controllers the test starts; one still running after it (it failed) is killed by its
    PID before its servers are deleted, so nothing creates them again."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def start(
    config: Path, log: Path, started: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bursting.cli", "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started.append(process)
    return process


class Nova:
    """The admin's view of this test's servers; every id with two servers is remembered."""

    def __init__(self, admin: Any, pool_id: str) -> None:
        self.admin = admin
        self.pool_id = pool_id
        self.duplicates: set[str] = set()
        self.max_seen = 0

    def servers(self) -> dict[str, list[Any]]:
        by_name: dict[str, list[Any]] = {}
        for server in self.admin.compute.servers(
            details=True, all_projects=True, name=f"^{self.pool_id}-"
        ):
            by_name.setdefault(server.name, []).append(server)
        self.duplicates |= {name for name, found in by_name.items() if len(found) > 1}
        self.max_seen = max(self.max_seen, len(by_name))
        return by_name


def requested(store: Any) -> set[str]:
    try:
        return {i.id for i in store.instances() if i.state is InstanceState.REQUESTED}
    except sqlite3.OperationalError:  # the controller holds the write lock right now
        return set()


def landed(store: Any, nova: Nova) -> set[str]:
    intents = requested(store)
    servers = set(nova.servers())
    where = set()
    if intents - servers:
        where.add("intent")
    if intents & servers:
        where.add("create")
    return where


def aim(target: str, store: Any, nova: Nova) -> None:
    deadline = time.monotonic() + AIM_SECONDS
    while time.monotonic() < deadline and target not in landed(store, nova):
        time.sleep(0.02)


def kill_and_read(process: subprocess.Popen[bytes], log: Path, store: Any, nova: Nova) -> set[str]:
    assert process.poll() is None, f"the controller died by itself; see {log}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    return landed(store, nova)


def test_kill_minus_nine_against_nova(
    devcloud: Any,
    devpool: Any,
    htcondor: HTCondorPool,
    job_dir: Path,
    tmp_path: Path,
    admin: Any,
    controllers: list[subprocess.Popen[bytes]],
) -> None:
    config_path, config = write_config(tmp_path, Path(devcloud.clouds_yaml))
    pool_id = config["pool"]["id"]
    nova = Nova(admin, pool_id)
    store = open_store(config["store"]["url"])
    log = tmp_path / "controller.log"
    hits: Counter[str] = Counter()
    clusters = []
    for wave in range(WAVES):
        clusters.append(
            htcondor.submit(
                f"executable = /bin/sleep\narguments = 4\ninitialdir = {job_dir}\n"
                "request_cpus = 1\nrequest_memory = 128\nrequest_disk = 1024\n"
                f"queue {JOBS_PER_WAVE}\n"
            )
        )
        for target in AIM:
            process = start(config_path, log, controllers)
            aim(target, store, nova)
            hits.update(kill_and_read(process, log, store, nova))
        process = start(config_path, log, controllers)
        wait_for(
            f"wave {wave}: its jobs done and every server gone",
            lambda: (
                htcondor.job_status(clusters[-1]).done
                and not store.instances()
                and not nova.servers()
            ),
            timeout=SETTLE_SECONDS,
            every=1,
        )
        hits.update(kill_and_read(process, log, store, nova))
    print(f"kills landed: {dict(hits)}")
    for where in AIM:
        assert hits[where] >= 1, f"no kill landed {where!r}: {dict(hits)}"

    # A tagged server the store never knew (say its store was lost): adopted as an orphan and
    # deleted after the grace by the next controller.
    from tests.integration.test_openstack_provider import provider, spec

    stray = spec(pool_id)
    provider(Path(devcloud.clouds_yaml)).create(stray)
    process = start(config_path, log, controllers)
    try:
        wait_for("the stray server reaped", lambda: not nova.servers(), timeout=120, every=1)
        deletes = [
            line for line in log.read_text().splitlines() if stray.id in line and "delete" in line
        ]
        assert any("[orphan]" in line for line in deletes), f"reaped as an orphan: {deletes}"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, "clean shutdown on SIGTERM"

    assert not nova.duplicates, f"instance ids with two servers: {sorted(nova.duplicates)}"
    assert nova.max_seen <= 4 + 1, "never beyond max_instances (plus the stray)"
    jobs = [job for cluster in clusters for job in htcondor.job_status(cluster).jobs]
    assert len(jobs) == WAVES * JOBS_PER_WAVE
    assert all(j.state is JobState.COMPLETED and j.exit_code == 0 for j in jobs)
    assert not [j for j in jobs if j.starts != 1], "no job was interrupted"
