"""The instance state machine: a transition table and one pure `next_state`.

The controller observes the cloud and the pool, calls `next_state` for every instance it knows,
performs the returned action and persists the new state before the next cycle. Nothing else in
the project changes an instance's state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bursting.model import ActionKind, CloudInstance, CloudStatus, Instance, Worker
from bursting.model import InstanceState as S

# Every legal move. Staying put is always legal and not listed.
TRANSITIONS: dict[S, frozenset[S]] = {
    S.REQUESTED: frozenset({S.BOOTING, S.JOINING, S.FAILED, S.DELETING}),
    S.BOOTING: frozenset({S.JOINING, S.FAILED, S.DELETING, S.GONE}),
    S.JOINING: frozenset({S.RUNNING, S.FAILED, S.DELETING, S.GONE}),
    S.RUNNING: frozenset({S.DRAINING, S.DELETING, S.FAILED, S.GONE}),
    S.DRAINING: frozenset({S.DELETING, S.FAILED, S.GONE}),
    S.DELETING: frozenset({S.GONE}),
    S.FAILED: frozenset({S.GONE}),
    S.GONE: frozenset(),
}


@dataclass(frozen=True)
class Timeouts:
    boot: float
    join: float
    drain: float
    missing_cycles: int


@dataclass(frozen=True)
class Observation:
    """What one cycle saw of one instance. `*_known` is False when that side could not be read."""

    cloud_known: bool
    seen: CloudInstance | None
    pool_known: bool
    worker: Worker | None
    busy_elsewhere: bool = False  # the schedd reports jobs running on it (collector may lag)
    drain_wanted: bool = False  # scale-down picked it
    # False right after a collector or schedd restart: a worker not seen may simply not have
    # advertised yet, so its absence counts for nothing (see bursting/policy/absence.py).
    absence_trusted: bool = True


@dataclass(frozen=True)
class Transition:
    instance: Instance
    action: ActionKind | None = None
    failed: bool = False  # a failed boot: its cloud/flavor backs off


def _move(instance: Instance, state: S, now: float, reason: str) -> Instance:
    if state is instance.state:
        return replace(instance, reason=reason or instance.reason)
    if state not in TRANSITIONS[instance.state]:
        raise ValueError(f"illegal transition {instance.state.value} -> {state.value}")
    return replace(instance, state=state, state_since=now, reason=reason, worker_missing=0)


def _age(instance: Instance, now: float) -> float:
    return now - instance.state_since


def next_state(instance: Instance, seen: Observation, now: float, limits: Timeouts) -> Transition:
    """Pure: the instance's next state and the one action that gets it there, if any."""
    handler = _HANDLERS[instance.state]
    return handler(instance, seen, now, limits)


def _cloud_gone(instance: Instance, seen: Observation, now: float, limits: Timeouts) -> Transition:
    """Absent from a cloud listing that was read: gone after N consecutive misses."""
    missing = instance.worker_missing + 1
    if missing >= limits.missing_cycles:
        return Transition(_move(instance, S.GONE, now, "no longer listed by the cloud"))
    return Transition(replace(instance, worker_missing=missing))


def _delete_failed(instance: Instance, now: float, reason: str) -> Transition:
    return Transition(_move(instance, S.FAILED, now, reason), ActionKind.DELETE, failed=True)


def _requested(i: Instance, o: Observation, now: float, t: Timeouts) -> Transition:
    if not o.cloud_known:
        return Transition(i)
    if o.seen is None:
        if _age(i, now) > t.boot:
            return _delete_failed(i, now, f"create not confirmed within {t.boot:.0f}s")
        # Idempotent: the id is ours, so asking again after a crash cannot make a second one.
        return Transition(
            replace(i, reason="create not confirmed yet; asking (again)"), ActionKind.CREATE
        )
    return _booting(_move(i, S.BOOTING, now, "the cloud accepted it"), o, now, t)


def _booting(i: Instance, o: Observation, now: float, t: Timeouts) -> Transition:
    if not o.cloud_known:
        return Transition(i)
    if o.seen is None:
        return _cloud_gone(i, o, now, t)
    status = o.seen.status
    if status is CloudStatus.ERROR:
        return _delete_failed(i, now, f"boot failed: {o.seen.fault or 'ERROR'}")
    if status is CloudStatus.DELETING:
        return Transition(_move(i, S.DELETING, now, "the cloud is deleting it"))
    if status is CloudStatus.ACTIVE:
        return _joining(_move(i, S.JOINING, now, "ACTIVE, waiting for its startd"), o, now, t)
    if _age(i, now) > t.boot:
        return _delete_failed(i, now, f"still BUILD after {t.boot:.0f}s")
    return Transition(replace(i, worker_missing=0))


def _present(o: Observation) -> bool:
    return o.worker is not None or o.busy_elsewhere


def _joining(i: Instance, o: Observation, now: float, t: Timeouts) -> Transition:
    if o.cloud_known and o.seen is None:
        return _cloud_gone(i, o, now, t)
    if o.cloud_known and o.seen is not None and o.seen.status is CloudStatus.ERROR:
        return _delete_failed(i, now, f"failed after boot: {o.seen.fault or 'ERROR'}")
    if o.pool_known and _present(o):
        return _running(_move(i, S.RUNNING, now, "its startd joined the pool"), o, now, t)
    if o.pool_known and o.absence_trusted and _age(i, now) > t.join:
        return _delete_failed(i, now, f"never joined the pool within {t.join:.0f}s")
    return Transition(i)


def _running(i: Instance, o: Observation, now: float, t: Timeouts) -> Transition:
    if o.cloud_known and o.seen is None:
        return _cloud_gone(i, o, now, t)
    if o.cloud_known and o.seen is not None and o.seen.status is CloudStatus.ERROR:
        return Transition(_move(i, S.FAILED, now, "the cloud reports ERROR"), ActionKind.DELETE)
    if not o.pool_known:
        return Transition(i)  # never act on missing data
    if not _present(o) and not o.absence_trusted:
        return Transition(i)  # not heard from since a restart is not missing
    if not _present(o):
        missing = i.worker_missing + 1
        if missing >= t.missing_cycles:
            return Transition(
                _move(i, S.DELETING, now, f"its startd left the pool ({missing} cycles unseen)"),
                ActionKind.DELETE,
            )
        return Transition(replace(i, worker_missing=missing))
    busy = o.busy_elsewhere or (o.worker is not None and o.worker.busy)
    idle_since = None if busy else (i.idle_since if i.idle_since is not None else now)
    unchanged = i.worker_missing == 0 and i.idle_since == idle_since
    current = i if unchanged else replace(i, worker_missing=0, idle_since=idle_since)
    if o.worker is not None and o.worker.draining:
        return Transition(_move(current, S.DRAINING, now, "draining (started elsewhere)"))
    if o.drain_wanted and not busy and o.absence_trusted:  # "idle" may be a lagging schedd
        return Transition(_move(current, S.DRAINING, now, "idle and not needed"), ActionKind.DRAIN)
    return Transition(current)


def _draining(i: Instance, o: Observation, now: float, t: Timeouts) -> Transition:
    if o.cloud_known and o.seen is None:
        return _cloud_gone(i, o, now, t)
    if not o.pool_known or (not _present(o) and not o.absence_trusted):
        return Transition(i)
    if not _present(o):
        missing = i.worker_missing + 1
        if missing >= t.missing_cycles:
            return Transition(
                _move(i, S.DELETING, now, "drained: its startd has left"), ActionKind.DELETE
            )
        return Transition(replace(i, worker_missing=missing))
    if _age(i, now) > t.drain:
        return Transition(
            _move(i, S.DELETING, now, f"drain took longer than {t.drain:.0f}s"), ActionKind.DELETE
        )
    current = replace(i, worker_missing=0)
    if o.worker is not None and not o.worker.draining:
        again = replace(current, reason="the drain did not take; asking again")
        return Transition(again, ActionKind.DRAIN)
    return Transition(current)


def _deleting(i: Instance, o: Observation, now: float, t: Timeouts) -> Transition:
    if not o.cloud_known:
        return Transition(i)
    if o.seen is None:
        return Transition(_move(i, S.GONE, now, "deleted"))
    # Idempotent: ask until the cloud no longer lists it.
    return Transition(replace(i, reason=i.reason or "still listed; deleting"), ActionKind.DELETE)


def _gone(i: Instance, o: Observation, now: float, t: Timeouts) -> Transition:
    return Transition(i)


_HANDLERS = {
    S.REQUESTED: _requested,
    S.BOOTING: _booting,
    S.JOINING: _joining,
    S.RUNNING: _running,
    S.DRAINING: _draining,
    S.DELETING: _deleting,
    S.FAILED: _deleting,
    S.GONE: _gone,
}
