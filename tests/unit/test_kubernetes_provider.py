"""The Kubernetes provider through the real `kubernetes` client against the strict API stand-in:
what a worker pod carries and sees, pods that cannot start, crashes between the pod and its
ConfigMap, the pool token Secret, and the API's failures translated at the edge."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from bursting.clock import FakeClock
from bursting.clouds.base import ProviderContext
from bursting.clouds.kubernetes import KubernetesProvider
from bursting.clouds.kubernetes_pods import CONFIG_FILE
from bursting.clouds.registry import cloud_type
from bursting.errors import CloudUnavailable, PermanentError, TransientError
from bursting.model import CloudStatus, Flavor, InstanceSpec, Secret, WorkerSpec
from tests.kube.runners import SubprocessRunner
from tests.kube.standin import KubeStandIn, kube_client

NAMESPACE = "workers"
TOKEN = "pool-token-value-never-shown"
SMALL = Flavor("pod-1c", 1, 512)
LARGE = Flavor("pod-4c", 4, 4096)
WORKER_IMAGE = "localhost/bursting-worker:test"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def standin(tmp_path: Path, clock: FakeClock) -> Iterator[KubeStandIn]:
    runner = SubprocessRunner(tmp_path / "pods", images={WORKER_IMAGE: ["sleep", "3600"]})
    with KubeStandIn(tmp_path / "cluster", clock=clock.now, node_cpus=2, runner=runner) as kube:
        kube.create_namespace(NAMESPACE)
        core(kube).create_namespaced_secret(
            NAMESPACE,
            {
                "metadata": {"name": "pool-token"},
                "data": {
                    "token": base64.b64encode(TOKEN.encode()).decode(),
                    "admin-key": base64.b64encode(b"drain-key-value").decode(),
                },
            },
        )
        yield kube
        assert not kube.defects


def core(kube: KubeStandIn) -> Any:
    return kubernetes.client.CoreV1Api(kube_client(kube))


def provider(kube: KubeStandIn, clock: FakeClock, **settings: Any) -> KubernetesProvider:
    config = cloud_type("kubernetes").config_model.model_validate(
        {
            "name": "k8s",
            "type": "kubernetes",
            "call_timeout_seconds": settings.pop("call_timeout_seconds", 10),
            "flavors": [
                {"name": f.name, "cpus": f.cpus, "memory_mb": f.memory_mb} for f in (SMALL, LARGE)
            ],
            "kubernetes": {
                "kubeconfig": str(kube.kubeconfig),
                "namespace": NAMESPACE,
                "image": WORKER_IMAGE,
                "token_secret": "pool-token",
                "grace_period_seconds": 7,
                "pending_timeout_seconds": 60,
                **settings,
            },
        }
    )
    built = cloud_type("kubernetes").build(config, ProviderContext(clock, "pool1"))
    assert isinstance(built, KubernetesProvider)
    return built


def spec(flavor: Flavor = SMALL) -> InstanceSpec:
    instance_id = f"pool1-k8s-{uuid.uuid4().hex[:8]}"
    worker = WorkerSpec(
        "pool1",
        instance_id,
        "k8s",
        flavor,
        "cm.example.org:9618",
        Secret(TOKEN),
        admin_key=Secret("drain-key-value"),
    )
    return InstanceSpec(instance_id, "pool1", "k8s", flavor, worker)


def listed(cloud: KubernetesProvider, kube: KubeStandIn, wanted: str) -> Any:
    kube.sync()
    return cloud.list_instances("pool1").by_id()[wanted]


def test_the_worker_sees_its_config_and_token_as_files_and_the_api_never_holds_the_token(
    standin: KubeStandIn, clock: FakeClock
) -> None:
    cloud = provider(standin, clock)
    asked = spec()
    cloud.create(asked)
    assert listed(cloud, standin, asked.id).status is CloudStatus.ACTIVE
    stored = json.dumps(standin.objects("Pod", NAMESPACE) + standin.objects("ConfigMap", NAMESPACE))
    assert TOKEN not in stored and "drain-key-value" not in stored
    (root,) = (Path(standin.workdir).parent / "pods").glob(f"{NAMESPACE}_{asked.id}_*/startd")
    token = root / "etc/condor/tokens.d/bursting-pool"
    assert token.read_text() == TOKEN and token.stat().st_mode & 0o777 == 0o400
    config = (root / "etc/condor/config.d" / CONFIG_FILE).read_text()
    assert f'BurstingInstance = "{asked.id}"' in config


def test_a_pod_that_cannot_be_scheduled_fails_after_the_timeout_with_the_schedulers_reason(
    standin: KubeStandIn, clock: FakeClock
) -> None:
    cloud = provider(standin, clock)
    big = spec(LARGE)  # 4 cores on a 2-core node
    cloud.create(big)
    assert listed(cloud, standin, big.id).status is CloudStatus.BUILD
    clock.advance(61)
    failed = listed(cloud, standin, big.id)
    assert failed.status is CloudStatus.ERROR
    assert "Unschedulable" in failed.fault and "Insufficient cpu" in failed.fault
    assert "FailedScheduling" in failed.fault


def test_an_image_that_cannot_be_pulled_fails_after_the_timeout_with_the_pull_error(
    standin: KubeStandIn, clock: FakeClock
) -> None:
    cloud = provider(standin, clock, image="registry.example/no-such-image:1")
    asked = spec()
    cloud.create(asked)
    assert listed(cloud, standin, asked.id).status is CloudStatus.BUILD
    clock.advance(61)
    failed = listed(cloud, standin, asked.id)
    assert failed.status is CloudStatus.ERROR
    assert "ErrImagePull" in failed.fault or "ImagePullBackOff" in failed.fault


def test_a_crash_between_the_pod_and_its_config_map_is_repaired_by_asking_again(
    standin: KubeStandIn, clock: FakeClock
) -> None:
    cloud = provider(standin, clock)
    asked = spec()
    standin.fail_next("POST", "/configmaps", 503)
    with pytest.raises(CloudUnavailable, match="server error 503"):
        cloud.create(asked)
    assert [p["metadata"]["name"] for p in standin.objects("Pod", NAMESPACE)] == [asked.id]
    again = provider(standin, clock)  # a restarted controller retries its intent
    again.create(asked)
    assert len(standin.objects("Pod", NAMESPACE)) == 1
    (config_map,) = standin.objects("ConfigMap", NAMESPACE)
    (pod,) = standin.objects("Pod", NAMESPACE)
    assert config_map["metadata"]["ownerReferences"][0]["uid"] == pod["metadata"]["uid"]
    assert listed(again, standin, asked.id).status is CloudStatus.ACTIVE


def test_delete_gives_the_startd_its_grace_and_the_config_map_goes_with_the_pod(
    standin: KubeStandIn, clock: FakeClock
) -> None:
    cloud = provider(standin, clock)
    asked = spec()
    cloud.create(asked)
    listed(cloud, standin, asked.id)
    cloud.delete(asked.id)
    (deleted,) = standin.requests_matching("DELETE", f"/pods/{asked.id}")
    assert deleted.status == 200
    (terminating,) = standin.objects("Pod", NAMESPACE)
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 7
    stopped_by = time.monotonic() + 60  # the kubelet's SIGTERM, answered late on a loaded machine
    while standin.objects("Pod", NAMESPACE) and time.monotonic() < stopped_by:
        standin.sync()
        time.sleep(0.1)
    assert not standin.objects("Pod", NAMESPACE)
    assert not standin.objects("ConfigMap", NAMESPACE)
    cloud.delete(asked.id)  # gone already: not an error


def test_the_pool_token_secret_must_exist_and_hold_the_key_before_anything_is_created(
    standin: KubeStandIn, clock: FakeClock
) -> None:
    with pytest.raises(PermanentError, match="no Secret 'other-secret' in namespace workers"):
        provider(standin, clock, token_secret="other-secret").create(spec())
    with pytest.raises(PermanentError, match="has no key 'worker-token'"):
        provider(standin, clock, token_key="worker-token").create(spec())
    assert not standin.objects("Pod", NAMESPACE)


def test_a_pod_of_that_name_not_made_by_us_is_left_alone(
    standin: KubeStandIn, clock: FakeClock
) -> None:
    asked = spec()
    core(standin).create_namespaced_pod(
        NAMESPACE,
        {"metadata": {"name": asked.id}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    with pytest.raises(PermanentError, match="bursting did not create"):
        provider(standin, clock).create(asked)


def test_api_failures_are_unavailable_or_transient_never_an_empty_listing(
    standin: KubeStandIn, clock: FakeClock
) -> None:
    cloud = provider(standin, clock, call_timeout_seconds=1)
    standin.fail_next("GET", "/pods", 500)
    with pytest.raises(CloudUnavailable, match="server error 500"):
        cloud.list_instances("pool1")
    standin.fail_next("GET", "/pods", 410)
    with pytest.raises(TransientError, match="410"):
        cloud.list_instances("pool1")
    standin.freeze(4)
    with pytest.raises(CloudUnavailable, match="API unreachable"):
        cloud.list_instances("pool1")


def test_the_controller_deletes_a_pod_stuck_pending_and_backs_that_cloud_off(
    standin: KubeStandIn, clock: FakeClock
) -> None:
    from bursting.config import parse_config
    from bursting.controller import Controller
    from bursting.model import JobShape
    from bursting.store import open_store
    from bursting.workers import WorkerFactory
    from tests.fakes import FakePool

    cloud = provider(standin, clock)
    config = parse_config(
        {
            "pool": {"id": "pool1"},
            "workers": {
                "collector": "cm.example.org:9618",
                "token": {"env": "UNUSED"},
                "admin_key": None,
            },
            "clouds": [cloud.config.model_dump(mode="json")],
            "policy": {"min_idle_seconds": 0, "interval_seconds": 10},
            "store": {"url": "sqlite://"},
        }
    )
    pool = FakePool(clock, "pool1")
    pool.add_jobs(1, JobShape(4, 2048), duration=600)  # only the 4-core pod size fits it
    store = open_store(config.store.url)
    workers = WorkerFactory(config, token=Secret(TOKEN), admin_key=None)
    controller = Controller(config, pool, {"k8s": cloud}, store, clock, workers=workers)
    controller.run_once()
    (pod,) = standin.objects("Pod", NAMESPACE)
    standin.sync()
    clock.advance(61)  # past the pending timeout, well within the lifecycle's boot timeout
    controller.run_once()
    standin.sync()
    gone = [
        p
        for p in standin.objects("Pod", NAMESPACE)
        if p["metadata"]["name"] == pod["metadata"]["name"]
    ]
    assert not gone or gone[0]["metadata"].get("deletionTimestamp")
    assert ("k8s", "pod-4c") in store.backoffs()
    reasons = " ".join(reason for _, _, _, reason in store.history(pod["metadata"]["name"]))
    assert "Unschedulable" in reasons and "Insufficient cpu" in reasons, reasons
