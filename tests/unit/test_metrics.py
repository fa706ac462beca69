"""The exporter over a controller driven with the fakes in fake time: every family and every
label value it can produce, the instrumented cloud wrapper, readiness transitions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bursting.clock import FakeClock
from bursting.config import Config, parse_config
from bursting.controller import Controller
from bursting.errors import PoolUnavailable
from bursting.metrics import CloudCalls, Exporter
from bursting.metrics.campaigns import CAMPAIGN_STATES
from bursting.metrics.labels import (
    ERROR_CLASSES,
    JOB_STATES,
    KINDS,
    OPERATIONS,
    OUTCOMES,
    REASONS,
    STATES,
    UNMATCHED,
    error_class,
)
from bursting.metrics.view import demand_by_shape
from bursting.model import (
    CloudStatus,
    Demand,
    Flavor,
    InstanceSpec,
    JobShape,
    JobState,
    PoolSnapshot,
    Secret,
)
from bursting.store import open_store
from bursting.workers import WorkerFactory
from tests.fakes import FakeCloud, FakePool

TOKEN = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0LXBvb2wtdG9rZW4.sig"  # token-like: must never leak
ONE_CORE = JobShape(1, 1024, 1024)
HUGE = JobShape(64, 1024)  # no flavor can run it
PRIVATE = Flavor("p.4c", 4, 8192, 40, 0, 0.0)
PUBLIC = Flavor("c.4c", 4, 8192, 40, 0, 0.5)
FAMILIES = {
    "bursting_build_info",
    "bursting_last_successful_cycle_timestamp_seconds",
    "bursting_cloud_api_calls",
    "bursting_cloud_api_errors",
    "bursting_cloud_api_call_seconds",
    "bursting_cycles",
    "bursting_cycle_duration_seconds",
    "bursting_planned_actions",
    "bursting_orphans_reaped",
    "bursting_source_read_failures",
    "bursting_instance_boot_seconds",
    "bursting_instance_join_seconds",
    "bursting_job_wait_seconds",
    "bursting_pool_up",
    "bursting_jobs",
    "bursting_oldest_idle_job_age_seconds",
    "bursting_idle_demand_jobs",
    "bursting_idle_demand_cores",
    "bursting_idle_demand_memory_bytes",
    "bursting_unschedulable_jobs",
    "bursting_instances",
    "bursting_instance_oldest_in_state_seconds",
    "bursting_cloud_up",
    "bursting_cloud_max_instances",
    "bursting_cloud_quota_known",
    "bursting_cloud_quota_headroom",
    "bursting_cloud_backoff_seconds",
    "bursting_cloud_backoff_failures",
    "bursting_cloud_retry_after_seconds",
    "bursting_spend_rate_per_hour",
    "bursting_spend",
    "bursting_spend_cap_per_hour",
    "bursting_campaign_jobs",
    "bursting_cloud_flavor_cores",
}
SHAPE = re.compile(r"^(\d+c-\d+mb-\d+gb(-\d+gpu)?|other)$")
ALLOWED: dict[str, Any] = {
    "cloud": {"private", "public"},
    "flavor": {"p.4c", "c.4c"},
    "state": set(STATES) | set(JOB_STATES) | set(CAMPAIGN_STATES),
    "kind": set(KINDS),
    "reason": set(REASONS) | set(UNMATCHED),
    "outcome": set(OUTCOMES),
    "operation": set(OPERATIONS),
    "error_class": set(ERROR_CLASSES),
    "source": {"pool", "private", "public"},
    "resource": {"instances", "cores", "memory_bytes"},
    "currency": {"CHF"},
    "version": {"0.1.0"},
    "python": re.compile(r"^\d+\.\d+\.\d+"),
    "shape": SHAPE,
    "campaign": {"zmumu", "ttbar", "other"},
    "le": re.compile(r"^(\d+(\.\d+)?(e[+-]?\d+)?|\+Inf)$"),
}


def make_config(store: str = "sqlite://") -> Config:
    def cloud(name: str, priority: int, flavor: Flavor, max_instances: int) -> dict[str, Any]:
        return {
            "name": name,
            "type": "local",
            "priority": priority,
            "max_instances": max_instances,
            "max_concurrent_boots": 3,
            "flavors": [
                {
                    "name": flavor.name,
                    "cpus": flavor.cpus,
                    "memory_mb": flavor.memory_mb,
                    "disk_gb": flavor.disk_gb,
                    "price_per_hour": flavor.price_per_hour,
                }
            ],
        }

    return parse_config(
        {
            "pool": {"id": "test"},
            "workers": {"token": {"env": "BURSTING_TEST_METRICS_TOKEN"}},
            "clouds": [cloud("private", 1, PRIVATE, 2), cloud("public", 5, PUBLIC, 4)],
            "policy": {
                "interval_seconds": 10,
                "min_idle_seconds": 0,
                "idle_seconds": 60,
                "boot_timeout_seconds": 120,
                "join_timeout_seconds": 120,
                "orphan_grace_seconds": 60,
                "spend": {"currency": "CHF", "max_per_hour": 3.0},
            },
            "store": {"url": store},
        }
    )


class FakeCampaigns:
    """HTCondorPool.campaign_queue and campaign_history over the fake pool's jobs: a finished
    job is in the history, the cursor is how many finished jobs were read."""

    def __init__(self, pool: FakePool) -> None:
        self.pool = pool
        self.asked: list[tuple[str | None, float]] = []

    def campaign_queue(self) -> dict[tuple[str, JobState], int]:
        counts: dict[tuple[str, JobState], int] = {}
        for job in self.pool.jobs:
            if job.campaign is not None and job.done_at is None:
                state = JobState.IDLE if job.started_at is None else JobState.RUNNING
                counts[(job.campaign, state)] = counts.get((job.campaign, state), 0) + 1
        return counts

    def campaign_history(
        self, after: str | None, since: float
    ) -> tuple[tuple[tuple[str, str, JobState, float], ...], str | None]:
        self.asked.append((after, since))
        if not self.pool.readable:
            raise PoolUnavailable("fake schedd is down")
        done = sorted(
            (j for j in self.pool.jobs if j.done_at is not None and j.campaign is not None),
            key=lambda j: (j.done_at, j.id),
        )
        read = int(after or 0)
        return (
            tuple(
                (f"1.{j.id}", j.campaign, JobState.COMPLETED, j.done_at)
                for j in reversed(done[read:])
                if j.campaign is not None and j.done_at is not None
            ),
            str(len(done)),
        )


class World:
    """The fakes of tests/fakes.py behind the instrumented wrapper, as build_controller wires
    the real providers, and an exporter on an injected registry."""

    def __init__(self, store: str = "sqlite://") -> None:
        self.config = make_config(store)
        self.clock = FakeClock()
        self.ticks = iter(range(10**9))
        self.calls = CloudCalls(timer=lambda: float(next(self.ticks)) * 0.02)
        self.pool = FakePool(self.clock, "test")
        self.private = FakeCloud("private", self.clock, self.pool, [PRIVATE], boot_delay=20)
        self.public = FakeCloud("public", self.clock, self.pool, [PUBLIC], boot_delay=40)
        self.controller = Controller(
            self.config,
            self.pool,
            {"private": self.calls.wrap(self.private), "public": self.calls.wrap(self.public)},
            open_store(store),
            self.clock,
            workers=WorkerFactory(self.config, token=Secret(TOKEN), admin_key=Secret(TOKEN)),
        )
        self.registry = CollectorRegistry()
        self.campaigns = FakeCampaigns(self.pool)
        self.exporter = Exporter(self.controller, self.calls, self.registry, self.campaigns)

    def cycle(self, count: int = 1) -> None:
        for _ in range(count):
            self.private.step()
            self.public.step()
            self.pool.step()
            self.controller.run_once()
            self.clock.advance(self.config.policy.interval_seconds)

    def scrape(self) -> str:
        return generate_latest(self.registry).decode()


def samples(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        out[family.name] = [(s.name, dict(s.labels), s.value) for s in family.samples]
    return out


def value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels}")


def busy_world() -> World:
    """A burst with a bit of everything: an orphan, an unreadable cloud for one cycle, jobs
    nothing can run, boots and joins, jobs starting, spend."""
    world = World()
    world.private.never_join = True
    orphan = InstanceSpec("test-private-orphan", "test", "private", PRIVATE)
    world.private.create(orphan)
    world.private.vms[orphan.id].status = CloudStatus.ACTIVE
    world.clock.advance(100)
    world.pool.add_jobs(20, ONE_CORE, duration=200, campaign="zmumu")
    world.pool.add_jobs(10, ONE_CORE, duration=200, campaign="ttbar")
    world.pool.add_jobs(3, HUGE, duration=10, campaign="not a campaign name")
    world.cycle()  # the orphan, older than the 60 s grace and never in the pool, is reaped
    world.private.never_join = False
    world.public.readable = False
    world.cycle()
    world.public.readable = True
    world.cycle(12)
    return world


def test_every_family_is_exported_and_every_label_value_is_allowed() -> None:
    world = busy_world()
    text = world.scrape()
    found = samples(text)
    assert set(found) == FAMILIES
    for name, rows in found.items():
        assert name.startswith("bursting_")
        for sample, labels, _ in rows:
            for label, got in labels.items():
                allowed = ALLOWED.get(label)
                assert allowed is not None, f"{sample}: label {label} is not in the allowed set"
                ok = allowed.match(got) if isinstance(allowed, re.Pattern) else got in allowed
                assert ok, f"{sample}: {label}={got!r} is not allowed"
    for forbidden in (TOKEN, "c2VjcmV0", "test-private-", "test-public-", "orphan-", "alice"):
        assert forbidden not in text.replace('reason="orphan"', "")


def test_counters_and_histograms_tell_the_burst() -> None:
    world = busy_world()
    text = world.scrape()
    assert value(text, "bursting_orphans_reaped_total", cloud="private") == 1
    assert value(text, "bursting_planned_actions_total", kind="create", reason="demand") >= 1
    assert value(text, "bursting_unschedulable_jobs", reason="too_many_cores") == 3
    assert value(text, "bursting_instance_boot_seconds_count", cloud="private") >= 1
    assert value(text, "bursting_instance_join_seconds_count", cloud="private") >= 1
    assert value(text, "bursting_job_wait_seconds_count") >= 8
    assert value(text, "bursting_cycles_total") == 14
    assert value(text, "bursting_jobs", state="running") >= 8
    errors = value(
        text,
        "bursting_cloud_api_errors_total",
        cloud="public",
        operation="list_instances",
        error_class="CloudUnavailable",
    )
    assert errors == 1
    assert (
        value(
            text,
            "bursting_source_read_failures_total",
            source="public",
            error_class="CloudUnavailable",
        )
        == 1
    )
    calls = value(
        text, "bursting_cloud_api_calls_total", cloud="public", operation="list_instances"
    )
    assert calls == 14
    seconds = value(
        text, "bursting_cloud_api_call_seconds_count", cloud="public", operation="list_instances"
    )
    assert seconds == calls
    assert value(text, "bursting_cloud_up", cloud="public") == 1
    assert value(text, "bursting_spend_total", cloud="public", currency="CHF") > 0
    assert value(text, "bursting_spend_cap_per_hour", currency="CHF") == 3.0
    assert value(text, "bursting_last_successful_cycle_timestamp_seconds") == (
        world.controller.last_success_at
    )


def test_idle_demand_by_shape_is_bounded_to_the_top_shapes_and_other() -> None:
    pool = PoolSnapshot(
        0.0,
        tuple(Demand(JobShape(1 + n, 1024), (0.0,) * (n + 1)) for n in range(15)),
        (),
    )
    rows = demand_by_shape(pool, top=10)
    assert len(rows) == 11 and rows[-1].shape == "other"
    assert rows[0].shape == "15c-1024mb-0gb" and rows[0].jobs == 15
    assert rows[-1].jobs == sum(range(1, 6)) and rows[-1].cores == sum(n * n for n in range(1, 6))
    assert sum(r.jobs for r in rows) == sum(range(1, 16))
    assert all(SHAPE.match(r.shape) for r in rows)


def test_same_resources_with_different_requirements_share_one_label() -> None:
    a = JobShape(1, 1024, requirements="(TARGET.HasCVMFS =?= true)")
    b = JobShape(1, 1024, requirements='(Owner == "alice")')
    (row,) = demand_by_shape(PoolSnapshot(0.0, (Demand(a, (0.0,)), Demand(b, (0.0, 1.0))), ()))
    assert (row.shape, row.jobs, row.memory_bytes) == ("1c-1024mb-0gb", 3, 3 * 1024 * 1024**2)


def test_error_classes_fold_onto_the_errors_module() -> None:
    from bursting.errors import AuthError, CloudUnavailable, QuotaExceeded

    class SdkTimeout(CloudUnavailable):
        pass

    assert error_class(SdkTimeout("x")) == "CloudUnavailable"
    assert error_class(QuotaExceeded("x")) == "QuotaExceeded"
    assert error_class(AuthError("x")) == "AuthError"
    assert error_class(TimeoutError()) == "TimeoutError"
    assert error_class(KeyError("i-123")) == "unexpected"


def test_the_wrapper_delegates_and_counts_every_operation() -> None:
    world = World()
    wrapped = world.controller.clouds["private"]
    assert wrapped.name == "private"
    assert wrapped.flavors() == (PRIVATE,)
    wrapped.quota()
    world.private.readable = False
    with pytest.raises(Exception, match="API is down"):
        wrapped.delete("x")
    counts = world.calls.counts()
    assert counts.calls == {
        ("private", "flavors"): 1,
        ("private", "quota"): 1,
        ("private", "delete"): 1,
    }
    assert counts.errors == {("private", "delete", "CloudUnavailable"): 1}
    assert wrapped.boot_delay == 20  # a provider's own attributes pass through


def test_build_controller_wraps_every_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    from bursting import runtime
    from bursting.metrics.calls import InstrumentedProvider

    clock = FakeClock()
    pool = FakePool(clock, "test")
    fake = FakeCloud("private", clock, pool, [PRIVATE])
    monkeypatch.setattr(runtime, "build_clouds", lambda config, clock: {"private": fake})
    calls = CloudCalls()
    controller = runtime.build_controller(make_config(), clock, calls=calls)
    try:
        provider = controller.clouds["private"]
        assert isinstance(provider, InstrumentedProvider) and provider.inner is fake
        provider.quota()
        assert calls.counts().calls == {("private", "quota"): 1}
    finally:
        controller.close()


def test_a_fresh_exporter_scrapes_without_a_cycle() -> None:
    world = World()
    found = samples(world.scrape())
    assert "bursting_build_info" in found and "bursting_instances" not in found
    assert "bursting_last_successful_cycle_timestamp_seconds" not in found


def test_readiness_follows_cycles_in_fake_time() -> None:
    world = World()
    first = world.exporter.readiness()
    assert not first.ready and "no cycle has completed yet" in first.reason
    world.cycle()  # completes, then advances 10 s
    assert world.exporter.readiness().ready
    world.clock.advance(20)  # 30 s since: three intervals, still ready
    assert world.exporter.readiness().ready
    world.clock.advance(1)
    stale = world.exporter.readiness()
    assert not stale.ready and "last successful cycle 31s ago" in stale.reason
    world.cycle()
    assert world.exporter.readiness().ready


def test_readiness_names_a_failed_cycle() -> None:
    world = World()
    world.cycle()
    world.pool.readable = False

    def broken() -> PoolSnapshot:
        from bursting.errors import PermanentError

        raise PermanentError("store on fire")

    world.controller.dry_run = broken  # type: ignore[assignment,method-assign]
    world.controller.run_forever(cycles=4)  # fake clock: sleeping advances time
    ready = world.exporter.readiness()
    assert not ready.ready and "PermanentError: store on fire" in ready.reason


def test_readiness_needs_a_writable_store(tmp_path: Path) -> None:
    world = World(store=f"sqlite:///{tmp_path}/state/state.db")
    world.cycle()
    assert world.exporter.readiness().ready
    (tmp_path / "state" / "state.db").unlink()
    (tmp_path / "state" / "state.db").mkdir()
    ready = world.exporter.readiness()
    assert not ready.ready and ready.reason.startswith("store not writable:")
