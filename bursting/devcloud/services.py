"""The table of devcloud's long-running processes: how each starts, its port, its health check.

All of them run from the services' venv (or Debian's binaries), each in its own session.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

from bursting.devcloud.clouds import ADMIN_CLOUD
from bursting.devcloud.install import RABBITMQ_BIN
from bursting.devcloud.layout import HOST, PORTS, Paths
from bursting.devcloud.procs import Service

# Start order; `down` stops them in reverse (the APIs first, the databases last).
INFRA = ("mariadb", "rabbitmq")
CONTROL = (
    "keystone",
    "placement",
    "glance",
    "neutron",
    "nova-api",
    "nova-api-public",
    "nova-conductor",
    "nova-scheduler",
    "nova-compute",
)
SWIFT = ("swift-account", "swift-container", "swift-object", "swift-proxy")
# The hypervisor stand-in (bursting.devcloud.hypervisor): runs in the project's own interpreter,
# as it boots nodes from the worker image with the project's container tooling.
HYPERVISOR = "hypervisor"
ALL = (*INFRA, *CONTROL, *SWIFT, HYPERVISOR)
# Services that can be stopped and started on their own while the rest runs.
RESTARTABLE = frozenset({"nova-api", "nova-api-public"})

WSGI = {
    "keystone": ("keystone_app", {"OS_KEYSTONE_CONFIG_FILES": "keystone/keystone.conf"}),
    "placement": ("placement_app", {"OS_PLACEMENT_CONFIG_DIR": "placement"}),
    "glance": ("glance_app", {"OS_GLANCE_CONFIG_DIR": "glance"}),
    "neutron": ("neutron_app", {"OS_NEUTRON_CONFIG_DIR": "neutron"}),
    "nova-api": ("nova_app", {"OS_NOVA_CONFIG_DIR": "nova"}),
    "nova-api-public": ("nova_app", {"OS_NOVA_CONFIG_DIR": "nova"}),
}


def rabbit_env(paths: Paths) -> dict[str, str]:
    """RabbitMQ without systemd, everything (epmd and the distribution port too) on 127.0.0.1."""
    home = paths.run / "rabbit"
    return {
        "HOME": str(home),
        "RABBITMQ_NODENAME": "rabbit@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": HOST,
        "RABBITMQ_NODE_PORT": str(PORTS["rabbitmq"]),
        "RABBITMQ_DIST_PORT": str(PORTS["rabbitmq-dist"]),
        "ERL_EPMD_ADDRESS": HOST,
        "ERL_EPMD_PORT": str(PORTS["epmd"]),
        "RABBITMQ_CONFIG_FILE": str(paths.etc / "rabbitmq" / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(paths.etc / "rabbitmq" / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(paths.logs / "rabbit"),
        "RABBITMQ_PID_FILE": str(home / "rabbit.pid"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }


def service(name: str, venv: Path, paths: Paths) -> Service:
    """How to run one devcloud service."""
    bin_dir = venv / "bin"
    pylib = paths.run / "pylib"
    common = {"PYTHONPATH": str(pylib)}
    if name == "mariadb":
        return Service(
            name,
            ["/usr/sbin/mariadbd", f"--defaults-file={paths.etc / 'my.cnf'}"],
            port=PORTS[name],
        )
    if name == "rabbitmq":
        return Service(
            name, [str(RABBITMQ_BIN / "rabbitmq-server")], rabbit_env(paths), PORTS[name]
        )
    if name in WSGI:
        module, config = WSGI[name]
        env = {key: str(paths.etc / value) for key, value in config.items()}
        port = PORTS[name]
        argv = [
            str(bin_dir / "gunicorn"),
            "--no-control-socket",
            "--chdir",
            str(pylib),
            "-w",
            # Keystone validates every other service's tokens: two workers (one per core).
            "2" if name == "keystone" else "1",
            "--threads",
            "4",
            "--timeout",
            "120",
            # gunicorn closes a connection idle for --keep-alive (2 s by default); a client that
            # reuses it at that very moment gets "connection reset" on a request the server
            # never read. Clients here reuse connections every few seconds (controller cycles,
            # polling loops), so hold them open as long as nginx does by default.
            "--keep-alive",
            "75",
            "-b",
            f"{HOST}:{port}",
            f"{module}:application",
        ]
        return Service(name, argv, {**common, **env}, port, "/v3" if name == "keystone" else "/")
    if name in ("nova-conductor", "nova-scheduler", "nova-compute"):
        argv = [str(bin_dir / name), "--config-file", str(paths.etc / "nova" / "nova.conf")]
        return Service(name, argv, common)
    if name == HYPERVISOR:
        argv = [
            sys.executable,
            "-m",
            "bursting.devcloud.hypervisor",
            "--clouds-yaml",
            str(paths.clouds_yaml),
            "--cloud",
            ADMIN_CLOUD,
            "--faults",
            str(paths.hypervisor_faults),
        ]
        return Service(name, argv)
    if name in SWIFT:
        kind = name.removeprefix("swift-")
        argv = [
            str(bin_dir / "python"),
            str(pylib / "swift_run_server.py"),
            kind,
            str(paths.etc / "swift" / f"{kind}-server.conf"),
            "-v",
        ]
        return Service(name, argv, common, PORTS[name], "/healthcheck")
    raise KeyError(name)


def answering(svc: Service, timeout: float = 2.0) -> bool:
    """The service answers: its HTTP health path gives a response below 500, or its port opens."""
    from bursting.devcloud.layout import port_open

    if svc.port is None:
        return False
    if svc.health_path is None:
        return port_open(svc.port, timeout=timeout)
    url = f"http://{HOST}:{svc.port}{svc.health_path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status) < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError):
        return False
