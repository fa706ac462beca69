"""HTCondor configuration files of the personal pool: its central manager and its extra nodes.

Each master runs with its own CONDOR_CONFIG and LOCAL_DIR under /var/lib/bursting, so the pool
never depends on (or disturbs) the distribution's /etc/condor configuration.
"""

from __future__ import annotations

from bursting.contextualize import WorkerSpec, render_condor_config

STATE_DIR = "/var/lib/bursting"
UID_DOMAIN = "bursting.devpool"
JOB_USER = "bursting"
COLLECTOR = "127.0.0.1:9618"
SUBDIRS = ("log", "spool", "execute", "lock", "run", "cred_dir", "config.d")


def local_dir(name: str) -> str:
    return f"{STATE_DIR}/{name}"


def _paths(name: str, paths: dict[str, str]) -> list[str]:
    """Directory layout of one master: distribution binaries, private state."""
    return [
        *(f"{key} = {value}" for key, value in paths.items()),
        f"LOCAL_DIR = {local_dir(name)}",
        "RUN = $(LOCAL_DIR)/run",
        "LOG = $(LOCAL_DIR)/log",
        "LOCK = $(LOCAL_DIR)/lock",
        "SPOOL = $(LOCAL_DIR)/spool",
        "EXECUTE = $(LOCAL_DIR)/execute",
        "CRED_STORE_DIR = $(LOCAL_DIR)/cred_dir",
        f"ETC = {STATE_DIR}/etc",
        "LOCAL_CONFIG_FILE =",
        "LOCAL_CONFIG_DIR = $(LOCAL_DIR)/config.d",
    ]


_LOOPBACK_AND_TUNING = """
# Loopback only: nothing listens beyond 127.0.0.1.
NETWORK_INTERFACE = 127.0.0.1
BIND_ALL_INTERFACES = False
ENABLE_IPV6 = False
# No private /tmp per job: the chroot cannot unshare mount namespaces.
MOUNT_UNDER_SCRATCH =
# One machine: poll fast, so tests and the demo see changes within seconds.
SCHEDD_INTERVAL = 5
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_CYCLE_DELAY = 5
STARTER_UPDATE_INTERVAL = 5
SHADOW_QUEUE_UPDATE_INTERVAL = 5
UPDATE_INTERVAL = 5
# The master re-evaluates DAEMON_SHUTDOWN when it updates: a drained node leaves within seconds.
MASTER_UPDATE_INTERVAL = 5
RUNBENCHMARKS = 0
"""


def loopback_and_tuning() -> str:
    """Loopback-only networking and fast polling, shared by every daemon of the personal pool."""
    return _LOOPBACK_AND_TUNING


def security(admin_identity: str) -> str:
    return f"""
use security:recommended_v9_0
UID_DOMAIN = {UID_DOMAIN}
TRUST_UID_DOMAIN = True
# Anyone on loopback may read the pool; writing (submitting) needs an IDTOKEN or local login.
SEC_READ_AUTHENTICATION = OPTIONAL
ALLOW_ADMINISTRATOR = $(ALLOW_ADMINISTRATOR) {admin_identity}
"""


# Nodes here are deleted the way clouds delete VMs, and a node killed before it said goodbye
# leaves its ads behind: the negotiator would keep matching jobs to the dead slot (it prefers
# the smallest) until the collector drops the ads, 15 minutes by default. Every daemon of this
# pool updates every UPDATE_INTERVAL (5s), the negotiator and the collector's own ad too once
# told so; an ad silent for a minute belongs to a dead daemon and is dropped.
_STALE_ADS = (
    "CLASSAD_LIFETIME = 60",
    "NEGOTIATOR_UPDATE_INTERVAL = $(UPDATE_INTERVAL)",
    "COLLECTOR_UPDATE_INTERVAL = 20",
)


def central_manager(paths: dict[str, str], admin_identity: str, local_cpus: int = 0) -> str:
    """Collector, negotiator and schedd (and a startd only if asked) on 127.0.0.1:9618."""
    daemons = "MASTER, COLLECTOR, NEGOTIATOR, SCHEDD" + (", STARTD" if local_cpus else "")
    lines = [
        "# Personal pool central manager and access point",
        *_paths("pool", paths),
        "use ROLE: CentralManager",
        "use ROLE: Submit",
        f"DAEMON_LIST = {daemons}",
        f"CONDOR_HOST = {COLLECTOR.split(':')[0]}",
        f"COLLECTOR_HOST = {COLLECTOR}",
        "USE_SHARED_PORT = True",
        f"SHARED_PORT_PORT = {COLLECTOR.split(':')[1]}",
        "MASTER_NAME = pool",
        "SCHEDD_NAME = pool",
        *_STALE_ADS,
    ]
    if local_cpus:
        lines += [
            f"NUM_CPUS = {local_cpus}",
            "SLOT_TYPE_1 = 100%",
            "NUM_SLOTS_TYPE_1 = 1",
            "SLOT_TYPE_1_PARTITIONABLE = True",
        ]
    return "\n".join(lines) + _LOOPBACK_AND_TUNING + security(admin_identity)


def execute_node(paths: dict[str, str], name: str, spec: WorkerSpec) -> tuple[str, str]:
    """(base config, worker config): the worker part is exactly what a cloud VM is given."""
    base = (
        "\n".join(
            [
                f"# Personal pool execute node {name}",
                *_paths(f"nodes/{name}", paths),
                # Several startds share this host: each needs its own name and its own ports.
                f"MASTER_NAME = {name}",
                f"STARTD_NAME = {name}",
                "USE_SHARED_PORT = False",
                # Its daemons are not children of the central manager's master: no family session.
                "SEC_USE_FAMILY_SESSION = False",
                "use security:recommended_v9_0",
            ]
        )
        + _LOOPBACK_AND_TUNING
    )
    return base, render_condor_config(spec)
