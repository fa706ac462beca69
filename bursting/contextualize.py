"""What a burst worker is told at boot: its HTCondor configuration and the cloud-init for it.

The same renderer serves cloud VMs (through cloud-init user-data) and the local execute nodes the
development pool starts, so what the tests exercise is what a cloud VM gets.
"""

from __future__ import annotations

import yaml

from bursting.model import AttributeValue, WorkerSpec
from bursting.policy.matching import classad_literal

__all__ = [
    "ADMIN_KEY_NAME",
    "TOKEN_FILE_NAME",
    "WorkerSpec",
    "render_cloud_init",
    "render_condor_config",
]

TOKEN_FILE_NAME = "bursting-pool"
# The name (key id) of the signing key workers verify the controller's drain token with.
ADMIN_KEY_NAME = "BURSTING_WORKERS"
ADMIN_KEY_PATH = f"/etc/condor/passwords.d/{ADMIN_KEY_NAME}"


def classad_string(value: str) -> str:
    """Quote a value as a ClassAd string literal."""
    return classad_literal(value)


def burst_attributes(spec: WorkerSpec) -> dict[str, AttributeValue]:
    """The machine-ad attributes by which the controller recognises its own workers."""
    attrs: dict[str, AttributeValue] = {
        "BurstingPool": spec.pool_id,
        "BurstingInstance": spec.instance_id,
        "BurstingCloud": spec.cloud,
        "BurstingFlavor": spec.flavor.name,
    }
    attrs.update(spec.extra_attrs)
    return attrs


def render_condor_config(spec: WorkerSpec) -> str:
    """HTCondor configuration for one burst execute node, layered over the distribution's own."""
    flavor = spec.flavor
    attrs = burst_attributes(spec)
    lines = [
        f"# Burst worker {spec.instance_id} of pool {spec.pool_id} on cloud {spec.cloud}",
        f"# flavor {flavor.name}: {flavor.cpus} cores, {flavor.memory_mb} MB",
        "use ROLE: Execute",
        f"CONDOR_HOST = {spec.collector.split(':')[0]}",
        f"COLLECTOR_HOST = {spec.collector}",
        "DAEMON_LIST = MASTER, STARTD",
        "",
        "# One partitionable slot sized to the flavor: the negotiator carves it per job shape.",
        f"NUM_CPUS = {flavor.cpus}",
        f"MEMORY = {flavor.memory_mb}",
        "NUM_SLOTS = 1",
        "NUM_SLOTS_TYPE_1 = 1",
        "SLOT_TYPE_1 = 100%",
        "SLOT_TYPE_1_PARTITIONABLE = True",
    ]
    if flavor.gpus:
        lines += ["use FEATURE: GPUs", f"# flavor promises {flavor.gpus} GPU(s)"]
    lines += ["", "# Tags the controller uses to find its workers again after a restart."]
    # Typed literals: `HasCVMFS = true` matches `TARGET.HasCVMFS =?= true`; a string would not.
    lines += [f"{name} = {classad_literal(value)}" for name, value in attrs.items()]
    lines += [
        f"STARTD_ATTRS = $(STARTD_ATTRS) {' '.join(attrs)}",
        f"MASTER_ATTRS = $(MASTER_ATTRS) {' '.join(attrs)}",
        "",
        "# Join the pool with the pool's IDTOKEN (the file is 0600, readable by root only).",
        f"SEC_TOKEN_SYSTEM_DIRECTORY = {spec.token_dir}",
        "SEC_DEFAULT_AUTHENTICATION_METHODS = IDTOKENS",
    ]
    if spec.uid_domain:
        lines += [f"UID_DOMAIN = {spec.uid_domain}", "TRUST_UID_DOMAIN = True"]
    if spec.admin_identity:
        lines += [
            "# The burst controller drains this node when it is no longer needed.",
            f"ALLOW_ADMINISTRATOR = $(ALLOW_ADMINISTRATOR) {spec.admin_identity}",
        ]
    lines += [
        "",
        "# A graceful drain lets running jobs finish within this many seconds.",
        f"MAXJOBRETIREMENTTIME = {spec.job_retirement_seconds}",
        "",
        "# Backstop: if no job claims this node for a while (say its controller is gone),",
        "# the startd exits and the master follows, so the node does not idle forever.",
        f"STARTD_NOCLAIM_SHUTDOWN = {spec.idle_shutdown_seconds}",
        "MASTER.DAEMON_SHUTDOWN = STARTD_StartTime =?= 0",
        "",
    ]
    return "\n".join(lines)


def render_cloud_init(spec: WorkerSpec) -> str:
    """cloud-init user-data that installs the config and token and starts HTCondor on a VM."""
    token_path = f"{spec.token_dir}/{TOKEN_FILE_NAME}"
    document = {
        "write_files": [
            {
                "path": "/etc/condor/config.d/50-bursting-worker.conf",
                "permissions": "0644",
                "owner": "root:root",
                "content": render_condor_config(spec),
            },
            {
                "path": token_path,
                "permissions": "0600",
                "owner": "root:root",
                "content": spec.token.reveal().strip() + "\n",
            },
            *(
                [
                    {
                        # Only to verify the controller's drain token: not the pool's key.
                        "path": ADMIN_KEY_PATH,
                        "permissions": "0600",
                        "owner": "root:root",
                        "content": spec.admin_key.reveal().strip() + "\n",
                    }
                ]
                if spec.admin_key is not None
                else []
            ),
            {
                # When the idle backstop stops HTCondor, the VM powers itself off.
                "path": "/etc/systemd/system/condor.service.d/50-bursting-poweroff.conf",
                "permissions": "0644",
                "owner": "root:root",
                "content": "[Service]\nExecStopPost=/bin/systemctl --no-block poweroff\n",
            },
        ],
        "runcmd": [
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", "condor"],
            ["systemctl", "restart", "condor"],
        ],
    }
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False, width=1000)
