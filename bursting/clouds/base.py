"""The provisioning seam: what the controller needs from any cloud."""

from __future__ import annotations

from typing import Protocol

from bursting.model import CloudInstance, CloudSnapshot, Flavor, InstanceSpec, Quota


class CloudProvider(Protocol):
    name: str

    def list_instances(self, pool_id: str) -> CloudSnapshot:
        """Only instances tagged with this pool id; raises CloudUnavailable if it cannot look."""
        ...

    def create(self, spec: InstanceSpec) -> CloudInstance:
        """Idempotent by spec.id: asking twice yields one instance."""
        ...

    def delete(self, instance_id: str) -> None:
        """Idempotent: deleting an instance that is already gone is not an error."""
        ...

    def flavors(self) -> tuple[Flavor, ...]: ...

    def quota(self) -> Quota: ...
