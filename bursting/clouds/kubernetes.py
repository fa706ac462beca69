"""The Kubernetes provider: workers are pods of the worker image in one namespace of a cluster,
sized by their flavor (requests = limits), configured by a ConfigMap the pod owns and joining the
pool with the token from an existing Secret.

One API client per cloud entry, from a kubeconfig file and context, or in-cluster from the pod's
ServiceAccount. Pods carry our labels (pool, cloud, instance id) and are listed by label
selector. The pod is named by the instance id, so a repeated create meets 409 AlreadyExists and
is idempotent. Headroom comes from the namespace's ResourceQuotas; a pod Pending past its
timeout is reported failed with the reason its conditions and events give.

Every call here is a namespaced call of the `kubernetes` client, and the Helm chart's Role grants
exactly these (tests/unit/test_helm_rbac.py reads them from this file).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bursting.clock import Clock, SystemClock
from bursting.clouds.base import CloudProvider, CloudType, ProviderContext
from bursting.clouds.kubernetes_config import KubernetesCloud
from bursting.clouds.kubernetes_errors import status_of, translate
from bursting.clouds.kubernetes_pods import (
    CONTAINER,
    FLAVOR_ANNOTATION,
    INSTANCE_LABEL,
    POOL_LABEL,
    PodView,
    config_map_manifest,
    config_map_name,
    pod_manifest,
    pod_status,
    quota_headroom,
    selector,
)
from bursting.clouds.openstack_errors import Redactor
from bursting.config import CloudConfig
from bursting.errors import BurstingError, PermanentError
from bursting.kubeconfig import load_cluster
from bursting.model import CloudInstance, CloudSnapshot, Flavor, InstanceSpec, Quota

log = logging.getLogger(__name__)

ApiFactory = Callable[[], Any]  # -> kubernetes.client.CoreV1Api


class KubernetesProvider:
    """CloudProvider for one namespace of one cluster."""

    def __init__(
        self,
        config: KubernetesCloud,
        connect: ApiFactory,
        namespace: str,
        redact: Redactor,
        clock: Clock | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self.settings = config.kubernetes
        self.namespace = namespace
        self._connect = connect
        self._redact = redact
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._api: Any = None
        self._secret_checked = False
        self._timeout = config.call_timeout_seconds

    # ----- plumbing -----
    def _core(self) -> Any:
        with self._lock:
            if self._api is None:
                self._api = self._connect()
            return self._api

    def _call(self, operation: str, call: Callable[[], Any]) -> Any:
        """Run one API call, its errors translated (and redacted) at this edge."""
        try:
            return call()
        except BurstingError:
            raise
        except Exception as exc:
            raise translate(exc, self.name, operation, self._redact) from None

    def _answer(self, operation: str, call: Callable[[], Any], tolerated: int) -> Any | None:
        """Like _call, but the one HTTP status `tolerated` (404 on a delete, 409 on a create)
        is an answer, not an error: None is returned."""
        try:
            return call()
        except Exception as exc:
            if status_of(exc) == tolerated:
                return None
            raise translate(exc, self.name, operation, self._redact) from None

    # ----- reading pods -----
    def _view(self, pod: Any) -> PodView:
        status = pod.status
        conditions = (status.conditions if status else None) or []
        unschedulable = next(
            (
                c.message or c.reason or "Unschedulable"
                for c in conditions
                if c.type == "PodScheduled" and c.status == "False"
            ),
            None,
        )
        waiting: list[tuple[str, str]] = []
        terminated: list[tuple[str, int]] = []
        for container in (status.container_statuses if status else None) or []:
            state = container.state
            if state is not None and state.waiting is not None:
                waiting.append((state.waiting.reason or "", state.waiting.message or ""))
            if state is not None and state.terminated is not None:
                ended = state.terminated
                terminated.append((ended.reason or "", int(ended.exit_code or 0)))
        created = _epoch(pod.metadata.creation_timestamp, self.clock.now())
        return PodView(
            phase=(status.phase if status else None) or "Pending",
            deleting=pod.metadata.deletion_timestamp is not None,
            age=max(0.0, self.clock.now() - created),
            unschedulable=unschedulable,
            waiting=tuple(waiting),
            terminated=tuple(terminated),
        )

    def _public(self, pod: Any) -> CloudInstance | None:
        labels = pod.metadata.labels or {}
        view = self._view(pod)
        status, fault = pod_status(view, self.settings.pending_timeout_seconds)
        if status is None:
            return None
        if fault is not None and view.phase == "Pending":
            fault = self._with_events(pod.metadata.name, fault)
        return CloudInstance(
            id=labels.get(INSTANCE_LABEL, pod.metadata.name),
            cloud=self.name,
            flavor=(pod.metadata.annotations or {}).get(FLAVOR_ANNOTATION, ""),
            status=status,
            created_at=_epoch(pod.metadata.creation_timestamp, self.clock.now()),
            pool_id=labels.get(POOL_LABEL, ""),
            fault=self._redact(fault) if fault else None,
        )

    def _with_events(self, pod_name: str, fault: str) -> str:
        """The pod's latest warning (FailedScheduling, Failed pulls) added to its fault."""
        try:
            events = self._core().list_namespaced_event(
                self.namespace,
                field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod_name}",
                _request_timeout=self._timeout,
            )
        except Exception as exc:  # the fault stands without the detail
            log.warning("%s: events of %s unreadable: %s", self.name, pod_name, exc)
            return fault
        warnings = [e for e in events.items or [] if e.type == "Warning"]
        if not warnings:
            return fault
        latest = max(warnings, key=_event_time)
        return f"{fault} (event {latest.reason}: {latest.message})"

    # ----- CloudProvider -----
    def list_instances(self, pool_id: str) -> CloudSnapshot:
        pods = self._call(
            "list pods",
            lambda: self._core().list_namespaced_pod(
                self.namespace,
                label_selector=selector(pool_id, self.name),
                _request_timeout=self._timeout,
            ),
        )
        listed = [i for i in (self._public(pod) for pod in pods.items or []) if i is not None]
        return CloudSnapshot(self.name, self.clock.now(), tuple(listed), self.quota())

    def create(self, spec: InstanceSpec) -> CloudInstance:
        if spec.flavor.name not in {flavor.name for flavor in self.config.flavors}:
            raise PermanentError(
                f"{self.name}: no pod size {spec.flavor.name!r} is configured for this cloud; "
                "add it to the cloud's flavors"
            )
        self._check_token_secret()
        try:
            manifest = pod_manifest(spec, self.settings)
        except ValueError as exc:
            raise PermanentError(f"{self.name}: {exc}") from None
        from kubernetes import client

        body = client.V1Pod.from_dict(manifest)
        pod = self._answer(
            "create pod",
            lambda: self._core().create_namespaced_pod(
                self.namespace, body, _request_timeout=self._timeout
            ),
            tolerated=409,
        )
        if pod is None:  # asked before (a retry after a crash): the pod exists already
            pod = self._existing_pod(spec)
        self._ensure_config_map(spec, pod.metadata.uid)
        instance = self._public(pod)
        if instance is None:
            raise PermanentError(f"{self.name}: pod {spec.id} vanished right after its create")
        return instance

    def _existing_pod(self, spec: InstanceSpec) -> Any:
        pod = self._call(
            "read pod",
            lambda: self._core().read_namespaced_pod(
                spec.id, self.namespace, _request_timeout=self._timeout
            ),
        )
        if (pod.metadata.labels or {}).get(INSTANCE_LABEL) != spec.id:
            raise PermanentError(
                f"{self.name}: a pod named {spec.id} exists in namespace {self.namespace} that "
                "bursting did not create; delete it or use another namespace"
            )
        return pod

    def _ensure_config_map(self, spec: InstanceSpec, pod_uid: str) -> None:
        """Created after the pod, owned by it (its kubelet waits for the volume meanwhile)."""
        from kubernetes import client

        body = client.V1ConfigMap.from_dict(config_map_manifest(spec, self.settings, pod_uid))
        made = self._answer(
            "create config map",
            lambda: self._core().create_namespaced_config_map(
                self.namespace, body, _request_timeout=self._timeout
            ),
            tolerated=409,
        )
        if made is None:  # created by the earlier try; it must be this pod's
            found = self._call(
                "read config map",
                lambda: self._core().read_namespaced_config_map(
                    config_map_name(spec.id), self.namespace, _request_timeout=self._timeout
                ),
            )
            owners = {ref.uid for ref in found.metadata.owner_references or []}
            if pod_uid not in owners:
                raise PermanentError(
                    f"{self.name}: config map {config_map_name(spec.id)} belongs to another "
                    "pod; delete it so the worker's own configuration can be created"
                )

    def _check_token_secret(self) -> None:
        """Once: the pool token Secret exists and holds the key (its value is never read out)."""
        if self._secret_checked:
            return
        settings = self.settings
        secret = self._answer(
            "read the pool token secret",
            lambda: self._core().read_namespaced_secret(
                settings.token_secret, self.namespace, _request_timeout=self._timeout
            ),
            tolerated=404,
        )
        if secret is None:
            raise PermanentError(
                f"{self.name}: no Secret {settings.token_secret!r} in namespace "
                f"{self.namespace}; create it with the pool's worker token under key "
                f"{settings.token_key!r} (kubernetes.token_secret)"
            )
        if settings.token_key not in (secret.data or {}):
            raise PermanentError(
                f"{self.name}: Secret {settings.token_secret!r} has no key "
                f"{settings.token_key!r}; add the pool's worker token under it or set "
                "kubernetes.token_key"
            )
        self._secret_checked = True

    def delete(self, instance_id: str) -> None:
        """The pod gets grace_period_seconds to let its startd retire; its ConfigMap goes with
        it (owner reference). A pod already gone has any ConfigMap it left removed too."""
        gone = self._answer(
            "delete pod",
            lambda: self._core().delete_namespaced_pod(
                instance_id,
                self.namespace,
                grace_period_seconds=self.settings.grace_period_seconds,
                _request_timeout=self._timeout,
            ),
            tolerated=404,
        )
        if gone is None:
            self._answer(
                "delete config map",
                lambda: self._core().delete_namespaced_config_map(
                    config_map_name(instance_id), self.namespace, _request_timeout=self._timeout
                ),
                tolerated=404,
            )

    def flavors(self) -> tuple[Flavor, ...]:
        """Pod sizes: a cluster has no flavors, so the configured ones are what it offers."""
        return tuple(flavor.to_flavor() for flavor in self.config.flavors)

    def quota(self) -> Quota:
        """Headroom from the namespace's ResourceQuotas (none: unlimited); unknown if unreadable."""
        try:
            quotas = self._quotas()
        except BurstingError as exc:
            log.warning("%s: quota unknown: %s", self.name, exc)
            return Quota.unknown()
        return quota_headroom(
            [
                (
                    dict((q.status.hard if q.status else None) or {}),
                    dict((q.status.used if q.status else None) or {}),
                )
                for q in quotas
            ]
        )

    def _quotas(self) -> list[Any]:
        name = self.settings.resource_quota
        if name is not None:
            found = self._call(
                "read resource quota",
                lambda: self._core().read_namespaced_resource_quota(
                    name, self.namespace, _request_timeout=self._timeout
                ),
            )
            return [found]
        listed = self._call(
            "list resource quotas",
            lambda: self._core().list_namespaced_resource_quota(
                self.namespace, _request_timeout=self._timeout
            ),
        )
        return list(listed.items or [])


def _epoch(value: datetime | None, default: float) -> float:
    return value.timestamp() if value is not None else default


def _event_time(event: Any) -> float:
    for moment in (event.last_timestamp, event.event_time, event.first_timestamp):
        if moment is not None:
            return float(moment.timestamp())
    return 0.0


# ----- wiring -----
def api_factory(config: KubernetesCloud) -> tuple[ApiFactory, str, Redactor]:
    """Load the kubeconfig (or in-cluster config) now, so a missing file, context or cluster is a
    config error at start; the API client itself is made at the first call."""
    from kubernetes import client

    settings = config.kubernetes
    configuration, namespace = load_cluster(
        f"cloud {config.name}",
        "kubernetes.",
        settings.kubeconfig,
        settings.context,
        settings.namespace,
        "not running inside a cluster: set kubernetes.kubeconfig to reach one",
    )
    configuration.retries = 1  # one quick retry of a dropped connection; the cycle does the rest
    redact = Redactor(_credentials(configuration))

    def connect() -> Any:
        return client.CoreV1Api(client.ApiClient(configuration))

    return connect, namespace or "default", redact


def _credentials(configuration: Any) -> list[str]:
    secrets = [str(v).removeprefix("Bearer ") for v in (configuration.api_key or {}).values()]
    if configuration.password:
        secrets.append(str(configuration.password))
    return secrets


def _build(config: CloudConfig, context: ProviderContext) -> CloudProvider:
    if not isinstance(config, KubernetesCloud):
        raise PermanentError(f"cloud {config.name}: not a Kubernetes cloud config")
    connect, namespace, redact = api_factory(config)
    return KubernetesProvider(config, connect, namespace, redact, clock=context.clock)


CLOUD_TYPE = CloudType(config_model=KubernetesCloud, build=_build)
__all__ = ["CLOUD_TYPE", "CONTAINER", "KubernetesProvider", "api_factory"]
