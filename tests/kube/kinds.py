"""The resources the stand-in serves: where they live in the URL space, what the server calls
them, which fields a field selector may name."""

from __future__ import annotations

from dataclasses import dataclass

COMMON_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class Kind:
    kind: str  # Pod
    plural: str  # pods
    group: str  # "" for core
    version: str  # v1
    namespaced: bool = True
    fields: tuple[str, ...] = COMMON_FIELDS
    returns_deleted: bool = False  # DELETE answers with the object rather than a Status
    has_status: bool = False  # status is written only through the /status subresource

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def prefix(self) -> str:
        """The URL root of the resource's group version."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


KINDS: tuple[Kind, ...] = (
    Kind(
        "Pod",
        "pods",
        "",
        "v1",
        fields=(
            *COMMON_FIELDS,
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ),
        returns_deleted=True,
        has_status=True,
    ),
    Kind("ConfigMap", "configmaps", "", "v1"),
    Kind("Secret", "secrets", "", "v1", fields=(*COMMON_FIELDS, "type")),
    Kind(
        "Event",
        "events",
        "",
        "v1",
        fields=(
            *COMMON_FIELDS,
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ),
    ),
    Kind("ResourceQuota", "resourcequotas", "", "v1", returns_deleted=True, has_status=True),
    Kind(
        "Namespace",
        "namespaces",
        "",
        "v1",
        namespaced=False,
        fields=("metadata.name", "status.phase"),
        returns_deleted=True,
        has_status=True,
    ),
    Kind(
        "Node",
        "nodes",
        "",
        "v1",
        namespaced=False,
        fields=("metadata.name", "spec.unschedulable"),
        has_status=True,
    ),
    Kind("Lease", "leases", "coordination.k8s.io", "v1"),
)

BY_KIND = {k.kind: k for k in KINDS}
BY_PLURAL = {(k.group, k.plural): k for k in KINDS}


def kind_named(name: str) -> Kind:
    """`Pod`, `pod`, `pods` or `leases` -> the Kind (for the test helpers)."""
    lowered = name.lower()
    for kind in KINDS:
        if lowered in (kind.kind.lower(), kind.plural):
            return kind
    raise KeyError(f"the stand-in serves no kind {name!r}; it serves {[k.kind for k in KINDS]}")
