"""Synthetic job traces the project makes itself (tests, benchmarks, examples): campaigns of
jobs submitted in bursts, with a small mix of shapes and log-normal run times."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from bursting.model import JobShape
from bursting.sim.trace import DEFAULT_EPOCH, Trace, TraceJob

DAY = 86400.0
SHAPES = (JobShape(1, 2048), JobShape(4, 8192), JobShape(8, 16384))
SHAPE_WEIGHTS = (0.7, 0.2, 0.1)


@dataclass(frozen=True)
class Bursts:
    """`jobs` jobs over `days` days, in bursts of about `burst_size` submitted within
    `burst_seconds`; run times log-normal around `median_runtime` seconds."""

    jobs: int
    days: float
    burst_size: int = 200
    burst_seconds: float = 300.0
    median_runtime: float = 1800.0
    runtime_sigma: float = 1.0
    max_runtime: float = 2 * DAY
    start: float = DEFAULT_EPOCH
    shapes: tuple[JobShape, ...] = SHAPES
    weights: tuple[float, ...] = SHAPE_WEIGHTS


def generate(spec: Bursts, seed: int = 0) -> Trace:
    """A trace of bursty campaigns, the same for the same spec and seed."""
    rng = random.Random(seed)
    bursts = max(1, math.ceil(spec.jobs / spec.burst_size))
    starts = sorted(rng.uniform(0, spec.days * DAY) for _ in range(bursts))
    jobs: list[TraceJob] = []
    for number, begin in enumerate(starts):
        size = spec.burst_size if number < bursts - 1 else spec.jobs - len(jobs)
        shape = rng.choices(spec.shapes, spec.weights)[0]
        median = spec.median_runtime * rng.uniform(0.5, 2.0)  # each campaign its own length
        for _ in range(max(0, min(size, spec.jobs - len(jobs)))):
            runtime = min(
                spec.max_runtime, max(1.0, rng.lognormvariate(math.log(median), spec.runtime_sigma))
            )
            submit = spec.start + begin + rng.uniform(0, spec.burst_seconds)
            jobs.append(TraceJob(submit, runtime, shape, str(len(jobs) + 1)))
    jobs.sort(key=lambda job: job.submit)
    return Trace(jobs, f"generated: {spec.jobs} jobs over {spec.days:g} days, seed {seed}")
