"""Counters and histograms that grow cycle by cycle, folded from each cycle record. Pure.

`Tally.after(record, waits)` returns a new tally; the old one is never changed, so a scrape can
read whichever tally is current without a lock.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from bursting.cycle import CycleRecord
from bursting.metrics.labels import KINDS, OUTCOMES, REASONS, error_class_name, known

# Booting a VM takes tens of seconds to many minutes; joining seconds to minutes.
LATENCY_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0)
# A job's wait from queue entry to start: seconds to a day.
WAIT_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 3 * 3600.0, 86400.0)
CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class Histogram:
    """Prometheus-style histogram state: per-bucket counts (the last is +Inf) and the sum."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...] = ()
    total: float = 0.0

    def observe(self, values: Iterable[float]) -> Histogram:
        counts = list(self.counts or (0,) * (len(self.bounds) + 1))
        total = self.total
        for value in values:
            counts[bisect.bisect_left(self.bounds, value)] += 1
            total += value
        return replace(self, counts=tuple(counts), total=total)

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, cumulative count) pairs as HistogramMetricFamily takes them."""
        counts = self.counts or (0,) * (len(self.bounds) + 1)
        edges = [*(repr(float(b)) for b in self.bounds), "+Inf"]
        running, out = 0, []
        for edge, count in zip(edges, counts, strict=True):
            running += count
            out.append((edge, float(running)))
        return out


def _observe(
    hists: Mapping[str, Histogram], key: str, values: list[float], bounds: tuple[float, ...]
) -> dict[str, Histogram]:
    out = dict(hists)
    if values:
        out[key] = out.get(key, Histogram(bounds)).observe(values)
    return out


@dataclass(frozen=True)
class Tally:
    """Everything counted since the controller started."""

    cycles: int = 0
    actions: Mapping[tuple[str, str, str, str], int] = field(default_factory=dict)
    orphans_reaped: Mapping[str, int] = field(default_factory=dict)
    read_failures: Mapping[tuple[str, str], int] = field(default_factory=dict)
    boot: Mapping[str, Histogram] = field(default_factory=dict)
    join: Mapping[str, Histogram] = field(default_factory=dict)
    job_wait: Histogram = Histogram(WAIT_BUCKETS)
    cycle_seconds: Histogram = Histogram(CYCLE_BUCKETS)

    def after(self, record: CycleRecord, waits: Iterable[float] = ()) -> Tally:
        """This tally with one more completed cycle counted in, and the waits of the jobs that
        started since the last one (bursting.metrics.waits)."""
        actions = dict(self.actions)
        orphans = dict(self.orphans_reaped)
        for a in record.actions:
            key = (
                a.cloud,
                known(a.kind, KINDS),
                known(a.code, REASONS),
                known(a.outcome, OUTCOMES),
            )
            actions[key] = actions.get(key, 0) + 1
            if a.code == "orphan" and a.kind == "delete" and a.outcome == "done":
                orphans[a.cloud] = orphans.get(a.cloud, 0) + 1
        failures = dict(self.read_failures)
        for read in (record.pool, *record.clouds):
            if not read.ok:
                key2 = (read.name, error_class_name(read.error_class))
                failures[key2] = failures.get(key2, 0) + 1
        boot, join = dict(self.boot), dict(self.join)
        for t in record.transitions:
            # An adopted instance ("new" straight to running) was not booted by us: no sample.
            if t.before in ("requested", "booting") and t.after in ("joining", "running"):
                boot = _observe(boot, t.cloud, [t.age], LATENCY_BUCKETS)
            if t.before == "joining" and t.after == "running":
                join = _observe(join, t.cloud, [t.in_before], LATENCY_BUCKETS)
        return replace(
            self,
            cycles=self.cycles + 1,
            actions=actions,
            orphans_reaped=orphans,
            read_failures=failures,
            boot=boot,
            join=join,
            job_wait=self.job_wait.observe(list(waits)),
            cycle_seconds=self.cycle_seconds.observe([record.seconds]),
        )
