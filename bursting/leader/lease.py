"""The Lease API edge: reaching the cluster (kubeconfig or in-cluster), reading and writing the
coordination.k8s.io/v1 Lease, and turning its spec into a LeaseRecord and back.

Only the verbs the chart's Role grants: create, and get/update on the named Lease. Every call has
a timeout; the client's own retries are off (the elector retries every retry period).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bursting.config import LeaderElectionConfig
from bursting.errors import ConfigError
from bursting.kubeconfig import load_cluster
from bursting.leader.decision import LeaseRecord

WHERE = "leader_election"


class Conflict(Exception):
    """Someone else created or wrote the Lease since we read it (HTTP 409)."""


def identity() -> str:
    """This replica's name in the Lease: the pod's name (the chart sets POD_NAME), else
    hostname-pid, unique among processes on one host."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class LeaseApi:
    """One named Lease in one namespace, through the real client."""

    api: client.CoordinationV1Api
    name: str
    namespace: str
    timeout: float

    def read(self) -> client.V1Lease | None:
        """The Lease, or None if it does not exist."""
        try:
            return self.api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, record: LeaseRecord) -> client.V1Lease:
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=spec_of(record),
        )
        return self._conflicts(
            lambda: self.api.create_namespaced_lease(
                self.namespace, body, _request_timeout=self.timeout
            )
        )

    def replace(self, read: client.V1Lease, record: LeaseRecord) -> client.V1Lease:
        """Write `record` over the Lease as `read` (its resourceVersion: a write in between
        makes this a Conflict, never a silent overwrite)."""
        body = client.V1Lease(metadata=read.metadata, spec=spec_of(record))
        return self._conflicts(
            lambda: self.api.replace_namespaced_lease(
                self.name, self.namespace, body, _request_timeout=self.timeout
            )
        )

    @staticmethod
    def _conflicts(call: Any) -> client.V1Lease:
        try:
            result: client.V1Lease = call()
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(exc.reason) from None
            raise
        return result


def _time(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


class MicroTime(datetime):
    """A Lease time as the API server parses it (layout 2006-01-02T15:04:05.000000Z07:00):
    always six fractional digits. The client writes datetime.isoformat(), which drops them
    when they are zero, and a real API server then refuses the whole Lease (400)."""

    def isoformat(self, sep: str = "T", timespec: str = "microseconds") -> str:
        return super().isoformat(sep, "microseconds")


def _moment(seconds: float | None) -> datetime | None:
    if seconds is None:
        return None
    return MicroTime.fromtimestamp(round(seconds, 6), tz=UTC)


def record_of(lease: client.V1Lease | None) -> LeaseRecord | None:
    if lease is None:
        return None
    spec = lease.spec or client.V1LeaseSpec()
    return LeaseRecord(
        holder=spec.holder_identity or "",
        duration_seconds=spec.lease_duration_seconds or 0,
        acquired_at=_time(spec.acquire_time),
        renewed_at=_time(spec.renew_time),
        transitions=spec.lease_transitions or 0,
    )


def spec_of(record: LeaseRecord) -> client.V1LeaseSpec:
    return client.V1LeaseSpec(
        holder_identity=record.holder,
        lease_duration_seconds=record.duration_seconds,
        acquire_time=_moment(record.acquired_at),
        renew_time=_moment(record.renewed_at),
        lease_transitions=record.transitions,
    )


def connect(settings: LeaderElectionConfig, timeout: float) -> LeaseApi:
    """The Lease API as `settings` say: a kubeconfig (and context), else this pod's
    ServiceAccount. Problems are ConfigErrors naming the leader_election field to fix."""
    configuration, namespace = load_cluster(
        WHERE,
        "",
        settings.kubeconfig,
        settings.context,
        settings.namespace,
        "not running in a pod: set leader_election.kubeconfig to reach a cluster",
    )
    if namespace is None and settings.kubeconfig is not None:
        namespace = "default"  # as kubectl: a context naming no namespace means "default"
    if namespace is None:
        raise ConfigError(
            WHERE, ["namespace: not set and no namespace to default to; set it to the Lease's"]
        )
    configuration.retries = 0  # the elector retries every retry period, within its deadline
    api = client.CoordinationV1Api(client.ApiClient(configuration))
    return LeaseApi(api, settings.lease_name, namespace, timeout)
