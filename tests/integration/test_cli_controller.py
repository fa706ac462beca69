"""`bursting plan` changes nothing; `bursting status --config` shows instances and decisions."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from bursting.pool.htcondor import HTCondorPool
from bursting.store import open_store

pytestmark = pytest.mark.integration


def bursting(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bursting.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )


def test_plan_is_a_dry_run_and_status_reports(
    devpool: Any, htcondor: HTCondorPool, job_dir: Path, tmp_path: Path
) -> None:
    config = {
        "pool": {"id": f"cli{uuid.uuid4().hex[:5]}"},
        "clouds": [
            {
                "name": "private",
                "type": "local",
                "max_instances": 2,
                "flavors": [{"name": "w.2c", "cpus": 2, "memory_mb": 1024, "disk_gb": 5}],
                "local": {"state_dir": str(tmp_path / "clouds")},
            }
        ],
        "policy": {"min_idle_seconds": 0},
        "store": {"url": f"sqlite:///{tmp_path}/state.db"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cluster = htcondor.submit(
        f"executable = /bin/true\ninitialdir = {job_dir}\nrequest_cpus = 1\n"
        # Only a burst worker of this pool matches: no existing node takes them.
        f'request_memory = 128\nrequirements = (TARGET.BurstingPool =?= "{config["pool"]["id"]}")'
        "\nqueue 3\n"
    )
    try:
        planned = bursting("plan", "--config", str(path))
        assert planned.returncode == 0, planned.stderr
        assert "create" in planned.stdout and "(new on private)" in planned.stdout
        assert "need room" in planned.stdout
        assert open_store(config["store"]["url"]).instances(include_gone=True) == []
        records = tmp_path / "clouds" / "private.json"
        assert not records.exists() or json.loads(records.read_text()) == {}

        ran = bursting("run", "--config", str(path), "--cycles", "1")
        assert ran.returncode == 0, ran.stderr
        status = bursting("status", "--config", str(path))
        assert status.returncode == 0, status.stderr
        assert "burst instances" in status.stdout and "requested" in status.stdout
        assert "recent decisions" in status.stdout and "create" in status.stdout
        # The last cycle's stored record: what it read, planned (with its code) and did.
        assert "last cycle" in status.stdout and "pool ok" in status.stdout
        assert "demand" in status.stdout and "done" in status.stdout
    finally:
        htcondor.remove(cluster)
        from bursting.clouds.local import LocalCloudProvider
        from bursting.config import parse_config

        cfg = parse_config(config)
        cloud = LocalCloudProvider(cfg.clouds[0], devpool.containers())  # type: ignore[attr-defined]
        for instance in cloud.list_instances(cfg.pool.id).instances:
            cloud.delete(instance.id)
