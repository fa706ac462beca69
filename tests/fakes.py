"""Stateful fakes at the seams (BatchPool, CloudProvider) sharing one FakeClock: a tiny world.

Jobs queue in the fake pool; instances boot in fake clouds after a delay, join the pool as
workers, run jobs for a set duration, drain and leave. A job on a worker whose instance is deleted
is recorded as interrupted, so tests can assert that scale-down never kills running work.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bursting.clock import Clock, FakeClock
from bursting.clouds.base import CloudProvider
from bursting.errors import CloudUnavailable, PermanentError, PoolUnavailable, QuotaExceeded
from bursting.model import (
    CampaignJob,
    CloudInstance,
    CloudSnapshot,
    CloudStatus,
    ClusterStatus,
    Demand,
    Flavor,
    InstanceSpec,
    JobShape,
    JobState,
    PoolSnapshot,
    QueueRow,
    Quota,
    Worker,
)
from bursting.pool.base import BatchPool


@dataclass
class FakeJob:
    id: int
    shape: JobShape
    duration: float
    idle_since: float
    worker: str | None = None
    started_at: float | None = None
    done_at: float | None = None
    interrupted: bool = False
    campaign: str | None = None
    exit_code: int = 0
    # (cloud, flavor, instance) of the worker it last started on, as job_machine_attrs records
    # them; all None on a node that is not a burst worker
    machine: tuple[str | None, str | None, str | None] = (None, None, None)
    wall_before: float = 0.0  # wall time of earlier, interrupted runs


@dataclass
class FakeWorker:
    instance_id: str
    cpus: int
    memory_mb: int
    draining: bool = False
    jobs: list[FakeJob] = field(default_factory=list)
    cloud: str | None = None  # None: not a burst worker (advertises no Bursting* attributes)
    flavor: str | None = None


class FakePool:
    """BatchPool: a queue and the workers that joined; `readable=False` makes it unreadable."""

    def __init__(self, clock: FakeClock, pool_id: str) -> None:
        self.clock = clock
        self.pool_id = pool_id
        self.jobs: list[FakeJob] = []
        self.workers: dict[str, FakeWorker] = {}
        self.readable = True
        self.owner = "alice"  # a user name: it must never reach a metric label
        self.drained: list[str] = []
        self._ids = itertools.count(1)

    def add_jobs(
        self, count: int, shape: JobShape, duration: float, campaign: str | None = None
    ) -> None:
        now = self.clock.now()
        self.jobs += [
            FakeJob(next(self._ids), shape, duration, now, campaign=campaign) for _ in range(count)
        ]

    def snapshot(self) -> PoolSnapshot:
        if not self.readable:
            raise PoolUnavailable("fake collector is down")
        idle: dict[JobShape, list[float]] = {}
        for job in self.jobs:
            if job.worker is None and job.done_at is None:
                idle.setdefault(job.shape, []).append(job.idle_since)
        workers = tuple(self._worker(w) for w in self.workers.values())
        busy = frozenset(f"{w.instance_id}@fake" for w in self.workers.values() if w.jobs)
        rows: dict[JobShape, list[int]] = {}
        for job in self.jobs:
            if job.done_at is None:
                rows.setdefault(job.shape, [0, 0])[0 if job.worker is None else 1] += 1
        return PoolSnapshot(
            self.clock.now(),
            tuple(Demand(s, tuple(sorted(t))) for s, t in idle.items()),
            workers,
            queue=tuple(
                QueueRow(self.owner, s, idle, running) for s, (idle, running) in rows.items()
            ),
            busy_hosts=busy,
            job_starts=tuple(
                (str(j.id), j.idle_since, j.started_at)
                for j in self.jobs
                if j.started_at is not None and j.done_at is None
            ),
        )

    def _worker(self, w: FakeWorker) -> Worker:
        used_cpus = sum(j.shape.cpus for j in w.jobs)
        used_mem = sum(j.shape.memory_mb for j in w.jobs)
        return Worker(
            f"{w.instance_id}@fake",
            "fake",
            w.instance_id,
            self.pool_id,
            w.cpus,
            w.memory_mb,
            0 if w.draining else w.cpus - used_cpus,
            0 if w.draining else w.memory_mb - used_mem,
            len(w.jobs),
            w.draining,
            1,
        )

    def drain(self, worker_names: Sequence[str]) -> list[str]:
        if not self.readable:
            raise PoolUnavailable("fake collector is down")
        done = []
        for name in worker_names:
            worker = self.workers.get(name.split("@")[0])
            if worker:
                worker.draining = True
                self.drained.append(name)
                done.append(name)
        return done

    def submit(
        self,
        description: str,
        itemdata: Iterable[Mapping[str, str]] | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> int:
        raise AssertionError("the controller must never submit jobs")

    def job_status(self, cluster_id: int) -> ClusterStatus:
        raise AssertionError("the controller must never ask for job status")

    def remove(self, cluster_id: int, reason: str = "") -> None:
        raise AssertionError("the controller must never remove jobs")

    def campaign_jobs(self, campaign: str, now: float | None = None) -> tuple[CampaignJob, ...]:
        """As HTCondorPool.campaign_jobs: the campaign's jobs, queued or done, with wall time."""
        if not self.readable:
            raise PoolUnavailable("fake schedd is down")
        at = self.clock.now() if now is None else now
        return tuple(
            CampaignJob(
                f"1.{job.id}",
                JobState.COMPLETED
                if job.done_at is not None
                else JobState.RUNNING
                if job.started_at is not None
                else JobState.IDLE,
                job.shape.cpus,
                job.wall_before
                + (
                    (job.done_at if job.done_at is not None else at) - job.started_at
                    if job.started_at is not None
                    else 0.0
                ),
                *job.machine,
                exit_code=job.exit_code if job.done_at is not None else None,
            )
            for job in self.jobs
            if job.campaign == campaign
        )

    # ----- the world moving on -----
    def step(self) -> None:
        """Finish due jobs, start idle ones on free room, let drained idle workers leave."""
        now = self.clock.now()
        for worker in self.workers.values():
            for job in list(worker.jobs):
                if job.started_at is not None and now - job.started_at >= job.duration:
                    job.done_at = now
                    worker.jobs.remove(job)
        for job in self.jobs:
            if job.worker is not None or job.done_at is not None:
                continue
            for worker in self.workers.values():
                free = self._worker(worker)
                if free.free_cpus >= job.shape.cpus and free.free_memory_mb >= job.shape.memory_mb:
                    job.worker, job.started_at = worker.instance_id, now
                    job.machine = (
                        (worker.cloud, worker.flavor, worker.instance_id)
                        if worker.cloud is not None
                        else (None, None, None)
                    )
                    worker.jobs.append(job)
                    break
        for name in [n for n, w in self.workers.items() if w.draining and not w.jobs]:
            del self.workers[name]

    def vanish(self, instance_id: str) -> None:
        """The instance was deleted under its worker: running jobs are interrupted."""
        worker = self.workers.pop(instance_id, None)
        if worker:
            for job in worker.jobs:
                if job.started_at is not None:
                    job.wall_before += self.clock.now() - job.started_at
                job.interrupted = True
                job.worker = None
                job.started_at = None
                job.idle_since = self.clock.now()

    @property
    def interrupted(self) -> list[FakeJob]:
        return [j for j in self.jobs if j.interrupted]

    @property
    def unfinished(self) -> list[FakeJob]:
        return [j for j in self.jobs if j.done_at is None]


@dataclass
class FakeVM:
    spec: InstanceSpec
    created_at: float
    status: CloudStatus = CloudStatus.BUILD
    joined: bool = False


class FakeCloud:
    """CloudProvider with a boot delay, a quota and injectable faults; creates are idempotent.
    Held to the same contract as the real providers by tests/contract."""

    def __init__(
        self,
        name: str,
        clock: FakeClock,
        pool: FakePool,
        flavors: Sequence[Flavor],
        boot_delay: float = 30.0,
        join_delay: float = 10.0,
    ) -> None:
        self.name = name
        self.clock = clock
        self.pool = pool
        self._flavors = tuple(flavors)
        self.boot_delay = boot_delay
        self.join_delay = join_delay
        self.vms: dict[str, FakeVM] = {}
        self.readable = True
        self.fail_boots = False
        self.hang_in_build = False
        self.never_join = False
        self.quota_cores: int | None = None
        self.quota_unknown = False  # the quota call fails, as a cloud's API sometimes does
        self.create_calls = 0
        self.delete_calls = 0

    def list_instances(self, pool_id: str) -> CloudSnapshot:
        if not self.readable:
            raise CloudUnavailable(f"{self.name} API is down")
        vms = [v for v in self.vms.values() if v.spec.pool_id == pool_id]
        return CloudSnapshot(
            self.name,
            self.clock.now(),
            tuple(
                CloudInstance(
                    v.spec.id, self.name, v.spec.flavor.name, v.status, v.created_at, pool_id
                )
                for v in vms
            ),
            self.quota(),
        )

    def create(self, spec: InstanceSpec) -> CloudInstance:
        if not self.readable:
            raise CloudUnavailable(f"{self.name} API is down")
        self.create_calls += 1
        if spec.flavor.name not in {f.name for f in self._flavors}:
            raise PermanentError(f"{self.name}: no flavor {spec.flavor.name!r}")
        if spec.id not in self.vms:
            if self.quota_cores is not None and self._cores() + spec.flavor.cpus > self.quota_cores:
                raise QuotaExceeded(f"{self.name}: core quota")
            self.vms[spec.id] = FakeVM(spec, self.clock.now())
        vm = self.vms[spec.id]
        return CloudInstance(
            spec.id, self.name, spec.flavor.name, vm.status, vm.created_at, spec.pool_id
        )

    def delete(self, instance_id: str) -> None:
        if not self.readable:
            raise CloudUnavailable(f"{self.name} API is down")
        self.delete_calls += 1
        if self.vms.pop(instance_id, None) is not None:
            self.pool.vanish(instance_id)

    def flavors(self) -> tuple[Flavor, ...]:
        return self._flavors

    def quota(self) -> Quota:
        if self.quota_unknown:
            return Quota.unknown()
        if self.quota_cores is None:
            return Quota()
        return Quota(cores=max(0, self.quota_cores - self._cores()))

    def _cores(self) -> int:
        return sum(v.spec.flavor.cpus for v in self.vms.values())

    def step(self) -> None:
        now = self.clock.now()
        for vm in self.vms.values():
            age = now - vm.created_at
            if vm.status is CloudStatus.BUILD and age >= self.boot_delay and not self.hang_in_build:
                vm.status = CloudStatus.ERROR if self.fail_boots else CloudStatus.ACTIVE
            if (
                vm.status is CloudStatus.ACTIVE
                and not vm.joined
                and not self.never_join
                and age >= self.boot_delay + self.join_delay
            ):
                vm.joined = True
                flavor = vm.spec.flavor
                self.pool.workers[vm.spec.id] = FakeWorker(
                    vm.spec.id, flavor.cpus, flavor.memory_mb, cloud=self.name, flavor=flavor.name
                )


# Held to the seams: `mypy bursting tests/fakes.py` (make lint) fails here if a fake drifts from
# the Protocol it stands in for. Never called; the types are the check.
def _pool_conforms(pool: FakePool) -> BatchPool:
    return pool


def _cloud_conforms(cloud: FakeCloud) -> CloudProvider:
    return cloud


def _clock_conforms(clock: FakeClock) -> Clock:
    return clock
