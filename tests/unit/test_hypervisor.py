"""devcloud's hypervisor stand-in: what it decides from one Nova listing (the listing here is a
plain record of servers; against the real Nova it runs in the devcloud integration tests)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bursting.devcloud.hypervisor import (
    Faults,
    Hypervisor,
    decode_user_data,
    fraction,
    node_name,
)
from bursting.devpool.containers import PLATFORM_CONFIG, Boot
from bursting.errors import DevPoolError

USER_DATA = (
    "#cloud-config\nwrite_files:\n"
    "- {path: /etc/condor/config.d/50-bursting-worker.conf, content: 'NUM_CPUS = 2'}\n"
    "- {path: /etc/condor/tokens.d/bursting-pool, content: 'tok', permissions: '0600'}\n"
)


def server(sid: str, status: str = "ACTIVE", flavor: str = "w1.medium", **extra: Any) -> Any:
    fields: dict[str, Any] = {
        "id": sid,
        "name": f"name-{sid}",
        "status": status,
        "project_id": "p1",
        "flavor": SimpleNamespace(original_name=flavor, vcpus=2, ram=2048),
        "image": SimpleNamespace(id="img"),
        "user_data": base64.b64encode(USER_DATA.encode()).decode(),
    }
    return SimpleNamespace(**{**fields, **extra})


class Nova:
    def __init__(self, servers: list[Any]) -> None:
        self.servers_list = servers
        self.reset: list[tuple[str, str]] = []
        self.stopped: list[str] = []
        self.compute = self
        self.image = self

    def servers(self, details: bool, all_projects: bool) -> list[Any]:
        assert details and all_projects
        return self.servers_list

    def reset_server_state(self, sid: str, state: str) -> None:
        self.reset.append((sid, state))

    def stop_server(self, sid: str) -> None:
        self.stopped.append(sid)

    def get_image(self, image_id: str) -> Any:
        return SimpleNamespace(properties={"bursting_worker_image": "localhost/w:k"})


class Nodes:
    def __init__(self) -> None:
        self.booted: dict[str, tuple[Boot, str | None]] = {}
        self.running: set[str] = set()
        self.killed: list[str] = []

    def boot(self, boot: Boot, image: str | None = None) -> str:
        self.booted[boot.name] = (boot, image)
        self.running.add(boot.name)
        return boot.name

    def node_pids(self, name: str) -> list[int]:
        return [1] if name in self.running else []

    def node_names(self) -> list[str]:
        return sorted({*self.booted, *self.running, "local-node"})

    def kill_node(self, name: str) -> None:
        self.killed.append(name)
        self.running.discard(name)
        self.booted.pop(name, None)


def agent(nova: Nova, nodes: Nodes, faults: Path | None = None, now: float = 0.0) -> Hypervisor:
    clock = SimpleNamespace(t=now)
    hv = Hypervisor(lambda: nova, nodes, faults, now=lambda: clock.t, boots_in_parallel=1)
    hv.clock = clock  # type: ignore[attr-defined]
    return hv


def settle(hv: Hypervisor) -> None:
    for future in list(hv._booting.values()):
        future.result(timeout=5)


def test_an_active_server_boots_from_its_image_with_its_own_user_data_and_size() -> None:
    nova, nodes = Nova([server("a"), server("b", status="BUILD")]), Nodes()
    hv = agent(nova, nodes)
    assert hv.step().booted == ["a"]
    settle(hv)
    boot, image = nodes.booted[node_name("a")]
    assert image == "localhost/w:k"
    assert (boot.cpus, boot.memory_mb) == (2, 2048)
    assert boot.files["/etc/condor/tokens.d/bursting-pool"] == ("tok", 0o600)
    assert PLATFORM_CONFIG in boot.files
    assert node_name("b") not in nodes.booted  # still building: nothing boots yet
    assert hv.step().booted == []  # already running: not booted twice


def test_a_deleted_server_loses_its_node_and_other_nodes_are_left_alone() -> None:
    nova, nodes = Nova([server("a")]), Nodes()
    hv = agent(nova, nodes)
    hv.step()
    settle(hv)
    nova.servers_list = []
    assert hv.step().stopped == [node_name("a")]
    assert "local-node" not in nodes.killed


def test_a_node_that_stopped_by_itself_powers_its_server_off() -> None:
    nova, nodes = Nova([server("a")]), Nodes()
    hv = agent(nova, nodes)
    hv.step()
    settle(hv)
    nodes.running.discard(node_name("a"))  # HTCondor's idle backstop ended the node
    assert hv.step().powered_off == ["a"]
    assert nova.stopped == ["a"]


def test_faults_error_by_flavor_never_join_and_slow_boot(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    nova, nodes = Nova([server("a", flavor="w1.large"), server("b")]), Nodes()
    faults.write_text(json.dumps({"error_flavors": ["w1.large"], "boot_delay_seconds": 30}))
    hv = agent(nova, nodes, faults)
    done = hv.step()
    assert done.errored == ["a"] and nova.reset == [("a", "error")]
    assert done.booted == []  # b is slow to boot
    hv.clock.t = 31  # type: ignore[attr-defined]
    faults.write_text(json.dumps({"boot_delay_seconds": 30}))
    nova.servers_list = [server("b")]
    assert hv.step().booted == ["b"]

    faults.write_text(json.dumps({"never_join": 1.0}))
    nova.servers_list.append(server("c"))
    assert hv.step().booted == []


def test_a_broken_faults_file_is_ignored_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    path.write_text('{"never_join": 7}')
    assert Faults.load(path) == Faults()
    assert Faults.load(tmp_path / "absent.json") == Faults()


def test_unusable_user_data_never_boots_and_says_why() -> None:
    broken = server("a", user_data=None)
    nova, nodes = Nova([broken]), Nodes()
    done = agent(nova, nodes).step()
    assert "no user-data" in done.failed["a"] and not nodes.booted
    with pytest.raises(DevPoolError, match="not base64"):
        decode_user_data("%%%")


def test_fault_fractions_are_stable_per_server() -> None:
    assert fraction("x", "error") == fraction("x", "error")
    assert 0 <= fraction("y", "never-join") < 1
