"""The reconcile loop: observe -> plan (pure) -> persist intent -> act -> persist outcome.

The only code that sleeps. Cloud calls run concurrently with a bounded number in flight; a slow
or failing cloud delays nothing but its own actions, which are picked up again next cycle.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, field, replace

from bursting.clock import Clock
from bursting.clouds.base import CloudProvider
from bursting.config import Config
from bursting.errors import BurstingError, PermanentError, PoolUnavailable, QuotaExceeded
from bursting.model import (
    Action,
    ActionKind,
    CloudSnapshot,
    Instance,
    InstanceSpec,
    InstanceState,
    PoolSnapshot,
)
from bursting.planner import CyclePlan, flavor_table, plan_cycle
from bursting.policy.backoff import after_failure
from bursting.pool.base import BatchPool
from bursting.store.base import StateStore

log = logging.getLogger("bursting.controller")


@dataclass
class CycleReport:
    """What one cycle saw and did, for logs, `bursting status` and metrics."""

    started_at: float
    pool: PoolSnapshot | None
    clouds: dict[str, CloudSnapshot | None]
    plan: CyclePlan
    done: list[Action] = field(default_factory=list)
    failed: list[tuple[Action, str]] = field(default_factory=list)


def new_instance_id(pool_id: str) -> Callable[[str], str]:
    """Ids we choose ourselves, so a create can be repeated safely after a crash."""
    return lambda cloud: f"{pool_id}-{cloud}-{secrets.token_hex(4)}"


class Controller:
    def __init__(
        self,
        config: Config,
        pool: BatchPool,
        clouds: Mapping[str, CloudProvider],
        store: StateStore,
        clock: Clock,
        new_id: Callable[[str], str] | None = None,
        user_data: Callable[[InstanceSpec], str] | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.clouds = dict(clouds)
        self.store = store
        self.clock = clock
        self.new_id = new_id or new_instance_id(config.pool.id)
        self.user_data = user_data
        self._calls = ThreadPoolExecutor(
            max_workers=config.policy.max_calls_in_flight, thread_name_prefix="cloud"
        )
        self._in_flight: dict[str, Future[None]] = {}
        self._flavors = flavor_table(config)
        self.stopping = threading.Event()
        self.last: CycleReport | None = None

    # ----- observe -----
    def observe(self) -> tuple[PoolSnapshot | None, dict[str, CloudSnapshot | None]]:
        listings = {
            name: self._calls.submit(provider.list_instances, self.config.pool.id)
            for name, provider in self.clouds.items()
        }
        try:
            pool: PoolSnapshot | None = self.pool.snapshot()
        except PoolUnavailable as exc:
            log.warning("pool unreadable: %s", exc)
            pool = None
        deadline = self.clock.now() + self.config.policy.interval_seconds / 2
        clouds: dict[str, CloudSnapshot | None] = {}
        for name, future in listings.items():
            try:
                clouds[name] = future.result(timeout=max(0.1, deadline - self.clock.now()))
            except FutureTimeout:
                log.warning("cloud %s: listing did not answer in time", name)
                clouds[name] = None
            except Exception as exc:  # any failure to look means "unknown", never "empty"
                log.warning("cloud %s unreadable: %s", name, exc)
                clouds[name] = None
        return pool, clouds

    # ----- one cycle -----
    def dry_run(self, new_id: Callable[[str], str] | None = None) -> CycleReport:
        """Observe and plan without persisting or acting (what `bursting plan` shows)."""
        now = self.clock.now()
        pool, clouds = self.observe()
        plan = plan_cycle(
            self.config,
            self.store.instances(),
            self.store.backoffs(),
            pool,
            clouds,
            now,
            new_id or self.new_id,
        )
        return CycleReport(now, pool, clouds, plan)

    def run_once(self) -> CycleReport:
        report = self.dry_run()
        now, plan = report.started_at, report.plan
        # Intent first: every instance we are about to create is on disk before the call.
        self.store.save(plan.instances, now)
        for (cloud, flavor), backoff in plan.backoff_changes.items():
            self.store.set_backoff(cloud, flavor, backoff)
        self.store.record(plan.actions, now)
        self._act(plan, report)
        self.last = report
        for note in plan.notes:
            log.info("note: %s", note)
        return report

    def _act(self, plan: CyclePlan, report: CycleReport) -> None:
        by_id = {i.id: i for i in plan.instances}
        started: dict[Future[None], Action] = {}
        for action in plan.actions:
            running = self._in_flight.get(action.instance_id)
            if running is not None and not running.done():
                continue  # the previous cycle's call for it is still out
            log.info(
                "%s %s on %s (%s): %s",
                action.kind.value,
                action.instance_id,
                action.cloud,
                action.flavor,
                action.reason,
            )
            future = self._calls.submit(self._perform, action, by_id.get(action.instance_id))
            self._in_flight[action.instance_id] = future
            started[future] = action
        done, _ = wait_all(started, timeout=self.config.policy.interval_seconds * 0.8)
        for future in done:
            action = started[future]
            error = future.exception()
            if error is None:
                report.done.append(action)
            else:
                report.failed.append((action, str(error)))
                self._failed(action, error, by_id.get(action.instance_id))
        self._in_flight = {k: f for k, f in self._in_flight.items() if not f.done()}

    def _perform(self, action: Action, instance: Instance | None) -> None:
        if action.kind is ActionKind.DRAIN:
            if action.worker:
                self.pool.drain([action.worker])
            return
        provider = self.clouds.get(action.cloud)
        if provider is None:
            raise PermanentError(f"cloud {action.cloud} is not configured any more")
        if action.kind is ActionKind.DELETE:
            provider.delete(action.instance_id)
            return
        flavor = self._flavors[(action.cloud, action.flavor)]
        spec = InstanceSpec(action.instance_id, self.config.pool.id, action.cloud, flavor)
        if self.user_data is not None:
            spec = replace(spec, user_data=self.user_data(spec))
        provider.create(spec)

    def _failed(self, action: Action, error: BaseException, instance: Instance | None) -> None:
        log.warning(
            "%s %s on %s failed: %s", action.kind.value, action.instance_id, action.cloud, error
        )
        if action.kind is not ActionKind.CREATE or instance is None:
            return  # drains and deletes are simply asked again next cycle
        if isinstance(error, (QuotaExceeded, PermanentError)):
            # Never created: forget it now, and let that cloud/flavor back off.
            now = self.clock.now()
            gone = replace(
                instance,
                state=InstanceState.GONE,
                state_since=now,
                reason=f"create refused: {error}",
            )
            self.store.save([gone], now)
            key = (action.cloud, action.flavor)
            policy = self.config.policy.backoff
            self.store.set_backoff(
                action.cloud,
                action.flavor,
                after_failure(
                    self.store.backoffs().get(key), now, policy.initial_seconds, policy.max_seconds
                ),
            )

    # ----- the daemon -----
    def run_forever(self, cycles: int | None = None) -> None:
        count = 0
        while not self.stopping.is_set():
            began = self.clock.now()
            try:
                self.run_once()
            except BurstingError as exc:
                log.error("cycle failed: %s", exc)
            count += 1
            if cycles is not None and count >= cycles:
                break
            pause = self.config.policy.interval_seconds - (self.clock.now() - began)
            if pause > 0:
                self.stopping.wait(pause) if _real(self.clock) else self.clock.sleep(pause)

    def close(self) -> None:
        self.stopping.set()
        self._calls.shutdown(wait=False, cancel_futures=True)


def _real(clock: Clock) -> bool:
    from bursting.clock import SystemClock

    return isinstance(clock, SystemClock)
