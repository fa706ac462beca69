"""The local cloud and the personal pool's state file when their caller dies at the worst moment.

Execute nodes here are real processes (`sleep`) carrying a node's CONDOR_CONFIG, so the same
discovery and stopping code as for HTCondor masters runs; a `Crash` raised at the point a kill -9
would land stands for the caller's death (the records transaction is then never committed).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bursting.clock import FakeClock
from bursting.clouds.local import LocalCloudProvider
from bursting.clouds.local_config import LocalCloud as LocalCloudConfig
from bursting.devpool import DevPool
from bursting.devpool import condor_config as cc
from bursting.devpool.layout import Layout
from bursting.errors import DevPoolError
from bursting.model import CloudStatus, Flavor, InstanceSpec, Secret, WorkerSpec

FLAVOR = Flavor("w.1c", 1, 512)


class Crash(BaseException):
    """The caller is killed here."""


class ProcessNodes(DevPool):
    """The personal pool with `sleep` standing in for each node's condor_master."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(layout=Layout(tmp / "root", native=False), token_dir=tmp / "tokens")
        self.state_file = tmp / "devpool-state.json"
        # Not the real pool's: its sessions stop every node they find under their own root.
        self.nodes_root = f"{tmp}/nodes"
        self.crash_after_start = False
        self.starts: list[str] = []
        self.children: list[subprocess.Popen[bytes]] = []

    def running(self) -> bool:
        return True

    def add_node(
        self,
        cpus: int,
        memory_mb: int,
        attrs: dict[str, str] | None = None,
        name: str | None = None,
        spec: WorkerSpec | None = None,
    ) -> str:
        assert name is not None
        if self.node_pids(name):
            raise DevPoolError(f"execute node {name} already runs")
        config = f"{self.nodes_root}/{name}/condor_config"
        child = subprocess.Popen(
            ["sleep", "300"], env={**os.environ, "CONDOR_CONFIG": config}, start_new_session=True
        )
        self.children.append(child)
        self.starts.append(name)
        # A process's environment shows in /proc only once exec has set it up, a moment after
        # Popen returns (seen under load): wait until the node is discoverable, as a real
        # master is long before it can join.
        deadline = time.monotonic() + 10
        while not self.node_pids(name) and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.crash_after_start:
            raise Crash  # the process runs; nothing has recorded it
        with self._editing() as state:
            state.setdefault("nodes", {})[name] = {  # type: ignore[index]
                "name": name,
                "pid": child.pid,
                "cpus": cpus,
                "memory_mb": memory_mb,
            }
        return name

    def stop_all(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=10)


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[ProcessNodes]:
    pool = ProcessNodes(tmp_path)
    yield pool
    pool.stop_all()


def cloud(
    tmp: Path, nodes: DevPool, clock: FakeClock, boot_delay: float, create_delay: float = 0.0
) -> LocalCloudProvider:
    config = LocalCloudConfig.model_validate(
        {
            "name": "private",
            "type": "local",
            "flavors": [{"name": FLAVOR.name, "cpus": 1, "memory_mb": 512}],
            "local": {
                "boot_delay_seconds": boot_delay,
                "state_dir": str(tmp / "clouds"),
                "faults": {"create_delay_seconds": create_delay},
            },
        }
    )
    return LocalCloudProvider(config, nodes=nodes, clock=clock)


def spec(pool_id: str) -> InstanceSpec:
    instance = f"{pool_id}-private-{uuid.uuid4().hex[:8]}"
    worker = WorkerSpec(pool_id, instance, "private", FLAVOR, cc.COLLECTOR, Secret("t0ken"))
    return InstanceSpec(instance, pool_id, "private", FLAVOR, worker)


def audit(tmp: Path) -> list[str]:
    file = tmp / "clouds" / "private.created"
    return [line.split()[0] for line in file.read_text().splitlines()] if file.exists() else []


def records(tmp: Path) -> dict[str, Any]:
    return dict(json.loads((tmp / "clouds" / "private.json").read_text()))


def test_boot_interrupted_after_the_start_is_the_same_boot_next_time(
    tmp_path: Path, nodes: ProcessNodes
) -> None:
    clock = FakeClock()
    pool_id = f"u{uuid.uuid4().hex[:6]}"
    wanted = spec(pool_id)
    cloud(tmp_path, nodes, clock, boot_delay=5).create(wanted)
    clock.advance(5)
    nodes.crash_after_start = True
    with pytest.raises(Crash):
        cloud(tmp_path, nodes, clock, 5).list_instances(pool_id)
    assert records(tmp_path)[wanted.id]["status"] == "BUILD", "the crash committed nothing"
    assert nodes.node_pids(wanted.id), "but the node process runs"

    nodes.crash_after_start = False
    again = cloud(tmp_path, nodes, clock, 5)
    (listed,) = again.list_instances(pool_id).instances
    assert listed.status is CloudStatus.ACTIVE and listed.fault is None
    assert nodes.starts == [wanted.id], "the running node is taken over, not started twice"
    assert records(tmp_path)[wanted.id]["node"] is True

    again.delete(wanted.id)
    assert nodes.node_pids(wanted.id) == []
    assert again.list_instances(pool_id).instances == ()
    assert audit(tmp_path) == [wanted.id]


def test_node_started_before_its_record_was_committed_is_reaped(
    tmp_path: Path, nodes: ProcessNodes
) -> None:
    clock = FakeClock()
    pool_id = f"u{uuid.uuid4().hex[:6]}"
    wanted = spec(pool_id)
    nodes.crash_after_start = True
    with pytest.raises(Crash):  # boots at once, inside the create that never commits
        cloud(tmp_path, nodes, clock, boot_delay=0).create(wanted)
    assert nodes.node_pids(wanted.id)
    assert not (tmp_path / "clouds/private.json").exists(), "no record was committed"
    assert audit(tmp_path) == [], "a creation never committed is not in the audit trail"

    nodes.crash_after_start = False
    again = cloud(tmp_path, nodes, clock, boot_delay=0)
    assert again.list_instances(pool_id).instances == ()
    assert nodes.node_pids(wanted.id) == [], "the next listing stopped the unrecorded node"

    again.create(wanted)  # the controller repeats the create it had stored as an intent
    assert len(nodes.node_pids(wanted.id)) == 1
    assert audit(tmp_path) == [wanted.id], "created once in the audit trail"
    again.delete(wanted.id)
    assert nodes.node_pids(wanted.id) == []


def test_delete_stops_the_node_whatever_the_record_believes(
    tmp_path: Path, nodes: ProcessNodes
) -> None:
    clock = FakeClock()
    pool_id = f"u{uuid.uuid4().hex[:6]}"
    provider = cloud(tmp_path, nodes, clock, boot_delay=0)
    first, second = spec(pool_id), spec(pool_id)
    provider.create(first)
    provider.create(second)
    stored = records(tmp_path)
    stored[first.id]["node"] = False  # a record that missed its node
    del stored[second.id]  # and one that lost it altogether
    (tmp_path / "clouds/private.json").write_text(json.dumps(stored))
    assert nodes.node_pids(first.id) and nodes.node_pids(second.id)

    provider.delete(first.id)
    provider.delete(second.id)
    assert nodes.node_pids(first.id) == [] and nodes.node_pids(second.id) == []
    assert records(tmp_path) == {}
    assert list((tmp_path / "clouds/private.nodes").iterdir()) == []


def test_node_names_include_nodes_the_state_file_never_heard_of(
    tmp_path: Path, nodes: ProcessNodes
) -> None:
    name = f"u{uuid.uuid4().hex[:6]}-orphan"
    nodes.crash_after_start = True
    with pytest.raises(Crash):
        nodes.add_node(1, 512, name=name)
    assert name not in nodes._nodes()
    assert name in nodes.node_names()
    with pytest.raises(DevPoolError, match="already runs"):
        nodes.add_node(1, 512, name=name)
    nodes.kill_node(name)
    assert name not in nodes.node_names()


def test_concurrent_node_deletions_in_threads_keep_the_state_file_whole(
    tmp_path: Path, nodes: ProcessNodes
) -> None:
    names = [f"u{uuid.uuid4().hex[:6]}-{i}" for i in range(6)]
    for name in names:
        nodes.add_node(1, 512, name=name)
    assert set(nodes._nodes()) == set(names)
    errors: list[BaseException] = []

    def delete(name: str) -> None:
        try:
            nodes.kill_node(name)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=delete, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert not set(names) & set(nodes.node_names())
    assert nodes._nodes() == {}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def _edit_many(state_file: str, worker: int, count: int) -> None:
    pool = DevPool(layout=Layout(Path(state_file).parent, native=False))
    pool.state_file = Path(state_file)
    for i in range(count):
        with pool._editing() as state:
            state.setdefault("nodes", {})[f"w{worker}-{i}"] = {  # type: ignore[index]
                "name": f"w{worker}-{i}",
                "pid": 1,
                "cpus": 1,
                "memory_mb": 512,
            }
        if i % 2:
            pool._forget_node(f"w{worker}-{i}")


def test_concurrent_state_edits_in_processes_lose_nothing(tmp_path: Path) -> None:
    state_file = tmp_path / "devpool-state.json"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_edit_many, args=(str(state_file), w, 40)) for w in range(4)]
    pool = DevPool(layout=Layout(tmp_path, native=False))
    pool.state_file = state_file
    pool._save({"master_pid": 1, "nodes": {}})
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    assert set(pool._nodes()) == {f"w{w}-{i}" for w in range(4) for i in range(0, 40, 2)}
    assert pool._state()["master_pid"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_slow_create_accepts_only_after_its_latency(tmp_path: Path, nodes: ProcessNodes) -> None:
    clock = FakeClock()
    asked = clock.now()
    pool_id = f"u{uuid.uuid4().hex[:6]}"
    created = cloud(tmp_path, nodes, clock, boot_delay=5, create_delay=0.5).create(spec(pool_id))
    assert created.created_at == asked + 0.5, "nothing is recorded before the latency is over"
    assert created.status is CloudStatus.BUILD


def test_the_records_holding_worker_tokens_are_private(tmp_path: Path, nodes: ProcessNodes) -> None:
    provider = cloud(tmp_path, nodes, FakeClock(), boot_delay=60)
    created = provider.create(spec("priv"))
    file = tmp_path / "clouds" / "private.json"
    assert file.stat().st_mode & 0o777 == 0o600
    assert records(tmp_path)[created.id]["worker"]["token"] == "t0ken"  # kept, like user-data
    assert "t0ken" not in repr(created) and "t0ken" not in repr(provider.list_instances("priv"))


def test_starting_a_node_returns_once_it_can_be_found() -> None:
    from bursting.devpool.pool import _wait_environment

    child = subprocess.Popen(["sleep", "30"], env={"BURSTING_PROBE": "1"}, start_new_session=True)
    try:
        _wait_environment(child.pid, "BURSTING_PROBE=1")
        assert b"BURSTING_PROBE=1" in Path(f"/proc/{child.pid}/environ").read_bytes()
    finally:
        child.kill()
        child.wait(timeout=10)
    _wait_environment(child.pid, "BURSTING_PROBE=1", timeout=1)  # gone: returns, never hangs
