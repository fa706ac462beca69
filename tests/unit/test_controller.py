"""The controller over stateful fakes of the pool and two clouds, in fake time."""

from __future__ import annotations

import threading
from typing import Any

from bursting.clock import FakeClock
from bursting.config import Config, parse_config
from bursting.controller import Controller
from bursting.errors import CloudUnavailable, QuotaExceeded
from bursting.model import (
    ActionKind,
    CloudInstance,
    CloudSnapshot,
    CloudStatus,
    Flavor,
    InstanceSpec,
    InstanceState,
    JobShape,
    Secret,
)
from bursting.store import open_store
from bursting.workers import WorkerFactory
from tests.fakes import FakeCloud, FakePool

ONE_CORE = JobShape(1, 1024)
PRIVATE = Flavor("p.4c", 4, 8192, 40, 0, 0.0)
PUBLIC = Flavor("c.4c", 4, 8192, 40, 0, 0.5)


def make_config(cloud_settings: dict[str, Any] | None = None, **policy: Any) -> Config:
    def cloud(name: str, priority: int, flavor: Flavor, max_instances: int) -> dict[str, Any]:
        return {
            **(cloud_settings or {}),
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

    settings = {
        "interval_seconds": 10,
        "min_idle_seconds": 0,
        "idle_seconds": 60,
        "boot_timeout_seconds": 120,
        "join_timeout_seconds": 120,
        "missing_cycles_before_gone": 2,
        "orphan_grace_seconds": 60,
        "backoff": {"initial_seconds": 300, "max_seconds": 1200},
        **policy,
    }
    return parse_config(
        {
            "pool": {"id": "test"},
            "clouds": [cloud("private", 1, PRIVATE, 2), cloud("public", 5, PUBLIC, 4)],
            "policy": settings,
            "store": {"url": "sqlite://"},
        }
    )


class World:
    def __init__(self, config: Config | None = None, store: Any = None) -> None:
        self.config = config or make_config()
        self.clock = FakeClock()
        self.pool = FakePool(self.clock, "test")
        self.private = FakeCloud("private", self.clock, self.pool, [PRIVATE])
        self.public = FakeCloud("public", self.clock, self.pool, [PUBLIC])
        self.store = store or open_store("sqlite://")
        self.controller = self.new_controller()

    def new_controller(self) -> Controller:
        return Controller(
            self.config,
            self.pool,
            {"private": self.private, "public": self.public},
            self.store,
            self.clock,
            workers=WorkerFactory(
                self.config, token=Secret("test-pool-token"), admin_key=Secret("test-admin-key")
            ),
        )

    def cycle(self, count: int = 1) -> None:
        for _ in range(count):
            self.private.step()
            self.public.step()
            self.pool.step()
            self.controller.run_once()
            self.clock.advance(self.config.policy.interval_seconds)

    def live(self, cloud: str | None = None) -> list[Any]:
        return [i for i in self.store.instances() if cloud in (None, i.cloud)]

    def run_until_quiet(self, limit: int = 200) -> None:
        for _ in range(limit):
            self.cycle()
            if not self.pool.unfinished and not self.live():
                return
        raise AssertionError(f"not quiet after {limit} cycles: {self.live()}")


def test_burst_fills_private_first_then_public_then_shrinks_to_zero() -> None:
    world = World()
    world.pool.add_jobs(40, ONE_CORE, duration=120)
    world.cycle()
    created = [a for a in world.controller.last.plan.actions if a.kind is ActionKind.CREATE]
    by_cloud = {c: sum(1 for a in created if a.cloud == c) for c in ("private", "public")}
    assert by_cloud == {"private": 2, "public": 3}  # private's max 2; public's 3 concurrent boots
    assert all(a.reason for a in created)
    world.run_until_quiet()
    assert world.pool.interrupted == []
    assert world.private.vms == {} and world.public.vms == {}
    assert world.private.create_calls + world.public.create_calls >= 5


def test_never_more_than_max_instances_or_concurrent_boots() -> None:
    world = World()
    world.pool.add_jobs(200, ONE_CORE, duration=600)
    peak = {"private": 0, "public": 0, "booting": 0}
    for _ in range(40):
        world.cycle()
        private = world.live("private")
        public = world.live("public")
        assert len(private) <= 2 and len(public) <= 4
        booting = [i for i in public if i.state.provisioning]
        assert len(booting) <= 3
        peak = {
            "private": max(peak["private"], len(private)),
            "public": max(peak["public"], len(public)),
            "booting": max(peak["booting"], len(booting)),
        }
    assert peak == {"private": 2, "public": 4, "booting": 3}  # the limits were reached, not missed


def test_failing_cloud_backs_off_and_the_other_takes_the_load() -> None:
    world = World()
    world.private.fail_boots = True
    world.pool.add_jobs(8, ONE_CORE, duration=60)
    world.cycle(6)
    backoffs = world.store.backoffs()
    assert ("private", "p.4c") in backoffs
    assert backoffs[("private", "p.4c")].until > world.clock.now()
    history = [
        h
        for i in world.store.instances(include_gone=True)
        if i.cloud == "private"
        for h in world.store.history(i.id)
    ]
    assert any(to == "failed" and "boot failed" in why for _, _, to, why in history)
    world.run_until_quiet()
    assert world.pool.interrupted == []
    ran_public = [j for j in world.pool.jobs if j.done_at is not None]
    assert len(ran_public) == 8


def test_backoff_doubles_then_resets_on_success() -> None:
    world = World(make_config(backoff={"initial_seconds": 30, "max_seconds": 100}))
    world.public.hang_in_build = True
    world.private.fail_boots = True
    world.pool.add_jobs(4, ONE_CORE, duration=30)
    seen = []
    for _ in range(60):
        world.cycle()
        entry = world.store.backoffs().get(("private", "p.4c"))
        if entry and (not seen or entry.failures != seen[-1][0]):
            seen.append((entry.failures, entry.until - world.clock.now()))
    assert [n for n, _ in seen[:3]] == [1, 2, 3]
    assert max(delay for _, delay in seen) <= 100
    world.private.fail_boots = False
    for _ in range(60):
        world.cycle()
        if ("private", "p.4c") not in world.store.backoffs():
            break
    assert ("private", "p.4c") not in world.store.backoffs()


def test_instance_hanging_in_build_is_deleted_after_boot_timeout() -> None:
    world = World()
    world.private.hang_in_build = True
    world.public.hang_in_build = True
    world.pool.add_jobs(2, ONE_CORE, duration=30)
    world.cycle()
    first = {i.id for i in world.live()}
    assert first
    world.cycle(15)  # 150 s > boot timeout 120 s
    assert not first & set(world.private.vms) and not first & set(world.public.vms)
    reasons = [r for i in first for _, _, to, r in world.store.history(i) if to == "failed"]
    assert reasons and all("still BUILD" in r for r in reasons)


def test_instance_that_never_joins_is_deleted_after_join_timeout() -> None:
    world = World()
    world.private.never_join = True
    world.public.never_join = True
    world.pool.add_jobs(2, ONE_CORE, duration=30)
    world.cycle()
    first = {i.id for i in world.live()}
    world.cycle(20)
    assert not first & (set(world.private.vms) | set(world.public.vms))
    reasons = [r for i in first for _, _, to, r in world.store.history(i) if to == "failed"]
    assert reasons and all("never joined" in r for r in reasons)


def test_unreadable_pool_means_no_drain_and_no_delete() -> None:
    world = World(make_config(idle_seconds=20))
    world.pool.add_jobs(4, ONE_CORE, duration=20)
    for _ in range(30):
        if not world.pool.unfinished:
            break
        world.cycle()
    assert not world.pool.unfinished
    running = [i for i in world.live() if i.state is InstanceState.RUNNING]
    assert running  # idle now; without data they must stay
    world.pool.readable = False
    for _ in range(5):
        world.cycle()
        kinds = {a.kind for a in world.controller.last.plan.actions}
        assert ActionKind.DELETE not in kinds and ActionKind.DRAIN not in kinds
    assert {i.id for i in running} <= set(world.private.vms) | set(world.public.vms)
    world.pool.readable = True
    world.run_until_quiet()


def test_unreadable_cloud_keeps_its_instances_and_the_other_cloud_serves() -> None:
    world = World()
    world.pool.add_jobs(4, ONE_CORE, duration=600)
    world.cycle(6)
    kept = set(world.private.vms)
    assert kept
    world.private.readable = False
    world.pool.add_jobs(20, ONE_CORE, duration=600)
    world.cycle(4)
    assert set(world.private.vms) == kept
    assert world.public.vms  # overflow still went somewhere
    notes = " ".join(world.controller.last.plan.notes)
    assert "private: unreadable" in notes


def test_busy_worker_is_never_drained_or_deleted() -> None:
    world = World(make_config(idle_seconds=10))
    world.pool.add_jobs(1, ONE_CORE, duration=3000)
    world.cycle(8)
    (busy,) = [i for i in world.live() if i.state is InstanceState.RUNNING]
    (job,) = world.pool.jobs
    assert job.worker == busy.id
    world.cycle(100)  # 1000 s idle_seconds=10 would have drained an idle worker long ago
    assert job.done_at is None and job.worker == busy.id  # still running there
    assert busy.id in world.private.vms
    assert not any(n.startswith(busy.id) for n in world.pool.drained)
    assert world.pool.interrupted == []


def test_restart_reconciles_from_store_and_clouds_without_duplicates() -> None:
    store = open_store("sqlite://")
    world = World(store=store)
    world.pool.add_jobs(30, ONE_CORE, duration=200)
    world.cycle(3)
    before = {i.id for i in world.live()}
    world.controller.close()
    world.controller = world.new_controller()  # a restarted controller, same store
    world.cycle(3)
    ids = {i.id for i in world.live()}
    assert before <= ids
    assert len(world.private.vms) <= 2 and len(world.public.vms) <= 4
    world.run_until_quiet()
    assert world.pool.interrupted == []


def test_crash_after_intent_before_create_recreates_the_same_id() -> None:
    from bursting.planner import plan_cycle

    world = World()
    world.pool.add_jobs(4, ONE_CORE, duration=30)
    pool, clouds = world.controller.observe()
    plan = plan_cycle(
        world.config, [], {}, pool, clouds, world.clock.now(), world.controller.new_id
    )
    world.store.save(plan.instances, world.clock.now())  # intent on disk, then "kill -9"
    intended = {i.id for i in plan.instances}
    assert intended and not world.private.vms
    world.controller = world.new_controller()
    world.cycle()
    assert set(world.private.vms) | set(world.public.vms) == intended


def test_tagged_orphan_is_reaped_after_grace_and_live_worker_adopted() -> None:
    world = World()
    world.private.never_join = True  # an orphan whose worker never showed up
    spec = InstanceSpec("test-private-orphan", "test", "private", PRIVATE)
    world.private.create(spec)
    world.private.vms[spec.id].status = CloudStatus.ACTIVE
    live = InstanceSpec("test-public-alive", "test", "public", PUBLIC)
    world.public.create(live)
    world.public.step()
    world.clock.advance(100)
    world.public.step()  # joins the pool
    assert "test-public-alive" in world.pool.workers
    world.cycle()
    assert "test-private-orphan" not in world.private.vms  # older than the 60 s grace
    adopted = {i.id: i for i in world.live()}
    assert adopted["test-public-alive"].state is InstanceState.RUNNING


class RefusingCloud(FakeCloud):
    """Reports room in its quota, then refuses every create (another project took the cores)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused: list[str] = []

    def create(self, spec: InstanceSpec) -> CloudInstance:
        self.refused.append(spec.id)
        raise QuotaExceeded(f"{self.name}: cores quota exceeded")


def test_quota_refusal_forgets_the_instance_and_backs_off() -> None:
    world = World()
    world.private = RefusingCloud("private", world.clock, world.pool, [PRIVATE])
    world.controller = world.new_controller()
    world.pool.add_jobs(8, ONE_CORE, duration=30)
    world.cycle()
    report = world.controller.last
    assert report is not None
    refused = set(world.private.refused)
    assert len(refused) == 2  # the plan filled private first; both creates were refused
    assert {a.instance_id for a, _ in report.failed} == refused
    assert all("quota" in str(why) for _, why in report.failed)
    assert world.private.vms == {}

    # The records are not left waiting for a boot that will never come: GONE, with the reason.
    assert not [i for i in world.live("private")]
    records = {i.id: i for i in world.store.instances(include_gone=True) if i.id in refused}
    assert set(records) == refused
    assert all(r.state is InstanceState.GONE for r in records.values())
    assert all("refused" in r.reason and "quota" in r.reason for r in records.values())
    for instance_id in refused:
        assert [to for _, _, to, _ in world.store.history(instance_id)][-1] == "gone"

    # The cloud/flavor backs off, so the next cycle sends the demand to the other cloud.
    backoff = world.store.backoffs()[("private", "p.4c")]
    assert backoff.until > world.clock.now()
    world.cycle()
    created = [a for a in world.controller.last.plan.actions if a.kind is ActionKind.CREATE]
    assert created and {a.cloud for a in created} == {"public"}
    assert set(world.private.refused) == refused  # private was not asked again while backing off
    world.run_until_quiet()
    assert world.private.vms == {}
    assert all(j.done_at is not None and not j.interrupted for j in world.pool.jobs)


def test_spend_cap_limits_priced_instances() -> None:
    world = World(make_config(spend={"max_per_hour": 1.0}))
    world.pool.add_jobs(100, ONE_CORE, duration=600)
    world.cycle(10)
    public = world.live("public")
    assert len(public) == 2  # 2 x 0.5/h reaches the cap; private is free
    assert "left without capacity" in " ".join(world.controller.last.plan.notes)


class SlowCloud(FakeCloud):
    """A cloud whose listing hangs until the test lets it answer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked = threading.Event()
        self.answer = threading.Event()
        self.gave_up = threading.Event()  # the test never let it answer

    def list_instances(self, pool_id: str) -> CloudSnapshot:
        self.asked.set()
        if not self.answer.wait(timeout=120):
            self.gave_up.set()
            raise CloudUnavailable("the slow listing was never let through")
        return super().list_instances(pool_id)


def test_slow_cloud_does_not_stall_the_others() -> None:
    world = World(make_config({"call_timeout_seconds": 1}))
    slow = SlowCloud("private", world.clock, world.pool, [PRIVATE])
    world.private = slow
    world.controller = world.new_controller()
    world.pool.add_jobs(4, ONE_CORE, duration=30)
    try:
        world.cycle()  # returns although the private listing is still hanging
        assert slow.asked.is_set() and not slow.gave_up.is_set()  # it did not wait the hang out
        assert world.public.vms  # served while private was still answering
        assert "private: unreadable" in " ".join(world.controller.last.plan.notes)
        assert slow.vms == {}
    finally:
        slow.answer.set()
        world.controller.close()


def count_cycles(controller: Controller, after: int) -> tuple[list[int], threading.Event]:
    """Count the controller's cycles; the event is set once `after` of them have run."""
    done: list[int] = []
    reached = threading.Event()
    run_once = controller.run_once

    def counted() -> Any:
        report = run_once()
        done.append(1)
        if len(done) >= after:
            reached.set()
        return report

    controller.run_once = counted  # type: ignore[method-assign]
    return done, reached


def test_run_forever_runs_the_requested_cycles_then_returns() -> None:
    world = World()
    done, _ = count_cycles(world.controller, 3)
    began = world.clock.now()
    world.controller.run_forever(cycles=3)
    assert len(done) == 3
    # Fake time: it paused between cycles (the interval), not after the last one.
    assert world.clock.now() - began == 2 * world.config.policy.interval_seconds


def test_run_forever_stops_on_request() -> None:
    world = World()
    done, reached = count_cycles(world.controller, 5)
    thread = threading.Thread(target=world.controller.run_forever, daemon=True)
    thread.start()
    try:
        assert reached.wait(timeout=30), "the loop did not cycle"
        world.controller.stopping.set()
        thread.join(timeout=30)
        assert not thread.is_alive()
        stopped_at = len(done)
        assert stopped_at >= 5
    finally:
        world.controller.close()
        thread.join(timeout=30)
    assert len(done) == stopped_at  # nothing ran after it returned
