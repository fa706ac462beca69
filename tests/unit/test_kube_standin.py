"""The Kubernetes API stand-in (tests/kube), driven only through the real kubernetes client:
each rule of a real API server the project relies on, with a test that fails without it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from bursting.clock import FakeClock
from tests.kube.standin import KubeStandIn, kube_client

NS = "default"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=datetime(2026, 1, 1, tzinfo=UTC).timestamp())


@pytest.fixture
def kube(tmp_path: Path, clock: FakeClock) -> Iterator[KubeStandIn]:
    with KubeStandIn(tmp_path, clock=clock.now, node_cpus=4, node_memory_mb=8192) as standin:
        yield standin
    assert standin.defects == []  # everything it stored passes the official schema


@pytest.fixture
def core(kube: KubeStandIn) -> client.CoreV1Api:
    return client.CoreV1Api(kube_client(kube))


@pytest.fixture
def leases(kube: KubeStandIn) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(kube_client(kube))


def refused(call: Callable[[], Any]) -> ApiException:
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value


def status_of(exc: ApiException) -> dict[str, Any]:
    import json

    body: dict[str, Any] = json.loads(exc.body)
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == exc.status
    return body


def raw(kube: KubeStandIn, method: str, path: str, body: Any) -> Any:
    """A request the client's own models would refuse to build (an unknown field, a wrong
    type), sent through the client's ApiClient so the server is what refuses it."""
    api = kube_client(kube)
    params = api.param_serialize(
        method=method,
        resource_path=path,
        body=body,
        auth_settings=["BearerToken"],
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
    )
    response = api.call_api(*params)
    response.read()
    return api.response_deserialize(response, {"2XX": "object"}).data


def config_map(name: str, labels: dict[str, str] | None = None, **data: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels), data=data or {"k": "v"}
    )


def until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll (the kubelet runs every 50 ms) until `predicate` is truthy; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s")
        time.sleep(interval)


# ---- connection -------------------------------------------------------------------------
def test_the_kubeconfig_names_the_standin_context_and_a_token_the_server_requires(
    kube: KubeStandIn,
) -> None:
    from kubernetes import config

    _contexts, active = config.list_kube_config_contexts(str(kube.kubeconfig))
    assert active["name"] == "standin" and active["context"]["namespace"] == "default"
    anonymous = client.Configuration()
    anonymous.host = kube.url
    exc = refused(lambda: client.CoreV1Api(client.ApiClient(anonymous)).list_namespace())
    assert exc.status == 401 and status_of(exc)["reason"] == "Unauthorized"
    assert [n.metadata.name for n in client.CoreV1Api(kube_client(kube)).list_namespace().items]


# ---- metadata, resourceVersion, conflicts -----------------------------------------------
def test_create_assigns_uid_creation_time_and_resource_version(
    core: client.CoreV1Api, clock: FakeClock
) -> None:
    made = core.create_namespaced_config_map(NS, config_map("a"))
    other = core.create_namespaced_config_map(NS, config_map("b"))
    assert made.metadata.uid and made.metadata.uid != other.metadata.uid
    assert made.metadata.creation_timestamp == datetime.fromtimestamp(clock.now(), UTC)
    assert int(other.metadata.resource_version) > int(made.metadata.resource_version)
    read = core.read_namespaced_config_map("a", NS)
    assert (read.metadata.uid, read.data) == (made.metadata.uid, {"k": "v"})


def test_duplicate_create_is_409_already_exists(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, config_map("a"))
    exc = refused(lambda: core.create_namespaced_config_map(NS, config_map("a")))
    body = status_of(exc)
    assert (exc.status, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'configmaps "a" already exists'
    assert body["details"] == {"name": "a", "kind": "configmaps"}


def test_update_with_a_stale_resource_version_is_409_conflict(core: client.CoreV1Api) -> None:
    first = core.create_namespaced_config_map(NS, config_map("a"))
    first.data = {"k": "second"}
    second = core.replace_namespaced_config_map("a", NS, first)
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    first.data = {"k": "stale"}  # still carries the first resourceVersion
    exc = refused(lambda: core.replace_namespaced_config_map("a", NS, first))
    assert (exc.status, status_of(exc)["reason"]) == (409, "Conflict")
    assert "the object has been modified" in status_of(exc)["message"]
    assert core.read_namespaced_config_map("a", NS).data == {"k": "second"}


def test_an_update_that_changes_nothing_keeps_the_resource_version(core: client.CoreV1Api) -> None:
    made = core.create_namespaced_config_map(NS, config_map("a"))
    again = core.replace_namespaced_config_map("a", NS, made)
    assert again.metadata.resource_version == made.metadata.resource_version


def test_missing_objects_are_404_with_the_servers_status(
    core: client.CoreV1Api, leases: client.CoordinationV1Api
) -> None:
    exc = refused(lambda: core.read_namespaced_pod("nope", NS))
    body = status_of(exc)
    assert (exc.status, body["reason"], body["message"]) == (
        404,
        "NotFound",
        'pods "nope" not found',
    )
    exc = refused(lambda: leases.read_namespaced_lease("nope", NS))
    assert status_of(exc)["message"] == 'leases.coordination.k8s.io "nope" not found'
    assert status_of(exc)["details"]["group"] == "coordination.k8s.io"
    exc = refused(lambda: core.create_namespaced_config_map("absent", config_map("a")))
    assert status_of(exc)["message"] == 'namespaces "absent" not found'
    exc = refused(
        lambda: core.replace_namespaced_secret(
            "nope", NS, client.V1Secret(metadata=client.V1ObjectMeta(name="nope"))
        )
    )
    assert exc.status == 404


# ---- schema validation ------------------------------------------------------------------
def test_a_body_failing_the_official_schema_is_422_invalid_naming_the_field(
    core: client.CoreV1Api, kube: KubeStandIn
) -> None:
    pods = f"/api/v1/namespaces/{NS}/pods"
    unknown = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "x", "imagePullPolcy": "Never"}]},
    }
    exc = refused(lambda: raw(kube, "POST", pods, unknown))
    body = status_of(exc)
    assert (exc.status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.containers[0].imagePullPolcy"
    assert body["message"].startswith('Pod "p" is invalid: ')
    wrong_type = {"metadata": {"name": "c"}, "data": {"k": 5}}
    exc = refused(lambda: raw(kube, "POST", f"/api/v1/namespaces/{NS}/configmaps", wrong_type))
    assert exc.status == 422 and status_of(exc)["details"]["causes"][0]["field"] == "data.k"
    no_name = {"metadata": {"name": "p"}, "spec": {"containers": [{"image": "x"}]}}
    exc = refused(lambda: raw(kube, "POST", pods, no_name))
    assert status_of(exc)["details"]["causes"][0] == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec.containers[0].name",
    }
    assert core.list_namespaced_pod(NS).items == []


def test_the_servers_own_validation_beyond_the_schema_is_422(core: client.CoreV1Api) -> None:
    exc = refused(lambda: core.create_namespaced_config_map(NS, config_map("Not_A_Name")))
    assert exc.status == 422 and "RFC 1123" in status_of(exc)["message"]
    no_image = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    exc = refused(lambda: core.create_namespaced_pod(NS, client.V1Pod.from_dict(no_image)))
    assert status_of(exc)["details"]["causes"][0]["field"] == "spec.containers[0].image"
    bad_secret = {"metadata": {"name": "s"}, "data": {"token": "not base64!"}}
    exc = refused(lambda: core.create_namespaced_secret(NS, client.V1Secret.from_dict(bad_secret)))
    assert exc.status == 422 and "illegal base64" in status_of(exc)["message"]


# ---- label and field selectors ----------------------------------------------------------
@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=worker", ["a", "b"]),
        ("app==worker,tier=gpu", ["b"]),
        ("tier!=gpu", ["a", "c"]),
        ("tier in (gpu, cpu)", ["b", "c"]),
        ("tier notin (gpu)", ["a", "c"]),
        ("tier", ["b", "c"]),
        ("!tier", ["a"]),
        ("app=worker,!tier", ["a"]),
    ],
)
def test_list_filters_by_label_selector(
    core: client.CoreV1Api, selector: str, expected: list[str]
) -> None:
    core.create_namespaced_config_map(NS, config_map("a", {"app": "worker"}))
    core.create_namespaced_config_map(NS, config_map("b", {"app": "worker", "tier": "gpu"}))
    core.create_namespaced_config_map(NS, config_map("c", {"app": "other", "tier": "cpu"}))
    found = core.list_namespaced_config_map(NS, label_selector=selector)
    assert sorted(c.metadata.name for c in found.items) == expected


def test_a_malformed_selector_is_400(core: client.CoreV1Api) -> None:
    exc = refused(lambda: core.list_namespaced_config_map(NS, label_selector="a in (b"))
    assert (exc.status, status_of(exc)["reason"]) == (400, "BadRequest")
    exc = refused(lambda: core.list_namespaced_pod(NS, field_selector="spec.nope=x"))
    assert exc.status == 400


def test_list_pages_with_limit_and_continue(core: client.CoreV1Api) -> None:
    for name in ("a", "b", "c"):
        core.create_namespaced_config_map(NS, config_map(name))
    first = core.list_namespaced_config_map(NS, limit=2)
    assert [c.metadata.name for c in first.items] == ["a", "b"]
    assert first.metadata.remaining_item_count == 1
    rest = core.list_namespaced_config_map(NS, limit=2, _continue=first.metadata.var_continue)
    assert [c.metadata.name for c in rest.items] == ["c"] and not rest.metadata.var_continue


# ---- kinds ------------------------------------------------------------------------------
def test_secrets_fold_string_data_into_base64_data(core: client.CoreV1Api) -> None:
    made = core.create_namespaced_secret(
        NS, client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"token": "abc"})
    )
    assert (made.data, made.string_data, made.type) == ({"token": "YWJj"}, None, "Opaque")


def test_immutable_config_maps_refuse_data_changes(core: client.CoreV1Api) -> None:
    made = core.create_namespaced_config_map(
        NS,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a"), data={"k": "v"}, immutable=True),
    )
    made.data = {"k": "changed"}
    exc = refused(lambda: core.replace_namespaced_config_map("a", NS, made))
    assert exc.status == 422 and "immutable" in status_of(exc)["message"]


def test_namespaces_are_created_active_and_deleted_with_their_contents(
    core: client.CoreV1Api, kube: KubeStandIn
) -> None:
    made = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team")))
    assert made.status.phase == "Active"
    assert made.metadata.labels["kubernetes.io/metadata.name"] == "team"
    core.create_namespaced_config_map("team", config_map("a"))
    core.delete_namespace("team")
    assert refused(lambda: core.read_namespace("team")).status == 404
    assert kube.objects("configmaps", "team") == []


def test_patch_merges_and_json_patches(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, config_map("a", {"x": "1"}))
    merged = core.patch_namespaced_config_map("a", NS, {"metadata": {"labels": {"y": "2"}}})
    assert merged.metadata.labels == {"x": "1", "y": "2"}
    patched = core.patch_namespaced_config_map(
        "a", NS, [{"op": "replace", "path": "/data/k", "value": "w"}]
    )
    assert patched.data == {"k": "w"}


def lease_body(holder: str, renew: datetime, duration: int = 15) -> client.V1Lease:
    return client.V1Lease(
        metadata=client.V1ObjectMeta(name="leader"),
        spec=client.V1LeaseSpec(
            holder_identity=holder,
            lease_duration_seconds=duration,
            acquire_time=renew,
            renew_time=renew,
            lease_transitions=0,
        ),
    )


def test_leases_round_trip_micro_times_and_refuse_a_stale_renewal(
    leases: client.CoordinationV1Api,
) -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    made = leases.create_namespaced_lease(NS, lease_body("a", now))
    assert made.spec.renew_time == now and made.spec.holder_identity == "a"
    exc = refused(lambda: leases.create_namespaced_lease(NS, lease_body("b", now)))
    assert status_of(exc)["reason"] == "AlreadyExists"
    taken = leases.read_namespaced_lease("leader", NS)
    taken.spec.holder_identity = "b"
    leases.replace_namespaced_lease("leader", NS, taken)
    made.spec.renew_time = now + timedelta(seconds=5)  # "a" renews from its stale copy
    exc = refused(lambda: leases.replace_namespaced_lease("leader", NS, made))
    assert exc.status == 409
    assert leases.read_namespaced_lease("leader", NS).spec.holder_identity == "b"
    assert [x.metadata.name for x in leases.list_namespaced_lease(NS).items] == ["leader"]
    leases.delete_namespaced_lease("leader", NS)
    assert refused(lambda: leases.read_namespaced_lease("leader", NS)).status == 404


KINDS: dict[str, tuple[str, dict[str, Any], Callable[[dict[str, Any]], None]]] = {
    # kind -> (the client's method suffix, a body, a change for replace)
    "ConfigMap": ("config_map", {"data": {"k": "v"}}, lambda o: o.update(data={"k": "w"})),
    "Secret": ("secret", {"data": {"k": "dg=="}}, lambda o: o.update(data={"k": "dw=="})),
    "Pod": (
        "pod",
        {"spec": {"containers": [{"name": "c", "image": "worker:1"}]}},
        lambda o: o["spec"]["containers"][0].update(image="worker:2"),
    ),
    "Event": (
        "event",
        {
            "involvedObject": {"kind": "Pod", "name": "x"},
            "reason": "Test",
            "message": "m",
            "type": "Normal",
        },
        lambda o: o.update(message="n"),
    ),
    "ResourceQuota": (
        "resource_quota",
        {"spec": {"hard": {"pods": "3"}}},
        lambda o: o["spec"]["hard"].update(pods="4"),
    ),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_round_trips_through_the_clients_models(
    core: client.CoreV1Api, kind: str
) -> None:
    suffix, body, change = KINDS[kind]
    model = getattr(client, "CoreV1Event" if kind == "Event" else f"V1{kind}")
    made = getattr(core, f"create_namespaced_{suffix}")(
        NS, model.from_dict({"metadata": {"name": "x"}, **body})
    )
    assert isinstance(made, model) and made.kind == kind and made.api_version == "v1"
    read = getattr(core, f"read_namespaced_{suffix}")("x", NS)
    assert read.metadata.uid == made.metadata.uid
    listed = getattr(core, f"list_namespaced_{suffix}")(NS)
    assert made.metadata.uid in [i.metadata.uid for i in listed.items]
    assert int(listed.metadata.resource_version) >= int(made.metadata.resource_version)
    for _ in range(20):  # the node writes a pod's status meanwhile: read again on a conflict
        current = getattr(core, f"read_namespaced_{suffix}")("x", NS)
        changed = current.to_dict()
        change(changed)
        try:
            replaced = getattr(core, f"replace_namespaced_{suffix}")(
                "x", NS, model.from_dict(changed)
            )
            break
        except ApiException as exc:
            assert exc.status == 409
    assert int(replaced.metadata.resource_version) > int(current.metadata.resource_version)
    getattr(core, f"delete_namespaced_{suffix}")("x", NS, grace_period_seconds=0)
    assert refused(lambda: getattr(core, f"read_namespaced_{suffix}")("x", NS)).status == 404


# ---- faults for tests -------------------------------------------------------------------
def test_fail_next_injects_error_answers_then_serves_again(
    core: client.CoreV1Api, kube: KubeStandIn
) -> None:
    kube.fail_next("GET", r"/configmaps$", 503, times=2)
    for _ in range(2):
        exc = refused(lambda: core.list_namespaced_config_map(NS))
        assert (exc.status, status_of(exc)["reason"]) == (503, "ServiceUnavailable")
    assert core.list_namespaced_config_map(NS).items == []
    kube.fail_next("POST", r"/configmaps$", 410)
    exc = refused(lambda: core.create_namespaced_config_map(NS, config_map("a")))
    assert (exc.status, status_of(exc)["reason"]) == (410, "Expired")
    statuses = [r.status for r in kube.requests_log if r.path.endswith("/configmaps")]
    assert statuses == [503, 503, 200, 410]


def test_freeze_stalls_answers_past_a_client_timeout(
    core: client.CoreV1Api, kube: KubeStandIn
) -> None:
    import urllib3

    kube.freeze(1.0)
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.HTTPError, match="Read timed out"):
        core.list_namespaced_config_map(NS, _request_timeout=0.1)
    assert time.monotonic() - started < 0.9  # the client gave up (after its retries)
    until(lambda: core.list_namespaced_config_map(NS, _request_timeout=2).items == [], 3)


# ---- the node: scheduling, running, status ------------------------------------------------
def pod(
    name: str,
    command: list[str] | None = None,
    cpu: str = "1",
    memory: str = "1Gi",
    restart: str = "Never",
    **spec: Any,
) -> client.V1Pod:
    container: dict[str, Any] = {
        "name": "main",
        "image": "worker:1",
        "resources": {
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": cpu, "memory": memory},
        },
    }
    if command:
        container["command"] = command
    container.update(spec.pop("container", {}))
    body = {
        "metadata": {"name": name, "labels": spec.pop("labels", {"app": "worker"})},
        "spec": {"restartPolicy": restart, "containers": [container], **spec},
    }
    return client.V1Pod.from_dict(body)


def phase(core: client.CoreV1Api, name: str) -> str:
    return str(core.read_namespaced_pod(name, NS).status.phase)


def events(core: client.CoreV1Api, name: str) -> list[client.CoreV1Event]:
    selector = f"involvedObject.kind=Pod,involvedObject.name={name}"
    return list(core.list_namespaced_event(NS, field_selector=selector).items)


def test_a_scheduled_pod_runs_and_its_status_follows_the_container(
    core: client.CoreV1Api, kube: KubeStandIn
) -> None:
    created = core.create_namespaced_pod(NS, pod("ok", ["sh", "-c", "sleep 0.3"]))
    core.create_namespaced_pod(NS, pod("bad", ["sh", "-c", "exit 3"]))
    assert created.status.phase == "Pending" and created.status.qos_class == "Guaranteed"
    assert created.spec.termination_grace_period_seconds == 30  # the server's defaults
    until(lambda: phase(core, "ok") == "Running")
    running = core.read_namespaced_pod("ok", NS)
    assert running.spec.node_name == "standin-node"
    (status,) = running.status.container_statuses
    assert status.ready and status.state.running.started_at is not None
    assert {c.type: c.status for c in running.status.conditions}["Ready"] == "True"
    until(lambda: phase(core, "ok") == "Succeeded")
    until(lambda: phase(core, "bad") == "Failed")
    (ended,) = core.read_namespaced_pod("bad", NS).status.container_statuses
    assert (ended.state.terminated.exit_code, ended.state.terminated.reason) == (3, "Error")
    assert {e.reason for e in events(core, "ok")} >= {"Scheduled", "Pulling", "Started"}


def test_a_pod_that_does_not_fit_stays_pending_unschedulable_with_the_schedulers_event(
    core: client.CoreV1Api, kube: KubeStandIn
) -> None:
    core.create_namespaced_pod(NS, pod("big", cpu="3"))
    core.create_namespaced_pod(NS, pod("second", cpu="3"))
    kube.sync()
    assert phase(core, "big") == "Running"
    waiting = core.read_namespaced_pod("second", NS)
    assert waiting.status.phase == "Pending" and waiting.spec.node_name is None
    (scheduled,) = [c for c in waiting.status.conditions if c.type == "PodScheduled"]
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
    assert scheduled.message.startswith("0/1 nodes are available: 1 Insufficient cpu.")
    (event,) = [e for e in events(core, "second") if e.reason == "FailedScheduling"]
    assert (event.type, event.message) == ("Warning", scheduled.message)
    core.delete_namespaced_pod("big", NS, grace_period_seconds=0)
    until(lambda: phase(core, "second") == "Running")  # capacity freed: scheduled now


def test_memory_and_unknown_resources_are_insufficient_too(
    core: client.CoreV1Api, kube: KubeStandIn
) -> None:
    core.create_namespaced_pod(NS, pod("huge", cpu="1", memory="9Gi"))
    gpu = pod("gpu")
    gpu.spec.containers[0].resources.limits["nvidia.com/gpu"] = "1"
    core.create_namespaced_pod(NS, gpu)
    kube.sync()
    for name, missing in (("huge", "memory"), ("gpu", "nvidia.com/gpu")):
        (condition,) = core.read_namespaced_pod(name, NS).status.conditions
        assert condition.message.startswith(f"0/1 nodes are available: 1 Insufficient {missing}.")


def test_node_selector_and_taints_decide_where_pods_may_go(tmp_path: Path) -> None:
    taint = {"key": "dedicated", "value": "batch", "effect": "NoSchedule"}
    with KubeStandIn(tmp_path, node_labels={"pool": "batch"}, node_taints=[taint]) as kube:
        core = client.CoreV1Api(kube_client(kube))
        toleration = {
            "key": "dedicated",
            "operator": "Equal",
            "value": "batch",
            "effect": "NoSchedule",
        }
        core.create_namespaced_pod(NS, pod("untolerated"))
        core.create_namespaced_pod(
            NS, pod("elsewhere", node_selector={"pool": "gpu"}, tolerations=[toleration])
        )
        core.create_namespaced_pod(
            NS, pod("fits", node_selector={"pool": "batch"}, tolerations=[toleration])
        )
        kube.sync()
        messages = {
            name: core.read_namespaced_pod(name, NS).status.conditions[0].message
            for name in ("untolerated", "elsewhere")
        }
        assert messages["untolerated"].startswith(
            "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: batch}."
        )
        assert messages["elsewhere"].startswith(
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        )
        assert phase(core, "fits") == "Running"
        node = core.read_node("standin-node")
        assert node.metadata.labels["pool"] == "batch" and node.spec.taints[0].key == "dedicated"


def test_an_image_that_cannot_be_pulled_waits_with_err_image_pull_then_back_off(
    tmp_path: Path, clock: FakeClock
) -> None:
    from tests.kube.runners import SubprocessRunner

    runner = SubprocessRunner(tmp_path / "pods", images={"worker:1": ["sleep", "30"]})
    with KubeStandIn(tmp_path, clock=clock.now, runner=runner) as kube:
        core = client.CoreV1Api(kube_client(kube))
        missing = pod("missing")
        missing.spec.containers[0].image = "registry.invalid/nope:1"
        core.create_namespaced_pod(NS, missing)
        core.create_namespaced_pod(NS, pod("present"))
        kube.sync()
        (status,) = core.read_namespaced_pod("missing", NS).status.container_statuses
        assert status.state.waiting.reason == "ErrImagePull"
        assert "registry.invalid/nope:1" in status.state.waiting.message
        clock.advance(2)
        kube.sync()
        (status,) = core.read_namespaced_pod("missing", NS).status.container_statuses
        assert status.state.waiting.reason == "ImagePullBackOff"
        assert phase(core, "missing") == "Pending" and phase(core, "present") == "Running"
        reasons = [(e.reason, e.message) for e in events(core, "missing")]
        assert ("Failed", "Error: ErrImagePull") in reasons
        assert ("Failed", "Error: ImagePullBackOff") in reasons
        never = pod("never", container={"imagePullPolicy": "Never"})
        never.spec.containers[0].image = "registry.invalid/nope:1"
        invalid = pod("invalid")
        invalid.spec.containers[0].image = "Not A Reference"
        core.create_namespaced_pod(NS, never)
        core.create_namespaced_pod(NS, invalid)
        kube.sync()
        waiting = {
            name: core.read_namespaced_pod(name, NS).status.container_statuses[0].state.waiting
            for name in ("never", "invalid")
        }
        assert waiting["never"].reason == "ErrImageNeverPull"
        assert waiting["invalid"].reason == "InvalidImageName"


def test_config_map_and_secret_volumes_and_env_reach_the_container(
    core: client.CoreV1Api, kube: KubeStandIn
) -> None:
    core.create_namespaced_secret(
        NS,
        client.V1Secret(metadata=client.V1ObjectMeta(name="pool"), string_data={"token": "s3cret"}),
    )
    script = (
        'cat "$STANDIN_ROOT/etc/condor/config.d/50-worker.conf"; '
        'stat -c %a "$STANDIN_ROOT/etc/condor/tokens.d/pool.token"; '
        'cat "$STANDIN_ROOT/etc/condor/tokens.d/pool.token"; echo " $GREETING $POD"'
    )
    worker = pod(
        "worker",
        ["sh", "-c", script],
        container={
            "env": [
                {"name": "GREETING", "value": "hello"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            "volumeMounts": [
                {
                    "name": "config",
                    "mountPath": "/etc/condor/config.d/50-worker.conf",
                    "subPath": "50-worker.conf",
                    "readOnly": True,
                },
                {"name": "token", "mountPath": "/etc/condor/tokens.d", "readOnly": True},
            ],
        },
        volumes=[
            {
                "name": "config",
                "configMap": {
                    "name": "worker-condor",
                    "items": [{"key": "condor-config", "path": "50-worker.conf"}],
                },
            },
            {
                "name": "token",
                "secret": {
                    "secretName": "pool",
                    "defaultMode": 0o400,
                    "items": [{"key": "token", "path": "pool.token"}],
                },
            },
        ],
    )
    made = core.create_namespaced_pod(NS, worker)
    kube.sync()  # the ConfigMap is not there yet: the kubelet waits for the volume
    (status,) = core.read_namespaced_pod("worker", NS).status.container_statuses
    assert status.state.waiting.reason == "ContainerCreating"
    (mount,) = [e for e in events(core, "worker") if e.reason == "FailedMount"]
    assert 'configmap "worker-condor" not found' in mount.message
    core.create_namespaced_config_map(
        NS,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="worker-condor"), data={"condor-config": "A = 1\n"}
        ),
    )
    until(lambda: phase(core, "worker") == "Succeeded")
    assert core.read_namespaced_pod_log("worker", NS) == "A = 1\n400\ns3cret hello worker\n"
    assert made.metadata.uid


def test_restart_policy_on_failure_restarts_with_back_off(
    core: client.CoreV1Api, kube: KubeStandIn, clock: FakeClock
) -> None:
    core.create_namespaced_pod(NS, pod("crash", ["sh", "-c", "exit 1"], restart="OnFailure"))
    until(
        lambda: (
            core.read_namespaced_pod("crash", NS).status.container_statuses
            and core.read_namespaced_pod("crash", NS).status.container_statuses[0].restart_count
        )
    )
    (status,) = core.read_namespaced_pod("crash", NS).status.container_statuses
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert status.last_state.terminated.exit_code == 1
    assert phase(core, "crash") == "Running"
    clock.advance(11)
    until(
        lambda: (
            core.read_namespaced_pod("crash", NS).status.container_statuses[0].restart_count == 2
        )
    )


def test_pod_updates_may_change_only_what_the_server_allows(core: client.CoreV1Api) -> None:
    made = core.create_namespaced_pod(NS, pod("p", cpu="64"))  # stays Pending: never placed
    made.metadata.resource_version = None  # an unconditional update: the scheduler writes too
    made.spec.containers[0].image = "worker:2"
    changed = core.replace_namespaced_pod("p", NS, made)
    assert changed.spec.containers[0].image == "worker:2"
    changed.metadata.resource_version = None
    changed.status.phase = "Succeeded"  # status is not the client's to write on the pod
    kept = core.replace_namespaced_pod("p", NS, changed)
    assert kept.status.phase == "Pending"
    kept.metadata.resource_version = None
    kept.spec.restart_policy = "Always"
    exc = refused(lambda: core.replace_namespaced_pod("p", NS, kept))
    assert exc.status == 422 and "pod updates may not change fields" in status_of(exc)["message"]


# ---- deletion and garbage collection -------------------------------------------------------
def test_graceful_deletion_keeps_the_pod_terminating_until_its_grace_period_ends(
    core: client.CoreV1Api, kube: KubeStandIn, clock: FakeClock
) -> None:
    stubborn = ["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"]
    core.create_namespaced_pod(NS, pod("stubborn", stubborn))
    until(lambda: phase(core, "stubborn") == "Running")
    answer = core.delete_namespaced_pod("stubborn", NS, grace_period_seconds=20)
    assert answer.metadata.deletion_timestamp == datetime.fromtimestamp(clock.now() + 20, UTC)
    assert answer.metadata.deletion_grace_period_seconds == 20
    kube.sync()
    time.sleep(0.2)  # SIGTERM is ignored: the pod stays, terminating
    assert core.read_namespaced_pod("stubborn", NS).metadata.deletion_timestamp is not None
    assert ("Killing", "Stopping container main") in [
        (e.reason, e.message) for e in events(core, "stubborn")
    ]
    clock.advance(21)
    until(lambda: not kube.objects("pods", NS))
    assert refused(lambda: core.read_namespaced_pod("stubborn", NS)).status == 404


def test_a_pod_whose_container_stops_on_sigterm_goes_before_its_grace_period_ends(
    core: client.CoreV1Api, kube: KubeStandIn
) -> None:
    core.create_namespaced_pod(NS, pod("polite", ["sleep", "30"]))
    until(lambda: phase(core, "polite") == "Running")
    core.delete_namespaced_pod("polite", NS, grace_period_seconds=600)  # the clock stands still
    until(lambda: not kube.objects("pods", NS))


def test_an_unscheduled_pod_is_deleted_at_once(core: client.CoreV1Api, kube: KubeStandIn) -> None:
    core.create_namespaced_pod(NS, pod("nowhere", cpu="64"))
    answer = core.delete_namespaced_pod("nowhere", NS, grace_period_seconds=30)
    assert answer.metadata.name == "nowhere"
    assert kube.objects("pods", NS) == []


def test_delete_preconditions_guard_against_deleting_a_namesake(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, config_map("a"))
    options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="someone-else"))
    exc = refused(lambda: core.delete_namespaced_config_map("a", NS, body=options))
    assert exc.status == 409 and "Precondition failed" in status_of(exc)["message"]
    done = core.delete_namespaced_config_map("a", NS)
    assert (done["kind"], done["status"], done["details"]["name"]) == ("Status", "Success", "a")


def owned_config_map(name: str, owner: client.V1Pod) -> client.V1ConfigMap:
    reference = client.V1OwnerReference(
        api_version="v1", kind="Pod", name=owner.metadata.name, uid=owner.metadata.uid
    )
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, owner_references=[reference]), data={"k": "v"}
    )


def test_a_deleted_pod_takes_the_config_maps_it_owns_with_it(
    core: client.CoreV1Api, kube: KubeStandIn, clock: FakeClock
) -> None:
    owner = core.create_namespaced_pod(NS, pod("owner", ["sh", "-c", "trap '' TERM; sleep 30"]))
    core.create_namespaced_config_map(NS, owned_config_map("owned", owner))
    core.create_namespaced_config_map(NS, config_map("unrelated"))
    until(lambda: phase(core, "owner") == "Running")
    core.delete_namespaced_pod("owner", NS, grace_period_seconds=5)
    kube.sync()
    assert {c.metadata.name for c in core.list_namespaced_config_map(NS).items} == {
        "owned",
        "unrelated",
    }  # the owner is terminating, not gone
    clock.advance(6)
    until(lambda: [c["metadata"]["name"] for c in kube.objects("configmaps", NS)] == ["unrelated"])


def test_orphan_propagation_keeps_dependents_and_dangling_owners_are_collected(
    core: client.CoreV1Api, kube: KubeStandIn
) -> None:
    owner = core.create_namespaced_pod(NS, pod("owner", cpu="64"))  # unscheduled: goes at once
    core.create_namespaced_config_map(NS, owned_config_map("kept", owner))
    core.delete_namespaced_pod("owner", NS, propagation_policy="Orphan")
    kept = core.read_namespaced_config_map("kept", NS)
    assert kept.metadata.owner_references is None
    ghost = client.V1Pod(metadata=client.V1ObjectMeta(name="ghost", uid="00000000-dead"))
    core.create_namespaced_config_map(NS, owned_config_map("dangling", ghost))
    until(lambda: [c["metadata"]["name"] for c in kube.objects("configmaps", NS)] == ["kept"])


# ---- ResourceQuota ---------------------------------------------------------------------------
def quota(hard: dict[str, str]) -> client.V1ResourceQuota:
    return client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="compute"), spec=client.V1ResourceQuotaSpec(hard=hard)
    )


def test_resource_quota_status_used_follows_the_pods(
    core: client.CoreV1Api, kube: KubeStandIn
) -> None:
    hard = {"pods": "5", "requests.cpu": "4", "requests.memory": "8Gi", "limits.cpu": "4"}
    core.create_namespaced_resource_quota(NS, quota(hard))
    core.create_namespaced_pod(NS, pod("a", ["sleep", "30"], cpu="1500m", memory="1Gi"))
    expected = {
        "pods": "1",
        "requests.cpu": "1500m",
        "requests.memory": "1Gi",
        "limits.cpu": "1500m",
    }
    assert core.read_namespaced_resource_quota("compute", NS).status.used == expected
    core.create_namespaced_pod(NS, pod("b", ["sh", "-c", "exit 0"], cpu="1"))
    until(lambda: phase(core, "b") == "Succeeded")  # finished pods use no quota
    status = core.read_namespaced_resource_quota("compute", NS).status
    assert (status.used, status.hard) == (expected, hard)
    core.delete_namespaced_pod("a", NS, grace_period_seconds=0)
    assert core.read_namespaced_resource_quota("compute", NS).status.used["pods"] == "0"


def test_a_pod_past_the_quota_is_403_forbidden_with_the_servers_message(
    core: client.CoreV1Api, kube: KubeStandIn
) -> None:
    core.create_namespaced_resource_quota(NS, quota({"pods": "2", "requests.cpu": "2"}))
    core.create_namespaced_pod(NS, pod("a", cpu="1500m"))
    exc = refused(lambda: core.create_namespaced_pod(NS, pod("b", cpu="1")))
    body = status_of(exc)
    assert (exc.status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        'pods "b" is forbidden: exceeded quota: compute, requested: '
        "requests.cpu=1, used: requests.cpu=1500m, limited: requests.cpu=2"
    )
    unsized = client.V1Pod.from_dict(
        {"metadata": {"name": "c"}, "spec": {"containers": [{"name": "main", "image": "worker:1"}]}}
    )
    exc = refused(lambda: core.create_namespaced_pod(NS, unsized))
    assert status_of(exc)["message"] == (
        'pods "c" is forbidden: failed quota: compute: must specify requests.cpu for: main'
    )
    core.create_namespaced_pod(NS, pod("d", cpu="500m"))
    exc = refused(lambda: core.create_namespaced_pod(NS, pod("e", cpu="100m")))
    assert (
        "exceeded quota: compute, requested: pods=1,requests.cpu=100m" in status_of(exc)["message"]
    )
    assert sorted(p["metadata"]["name"] for p in kube.objects("pods", NS)) == ["a", "d"]
    memory = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="memory"),
        spec=client.V1ResourceQuotaSpec(hard={"limits.memory": "1Gi"}),
    )
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="other")))
    core.create_namespaced_resource_quota("other", memory)
    exc = refused(lambda: core.create_namespaced_pod("other", pod("f", memory="2Gi")))
    assert status_of(exc)["message"] == (
        'pods "f" is forbidden: exceeded quota: memory, requested: limits.memory=2Gi, '
        "used: limits.memory=0, limited: limits.memory=1Gi"
    )


# ---- watch -----------------------------------------------------------------------------------
def test_watch_streams_changes_and_an_expired_resource_version_is_410(
    core: client.CoreV1Api, kube: KubeStandIn
) -> None:
    from kubernetes import watch

    start = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, config_map("a", {"app": "x"}))
    core.patch_namespaced_config_map("a", NS, {"data": {"k": "w"}})
    core.create_namespaced_config_map(NS, config_map("other", {"app": "y"}))
    core.delete_namespaced_config_map("a", NS)
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        NS,
        label_selector="app=x",
        resource_version=start,
        timeout_seconds=1,
    )
    seen = [(e["type"], e["object"].metadata.name) for e in stream]
    assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    kube.cluster.history_limit = 2
    for name in ("b", "c", "d"):
        core.create_namespaced_config_map(NS, config_map(name))
    with pytest.raises(ApiException) as caught:
        list(
            watch.Watch().stream(
                core.list_namespaced_config_map, NS, resource_version=start, timeout_seconds=1
            )
        )
    assert caught.value.status == 410


# ---- the worker image, run as Kubernetes would run it ------------------------------------------
@pytest.mark.integration
def test_the_podman_runner_gives_the_container_its_volumes_env_and_size(
    tmp_path: Path, worker_image: Any
) -> None:
    from tests.kube.podman import WorkerImageRunner

    runner = WorkerImageRunner(tmp_path / "seeds")
    with KubeStandIn(tmp_path, runner=runner) as kube:
        core = client.CoreV1Api(kube_client(kube))
        core.create_namespaced_config_map(
            NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="conf"), data={"a": "A = 1\n"})
        )
        core.create_namespaced_secret(
            NS,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="tok"), string_data={"token": "s3cret"}
            ),
        )
        script = (
            "cat /etc/condor/config.d/50-a.conf; stat -c %a /etc/condor/tokens.d/t; "
            "cat /etc/condor/tokens.d/t; echo; echo $FOO; "
            "cat /sys/fs/cgroup/memory.max 2>/dev/null "
            "|| cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
        )
        probe = pod(
            "probe",
            ["sh", "-c", script],
            cpu="1",
            memory="256Mi",
            container={
                "image": worker_image.reference,
                "env": [{"name": "FOO", "value": "bar"}],
                "volumeMounts": [
                    {"name": "conf", "mountPath": "/etc/condor/config.d/50-a.conf", "subPath": "a"},
                    {"name": "tok", "mountPath": "/etc/condor/tokens.d"},
                ],
            },
            volumes=[
                {"name": "conf", "configMap": {"name": "conf"}},
                {
                    "name": "tok",
                    "secret": {
                        "secretName": "tok",
                        "defaultMode": 0o400,
                        "items": [{"key": "token", "path": "t"}],
                    },
                },
            ],
        )
        core.create_namespaced_pod(NS, probe)
        missing = pod("missing")
        missing.spec.containers[0].image = "localhost/no-such-image:1"
        core.create_namespaced_pod(NS, missing)
        until(lambda: phase(core, "probe") == "Succeeded", timeout=120)
        assert core.read_namespaced_pod_log("probe", NS).split("\n")[:5] == [
            "A = 1",
            "400",
            "s3cret",
            "bar",
            str(256 * 2**20),
        ]
        (waiting,) = core.read_namespaced_pod("missing", NS).status.container_statuses
        assert waiting.state.waiting.reason in ("ErrImagePull", "ImagePullBackOff")
    assert runner.leftovers() == []  # every container removed with the stand-in


@pytest.mark.integration
@pytest.mark.slow
def test_a_worker_pod_from_the_provider_joins_the_pool_and_runs_a_job(
    tmp_path: Path, worker_image: Any, devpool: Any, htcondor: Any, job_dir: Path
) -> None:
    """The Kubernetes provider's own pod and ConfigMap, run by the podman runner from the worker
    image: the startd joins the personal pool with the token from the Secret and runs a job."""
    import base64
    import uuid

    from bursting.clock import SystemClock
    from bursting.clouds.base import ProviderContext
    from bursting.clouds.registry import cloud_type
    from bursting.model import Flavor, InstanceSpec
    from tests.kube.podman import WorkerImageRunner

    flavor = Flavor("k8s.1c", 1, 1024)
    instance_id = f"k8s-{uuid.uuid4().hex[:6]}"
    worker = devpool.worker_spec(
        instance_id,
        flavor.cpus,
        flavor.memory_mb,
        {"BurstingPool": "kube-pool", "BurstingCloud": "kube", "BurstingFlavor": flavor.name},
    )
    runner = WorkerImageRunner(tmp_path / "seeds")
    with KubeStandIn(tmp_path / "cluster", runner=runner) as kube:
        secret = {"token": worker.token.reveal()}
        if worker.admin_key is not None:
            secret["admin-key"] = worker.admin_key.reveal()
        client.CoreV1Api(kube_client(kube)).create_namespaced_secret(
            NS,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="pool"),
                data={k: base64.b64encode(v.encode()).decode() for k, v in secret.items()},
            ),
        )
        config = cloud_type("kubernetes").config_model.model_validate(
            {
                "name": "kube",
                "type": "kubernetes",
                "flavors": [
                    {"name": flavor.name, "cpus": 1, "memory_mb": 1024, "price_per_hour": 0}
                ],
                "kubernetes": {
                    "kubeconfig": str(kube.kubeconfig),
                    "context": "standin",
                    "image": worker_image.reference,
                    "token_secret": "pool",
                    "grace_period_seconds": 30,
                },
            }
        )
        provider = cloud_type("kubernetes").build(config, ProviderContext(SystemClock(), "it"))
        provider.create(InstanceSpec(instance_id, "kube-pool", "kube", flavor, worker))
        until(lambda: any(w.instance_id == instance_id for w in htcondor.workers()), 180, 1)
        cluster = htcondor.submit(
            "executable = /bin/sh\narguments = \"-c 'hostname > where.txt'\"\n"
            "transfer_executable = false\nshould_transfer_files = YES\n"
            "when_to_transfer_output = ON_EXIT\n"
            f'requirements = TARGET.BurstingInstance == "{instance_id}"\n'
            f"initialdir = {job_dir}\nlog = job.log\nrequest_cpus = 1\nrequest_memory = 64\n"
        )
        status = until(lambda: (s := htcondor.job_status(cluster)).done and s, 180, 1)
        assert [job.exit_code for job in status.jobs] == [0]
        assert (job_dir / "where.txt").read_text().strip() == instance_id
        provider.delete(instance_id)
        until(lambda: not kube.objects("pods", NS), 120, 0.5)
        assert kube.objects("configmaps", NS) == []  # owned by the pod: collected with it
    assert runner.leftovers() == []
