"""How long one planning cycle takes at scale, beside a naive one-decision-per-job planner.

1,000,000 idle jobs in 10,000 shapes, 10,000 instances on 5 clouds. Both planners get the same
observation and run the same per-instance lifecycle pass; they differ in how demand becomes
instances: ours packs shape counts (first-fit decreasing by groups), the naive one walks every
idle job, as the simplest cloudscheduler-style loop does. Prints seconds per cycle and the ratio.

    python bench/plan_speed.py [--jobs N] [--shapes N] [--instances N] [--runs N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from bursting.config import Config, parse_config
from bursting.lifecycle import Observation, Timeouts, next_state
from bursting.model import (
    CloudInstance,
    CloudSnapshot,
    CloudStatus,
    Demand,
    Instance,
    InstanceState,
    JobShape,
    PoolSnapshot,
    Worker,
)
from bursting.planner import flavor_table, plan_cycle

NOW = 1_800_000_000.0
CLOUDS = 5


def make_config(max_instances: int) -> Config:
    flavors = [
        {"name": "small", "cpus": 8, "memory_mb": 32768, "disk_gb": 200, "price_per_hour": 0.3},
        {"name": "large", "cpus": 32, "memory_mb": 131072, "disk_gb": 800, "price_per_hour": 1.2},
    ]
    clouds = [
        {
            "name": f"cloud{i}",
            "type": "local",
            "priority": i,
            "max_instances": max_instances,
            "max_concurrent_boots": 500,
            "flavors": flavors,
        }
        for i in range(CLOUDS)
    ]
    return parse_config(
        {"pool": {"id": "bench"}, "clouds": clouds, "policy": {"min_idle_seconds": 60}}
    )


def make_world(
    jobs: int, shapes: int, instances: int, seed: int = 7
) -> tuple[list[Instance], PoolSnapshot, dict[str, CloudSnapshot | None]]:
    rng = random.Random(seed)
    per_shape = jobs // shapes
    demand = []
    for s in range(shapes):
        shape = JobShape(
            rng.choice((1, 1, 1, 2, 4, 8)),
            rng.choice((1000, 2000, 4000, 8000)),
            rng.choice((1, 5, 10)) * 1024,
            0,
            f"(TARGET.Campaign == {s})",
        )
        demand.append(
            Demand(shape, tuple(sorted(NOW - rng.uniform(0, 3600) for _ in range(per_shape))))
        )
    stored, workers, listed = [], [], {f"cloud{c}": [] for c in range(CLOUDS)}
    for i in range(instances):
        cloud = f"cloud{i % CLOUDS}"
        iid = f"bench-{cloud}-{i:06d}"
        stored.append(
            Instance(
                iid, cloud, "small", 8, 32768, 0.3, InstanceState.RUNNING, NOW - 7200, NOW - 7300
            )
        )
        free = rng.choice((0, 0, 0, 1, 2))
        workers.append(
            Worker(
                f"{iid}@host",
                "host",
                iid,
                "bench",
                8,
                32768,
                free,
                free * 4000,
                8 - free,
                False,
                9 - free,
            )
        )
        listed[cloud].append(
            CloudInstance(iid, cloud, "small", CloudStatus.ACTIVE, NOW - 7300, "bench")
        )
    pool = PoolSnapshot(NOW, tuple(demand), tuple(workers))
    clouds: dict[str, CloudSnapshot | None] = {
        name: CloudSnapshot(name, NOW, tuple(items)) for name, items in listed.items()
    }
    return stored, pool, clouds


def ours(
    config: Config,
    stored: list[Instance],
    pool: PoolSnapshot,
    clouds: dict[str, CloudSnapshot | None],
) -> int:
    counter = iter(range(10**9))
    plan = plan_cycle(config, stored, {}, pool, clouds, NOW, lambda c: f"{c}-{next(counter)}")
    return len(plan.actions)


def naive(
    config: Config,
    stored: list[Instance],
    pool: PoolSnapshot,
    clouds: dict[str, CloudSnapshot | None],
) -> int:
    """One decision per idle job: place it in the first free room, else boot a VM for it."""
    policy = config.policy
    limits = Timeouts(
        policy.boot_timeout_seconds,
        policy.join_timeout_seconds,
        policy.drain_timeout_seconds,
        policy.missing_cycles_before_gone,
    )
    workers = {w.instance_id: w for w in pool.workers}
    for instance in stored:  # the same per-instance pass as ours
        snapshot = clouds[instance.cloud]
        seen = snapshot.by_id().get(instance.id) if snapshot else None
        next_state(instance, Observation(True, seen, True, workers.get(instance.id)), NOW, limits)
    rooms = [[w.free_cpus, w.free_memory_mb] for w in pool.workers if w.free_cpus > 0]
    flavor = flavor_table(config)[("cloud0", "small")]
    headroom = {
        c.name: min(
            c.max_concurrent_boots, c.max_instances - sum(1 for i in stored if i.cloud == c.name)
        )
        for c in config.clouds
    }
    created = 0
    cutoff = NOW - policy.min_idle_seconds
    for entry in pool.demand:
        shape = entry.shape
        for idle_since in entry.idle_since:  # one decision per idle job
            if idle_since > cutoff:
                continue
            # First fit among the most recent rooms (a bounded window, as ours uses).
            for index in range(len(rooms) - 1, max(-1, len(rooms) - 33), -1):
                room = rooms[index]
                if room[0] >= shape.cpus and room[1] >= shape.memory_mb:
                    room[0] -= shape.cpus
                    room[1] -= shape.memory_mb
                    if room[0] == 0:
                        rooms[index] = rooms[-1]
                        rooms.pop()
                    break
            else:
                cloud = next((name for name, left in headroom.items() if left > 0), None)
                if cloud is None:
                    continue
                headroom[cloud] -= 1
                created += 1
                rooms.append([flavor.cpus - shape.cpus, flavor.memory_mb - shape.memory_mb])
    return created


def timed(runs: int, planner: Callable[[], int]) -> tuple[list[float], int]:
    times, result = [], 0
    for _ in range(runs):
        began = time.perf_counter()
        result = planner()
        times.append(time.perf_counter() - began)
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--shapes", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    config = make_config(max_instances=args.instances // CLOUDS + 1000)
    print(
        f"building: {args.jobs:,} idle jobs in {args.shapes:,} shapes, "
        f"{args.instances:,} instances on {CLOUDS} clouds"
    )
    world = make_world(args.jobs, args.shapes, args.instances)
    ours_times, ours_actions = timed(args.runs, lambda: ours(config, *world))
    naive_times, naive_created = timed(max(1, args.runs // 2), lambda: naive(config, *world))
    best, median = min(ours_times), statistics.median(ours_times)
    naive_median = statistics.median(naive_times)
    print(
        f"ours : median {median:.3f} s, best {best:.3f} s per cycle over {len(ours_times)} runs"
        f" ({ours_actions:,} actions)"
    )
    print(
        f"naive: median {naive_median:.3f} s per cycle over {len(naive_times)} runs"
        f" ({naive_created:,} creates)"
    )
    print(f"ratio: naive / ours = {naive_median / median:.1f}x")
    print(
        f"target: <= 1 s per cycle and >= 10x: "
        f"{'met' if median <= 1.0 and naive_median / median >= 10 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
