"""A physics job's overhead, from its start on a worker to its first generated event.

Two kinds of execute node of the personal pool run the same generation jobs side by side:
- shared: a node in the pool's own root that sees this host's venv and the campaign directory
  (how execute nodes worked before burst workers were isolated), the baseline;
- image: a node booted from the worker image, whose jobs bring their input and send their output
  back with HTCondor file transfer (what every local-cloud instance is now).

    .venv/bin/python bench/job_overhead.py [--jobs 6]

Needs root; starts the personal pool if it is not running (and stops it again), builds the worker
image if needed. Prints each kind's median and the ratio image/shared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

from bursting.airflow.campaign import submit_description
from bursting.devpool import DevPool
from bursting.image import ensure_image
from bursting.physics.processes import Process
from bursting.pool.htcondor import HTCondorPool

REPO = Path(__file__).resolve().parents[1]
SCRATCH = Path("/var/tmp/bursting/bench")


def shared_description(work_dir: Path, node: str) -> str:
    """The generation job as it ran before: the host's interpreter and repo, a shared directory."""
    return f"""
executable = {sys.executable}
arguments = "-m bursting.physics generate --process zmumu --sqrt-s 13000 --first-event $(first_event) --events 1 --seed 7 --output job_$(job).root"
environment = "PYTHONPATH={REPO}"
initialdir = {work_dir}
output = job_$(job).out
error = job_$(job).err
log = jobs.log
requirements = TARGET.BurstingInstance == "{node}"
request_cpus = 1
request_memory = 512
"""  # noqa: E501


def image_description(work_dir: Path, node: str) -> str:
    """The campaign's own job description, pinned to the image-booted node."""
    base = submit_description(Process("zmumu"), 13000.0, 7, work_dir)
    base = base.replace("--events $(events)", "--events 1").replace("1024", "512")
    pinned = f'TARGET.HasBurstingPayload && TARGET.BurstingInstance == "{node}"'
    return base + f"requirements = {pinned}\n"


def overheads(htc: HTCondorPool, description: str, work_dir: Path, jobs: int) -> list[float]:
    """Seconds from each job's start on its worker (JobCurrentStartDate, whole seconds) to its
    first event (the run record's first_event_at)."""
    items = [{"job": str(j), "first_event": str(j)} for j in range(jobs)]
    cluster = htc.submit(description, itemdata=items)
    deadline = time.monotonic() + 600
    while not (status := htc.job_status(cluster)).done:
        if time.monotonic() > deadline:
            raise SystemExit(f"cluster {cluster} did not finish within 600 s")
        time.sleep(1)
    bad = [j for j in status.jobs if j.exit_code != 0]
    if bad:
        raise SystemExit(f"{len(bad)} job(s) failed; see {work_dir}")
    values = []
    for job in status.jobs:
        proc = job.job_id.split(".")[-1]
        record = json.loads((work_dir / f"job_{proc}.json").read_text())
        assert job.started_at is not None, f"job {job.job_id} has no start time"
        values.append(record["first_event_at"] - job.started_at)
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=6)
    args = parser.parse_args()
    pool = DevPool()
    started_here = not pool.running()
    pool.up()
    image = ensure_image(log=print)
    print(f"worker image {image.reference}")
    htc = HTCondorPool.for_devpool(pool.token_dir)
    tag = uuid.uuid4().hex[:6]
    shared_node, image_node = f"bench-shared-{tag}", f"bench-image-{tag}"
    try:
        pool.add_node(2, 2048, {"BurstingInstance": shared_node}, name=shared_node)
        pool.add_container_node(2, 2048, image_node)
        results = {}
        for kind, node, describe in (
            ("shared", shared_node, shared_description),
            ("image", image_node, image_description),
        ):
            work_dir = SCRATCH / f"{kind}-{tag}"
            work_dir.mkdir(parents=True, exist_ok=True)
            work_dir.chmod(0o1777)
            values = overheads(htc, describe(work_dir, node), work_dir, args.jobs)
            results[kind] = statistics.median(values)
            shown = ", ".join(f"{v:.1f}" for v in sorted(values))
            print(f"{kind:>6}: median {results[kind]:.1f} s start-to-first-event ({shown})")
        print(f" ratio: image/shared = {results['image'] / results['shared']:.2f}")
    finally:
        pool.kill_node(shared_node)
        pool.containers().kill_node(image_node)
        if started_here:
            pool.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
