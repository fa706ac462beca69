"""The custom collector: every `bursting_*` family built at scrape time from one immutable
snapshot (the last cycle's view, the tally, the cloud-call counts), as client_python's custom
collectors do. Registered in an injected CollectorRegistry, never the global one."""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bursting import __version__
from bursting.metrics.calls import CallCounts
from bursting.metrics.campaigns import CAMPAIGN_WINDOW_SECONDS, TOP_CAMPAIGNS, CampaignRow
from bursting.metrics.labels import UNMATCHED, known
from bursting.metrics.tally import LATENCY_BUCKETS, Histogram, Tally
from bursting.metrics.view import MB, View

HOUR = 3600.0


@dataclass(frozen=True)
class Scrape:
    """What one scrape reads; taken whole, so families agree with each other."""

    now: float
    view: View | None
    tally: Tally
    calls: CallCounts
    last_success_at: float | None
    campaigns: tuple[CampaignRow, ...] | None = None
    leading: bool | None = None  # None: no leader election (the only replica)


def _histogram(
    name: str, doc: str, labels: list[str], series: Mapping[tuple[str, ...], Histogram]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for key, hist in sorted(series.items()):
        family.add_metric(list(key), hist.cumulative(), hist.total)
    return family


class BurstingCollector(Collector):
    def __init__(self, source: Callable[[], Scrape]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        scrape = self._source()
        yield from _process(scrape)
        yield from _cloud_calls(scrape.calls)
        clouds = (
            () if scrape.view is None else tuple(c.name for c in scrape.view.clouds if c.enabled)
        )
        yield from _tally(scrape.tally, clouds)
        if scrape.campaigns is not None:
            yield _campaigns(scrape.campaigns)
        if scrape.view is not None:
            yield from _queue(scrape.view, scrape.now)
            yield from _instances(scrape.view, scrape.now)
            yield from _clouds(scrape.view, scrape.now)
            yield from _spend(scrape.view)


def _process(scrape: Scrape) -> Iterator[Metric]:
    info = GaugeMetricFamily(
        "bursting_build_info", "The controller's version; always 1.", labels=["version", "python"]
    )
    info.add_metric([__version__, platform.python_version()], 1.0)
    yield info
    if scrape.leading is not None:
        yield GaugeMetricFamily(
            "bursting_leader",
            "1 while this replica holds the leader election Lease and acts; 0 on a standby.",
            value=float(scrape.leading),
        )
    if scrape.last_success_at is not None:
        yield GaugeMetricFamily(
            "bursting_last_successful_cycle_timestamp_seconds",
            "When the last reconcile cycle completed (Unix time).",
            value=scrape.last_success_at,
        )


def _cloud_calls(calls: CallCounts) -> Iterator[Metric]:
    total = CounterMetricFamily(
        "bursting_cloud_api_calls",
        "Cloud API calls, by cloud and operation.",
        labels=["cloud", "operation"],
    )
    for (cloud, operation), n in sorted(calls.calls.items()):
        total.add_metric([cloud, operation], n)
    yield total
    errors = CounterMetricFamily(
        "bursting_cloud_api_errors",
        "Cloud API calls that raised, by cloud, operation and error class.",
        labels=["cloud", "operation", "error_class"],
    )
    for key, n in sorted(calls.errors.items()):
        errors.add_metric(list(key), n)
    yield errors
    yield _histogram(
        "bursting_cloud_api_call_seconds",
        "Cloud API call latency, by cloud and operation.",
        ["cloud", "operation"],
        {key: hist for key, hist in calls.seconds.items()},
    )


def _per_cloud(
    hists: Mapping[str, Histogram], clouds: tuple[str, ...]
) -> dict[tuple[str, ...], Histogram]:
    """Every enabled cloud's histogram, at zero before its first sample: a series that appears
    already counting hides its first samples from rate() and histogram_quantile()."""
    series: dict[tuple[str, ...], Histogram] = {
        (cloud,): Histogram(LATENCY_BUCKETS) for cloud in clouds
    }
    series.update({(cloud,): h for cloud, h in hists.items()})
    return series


def _tally(tally: Tally, clouds: tuple[str, ...]) -> Iterator[Metric]:
    cycles = CounterMetricFamily("bursting_cycles", "Reconcile cycles completed.")
    cycles.add_metric([], tally.cycles)
    yield cycles
    yield _histogram(
        "bursting_cycle_duration_seconds",
        "How long each reconcile cycle took.",
        [],
        {(): tally.cycle_seconds},
    )
    actions = CounterMetricFamily(
        "bursting_planned_actions",
        "Actions planned, by cloud, kind, reason code and what became of them.",
        labels=["cloud", "kind", "reason", "outcome"],
    )
    for key, n in sorted(tally.actions.items()):
        actions.add_metric(list(key), n)
    yield actions
    orphans = CounterMetricFamily(
        "bursting_orphans_reaped",
        "Instances tagged as ours but unknown to the store, deleted.",
        labels=["cloud"],
    )
    for cloud, n in sorted(tally.orphans_reaped.items()):
        orphans.add_metric([cloud], n)
    yield orphans
    reads = CounterMetricFamily(
        "bursting_source_read_failures",
        "Cycles in which the pool or a cloud could not be read, by source and error class.",
        labels=["source", "error_class"],
    )
    for source, n in sorted(tally.read_failures.items()):
        reads.add_metric(list(source), n)
    yield reads
    yield _histogram(
        "bursting_instance_boot_seconds",
        "From create to the cloud reporting the instance active, by cloud.",
        ["cloud"],
        _per_cloud(tally.boot, clouds),
    )
    yield _histogram(
        "bursting_instance_join_seconds",
        "From active to its worker seen in the pool, by cloud.",
        ["cloud"],
        _per_cloud(tally.join, clouds),
    )
    yield _histogram(
        "bursting_job_wait_seconds",
        "A job's wait from queue entry to start, for jobs seen starting since the controller "
        "started (a job that starts and ends within one cycle is not seen).",
        [],
        {(): tally.job_wait},
    )


def _campaigns(rows: tuple[CampaignRow, ...]) -> Metric:
    family = GaugeMetricFamily(
        "bursting_campaign_jobs",
        "Jobs per campaign (the job attribute BurstingCampaign) and state (idle, running, held, "
        f"done, removed). Bounded: only campaigns with jobs in the queue or that left it in the "
        f"last {CAMPAIGN_WINDOW_SECONDS / 3600:g} h (done and removed count that window only), "
        f"{TOP_CAMPAIGNS} of them (those with jobs in the queue, the largest first, then the most "
        "recently finished); the rest, and names that are not campaign names, as 'other'.",
        labels=["campaign", "state"],
    )
    for row in rows:
        family.add_metric([row.campaign, row.state], row.jobs)
    return family


def _queue(view: View, now: float) -> Iterator[Metric]:
    pool_up = GaugeMetricFamily("bursting_pool_up", "1 if the last cycle could read the pool.")
    pool_up.add_metric([], 1.0 if view.record.pool.ok else 0.0)
    yield pool_up
    if view.jobs is not None:
        jobs = GaugeMetricFamily("bursting_jobs", "Jobs in the queue by state.", labels=["state"])
        for state, n in view.jobs.items():
            jobs.add_metric([state], n)
        yield jobs
        oldest = GaugeMetricFamily(
            "bursting_oldest_idle_job_age_seconds", "How long the longest-idle job has waited."
        )
        since = view.oldest_idle_since
        oldest.add_metric([], 0.0 if since is None else max(0.0, view.taken_at - since))
        yield oldest
    names = ("jobs", "cores", "memory_bytes")
    families = [
        GaugeMetricFamily(
            f"bursting_idle_demand_{name}",
            f"Idle demand in {name.replace('_', ' ')}, by job shape (the top shapes, the "
            "rest as 'other').",
            labels=["shape"],
        )
        for name in names
    ]
    for row in view.demand:
        for family, value in zip(families, (row.jobs, row.cores, row.memory_bytes), strict=True):
            family.add_metric([row.shape], value)
    yield from families
    unschedulable = GaugeMetricFamily(
        "bursting_unschedulable_jobs",
        "Idle jobs no flavor of any usable cloud can run, by reason code.",
        labels=["reason"],
    )
    by_reason: dict[str, int] = {}
    for entry in view.record.unschedulable:
        code = known(entry.code, UNMATCHED)
        by_reason[code] = by_reason.get(code, 0) + entry.jobs
    for code, n in sorted(by_reason.items()):
        unschedulable.add_metric([code], n)
    yield unschedulable


def _instances(view: View, now: float) -> Iterator[Metric]:
    counts: dict[tuple[str, str, str], int] = {}
    oldest: dict[tuple[str, str], float] = {}
    for i in view.instances:
        key = (i.cloud, i.flavor, i.state.value)
        counts[key] = counts.get(key, 0) + 1
        age = max(0.0, now - i.state_since)
        oldest[(i.cloud, i.state.value)] = max(oldest.get((i.cloud, i.state.value), 0.0), age)
    family = GaugeMetricFamily(
        "bursting_instances",
        "Live burst instances by cloud, flavor and lifecycle state.",
        labels=["cloud", "flavor", "state"],
    )
    for key, n in sorted(counts.items()):
        family.add_metric(list(key), n)
    yield family
    ages = GaugeMetricFamily(
        "bursting_instance_oldest_in_state_seconds",
        "How long the instance longest in each state has been there, by cloud and state.",
        labels=["cloud", "state"],
    )
    for where, age in sorted(oldest.items()):
        ages.add_metric(list(where), age)
    yield ages


def _clouds(view: View, now: float) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        "bursting_cloud_up", "1 if the last cycle read the cloud.", labels=["cloud"]
    )
    limit = GaugeMetricFamily(
        "bursting_cloud_max_instances", "The configured max_instances per cloud.", labels=["cloud"]
    )
    headroom = GaugeMetricFamily(
        "bursting_cloud_quota_headroom",
        "What the cloud's quota still allows, by resource (instances, cores, memory_bytes); "
        "absent when unlimited or unknown.",
        labels=["cloud", "resource"],
    )
    quota_known = GaugeMetricFamily(
        "bursting_cloud_quota_known", "1 if the cloud told its quota this cycle.", labels=["cloud"]
    )
    backing_off = GaugeMetricFamily(
        "bursting_cloud_backoff_seconds",
        "Seconds until a cloud's flavor may be tried again after failed boots (0: not backing "
        "off).",
        labels=["cloud", "flavor"],
    )
    failures = GaugeMetricFamily(
        "bursting_cloud_backoff_failures",
        "Consecutive failed boots behind a cloud flavor's backoff.",
        labels=["cloud", "flavor"],
    )
    cores = GaugeMetricFamily(
        "bursting_cloud_flavor_cores",
        "Cores of each configured flavor: bursting_instances times this is capacity in cores.",
        labels=["cloud", "flavor"],
    )
    paused = GaugeMetricFamily(
        "bursting_cloud_retry_after_seconds",
        "Seconds until a cloud that asked us to retry later is called again.",
        labels=["cloud"],
    )
    for cloud in view.clouds:
        if not cloud.enabled:
            continue
        up.add_metric([cloud.name], 1.0 if cloud.read else 0.0)
        limit.add_metric([cloud.name], cloud.max_instances)
        for flavor, cpus in cloud.flavor_cores:
            cores.add_metric([cloud.name, flavor], cpus)
        quota = cloud.quota
        quota_known.add_metric([cloud.name], 1.0 if quota is not None and quota.known else 0.0)
        if quota is not None and quota.known:
            for resource, value in (
                ("instances", quota.instances),
                ("cores", quota.cores),
                ("memory_bytes", None if quota.memory_mb is None else quota.memory_mb * MB),
            ):
                if value is not None:
                    headroom.add_metric([cloud.name, resource], value)
        for b in cloud.backoffs:
            backing_off.add_metric([cloud.name, b.flavor], max(0.0, b.until - now))
            failures.add_metric([cloud.name, b.flavor], b.failures)
        paused.add_metric(
            [cloud.name], 0.0 if cloud.paused_until is None else max(0.0, cloud.paused_until - now)
        )
    yield from (up, limit, cores, quota_known, headroom, backing_off, failures, paused)


def _spend(view: View) -> Iterator[Metric]:
    rate = GaugeMetricFamily(
        "bursting_spend_rate_per_hour",
        "What live instances cost per hour now, by cloud (in the configured currency).",
        labels=["cloud", "currency"],
    )
    total = CounterMetricFamily(
        "bursting_spend",
        "Money spent since the store was created, by cloud (in the configured currency).",
        labels=["cloud", "currency"],
    )
    for cloud in view.clouds:
        rate.add_metric([cloud.name, view.currency], cloud.spend_per_hour)
        total.add_metric([cloud.name, view.currency], cloud.spent)
    yield rate
    yield total
    if view.spend_cap_per_hour is not None:
        cap = GaugeMetricFamily(
            "bursting_spend_cap_per_hour",
            "The configured spend cap per hour, across priced clouds.",
            labels=["currency"],
        )
        cap.add_metric([view.currency], view.spend_cap_per_hour)
        yield cap
