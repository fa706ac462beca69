"""devcloud against itself: a real OpenStack on 127.0.0.1, driven with openstacksdk as a user would.

Two projects stand for two clouds, each reached through its own clouds.yaml entry (an
application credential) and its own region's compute endpoint.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLAVORS = {"w1.small": (1, 1024, 2), "w1.medium": (2, 2048, 4), "w1.large": (4, 4096, 8)}


def connect(devcloud: Any, cloud: str) -> Any:
    """openstacksdk the usual way: OS_CLIENT_CONFIG_FILE names devcloud's clouds.yaml."""
    import openstack

    os.environ["OS_CLIENT_CONFIG_FILE"] = str(devcloud.clouds_yaml)
    return openstack.connect(cloud=cloud)


def secrets_of(devcloud: Any) -> list[str]:
    """Every secret devcloud wrote: none may appear in status output or logs."""
    clouds = yaml.safe_load(Path(devcloud.clouds_yaml).read_text())["clouds"]
    found = [
        value
        for entry in clouds.values()
        for key, value in entry["auth"].items()
        if key in ("password", "application_credential_secret")
    ]
    found.append(json.loads(Path(devcloud.ec2_file).read_text())["secret"])
    return found


@pytest.fixture
def private(devcloud: Any) -> Any:
    from bursting.devcloud import PRIVATE_CLOUD

    return connect(devcloud, PRIVATE_CLOUD)


@pytest.fixture
def public(devcloud: Any) -> Any:
    from bursting.devcloud import PUBLIC_CLOUD

    return connect(devcloud, PUBLIC_CLOUD)


def boot(conn: Any, name: str) -> Any:
    image = conn.image.find_image("bursting-worker")
    network = conn.network.find_network("bursting-net")
    return conn.compute.create_server(
        name=name,
        flavor_id=conn.compute.find_flavor("w1.small").id,
        image_id=image.id,
        networks=[{"uuid": network.id}],
        security_groups=[{"name": "bursting-worker"}],
        metadata={"test": "devcloud"},
    )


def delete_all(conn: Any) -> None:
    servers = [s for s in conn.compute.servers() if s.name.startswith("devcloud-test-")]
    for server in servers:
        conn.compute.delete_server(server)
    for server in servers:
        conn.compute.wait_for_delete(server, wait=120)


def test_both_clouds_authenticate_with_application_credentials(devcloud: Any) -> None:
    from bursting.devcloud import PRIVATE_CLOUD, PUBLIC_CLOUD

    clouds = yaml.safe_load(Path(devcloud.clouds_yaml).read_text())["clouds"]
    projects = set()
    for name, port in ((PRIVATE_CLOUD, 8774), (PUBLIC_CLOUD, 8775)):
        assert clouds[name]["auth_type"] == "v3applicationcredential"
        conn = connect(devcloud, name)
        conn.authorize()
        projects.add(conn.current_project_id)
        assert conn.compute.get_endpoint().startswith(f"http://127.0.0.1:{port}/")
    assert len(projects) == 2


def test_flavors_and_worker_image_are_visible(private: Any, public: Any) -> None:
    for conn in (private, public):
        flavors = {f.name: (f.vcpus, f.ram, f.disk) for f in conn.compute.flavors()}
        for name, size in FLAVORS.items():
            assert flavors[name] == size
        image = conn.image.find_image("bursting-worker")
        assert image is not None and image.visibility == "public"
        props = image.properties
        assert props["bursting_worker_image"].startswith("localhost/bursting-worker:")
        assert props["bursting_image_key"]


def test_a_server_reaches_active_in_each_project(private: Any, public: Any) -> None:
    try:
        for conn in (private, public):
            server = boot(conn, "devcloud-test-active")
            server = conn.compute.wait_for_server(server, status="ACTIVE", wait=120, interval=1)
            assert "bursting-net" in server.addresses
            conn.compute.delete_server(server)
            conn.compute.wait_for_delete(server, wait=120)
            assert conn.compute.find_server(server.id) is None
    finally:
        delete_all(private)
        delete_all(public)


def test_private_quota_refuses_a_fifth_server(private: Any) -> None:
    from openstack.exceptions import ForbiddenException

    try:
        created = [boot(private, f"devcloud-test-quota-{i}") for i in range(4)]
        for server in created:
            private.compute.wait_for_server(server, status="ACTIVE", wait=120, interval=1)
        with pytest.raises(ForbiddenException, match="Quota exceeded for instances"):
            boot(private, "devcloud-test-quota-4")
    finally:
        delete_all(private)


def test_public_api_outage_leaves_private_serving(devcloud: Any, private: Any, public: Any) -> None:
    from keystoneauth1.exceptions import ConnectFailure

    list(public.compute.servers())
    try:
        devcloud.stop_service("nova-api-public")
        with pytest.raises(ConnectFailure):
            list(public.compute.servers())
        list(private.compute.servers())  # the private cloud's API still answers
        started = time.monotonic()
        devcloud.start_service("nova-api-public")
        print(f"nova-api-public restarted in {time.monotonic() - started:.1f}s")
    finally:
        devcloud.start_service("nova-api-public")  # a no-op when it runs
    list(public.compute.servers())


def test_swift_container_and_object_as_public_user(public: Any, tmp_path: Path) -> None:
    payload = os.urandom(256 * 1024)
    source = tmp_path / "object.bin"
    source.write_bytes(payload)
    container = f"devcloud-test-{os.getpid()}"
    public.object_store.create_container(name=container)
    try:
        # from a file: openstacksdk 4.22 leaks data= uploads' metadata into later objects
        public.object_store.upload_object(
            container=container, name="object.bin", filename=str(source)
        )
        back = public.object_store.download_object("object.bin", container=container)
        assert back == payload
        assert [o.name for o in public.object_store.objects(container)] == ["object.bin"]
    finally:
        for item in list(public.object_store.objects(container)):
            public.object_store.delete_object(item, container=container)
        public.object_store.delete_container(container)


def s3_request(
    credential: dict[str, str], method: str, path: str, body: bytes = b""
) -> tuple[int, bytes]:
    """One S3 call to the Swift proxy's s3api, signed with AWS Signature V4 (path style,
    region us-east-1), so the EC2 credential is checked the way any S3 client's would be."""
    import hashlib
    import hmac
    import urllib.error
    import urllib.request
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": "127.0.0.1:8080", "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [method, path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, payload]
    )
    scope = f"{day}/us-east-1/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + credential["secret"]).encode()
    for part in (day, "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"http://127.0.0.1:8080{path}", data=body or None, method=method
    )
    for name, value in headers.items():
        request.add_header(name, value)
    request.add_header(
        "Authorization",
        f"AWS4-HMAC-SHA256 Credential={credential['access']}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_s3_with_the_public_users_ec2_credential(devcloud: Any, public: Any) -> None:
    credential = json.loads(Path(devcloud.ec2_file).read_text())
    bucket = f"devcloud-s3-{os.getpid()}"
    assert s3_request(credential, "PUT", f"/{bucket}")[0] == 200
    try:
        assert s3_request(credential, "PUT", f"/{bucket}/hello.txt", b"hello s3")[0] == 200
        assert s3_request(credential, "GET", f"/{bucket}/hello.txt") == (200, b"hello s3")
        # the same account as the public project's Swift: the bucket is its container
        assert bucket in [c.name for c in public.object_store.containers()]
        wrong = {**credential, "secret": "not-the-secret"}
        assert s3_request(wrong, "GET", f"/{bucket}/hello.txt")[0] == 403
    finally:
        s3_request(credential, "DELETE", f"/{bucket}/hello.txt")
        s3_request(credential, "DELETE", f"/{bucket}")


def test_status_json_answers_and_shows_no_secret(devcloud: Any) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bursting.cli", "devcloud", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["running"] is True
    for name, row in report["services"].items():
        assert row["pid"], name
        assert row["answering"] in (True, None), name
    assert report["clouds_yaml"] == str(devcloud.clouds_yaml)
    for secret in secrets_of(devcloud):
        assert secret not in done.stdout + done.stderr


@pytest.mark.parametrize("name", ["keystone", "nova-api", "nova-api-public"])
def test_the_apis_keep_an_idle_connection_open(devcloud: Any, name: str) -> None:
    """A connection idle between two requests stays open on the server's side: a server that
    closes it after a couple of seconds races every client that reuses it (the client's request
    meets a closing socket and comes back as "connection reset")."""
    import http.client
    import select

    from bursting.devcloud.layout import HOST, PORTS

    path = "/v3" if name == "keystone" else "/"
    connection = http.client.HTTPConnection(HOST, PORTS[name], timeout=10)
    try:
        for attempt in range(2):
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            assert response.status < 500, (name, attempt, response.status)
            assert not response.will_close, f"{name} asked to close the connection"
            if attempt == 0:
                time.sleep(4)  # twice gunicorn's default keep-alive
                sock = connection.sock
                assert sock is not None
                readable, _, _ = select.select([sock], [], [], 0)
                assert not readable, f"{name} closed a connection idle for 4 s"
    finally:
        connection.close()


@pytest.fixture
def sole_user(devcloud: Any) -> Iterator[None]:
    """This session alone uses devcloud (no other session holds the shared lock)."""
    lock = getattr(devcloud, "session_lock", None)
    if lock is None:
        pytest.skip("devcloud fixture holds no session lock")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pytest.skip("another test session uses devcloud: not stopping it under it")
    try:
        yield
    finally:
        fcntl.flock(lock, fcntl.LOCK_SH)


def test_down_leaves_nothing_behind_and_up_comes_back(devcloud: Any, sole_user: None) -> None:
    from bursting.devcloud import DevCloud
    from bursting.devcloud.layout import PORTS, port_open
    from bursting.devcloud.procs import alive

    messages: list[str] = []
    cloud = DevCloud(log=messages.append)
    pids = cloud.state.pids()
    assert {"mariadb", "rabbitmq", "epmd", "keystone", "swift-proxy"} <= set(pids)
    started = time.monotonic()
    cloud.down()
    print(f"down in {time.monotonic() - started:.1f}s")
    assert not [name for name, pid in pids.items() if alive(pid)]
    assert not [name for name, port in PORTS.items() if port_open(port)]
    assert cloud.status()["running"] is False
    started = time.monotonic()
    cloud.up()
    took = time.monotonic() - started
    print(f"up in {took:.1f}s")
    assert cloud.running()
    # A hang guard only: the 90 s target is measured without load (README); two CPU burners
    # beside it made one start take 92 s.
    assert took <= 300
    cloud.up()  # already up: says so, changes nothing
    assert "already up" in messages[-1]
    for secret in secrets_of(cloud):
        assert not [m for m in messages if secret in m]
