"""The controller's image, built like the worker image, runs `bursting run` with the config the
Helm chart renders: as its non-root user, on a read-only root filesystem, serving /healthz."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helm_python import Chart

from bursting.image.controller import (
    current_controller_image,
    ensure_controller_image,
    version_reference,
)
from bursting.image.controller_key import UID
from bursting.image.manifest import ImageInfo
from bursting.image.tools import container_limits, image_id

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]


@pytest.fixture(scope="module")
def controller_image() -> ImageInfo:
    """Built once (about a minute when the worker image's layers are cached), then reused."""
    return ensure_controller_image(log=print)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def chart_config(tmp: Path) -> Path:
    """The chart's own config file for its default values, with a pool nobody answers for (the
    controller must serve its health endpoints without one) and a short interval."""
    values = {"config": {"pool": {"id": "imagetest", "collector": "127.0.0.1:9"}}}
    with Chart.load(REPO / "helm/bursting") as chart:
        rendered = chart.render(values, name="imagetest", namespace="default")
    config_map = yaml.safe_load(rendered["bursting/templates/configmap.yaml"])
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    config["pool"]["timeout_seconds"] = 3
    config["policy"] = {"interval_seconds": 5}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    return path


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(url: str, deadline_seconds: float) -> tuple[int, str]:
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            return get(url)
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def podman(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PODMAN, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def running(
    controller_image: ImageInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    """`bursting run` in the image as the chart runs it: its user, a read-only root, the state
    directory and /tmp as the only writable places, the port published on 127.0.0.1 only."""
    config = chart_config(tmp_path_factory.mktemp("controller-image"))
    name = f"bursting-controller-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    started = podman(
        "run", "--detach", "--name", name, "--read-only", "--user", f"{UID}:{UID}",
        *container_limits(),
        "--tmpfs", "/var/lib/bursting:rw,U", "--tmpfs", "/tmp:rw,U",
        "--volume", f"{config}:/etc/bursting/config.yaml:ro",
        "--publish", f"127.0.0.1:{port}:9187",
        controller_image.reference,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        yield name, port
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            podman("rm", "--force", "--time", "10", name)


def test_a_second_ensure_reuses_the_cached_image(controller_image: ImageInfo) -> None:
    started = time.monotonic()
    again = ensure_controller_image()
    elapsed = time.monotonic() - started
    assert again.image_id == controller_image.image_id
    assert again.manifest["built_at"] == controller_image.manifest["built_at"]
    assert elapsed < 10, f"a cached ensure_controller_image took {elapsed:.1f}s"
    assert current_controller_image() == again
    # The chart's default image (its appVersion tag) is this checkout's.
    assert image_id(version_reference()) == again.image_id


def test_the_image_holds_the_controller_but_not_the_payload_or_airflow(
    controller_image: ImageInfo,
) -> None:
    freeze = controller_image.manifest["pip_freeze"]
    assert isinstance(freeze, list)
    frozen = {str(line).split("==")[0].split(" @ ")[0].lower() for line in freeze}
    assert {"bursting", "htcondor", "openstacksdk", "kubernetes", "pydantic"} <= frozen
    assert not {"apache-airflow", "pythia8mc", "matplotlib"} & frozen
    assert controller_image.manifest["uid"] == UID


def test_healthz_answers_from_outside_on_the_loopback_port(running: tuple[str, int]) -> None:
    name, port = running
    status, body = wait_for(f"http://127.0.0.1:{port}/healthz", 120)
    assert (status, body) == (200, "ok: the controller process is alive\n"), podman(
        "logs", name
    ).stderr
    status, metrics = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and "bursting_" in metrics
    published = podman("port", name).stdout.strip()
    assert published == f"9187/tcp -> 127.0.0.1:{port}"


def test_healthz_answers_inside_the_container_as_the_non_root_user(
    running: tuple[str, int],
) -> None:
    name, port = running
    wait_for(f"http://127.0.0.1:{port}/healthz", 120)
    probe = (
        "import urllib.request as u; r = u.urlopen('http://127.0.0.1:9187/healthz', timeout=5); "
        "print(r.status)"
    )
    inside = podman("exec", name, "python", "-c", probe)
    assert inside.stdout.strip() == "200", inside.stderr
    # Every id of the serving process (pid 1, `bursting run`) is the image's user.
    status = podman("exec", name, "cat", "/proc/1/status").stdout
    ids = {line.split(":")[0]: line.split()[1:] for line in status.splitlines() if ":" in line}
    assert ids["Uid"] == [str(UID)] * 4 and ids["Gid"] == [str(UID)] * 4
    assert "bursting" in podman("exec", name, "cat", "/proc/1/cmdline").stdout


def test_the_root_filesystem_is_read_only(running: tuple[str, int]) -> None:
    name, _port = running
    inspect = podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", name)
    assert inspect.stdout.strip() == "true"
    for path in ("/opt/bursting/x", "/etc/bursting/x", "/x"):
        tried = podman("exec", name, "touch", path)
        assert tried.returncode != 0
        assert "Read-only file system" in tried.stderr
    # Its state went where the chart mounts a volume.
    wait_for(f"http://127.0.0.1:{running[1]}/healthz", 120)
    listing = podman("exec", name, "ls", "/var/lib/bursting").stdout.split()
    assert "state.db" in listing


def test_sigterm_stops_the_controller_cleanly(running: tuple[str, int]) -> None:
    name, port = running
    wait_for(f"http://127.0.0.1:{port}/healthz", 120)
    stopped = podman("stop", "--time", "60", name, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    logs = podman("logs", name).stderr
    assert code == "0", logs[-2000:]
    assert "Traceback" not in logs
