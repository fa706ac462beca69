"""Where devcloud keeps things, which ports it uses, and who holds a port that is taken.

The services' venv is cached outside any clone (shared by every clone on this machine); runtime
data (databases, logs, PIDs, the Swift device) lives in a state directory wiped at each `up`;
credentials live beside it and survive a restart of the state.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from bursting.errors import PermanentError

HOST = "127.0.0.1"
REGION_PRIVATE = "RegionOne"
REGION_PUBLIC = "RegionTwo"

# Every listener devcloud starts, by service name; all bound to 127.0.0.1.
PORTS: dict[str, int] = {
    "mariadb": 3306,
    "rabbitmq": 5672,
    "rabbitmq-dist": 25672,
    "epmd": 4369,
    "keystone": 5000,
    "placement": 8778,
    "glance": 9292,
    "neutron": 9696,
    "nova-api": 8774,
    "nova-api-public": 8775,
    "swift-proxy": 8080,
    "swift-object": 6200,
    "swift-container": 6201,
    "swift-account": 6202,
}


class DevCloudError(PermanentError):
    """devcloud could not start, stop or be reached; the message names the fix."""


def cache_root() -> Path:
    """Cache shared by every clone on this machine; BURSTING_CACHE overrides it."""
    override = os.environ.get("BURSTING_CACHE")
    base = Path(override) if override else Path.home() / ".cache" / "bursting"
    return base.expanduser().resolve()


@dataclass(frozen=True)
class Paths:
    """Every file and directory of one devcloud, under one base directory."""

    base: Path

    @classmethod
    def default(cls) -> Paths:
        override = os.environ.get("BURSTING_DEVCLOUD_HOME")
        return cls(Path(override).expanduser().resolve() if override else cache_root() / "devcloud")

    @property
    def run(self) -> Path:
        """Runtime state, wiped and made anew at each `up`."""
        return self.base / "run"

    @property
    def etc(self) -> Path:
        return self.run / "etc"

    @property
    def logs(self) -> Path:
        return self.run / "logs"

    @property
    def data(self) -> Path:
        return self.run / "data"

    @property
    def state_file(self) -> Path:
        """Which processes run, by service name and PID."""
        return self.base / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.base / "devcloud.lock"

    @property
    def admin_password_file(self) -> Path:
        return self.base / "admin-password"

    @property
    def clouds_yaml(self) -> Path:
        return self.base / "clouds.yaml"

    @property
    def hypervisor_faults(self) -> Path:
        """Faults the hypervisor stand-in injects (JSON, read at each of its passes)."""
        return self.base / "hypervisor-faults.json"

    @property
    def ec2_file(self) -> Path:
        """The public project's S3 (EC2) credential, for Swift's S3 API."""
        return self.base / "ec2-public.json"

    @property
    def swift_devices(self) -> Path:
        return self.data / "swift" / "node"


def port_holder(port: int) -> tuple[int, str] | None:
    """(pid, command name) of the process listening on this TCP port, from /proc; None if no
    process is seen (or the socket belongs to another namespace)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return int(entry.name), _comm(int(entry.name))
    return None


def _listening_inodes(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                found.add(inode)
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """Something accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_port_free(service: str, port: int) -> None:
    """Fail with the port and the process holding it, before anything is started on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
            return
        except OSError:
            pass
    holder = port_holder(port)
    who = f"{holder[1]} (pid {holder[0]})" if holder else "another program"
    raise DevCloudError(
        f"port {port} on {HOST} (devcloud's {service}) is taken by {who}; stop it "
        f"(see: ss -ltnp 'sport = :{port}') before: bursting devcloud up"
    )
