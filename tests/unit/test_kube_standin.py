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


def until(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll (the kubelet runs every 50 ms) until `predicate` is truthy; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s")
        time.sleep(0.02)


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
