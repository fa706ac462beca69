"""The OpenStack provider: workers are Nova servers booted from the worker image, configured by
cloud-init user-data rendered from their WorkerSpec, joining the pool over the network.

One connection per cloud, from a `clouds.yaml` entry (password or application credential).
Servers carry our tags as metadata (pool, instance id, cloud, flavor); Nova's list API cannot
filter on metadata, so listings are narrowed by name (our instance ids start with the pool id)
and filtered here. Nova does not enforce unique names either, so a create first looks for the
instance id, which makes it idempotent, and a delete removes every server carrying the id.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bursting.clock import Clock, SystemClock
from bursting.clouds.base import CloudProvider, CloudType, ProviderContext
from bursting.clouds.openstack_config import OpenStackCloud
from bursting.clouds.openstack_errors import (
    Redactor,
    fault_text,
    is_quota_fault,
    once_more_if_dropped,
    translate,
)
from bursting.config import CloudConfig
from bursting.contextualize import render_cloud_init
from bursting.errors import BurstingError, ConfigError, PermanentError, QuotaExceeded
from bursting.model import CloudInstance, CloudSnapshot, CloudStatus, Flavor, InstanceSpec, Quota

log = logging.getLogger(__name__)

# Metadata keys on every server we create: how we find ours again after a restart.
POOL_KEY = "bursting_pool"
INSTANCE_KEY = "bursting_instance"
CLOUD_KEY = "bursting_cloud"
FLAVOR_KEY = "bursting_flavor"

# Nova statuses a server passes through while alive (reboots, migrations, resizes): still ours,
# still running its jobs.
_ALIVE = {"ACTIVE", "REBOOT", "HARD_REBOOT", "MIGRATING", "RESIZE", "VERIFY_RESIZE", "PASSWORD"}
_GONE = {"DELETED", "SOFT_DELETED"}
_CONFIRM_STEP = 0.5  # seconds between looks while a create is being confirmed


class Connection(Protocol):
    """The part of openstack.connection.Connection the provider uses."""

    compute: Any
    image: Any
    network: Any


ConnectionFactory = Callable[[], Connection]


def cloud_status(status: str | None, task_state: str | None) -> CloudStatus | None:
    """Nova's word for a server, normalised; None for a server that is gone."""
    status = (status or "").upper()
    if status in _GONE:
        return None
    if task_state == "deleting":
        return CloudStatus.DELETING
    if status == "BUILD":
        return CloudStatus.BUILD
    if status in _ALIVE:
        return CloudStatus.ACTIVE
    # ERROR, and states in which no job can run: SHUTOFF (the worker powered itself off after its
    # idle backstop), PAUSED, SUSPENDED, SHELVED, UNKNOWN. The controller replaces such a server.
    return CloudStatus.ERROR


def quota_from_limits(absolute: Any) -> Quota:
    """Headroom from Nova's absolute limits (-1 means unlimited)."""

    def left(total: Any, used: Any) -> int | None:
        if total is None or int(total) < 0:
            return None
        return max(0, int(total) - int(used or 0))

    return Quota(
        instances=left(absolute.instances, absolute.instances_used),
        cores=left(absolute.total_cores, absolute.total_cores_used),
        memory_mb=left(absolute.total_ram, absolute.total_ram_used),
    )


def room_after(room: Quota, flavor: Flavor) -> Quota:
    """The headroom left once one server of `flavor` is counted against `room`."""

    def less(left: int | None, used: int) -> int | None:
        return None if left is None else left - used

    return Quota(
        instances=less(room.instances, 1),
        cores=less(room.cores, flavor.cpus),
        memory_mb=less(room.memory_mb, flavor.memory_mb),
        known=room.known,
    )


def near_quota(room: Quota, flavor: Flavor, margin: int) -> bool:
    """Whether headroom `room` (already less this create) is within `margin` servers of
    `flavor` of the quota, or unknown: only then can Nova's quota recheck refuse the create."""
    if not room.known:
        return True
    limits = (
        (room.instances, 1),
        (room.cores, flavor.cpus),
        (room.memory_mb, flavor.memory_mb),
    )
    return any(left is not None and left < margin * size for left, size in limits)


def epoch(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default


@dataclass
class _Catalog:
    """Flavors and the image, read from the cloud and kept for catalog_refresh_seconds."""

    flavors: dict[str, Any]
    image_id: str
    network_id: str | None
    read_at: float


class OpenStackProvider:
    """CloudProvider for one OpenStack project (and region)."""

    def __init__(
        self,
        config: OpenStackCloud,
        connect: ConnectionFactory,
        redact: Redactor,
        clock: Clock | None = None,
        wait: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = config.name
        self.config = config
        self.settings = config.openstack
        self._connect = connect
        self._redact = redact
        self.clock = clock or SystemClock()
        self._wait = wait
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._catalog: _Catalog | None = None
        self._room = Quota.unknown()  # headroom last read, less the creates sent since
        self._prices = {f.name: f.to_flavor() for f in config.flavors}

    # ----- plumbing -----
    def _conn(self) -> Connection:
        with self._lock:
            if self._connection is None:
                self._connection = self._connect()
            return self._connection

    def _call(self, operation: str, call: Callable[[], Any]) -> Any:
        """Run one API call, its errors translated (and redacted) at this edge."""
        try:
            return call()
        except BurstingError:
            raise
        except Exception as exc:
            raise translate(exc, self.name, operation, self._redact) from None

    def _read(self, operation: str, call: Callable[[], Any]) -> Any:
        """A read: sent once more at once if the connection dropped under it (creates and
        deletes are not: the next cycle decides again from a fresh listing)."""
        return self._call(operation, lambda: once_more_if_dropped(call))

    def _catalog_now(self, refresh: bool = False) -> _Catalog:
        now = self.clock.now()
        catalog = self._catalog
        if (
            catalog is None
            or refresh
            or now - catalog.read_at >= self.settings.catalog_refresh_seconds
        ):
            catalog = self._read("read flavors and image", lambda: self._read_catalog(now))
            self._catalog = catalog
        return catalog

    def _read_catalog(self, now: float) -> _Catalog:
        conn = self._conn()
        flavors = {f.name: f for f in conn.compute.flavors(details=True)}
        image_id = self._find_image(conn)
        network_id = None
        if self.settings.network:
            network = conn.network.find_network(self.settings.network, ignore_missing=True)
            if network is None:
                raise PermanentError(
                    f"{self.name}: no network {self.settings.network!r} in this project; set "
                    "openstack.network to one `openstack network list` shows"
                )
            network_id = network.id
        return _Catalog(flavors, image_id, network_id, now)

    def _find_image(self, conn: Connection) -> str:
        wanted = self.settings.image_properties
        if self.settings.image is not None:
            candidates = list(conn.image.images(name=self.settings.image, status="active"))
            what = f"named {self.settings.image!r}"
        else:
            candidates = [
                image
                for image in conn.image.images(status="active")
                if all(_property(image, k) == v for k, v in wanted.items())
            ]
            what = "with properties " + ", ".join(f"{k}={v}" for k, v in sorted(wanted.items()))
        if not candidates:
            raise PermanentError(
                f"{self.name}: no active image {what}; upload the worker image to Glance "
                "(README: OpenStack clouds) or correct openstack.image / image_properties"
            )
        newest = max(candidates, key=lambda image: (image.created_at or "", image.id))
        return str(newest.id)

    def _ours(self, server: Any, pool_id: str | None = None) -> bool:
        metadata = server.metadata or {}
        return metadata.get(CLOUD_KEY) == self.name and (
            pool_id is None or metadata.get(POOL_KEY) == pool_id
        )

    def _servers(self, name_pattern: str) -> Iterator[Any]:
        conn = self._conn()
        # With a limit openstacksdk always asks for one more page after the last, and Nova can
        # answer a marker that points at a server still being built with that same server
        # ("Endless pagination loop"); without one, Nova pages at its own maximum and links on.
        paging = {"limit": self.settings.page_size} if self.settings.page_size else {}
        yield from conn.compute.servers(details=True, name=name_pattern, **paging)

    def _public(self, server: Any) -> CloudInstance | None:
        status = cloud_status(server.status, getattr(server, "task_state", None))
        if status is None:
            return None
        metadata = server.metadata or {}
        fault = None
        if status is CloudStatus.ERROR:
            raw = getattr(server, "fault", None)
            if server.status and server.status.upper() != "ERROR":
                fault = f"server is {server.status}"
            else:
                fault = self._redact(fault_text(raw))
                if is_quota_fault(raw):
                    fault = f"QuotaExceeded: {fault}"
        return CloudInstance(
            id=metadata.get(INSTANCE_KEY, server.name),
            cloud=self.name,
            flavor=metadata.get(FLAVOR_KEY, ""),
            status=status,
            created_at=epoch(server.created_at, self.clock.now()),
            pool_id=metadata.get(POOL_KEY, ""),
            fault=fault,
        )

    # ----- CloudProvider -----
    def list_instances(self, pool_id: str) -> CloudSnapshot:
        servers = self._read(
            "list servers", lambda: [s for s in self._servers(f"^{pool_id}-") if self._ours(s)]
        )
        listed: list[CloudInstance] = []
        for server in servers:
            instance = self._public(server)
            if instance is None or instance.pool_id != pool_id:
                continue
            if instance.status is CloudStatus.ERROR and is_quota_fault(server.fault):
                # Refused by Nova's quota recheck after a racing create: it never ran, and it
                # counts against the quota until it is gone.
                self._delete_quietly(server)
            listed.append(instance)
        return CloudSnapshot(self.name, self.clock.now(), tuple(listed), self.quota())

    def create(self, spec: InstanceSpec) -> CloudInstance:
        catalog = self._catalog_now()
        flavor = catalog.flavors.get(spec.flavor.name)
        if flavor is None:
            catalog = self._catalog_now(refresh=True)
            flavor = catalog.flavors.get(spec.flavor.name)
        if flavor is None:
            raise PermanentError(f"{self.name}: the cloud offers no flavor {spec.flavor.name!r}")
        # Nova allows two servers with one name: a create asked again looks for the first one.
        existing = (
            [] if spec.never_asked else self._read("look up server", lambda: self._find(spec.id))
        )
        if existing:
            instance = self._public(existing[0])
            if instance is not None:
                return instance
        attrs = self._server_attrs(spec, flavor.id, catalog)
        confirm = self._count_create(spec.flavor)
        server = self._call("create server", lambda: self._conn().compute.create_server(**attrs))
        if not confirm:  # accepted (202); its status comes with the next listing
            return self._accepted(spec)
        instance = self._public(self._confirm(spec, server))
        if instance is None:
            raise PermanentError(f"{self.name}: server {spec.id} vanished right after its create")
        return instance

    def _server_attrs(
        self, spec: InstanceSpec, flavor_id: str, catalog: _Catalog
    ) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "name": spec.id,
            "flavor_id": flavor_id,
            "image_id": catalog.image_id,
            "metadata": {
                POOL_KEY: spec.pool_id,
                INSTANCE_KEY: spec.id,
                CLOUD_KEY: self.name,
                FLAVOR_KEY: spec.flavor.name,
            },
            "networks": [{"uuid": catalog.network_id}] if catalog.network_id else "auto",
        }
        if spec.worker is not None:
            user_data = render_cloud_init(spec.worker).encode()
            attrs["user_data"] = base64.b64encode(user_data).decode()
        if self.settings.security_groups:
            attrs["security_groups"] = [{"name": g} for g in self.settings.security_groups]
        if self.settings.key_name:
            attrs["key_name"] = self.settings.key_name
        if self.settings.availability_zone:
            attrs["availability_zone"] = self.settings.availability_zone
        return attrs

    def _accepted(self, spec: InstanceSpec) -> CloudInstance:
        return CloudInstance(
            id=spec.id,
            cloud=self.name,
            flavor=spec.flavor.name,
            status=CloudStatus.BUILD,
            created_at=self.clock.now(),
            pool_id=spec.pool_id,
        )

    def _count_create(self, flavor: Flavor) -> bool:
        """Count a create against the headroom; whether it must be read back (near the quota)."""
        with self._lock:
            self._room = room_after(self._room, flavor)
            return near_quota(self._room, flavor, self.settings.create_confirm_margin)

    def _confirm(self, spec: InstanceSpec, server: Any) -> Any:
        """Wait briefly until Nova has scheduled the server (past its quota recheck): a server
        refused there is deleted and reported as QuotaExceeded, not left to fail its boot."""
        steps = int(self.settings.create_confirm_seconds / _CONFIRM_STEP)
        conn = self._conn()
        server_id = server.id
        # The create's answer carries no status: Nova's own view comes from a GET.
        server = self._read("confirm create", lambda: conn.compute.get_server(server_id))
        for _ in range(steps):
            task = getattr(server, "task_state", None)
            if server.status != "BUILD" or (task is not None and task != "scheduling"):
                break
            self._wait(_CONFIRM_STEP)
            server = self._read("confirm create", lambda: conn.compute.get_server(server_id))
        if server.status == "ERROR" and is_quota_fault(server.fault):
            self._delete_quietly(server)
            raise QuotaExceeded(f"{self.name}: {self._redact(fault_text(server.fault))}")
        return server

    def _find(self, instance_id: str) -> list[Any]:
        return [s for s in self._servers(f"^{instance_id}$") if self._ours(s)]

    def _delete_quietly(self, server: Any) -> None:
        try:
            self._conn().compute.delete_server(server.id, ignore_missing=True)
        except Exception as exc:  # asked again at the next listing or by the controller
            log.warning(
                "%s: deleting %s failed: %s", self.name, server.name, self._redact(str(exc))
            )

    def delete(self, instance_id: str) -> None:
        servers = self._read("look up server", lambda: self._find(instance_id))
        for server in servers:  # Nova allows two servers with one name: delete every one
            self._delete(server.id)

    def _delete(self, server_id: str) -> None:
        self._call(
            "delete server",
            lambda: self._conn().compute.delete_server(server_id, ignore_missing=True),
        )

    def flavors(self) -> tuple[Flavor, ...]:
        """The cloud's own flavors (cores and memory as Nova says), priced from the config."""
        offered = self._catalog_now(refresh=True).flavors
        out: list[Flavor] = []
        for name, flavor in offered.items():
            price = self._prices.get(name)
            out.append(
                Flavor(
                    name,
                    int(flavor.vcpus),
                    int(flavor.ram),
                    int(flavor.disk or 0),
                    price.gpus if price else 0,
                    price.price_per_hour if price else 0.0,
                )
            )
        return tuple(out)

    def quota(self) -> Quota:
        """Headroom from the compute limits; unknown (no creates this cycle) if unreadable."""
        try:
            limits = self._read("read limits", lambda: self._conn().compute.get_limits())
        except BurstingError as exc:
            log.warning("%s: quota unknown: %s", self.name, exc)
            with self._lock:
                self._room = Quota.unknown()
            return Quota.unknown()
        quota = quota_from_limits(limits.absolute)
        with self._lock:
            self._room = quota
        return quota


def _property(image: Any, key: str) -> str | None:
    properties = getattr(image, "properties", None) or {}
    value = properties.get(key, getattr(image, key, None))
    return None if value is None else str(value)


# ----- wiring -----
def connection_factory(config: OpenStackCloud) -> tuple[ConnectionFactory, Redactor]:
    """Resolve the clouds.yaml entry now (a missing file or entry is a config error at start),
    and connect lazily: a cloud that is down at start is retried at each cycle."""
    import openstack
    from openstack import exceptions as sdk
    from openstack.config import OpenStackConfig

    settings = config.openstack
    files = [str(settings.clouds_yaml)] if settings.clouds_yaml else None
    where = "clouds[].openstack.cloud"
    try:
        if settings.clouds_yaml is not None and not settings.clouds_yaml.is_file():
            raise ConfigError(
                f"cloud {config.name}",
                [f"openstack.clouds_yaml: no file {settings.clouds_yaml}; fix the path"],
            )
        # An explicit file wins; otherwise the usual lookup, OS_CLIENT_CONFIG_FILE first.
        loader = OpenStackConfig(config_files=files, load_envvars=files is None)
        region = loader.get_one(
            cloud=settings.cloud,
            region_name=settings.region,
            api_timeout=config.call_timeout_seconds,
        )
    except sdk.ConfigException as exc:
        raise ConfigError(
            f"cloud {config.name}",
            [
                f"{where}: {settings.cloud!r} cannot be loaded ({exc}); add it to clouds.yaml "
                "(OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/clouds.yaml) or set "
                "openstack.clouds_yaml"
            ],
        ) from None
    redact = Redactor.for_auth(dict(region.config.get("auth") or {}))

    def connect() -> Connection:
        conn: Connection = openstack.connection.Connection(config=region)
        return conn

    return connect, redact


def _build(config: CloudConfig, context: ProviderContext) -> CloudProvider:
    if not isinstance(config, OpenStackCloud):
        raise PermanentError(f"cloud {config.name}: not an OpenStack cloud config")
    connect, redact = connection_factory(config)
    return OpenStackProvider(config, connect, redact, clock=context.clock)


CLOUD_TYPE = CloudType(config_model=OpenStackCloud, build=_build)
