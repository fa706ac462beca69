"""What a Kubernetes worker is, as manifests, and what its pod's state means: pure functions.

A worker is one pod running the worker image's own command (condor_master), its resources
requests = limits from the flavor, so the scheduler places it like a VM of that size. Its HTCondor
configuration is a ConfigMap owned by the pod (deleting the pod takes it along); the pool token
and the controller's drain key come from an existing Secret, mounted read-only as files: no
secret is ever written into the pod spec or a ConfigMap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bursting.clouds.kubernetes_config import KubernetesSettings
from bursting.contextualize import ADMIN_KEY_NAME, TOKEN_FILE_NAME, render_condor_config
from bursting.model import CloudStatus, Flavor, InstanceSpec, Quota

# Labels on every object we create: how we find ours again after a restart.
POOL_LABEL = "bursting.io/pool"
CLOUD_LABEL = "bursting.io/cloud"
INSTANCE_LABEL = "bursting.io/instance"
FLAVOR_ANNOTATION = "bursting.io/flavor"
CONFIG_FILE = "50-bursting-worker.conf"
CONFIG_KEY = "condor-config"
CONTAINER = "startd"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
# Container waiting reasons that mean the worker cannot start as configured.
IMAGE_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}


def config_map_name(instance_id: str) -> str:
    return f"{instance_id}-condor"


def check_instance_id(instance_id: str) -> None:
    """Our ids name the pod, its ConfigMap and a label: they must be DNS labels."""
    if not _DNS_LABEL.match(instance_id) or len(config_map_name(instance_id)) > 253:
        raise ValueError(
            f"instance id {instance_id!r} is not a Kubernetes name (lowercase letters, digits "
            "and '-', at most 63 characters); shorten the pool id or the cloud's name"
        )


def labels(spec: InstanceSpec, settings: KubernetesSettings) -> dict[str, str]:
    ours = {
        "app.kubernetes.io/name": "bursting-worker",
        "app.kubernetes.io/managed-by": "bursting",
        POOL_LABEL: spec.pool_id,
        CLOUD_LABEL: spec.cloud,
        INSTANCE_LABEL: spec.id,
    }
    return {**settings.labels, **ours}


def selector(pool_id: str, cloud: str) -> str:
    """The label selector of one pool's workers on one cloud."""
    return f"{POOL_LABEL}={pool_id},{CLOUD_LABEL}={cloud}"


def pod_resources(flavor: Flavor) -> dict[str, dict[str, str]]:
    """requests = limits (Guaranteed QoS): the pod gets exactly the flavor, like a VM."""
    amounts = {"cpu": str(flavor.cpus), "memory": f"{flavor.memory_mb}Mi"}
    if flavor.gpus:
        amounts["nvidia.com/gpu"] = str(flavor.gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def pod_manifest(spec: InstanceSpec, settings: KubernetesSettings) -> dict[str, Any]:
    """The worker pod for `spec`; its ConfigMap is created right after, owned by it."""
    check_instance_id(spec.id)
    if spec.worker is None:
        raise ValueError(f"{spec.id}: a Kubernetes worker needs its WorkerSpec to join the pool")
    worker = spec.worker
    mounts: list[dict[str, Any]] = [
        {
            "name": "condor-config",
            "mountPath": f"/etc/condor/config.d/{CONFIG_FILE}",
            "subPath": CONFIG_FILE,
            "readOnly": True,
        },
        {"name": "pool-token", "mountPath": worker.token_dir, "readOnly": True},
    ]
    volumes: list[dict[str, Any]] = [
        {
            "name": "condor-config",
            "configMap": {
                "name": config_map_name(spec.id),
                "items": [{"key": CONFIG_KEY, "path": CONFIG_FILE}],
            },
        },
        _secret_volume("pool-token", settings, settings.token_key, TOKEN_FILE_NAME),
    ]
    if worker.admin_key is not None:
        mounts.append(
            {"name": "admin-key", "mountPath": "/etc/condor/passwords.d", "readOnly": True}
        )
        volumes.append(
            _secret_volume("admin-key", settings, settings.admin_key_key, ADMIN_KEY_NAME)
        )
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "resources": pod_resources(spec.flavor),
        "volumeMounts": mounts,
    }
    pod_spec: dict[str, Any] = {
        # A worker that exits (HTCondor's idle backstop) is done, as a VM that powered off.
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": settings.grace_period_seconds,
        "automountServiceAccountToken": False,  # workers never talk to the Kubernetes API
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": volumes,
    }
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        pod_spec["tolerations"] = [t.manifest() for t in settings.tolerations]
    if settings.priority_class:
        pod_spec["priorityClassName"] = settings.priority_class
    if settings.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in settings.image_pull_secrets]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": spec.id,
            "labels": labels(spec, settings),
            "annotations": {FLAVOR_ANNOTATION: spec.flavor.name},
        },
        "spec": pod_spec,
    }


def _secret_volume(
    name: str, settings: KubernetesSettings, key: str, file_name: str
) -> dict[str, Any]:
    return {
        "name": name,
        "secret": {
            "secretName": settings.token_secret,
            "items": [{"key": key, "path": file_name}],
            "defaultMode": 0o400,  # HTCondor refuses tokens others can read
        },
    }


def config_map_manifest(
    spec: InstanceSpec, settings: KubernetesSettings, pod_uid: str
) -> dict[str, Any]:
    """The worker's HTCondor configuration (no secret in it), garbage-collected with its pod."""
    if spec.worker is None:
        raise ValueError(f"{spec.id}: a Kubernetes worker needs its WorkerSpec to join the pool")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": config_map_name(spec.id),
            "labels": labels(spec, settings),
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": spec.id, "uid": pod_uid}
            ],
        },
        "data": {CONFIG_KEY: render_condor_config(spec.worker)},
    }


@dataclass(frozen=True)
class PodView:
    """What the provider reads off a pod to judge it."""

    phase: str
    deleting: bool
    age: float
    unschedulable: str | None = None  # the PodScheduled=False condition's message
    waiting: tuple[tuple[str, str], ...] = ()  # (reason, message) of waiting containers
    terminated: tuple[tuple[str, int], ...] = ()  # (reason, exit code) of ended containers


def pod_status(view: PodView, pending_timeout: float) -> tuple[CloudStatus | None, str | None]:
    """The cloud status of a worker pod, and the fault when it failed. A pod stuck Pending past
    the timeout fails with the reason Kubernetes gives (its events add detail elsewhere)."""
    if view.deleting:
        return CloudStatus.DELETING, None
    if view.phase == "Running":
        return CloudStatus.ACTIVE, None
    if view.phase in ("Succeeded", "Failed"):
        ended = ", ".join(
            f"{reason or 'exited'} (exit code {code})" for reason, code in view.terminated
        )
        return CloudStatus.ERROR, f"the worker's container ended: {ended or view.phase}"
    if view.phase == "Pending":
        if view.age <= pending_timeout:
            return CloudStatus.BUILD, None
        return CloudStatus.ERROR, f"Pending for {view.age:.0f}s: {pending_reason(view)}"
    return CloudStatus.ERROR, f"pod phase {view.phase or 'Unknown'}"


def pending_reason(view: PodView) -> str:
    if view.unschedulable:
        return f"Unschedulable: {view.unschedulable}"
    images = [
        f"{reason}: {message}" for reason, message in view.waiting if reason in IMAGE_FAILURES
    ]
    if images:
        return "; ".join(images)
    others = [f"{reason}: {message}".rstrip(": ") for reason, message in view.waiting]
    return "; ".join(others) or "not started (no reason given)"


# ----- quota -----
_QUOTA_KEYS = {
    "instances": ("pods", "count/pods"),
    "cpu": ("requests.cpu", "cpu", "limits.cpu"),
    "memory": ("requests.memory", "memory", "limits.memory"),
}


def quota_headroom(quotas: list[tuple[dict[str, str], dict[str, str]]]) -> Quota:
    """Headroom from the namespace's ResourceQuotas, each (hard, used): the tightest of every
    quota and every key that limits pods, cores and memory (requests = limits for our pods)."""
    from kubernetes.utils.quantity import parse_quantity

    def left(hard: dict[str, str], used: dict[str, str], key: str) -> float | None:
        if key not in hard:
            return None
        limit = parse_quantity(hard[key])  # type: ignore[no-untyped-call]
        taken = parse_quantity(used.get(key, "0"))  # type: ignore[no-untyped-call]
        return float(limit - taken)

    rooms: dict[str, float | None] = {"instances": None, "cpu": None, "memory": None}
    for hard, used in quotas:
        for what, keys in _QUOTA_KEYS.items():
            for key in keys:
                room = left(hard, used, key)
                if room is not None:
                    known = rooms[what]
                    rooms[what] = room if known is None else min(known, room)

    def whole(value: float | None, unit: float = 1) -> int | None:
        return None if value is None else max(0, int(value // unit))

    return Quota(
        instances=whole(rooms["instances"]),
        cores=whole(rooms["cpu"]),
        memory_mb=whole(rooms["memory"], 1024 * 1024),
    )
