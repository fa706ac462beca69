"""The simulation loop: trace arrivals, cloud and job events, negotiation cycles and controller
cycles, in simulated time.

Event-driven: a controller cycle runs only at the interval ticks where its plan could differ from
the last one - after something it observes changed (a job became old enough to count, a worker
joined, went idle or left, an instance changed state at its cloud), when one of its own deadlines
falls due (idle timeout, boot/join/drain timeout, a backoff ending), or while its records are
still moving. A cycle that would see exactly what the previous one saw is skipped: it would plan
the same nothing. Cycles that do run are the real Controller's `run_once` (the one `bursting run`
uses: observe, the pure planner, lifecycle, policy, spend, act, record) over the simulated pool,
clouds and an in-memory store.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bursting.config import Config
from bursting.model import (
    JobShape,
)
from bursting.planner import matcher_for
from bursting.policy.matching import Mismatch
from bursting.sim.clouds import SimCloud
from bursting.sim.ours import OurController
from bursting.sim.pool import SimPool
from bursting.sim.settings import SimSettings
from bursting.sim.store import MemoryStore
from bursting.sim.trace import Trace, TraceJob
from bursting.sim.world import World

STALLED_SECONDS = 6 * 3600.0  # all arrived, nothing running, nothing started for this long


class Decider(Protocol):
    """What makes the burst decisions each cycle: our controller, or a baseline.
    `next_deadline`: when it next wants a cycle on its own account (inf: not before an event)."""

    next_deadline: float

    def cycle(self) -> None: ...


@dataclass
class Sample:
    """One point of the timeline."""

    time: float
    idle_cores: int
    running_cores: int
    capacity: dict[str, int]  # cloud -> cores of its workers in the pool
    instances: dict[str, int]  # cloud -> instances listed (booting included)
    cost: float  # cumulative

    def same_as(self, other: Sample) -> bool:
        """Nothing but time and cost differs (cost grows whenever anything is paid for)."""
        return (
            self.idle_cores == other.idle_cores
            and self.running_cores == other.running_cores
            and self.capacity == other.capacity
            and self.instances == other.instances
        )


@dataclass
class SimRun:
    """Everything a report is made of."""

    config: Config
    settings: SimSettings
    trace: Trace
    pool: SimPool
    clouds: dict[str, SimCloud]
    store: MemoryStore | None
    started_at: float
    ended_at: float
    wall_seconds: float
    cycles: int
    ticks: int
    unrunnable: dict[str, int]
    samples: list[Sample] = field(default_factory=list)
    instance_counts: list[tuple[float, int]] = field(default_factory=list)


class Simulation:
    """One replay of a trace under one config and seed."""

    def __init__(
        self,
        config: Config,
        settings: SimSettings,
        trace: Trace,
        seed: int = 0,
        decider: Callable[[Simulation], Decider] | None = None,
        every_tick: bool = False,
    ) -> None:
        self.config = config
        # Run a cycle at every interval tick, as the real daemon does, instead of only where one
        # could decide something: slow, and for checking that skipping changes nothing.
        self.every_tick = every_tick
        self.settings = settings
        self.trace = trace
        self.seed = seed
        self.start = trace.start
        self.world = World(self.start)
        self.matcher = matcher_for(config)
        runnable, self.unrunnable = self._classify(trace.jobs)
        self.jobs = runnable
        self.pool = SimPool(
            self.world,
            runnable,
            self.matcher,
            config.policy.min_idle_seconds,
            settings.claim_reuse,
        )
        self.clouds = {
            c.name: SimCloud(
                c,
                settings.cloud(c.name),
                self.world,
                self.pool,
                config.pool.id,
                seed,
                self.start,
                config.policy.join_timeout_seconds,
                config.policy.boot_timeout_seconds,
            )
            for c in config.clouds
            if c.enabled
        }
        self.decider = (decider or OurController)(self)

    def _classify(self, jobs: list[TraceJob]) -> tuple[list[TraceJob], dict[str, int]]:
        """Jobs no flavor of any enabled cloud can run are counted by reason, not queued: they
        would wait forever (the planner reports them the same way)."""
        candidates = [
            (c.name, f.to_flavor()) for c in self.config.clouds if c.enabled for f in c.flavors
        ]
        verdicts: dict[JobShape, Mismatch | None] = {}
        runnable: list[TraceJob] = []
        unrunnable: dict[str, int] = {}
        for job in jobs:
            if job.shape not in verdicts:
                verdicts[job.shape] = self.matcher.why_not(job.shape, candidates)
            reason = verdicts[job.shape]
            if reason is None:
                runnable.append(job)
            else:
                unrunnable[reason.code.value] = unrunnable.get(reason.code.value, 0) + 1
        return runnable, unrunnable

    def _tick(self, period: float, after: float) -> float:
        """The first tick of `period` at or after `after`."""
        if after == math.inf:
            return math.inf
        return self.start + math.ceil((after - self.start) / period - 1e-9) * period

    def _linger(self) -> float:
        """How long after the last job ends the run goes on: idle workers drain and go."""
        policy = self.config.policy
        return (
            min(policy.idle_seconds, 6 * 3600.0)
            + (policy.missing_cycles_before_gone + 6) * policy.interval_seconds
            + 600.0
        )

    def run(self) -> SimRun:
        """Replay the whole trace. The controller's own log (a line per action, a warning per
        unreadable cloud) is held back meanwhile: the report tells the story."""
        quiet = logging.getLogger("bursting.controller")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            return self._run()
        finally:
            quiet.setLevel(level)

    def _run(self) -> SimRun:
        began = time.perf_counter()
        world, pool, jobs = self.world, self.pool, self.jobs
        interval = self.config.policy.interval_seconds
        negotiate_every = self.settings.negotiator_interval_seconds
        longest = max((job.runtime for job in jobs), default=0.0)
        last_submit = jobs[-1].submit if jobs else self.start
        hard_end = last_submit + longest + 30 * 86400.0
        end_at: float | None = None
        next_job, cycles, ticks = 0, 0, 0
        last_cycle = last_negotiation = -math.inf
        samples: list[Sample] = []
        counts: list[tuple[float, int]] = []
        world.wake(self.start)
        while True:
            arrival = jobs[next_job].submit if next_job < len(jobs) else math.inf
            negotiation = (
                self._tick(negotiate_every, max(world.now, last_negotiation + 1e-6))
                if pool.negotiation_wanted
                else math.inf
            )
            wake = min(world.next_wake(), self.decider.next_deadline)
            cycle = (
                self._tick(interval, max(wake, last_cycle + 1e-6)) if wake < math.inf else math.inf
            )
            now = min(arrival, world.next_event(), negotiation, cycle)
            limit = end_at if end_at is not None else hard_end
            if now == math.inf or now > limit:
                break
            world.advance_to(now)
            ticks += 1
            while world.next_event() <= now:
                for handler in world.pop_events(now):
                    handler()
            while next_job < len(jobs) and jobs[next_job].submit <= now:
                pool.submit_job(next_job)
                next_job += 1
            if negotiation <= now:
                last_negotiation = now
                pool.negotiate()
            if cycle <= now:
                last_cycle = now
                world.take_wakes(now)
                self.decider.cycle()
                cycles += 1
                if self.every_tick and end_at is None:
                    world.wake(now)
                live = sum(len(c.instances) for c in self.clouds.values())
                if not counts or counts[-1][1] != live:
                    counts.append((now, live))
                sample = self._sample(now)
                if not samples or not sample.same_as(samples[-1]):
                    samples.append(sample)  # every change, so the timeline misses no step
            if end_at is None and next_job == len(jobs) and not pool.running_jobs:
                if not pool.queue:
                    end_at = now + self._linger()
                elif now - pool.last_progress > STALLED_SECONDS:
                    end_at = now  # what is left waits for capacity this policy never brings
        ended = min(world.now, end_at if end_at is not None else world.now)
        samples.append(self._sample(ended))
        close = getattr(self.decider, "close", None)
        if close is not None:
            close()
        return SimRun(
            self.config,
            self.settings,
            self.trace,
            pool,
            self.clouds,
            getattr(self.decider, "store", None),
            self.start,
            ended,
            time.perf_counter() - began,
            cycles,
            ticks,
            self.unrunnable,
            samples,
            counts,
        )

    def _sample(self, now: float) -> Sample:
        capacity: dict[str, int] = dict.fromkeys(self.clouds, 0)
        for worker in self.pool.workers.values():
            capacity[worker.cloud] = capacity.get(worker.cloud, 0) + worker.flavor.cpus
        return Sample(
            now,
            self.pool.idle_cores,
            self.pool.running_cores,
            capacity,
            {name: len(c.instances) for name, c in self.clouds.items()},
            sum(c.billing.cost_at(now) for c in self.clouds.values()),
        )
