"""The reconcile loop: observe -> plan (pure) -> persist intent -> act -> persist outcome -> one
cycle record.

The only code that sleeps. Cloud calls run concurrently with a bounded number in flight and a
per-cloud timeout; a slow or failing cloud delays nothing but its own actions, which are picked
up again next cycle. A cloud that answers "retry after N seconds" is left alone that long.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Protocol

from bursting.clock import Clock, SystemClock
from bursting.clouds.base import CloudProvider
from bursting.config import Config
from bursting.cycle import CycleRecord, CycleReport, SourceRead, build_record
from bursting.cycle import error_text as _error_text
from bursting.errors import (
    BurstingError,
    ConfigError,
    PermanentError,
    PoolUnavailable,
    QuotaExceeded,
    TransientError,
)
from bursting.model import (
    Action,
    ActionKind,
    CloudSnapshot,
    Flavor,
    Instance,
    InstanceSpec,
    InstanceState,
    PoolSnapshot,
    ReasonCode,
    WorkerSpec,
)
from bursting.planner import CyclePlan, flavor_table, matcher_for, plan_cycle
from bursting.policy.backoff import after_failure
from bursting.policy.spend import HOUR, accrue
from bursting.pool.base import BatchPool
from bursting.store.base import StateStore
from bursting.workers import WorkerFactory

log = logging.getLogger("bursting.controller")
WorkerSpecs = Callable[[str, str, Flavor], WorkerSpec]
STANDBY_POLL_SECONDS = 0.1  # how soon a standby starts cycling once it leads


class Leadership(Protocol):
    """Whether this replica may act (bursting.leader's elector); asked right before every
    cycle and every cloud or pool action."""

    def leading(self) -> bool: ...

    def describe(self) -> str: ...


class NotLeading(TransientError):
    """This replica stopped leading: the action was not carried out (the leader will)."""


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
        workers: WorkerSpecs | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        self.config = config
        self.leadership = leadership  # None: the only replica, always acting
        self.pool = pool
        self.clouds = dict(clouds)
        self.store = store
        self.clock = clock
        self.new_id = new_id or new_instance_id(config.pool.id)
        self.workers: WorkerSpecs = workers or WorkerFactory(config)
        self._calls = ThreadPoolExecutor(
            max_workers=config.policy.max_calls_in_flight, thread_name_prefix="cloud"
        )
        self._in_flight: dict[str, Future[None]] = {}
        self._unanswered: dict[Future[None], Action] = {}  # left in flight: answered later
        self._flavors = flavor_table(config)
        self._matcher = matcher_for(config)
        self._paused_until: dict[str, float] = {}  # cloud -> until, from retry_after
        self.stopping = threading.Event()
        self.last: CycleReport | None = None
        self.started_at = clock.now()
        self.last_success_at: float | None = None  # when the last cycle completed
        self.last_failure: tuple[float, str] | None = None  # when and why a cycle last failed
        self._listeners: list[Callable[[CycleReport], None]] = []

    def _timeout(self, cloud: str) -> float:
        return self.config.cloud(cloud).call_timeout_seconds

    # ----- start -----
    def check_clouds(self) -> list[str]:
        """Compare each cloud's configured flavors with what the cloud offers; returns the
        problems (config path and fix). A cloud that cannot be asked is only warned about."""
        problems: list[str] = []
        for index, cloud in enumerate(self.config.clouds):
            provider = self.clouds.get(cloud.name)
            if provider is None:
                continue
            try:
                offered = {
                    f.name: f
                    for f in self._calls.submit(provider.flavors).result(
                        timeout=self._timeout(cloud.name)
                    )
                }
            except Exception as exc:  # unreachable now: check again at the next start
                log.warning("cloud %s: flavors not checked: %s", cloud.name, _error_text(exc))
                continue
            for position, flavor in enumerate(cloud.flavors):
                where = f"clouds[{index}].flavors[{position}]"
                real = offered.get(flavor.name)
                if real is None:
                    problems.append(
                        f"{where}.name: {cloud.name} offers no flavor {flavor.name!r} "
                        f"(it offers: {', '.join(sorted(offered)) or 'none'})"
                    )
                elif (real.cpus, real.memory_mb) != (flavor.cpus, flavor.memory_mb):
                    problems.append(
                        f"{where}: {cloud.name}'s {flavor.name} has {real.cpus} cores and "
                        f"{real.memory_mb} MB, the config says {flavor.cpus} and "
                        f"{flavor.memory_mb}; correct the config"
                    )
        return problems

    def start(self) -> None:
        """Checks before the first cycle: flavors against the clouds, the workers' token."""
        problems = self.check_clouds()
        if problems:
            raise ConfigError("clouds", problems)
        if isinstance(self.workers, WorkerFactory) and self.clouds:
            self.workers.token()
            self.workers.admin_key()

    # ----- observe -----
    def observe(
        self, reads: dict[str, SourceRead] | None = None
    ) -> tuple[PoolSnapshot | None, dict[str, CloudSnapshot | None]]:
        reads = {} if reads is None else reads
        now = self.clock.now()
        listings = {
            name: self._calls.submit(self._timed, provider.list_instances, self.config.pool.id)
            for name, provider in self.clouds.items()
            if self._paused_until.get(name, 0.0) <= now
        }
        began = time.monotonic()
        try:
            pool: PoolSnapshot | None = self.pool.snapshot()
            reads["pool"] = SourceRead("pool", True, seconds=time.monotonic() - began)
        except PoolUnavailable as exc:
            log.warning("pool unreadable: %s", exc)
            pool = None
            reads["pool"] = SourceRead(
                "pool", False, type(exc).__name__, _error_text(exc), time.monotonic() - began
            )
        clouds: dict[str, CloudSnapshot | None] = {}
        for name in self.clouds:
            clouds[name] = self._listing(name, listings.get(name), reads)
        return pool, clouds

    @staticmethod
    def _timed(call: Callable[[str], CloudSnapshot], pool_id: str) -> tuple[CloudSnapshot, float]:
        began = time.monotonic()
        return call(pool_id), time.monotonic() - began

    def _listing(
        self,
        name: str,
        future: Future[tuple[CloudSnapshot, float]] | None,
        reads: dict[str, SourceRead],
    ) -> CloudSnapshot | None:
        """One cloud's listing, or None ("unknown", never "empty") with why in `reads`."""
        if future is None:
            until = self._paused_until[name]
            text = f"asked us to retry after {until - self.clock.now():.0f}s"
            reads[name] = SourceRead(name, False, "RetryAfter", text)
            return None
        try:
            # Its own timeout, and never more than half a cycle: the others must not wait.
            limit = min(self._timeout(name), max(0.1, self.config.policy.interval_seconds / 2))
            snapshot, seconds = future.result(timeout=limit)
        except FutureTimeout:
            log.warning("cloud %s: listing did not answer within its timeout", name)
            reads[name] = SourceRead(name, False, "Timeout", "no answer within call_timeout")
            return None
        except Exception as exc:  # any failure to look means "unknown", never "empty"
            log.warning("cloud %s unreadable: %s", name, exc)
            self._honour_retry_after(name, exc)
            reads[name] = SourceRead(name, False, type(exc).__name__, _error_text(exc))
            return None
        reads[name] = SourceRead(name, True, seconds=seconds)
        return snapshot

    def _honour_retry_after(self, cloud: str, error: BaseException) -> None:
        if isinstance(error, TransientError) and error.retry_after:
            self._paused_until[cloud] = self.clock.now() + error.retry_after
            log.info("cloud %s asked to retry after %.0fs", cloud, error.retry_after)

    # ----- one cycle -----
    def dry_run(self, new_id: Callable[[str], str] | None = None) -> CycleReport:
        """Observe and plan without persisting or acting (what `bursting plan` shows)."""
        now = self.clock.now()
        reads: dict[str, SourceRead] = {}
        pool, clouds = self.observe(reads)
        stored = self.store.instances()
        plan = plan_cycle(
            self.config,
            stored,
            self.store.backoffs(),
            pool,
            clouds,
            now,
            new_id or self.new_id,
            matcher=self._matcher,
            spent_last_hour=self.store.spent(since=now - HOUR),
            paused_until=self._paused_until,
        )
        report = CycleReport(now, pool, clouds, plan, reads, before=stored)
        report.record = build_record(report, self.clock.now(), self.store.spent(), dry_run=True)
        return report

    def leading(self) -> bool:
        return self.leadership is None or self.leadership.leading()

    def run_once(self) -> CycleReport:
        if not self.leading():
            raise NotLeading("not the leader: this replica does not act")
        self._late_answers()
        report = self.dry_run()
        now, plan = report.started_at, report.plan
        # Spend first, over the instances as they were since the last accrual.
        self.store.accrue(accrue(self.store.instances(), self.store.accrued_at(), now), now)
        # Intent next: every instance we are about to create is on disk before the call.
        self.store.save(plan.instances, now)
        for (cloud, flavor), backoff in plan.backoff_changes.items():
            self.store.set_backoff(cloud, flavor, backoff)
        self.store.record(plan.actions, now)
        self._act(plan, report)
        report.record = build_record(report, self.clock.now(), self.store.spent(), dry_run=False)
        self.store.save_cycle(report.record)
        self.last = report
        self.last_success_at = self.clock.now()
        self._log(report.record)
        self._tell(report)
        return report

    def subscribe(self, listener: Callable[[CycleReport], None]) -> None:
        """Call `listener` with each completed cycle's report, in the controller's thread
        (metrics and status build their immutable views there)."""
        self._listeners.append(listener)

    def _tell(self, report: CycleReport) -> None:
        for listener in self._listeners:
            try:
                listener(report)
            except Exception:  # a broken reader must never stop the controller
                log.exception("cycle listener %r failed", listener)

    def paused(self) -> dict[str, float]:
        """Clouds that asked us to retry later, and until when (epoch seconds)."""
        return dict(self._paused_until)

    def _act(self, plan: CyclePlan, report: CycleReport) -> None:
        by_id = {i.id: i for i in plan.instances}
        started: dict[Future[None], Action] = {}
        for action in plan.actions:
            running = self._in_flight.get(action.instance_id)
            if running is not None and not running.done():
                report.skipped.append(action)  # the previous cycle's call for it is still out
                continue
            if not self.leading():
                report.skipped.append(action)  # leadership lost mid-cycle: act no more
                continue
            future = self._calls.submit(self._perform, action)
            self._in_flight[action.instance_id] = future
            started[future] = action
        began = time.monotonic()
        for future, action in started.items():
            # Each call is waited for up to its own cloud's timeout (never past one interval);
            # one that has not answered stays in flight and is not asked again until it does.
            limit = min(self._timeout(action.cloud), self.config.policy.interval_seconds)
            try:
                error = future.exception(timeout=max(0.0, began + limit - time.monotonic()))
            except FutureTimeout:
                log.warning(
                    "%s %s on %s: no answer within %.0fs; left in flight",
                    action.kind.value,
                    action.instance_id,
                    action.cloud,
                    limit,
                )
                self._unanswered[future] = action
                continue
            if error is None:
                report.done.append(action)
            else:
                report.failed.append((action, error))
                self._failed(action, error, by_id.get(action.instance_id))
        self._in_flight = {k: f for k, f in self._in_flight.items() if not f.done()}

    def _late_answers(self) -> None:
        """Calls left in flight that have answered since: a refusal counts as if it had come
        in time (the instance is forgotten and its cloud/flavor backs off), before this cycle
        plans, so it is neither lost nor asked again."""
        answered = [f for f in self._unanswered if f.done()]
        stored = {i.id: i for i in self.store.instances()} if answered else {}
        for future in answered:
            action = self._unanswered.pop(future)
            error = None if future.cancelled() else future.exception()
            if error is None:
                log.info(
                    "%s %s on %s: answered late: done",
                    action.kind.value,
                    action.instance_id,
                    action.cloud,
                )
            else:
                self._failed(action, error, stored.get(action.instance_id))

    def _perform(self, action: Action) -> None:
        if not self.leading():  # fencing: asked again right before the call itself
            raise NotLeading(f"not the leader any more: {action.kind.value} not sent")
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
        worker = self.workers(action.instance_id, action.cloud, flavor)
        # A create planned from demand has a new id; only a create asked again may exist already.
        never_asked = action.code is not ReasonCode.CREATE_UNCONFIRMED
        spec = InstanceSpec(
            action.instance_id, self.config.pool.id, action.cloud, flavor, worker, never_asked
        )
        provider.create(spec)

    def _failed(self, action: Action, error: BaseException, instance: Instance | None) -> None:
        log.warning(
            "%s %s on %s failed (%s): %s",
            action.kind.value,
            action.instance_id,
            action.cloud,
            type(error).__name__,
            _error_text(error),
        )
        self._honour_retry_after(action.cloud, error)
        if action.kind is not ActionKind.CREATE or instance is None:
            return  # drains and deletes are simply asked again next cycle
        if isinstance(error, (QuotaExceeded, PermanentError)):
            # Never created: forget it now, and let that cloud/flavor back off.
            now = self.clock.now()
            gone = replace(
                instance,
                state=InstanceState.GONE,
                state_since=now,
                reason=f"create refused ({type(error).__name__}): {_error_text(error)}",
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

    def _log(self, record: CycleRecord) -> None:
        for action in record.actions:
            log.info(
                "%s %s on %s (%s) [%s]: %s -> %s%s",
                action.kind,
                action.instance_id,
                action.cloud,
                action.flavor,
                action.code,
                action.reason,
                action.outcome,
                f" ({action.error_class}: {action.error})" if action.error_class else "",
            )
        for note in record.notes:
            log.info("note: %s", note)
        log.info(
            "cycle: %.2fs, pool %s, clouds read %d/%d, %d planned, %d done, %d failed",
            record.seconds,
            "read" if record.pool.ok else f"unreadable ({record.pool.error_class})",
            sum(1 for c in record.clouds if c.ok),
            len(record.clouds),
            len(record.actions),
            record.count("done"),
            record.count("failed"),
        )

    # ----- the daemon -----
    def run_forever(self, cycles: int | None = None) -> None:
        count = 0
        while not self.stopping.is_set():
            if not self.leading():
                self._pause(STANDBY_POLL_SECONDS)
                continue
            began = self.clock.now()
            try:
                self.run_once()
            except BurstingError as exc:
                log.error("cycle failed: %s", exc)
                self.last_failure = (self.clock.now(), f"{type(exc).__name__}: {_error_text(exc)}")
            count += 1
            if cycles is not None and count >= cycles:
                break
            self._pause(self.config.policy.interval_seconds - (self.clock.now() - began))

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            if isinstance(self.clock, SystemClock):
                self.stopping.wait(seconds)
            else:
                self.clock.sleep(seconds)

    def close(self) -> None:
        self.stopping.set()
        self._calls.shutdown(wait=False, cancel_futures=True)
