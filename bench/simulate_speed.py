"""How fast `bursting simulate` replays: 20k, 50k and 200k generated jobs over six months each,
through the real controller, and the speed-up over real time; the cost per job should stay
about flat (the replay grows about linearly with the number of jobs). CPU time is printed beside
wall time: on a shared machine the wall time includes waiting for a core.

    .venv/bin/python bench/simulate_speed.py [--swf ../shared/traces/HPC2N-2002-2.2-cln.swf.gz]

With --swf, a public trace is replayed as well (read its README for source and terms).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from bursting.sim.engine import Simulation
from bursting.sim.generate import Bursts, generate
from bursting.sim.readers import read_trace
from bursting.sim.settings import split_config

DAYS = 182.0
SIZES = (20_000, 50_000, 200_000)
CONFIG = """
pool: {id: bench}
clouds:
  - name: private
    type: local
    priority: 1
    max_instances: 20
    max_concurrent_boots: 5
    flavors: [{name: p8, cpus: 8, memory_mb: 32768, disk_gb: 40, price_per_hour: 0.0}]
  - name: public
    type: local
    priority: 5
    max_instances: 100
    max_concurrent_boots: 10
    flavors:
      - {name: m8, cpus: 8, memory_mb: 32768, disk_gb: 80, price_per_hour: 0.32}
      - {name: m16, cpus: 16, memory_mb: 65536, disk_gb: 160, price_per_hour: 0.64}
      - {name: m64, cpus: 64, memory_mb: 262144, disk_gb: 320, price_per_hour: 2.56}
policy:
  interval_seconds: 30
  idle_seconds: 1800
  spend: {max_per_hour: 60}
simulation:
  negotiator_interval_seconds: 60
  default_cloud:
    boot_failure_rate: 0.02
"""


def replay(label: str, trace_jobs: int, sim: Simulation) -> None:
    began, cpu = time.perf_counter(), time.process_time()
    run = sim.run()
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    simulated = run.ended_at - run.started_at
    print(
        f"{label:<30} {trace_jobs:>8,} jobs {simulated / 86400:6.1f} days  {wall:6.1f} s wall "
        f"({cpu:5.1f} s CPU)  {cpu / max(1, trace_jobs) * 1e6:5.0f} us CPU/job  "
        f"x{simulated / wall:>9,.0f} real time  {run.cycles:>7,} cycles",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--swf", type=Path, help="also replay this SWF trace")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    args = parser.parse_args()
    config, settings = split_config(yaml.safe_load(CONFIG), "bench config")
    for size in args.sizes:
        trace = generate(Bursts(size, DAYS, burst_size=100), seed=7)
        replay(f"generated, {DAYS:g} days", size, Simulation(config, settings, trace, seed=7))
    if args.swf is not None:
        trace = read_trace(args.swf)
        replay(args.swf.name, len(trace.jobs), Simulation(config, settings, trace, seed=7))


if __name__ == "__main__":
    main()
