"""The controller's side of metrics and status: keeps the latest view and tally, swapped in
whole after each cycle (in the controller's thread), and answers scrapes from other threads."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from bursting.controller import Controller
from bursting.cycle import CycleReport
from bursting.errors import BurstingError
from bursting.metrics.calls import CloudCalls
from bursting.metrics.campaigns import CampaignRow, CampaignSource, CampaignTracker, campaign_rows
from bursting.metrics.collector import BurstingCollector, Scrape
from bursting.metrics.health import Readiness, readiness
from bursting.metrics.status import status_document
from bursting.metrics.tally import Tally
from bursting.metrics.view import View, build_view
from bursting.metrics.waits import StartSource, WaitTracker
from bursting.model import PoolSnapshot

log = logging.getLogger("bursting.metrics")
RECENT_DECISIONS = 20


@dataclass(frozen=True)
class _Latest:
    view: View | None
    tally: Tally
    campaigns: tuple[CampaignRow, ...] | None = None


class Exporter:
    """Subscribes to `controller`'s cycles; registers its collector in `registry` (injected,
    never the global one). `calls` is the recorder the controller's providers were wrapped
    with (bursting.runtime.build_controller). `campaigns` counts jobs by campaign; by default
    the controller's pool, if it can (HTCondorPool can)."""

    def __init__(
        self,
        controller: Controller,
        calls: CloudCalls,
        registry: CollectorRegistry,
        campaigns: CampaignSource | None = None,
    ) -> None:
        self.controller = controller
        self.calls = calls
        self.registry = registry
        pool = controller.pool
        source = (
            campaigns if campaigns is not None or not isinstance(pool, CampaignSource) else pool
        )
        self.campaigns = None if source is None else CampaignTracker(source)
        self.waits = WaitTracker(
            controller.started_at, pool if isinstance(pool, StartSource) else None
        )
        self._latest = _Latest(None, Tally())
        registry.register(BurstingCollector(self.scrape))
        controller.subscribe(self.on_cycle)

    def on_cycle(self, report: CycleReport) -> None:
        """Build the new view and tally (controller thread; the store is read here only)."""
        record = report.record
        if record is None:
            return
        store = self.controller.store
        view = build_view(
            self.controller.config,
            record,
            report.pool,
            {name: None if snap is None else snap.quota for name, snap in report.clouds.items()},
            store.instances(),
            store.backoffs(),
            self.controller.paused(),
            [
                (at, a.kind.value, a.cloud, a.instance_id, a.code.value, a.reason)
                for at, a in store.decisions(RECENT_DECISIONS)
            ],
        )
        latest = self._latest
        campaigns, waits = latest.campaigns, []
        if report.pool is not None:  # an unreadable pool: keep the last counts, not zeros
            campaigns = self._campaigns(campaigns)
            waits = self._waits(report.pool)
        self._latest = _Latest(view, latest.tally.after(record, waits), campaigns)

    def _waits(self, pool: PoolSnapshot) -> list[float]:
        waits = self.waits.from_snapshot(pool)
        try:
            waits += self.waits.from_history(self.controller.clock.now())
        except BurstingError as exc:  # read again from the same place next cycle
            log.warning("cannot read the jobs that left the queue: %s", exc)
        return waits

    def _campaigns(self, last: tuple[CampaignRow, ...] | None) -> tuple[CampaignRow, ...] | None:
        if self.campaigns is None:
            return None
        try:
            return campaign_rows(self.campaigns.counts(self.controller.clock.now()))
        except BurstingError as exc:
            log.warning("cannot count jobs by campaign, keeping the last counts: %s", exc)
            return last

    def scrape(self) -> Scrape:
        latest = self._latest
        return Scrape(
            now=self.controller.clock.now(),
            view=latest.view,
            tally=latest.tally,
            calls=self.calls.counts(),
            last_success_at=self.controller.last_success_at,
            campaigns=latest.campaigns,
            leading=None if self.controller.leadership is None else self.controller.leading(),
        )

    def readiness(self) -> Readiness:
        controller = self.controller
        if controller.leadership is not None and not controller.leading():
            # A standby completes no cycles, yet it is what it should be: ready to take over.
            return Readiness(True, controller.leadership.describe())
        return readiness(
            now=controller.clock.now(),
            interval=controller.config.policy.interval_seconds,
            started_at=controller.started_at,
            last_success_at=controller.last_success_at,
            last_failure=controller.last_failure,
            store_problem=controller.store.write_problem(),
        )

    def status(self) -> dict[str, Any]:
        return status_document(self._latest.view, self.controller.clock.now(), self.readiness())
