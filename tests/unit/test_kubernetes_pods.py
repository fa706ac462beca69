"""The Kubernetes worker's manifests and the meaning of its pod's state: pure functions, checked
against the official schemas (kubernetes-validate, strict) and for the rules the provider keeps:
no secret in a pod spec or ConfigMap, requests = limits, owner references, pending reasons."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from bursting.clouds.kubernetes_config import KubernetesCloud, KubernetesSettings
from bursting.clouds.kubernetes_errors import translate
from bursting.clouds.kubernetes_pods import (
    CLOUD_LABEL,
    INSTANCE_LABEL,
    POOL_LABEL,
    PodView,
    config_map_manifest,
    pod_manifest,
    pod_status,
    quota_headroom,
    selector,
)
from bursting.clouds.openstack_errors import Redactor
from bursting.config import parse_config
from bursting.errors import (
    AuthError,
    CloudUnavailable,
    ConfigError,
    PermanentError,
    QuotaExceeded,
    TransientError,
)
from bursting.model import CloudStatus, Flavor, InstanceSpec, Quota, Secret, WorkerSpec

TOKEN = "eyJhbGciOiJIUzI1NiJ9.pool-token-value"
ADMIN_KEY = "drain-signing-key-value"
FLAVOR = Flavor("pod-4c", 4, 8192, 0, 0, 0.2)


def settings(**extra: Any) -> KubernetesSettings:
    return KubernetesSettings.model_validate(
        {"image": "registry.example/bursting-worker:1", "token_secret": "pool-token", **extra}
    )


def spec(admin_key: bool = True, flavor: Flavor = FLAVOR) -> InstanceSpec:
    worker = WorkerSpec(
        "pv1a2b3c",
        "pv1a2b3c-k8s-0011aabb",
        "k8s",
        flavor,
        "cm.example.org:9618",
        Secret(TOKEN),
        admin_identity="bursting@pool",
        admin_key=Secret(ADMIN_KEY) if admin_key else None,
    )
    return InstanceSpec(worker.instance_id, worker.pool_id, "k8s", flavor, worker)


def valid(doc: dict[str, Any]) -> None:
    for version in ("1.25", latest_version()):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_pod_is_a_valid_pod_sized_exactly_by_its_flavor() -> None:
    pod = pod_manifest(spec(), settings())
    valid(pod)
    container = pod["spec"]["containers"][0]
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "8192Mi"}
    assert container["resources"]["limits"] == container["resources"]["requests"]
    assert "command" not in container  # the worker image's own condor_master
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 600
    assert pod["spec"]["automountServiceAccountToken"] is False
    gpu = pod_manifest(spec(flavor=Flavor("gpu", 8, 32768, 0, 1, 1.0)), settings())
    assert gpu["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_labels_find_the_pod_again_and_user_labels_cannot_override_them() -> None:
    pod = pod_manifest(spec(), settings(labels={POOL_LABEL: "other", "team": "atlas"}))
    labels = pod["metadata"]["labels"]
    assert labels[POOL_LABEL] == "pv1a2b3c" and labels[CLOUD_LABEL] == "k8s"
    assert labels[INSTANCE_LABEL] == pod["metadata"]["name"] == "pv1a2b3c-k8s-0011aabb"
    assert labels["team"] == "atlas"
    assert selector("pv1a2b3c", "k8s") == f"{POOL_LABEL}=pv1a2b3c,{CLOUD_LABEL}=k8s"


def test_no_secret_is_in_the_pod_or_config_map_only_secret_volumes() -> None:
    pod = pod_manifest(spec(), settings(token_key="tok"))
    config_map = config_map_manifest(spec(), settings(), "uid-1")
    for doc in (pod, config_map):
        text = json.dumps(doc)
        assert TOKEN not in text and ADMIN_KEY not in text
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    token = volumes["pool-token"]["secret"]
    assert token["secretName"] == "pool-token"
    assert token["items"] == [{"key": "tok", "path": "bursting-pool"}]
    assert token["defaultMode"] == 0o400
    assert volumes["admin-key"]["secret"]["items"][0]["path"] == "BURSTING_WORKERS"
    mounts = {m["name"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["pool-token"]["mountPath"] == "/etc/condor/tokens.d"
    assert all(m["readOnly"] for m in mounts.values())
    without = pod_manifest(spec(admin_key=False), settings())
    assert "admin-key" not in {v["name"] for v in without["spec"]["volumes"]}


def test_the_config_map_is_the_workers_condor_config_owned_by_its_pod() -> None:
    config_map = config_map_manifest(spec(), settings(), "uid-1")
    valid(config_map)
    (config,) = config_map["data"].values()
    assert 'BurstingInstance = "pv1a2b3c-k8s-0011aabb"' in config
    assert "NUM_CPUS = 4" in config and "MEMORY = 8192" in config
    assert config_map["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "pv1a2b3c-k8s-0011aabb", "uid": "uid-1"}
    ]


def test_placement_settings_reach_the_pod_spec() -> None:
    pod = pod_manifest(
        spec(),
        settings(
            node_selector={"node-role/burst": "true"},
            tolerations=[{"key": "burst", "operator": "Exists", "effect": "NoSchedule"}],
            priority_class="batch-low",
            image_pull_secrets=["registry"],
            service_account="worker",
        ),
    )
    valid(pod)
    assert pod["spec"]["nodeSelector"] == {"node-role/burst": "true"}
    assert pod["spec"]["tolerations"] == [
        {"key": "burst", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["spec"]["priorityClassName"] == "batch-low"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "registry"}]


def test_an_instance_id_that_is_no_kubernetes_name_is_refused() -> None:
    bad = InstanceSpec("Pool_1-k8s-x", "Pool_1", "k8s", FLAVOR, spec().worker)
    with pytest.raises(ValueError, match="not a Kubernetes name"):
        pod_manifest(bad, settings())


@pytest.mark.parametrize(
    ("view", "status", "fault"),
    [
        (PodView("Pending", False, 10), CloudStatus.BUILD, None),
        (PodView("Running", False, 10), CloudStatus.ACTIVE, None),
        (PodView("Running", True, 10), CloudStatus.DELETING, None),
        (
            PodView(
                "Pending", False, 301, unschedulable="0/3 nodes are available: Insufficient cpu"
            ),
            CloudStatus.ERROR,
            "Pending for 301s: Unschedulable: 0/3 nodes are available: Insufficient cpu",
        ),
        (
            PodView("Pending", False, 400, waiting=(("ImagePullBackOff", "pull denied"),)),
            CloudStatus.ERROR,
            "Pending for 400s: ImagePullBackOff: pull denied",
        ),
        (
            PodView("Succeeded", False, 5000, terminated=(("Completed", 0),)),
            CloudStatus.ERROR,
            "the worker's container ended: Completed (exit code 0)",
        ),
        (PodView("Unknown", False, 10), CloudStatus.ERROR, "pod phase Unknown"),
    ],
)
def test_pod_state_means(view: PodView, status: CloudStatus, fault: str | None) -> None:
    assert pod_status(view, pending_timeout=300) == (status, fault)


def test_headroom_is_the_tightest_quota_key_in_every_quota() -> None:
    quotas = [
        (
            {"requests.cpu": "10", "requests.memory": "64Gi", "pods": "20"},
            {"requests.cpu": "3500m", "requests.memory": "8Gi", "pods": "4"},
        ),
        ({"limits.cpu": "8"}, {"limits.cpu": "4"}),
    ]
    assert quota_headroom(quotas) == Quota(instances=16, cores=4, memory_mb=56 * 1024)
    assert quota_headroom([]) == Quota(instances=None, cores=None, memory_mb=None)
    assert quota_headroom([({"pods": "2"}, {"pods": "5"})]).instances == 0


class Refusal(Exception):
    """Shaped like kubernetes.client.ApiException: status, reason, a Status body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"({status})")
        self.status = status
        self.reason = "Refused"
        self.body = json.dumps({"kind": "Status", "status": "Failure", "message": message})
        self.headers = headers or {}


REDACT = Redactor(["sekret-api-token"])


@pytest.mark.parametrize(
    ("exc", "kind", "text"),
    [
        (
            Refusal(403, 'pods "p" is forbidden: exceeded quota: q, requested: cpu=4'),
            QuotaExceeded,
            "exceeded quota",
        ),
        (Refusal(403, "serviceaccount cannot create pods"), AuthError, "Role must grant"),
        (Refusal(401, "Unauthorized sekret-api-token"), AuthError, "credentials"),
        (Refusal(410, "too old resource version"), TransientError, "too old"),
        (Refusal(429, "slow down", {"Retry-After": "7"}), TransientError, "rate limited"),
        (Refusal(503, "etcd sekret-api-token"), CloudUnavailable, "server error 503"),
        (Refusal(422, 'Pod "p" is invalid'), PermanentError, "refused (422)"),
        (ConnectionRefusedError("connection refused"), CloudUnavailable, "API unreachable"),
    ],
)
def test_api_errors_translate_at_the_edge_without_secrets(
    exc: Exception, kind: type[Exception], text: str
) -> None:
    error = translate(exc, "k8s", "create pod", REDACT)
    assert type(error) is kind
    assert text in str(error) and "sekret-api-token" not in str(error)
    if isinstance(exc, Refusal) and exc.status == 429:
        assert isinstance(error, TransientError) and error.retry_after == 7.0


def cloud(**settings_: Any) -> dict[str, Any]:
    return {
        "name": "k8s",
        "type": "kubernetes",
        "flavors": [{"name": "pod-4c", "cpus": 4, "memory_mb": 8192}],
        "kubernetes": {"image": "w:1", "token_secret": "pool-token", **settings_},
    }


def test_the_config_names_the_field_and_the_fix() -> None:
    base = {"pool": {"collector": "127.0.0.1:9618"}}
    parsed = parse_config({**base, "clouds": [cloud(namespace="workers")]}, "c.yaml")
    assert isinstance(parsed.clouds[0], KubernetesCloud)
    with pytest.raises(ConfigError, match=r"kubernetes\.token_secret"):
        parse_config({**base, "clouds": [{**cloud(), "kubernetes": {"image": "w:1"}}]}, "c.yaml")
    with pytest.raises(ConfigError, match=r"kubernetes\.namespace"):
        parse_config({**base, "clouds": [cloud(namespace="Not_A_Namespace")]}, "c.yaml")
    with pytest.raises(ConfigError, match=r"kubernetes\.grace_period_seconds"):
        parse_config({**base, "clouds": [cloud(grace_period_seconds=-1)]}, "c.yaml")
