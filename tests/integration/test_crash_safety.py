"""kill -9 the controller again and again in the middle of a burst: nothing leaks or duplicates,
no job is lost or interrupted, and at the end nothing is left running."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from bursting.model import JobState
from bursting.pool.htcondor import HTCondorPool
from bursting.store import open_store
from tests.integration.test_htcondor_pool import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KILLS = 20


def write_config(tmp: Path) -> tuple[Path, dict[str, Any]]:
    pool_id = f"crash{uuid.uuid4().hex[:5]}"

    def cloud(name: str, priority: int, price: float, count: int) -> dict[str, Any]:
        return {
            "name": name,
            "type": "local",
            "priority": priority,
            "max_instances": count,
            "max_concurrent_boots": count,
            "flavors": [
                {
                    "name": "w.2c",
                    "cpus": 2,
                    "memory_mb": 1024,
                    "disk_gb": 5,
                    "price_per_hour": price,
                }
            ],
            "local": {"boot_delay_seconds": 1, "state_dir": str(tmp / "clouds")},
        }

    config = {
        "pool": {"id": pool_id},
        "clouds": [cloud("private", 1, 0.0, 2), cloud("public", 5, 0.1, 2)],
        "policy": {
            "interval_seconds": 1,
            "min_idle_seconds": 0,
            "idle_seconds": 5,
            "boot_timeout_seconds": 30,
            "join_timeout_seconds": 60,
            "missing_cycles_before_gone": 3,
            "orphan_grace_seconds": 20,
        },
        "store": {"url": f"sqlite:///{tmp}/state.db"},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, config


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bursting.cli", "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def cloud_records(tmp: Path) -> dict[str, Any]:
    records: dict[str, Any] = {}
    for file in (tmp / "clouds").glob("*.json"):
        records.update(json.loads(file.read_text()))
    return records


def test_kill_minus_nine_in_a_loop(
    devpool: Any, htcondor: HTCondorPool, job_dir: Path, tmp_path: Path
) -> None:
    config_path, config = write_config(tmp_path)
    pool_id = config["pool"]["id"]
    log = tmp_path / "controller.log"
    cluster = htcondor.submit(
        f"executable = /bin/sleep\narguments = 4\ninitialdir = {job_dir}\n"
        "request_cpus = 1\nrequest_memory = 128\nrequest_disk = 1024\nqueue 40\n"
    )
    rng = random.Random(20261123)
    max_seen: Counter[str] = Counter()
    for _ in range(KILLS):
        process = start(config_path, log)
        time.sleep(rng.uniform(0.3, 3.0))
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        live = cloud_records(tmp_path)
        for cloud in ("private", "public"):
            count = sum(1 for key in live if key.startswith(f"{pool_id}-{cloud}-"))
            max_seen[cloud] = max(max_seen[cloud], count)

    process = start(config_path, log)
    try:
        wait_for(
            "every job to finish", lambda: htcondor.job_status(cluster).done, timeout=300, every=3
        )
        store = open_store(config["store"]["url"])
        wait_for(
            "every instance to be gone",
            lambda: not store.instances() and not cloud_records(tmp_path),
            timeout=180,
            every=2,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, "clean shutdown on SIGTERM"

    jobs = htcondor.job_status(cluster).jobs
    assert len(jobs) == 40
    assert all(j.state is JobState.COMPLETED and j.exit_code == 0 for j in jobs)
    assert all(j.starts == 1 for j in jobs), "no job was interrupted by a deletion"
    assert max_seen["private"] <= 2 and max_seen["public"] <= 2, "never beyond max_instances"
    created = []
    for file in (tmp_path / "clouds").glob("*.created"):
        created += [line.split()[0] for line in file.read_text().splitlines()]
    assert created, "the burst did use the clouds"
    assert len(created) == len(set(created)), "no instance id was created twice"
    known = {i.id for i in store.instances(include_gone=True)}
    assert set(created) <= known, "every created instance is known to the store"
    assert not [n for n in devpool.node_names() if n.startswith(pool_id)], "no leaked node"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "message"} <= set(line) for line in lines)
