"""kill -9 the controller again and again in the middle of a burst: nothing leaks or duplicates,
no job is lost or interrupted, and at the end nothing is left running.

Kills are aimed at the windows that matter, and where each one landed is read back from what the
controller left behind (the store, the cloud's records and audit trail, node processes, the
collector): after an intent was stored but before the cloud accepted it, after a create was
accepted but before the node started, and after a node started but before its startd joined.
Every kind must be hit at least once."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from bursting.model import InstanceState, JobState
from bursting.pool.htcondor import HTCondorPool
from bursting.store import open_store
from tests.integration.test_htcondor_pool import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WAVES = 4  # each wave of jobs makes the clouds scale up from nothing and back down
AIM = ("intent", "create", "join", "anywhere")  # one kill aimed at each, per wave
JOBS_PER_WAVE = 16
AIM_SECONDS = 20.0  # how long one kill waits for its window before killing anyway
SETTLE_SECONDS = 240.0  # a wave's jobs done and its instances gone, with a live controller
LOOP_SECONDS = 720.0


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
            "local": {
                "boot_delay_seconds": 1,
                "state_dir": str(tmp / "clouds"),
                # A realistic API latency: the window between an intent and its acceptance.
                "faults": {"create_delay_seconds": 0.5},
            },
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


def audit_trail(tmp: Path) -> list[str]:
    created: list[str] = []
    for file in (tmp / "clouds").glob("*.created"):
        created += [line.split()[0] for line in file.read_text().splitlines()]
    return created


def our_nodes(devpool: Any, pool_id: str) -> set[str]:
    """The local cloud's nodes of this test's pool: containers podman knows (running or not),
    and any a killed `podman run` left half-made in the runtime (a process with no record)."""
    from bursting.devpool.containers import NAME_PREFIX, _orphans

    names = set(devpool.containers().node_names())
    names |= {named.removeprefix(NAME_PREFIX) for named, _ in _orphans()}
    return {name for name in names if name.startswith(f"{pool_id}-")}


def joined(htcondor: HTCondorPool) -> set[str]:
    return {w.instance_id for w in htcondor.workers() if w.instance_id}


def landed(store: Any, records: dict[str, Any], nodes: set[str], joined_ids: set[str]) -> set[str]:
    """Which crash windows the state shows open: intents the cloud has not accepted, creates
    accepted but not booted, nodes started whose startd has not joined."""
    where = set()
    try:
        intents = {i.id for i in store.instances() if i.state is InstanceState.REQUESTED}
    except sqlite3.OperationalError:  # the controller holds the write lock right now
        intents = set()
    if intents - set(records):
        where.add("intent")
    if any(r["status"] == "BUILD" and key not in nodes for key, r in records.items()):
        where.add("create")
    booted = {n for n in nodes if records.get(n, {}).get("status") in ("BUILD", "ACTIVE")}
    if booted - joined_ids:
        where.add("join")
    return where


def aim(
    target: str, rng: random.Random, store: Any, tmp: Path, devpool: Any, htcondor: Any, pool: str
) -> None:
    """Return when the window named by target looks open (bounded), or after a random pause."""
    if target == "anywhere":
        time.sleep(rng.uniform(0.3, 3.0))
        return
    deadline = time.monotonic() + AIM_SECONDS
    while time.monotonic() < deadline:
        nodes = our_nodes(devpool, pool) if target == "join" else set()
        seen = joined(htcondor) if nodes else set()
        if target in landed(store, cloud_records(tmp), nodes, seen):
            return
        time.sleep(0.02)


def kill_and_read(
    process: subprocess.Popen[bytes],
    log: Path,
    tmp: Path,
    store: Any,
    devpool: Any,
    htcondor: HTCondorPool,
    pool_id: str,
    max_seen: Counter[str],
) -> set[str]:
    """kill -9 the controller, then read back where that landed (nothing but startds joining
    changes after the kill)."""
    assert process.poll() is None, f"the controller died by itself; see {log}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    records = cloud_records(tmp)
    nodes = our_nodes(devpool, pool_id)
    for cloud in ("private", "public"):
        count = sum(1 for key in records if key.startswith(f"{pool_id}-{cloud}-"))
        max_seen[cloud] = max(max_seen[cloud], count)
    assert len(nodes) <= 4, f"more nodes than instances allowed: {sorted(nodes)}"
    return landed(store, records, nodes, joined(htcondor))


def cycles_logged(log: Path) -> int:
    return log.read_text().count('"message": "cycle:')


def test_kill_minus_nine_in_a_loop(
    devpool: Any, htcondor: HTCondorPool, job_dir: Path, tmp_path: Path
) -> None:
    config_path, config = write_config(tmp_path)
    pool_id = config["pool"]["id"]
    log = tmp_path / "controller.log"
    store = open_store(config["store"]["url"])
    rng = random.Random(20261123)
    max_seen: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    clusters = []
    began = time.monotonic()
    for wave in range(WAVES):
        created_before = len(audit_trail(tmp_path))
        clusters.append(
            htcondor.submit(
                f"executable = /bin/sleep\narguments = 4\ninitialdir = {job_dir}\n"
                "request_cpus = 1\nrequest_memory = 128\nrequest_disk = 1024\n"
                f"queue {JOBS_PER_WAVE}\n"
            )
        )
        for target in AIM:
            process = start(config_path, log)
            aim(target, rng, store, tmp_path, devpool, htcondor, pool_id)
            hits.update(
                kill_and_read(process, log, tmp_path, store, devpool, htcondor, pool_id, max_seen)
            )
        # Let one controller live until the wave is over, so the next wave scales up afresh.
        process = start(config_path, log)
        wait_for(
            f"wave {wave}: its jobs done and every instance gone",
            lambda: (
                htcondor.job_status(clusters[-1]).done
                and not store.instances()
                and not cloud_records(tmp_path)
            ),
            timeout=SETTLE_SECONDS,
            every=1,
        )
        hits.update(
            kill_and_read(process, log, tmp_path, store, devpool, htcondor, pool_id, max_seen)
        )
        assert len(audit_trail(tmp_path)) > created_before, f"wave {wave} used the clouds"
        assert time.monotonic() - began < LOOP_SECONDS, f"the loop is bounded; hits {dict(hits)}"
    kills = WAVES * (len(AIM) + 1)
    print(f"{kills} kills in {time.monotonic() - began:.0f}s landed: {dict(hits)}")
    for where in ("intent", "create", "join"):
        assert hits[where] >= 1, f"no kill landed {where!r} in {kills} kills: {dict(hits)}"

    # A last controller finds nothing left to do, and stops cleanly.
    cycles = cycles_logged(log)
    process = start(config_path, log)
    try:
        wait_for("a cycle of the last controller", lambda: cycles_logged(log) > cycles, 60, 0.5)
        assert not store.instances() and not cloud_records(tmp_path)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, "clean shutdown on SIGTERM"

    jobs = [job for cluster in clusters for job in htcondor.job_status(cluster).jobs]
    assert len(jobs) == WAVES * JOBS_PER_WAVE
    assert all(j.state is JobState.COMPLETED and j.exit_code == 0 for j in jobs)
    interrupted = [j for j in jobs if j.starts != 1]
    assert not interrupted, f"{len(interrupted)} jobs were interrupted (started more than once)"
    assert max_seen["private"] <= 2 and max_seen["public"] <= 2, "never beyond max_instances"
    created = audit_trail(tmp_path)
    duplicates = [i for i, n in Counter(created).items() if n > 1]
    assert not duplicates, f"instance ids created twice: {duplicates}"
    known = {i.id for i in store.instances(include_gone=True)}
    assert set(created) <= known, "every created instance is known to the store"
    leaked = our_nodes(devpool, pool_id)
    assert not leaked, f"leaked execute nodes: {sorted(leaked)}"
    markers = [p.name for p in (tmp_path / "clouds").glob("*.nodes/*")]
    assert not markers, f"boots the cloud still believes may run: {markers}"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "message"} <= set(line) for line in lines)
