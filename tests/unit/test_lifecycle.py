"""The instance lifecycle as a full matrix of state x cloud view x pool view x intent x age x
whether absence from the pool is evidence (not right after a collector or schedd restart)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from bursting.lifecycle import TRANSITIONS, Observation, Timeouts, next_state
from bursting.model import ActionKind, CloudInstance, CloudStatus, Instance, Worker
from bursting.model import InstanceState as S

NOW = 10_000.0
LIMITS = Timeouts(boot=300, join=300, drain=3600, missing_cycles=3)
CLOUD_VIEWS = ("unknown", "absent", *[s.value for s in CloudStatus])
POOL_VIEWS = ("unknown", "absent", "idle", "busy", "draining", "busy-per-schedd")
AGES = {"fresh": 10.0, "expired": 5000.0}


def instance(state: S, age: float, missing: int = 0) -> Instance:
    return Instance(
        "i-1",
        "private",
        "p.4c",
        4,
        8192,
        0.0,
        state,
        NOW - age,
        NOW - age - 60,
        worker_missing=missing,
    )


def observe(cloud: str, pool: str, drain: bool, trusted: bool = True) -> Observation:
    seen = None
    if cloud not in ("unknown", "absent"):
        seen = CloudInstance("i-1", "private", "p.4c", CloudStatus(cloud), NOW - 100, "pool")
    worker = None
    if pool in ("idle", "busy", "draining"):
        worker = Worker(
            "i-1@host",
            "host",
            "i-1",
            "pool",
            4,
            8192,
            4 if pool == "idle" else 3,
            8192,
            1 if pool == "busy" else 0,
            pool == "draining",
            1,
        )
    return Observation(
        cloud_known=cloud != "unknown",
        seen=seen,
        pool_known=pool != "unknown",
        worker=worker,
        busy_elsewhere=pool == "busy-per-schedd",
        drain_wanted=drain,
        absence_trusted=trusted,
    )


def reachable(start: S) -> set[S]:
    found, todo = {start}, [start]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in found:
                found.add(nxt)
                todo.append(nxt)
    return found


MISSED = (0, LIMITS.missing_cycles - 1)  # cycles the worker was already missed
MATRIX = list(
    itertools.product(S, CLOUD_VIEWS, POOL_VIEWS, (False, True), AGES, (True, False), MISSED)
)


@pytest.mark.parametrize(("state", "cloud", "pool", "drain", "age", "trusted", "missed"), MATRIX)
def test_every_cell_obeys_the_invariants(
    state: S, cloud: str, pool: str, drain: bool, age: str, trusted: bool, missed: int
) -> None:
    before = instance(state, AGES[age], missing=missed)
    step = next_state(before, observe(cloud, pool, drain, trusted), NOW, LIMITS)
    after = step.instance
    assert after.state in reachable(state), "only legal transitions"
    if state is S.GONE:
        assert after.state is S.GONE and step.action is None, "GONE is terminal"
    if cloud == "unknown" and state is not S.GONE:
        assert after.state is not S.GONE, "absence is never inferred from an unread cloud"
    if pool == "unknown" and state in (S.RUNNING, S.DRAINING):
        assert step.action is None or cloud == "ERROR", "no drain or delete without pool data"
    if pool in ("busy", "busy-per-schedd") and state is S.RUNNING and cloud != "ERROR":
        assert step.action is None, "a worker running jobs is never drained or deleted"
    if step.action is ActionKind.DELETE:
        assert after.state in (S.DELETING, S.FAILED)
    if step.action is ActionKind.DRAIN:
        assert after.state is S.DRAINING
    if step.action is ActionKind.CREATE:
        assert state is S.REQUESTED and cloud == "absent"
    if step.failed:
        assert after.state is S.FAILED and step.action is ActionKind.DELETE
    if not trusted and cloud in ("BUILD", "ACTIVE") and pool in ("absent", "unknown"):
        assert after.worker_missing <= before.worker_missing, "unheard-of is not missing"
        if state in (S.JOINING, S.RUNNING, S.DRAINING):
            assert (after.state, step.action) == (state, None), "no move on untrusted absence"
    if not trusted and state is S.RUNNING:
        assert step.action is not ActionKind.DRAIN, "no drain while the schedd may lag"


EXPECTED = [
    # state, cloud, pool, drain, age -> state, action
    (S.REQUESTED, "absent", "absent", False, "fresh", S.REQUESTED, ActionKind.CREATE),
    (S.REQUESTED, "absent", "absent", False, "expired", S.FAILED, ActionKind.DELETE),
    (S.REQUESTED, "BUILD", "absent", False, "fresh", S.BOOTING, None),
    (S.REQUESTED, "ACTIVE", "idle", False, "fresh", S.RUNNING, None),
    (S.BOOTING, "BUILD", "absent", False, "expired", S.FAILED, ActionKind.DELETE),
    (S.BOOTING, "ERROR", "absent", False, "fresh", S.FAILED, ActionKind.DELETE),
    (S.BOOTING, "ACTIVE", "absent", False, "fresh", S.JOINING, None),
    (S.JOINING, "ACTIVE", "absent", False, "expired", S.FAILED, ActionKind.DELETE),
    (S.JOINING, "ACTIVE", "idle", False, "fresh", S.RUNNING, None),
    (S.JOINING, "ACTIVE", "unknown", False, "expired", S.JOINING, None),
    (S.RUNNING, "ACTIVE", "idle", True, "fresh", S.DRAINING, ActionKind.DRAIN),
    (S.RUNNING, "ACTIVE", "busy", True, "fresh", S.RUNNING, None),
    (S.RUNNING, "ACTIVE", "busy-per-schedd", True, "fresh", S.RUNNING, None),
    (S.RUNNING, "ACTIVE", "draining", False, "fresh", S.DRAINING, None),
    (S.RUNNING, "ACTIVE", "absent", False, "fresh", S.RUNNING, None),  # missing once
    (S.RUNNING, "ERROR", "busy", False, "fresh", S.FAILED, ActionKind.DELETE),
    (S.DRAINING, "ACTIVE", "busy", False, "fresh", S.DRAINING, ActionKind.DRAIN),
    (S.DRAINING, "ACTIVE", "draining", False, "fresh", S.DRAINING, None),
    (S.DRAINING, "ACTIVE", "draining", False, "expired", S.DELETING, ActionKind.DELETE),
    (S.DELETING, "ACTIVE", "absent", False, "fresh", S.DELETING, ActionKind.DELETE),
    (S.DELETING, "absent", "absent", False, "fresh", S.GONE, None),
    (S.DELETING, "unknown", "absent", False, "fresh", S.DELETING, None),
    (S.FAILED, "absent", "unknown", False, "fresh", S.GONE, None),
]


# Right after a collector or schedd restart (absence not trusted), with the worker already
# missed once less than the limit: what would have been deleted stays.
EXPECTED_UNTRUSTED = [
    (S.JOINING, "ACTIVE", "absent", False, "expired", S.JOINING, None),
    (S.JOINING, "ACTIVE", "idle", False, "expired", S.RUNNING, None),
    (S.RUNNING, "ACTIVE", "absent", False, "fresh", S.RUNNING, None),
    (S.RUNNING, "ACTIVE", "absent", True, "expired", S.RUNNING, None),
    (S.RUNNING, "ACTIVE", "idle", True, "fresh", S.RUNNING, None),
    (S.RUNNING, "ACTIVE", "busy-per-schedd", False, "fresh", S.RUNNING, None),
    (S.RUNNING, "ACTIVE", "draining", False, "fresh", S.DRAINING, None),
    (S.RUNNING, "absent", "absent", False, "fresh", S.GONE, None),  # the cloud's word stands
    (S.RUNNING, "ERROR", "absent", False, "fresh", S.FAILED, ActionKind.DELETE),
    (S.DRAINING, "ACTIVE", "absent", False, "fresh", S.DRAINING, None),
    (S.DRAINING, "ACTIVE", "draining", False, "expired", S.DELETING, ActionKind.DELETE),
    (S.BOOTING, "BUILD", "absent", False, "expired", S.FAILED, ActionKind.DELETE),
]


@pytest.mark.parametrize(
    ("state", "cloud", "pool", "drain", "age", "to", "action"), EXPECTED_UNTRUSTED
)
def test_named_cells_when_absence_is_not_evidence(
    state: S, cloud: str, pool: str, drain: bool, age: str, to: S, action: ActionKind | None
) -> None:
    before = instance(state, AGES[age], missing=LIMITS.missing_cycles - 1)
    step = next_state(before, observe(cloud, pool, drain, trusted=False), NOW, LIMITS)
    assert (step.instance.state, step.action) == (to, action)
    trusted = next_state(before, observe(cloud, pool, drain, trusted=True), NOW, LIMITS)
    if pool == "absent" and state in (S.RUNNING, S.DRAINING) and cloud == "ACTIVE":
        assert trusted.action is ActionKind.DELETE, "the same cell, trusted, deletes"


def test_untrusted_absence_across_many_cycles_never_deletes() -> None:
    current = instance(S.RUNNING, 10)
    for cycle in range(10 * LIMITS.missing_cycles):
        step = next_state(
            current, observe("ACTIVE", "absent", False, trusted=False), NOW + cycle, LIMITS
        )
        assert (step.instance.state, step.action) == (S.RUNNING, None)
        assert step.instance.worker_missing == 0
        current = step.instance
    back = next_state(current, observe("ACTIVE", "idle", False), NOW + 100, LIMITS)
    assert back.instance.state is S.RUNNING and back.action is None


@pytest.mark.parametrize(("state", "cloud", "pool", "drain", "age", "to", "action"), EXPECTED)
def test_named_cells(
    state: S, cloud: str, pool: str, drain: bool, age: str, to: S, action: ActionKind | None
) -> None:
    step = next_state(instance(state, AGES[age]), observe(cloud, pool, drain), NOW, LIMITS)
    assert (step.instance.state, step.action) == (to, action)
    if action is not None or to is not state:
        assert step.instance.reason, "every action and every move says why"


@pytest.mark.parametrize("state", [S.RUNNING, S.DRAINING])
def test_worker_missing_takes_n_consecutive_cycles(state: S) -> None:
    current = instance(state, 10)
    for cycle in range(1, LIMITS.missing_cycles):
        step = next_state(current, observe("ACTIVE", "absent", False), NOW, LIMITS)
        assert step.instance.state is state and step.action is None
        assert step.instance.worker_missing == cycle
        current = step.instance
    step = next_state(current, observe("ACTIVE", "absent", False), NOW, LIMITS)
    assert (step.instance.state, step.action) == (S.DELETING, ActionKind.DELETE)


def test_a_sighting_resets_the_missing_count() -> None:
    current = replace(instance(S.RUNNING, 10), worker_missing=2)
    step = next_state(current, observe("ACTIVE", "idle", False), NOW, LIMITS)
    assert step.instance.worker_missing == 0


def test_idle_since_tracks_the_first_idle_sighting() -> None:
    step = next_state(instance(S.RUNNING, 10), observe("ACTIVE", "idle", False), NOW, LIMITS)
    assert step.instance.idle_since == NOW
    later = next_state(step.instance, observe("ACTIVE", "idle", False), NOW + 50, LIMITS)
    assert later.instance.idle_since == NOW
    busy = next_state(later.instance, observe("ACTIVE", "busy", False), NOW + 60, LIMITS)
    assert busy.instance.idle_since is None


def test_vanished_from_cloud_is_gone_after_n_listings() -> None:
    current = instance(S.RUNNING, 10)
    for _ in range(LIMITS.missing_cycles - 1):
        current = next_state(current, observe("absent", "absent", False), NOW, LIMITS).instance
        assert current.state is S.RUNNING
    final = next_state(current, observe("absent", "absent", False), NOW, LIMITS)
    assert final.instance.state is S.GONE


def test_table_is_closed() -> None:
    assert set(TRANSITIONS) == set(S)
    assert all(targets <= set(S) for targets in TRANSITIONS.values())
    assert TRANSITIONS[S.GONE] == frozenset()
