"""A Kubernetes cloud's config model: the common cloud fields plus its `kubernetes:` settings.

Credentials never appear here: the cluster is reached through a kubeconfig file (and context),
or, without one, through the pod's own ServiceAccount (in-cluster). The pool token the workers
join with is an existing Secret, mounted into each worker pod as a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from bursting.config import CloudConfig, _Strict

# DNS-1123 label: what Kubernetes accepts as a namespace or Secret name.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"


class Toleration(_Strict):
    """A pod toleration, as in the pod spec (so workers may run on tainted burst nodes)."""

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: Annotated[int, Field(ge=0)] | None = None

    def manifest(self) -> dict[str, Any]:
        """The toleration as the pod spec spells it."""
        fields = {
            "key": self.key,
            "operator": self.operator,
            "value": self.value,
            "effect": self.effect,
            "tolerationSeconds": self.toleration_seconds,
        }
        return {k: v for k, v in fields.items() if v is not None}


class KubernetesSettings(_Strict):
    # Another cluster: its kubeconfig file (and context). None: this pod's ServiceAccount.
    kubeconfig: Path | None = None
    context: str | None = None
    # None: the kubeconfig context's namespace, or in-cluster the pod's own namespace.
    namespace: Annotated[str, Field(pattern=DNS_LABEL)] | None = None
    image: Annotated[str, Field(min_length=1)]  # the worker image (an OCI reference)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: tuple[Annotated[str, Field(pattern=DNS_SUBDOMAIN)], ...] = ()
    # An existing Secret holding the pool's worker IDTOKEN (under token_key) and, when the
    # controller drains workers with its own key, that key (under admin_key_key): mounted as
    # files, never copied into a pod spec or ConfigMap.
    token_secret: Annotated[str, Field(pattern=DNS_SUBDOMAIN)]
    token_key: Annotated[str, Field(min_length=1)] = "token"
    admin_key_key: Annotated[str, Field(min_length=1)] = "admin-key"
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    service_account: Annotated[str, Field(pattern=DNS_SUBDOMAIN)] | None = None
    priority_class: str | None = None
    # The ResourceQuota the headroom is read from; None: every quota in the namespace.
    resource_quota: Annotated[str, Field(pattern=DNS_SUBDOMAIN)] | None = None
    # Deleting a pod: the startd gets this long to retire before the kubelet kills it.
    grace_period_seconds: Annotated[int, Field(ge=0, le=7 * 24 * 3600)] = 600
    # A pod still Pending after this long (unschedulable, image not pulled) is reported as
    # failed with the reason Kubernetes gives, so it is deleted and this cloud backed off.
    pending_timeout_seconds: Annotated[float, Field(gt=0, le=24 * 3600)] = 300.0
    # Extra labels on every worker pod (e.g. for a site's network policies or cost reports).
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("kubeconfig")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None


class KubernetesCloud(CloudConfig):
    """A namespace of a Kubernetes cluster: each instance a worker pod sized by its flavor."""

    type: Literal["kubernetes"]
    kubernetes: KubernetesSettings
