"""The controller's side of the cloud seam: worker specs on every create, retry_after, flavors
checked at start, per-cloud timeouts, and the cycle record other readers use."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bursting.clock import FakeClock
from bursting.config import Config, parse_config
from bursting.controller import Controller
from bursting.errors import CloudUnavailable, ConfigError, QuotaExceeded
from bursting.model import CloudSnapshot, Flavor, InstanceSpec, InstanceState, JobShape, Secret
from bursting.store import open_store
from bursting.workers import WorkerFactory
from tests.fakes import FakeCloud, FakePool

FLAVOR = Flavor("m4", 4, 8192, 40, 0, 0.0)
ONE_CORE = JobShape(1, 1024)


def make_config(store: str = "sqlite://", **cloud: Any) -> Config:
    return parse_config(
        {
            "pool": {"id": "seam"},
            "workers": {
                "collector": "cm.example.org:9618",
                "attributes": {"Site": "CERN"},
                "token": {"env": "BURSTING_TEST_WORKER_TOKEN"},
                "admin_key": {"env": "BURSTING_TEST_ADMIN_KEY"},
            },
            "clouds": [
                {
                    "name": "only",
                    "type": "local",
                    "flavors": [
                        {"name": "m4", "cpus": 4, "memory_mb": 8192, "disk_gb": 40},
                    ],
                    "provides": {"HasCVMFS": True},
                    "call_timeout_seconds": 5,
                    **cloud,
                }
            ],
            "policy": {"min_idle_seconds": 0, "interval_seconds": 10},
            "store": {"url": store},
        }
    )


class Recording(FakeCloud):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.specs: list[InstanceSpec] = []
        self.listings = 0
        self.retry_after: float | None = None

    def create(self, spec: InstanceSpec) -> Any:
        self.specs.append(spec)
        return super().create(spec)

    def list_instances(self, pool_id: str) -> CloudSnapshot:
        self.listings += 1
        if self.retry_after is not None:
            raise CloudUnavailable("rate limited", retry_after=self.retry_after)
        return super().list_instances(pool_id)


def world(config: Config, flavors: tuple[Flavor, ...] = (FLAVOR,)) -> tuple[Controller, Recording]:
    clock = FakeClock()
    pool = FakePool(clock, "seam")
    cloud = Recording("only", clock, pool, list(flavors))
    controller = Controller(
        config,
        pool,
        {"only": cloud},
        open_store(config.store.url),
        clock,
        workers=WorkerFactory(
            config, token=Secret("s3cret-pool-token"), admin_key=Secret("s3cret-admin-key")
        ),
    )
    pool.add_jobs(2, ONE_CORE, duration=60)
    return controller, cloud


def test_every_create_carries_the_worker_spec_from_the_workers_section() -> None:
    controller, cloud = world(make_config())
    controller.run_once()
    (spec,) = cloud.specs
    assert spec.worker is not None
    worker = spec.worker
    assert (worker.instance_id, worker.cloud, worker.pool_id) == (spec.id, "only", "seam")
    assert worker.collector == "cm.example.org:9618"
    assert worker.extra_attrs == {"Site": "CERN", "HasCVMFS": True, "HasBurstingPayload": True}
    assert worker.token.reveal() == "s3cret-pool-token"
    assert worker.admin_key is not None and worker.admin_key.reveal() == "s3cret-admin-key"
    assert "s3cret" not in repr(spec) and "s3cret" not in repr(worker)


def test_the_token_comes_from_the_environment_and_its_absence_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    factory = WorkerFactory(make_config())
    monkeypatch.delenv("BURSTING_TEST_WORKER_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"workers\.token\.env"):
        factory.token()
    monkeypatch.setenv("BURSTING_TEST_WORKER_TOKEN", "abc\n")
    assert factory.token().reveal() == "abc"
    monkeypatch.delenv("BURSTING_TEST_ADMIN_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"workers\.admin_key\.env"):
        factory.admin_key()
    monkeypatch.setenv("BURSTING_TEST_ADMIN_KEY", "k3y")
    key = factory.admin_key()
    assert key is not None and key.reveal() == "k3y"


def test_without_an_admin_key_workers_get_none() -> None:
    config = make_config()
    config = config.model_copy(
        update={"workers": config.workers.model_copy(update={"admin_key": None})}
    )
    assert WorkerFactory(config, token=Secret("t")).admin_key() is None


def test_retry_after_is_honoured() -> None:
    controller, cloud = world(make_config())
    cloud.retry_after = 45
    controller.run_once()
    assert cloud.listings == 1
    cloud.retry_after = None
    clock = controller.clock
    assert isinstance(clock, FakeClock)
    for _ in range(4):  # 40 s: still within the 45 s it asked for
        clock.advance(10)
        report = controller.run_once()
        assert report.record is not None
        assert report.record.clouds[0].error_class == "RetryAfter"
    assert cloud.listings == 1 and cloud.specs == []
    clock.advance(10)
    controller.run_once()
    assert cloud.listings == 2 and len(cloud.specs) == 1


def test_configured_flavors_are_checked_against_the_cloud_at_start() -> None:
    controller, _ = world(make_config(), flavors=(Flavor("m4", 8, 8192),))
    with pytest.raises(ConfigError, match=r"clouds\[0\]\.flavors\[0\]: only's m4 has 8 cores"):
        controller.start()
    missing, _ = world(make_config(), flavors=(Flavor("other", 4, 8192),))
    with pytest.raises(ConfigError, match="offers no flavor 'm4'"):
        missing.start()
    fine, _ = world(make_config())
    fine.start()


def test_a_listing_that_hangs_past_the_cloud_timeout_is_unknown_not_empty() -> None:
    controller, cloud = world(make_config(call_timeout_seconds=0.2))
    release = threading.Event()
    original = cloud.list_instances

    def hang(pool_id: str) -> CloudSnapshot:
        release.wait(5)
        return original(pool_id)

    cloud.list_instances = hang  # type: ignore[method-assign]
    try:
        report = controller.run_once()
    finally:
        release.set()
        controller.close()
    assert report.record is not None
    (read,) = report.record.clouds
    assert (read.ok, read.error_class) == (False, "Timeout")
    assert cloud.specs == []  # an unread cloud gets no creates


def test_the_cycle_record_is_stored_and_read_through_another_connection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    controller, _ = world(make_config(store=url))
    controller.run_once()
    reader = open_store(url)  # as `bursting status` or a metrics thread would
    (record,) = reader.cycles(1)
    assert record.pool.ok and record.idle_jobs == 2
    (action,) = record.actions
    assert (action.kind, action.code, action.outcome) == ("create", "demand", "done")
    assert record.instances == {"only": {"requested": 1}}
    assert record.seconds >= 0 and not record.dry_run
    assert "s3cret" not in record.to_json()


def test_a_create_that_hangs_past_the_cloud_timeout_stays_in_flight_and_is_not_repeated() -> None:
    controller, cloud = world(make_config(call_timeout_seconds=0.2))
    release = threading.Event()
    original = cloud.create
    calls: list[str] = []

    def slow(spec: InstanceSpec) -> Any:
        calls.append(spec.id)
        release.wait(5)
        return original(spec)

    cloud.create = slow  # type: ignore[method-assign]
    try:
        first = controller.run_once()
        assert first.record is not None
        assert [a.outcome for a in first.record.actions] == ["pending"]
        clock = controller.clock
        assert isinstance(clock, FakeClock)
        clock.advance(10)
        second = controller.run_once()  # the create is still out: asked again? no, skipped
        assert second.record is not None
        assert [a.outcome for a in second.record.actions] == ["skipped"]
    finally:
        release.set()
        controller.close()
    assert len(calls) == 1


def test_a_refusal_that_answers_after_the_timeout_is_not_lost_and_not_asked_again() -> None:
    controller, cloud = world(make_config(call_timeout_seconds=0.2))
    release = threading.Event()
    calls: list[str] = []

    def refused_late(spec: InstanceSpec) -> Any:
        calls.append(spec.id)
        release.wait(5)
        raise QuotaExceeded("only: Quota exceeded for instances")

    cloud.create = refused_late  # type: ignore[method-assign]
    try:
        first = controller.run_once()
        assert first.record is not None
        assert [a.outcome for a in first.record.actions] == ["pending"]
        (asked,) = calls
        release.set()
        wait = time.monotonic() + 10
        while not all(f.done() for f in controller._unanswered) and time.monotonic() < wait:
            time.sleep(0.01)
        clock = controller.clock
        assert isinstance(clock, FakeClock)
        clock.advance(10)
        controller.run_once()
        (gone,) = [i for i in controller.store.instances(include_gone=True) if i.id == asked]
        assert gone.state is InstanceState.GONE
        assert "create refused (QuotaExceeded)" in gone.reason
        assert ("only", "m4") in controller.store.backoffs()
        assert calls == [asked]  # backing off: not asked again
    finally:
        release.set()
        controller.close()


def test_only_a_create_asked_again_may_find_its_instance_already_there() -> None:
    controller, cloud = world(make_config())
    original = cloud.create
    answers = iter([CloudUnavailable("only: connection refused"), None])

    def flaky(spec: InstanceSpec) -> Any:
        error = next(answers)
        if error is not None:
            cloud.specs.append(spec)
            raise error
        return original(spec)  # records the spec too

    cloud.create = flaky  # type: ignore[method-assign]
    try:
        controller.run_once()
        clock = controller.clock
        assert isinstance(clock, FakeClock)
        clock.advance(10)
        controller.run_once()
    finally:
        controller.close()
    first, again = cloud.specs
    assert first.id == again.id
    assert first.never_asked and not again.never_asked
