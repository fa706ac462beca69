"""The provisioning seam: what the controller needs from any cloud, and how a type registers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bursting.model import CloudInstance, CloudSnapshot, Flavor, InstanceSpec, Quota

if TYPE_CHECKING:
    from bursting.clock import Clock
    from bursting.config import CloudConfig


class CloudProvider(Protocol):
    name: str

    def list_instances(self, pool_id: str) -> CloudSnapshot:
        """Only instances tagged with this pool id; raises CloudUnavailable if it cannot look."""
        ...

    def create(self, spec: InstanceSpec) -> CloudInstance:
        """Idempotent by spec.id: asking twice yields one instance. The provider renders
        spec.worker its own way (cloud-init, ConfigMap and Secret, a local node)."""
        ...

    def delete(self, instance_id: str) -> None:
        """Idempotent: deleting an instance that is already gone is not an error."""
        ...

    def flavors(self) -> tuple[Flavor, ...]:
        """The flavors the cloud itself offers (checked against the config at start)."""
        ...

    def quota(self) -> Quota:
        """What the cloud still allows; Quota.unknown() when it would not say."""
        ...


@dataclass(frozen=True)
class ProviderContext:
    """What the wiring hands every provider besides its own config."""

    clock: Clock
    pool_id: str


@dataclass(frozen=True)
class CloudType:
    """One installed cloud type: the model its config entries are validated with, and the
    factory that builds a provider from a validated entry."""

    config_model: type[CloudConfig]
    build: Callable[[CloudConfig, ProviderContext], CloudProvider]
