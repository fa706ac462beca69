"""Our controller inside the simulation: the project's Controller, one `run_once` per cycle,
over the simulated pool and clouds and an in-memory store; after each cycle it says when it next
needs a cycle on its own account (its deadlines) and whether the very next tick is needed."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, TypeVar

from bursting.config import PolicyConfig
from bursting.controller import Controller
from bursting.model import (
    Action,
    ActionKind,
    Flavor,
    Instance,
    InstanceState,
    Secret,
    WorkerSpec,
)
from bursting.sim.store import MemoryStore

if TYPE_CHECKING:
    from bursting.sim.engine import Simulation

S = InstanceState
T = TypeVar("T")
SPEND_RECHECK_CYCLES = 10  # with a spend cap and jobs waiting: look again this often


def _worker_spec(pool_id: str) -> Callable[[str, str, Flavor], WorkerSpec]:
    token = Secret("simulated")

    def spec(instance_id: str, cloud: str, flavor: Flavor) -> WorkerSpec:
        return WorkerSpec(pool_id, instance_id, cloud, flavor, "simulated:9618", token)

    return spec


def _counter_ids(pool_id: str) -> Callable[[str], str]:
    count = [0]

    def new_id(cloud: str) -> str:
        count[0] += 1
        return f"{pool_id}-{cloud}-{count[0]:06d}"

    return new_id


class InlineCalls:
    """The controller's executor, run inline: the simulated clouds answer instantly, so thread
    hand-offs would only cost time and make the order of calls (and so a seed's run) vary."""

    def submit(self, fn: Callable[..., T], /, *args: object) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # the controller reads it from the future, as from a thread
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


class OurController:
    """The project's Controller, run one cycle at a time; after each cycle it asks the world
    to wake it for its own deadlines."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        config = sim.config
        self.store = MemoryStore()
        self.controller = Controller(
            config,
            sim.pool,
            sim.clouds,
            self.store,
            sim.world.clock,
            new_id=_counter_ids(config.pool.id),
            workers=_worker_spec(config.pool.id),
        )
        self.controller._calls.shutdown(wait=False)
        self.controller._calls = InlineCalls()  # type: ignore[assignment]
        self.policy = config.policy
        self.next_deadline = math.inf

    def cycle(self) -> None:
        report = self.controller.run_once()
        world, now, policy = self.sim.world, self.sim.world.now, self.policy
        if _unsettled(
            report.plan.actions, report.plan.instances, report.before, bool(report.failed)
        ):
            world.wake(now)  # the next cycle will change something: look again at the next tick
        # Deadlines are recomputed from the records after every cycle (never left in the
        # world's queue), so one that no longer holds (a worker busy again) wakes nobody.
        deadlines = [math.inf]
        kept_idle = False
        for instance in self.store.instances():
            deadline = _deadline(instance.state, instance.state_since, instance.idle_since, policy)
            if deadline is None:
                continue
            if deadline > now:
                deadlines.append(deadline)
            elif instance.state is S.RUNNING:
                kept_idle = True  # idle past its timeout, kept because jobs could use it
        self.sim.pool.kept_idle = kept_idle
        deadlines += [b.until for b in self.store.backoffs().values() if b.until > now]
        deadlines += [until for until in self.controller.paused().values() if until > now]
        if policy.spend.max_per_hour is not None and _left_waiting(report.plan.notes):
            # Spend of the last hour ages out as time passes: the cap may allow more later.
            deadlines.append(now + SPEND_RECHECK_CYCLES * policy.interval_seconds)
        self.next_deadline = min(deadlines)

    def close(self) -> None:
        self.controller.close()


# States whose next cycle decides again without any outside event: a drain or delete under way.
# (A record that only moved to REQUESTED, BOOTING, JOINING, RUNNING or GONE, or started its idle
# clock, is decided again only after an event or a deadline.)
_MOVING = (S.DRAINING, S.DELETING, S.FAILED)


def _unsettled(
    actions: Sequence[Action],
    after: Sequence[Instance],
    before: Sequence[Instance],
    failed: bool = False,
) -> bool:
    """Whether the cycle just run leaves something the very next cycle will act on. A create
    the cloud accepted is not such a thing: its REQUESTED record moves on when the cloud reports
    it failed or its worker joins (the simulated cloud asks for the next tick itself when a boot
    is slow enough for the boot timeout to matter); a refused create is."""
    if any(a.kind is not ActionKind.CREATE for a in actions) or failed:
        return True
    old = {i.id: i for i in before}
    return any((i.state in _MOVING or i.worker_missing > 0) and old.get(i.id) != i for i in after)


def _left_waiting(notes: list[str]) -> bool:
    """Whether the planner left demand (or a cloud's floor) without capacity this cycle."""
    return any("left without capacity" in note or "below min_instances" in note for note in notes)


def _deadline(
    state: InstanceState, since: float, idle_since: float | None, policy: PolicyConfig
) -> float | None:
    """When the lifecycle or scale-down could next decide something about this instance."""
    margin = 1e-3
    if state is S.RUNNING:
        return None if idle_since is None else idle_since + policy.idle_seconds
    if state in (S.REQUESTED, S.BOOTING):
        return since + policy.boot_timeout_seconds + margin
    if state is S.JOINING:
        return since + policy.join_timeout_seconds + margin
    if state is S.DRAINING:
        return since + policy.drain_timeout_seconds + margin
    return None
