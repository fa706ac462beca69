"""How fast the controller ramps a burst onto OpenStack, against plain openstacksdk scripts.

Against devcloud's public project (real Nova, Keystone, Neutron, Glance; the hypervisor stand-in
boots each ACTIVE server as an execute node that joins the personal pool), in one run:
- loop: a plain sequential script, create a server and wait for it ACTIVE, then the next (the
  baseline);
- limit: the fastest plain script, every create sent first, then all awaited (what this Nova
  can do at best);
- controller: N idle jobs queued, the burst controller plans and creates the servers.
Each reports the time from its first call to N servers ACTIVE and to N workers joined the pool
(the plain scripts' servers carry the same worker user-data the controller renders).

    .venv/bin/python bench/openstack_ramp.py [--servers 50]

Goals: controller ACTIVE >= 1.8x faster than the loop, and within 1.2x of the limit. Needs root;
starts the personal pool and devcloud if they are not running (and leaves them as found).
"""

from __future__ import annotations

import argparse
import base64
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bursting.config import parse_config
from bursting.contextualize import render_cloud_init
from bursting.controller import Controller
from bursting.devcloud import ADMIN_CLOUD, PUBLIC_CLOUD, DevCloud, connect
from bursting.devcloud.hypervisor import NODE_PREFIX
from bursting.devpool import DevPool
from bursting.devpool import condor_config as cc
from bursting.devpool.containers import ContainerNodes
from bursting.image import ensure_image
from bursting.model import Flavor, Secret, WorkerSpec
from bursting.pool.htcondor import HTCondorPool
from bursting.runtime import build_controller

FLAVOR = Flavor("w1.small", 1, 1024, 2)
SCRATCH = Path("/var/tmp/bursting/bench")


class Watch:
    """Polls Nova (admin) and the collector until n servers are ACTIVE and n workers joined."""

    def __init__(self, admin: Any, htcondor: HTCondorPool, pool_id: str, n: int) -> None:
        self.admin, self.htcondor, self.pool_id, self.n = admin, htcondor, pool_id, n

    def active(self) -> int:
        servers = self.admin.compute.servers(
            details=True, all_projects=True, name=f"^{self.pool_id}-"
        )
        return sum(1 for s in servers if s.status == "ACTIVE")

    def joined(self) -> int:
        return sum(1 for w in self.htcondor.workers() if w.pool_id == self.pool_id)

    def until(self, began: float, timeout: float = 900) -> tuple[float, float]:
        to_active = to_joined = None
        while time.monotonic() - began < timeout:
            if to_active is None and self.active() >= self.n:
                to_active = time.monotonic() - began
            if to_active is not None and self.joined() >= self.n:
                to_joined = time.monotonic() - began
                return to_active, to_joined
            time.sleep(0.25)
        raise SystemExit(f"{self.pool_id}: not {self.n} ACTIVE and joined in {timeout:.0f}s")


class Plain:
    """The plain scripts: openstacksdk as its users call it, nothing of the controller."""

    def __init__(self, user: Any, devpool: DevPool, pool_id: str) -> None:
        self.user = user
        self.image = user.image.find_image("bursting-worker").id
        self.flavor = user.compute.find_flavor(FLAVOR.name).id
        self.network = user.network.find_network("bursting-net").id
        self.token = Secret(Path(devpool.worker_token_file).read_text().strip())
        self.pool_id = pool_id

    def create(self, index: int) -> Any:
        instance_id = f"{self.pool_id}-public-{index:04d}"
        worker = WorkerSpec(
            self.pool_id,
            instance_id,
            "public",
            FLAVOR,
            cc.COLLECTOR,
            self.token,
            idle_shutdown_seconds=600,
        )
        return self.user.compute.create_server(
            name=instance_id,
            flavor_id=self.flavor,
            image_id=self.image,
            networks=[{"uuid": self.network}],
            user_data=base64.b64encode(render_cloud_init(worker).encode()).decode(),
            metadata={"bursting_pool": self.pool_id, "bursting_cloud": "public"},
        )

    def wait(self, server: Any) -> None:
        self.user.compute.wait_for_server(server, status="ACTIVE", wait=600, interval=0.5)

    def loop(self, n: int) -> None:
        for index in range(n):
            self.wait(self.create(index))

    def all_then_wait(self, n: int) -> None:
        servers = [self.create(index) for index in range(n)]
        for server in servers:
            self.wait(server)


def clean(admin: Any, pool_id: str, settle: float = 0.0) -> None:
    """Delete every server of this run and wait until Nova has none left; with `settle`, until
    none has appeared for that long (creates still in flight when a controller stops). Then
    until the hypervisor has stopped every node it booted for them: fifty nodes shutting down
    would otherwise load the machine during the next run."""
    quiet_since = time.monotonic()
    while True:
        servers = list(admin.compute.servers(details=True, all_projects=True, name=f"^{pool_id}-"))
        for server in servers:
            admin.compute.delete_server(server.id, ignore_missing=True)
        for server in servers:
            admin.compute.wait_for_delete(server, wait=300, interval=0.5)
        if servers:
            quiet_since = time.monotonic()
        if time.monotonic() - quiet_since >= settle:
            break
        time.sleep(1)
    nodes = ContainerNodes(lambda: True)
    deadline = time.monotonic() + 300
    while any(name.startswith(NODE_PREFIX) for name in nodes.node_names()):
        if time.monotonic() > deadline:
            raise SystemExit("the hypervisor did not stop the deleted servers' nodes in 300 s")
        time.sleep(2)


def wait_usage_released(clouds_yaml: Path, timeout: float = 300) -> None:
    """Nova counts a deleted server against the quota a while longer: each run starts from a
    project whose usage is back to zero, so no run inherits the previous one's deletes."""
    user = connect(clouds_yaml, PUBLIC_CLOUD)
    deadline = time.monotonic() + timeout
    while user.compute.get_limits().absolute.instances_used > 0:
        if time.monotonic() > deadline:
            raise SystemExit("the public project's instance usage did not return to 0")
        time.sleep(2)


def plain_run(
    name: str, n: int, devcloud: DevCloud, devpool: DevPool, script: Callable[[Plain, int], None]
) -> tuple[float, float]:
    wait_usage_released(devcloud.clouds_yaml)
    admin = connect(devcloud.clouds_yaml, ADMIN_CLOUD)
    pool_id = f"bench{name}{uuid.uuid4().hex[:4]}"
    plain = Plain(connect(devcloud.clouds_yaml, PUBLIC_CLOUD), devpool, pool_id)
    watch = Watch(admin, HTCondorPool.for_devpool(devpool.token_dir), pool_id, n)
    began = time.monotonic()
    try:
        thread = threading.Thread(target=script, args=(plain, n), daemon=True)
        thread.start()
        return watch.until(began)
    finally:
        clean(admin, pool_id)


def controller_run(n: int, devcloud: DevCloud, devpool: DevPool) -> tuple[float, float]:
    wait_usage_released(devcloud.clouds_yaml)
    pool_id = f"benchctl{uuid.uuid4().hex[:4]}"
    SCRATCH.mkdir(parents=True, exist_ok=True)
    config = parse_config(
        {
            "pool": {"id": pool_id},
            "workers": {"idle_shutdown_seconds": 600},
            "clouds": [
                {
                    "name": "public",
                    "type": "openstack",
                    "max_instances": n,
                    "max_concurrent_boots": n,
                    "flavors": [{"name": FLAVOR.name, "cpus": 1, "memory_mb": 1024, "disk_gb": 2}],
                    "openstack": {
                        "cloud": PUBLIC_CLOUD,
                        "clouds_yaml": str(devcloud.clouds_yaml),
                        "image": "bursting-worker",
                        "network": "bursting-net",
                    },
                }
            ],
            # The controller's defaults otherwise: 8 cloud calls in flight at most.
            "policy": {
                "interval_seconds": 10,
                "min_idle_seconds": 0,
                "boot_timeout_seconds": 600,
                "join_timeout_seconds": 600,
            },
            "store": {"url": f"sqlite:///{SCRATCH}/{pool_id}.db"},
        }
    )
    htcondor = HTCondorPool.for_devpool(devpool.token_dir)
    admin = connect(devcloud.clouds_yaml, ADMIN_CLOUD)
    cluster = htcondor.submit(
        "executable = /bin/sleep\narguments = 600\n"
        f"request_cpus = 1\nrequest_memory = 128\nrequest_disk = 1024\nqueue {n}\n"
    )
    controller: Controller = build_controller(config)
    controller.start()
    thread = threading.Thread(target=controller.run_forever, daemon=True)
    began = time.monotonic()
    thread.start()
    try:
        return Watch(admin, htcondor, pool_id, n).until(began)
    finally:
        controller.stopping.set()
        thread.join(timeout=120)
        controller.close()
        htcondor.remove(cluster)
        clean(admin, pool_id, settle=20)


def restore_quota(admin: Any, project: str, quota: Any) -> None:
    """Nova refuses a quota below what is still in use: retried while deletes finish."""
    deadline = time.monotonic() + 300
    while True:
        try:
            admin.compute.update_quota_set(
                project, instances=quota.instances, cores=quota.cores, ram=quota.ram
            )
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", type=int, default=50)
    args = parser.parse_args()
    n = args.servers
    ensure_image(log=print)
    devpool = DevPool(log=print)
    pool_was_up = devpool.running()
    devpool.up()
    devcloud = DevCloud(log=print)
    cloud_was_up = devcloud.running()
    devcloud.up()
    admin = connect(devcloud.clouds_yaml, ADMIN_CLOUD)
    project = connect(devcloud.clouds_yaml, PUBLIC_CLOUD).current_project_id
    quota = admin.compute.get_quota_set(project)
    admin.compute.update_quota_set(project, instances=n + 5, cores=n + 5, ram=(n + 5) * 1024)
    results: dict[str, tuple[float, float]] = {}
    runs: dict[str, Callable[[], tuple[float, float]]] = {
        "loop": lambda: plain_run("loop", n, devcloud, devpool, Plain.loop),
        "limit": lambda: plain_run("all", n, devcloud, devpool, Plain.all_then_wait),
        "controller": lambda: controller_run(n, devcloud, devpool),
    }
    try:
        for name, run in runs.items():
            results[name] = run()
            print(f"{name}: {results[name][0]:.1f}s to ACTIVE, {results[name][1]:.1f}s to joined")
    finally:
        restore_quota(admin, project, quota)
        if not cloud_was_up:
            devcloud.down()
        if not pool_was_up:
            devpool.down()
    print(f"\n{n} servers on devcloud's public project:")
    print(f"{'':12}{'to ACTIVE':>12}{'to joined':>12}")
    for name, (active, joined) in results.items():
        print(f"{name:12}{active:11.1f}s{joined:11.1f}s")
    loop, limit, ctl = results["loop"], results["limit"], results["controller"]
    print(
        f"\ncontroller vs loop:  {loop[0] / ctl[0]:.2f}x faster to ACTIVE (goal >= 1.8), "
        f"{loop[1] / ctl[1]:.2f}x to joined"
    )
    print(
        f"controller vs limit: {ctl[0] / limit[0]:.2f}x the limit's time to ACTIVE "
        f"(goal <= 1.2), {ctl[1] / limit[1]:.2f}x to joined"
    )


if __name__ == "__main__":
    main()
