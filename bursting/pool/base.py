"""The batch-system seam: what the controller and the Airflow provider need from a pool."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from bursting.model import ClusterStatus, PoolSnapshot


class BatchPool(Protocol):
    def snapshot(self) -> PoolSnapshot:
        """Idle demand by shape and the execute nodes; PoolUnavailable, never empty, on error."""
        ...

    def drain(self, worker_names: Sequence[str]) -> list[str]:
        """Gracefully drain these execute nodes (running jobs finish, then the node leaves)."""
        ...

    def submit(
        self,
        description: str,
        itemdata: Iterable[Mapping[str, str]] | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> int:
        """Queue one cluster in one transaction; returns its ClusterId."""
        ...

    def job_status(self, cluster_id: int) -> ClusterStatus: ...

    def remove(self, cluster_id: int, reason: str = "removed by bursting") -> None: ...
