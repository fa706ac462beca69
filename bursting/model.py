"""Plain immutable values that flow between the pool, the clouds, the policy and the controller."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class JobShape:
    """What one job asks of a slot; jobs with equal shapes are interchangeable for planning."""

    cpus: int
    memory_mb: int
    disk_mb: int = 0
    gpus: int = 0
    requirements: str = ""
    # Shapes are dictionary keys on the planning hot path: hash once, not per lookup.
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = (self.cpus, self.memory_mb, self.disk_mb, self.gpus, self.requirements)
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash

    def label(self) -> str:
        gpu = f" {self.gpus}gpu" if self.gpus else ""
        return f"{self.cpus}c {self.memory_mb}MB {self.disk_mb // 1024}GB{gpu}"


@dataclass(frozen=True)
class Demand:
    """Idle jobs of one shape; `idle_since` holds each job's idle start time, oldest first."""

    shape: JobShape
    idle_since: tuple[float, ...]

    @property
    def idle_jobs(self) -> int:
        return len(self.idle_since)


class JobState(enum.Enum):
    """HTCondor's JobStatus values, by name."""

    IDLE = 1
    RUNNING = 2
    REMOVED = 3
    COMPLETED = 4
    HELD = 5
    TRANSFERRING_OUTPUT = 6
    SUSPENDED = 7

    @property
    def finished(self) -> bool:
        return self in (JobState.REMOVED, JobState.COMPLETED)


@dataclass(frozen=True)
class QueueRow:
    """Count of queued jobs per owner, shape and state, as `bursting q` shows them."""

    owner: str
    shape: JobShape
    idle: int = 0
    running: int = 0
    held: int = 0


@dataclass(frozen=True)
class Worker:
    """One execute node (one startd) as the collector sees it, with its burst tags if any."""

    name: str
    machine: str
    instance_id: str | None
    pool_id: str | None
    total_cpus: int
    total_memory_mb: int
    free_cpus: int
    free_memory_mb: int
    running_jobs: int
    draining: bool
    slots: int

    @property
    def busy(self) -> bool:
        return self.running_jobs > 0


@dataclass(frozen=True)
class PoolSnapshot:
    """Everything the controller needs from the batch system at one instant."""

    taken_at: float
    demand: tuple[Demand, ...]
    workers: tuple[Worker, ...]
    queue: tuple[QueueRow, ...] = ()
    busy_hosts: frozenset[str] = frozenset()  # startds the schedd says run jobs right now
    # When the daemons we read last started (None: no sign of a restart, e.g. a fake pool), and
    # how often workers re-advertise: a worker missing from a younger collector is not missing.
    collector_started_at: float | None = None
    schedd_started_at: float | None = None
    advertise_interval: float = 300.0
    # (job id, queued_at, first started_at) of each running job: its wait from queue entry to
    # start (jobs that start and end between two snapshots come from the schedd's history).
    job_starts: tuple[tuple[str, float, float], ...] = ()

    @property
    def idle_jobs(self) -> int:
        return sum(d.idle_jobs for d in self.demand)


@dataclass(frozen=True)
class JobOutcome:
    """One job of a cluster: where it is, and how it ended if it has."""

    job_id: str
    state: JobState
    exit_code: int | None = None
    hold_reason: str | None = None
    stderr_path: str | None = None
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    host: str | None = None
    starts: int = 0  # how often it started: more than once means it was interrupted
    instance: str | None = None  # the burst instance it last ran on (None: not a burst worker)

    @property
    def wait_seconds(self) -> float | None:
        """Time from submission to first start, the figure users complain about."""
        if self.queued_at is None or self.started_at is None:
            return None
        return max(0.0, self.started_at - self.queued_at)


@dataclass(frozen=True)
class ClusterStatus:
    """All jobs of one submitted cluster."""

    cluster_id: int
    jobs: tuple[JobOutcome, ...] = field(default_factory=tuple)

    def count(self, state: JobState) -> int:
        return sum(1 for job in self.jobs if job.state is state)

    @property
    def done(self) -> bool:
        """True when no job can make further progress without help (finished or held)."""
        return bool(self.jobs) and all(
            job.state.finished or job.state is JobState.HELD for job in self.jobs
        )

    @property
    def failed_jobs(self) -> tuple[JobOutcome, ...]:
        return tuple(
            job
            for job in self.jobs
            if job.state is JobState.HELD
            or job.state is JobState.REMOVED
            or (job.state is JobState.COMPLETED and job.exit_code not in (0, None))
        )


# A campaign's name: what the DAG accepts, so it is safe in a ClassAd constraint and bounded.
CAMPAIGN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CAMPAIGN_ATTRIBUTE = "BurstingCampaign"  # the job attribute that carries it
# Worker attributes HTCondor copies into the job ad at each match (job_machine_attrs), as
# MachineAttr<name>0 for the latest one.
MACHINE_ATTRS = ("BurstingCloud", "BurstingFlavor", "BurstingInstance")


@dataclass(frozen=True)
class CampaignJob:
    """One job of a campaign as its cost needs it: wall time and cores, and the burst worker it
    last ran on (cloud, flavor, instance are None when it ran on a node that is not one)."""

    job_id: str
    state: JobState
    cpus: int
    wall_seconds: float
    cloud: str | None = None
    flavor: str | None = None
    instance: str | None = None
    exit_code: int | None = None

    @property
    def failed(self) -> bool:
        return (
            self.state is JobState.HELD
            or self.state is JobState.REMOVED
            or (self.state is JobState.COMPLETED and self.exit_code not in (0, None))
        )


@dataclass(frozen=True)
class Flavor:
    """A machine size a cloud offers."""

    name: str
    cpus: int
    memory_mb: int
    disk_gb: int = 0
    gpus: int = 0
    price_per_hour: float = 0.0


class Secret:
    """A value (token, password) that never shows itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class InstanceState(enum.Enum):
    """Where one burst instance is in its life; lifecycle.py is the only place it changes."""

    REQUESTED = "requested"  # intent stored, create call not yet confirmed
    BOOTING = "booting"  # the cloud has it, not ACTIVE yet
    JOINING = "joining"  # ACTIVE, its startd not yet in the collector
    RUNNING = "running"  # its startd is in the pool
    DRAINING = "draining"  # told to finish running jobs and leave
    DELETING = "deleting"  # delete requested, the cloud still lists it
    GONE = "gone"  # the cloud no longer lists it
    FAILED = "failed"  # boot error or timeout; being deleted, counts against its cloud

    @property
    def live(self) -> bool:
        return self not in (InstanceState.GONE,)

    @property
    def provisioning(self) -> bool:
        """Capacity that is coming but cannot take jobs yet."""
        return self in (InstanceState.REQUESTED, InstanceState.BOOTING, InstanceState.JOINING)


class CloudStatus(enum.Enum):
    """A cloud's own word for an instance, normalised across providers."""

    BUILD = "BUILD"
    ACTIVE = "ACTIVE"
    ERROR = "ERROR"
    DELETING = "DELETING"


@dataclass(frozen=True)
class CloudInstance:
    """An instance as its cloud lists it: only instances carrying our pool tag are listed."""

    id: str
    cloud: str
    flavor: str
    status: CloudStatus
    created_at: float
    pool_id: str
    fault: str | None = None


@dataclass(frozen=True)
class Quota:
    """What the cloud still allows; None means unlimited. `known=False`: the cloud would not
    say (its quota call failed), so that cloud gets no creates this cycle."""

    instances: int | None = None
    cores: int | None = None
    memory_mb: int | None = None
    known: bool = True

    @classmethod
    def unknown(cls) -> Quota:
        return cls(known=False)


@dataclass(frozen=True)
class CloudSnapshot:
    """One cloud's view at one instant."""

    cloud: str
    taken_at: float
    instances: tuple[CloudInstance, ...]
    quota: Quota = field(default_factory=Quota)

    def by_id(self) -> dict[str, CloudInstance]:
        return {instance.id: instance for instance in self.instances}


_ATTR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
AttributeValue = bool | int | float | str  # a machine attribute a worker advertises


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to join the pool as one tagged, partitionable execute node.
    Each provider renders it its own way (cloud-init, ConfigMap and Secret, a local node)."""

    pool_id: str
    instance_id: str
    cloud: str
    flavor: Flavor
    collector: str
    token: Secret = field(repr=False)
    uid_domain: str | None = None
    admin_identity: str | None = None
    idle_shutdown_seconds: int = 1200
    job_retirement_seconds: int = 3 * 24 * 3600
    token_dir: str = "/etc/condor/tokens.d"
    extra_attrs: dict[str, AttributeValue] = field(default_factory=dict)
    # The key the worker checks the controller's drain token with: workers share nothing with
    # the central manager, so without it they could not verify who asks them to drain.
    admin_key: Secret | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in self.extra_attrs:
            if not _ATTR_NAME.match(name):
                raise ValueError(f"extra_attrs: {name!r} is not a valid ClassAd attribute name")
        if self.idle_shutdown_seconds < 60:
            raise ValueError("idle_shutdown_seconds: must be >= 60 so a booting worker can match")


@dataclass(frozen=True)
class InstanceSpec:
    """What the controller asks a cloud to create; the id is chosen by us (idempotent create).
    `worker` is how the instance joins the pool; None only for clouds that need no bootstrap.
    `never_asked`: no cloud has ever been asked for this id (a new intent of this cycle), so
    nothing can exist under it and a provider may skip looking for it; False, the safe default,
    for a create asked again (after a crash or a call that did not answer)."""

    id: str
    pool_id: str
    cloud: str
    flavor: Flavor
    worker: WorkerSpec | None = field(default=None, repr=False)
    never_asked: bool = False


@dataclass(frozen=True)
class Instance:
    """The controller's record of one instance, as persisted in the state store."""

    id: str
    cloud: str
    flavor: str
    cpus: int
    memory_mb: int
    price_per_hour: float
    state: InstanceState
    state_since: float
    created_at: float
    worker_missing: int = 0  # consecutive cycles its running worker was not seen
    idle_since: float | None = None  # since when its worker ran no job
    reason: str = ""


class ActionKind(enum.Enum):
    CREATE = "create"
    DRAIN = "drain"
    DELETE = "delete"


class ReasonCode(enum.Enum):
    """Why an action was planned: a small fixed set, safe as a metric label. The free text
    beside it (Action.reason) carries the details."""

    DEMAND = "demand"  # idle jobs need room
    MIN_INSTANCES = "min_instances"  # the cloud's floor is not met
    CREATE_UNCONFIRMED = "create_unconfirmed"  # asking again for a create not yet confirmed
    IDLE = "idle"  # a worker idle long enough and not needed
    DRAIN_AGAIN = "drain_again"  # an earlier drain did not take
    DRAINED = "drained"  # its startd left after a drain
    BOOT_FAILED = "boot_failed"  # the cloud reported an error while booting
    BOOT_TIMEOUT = "boot_timeout"  # not ACTIVE (or not confirmed) in time
    JOIN_TIMEOUT = "join_timeout"  # ACTIVE but its startd never joined
    DRAIN_TIMEOUT = "drain_timeout"  # running jobs did not finish within the drain timeout
    WORKER_LOST = "worker_lost"  # its startd left the pool unasked
    CLOUD_ERROR = "cloud_error"  # the cloud reports ERROR for a running instance
    ORPHAN = "orphan"  # tagged as ours, unknown to the store
    CLEANUP = "cleanup"  # a delete the cloud has not finished yet


@dataclass(frozen=True)
class Action:
    """One thing the controller will do, and why."""

    kind: ActionKind
    cloud: str
    instance_id: str
    flavor: str = ""
    reason: str = ""
    worker: str = ""  # the startd to drain, for DRAIN
    code: ReasonCode = ReasonCode.DEMAND


@dataclass(frozen=True)
class Plan:
    """Everything one reconcile cycle decided, before any of it is carried out."""

    created_at: float
    actions: tuple[Action, ...] = ()
    notes: tuple[str, ...] = ()

    def of(self, kind: ActionKind) -> tuple[Action, ...]:
        return tuple(action for action in self.actions if action.kind is kind)
