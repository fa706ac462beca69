"""The embedded cloud: each instance is a real HTCondor execute node started on this machine, in
a container of its own booted from the worker image (see bursting.devpool.containers).

It behaves like a small IaaS API: instances have ids we choose, tags, BUILD/ACTIVE/ERROR states,
a boot delay and a quota, and its records live in its own file (its "database"), so a restarted
controller finds them again by their tags. Faults can be injected to test the controller for real.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from bursting.clock import Clock, SystemClock
from bursting.clouds.base import CloudProvider, CloudType, ProviderContext
from bursting.clouds.local_config import LocalCloud as LocalCloudConfig
from bursting.config import CloudConfig
from bursting.devpool import DevPool
from bursting.devpool.containers import ContainerNodes
from bursting.devpool.layout import cache_root
from bursting.errors import CloudUnavailable, PermanentError, QuotaExceeded
from bursting.model import (
    CloudInstance,
    CloudSnapshot,
    CloudStatus,
    Flavor,
    InstanceSpec,
    Quota,
    Secret,
    WorkerSpec,
)


class NodeHost(Protocol):
    """Where an instance's node runs: image-booted containers (the default), or whatever a
    test stands in. Nodes are found by name from what runs, never from a recorded PID."""

    def running(self) -> bool: ...

    def add_node(
        self,
        cpus: int,
        memory_mb: int,
        attrs: dict[str, str] | None = None,
        name: str | None = None,
        spec: WorkerSpec | None = None,
    ) -> str: ...

    def node_pids(self, name: str) -> list[int]: ...

    def kill_node(self, name: str) -> None: ...


@dataclass
class _Record:
    id: str
    flavor: str
    pool_id: str
    status: str
    created_at: float
    boot_at: float
    fault: str | None = None
    node: bool = False
    worker: dict[str, Any] | None = None  # the WorkerSpec it boots with, like a VM's user-data


class LocalCloudProvider:
    """CloudProvider whose VMs are execute nodes of the personal pool, each its own container."""

    def __init__(
        self,
        config: LocalCloudConfig,
        nodes: NodeHost | None = None,
        clock: Clock | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self.nodes = nodes or ContainerNodes(DevPool().running)
        self.clock = clock or SystemClock()
        directory = state_dir or config.local.state_dir or cache_root() / "local-clouds"
        directory = directory.expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        self._file = directory / f"{config.name}.json"
        # One file per instance whose node may have been started, written before the start and
        # removed only once the node is stopped: how a crash between starting a node and
        # recording it is found again (see _reap).
        self._booted = directory / f"{config.name}.nodes"
        self._booted.mkdir(exist_ok=True)
        self._flavors = {f.name: f.to_flavor() for f in config.flavors}

    # ----- the cloud's database -----
    @contextlib.contextmanager
    def _records(self) -> Iterator[dict[str, _Record]]:
        with self._file.with_suffix(".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                raw: dict[str, Any] = json.loads(self._file.read_text())
            except FileNotFoundError:
                raw = {}
            records = {key: _Record(**value) for key, value in raw.items()}
            yield records
            # The records hold each instance's worker spec, pool token included (as a cloud
            # keeps user-data): private to the owner, like the token files themselves.
            tmp = self._file.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps({k: asdict(v) for k, v in records.items()}, indent=1))
            tmp.chmod(0o600)
            tmp.replace(self._file)
            # The audit trail of creations, written once a creation is committed: a crash
            # before the commit leaves neither, so a repeated create is never logged twice.
            new = [r for key, r in records.items() if key not in raw]
            if new:
                with self._file.with_suffix(".created").open("a") as log:
                    log.writelines(f"{r.id} {r.created_at:.3f}\n" for r in new)

    def _advance(self, records: dict[str, _Record]) -> None:
        """Boots progress when the API is used, as they would on a real cloud between calls."""
        now = self.clock.now()
        faults = self.config.local.faults
        for record in records.values():
            if record.status != CloudStatus.BUILD.value or now < record.boot_at:
                continue
            if faults.hang_in_build:
                continue
            if _fraction(record.id) < faults.boot_failure_fraction:
                record.status, record.fault = CloudStatus.ERROR.value, "boot failed (injected)"
                continue
            record.status = CloudStatus.ACTIVE.value
            if faults.never_join:
                continue
            (self._booted / record.id).touch()  # before the start: see _reap
            if self.nodes.node_pids(record.id):
                # Started by a call that was killed before it could record that: the same boot.
                record.node = True
                continue
            try:
                self._start_node(record)
            except Exception as exc:  # a node that cannot start is a failed boot
                record.status, record.fault = CloudStatus.ERROR.value, f"node start: {exc}"

    def _start_node(self, record: _Record) -> None:
        """Boot the instance: a node from the worker image, configured only by its WorkerSpec."""
        if record.worker is None:
            raise PermanentError("it was created without a worker spec")
        spec = _worker_spec(record.worker)
        self.nodes.add_node(spec.flavor.cpus, spec.flavor.memory_mb, name=record.id, spec=spec)
        record.node = True

    def _reap(self, records: dict[str, _Record]) -> None:
        """Stop nodes this cloud started for instances it has no record of: a crash between
        starting a node and committing its record. Called with the records lock held, under
        which every node is started, so no boot is in flight."""
        for marker in list(self._booted.iterdir()):
            if marker.name not in records:
                self.nodes.kill_node(marker.name)
                marker.unlink(missing_ok=True)

    # ----- CloudProvider -----
    def list_instances(self, pool_id: str) -> CloudSnapshot:
        if not self.nodes.running():
            raise CloudUnavailable(f"{self.name}: the personal pool hosting it is not running")
        with self._records() as records:
            self._reap(records)
            self._advance(records)
            listed = tuple(_public(self.name, r) for r in records.values() if r.pool_id == pool_id)
        return CloudSnapshot(self.name, self.clock.now(), listed, self.quota())

    def create(self, spec: InstanceSpec) -> CloudInstance:
        if spec.flavor.name not in self._flavors:
            raise PermanentError(f"{self.name}: no flavor {spec.flavor.name!r}")
        if self.config.local.faults.create_delay_seconds:
            self.clock.sleep(self.config.local.faults.create_delay_seconds)  # API latency
        with self._records() as records:
            if spec.id in records:
                return _public(self.name, records[spec.id])
            quota = self.config.local.faults.quota_cores
            used = sum(self._flavors[r.flavor].cpus for r in records.values())
            if quota is not None and used + spec.flavor.cpus > quota:
                raise QuotaExceeded(f"{self.name}: quota of {quota} cores exceeded ({used} in use)")
            now = self.clock.now()
            record = _Record(
                spec.id,
                spec.flavor.name,
                spec.pool_id,
                CloudStatus.BUILD.value,
                now,
                now + self.config.local.boot_delay_seconds,
            )
            records[spec.id] = record
            record.worker = _worker_record(spec.worker)
            self._advance(records)
            return _public(self.name, record)

    def delete(self, instance_id: str) -> None:
        """Like a real cloud: DELETING at once, gone once the node is stopped. The node is
        stopped outside the records lock so listings stay fast; a crash in between leaves a
        DELETING record, and deleting again finishes the job. Whatever the record says about
        the node, any node running under this instance's name is stopped."""
        marker = self._booted / instance_id
        with self._records() as records:
            record = records.get(instance_id)
            if record is None and not marker.exists() and not self.nodes.node_pids(instance_id):
                return
            if record is not None:
                record.status = CloudStatus.DELETING.value
        self.nodes.kill_node(instance_id)  # a deleted VM takes its jobs with it
        with self._records() as records:
            records.pop(instance_id, None)
            marker.unlink(missing_ok=True)

    def flavors(self) -> tuple[Flavor, ...]:
        return tuple(self._flavors.values())

    def quota(self) -> Quota:
        if self.config.local.faults.quota_unknown:
            return Quota.unknown()
        cores = self.config.local.faults.quota_cores
        if cores is None:
            return Quota()
        with contextlib.suppress(FileNotFoundError):
            raw = json.loads(self._file.read_text())
            cores -= sum(self._flavors[r["flavor"]].cpus for r in raw.values())
        return Quota(cores=max(0, cores))


def _fraction(instance_id: str) -> float:
    """A stable pseudo-random number in [0, 1) per instance, so injected faults are repeatable."""
    digest = hashlib.sha256(instance_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _public(cloud: str, record: _Record) -> CloudInstance:
    return CloudInstance(
        id=record.id,
        cloud=cloud,
        flavor=record.flavor,
        status=CloudStatus(record.status),
        created_at=record.created_at,
        pool_id=record.pool_id,
        fault=record.fault,
    )


def _worker_record(worker: WorkerSpec | None) -> dict[str, Any] | None:
    """The worker spec as the records file keeps it (the file is private to root, 0600)."""
    if worker is None:
        return None
    fields = {name: getattr(worker, name) for name in worker.__dataclass_fields__}
    fields["flavor"] = asdict(worker.flavor)
    fields["token"] = worker.token.reveal()
    fields["admin_key"] = worker.admin_key.reveal() if worker.admin_key else None
    return fields


def _worker_spec(fields: dict[str, Any]) -> WorkerSpec:
    return WorkerSpec(
        **{
            **fields,
            "flavor": Flavor(**fields["flavor"]),
            "token": Secret(fields["token"]),
            "admin_key": Secret(fields["admin_key"]) if fields.get("admin_key") else None,
            "extra_attrs": dict(fields["extra_attrs"]),
        }
    )


def _build(config: CloudConfig, context: ProviderContext) -> CloudProvider:
    """The provider for one local cloud; its worker image is built first if it is missing or
    older than the payload (once, minutes; a no-op afterwards), never during a boot."""
    if not isinstance(config, LocalCloudConfig):
        raise PermanentError(f"cloud {config.name}: not a local cloud config")
    from bursting.image import ensure_image

    image = ensure_image(log=logging.getLogger("bursting.clouds.local").info).reference
    nodes = ContainerNodes(DevPool().running, image=lambda: image)
    return LocalCloudProvider(config, nodes=nodes, clock=context.clock)


CLOUD_TYPE = CloudType(config_model=LocalCloudConfig, build=_build)
