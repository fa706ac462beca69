"""devcloud's pure parts: config rendering, port checks, the lock's hash, clouds.yaml, status."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bursting.devcloud import install, render, services
from bursting.devcloud.cloud import DevCloud
from bursting.devcloud.clouds import (
    ADMIN_CLOUD,
    PRIVATE_CLOUD,
    PUBLIC_CLOUD,
    clouds_document,
    write_clouds_yaml,
)
from bursting.devcloud.identity import Member, ProjectSpec, catalog
from bursting.devcloud.layout import (
    PORTS,
    REGION_PRIVATE,
    REGION_PUBLIC,
    DevCloudError,
    Paths,
    check_port_free,
    port_holder,
)
from bursting.devcloud.procs import StateFile
from bursting.model import Secret

DB_SECRET = "db-secret-Qx81"
SERVICE_SECRET = "svc-secret-Zk42"


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "devcloud")


@pytest.fixture
def settings(paths: Paths) -> render.Settings:
    return render.Settings(paths, Secret(DB_SECRET), Secret(SERVICE_SECRET))


def member(project: str, region: str, secret: str) -> Member:
    spec = ProjectSpec(project, project, region, 4, 8, 16384)
    return Member(
        spec, f"{project}-id", f"{project}-uid", Secret("pw"), f"{project}-ac", Secret(secret)
    )


# ----- config rendering -----
def test_render_fills_every_placeholder() -> None:
    assert render.render("a=@X@ b=@Y_2@", {"X": "1", "Y_2": "two"}) == "a=1 b=two"


def test_render_refuses_a_placeholder_without_value() -> None:
    with pytest.raises(DevCloudError, match="MISSING"):
        render.render("a=@MISSING@", {})


def test_every_template_renders_completely(settings: render.Settings) -> None:
    values = settings.values()
    for name in render.CONFIG_FILES:
        text = render.render(render.template(name), values)
        assert not render.PLACEHOLDER.search(text), name
        assert "0.0.0.0" not in text, name


def test_configs_written_private_with_passwords_inside(settings: render.Settings) -> None:
    render.write_configs(settings)
    nova = settings.paths.etc / "nova" / "nova.conf"
    assert stat.S_IMODE(nova.stat().st_mode) == 0o600
    text = nova.read_text()
    assert f"password = {SERVICE_SECRET}" in text
    assert f"mysql+pymysql://os:{DB_SECRET}@127.0.0.1:3306/nova?" in text
    assert "compute_driver = fake.FakeDriver" in text
    wsgi = (settings.paths.run / "pylib" / "neutron_app.py").read_text()
    assert "sys.argv = sys.argv[:1]" in wsgi and "configure_mappers()" in wsgi
    entry = settings.paths.run / "pylib" / "devcloud_ml2-0.dist-info" / "entry_points.txt"
    assert "devcloud_bind = devcloud_ml2:BindAnywhere" in entry.read_text()


def test_ml2_binds_ports_without_an_agent(settings: render.Settings) -> None:
    text = render.render(render.template("ml2_conf.ini"), settings.values())
    assert re.search(r"^mechanism_drivers = devcloud_bind$", text, re.M)
    assert re.search(r"^tenant_network_types = local$", text, re.M)


def test_swift_keeps_the_recipe_lessons(settings: render.Settings) -> None:
    values = settings.values()
    proxy = render.render(render.template("swift/proxy-server.conf"), values)
    pipeline = re.search(r"^pipeline = (.*)$", proxy, re.M)
    assert pipeline is not None
    assert "authtoken s3api s3token keystoneauth" in pipeline.group(1)
    assert " cache " not in f" {pipeline.group(1)} " and "ratelimit" not in pipeline.group(1)
    assert re.search(r"^operator_roles = .*\bmember\b", proxy, re.M)
    assert "error_suppression_interval = 2" in proxy
    assert "secret_cache_duration = 0" in proxy
    s3token = proxy.split("[filter:s3token]")[1].split("[filter:")[0]
    assert "username = swift" in s3token and f"password = {SERVICE_SECRET}" in s3token
    for kind in ("proxy", "account", "container", "object"):
        conf = render.render(render.template(f"swift/{kind}-server.conf"), values)
        assert "workers = 0" in conf and "bind_ip = 127.0.0.1" in conf
    swift_conf = render.render(render.template("swift/swift.conf"), values)
    assert "max_meta_overall_size = 2048" in swift_conf


def test_every_service_binds_loopback(paths: Paths, tmp_path: Path) -> None:
    for name in services.ALL:
        svc = services.service(name, tmp_path / "venv", paths)
        if name in services.WSGI:
            assert f"127.0.0.1:{PORTS[name]}" in svc.argv
    env = services.rabbit_env(paths)
    assert env["RABBITMQ_NODE_IP_ADDRESS"] == "127.0.0.1"
    assert env["ERL_EPMD_ADDRESS"] == "127.0.0.1"


def test_regions_differ_only_in_compute() -> None:
    regions = catalog()
    one = {e.type: e.url for e in regions[REGION_PRIVATE]}
    two = {e.type: e.url for e in regions[REGION_PUBLIC]}
    assert one["compute"].endswith(":8774/v2.1") and two["compute"].endswith(":8775/v2.1")
    for kind in ("image", "network", "placement", "object-store"):
        assert one[kind] == two[kind]


# ----- ports -----
@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_port_holder_names_the_listening_process(listener: int) -> None:
    holder = port_holder(listener)
    assert holder is not None and holder[0] == os.getpid()


def test_taken_port_error_names_port_and_process(listener: int) -> None:
    with pytest.raises(DevCloudError) as caught:
        check_port_free("keystone", listener)
    message = str(caught.value)
    assert f"port {listener}" in message and "keystone" in message
    assert f"pid {os.getpid()}" in message


def test_free_port_passes(listener: int) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    check_port_free("keystone", free)


# ----- the services' venv -----
def test_lock_hash_is_stable_and_follows_the_pins() -> None:
    text = install.lock_text()
    assert install.lock_hash(text) == install.lock_hash(text)
    assert len(install.lock_hash(text)) == 12
    assert install.lock_hash(text.replace("nova==34.0.0", "nova==34.0.1")) != install.lock_hash(
        text
    )


def test_lock_pins_the_services_and_swift() -> None:
    pins = dict(
        line.split("==")
        for line in install.lock_text().splitlines()
        if line and not line.startswith("#")
    )
    for name in ("keystone", "nova", "neutron", "glance", "swift", "PyECLib", "xattr"):
        assert name in pins


def test_venv_is_cached_outside_the_clone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BURSTING_CACHE", str(tmp_path))
    lock = "a==1\n"
    venv = install.venv_dir(lock)
    assert venv == tmp_path / "devcloud" / f"venv-{install.lock_hash(lock)}"
    venv.mkdir(parents=True)
    assert not install.is_installed(venv)  # no marker: a pip that did not finish
    (venv / install.READY_MARKER).write_text("")
    assert install.is_installed(venv)


def test_missing_command_says_make_system_deps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install, "SYSTEM_COMMANDS", {"/nonexistent/mariadbd": "mariadb-server"})
    with pytest.raises(DevCloudError, match=r"mariadbd \(mariadb-server\).*make system-deps"):
        install.require_commands()


# ----- clouds.yaml -----
def test_clouds_yaml_uses_application_credentials(tmp_path: Path) -> None:
    private = member("bursting-private", REGION_PRIVATE, "private-secret")
    public = member("bursting-public", REGION_PUBLIC, "public-secret")
    document = clouds_document("http://127.0.0.1:5000/v3", private, public, Secret("admin-pw"))
    path = tmp_path / "clouds.yaml"
    write_clouds_yaml(path, document)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    clouds = yaml.safe_load(path.read_text())["clouds"]
    assert set(clouds) == {PRIVATE_CLOUD, PUBLIC_CLOUD, ADMIN_CLOUD}
    for name, region, secret in (
        (PRIVATE_CLOUD, REGION_PRIVATE, "private-secret"),
        (PUBLIC_CLOUD, REGION_PUBLIC, "public-secret"),
    ):
        entry = clouds[name]
        assert entry["auth_type"] == "v3applicationcredential"
        assert entry["region_name"] == region
        assert entry["auth"]["application_credential_secret"] == secret
        assert "password" not in entry["auth"]
    assert clouds[ADMIN_CLOUD]["auth_type"] == "password"
    assert clouds[ADMIN_CLOUD]["auth"]["project_name"] == "admin"


# ----- state and status -----
def test_state_file_records_and_forgets(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.json")
    state.record("keystone", os.getpid())
    state.record("nova-api", os.getppid())
    state.forget("keystone")
    assert state.pids() == {"nova-api": os.getppid()}


def test_state_file_never_takes_a_reused_pid_for_ours(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.json")
    state.record("keystone", os.getpid())
    with state.editing() as raw:
        raw["starts"] = {"keystone": 1}  # as if this PID had been another process's before
    assert state.pids() == {}
    assert state.recorded() == {"keystone": os.getpid()}


def test_status_shows_no_secret(
    paths: Paths, monkeypatch: pytest.MonkeyPatch, settings: render.Settings
) -> None:
    paths.base.mkdir(parents=True)
    render.write_configs(settings)
    private = member("bursting-private", REGION_PRIVATE, "private-secret-77")
    public = member("bursting-public", REGION_PUBLIC, "public-secret-88")
    write_clouds_yaml(
        paths.clouds_yaml,
        clouds_document("http://127.0.0.1:5000/v3", private, public, Secret("admin-pw-99")),
    )
    paths.admin_password_file.write_text("admin-pw-99\n")
    paths.ec2_file.write_text(json.dumps({"access": "a", "secret": "ec2-secret-66"}))
    StateFile(paths.state_file).record("keystone", 2**22 + 12345)  # a PID that does not run
    report = DevCloud(paths).status()
    assert report["clouds_yaml"] == str(paths.clouds_yaml)
    assert report["running"] is False
    monkeypatch.setenv("BURSTING_DEVCLOUD_HOME", str(paths.base))
    from bursting.cli import app

    result = CliRunner().invoke(app, ["devcloud", "status", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["services"]["keystone"]["pid"] is None
    for secret in (
        "private-secret-77",
        "public-secret-88",
        "admin-pw-99",
        "ec2-secret-66",
        DB_SECRET,
        SERVICE_SECRET,
    ):
        assert secret not in result.output
        assert secret not in json.dumps(report)


def test_up_refuses_a_taken_port_before_starting_anything(
    paths: Paths, listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bursting.devcloud import cloud

    monkeypatch.setattr(cloud, "require_commands", lambda: None)
    monkeypatch.setattr(cloud, "PORTS", {"keystone": listener})
    devcloud = DevCloud(paths)
    with pytest.raises(DevCloudError, match=f"port {listener} .*keystone.*pid {os.getpid()}"):
        devcloud.up()
    assert devcloud.state.pids() == {}
    assert not devcloud.running()


def test_only_the_compute_apis_restart_alone(paths: Paths) -> None:
    with pytest.raises(DevCloudError, match="nova-api-public"):
        DevCloud(paths).stop_service("keystone")


def test_cli_prints_the_error_and_exits_1(monkeypatch: pytest.MonkeyPatch, paths: Paths) -> None:
    from bursting.cli import app

    def refuse(self: DevCloud) -> None:
        raise DevCloudError("port 5000 on 127.0.0.1 (devcloud's keystone) is taken by nc")

    monkeypatch.setenv("BURSTING_DEVCLOUD_HOME", str(paths.base))
    monkeypatch.setattr(DevCloud, "up", refuse)
    result = CliRunner().invoke(app, ["devcloud", "up"])
    assert result.exit_code == 1
    assert "port 5000" in result.output and "Traceback" not in result.output
