"""Burst workers share nothing with the submit host: a local-cloud instance boots from the worker
image as its own container, and a job on it sees neither the repo, nor the venv, nor the submit
directory, while its output still comes back to the submit side through HTCondor file transfer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bursting.clock import SystemClock
from bursting.clouds.local import LocalCloudProvider
from bursting.clouds.local_config import LocalCloud
from bursting.devpool.containers import container_name
from bursting.image import IMAGE_PYTHON
from bursting.model import CloudStatus, Flavor, InstanceSpec
from bursting.pool.htcondor import HTCondorPool

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
FLAVOR = Flavor("iso.1c", 1, 768)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def worker(devpool: Any, htcondor: HTCondorPool, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """One instance of a local cloud, booted and joined to the pool."""
    config = LocalCloud.model_validate(
        {
            "name": "iso",
            "type": "local",
            "flavors": [{"name": FLAVOR.name, "cpus": FLAVOR.cpus, "memory_mb": FLAVOR.memory_mb}],
            "local": {"boot_delay_seconds": 0, "state_dir": str(tmp_path / "clouds")},
        }
    )
    cloud = LocalCloudProvider(config, devpool.containers(), SystemClock())
    instance_id = f"iso-{uuid.uuid4().hex[:6]}"
    worker = devpool.worker_spec(instance_id, FLAVOR.cpus, FLAVOR.memory_mb)
    spec = InstanceSpec(instance_id, "iso-pool", "iso", FLAVOR, worker)
    try:
        assert cloud.create(spec).status in (CloudStatus.BUILD, CloudStatus.ACTIVE)
        wait_for(
            f"{instance_id} to join",
            lambda: any(w.instance_id == instance_id for w in htcondor.workers()),
        )
        yield cloud, instance_id
    finally:
        cloud.delete(instance_id)


def test_job_on_a_local_cloud_worker_sees_nothing_of_the_submit_host(
    worker: tuple[Any, str], htcondor: HTCondorPool, job_dir: Path
) -> None:
    _, instance_id = worker
    paths = {
        "repo": str(REPO),
        "submit_dir": str(job_dir),
        "host_python": sys.executable,
        "host_prefix": sys.base_prefix,
    }
    # The job's input travels with it: the script is transferred, never read in place.
    (job_dir / "probe.py").write_text(
        "import json, os, sys\n"
        "import bursting.physics\n"
        f"paths = {paths!r}\n"
        "seen = {name: os.path.exists(path) for name, path in paths.items()}\n"
        "json.dump({'seen': seen, 'cwd': os.getcwd(), 'python': sys.executable,\n"
        "           'payload': bursting.physics.__file__}, open('probe.json', 'w'))\n"
    )
    cluster = htcondor.submit(
        f"executable = {IMAGE_PYTHON}\n"
        "transfer_executable = false\n"
        "arguments = probe.py\n"
        "transfer_input_files = probe.py\n"
        f'requirements = TARGET.BurstingInstance == "{instance_id}"\n'
        "should_transfer_files = YES\n"
        "when_to_transfer_output = ON_EXIT\n"
        f"initialdir = {job_dir}\n"
        "output = probe.out\nerror = probe.err\nlog = probe.log\n"
        "request_cpus = 1\nrequest_memory = 128\n"
    )
    try:
        status = wait_for(
            "the probe job to finish",
            lambda: (s := htcondor.job_status(cluster)).done and s,
        )
        (job,) = status.jobs
        assert job.exit_code == 0, (job.hold_reason, (job_dir / "probe.err").read_text())
        # The output came back through file transfer: the worker never saw this directory.
        result = json.loads((job_dir / "probe.json").read_text())
        assert result["seen"] == {
            "repo": False,
            "submit_dir": False,
            "host_python": False,
            "host_prefix": False,
        }, result
        assert result["python"] == IMAGE_PYTHON
        assert result["payload"].startswith("/opt/bursting/")
        assert not result["cwd"].startswith(str(job_dir)), "the job ran in its own scratch dir"
    finally:
        htcondor.remove(cluster)


def test_a_worker_is_its_own_container_sized_to_its_flavor(worker: tuple[Any, str]) -> None:
    cloud, instance_id = worker
    shown = podman("container", "inspect", container_name(instance_id))
    assert shown.returncode == 0, shown.stderr
    (container,) = json.loads(shown.stdout)
    host_config = container["HostConfig"]
    assert host_config["Memory"] == FLAVOR.memory_mb * 1024 * 1024
    assert host_config["NanoCpus"] == FLAVOR.cpus * 10**9
    mounted = {m["Source"] for m in container["Mounts"]}
    assert all("/etc/condor" in m["Destination"] for m in container["Mounts"]), mounted
    for private in (REPO, Path(sys.prefix), Path(sys.base_prefix), Path("/var/tmp/bursting")):
        assert not any(Path(source).is_relative_to(private) for source in mounted), private

    cloud.delete(instance_id)
    assert podman("container", "exists", container_name(instance_id)).returncode == 1
    assert instance_id not in [i.id for i in cloud.list_instances("iso-pool").instances]
