"""The OpenStack provider's pure parts: error translation at the edge, status and quota
normalisation, the config model, and how a clouds.yaml entry is resolved (the real openstacksdk
loader, no network). The provider's behaviour against a real Nova is in the contract and
integration tests, on devcloud."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
import yaml
from keystoneauth1 import exceptions as ksa
from openstack import exceptions as sdk
from pydantic import ValidationError

from bursting.clouds.openstack import (
    OpenStackProvider,
    cloud_status,
    connection_factory,
    near_quota,
    quota_from_limits,
    room_after,
)
from bursting.clouds.openstack_config import OpenStackCloud
from bursting.clouds.openstack_errors import (
    Redactor,
    fault_text,
    is_quota_fault,
    once_more_if_dropped,
    retry_after,
    translate,
)
from bursting.config import parse_config
from bursting.errors import (
    AuthError,
    CloudUnavailable,
    ConfigError,
    PermanentError,
    QuotaExceeded,
    TransientError,
)
from bursting.model import CloudStatus, Flavor, InstanceSpec, Quota

NOTHING = Redactor([])
FLAVORS = [{"name": "w1.small", "cpus": 1, "memory_mb": 1024}]


def cloud(**settings: Any) -> OpenStackCloud:
    return OpenStackCloud.model_validate(
        {
            "name": "public",
            "type": "openstack",
            "flavors": FLAVORS,
            "openstack": {"cloud": "devcloud-public", "image": "bursting-worker", **settings},
        }
    )


def http_error(status: int, message: str, headers: dict[str, str] | None = None) -> Exception:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    return sdk.HttpException(message=message, response=response)


# ----- errors -----
@pytest.mark.parametrize(
    "error",
    [
        ksa.ConnectFailure("Unable to establish connection to http://127.0.0.1:8775"),
        ksa.ConnectTimeout("Request to http://127.0.0.1:8775 timed out"),
        ksa.DiscoveryFailure("Could not find versioned identity endpoints"),
    ],
)
def test_an_api_that_cannot_be_reached_is_unavailable_with_a_retry_delay(error: Exception) -> None:
    translated = translate(error, "public", "list servers", NOTHING)
    assert isinstance(translated, CloudUnavailable)
    assert translated.retry_after and translated.retry_after > 0
    assert "public: list servers" in str(translated)


def test_server_errors_are_unavailable_and_honour_retry_after() -> None:
    translated = translate(http_error(503, "down", {"Retry-After": "42"}), "c", "op", NOTHING)
    assert isinstance(translated, CloudUnavailable)
    assert translated.retry_after == 42.0
    assert isinstance(translate(http_error(500, "boom"), "c", "op", NOTHING), CloudUnavailable)


def test_the_quota_refusal_is_quota_exceeded() -> None:
    error = http_error(
        403, "Quota exceeded for instances: Requested 1, but already used 4 of 4 instances"
    )
    assert isinstance(translate(error, "private", "create server", NOTHING), QuotaExceeded)


def test_auth_failures_are_auth_errors_that_say_where_to_look() -> None:
    translated = translate(http_error(401, "The request you have made requires authentication"),
                           "c", "op", NOTHING)  # fmt: skip
    assert isinstance(translated, AuthError)
    assert "clouds.yaml" in str(translated)
    assert isinstance(translate(ksa.Unauthorized("no"), "c", "op", NOTHING), AuthError)
    assert isinstance(translate(http_error(403, "Policy forbids"), "c", "op", NOTHING), AuthError)


def test_other_client_errors_are_permanent_and_rate_limits_transient() -> None:
    assert isinstance(translate(http_error(400, "bad flavor"), "c", "op", NOTHING), PermanentError)
    limited = translate(http_error(429, "slow down", {"Retry-After": "7"}), "c", "op", NOTHING)
    assert isinstance(limited, TransientError) and limited.retry_after == 7.0


def test_retry_after_as_an_http_date() -> None:
    error = http_error(
        503,
        "down",
        {"Retry-After": "Mon, 23 Nov 2026 20:00:30 GMT", "Date": "Mon, 23 Nov 2026 20:00:00 GMT"},
    )
    assert retry_after(error) == 30.0
    assert retry_after(http_error(503, "down", {"Retry-After": "soon"})) is None


def test_secrets_are_redacted_from_translated_messages() -> None:
    redact = Redactor.for_auth({"application_credential_secret": "s3cr3t-value", "password": ""})
    error = http_error(400, "bad request: secret s3cr3t-value rejected")
    text = str(translate(error, "c", "op", redact))
    assert "s3cr3t-value" not in text and "********" in text


def test_quota_faults_are_recognised_from_nova_server_faults() -> None:
    assert is_quota_fault({"code": 413, "message": "Quota exceeded for instances: ..."})
    assert is_quota_fault({"code": 403, "message": "Quota exceeded for cores"})
    assert not is_quota_fault({"code": 500, "message": "No valid host was found."})
    assert not is_quota_fault(None)
    assert fault_text({"code": 500, "message": "No valid host"}) == "No valid host (fault 500)"
    assert "no fault" in fault_text(None)


# ----- normalisation -----
@pytest.mark.parametrize(
    ("status", "task", "expected"),
    [
        ("BUILD", "scheduling", CloudStatus.BUILD),
        ("ACTIVE", None, CloudStatus.ACTIVE),
        ("REBOOT", "rebooting", CloudStatus.ACTIVE),
        ("ACTIVE", "deleting", CloudStatus.DELETING),
        ("ERROR", None, CloudStatus.ERROR),
        ("SHUTOFF", None, CloudStatus.ERROR),
        ("DELETED", None, None),
        ("SOFT_DELETED", None, None),
    ],
)
def test_nova_statuses_are_normalised(
    status: str, task: str | None, expected: CloudStatus | None
) -> None:
    assert cloud_status(status, task) is expected


def test_quota_headroom_from_the_compute_limits() -> None:
    limits = SimpleNamespace(
        instances=4,
        instances_used=3,
        total_cores=8,
        total_cores_used=6,
        total_ram=16384,
        total_ram_used=20000,
    )
    assert quota_from_limits(limits) == Quota(instances=1, cores=2, memory_mb=0)
    unlimited = SimpleNamespace(
        instances=-1,
        instances_used=3,
        total_cores=-1,
        total_cores_used=6,
        total_ram=-1,
        total_ram_used=0,
    )
    assert quota_from_limits(unlimited) == Quota()


SMALL = Flavor("w1.small", 1, 1024, 2)
LARGE = Flavor("w1.large", 4, 8192, 20)


def test_each_create_is_counted_against_the_headroom_last_read() -> None:
    room = room_after(Quota(instances=10, cores=None, memory_mb=16384), LARGE)
    assert room == Quota(instances=9, cores=None, memory_mb=8192)
    assert room_after(Quota.unknown(), SMALL) == Quota.unknown()


@pytest.mark.parametrize(
    ("room", "flavor", "near"),
    [
        (Quota(), SMALL, False),  # unlimited: Nova's recheck cannot refuse
        (Quota(instances=45, cores=45, memory_mb=45 * 1024), SMALL, False),
        (Quota(instances=5, cores=None, memory_mb=None), SMALL, False),
        (Quota(instances=4, cores=None, memory_mb=None), SMALL, True),  # within 5 servers
        (Quota(instances=None, cores=19, memory_mb=None), LARGE, True),  # cores: 4 per server
        (Quota(instances=None, cores=None, memory_mb=40 * 1024), LARGE, False),
        (Quota(instances=-1, cores=None, memory_mb=None), SMALL, True),  # already over
        (Quota.unknown(), SMALL, True),  # never read: read every create back
    ],
)
def test_a_create_is_read_back_only_near_the_quota(room: Quota, flavor: Flavor, near: bool) -> None:
    assert near_quota(room, flavor, margin=5) is near


def test_margin_zero_reads_back_only_creates_that_overdraw_the_headroom() -> None:
    assert not near_quota(Quota(instances=0), SMALL, margin=0)
    assert near_quota(Quota(instances=-1), SMALL, margin=0)


# ----- config -----
def test_exactly_one_way_to_name_the_image() -> None:
    with pytest.raises(ValidationError, match="exactly one of image"):
        cloud(image=None)
    with pytest.raises(ValidationError, match="exactly one of image"):
        cloud(image_properties={"bursting_image_key": "abc"})
    assert cloud(image=None, image_properties={"k": "v"}).openstack.image_properties == {"k": "v"}


def test_a_full_config_with_openstack_clouds_names_bad_fields() -> None:
    base = {
        "name": "public",
        "type": "openstack",
        "flavors": FLAVORS,
        "openstack": {"cloud": "devcloud-public", "image": "w"},
    }
    config = parse_config({"clouds": [base]})
    assert isinstance(config.clouds[0], OpenStackCloud)
    with pytest.raises(ConfigError, match=r"clouds\[0\]\.openstack\.imagee"):
        parse_config({"clouds": [{**base, "openstack": {**base["openstack"], "imagee": "x"}}]})


# ----- clouds.yaml -----
def clouds_yaml(path: Path) -> Path:
    document = {
        "clouds": {
            "devcloud-public": {
                "auth_type": "v3applicationcredential",
                "auth": {
                    "auth_url": "http://127.0.0.1:1/v3",
                    "application_credential_id": "abc123",
                    "application_credential_secret": "very-secret-value",
                },
                "region_name": "RegionTwo",
            }
        }
    }
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_clouds_yaml_entry_is_resolved_and_its_secret_redacted(tmp_path: Path) -> None:
    path = clouds_yaml(tmp_path / "clouds.yaml")
    connect, redact = connection_factory(cloud(clouds_yaml=str(path)))
    assert redact("leaked very-secret-value") == "leaked ********"
    assert callable(connect)


def test_os_client_config_file_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = clouds_yaml(tmp_path / "elsewhere.yaml")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    connection_factory(cloud())  # found through the variable, not an explicit path


def test_a_missing_entry_or_file_is_a_config_error_naming_the_fix(tmp_path: Path) -> None:
    path = clouds_yaml(tmp_path / "clouds.yaml")
    with pytest.raises(ConfigError, match=r"openstack\.cloud.*add it to clouds\.yaml") as caught:
        connection_factory(cloud(cloud="nope", clouds_yaml=str(path)))
    assert "very-secret-value" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"openstack\.clouds_yaml: no file"):
        connection_factory(cloud(clouds_yaml=str(tmp_path / "missing.yaml")))


def test_an_unreachable_cloud_lists_as_unavailable_never_empty(tmp_path: Path) -> None:
    from bursting.clock import FakeClock
    from bursting.clouds.base import ProviderContext
    from bursting.clouds.registry import cloud_type

    path = clouds_yaml(tmp_path / "clouds.yaml")
    config = cloud(clouds_yaml=str(path))
    provider = cloud_type("openstack").build(config, ProviderContext(FakeClock(), "p"))
    with pytest.raises(CloudUnavailable) as caught:
        provider.list_instances("p")
    assert "very-secret-value" not in str(caught.value)
    assert provider.quota() == Quota.unknown()


# ----- a connection dropped under a read -----
def dropped() -> ksa.ConnectFailure:
    """What keystoneauth raises when a keep-alive connection is reset under a request."""
    return ksa.ConnectFailure(
        "Unable to establish connection to http://127.0.0.1:8774/v2.1/servers/detail: "
        "('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))"
    )


class Answers:
    """A call that raises the given errors in turn, then answers."""

    def __init__(self, *errors: Exception, answer: Any = "answer") -> None:
        self.errors = list(errors)
        self.answer = answer
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.answer


def test_a_read_whose_connection_dropped_is_sent_once_more() -> None:
    call = Answers(dropped())
    assert once_more_if_dropped(call) == "answer"
    assert call.calls == 2


def test_a_cloud_that_refuses_twice_is_not_asked_a_third_time() -> None:
    call = Answers(dropped(), dropped())
    with pytest.raises(ksa.ConnectFailure):
        once_more_if_dropped(call)
    assert call.calls == 2


@pytest.mark.parametrize(
    "error",
    [ksa.ConnectTimeout("Request timed out"), http_error(500, "boom"), http_error(404, "gone")],
)
def test_timeouts_and_answers_are_not_retried(error: Exception) -> None:
    call = Answers(error)
    with pytest.raises(type(error)):
        once_more_if_dropped(call)
    assert call.calls == 1


def fake_connection(create_server: Answers, servers: Answers) -> SimpleNamespace:
    absolute = SimpleNamespace(
        instances=10, instances_used=0, total_cores=20, total_cores_used=0, total_ram=40960,
        total_ram_used=0,
    )  # fmt: skip
    flavor = SimpleNamespace(name="w1.small", id="f1", vcpus=1, ram=1024, disk=2)
    image = SimpleNamespace(id="img", created_at="2026-12-01T00:00:00Z")
    return SimpleNamespace(
        compute=SimpleNamespace(
            flavors=lambda details: [flavor],
            servers=servers,
            get_limits=lambda: SimpleNamespace(absolute=absolute),
            create_server=create_server,
        ),
        image=SimpleNamespace(images=lambda **query: [image]),
        network=SimpleNamespace(find_network=lambda *a, **k: SimpleNamespace(id="net")),
    )


def server(name: str) -> SimpleNamespace:
    return SimpleNamespace(
        name=name,
        status="ACTIVE",
        task_state=None,
        created_at="2026-12-03T18:00:00Z",
        fault=None,
        metadata={
            "bursting_pool": "p1",
            "bursting_instance": name,
            "bursting_cloud": "public",
            "bursting_flavor": "w1.small",
        },
    )


def test_the_provider_lists_again_when_the_connection_drops_but_never_creates_twice() -> None:
    servers = Answers(dropped(), answer=[server("p1-public-aaaa")])
    create = Answers(dropped())
    connection = fake_connection(create, servers)
    provider = OpenStackProvider(cloud(network="bursting-net"), lambda: connection, NOTHING)
    listed = provider.list_instances("p1")
    assert [i.id for i in listed.instances] == ["p1-public-aaaa"]
    assert servers.calls == 2
    spec = InstanceSpec("p1-public-bbbb", "p1", "public", Flavor("w1.small", 1, 1024, 2))
    with pytest.raises(CloudUnavailable, match="create server"):
        provider.create(replace(spec, never_asked=True))
    assert create.calls == 1, "a create is never resent: Nova would make two servers"
