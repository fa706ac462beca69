"""One controller, four kinds of cloud: the local cloud, devcloud's private and public OpenStack
projects, and a Kubernetes namespace (the strict API stand-in, whose node runs each pod from the
worker image with podman). A burst of jobs is planned across all four by priority and
max_instances, every cloud's workers join the real personal pool and run jobs, and when the queue
is empty every instance on every cloud is gone."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bursting.config import Config, parse_config
from bursting.model import InstanceState, JobState
from bursting.pool.htcondor import HTCondorPool
from tests.integration.test_htcondor_pool import wait_for
from tests.integration.test_openstack_burst import Running, os_cloud

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NAMESPACE = "workers"
ONE_CORE = {"name": "c1", "cpus": 1, "memory_mb": 1024, "disk_gb": 2}
CLOUDS = ("local", "private", "k8s", "public")


@pytest.fixture
def kube(tmp_path: Path, devpool: Any, worker_image: Any) -> Iterator[Any]:
    """The API stand-in with the pool's worker token (and drain key) in the workers' Secret."""
    import kubernetes

    from tests.kube.podman import WorkerImageRunner
    from tests.kube.standin import KubeStandIn, kube_client

    runner = WorkerImageRunner(tmp_path / "seeds")
    with KubeStandIn(tmp_path / "cluster", node_cpus=4, runner=runner) as standin:
        standin.create_namespace(NAMESPACE)
        data = {"token": Path(devpool.worker_token_file).read_bytes()}
        data["admin-key"] = Path(devpool.worker_admin_key_file).read_bytes()
        kubernetes.client.CoreV1Api(kube_client(standin)).create_namespaced_secret(
            NAMESPACE,
            {
                "metadata": {"name": "pool-token"},
                "data": {k: base64.b64encode(v.strip()).decode() for k, v in data.items()},
            },
        )
        yield standin
    assert not runner.leftovers(), "worker pods' containers left running"


def make_config(tmp: Path, clouds_yaml: Path, kube: Any, worker_image: Any) -> Config:
    from bursting.devcloud import PRIVATE_CLOUD, PUBLIC_CLOUD

    def one_each(entry: dict[str, Any], priority: int) -> dict[str, Any]:
        return {**entry, "priority": priority, "max_instances": 1, "max_concurrent_boots": 1}

    private = os_cloud("private", PRIVATE_CLOUD, 0, 0.0, clouds_yaml)
    public = os_cloud("public", PUBLIC_CLOUD, 0, 0.1, clouds_yaml)
    local = {
        "name": "local",
        "type": "local",
        "flavors": [ONE_CORE],
        "local": {"boot_delay_seconds": 1, "state_dir": str(tmp / "local")},
    }
    k8s = {
        "name": "k8s",
        "type": "kubernetes",
        "flavors": [ONE_CORE],
        "call_timeout_seconds": 15,
        "kubernetes": {
            "kubeconfig": str(kube.kubeconfig),
            "namespace": NAMESPACE,
            "image": worker_image.reference,
            "token_secret": "pool-token",
            "grace_period_seconds": 30,
        },
    }
    return parse_config(
        {
            "pool": {"id": f"hy{uuid.uuid4().hex[:6]}"},
            "workers": {"idle_shutdown_seconds": 120},
            "clouds": [
                one_each(local, 1),
                one_each(private, 2),
                one_each(k8s, 3),
                one_each(public, 4),
            ],
            "policy": {
                "interval_seconds": 4,
                "min_idle_seconds": 0,
                "idle_seconds": 6,
                "boot_timeout_seconds": 120,
                "join_timeout_seconds": 180,
                "missing_cycles_before_gone": 3,
                "orphan_grace_seconds": 60,
            },
            "store": {"url": f"sqlite:///{tmp}/state.db"},
        }
    )


def submit(htcondor: HTCondorPool, job_dir: Path, count: int, seconds: int) -> int:
    """Sleep jobs that record the burst instance they ran on (as campaign jobs do)."""
    return htcondor.submit(
        f"executable = /bin/sleep\narguments = {seconds}\ninitialdir = {job_dir}\n"
        "request_cpus = 1\nrequest_memory = 128\nrequest_disk = 1024\n"
        "job_machine_attrs = BurstingInstance BurstingCloud\n"
        f"queue {count}\n"
    )


def cloud_of(instance_id: str | None, pool_id: str) -> str | None:
    if not instance_id:
        return None
    return instance_id.removeprefix(f"{pool_id}-").rsplit("-", 1)[0]


def test_one_controller_bursts_onto_local_openstack_and_kubernetes_clouds_at_once(
    devcloud: Any,
    devpool: Any,
    htcondor: HTCondorPool,
    job_dir: Path,
    tmp_path: Path,
    kube: Any,
    worker_image: Any,
) -> None:
    config = make_config(tmp_path, Path(devcloud.clouds_yaml), kube, worker_image)
    pool_id = config.pool.id
    # Eight 40 s jobs, one core each, on four clouds allowed one 1-core worker each: every
    # cloud is needed, and each worker runs two jobs in turn.
    cluster = submit(htcondor, job_dir, 8, 40)
    with Running(config) as running:

        def joined() -> set[str]:
            return {
                cloud
                for w in htcondor.workers()
                if w.pool_id == pool_id and (cloud := cloud_of(w.instance_id, pool_id))
            }

        clouds = wait_for(
            "a worker of every cloud in the pool",
            lambda: (found := joined()) >= set(CLOUDS) and found,
            timeout=300,
            every=2,
        )
        wait_for("every job done", lambda: htcondor.job_status(cluster).done, timeout=420, every=2)
        try:
            wait_for(
                "every instance gone",
                lambda: all(r.state is InstanceState.GONE for r in running.all()),
                timeout=300,
                every=2,
            )
        except AssertionError:
            left = [(r.id, r.state.value, r.reason) for r in running.all()]
            raise AssertionError(
                f"instances not gone: {left}; pods: {kube.objects('Pod', NAMESPACE)}"
            ) from None
        records = running.all()
    assert clouds == set(CLOUDS)
    jobs = htcondor.job_status(cluster).jobs
    assert all(j.state is JobState.COMPLETED and j.exit_code == 0 for j in jobs), jobs
    ran_on = {cloud_of(j.instance, pool_id) for j in jobs}
    assert ran_on == set(CLOUDS), f"jobs ran on {ran_on}"
    assert {r.cloud for r in records} == set(CLOUDS)
    assert not kube.objects("Pod", NAMESPACE)  # the pods themselves are deleted, not just left
