"""devcloud's hypervisor: Nova's fake driver boots nothing, so this agent watches Nova and brings
each ACTIVE server to life as an execute node that shares nothing with the submit host.

Each node is a container of its own (bursting.devpool.containers): a copy-on-write layer over the
root filesystem the server's Glance image names (its `bursting_worker_image` property), sized to
the server's flavor, configured only by the server's own user-data read back from Nova, the way
cloud-init would apply it. No bind mount of the repo, the venv, the interpreter or any campaign
directory. A deleted server's node is stopped and its layer dropped; a node that stopped by itself
(HTCondor's idle backstop) powers its server off, as a VM does.

Faults for tests, read from a JSON file at each pass so a running agent can be steered: servers
that never join, servers that go to ERROR (Nova's own admin reset-state), slow boots.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bursting.devpool.containers import Boot, user_data_files
from bursting.errors import DevPoolError

log = logging.getLogger("bursting.devcloud.hypervisor")

NODE_PREFIX = "os-"  # node names: os-<server uuid>
IMAGE_PROPERTY = "bursting_worker_image"


class Faults(BaseModel):
    """What the agent does wrong on purpose; fractions pick servers by a stable hash of their
    id, so a given server always meets the same fate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    never_join: Annotated[float, Field(ge=0, le=1)] = 0.0  # ACTIVE, but no node ever starts
    error: Annotated[float, Field(ge=0, le=1)] = 0.0  # set to ERROR instead of booting
    error_flavors: tuple[str, ...] = ()  # every server of these flavors goes to ERROR
    boot_delay_seconds: Annotated[float, Field(ge=0, le=600)] = 0.0  # a slow boot

    @classmethod
    def load(cls, path: Path | None) -> Faults:
        if path is None or not path.exists():
            return cls()
        try:
            return cls.model_validate(json.loads(path.read_text() or "{}"))
        except (ValueError, ValidationError) as exc:
            log.error("faults file %s ignored: %s", path, exc)
            return cls()


class Nodes(Protocol):
    """Where the nodes run (bursting.devpool.containers.ContainerNodes)."""

    def boot(self, boot: Boot, image: str | None = None) -> str: ...

    def node_pids(self, name: str) -> list[int]: ...

    def node_names(self) -> list[str]: ...

    def kill_node(self, name: str) -> None: ...


def fraction(server_id: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{server_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def node_name(server_id: str) -> str:
    return NODE_PREFIX + server_id


def decode_user_data(raw: str | None) -> str:
    """Nova hands user-data back base64-encoded, as it was sent."""
    if not raw:
        raise DevPoolError("the server has no user-data; nothing would configure its node")
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise DevPoolError(f"user-data is not base64 text: {exc}") from None


@dataclass
class Pass:
    """What one reconciliation pass did."""

    booted: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    errored: list[str] = field(default_factory=list)
    powered_off: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class Hypervisor:
    def __init__(
        self,
        connect: Callable[[], Any],
        nodes: Nodes,
        faults_file: Path | None = None,
        now: Callable[[], float] = time.time,
        boots_in_parallel: int = 4,
    ) -> None:
        self._connect = connect
        self._conn: Any = None
        self.nodes = nodes
        self.faults_file = faults_file
        self.now = now
        self._images: dict[str, str | None] = {}
        self._active_since: dict[str, float] = {}
        self._booting: dict[str, Future[None]] = {}
        self._pool = ThreadPoolExecutor(boots_in_parallel, thread_name_prefix="boot")

    def conn(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def image_reference(self, image_id: str) -> str | None:
        if image_id not in self._images:
            image = self.conn().image.get_image(image_id)
            properties = dict(getattr(image, "properties", None) or {})
            self._images[image_id] = properties.get(IMAGE_PROPERTY)
        return self._images[image_id]

    def step(self) -> Pass:
        """One pass: list every server of every project, then make the nodes match."""
        done = Pass()
        faults = Faults.load(self.faults_file)
        servers = {s.id: s for s in self.conn().compute.servers(details=True, all_projects=True)}
        self._booting = {k: f for k, f in self._booting.items() if not f.done()}
        names = set(self.nodes.node_names())
        self._stop_deleted(servers, names, done)
        for server in servers.values():
            if server.status != "ACTIVE" or server.id in self._booting:
                continue
            name = node_name(server.id)
            if name in names:
                if not self.nodes.node_pids(name):
                    self._power_off(server, done)
                continue
            self._start(server, faults, done)
        return done

    def _stop_deleted(self, servers: dict[str, Any], names: set[str], done: Pass) -> None:
        for name in sorted(names):
            if not name.startswith(NODE_PREFIX):
                continue  # the local cloud's nodes, not ours
            server = servers.get(name.removeprefix(NODE_PREFIX))
            if server is None or server.status in ("DELETED", "SOFT_DELETED", "ERROR"):
                self.nodes.kill_node(name)
                self._active_since.pop(name.removeprefix(NODE_PREFIX), None)
                done.stopped.append(name)

    def _power_off(self, server: Any, done: Pass) -> None:
        """HTCondor left the node (the idle backstop): the VM powers off, and Nova says so."""
        self.conn().compute.stop_server(server.id)
        done.powered_off.append(server.id)

    def _start(self, server: Any, faults: Faults, done: Pass) -> None:
        first_seen = self._active_since.setdefault(server.id, self.now())
        flavor = server.flavor
        flavor_name = getattr(flavor, "original_name", None) or getattr(flavor, "name", "")
        if fraction(server.id, "error") < faults.error or flavor_name in faults.error_flavors:
            self.conn().compute.reset_server_state(server.id, "error")
            done.errored.append(server.id)
            return
        if fraction(server.id, "never-join") < faults.never_join:
            return
        if self.now() - first_seen < faults.boot_delay_seconds:
            return
        try:
            boot = Boot(
                node_name(server.id),
                int(flavor.vcpus),
                int(flavor.ram),
                user_data_files(decode_user_data(getattr(server, "user_data", None))),
                {"io.bursting.server": server.id, "io.bursting.project": server.project_id or ""},
            )
            image = self.image_reference(server.image.id)
            if not image:
                raise DevPoolError(f"image {server.image.id} has no {IMAGE_PROPERTY} property")
        except DevPoolError as exc:
            # A VM whose image or user-data is unusable boots into nothing: it never joins.
            done.failed[server.id] = str(exc)
            log.warning("server %s (%s) cannot boot: %s", server.name, server.id, exc)
            return
        self._booting[server.id] = self._pool.submit(self._boot, boot, image)
        done.booted.append(server.id)

    def _boot(self, boot: Boot, image: str) -> None:
        try:
            self.nodes.boot(boot, image=image)
            log.info("booted %s from %s (%d cores, %d MB)", boot.name, image, boot.cpus,
                     boot.memory_mb)  # fmt: skip
        except Exception:
            log.exception("booting %s failed", boot.name)

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception as exc:  # Nova down or restarting: look again, never kill on it
                log.warning("pass failed: %s: %s", type(exc).__name__, exc)
                self._conn = None
            stop.wait(interval)
        self._pool.shutdown(wait=True)


def main(argv: list[str] | None = None) -> None:
    """`python -m bursting.devcloud.hypervisor --clouds-yaml F --cloud devcloud-admin`."""
    parser = argparse.ArgumentParser(description="devcloud's hypervisor stand-in")
    parser.add_argument("--clouds-yaml", type=Path, required=True)
    parser.add_argument("--cloud", required=True)
    parser.add_argument("--faults", type=Path)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    from bursting.devcloud.clouds import connect
    from bursting.devpool import DevPool
    from bursting.devpool.containers import ContainerNodes

    nodes = ContainerNodes(DevPool().running)
    agent = Hypervisor(lambda: connect(args.clouds_yaml, args.cloud), nodes, args.faults)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("watching Nova as %s", args.cloud)
    agent.run(stop, args.interval)


if __name__ == "__main__":
    main()
