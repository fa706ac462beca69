"""Shared fixtures: the real personal HTCondor pool, started once per test session."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRATCH = Path("/var/tmp/bursting")

# Airflow reads its home at import: give the test session its own, never the user's ~/airflow.
AIRFLOW_HOME = Path(os.environ.setdefault("AIRFLOW_HOME", f"/tmp/bursting-airflow-{os.getpid()}"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that used the personal pool or devcloud reports what they looked like then."""
    report = yield
    if report.when != "call" or not report.failed:
        return report
    fixtures = getattr(item, "funcargs", {})
    pool = fixtures.get("devpool")
    if pool is not None:
        from bursting.devpool import condor_config as cc
        from tests.pool_report import pool_report

        log_dir = pool.layout.path(cc.local_dir("pool")) / "log"
        report.sections.append(("personal pool at the failure", pool_report(cc.COLLECTOR, log_dir)))
    cloud = fixtures.get("devcloud")
    if cloud is not None:
        from tests.devcloud_report import devcloud_report

        report.sections.append(("devcloud at the failure", devcloud_report(cloud)))
    return report


@pytest.fixture(scope="session")
def devpool(worker_image: object) -> Iterator[object]:
    """The personal pool for the whole session; stopped at the end if this session started it.
    Local-cloud instances boot from the worker image, so it is built (once) first."""
    if os.geteuid() != 0:
        pytest.fail("integration tests need root: the personal HTCondor pool chroots and mounts")
    from bursting.devpool import DevPool

    pool = DevPool()
    started_here = not pool.running()
    pool.up(shared=[REPO])
    yield pool
    for name in pool.node_names():
        pool.kill_node(name)
    pool.containers().kill_all()
    if started_here:
        pool.down()


@pytest.fixture(scope="session")
def htcondor(devpool: object) -> object:
    from bursting.pool.htcondor import HTCondorPool

    return HTCondorPool.for_devpool(devpool.token_dir)  # type: ignore[attr-defined]


@pytest.fixture
def job_dir() -> Iterator[Path]:
    """A directory jobs can write to, visible at the same path inside the pool."""
    path = SCRATCH / f"test-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def worker_image() -> object:
    """The burst worker image (Debian trixie, HTCondor, the payload): built once, then cached."""
    if os.geteuid() != 0:
        pytest.fail("the worker image needs root: it is built with debootstrap and buildah")
    from bursting.image import ensure_image

    return ensure_image(log=print)


DEVCLOUD_LOCK = Path("/tmp/bursting-devcloud.lock")


@pytest.fixture(scope="session")
def devcloud() -> Iterator[object]:
    """devcloud (a real OpenStack on 127.0.0.1) for the whole session, started only when a test
    asks for it. Sessions share one: whoever starts it holds the lock exclusively while starting,
    every user holds it shared while testing, and the starter stops it (by PID) once no other
    session uses it. One that was up before the session is used and left up."""
    import fcntl

    from bursting.devcloud import DevCloud

    cloud = DevCloud(log=print)
    with DEVCLOUD_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        started_here = not cloud.running()
        if started_here:
            cloud.up()  # on failure it stops what it started; closing the file unlocks
        fcntl.flock(lock, fcntl.LOCK_SH)
        # Tests that must stop devcloud (down, then up again) convert this to exclusive.
        cloud.session_lock = lock  # type: ignore[attr-defined]
        try:
            yield cloud
        finally:
            if started_here:
                fcntl.flock(lock, fcntl.LOCK_EX)  # waits for other sessions still using it
                cloud.down()
            fcntl.flock(lock, fcntl.LOCK_UN)
