"""A simulated HTCondor pool: a schedd's queue, partitionable slots and a negotiator.

Workers join as one partitionable slot sized to their flavor; each negotiation cycle carves
dynamic slots for idle jobs, oldest shape first (HTCondor negotiates by autocluster), on the
first worker (oldest first) whose free room fits and whose machine ad meets the job's
Requirements (the planner's own Matcher). A freed slot may take the next idle job of the same
shape at once (claim reuse). Draining workers take no new jobs and leave when empty.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bursting.errors import PermanentError
from bursting.model import ClusterStatus, Demand, Flavor, JobShape, PoolSnapshot, Worker
from bursting.policy.matching import Matcher
from bursting.sim.trace import TraceJob
from bursting.sim.world import JOB_FINISH, World


@dataclass
class SimWorker:
    instance_id: str
    cloud: str
    flavor: Flavor
    pool_id: str
    joined_at: float
    free_cpus: int
    free_memory_mb: int
    free_disk_mb: int
    free_gpus: int
    running: set[int] = field(default_factory=set)
    draining: bool = False
    _view: Worker | None = None

    def fits(self, shape: JobShape) -> int:
        limits = [self.free_cpus // shape.cpus, self.free_memory_mb // max(1, shape.memory_mb)]
        if shape.disk_mb:
            limits.append(self.free_disk_mb // shape.disk_mb)
        if shape.gpus:
            limits.append(self.free_gpus // shape.gpus)
        return max(0, min(limits))

    def view(self) -> Worker:
        if self._view is None:
            name = f"slot1@{self.instance_id}"
            self._view = Worker(
                name,
                self.instance_id,
                self.instance_id,
                self.pool_id,
                self.flavor.cpus,
                self.flavor.memory_mb,
                self.free_cpus,
                self.free_memory_mb,
                len(self.running),
                self.draining,
                1 + len(self.running),
            )
        return self._view


class ShapeQueue:
    """Idle jobs of one shape, oldest first, with their queue times kept beside them so the
    snapshot's `idle_since` tuple is one C-level copy."""

    __slots__ = ("head", "indices", "times")

    def __init__(self) -> None:
        self.indices: list[int] = []
        self.times: list[float] = []
        self.head = 0

    def __len__(self) -> int:
        return len(self.indices) - self.head

    def push(self, index: int, queued_at: float) -> None:
        if not self.times or queued_at >= self.times[-1]:
            self.indices.append(index)
            self.times.append(queued_at)
            return
        at = bisect_right(self.times, queued_at, self.head)
        self.indices.insert(at, index)
        self.times.insert(at, queued_at)

    def first(self) -> int:
        return self.indices[self.head]

    def oldest(self) -> float:
        return self.times[self.head]

    def pop(self) -> int:
        index = self.indices[self.head]
        self.head += 1
        if self.head > 1024 and self.head * 2 > len(self.indices):
            del self.indices[: self.head]
            del self.times[: self.head]
            self.head = 0
        return index

    def idle_since(self) -> tuple[float, ...]:
        return tuple(self.times[self.head :])


@dataclass
class JobRecord:
    """What happened to one trace job in the simulation."""

    queued_at: float
    started_at: float | None = None
    finished_at: float | None = None
    restarts: int = 0


class SimPool:
    """The BatchPool seam over simulated jobs and workers (snapshot and drain are what the
    controller uses; submit/job_status/remove belong to the Airflow side and are refused)."""

    def __init__(
        self,
        world: World,
        jobs: Sequence[TraceJob],
        matcher: Matcher,
        min_idle_seconds: float,
        claim_reuse: bool = True,
    ) -> None:
        self.world = world
        self.jobs = jobs
        self.records: list[JobRecord | None] = [None] * len(jobs)
        self.matcher = matcher
        self.min_idle = min_idle_seconds
        self.claim_reuse = claim_reuse
        self.queue: dict[JobShape, ShapeQueue] = {}
        self.idle_cores = 0
        self.running_cores = 0
        self.time_at_cores: dict[int, float] = {}  # running cores -> seconds spent at that level
        self._level_since: float | None = None
        self.running_jobs = 0
        self.workers: dict[str, SimWorker] = {}  # insertion order = join order
        self.busy_core_seconds = 0.0
        self.negotiation_wanted = False
        self.last_progress = world.now  # when a job last started or finished
        self.kept_idle = False  # the controller keeps an idle worker for demand (see engine)
        self._demand: dict[JobShape, Demand] = {}
        self._job_worker: dict[int, tuple[str, float]] = {}  # job -> (worker, run started)
        self._snapshot: PoolSnapshot | None = None

    # ----- jobs -----
    def submit_job(self, index: int) -> None:
        job = self.jobs[index]
        now = self.world.now
        self.records[index] = JobRecord(queued_at=now)
        self._enqueue(index, job.shape, now)
        self.world.wake(now + self.min_idle)  # demand for the planner once old enough

    def _enqueue(self, index: int, shape: JobShape, queued_at: float) -> None:
        queue = self.queue.get(shape)
        if queue is None:
            queue = self.queue[shape] = ShapeQueue()
        queue.push(index, queued_at)
        self.idle_cores += shape.cpus
        self._demand.pop(shape, None)
        self._snapshot = None
        self.negotiation_wanted = True

    def _start(self, index: int, worker: SimWorker) -> None:
        job, now = self.jobs[index], self.world.now
        shape = job.shape
        record = self.records[index]
        assert record is not None
        self.last_progress = now
        if record.started_at is None:
            record.started_at = now
        else:
            record.restarts += 1
        if not worker.running or (self.kept_idle and now - record.queued_at >= self.min_idle):
            self.world.wake()  # an idle worker became busy, or demand the planner counts shrank
        worker.running.add(index)
        worker.free_cpus -= shape.cpus
        worker.free_memory_mb -= shape.memory_mb
        worker.free_disk_mb -= shape.disk_mb
        worker.free_gpus -= shape.gpus
        worker._view = None
        self.idle_cores -= shape.cpus
        self._level_changes()
        self.running_cores += shape.cpus
        self.running_jobs += 1
        self._job_worker[index] = (worker.instance_id, now)
        self._snapshot = None
        key = f"{index:09d}"
        self.world.at(now + job.runtime, JOB_FINISH, key, lambda: self._finish(index, now))

    def _finish(self, index: int, started: float) -> None:
        running = self._job_worker.get(index)
        if running is None or running[1] != started:
            return  # this run was evicted (its worker went away); the job was requeued
        del self._job_worker[index]
        worker = self.workers[running[0]]
        job, now = self.jobs[index], self.world.now
        record = self.records[index]
        assert record is not None
        record.finished_at = now
        self.last_progress = now
        self.busy_core_seconds += job.shape.cpus * job.runtime
        self._release(index, worker)
        if not worker.running:
            self.world.wake()  # idle now: the controller starts its idle clock
            if worker.draining:
                self._leave(worker)
                return
        reuse = self.queue.get(job.shape) if self.claim_reuse and not worker.draining else None
        if reuse:
            self._start(self._dequeue(job.shape), worker)
        else:
            self.negotiation_wanted = True

    def _dequeue(self, shape: JobShape) -> int:
        queue = self.queue[shape]
        index = queue.pop()
        if not queue:
            del self.queue[shape]
        self._demand.pop(shape, None)
        return index

    def _release(self, index: int, worker: SimWorker) -> None:
        shape = self.jobs[index].shape
        worker.running.discard(index)
        worker.free_cpus += shape.cpus
        worker.free_memory_mb += shape.memory_mb
        worker.free_disk_mb += shape.disk_mb
        worker.free_gpus += shape.gpus
        worker._view = None
        self._level_changes()
        self.running_cores -= shape.cpus
        self.running_jobs -= 1
        self._snapshot = None

    def _level_changes(self) -> None:
        """Account the time spent at the current number of running cores, before it changes."""
        now = self.world.now
        if self._level_since is not None and now > self._level_since:
            level = self.running_cores
            self.time_at_cores[level] = self.time_at_cores.get(level, 0.0) + now - self._level_since
        self._level_since = now

    def busy_cores_percentile(self, fraction: float) -> int:
        """The running cores that were not exceeded for `fraction` of the time (time-weighted)."""
        total = sum(self.time_at_cores.values())
        seen = 0.0
        for level in sorted(self.time_at_cores):
            seen += self.time_at_cores[level]
            if seen >= fraction * total:
                return level
        return self.running_cores

    # ----- workers -----
    def join(self, instance_id: str, cloud: str, flavor: Flavor, pool_id: str) -> None:
        now = self.world.now
        self.workers[instance_id] = SimWorker(
            instance_id,
            cloud,
            flavor,
            pool_id,
            now,
            flavor.cpus,
            flavor.memory_mb,
            flavor.disk_gb * 1024 if flavor.disk_gb else 1 << 40,
            flavor.gpus,
        )
        self._snapshot = None
        self.negotiation_wanted = True
        self.world.wake()

    def lose(self, instance_id: str) -> None:
        """The worker's machine is gone: its running jobs go back to the queue (HTCondor
        reschedules evicted jobs; their wait stays measured from submission to first start)."""
        worker = self.workers.get(instance_id)
        if worker is None:
            return
        now = self.world.now
        for index in sorted(worker.running):
            _, started = self._job_worker.pop(index)
            self.busy_core_seconds += self.jobs[index].shape.cpus * (now - started)  # lost work
            self._release(index, worker)
            self._requeue(index)
        self._leave(worker)

    def _requeue(self, index: int) -> None:
        record = self.records[index]
        assert record is not None
        self._enqueue(index, self.jobs[index].shape, record.queued_at)

    def _leave(self, worker: SimWorker) -> None:
        self.workers.pop(worker.instance_id, None)
        self._snapshot = None
        self.world.wake()

    # ----- the negotiator -----
    def negotiate(self) -> None:
        """One negotiation cycle: idle jobs, oldest shape first, onto workers with room."""
        self.negotiation_wanted = False
        open_workers = [w for w in self.workers.values() if not w.draining and w.free_cpus > 0]
        if not open_workers or not self.queue:
            return
        shapes = sorted(self.queue, key=lambda s: self.queue[s].oldest())
        for shape in shapes:
            for worker in open_workers:
                if not self.queue.get(shape):
                    break
                room = worker.fits(shape)
                if not room or not self.matcher.can_run(shape, worker.cloud, worker.flavor):
                    continue
                for _ in range(min(room, len(self.queue[shape]))):
                    self._start(self._dequeue(shape), worker)
            open_workers = [w for w in open_workers if w.free_cpus > 0]
            if not open_workers:
                return

    # ----- the BatchPool seam -----
    def snapshot(self) -> PoolSnapshot:
        if self._snapshot is None:
            demand = []
            for shape, queue in self.queue.items():
                entry = self._demand.get(shape)
                if entry is None:
                    entry = self._demand[shape] = Demand(shape, queue.idle_since())
                demand.append(entry)
            workers = tuple(w.view() for w in self.workers.values())
            busy = frozenset(w.instance_id for w in self.workers.values() if w.running)
            self._snapshot = PoolSnapshot(self.world.now, tuple(demand), workers, busy_hosts=busy)
        return self._snapshot

    def drain(self, worker_names: Sequence[str]) -> list[str]:
        with self.world.lock:
            return self._drain(worker_names)

    def _drain(self, worker_names: Sequence[str]) -> list[str]:
        drained = []
        for name in worker_names:
            worker = self.workers.get(name.split("@", 1)[-1])
            if worker is None:
                continue
            worker.draining = True
            worker._view = None
            self._snapshot = None
            drained.append(name)
            if not worker.running:
                self._leave(worker)
        return drained

    def submit(
        self,
        description: str,
        itemdata: Iterable[Mapping[str, str]] | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> int:
        raise PermanentError("the simulated pool replays a trace; it takes no submits")

    def job_status(self, cluster_id: int) -> ClusterStatus:
        return ClusterStatus(cluster_id)

    def remove(self, cluster_id: int, reason: str = "removed by bursting") -> None:
        raise PermanentError("the simulated pool replays a trace; nothing to remove")
