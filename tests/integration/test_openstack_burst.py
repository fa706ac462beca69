"""The burst controller against real OpenStack (devcloud) and the real personal HTCondor pool.

devcloud's two projects are two clouds: "private" (free, a quota of 4 instances) and "public"
(priced, larger). Servers are real Nova servers; devcloud's hypervisor boots each ACTIVE one as
a container node configured only by its user-data, which joins the pool over the network.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bursting.clock import SystemClock
from bursting.clouds.base import CloudProvider, ProviderContext
from bursting.clouds.registry import cloud_type
from bursting.config import Config, parse_config
from bursting.controller import Controller
from bursting.model import InstanceState, JobState
from bursting.pool.htcondor import HTCondorPool
from bursting.store import open_store
from tests.integration.leftover_servers import cleaned_after, delete_servers
from tests.integration.test_htcondor_pool import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PRIVATE_QUOTA = 4


def os_cloud(
    name: str, entry: str, priority: int, price: float, clouds_yaml: Path
) -> dict[str, Any]:
    return {
        "name": name,
        "type": "openstack",
        "priority": priority,
        "max_instances": 8,
        "max_concurrent_boots": 8,
        "call_timeout_seconds": 15,
        "flavors": [
            {
                "name": "w1.small",
                "cpus": 1,
                "memory_mb": 1024,
                "disk_gb": 2,
                "price_per_hour": price,
            }
        ],
        "openstack": {
            "cloud": entry,
            "clouds_yaml": str(clouds_yaml),
            "image": "bursting-worker",
            "network": "bursting-net",
            "security_groups": ["bursting-worker"],
        },
    }


def make_config(tmp: Path, clouds_yaml: Path) -> Config:
    from bursting.devcloud import PRIVATE_CLOUD, PUBLIC_CLOUD

    return parse_config(
        {
            "pool": {"id": f"os{uuid.uuid4().hex[:6]}"},
            "workers": {"idle_shutdown_seconds": 120},
            "clouds": [
                os_cloud("private", PRIVATE_CLOUD, 1, 0.0, clouds_yaml),
                os_cloud("public", PUBLIC_CLOUD, 5, 0.1, clouds_yaml),
            ],
            "policy": {
                # Short cycles keep the test quick; the race is set up at the first create.
                "interval_seconds": 4,
                "min_idle_seconds": 0,
                "idle_seconds": 6,
                "boot_timeout_seconds": 60,
                "join_timeout_seconds": 90,
                "missing_cycles_before_gone": 3,
                "orphan_grace_seconds": 30,
                "backoff": {"initial_seconds": 10, "max_seconds": 30},
            },
            "store": {"url": f"sqlite:///{tmp}/state.db"},
        }
    )


class Running:
    """A controller thread over the real pool and devcloud's two projects."""

    def __init__(self, config: Config, wrap: dict[str, Any] | None = None) -> None:
        self.config = config
        clock = SystemClock()
        self.clouds: dict[str, CloudProvider] = {
            c.name: cloud_type(c.type).build(c, ProviderContext(clock, config.pool.id))
            for c in config.clouds
        }
        for name, wrapper in (wrap or {}).items():
            self.clouds[name] = wrapper(self.clouds[name])
        self.controller = Controller(
            config, HTCondorPool(config.pool), self.clouds, open_store(config.store.url), clock
        )
        self.controller.start()
        self.thread = threading.Thread(target=self.controller.run_forever, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stopping.set()
        self.thread.join(timeout=60)
        self.controller.close()

    def all(self) -> list[Any]:
        return self.controller.store.instances(include_gone=True)


class Servers:
    """Nova as the admin sees it: this test's servers in either project, whatever their state."""

    def __init__(self, admin: Any, pool_id: str) -> None:
        self.admin = admin
        self.pool_id = pool_id
        self.max_seen: dict[str, int] = {"private": 0, "public": 0}
        self.errors_seen: set[str] = set()

    def now(self) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {"private": [], "public": []}
        for server in self.admin.compute.servers(
            details=True, all_projects=True, name=f"^{self.pool_id}-"
        ):
            cloud = (server.metadata or {}).get("bursting_cloud")
            if cloud in found:
                found[cloud].append(server)
                if server.status == "ERROR":
                    self.errors_seen.add(server.id)
        for cloud, servers in found.items():
            self.max_seen[cloud] = max(self.max_seen[cloud], len(servers))
        return found

    def count(self) -> int:
        return sum(len(v) for v in self.now().values())


# Every pool id here is "os" and six hex digits (make_config).
MY_SERVERS = "^os[0-9a-f]{6}-"


@pytest.fixture
def admin(devcloud: Any) -> Iterator[Any]:
    """The admin's connection; whatever servers the test left (it failed mid-burst) deleted."""
    yield from cleaned_after(devcloud, MY_SERVERS)


@pytest.fixture
def private_project(devcloud: Any, admin: Any) -> Iterator[Any]:
    """The private project's connection (as its own user), its instance quota set to 4."""
    from bursting.devcloud import PRIVATE_CLOUD, connect

    user = connect(devcloud.clouds_yaml, PRIVATE_CLOUD)
    before = admin.compute.get_quota_set(user.current_project_id)
    admin.compute.update_quota_set(user.current_project_id, instances=PRIVATE_QUOTA)
    yield user
    delete_servers(admin, MY_SERVERS)  # a lower quota than the servers left is refused
    admin.compute.update_quota_set(user.current_project_id, instances=before.instances)


def submit(htcondor: HTCondorPool, job_dir: Path, count: int, seconds: int) -> int:
    return htcondor.submit(
        f"executable = /bin/sleep\narguments = {seconds}\ninitialdir = {job_dir}\n"
        "request_cpus = 1\nrequest_memory = 128\nrequest_disk = 1024\n"
        f"queue {count}\n"
    )


class OtherTenant:
    """Someone else in the private project: just before the controller's first create it
    creates two servers back to back, so the creates the controller planned from its listing's
    headroom meet Nova's quota, as a refusal (403) or as a server put in ERROR by Nova's quota
    recheck (a racing create): both must end as QuotaExceeded and nothing left behind. (Firing
    at the first create, not the first listing, makes the race independent of when the jobs
    first show up in the queue.)"""

    def __init__(self, user: Any, image_id: str, flavor_id: str, network_id: str) -> None:
        self.user = user
        self.attrs = {"image_id": image_id, "flavor_id": flavor_id}
        self.attrs["networks"] = [{"uuid": network_id}]  # type: ignore[assignment]
        self.servers: list[Any] = []
        self.fired = threading.Event()
        self.lock = threading.Lock()

    def wrap(self, provider: CloudProvider) -> CloudProvider:
        tenant = self

        class Raced:
            name = provider.name

            def create(self, spec: Any) -> Any:
                with tenant.lock:  # the controller's other creates wait for the tenant's
                    if not tenant.fired.is_set():
                        tenant.take(2)
                        tenant.fired.set()
                return provider.create(spec)

            def __getattr__(self, attr: str) -> Any:
                return getattr(provider, attr)

        return Raced()  # type: ignore[return-value]

    def take(self, count: int) -> None:
        for index in range(count):
            server = self.user.compute.create_server(
                name=f"other-tenant-{uuid.uuid4().hex[:6]}-{index}", **self.attrs
            )
            self.servers.append(server)

    def leave(self) -> None:
        for server in self.servers:
            self.user.compute.delete_server(server.id, ignore_missing=True)
        for server in self.servers:
            self.user.compute.wait_for_delete(server, wait=60, interval=0.5)


def test_a_burst_fills_the_private_quota_overflows_to_public_and_leaves_nothing(
    devcloud: Any,
    devpool: Any,
    htcondor: HTCondorPool,
    job_dir: Path,
    tmp_path: Path,
    admin: Any,
    private_project: Any,
) -> None:
    config = make_config(tmp_path, Path(devcloud.clouds_yaml))
    image = private_project.image.find_image("bursting-worker")
    flavor = private_project.compute.find_flavor("w1.small")
    network = private_project.network.find_network("bursting-net")
    tenant = OtherTenant(private_project, image.id, flavor.id, network.id)
    servers = Servers(admin, config.pool.id)
    cluster = submit(htcondor, job_dir, 10, 25)
    try:
        with Running(config, wrap={"private": tenant.wrap}) as running:
            wait_for("the other tenant's creates", tenant.fired.is_set, timeout=60, every=0.2)
            wait_for(
                "overflow to public",
                lambda: servers.now()["public"],
                timeout=120,
                every=0.5,
            )
            wait_for(
                "every job done",
                lambda: servers.now() is not None and htcondor.job_status(cluster).done,
                timeout=420,
                every=2,
            )
            wait_for("every server deleted", lambda: servers.count() == 0, timeout=240, every=1)
            wait_for(
                "the store sees every instance gone",
                lambda: all(r.state is InstanceState.GONE for r in running.all()),
                timeout=60,
                every=1,
            )
            records = running.all()
            # Refused with a 403, or put in ERROR by Nova's recheck and deleted: either way the
            # instance's history names the quota (its last reason may be a later step's).
            reasons = {
                r.id: [h[3] for h in running.controller.store.history(r.id)] for r in records
            }
    finally:
        tenant.leave()
    jobs = htcondor.job_status(cluster).jobs
    assert all(j.state is JobState.COMPLETED and j.exit_code == 0 for j in jobs), jobs
    assert servers.max_seen["private"] <= PRIVATE_QUOTA, servers.max_seen
    assert servers.max_seen["public"] >= 1
    refused = [i for i, said in reasons.items() if any("QuotaExceeded" in r for r in said)]
    assert refused, "the other tenant's instances made a planned create meet Nova's quota"


def test_a_public_api_outage_mid_burst_deletes_nothing_and_public_comes_back(
    devcloud: Any,
    devpool: Any,
    htcondor: HTCondorPool,
    job_dir: Path,
    tmp_path: Path,
    admin: Any,
    private_project: Any,
) -> None:
    config = make_config(tmp_path, Path(devcloud.clouds_yaml))
    servers = Servers(admin, config.pool.id)
    first = submit(htcondor, job_dir, 8, 60)
    with Running(config) as running:

        def public_busy() -> bool:
            public = servers.now()["public"]
            busy = {w.instance_id for w in htcondor.workers() if w.running_jobs}
            return len(public) >= 2 and {s.name for s in public} <= busy

        wait_for("public workers running jobs", public_busy, timeout=240, every=1)
        before = {s.id for s in servers.now()["public"]}
        devcloud.stop_service("nova-api-public")
        try:
            reads = wait_for(
                "a cycle that could not read the public cloud",
                lambda: (
                    (report := running.controller.last) is not None
                    and not report.reads["public"].ok
                    and report.reads
                ),
                timeout=60,
                every=0.5,
            )
            assert reads["private"].ok, "the private cloud keeps being read"
            for _ in range(10):  # several cycles on the strength of failed public listings
                assert {s.id for s in servers.now()["public"]} == before, "nothing deleted"
                report = running.controller.last
                assert report is not None and report.reads["private"].ok
                time.sleep(2)
            gone = [
                i
                for i in running.all()
                if i.cloud == "public" and i.state in (InstanceState.GONE, InstanceState.DELETING)
            ]
            assert not gone, f"public instances given up during the outage: {gone}"
        finally:
            devcloud.start_service("nova-api-public")
        second = submit(htcondor, job_dir, 6, 20)
        wait_for(
            "new public servers for the demand that came during and after the outage",
            lambda: {s.id for s in servers.now()["public"]} - before,
            timeout=240,
            every=1,
        )
        wait_for(
            "every job done",
            lambda: htcondor.job_status(first).done and htcondor.job_status(second).done,
            timeout=600,
            every=2,
        )
        wait_for("every server deleted", lambda: servers.count() == 0, timeout=300, every=1)
    for cluster in (first, second):
        jobs = htcondor.job_status(cluster).jobs
        assert all(j.state is JobState.COMPLETED and j.exit_code == 0 for j in jobs), jobs
