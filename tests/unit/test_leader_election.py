"""Leader election: the pure decisions over every case (drifting clocks included), the elector
over a stateful fake of the Lease API at the kubernetes client's edge in fake time, and the
controller acting only while leading."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from bursting.clock import FakeClock
from bursting.config import parse_config
from bursting.controller import NotLeading
from bursting.errors import ConfigError
from bursting.leader.decision import (
    LeaseRecord,
    Move,
    Seen,
    Timing,
    decide,
    may_act,
    observe,
    released,
)
from bursting.leader.elector import LeaseElector
from bursting.leader.lease import LeaseApi
from bursting.metrics import CloudCalls, Exporter
from bursting.model import ActionKind
from tests.unit.test_controller import ONE_CORE, World

TIMING = Timing(lease_duration=15, renew_deadline=10.0, retry_period=2.0)
T0 = 1_800_000_000.0


def held(holder: str, renewed_at: float = T0, transitions: int = 3) -> LeaseRecord:
    return LeaseRecord(holder, 15, renewed_at - 100, renewed_at, transitions)


# ----- the pure decision -----
def test_no_lease_is_created_holding_it() -> None:
    decision = decide(None, None, T0, "a", TIMING)
    assert decision.move is Move.CREATE
    assert decision.write == LeaseRecord("a", 15, T0, T0, 0)
    assert decision.seen == Seen(None, T0)


def test_our_own_lease_is_renewed_keeping_its_acquisition_and_transitions() -> None:
    mine = held("a", renewed_at=T0 - 5)
    decision = decide(Seen(mine, T0 - 5), mine, T0, "a", TIMING)
    assert decision.move is Move.RENEW
    assert decision.write == LeaseRecord("a", 15, mine.acquired_at, T0, 3)


def test_a_lease_seen_for_the_first_time_is_respected_for_a_whole_term() -> None:
    """Even if its renewTime is an hour old: that is the writer's clock, not ours."""
    other = held("b", renewed_at=T0 - 3600)
    first = decide(None, other, T0, "a", TIMING)
    assert first.move is Move.WAIT and first.seen == Seen(other, T0)
    assert "held by b" in first.reason
    almost = decide(first.seen, other, T0 + 14.999, "a", TIMING)
    assert almost.move is Move.WAIT
    expired = decide(almost.seen, other, T0 + 15, "a", TIMING)
    assert expired.move is Move.ACQUIRE
    assert expired.write == LeaseRecord("a", 15, T0 + 15, T0 + 15, 4)
    assert "expired" in expired.reason


@pytest.mark.parametrize("writer_offset", [-86400.0, -60.0, 0.0, 60.0, 86400.0])
def test_a_renewing_holder_is_never_taken_over_whatever_its_clock_says(
    writer_offset: float,
) -> None:
    """The holder renews every 2 s with timestamps from a clock `writer_offset` off ours: each
    change restarts our timer, so we wait for as long as it renews."""
    seen: Seen | None = None
    for step in range(100):
        now = T0 + 2 * step
        record = held("b", renewed_at=now + writer_offset)
        decision = decide(seen, record, now, "a", TIMING)
        assert decision.move is Move.WAIT
        seen = decision.seen
        assert seen.since == now


def test_an_unchanged_record_keeps_its_first_sighting() -> None:
    record = held("b")
    seen = Seen(record, T0)
    assert observe(seen, record, T0 + 9) is seen
    assert observe(seen, held("b", renewed_at=T0 + 1), T0 + 9) == Seen(
        held("b", renewed_at=T0 + 1), T0 + 9
    )
    assert observe(seen, None, T0 + 9) == Seen(None, T0 + 9)  # deleted: a change too


def test_a_released_lease_is_taken_at_once_counting_a_transition() -> None:
    gone = released(held("b", transitions=7), T0)
    assert gone == LeaseRecord("", 1, T0, T0, 7)
    decision = decide(None, gone, T0, "a", TIMING)
    assert decision.move is Move.ACQUIRE
    assert decision.write == LeaseRecord("a", 15, T0, T0, 8)
    assert "released" in decision.reason


def test_a_term_is_the_records_own_duration() -> None:
    short = LeaseRecord("b", 1, T0, T0, 0)
    assert decide(Seen(short, T0), short, T0 + 0.5, "a", TIMING).move is Move.WAIT
    assert decide(Seen(short, T0), short, T0 + 1, "a", TIMING).move is Move.ACQUIRE


def test_a_leader_may_act_only_until_its_renew_deadline() -> None:
    assert not may_act(None, T0, TIMING)
    assert may_act(T0, T0, TIMING)
    assert may_act(T0, T0 + 9.999, TIMING)
    assert not may_act(T0, T0 + 10, TIMING)
    assert not may_act(T0, T0 - 0.001, TIMING)  # a clock that ran backwards is not trusted


MINE, OTHERS, FREE = held("a"), held("b"), released(held("b"), T0 - 100)


@pytest.mark.parametrize(
    ("current", "seen_for", "move"),
    [
        # (the Lease now, how long this replica has seen that same record (None: new), move)
        (None, None, Move.CREATE),
        (MINE, None, Move.RENEW),
        (MINE, 100.0, Move.RENEW),  # ours even if our own renewals stalled: renew, never wait
        (OTHERS, None, Move.WAIT),
        (OTHERS, 0.0, Move.WAIT),
        (OTHERS, 14.9, Move.WAIT),
        (OTHERS, 15.0, Move.ACQUIRE),
        (OTHERS, 1e6, Move.ACQUIRE),
        (FREE, None, Move.ACQUIRE),
        (FREE, 100.0, Move.ACQUIRE),
    ],
)
def test_every_case_of_the_rule(
    current: LeaseRecord | None, seen_for: float | None, move: Move
) -> None:
    previous = None if seen_for is None else Seen(current, T0 - seen_for)
    decision = decide(previous, current, T0, "a", TIMING)
    assert decision.move is move
    if move is Move.WAIT:
        assert decision.write is None
    else:
        assert decision.write is not None and decision.write.holder == "a"
        assert decision.write.duration_seconds == 15 and decision.write.renewed_at == T0
        before = 0 if current is None else current.transitions
        taken = move is Move.ACQUIRE
        assert decision.write.transitions == before + taken


def test_the_decisions_are_pure_they_import_no_client_and_no_clock() -> None:
    import ast
    from pathlib import Path

    import bursting.leader.decision as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {
        alias.name if isinstance(node, ast.Import) else node.module
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported <= {"__future__", "dataclasses", "enum"}, imported


# ----- config -----
@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"renew_deadline_seconds": 15}, "leader_election.renew_deadline_seconds: must be below"),
        ({"retry_period_seconds": 9}, "leader_election.retry_period_seconds: must be below"),
        ({"lease_duration_seconds": 0}, "leader_election.lease_duration_seconds: must be >= 1"),
        ({"lease_name": "Bursting"}, "leader_election.lease_name: 'Bursting' is not a Kuber"),
        ({"namespace": "a.b"}, "leader_election.namespace: 'a.b' is not a Kubernetes names"),
        ({"lease": "x"}, "leader_election.lease: is not a known key"),
    ],
)
def test_bad_leader_election_settings_name_the_field(section: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"leader_election": section})
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_the_defaults_are_client_gos_and_off() -> None:
    settings = parse_config({}).leader_election
    assert not settings.enabled and settings.lease_name == "bursting-controller"
    assert (
        settings.lease_duration_seconds,
        settings.renew_deadline_seconds,
        settings.retry_period_seconds,
    ) == (15, 10, 2)


# ----- the elector over a stateful fake of the Lease API (the client's edge) -----
class LeaseStore:
    """One namespace's Leases with the API server's rules: 404, 409 on a duplicate create or
    a stale resourceVersion, a new resourceVersion on every write."""

    def __init__(self) -> None:
        self.leases: dict[str, client.V1Lease] = {}
        self.versions = itertools.count(1)
        self.writes: list[tuple[str, str]] = []  # (verb, holder)

    def stamp(self, lease: client.V1Lease) -> client.V1Lease:
        lease = copy.deepcopy(lease)
        lease.metadata.resource_version = str(next(self.versions))
        self.leases[lease.metadata.name] = lease
        return copy.deepcopy(lease)


class FakeCoordinationApi:
    """The three CoordinationV1Api methods leader election calls; `down` makes every call
    fail as an unreachable API server would (this replica's view only)."""

    def __init__(self, store: LeaseStore) -> None:
        self.store = store
        self.down = False

    def _check(self, kwargs: dict[str, Any]) -> None:
        assert kwargs["_request_timeout"] > 0  # every call is bounded
        if self.down:
            raise ApiException(status=503, reason="Service Unavailable")

    def read_namespaced_lease(self, name: str, namespace: str, **kwargs: Any) -> client.V1Lease:
        self._check(kwargs)
        if name not in self.store.leases:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.store.leases[name])

    def create_namespaced_lease(
        self, namespace: str, body: client.V1Lease, **kwargs: Any
    ) -> client.V1Lease:
        self._check(kwargs)
        if body.metadata.name in self.store.leases:
            raise ApiException(status=409, reason="AlreadyExists")
        self.store.writes.append(("create", body.spec.holder_identity))
        return self.store.stamp(body)

    def replace_namespaced_lease(
        self, name: str, namespace: str, body: client.V1Lease, **kwargs: Any
    ) -> client.V1Lease:
        self._check(kwargs)
        current = self.store.leases.get(name)
        if current is None:
            raise ApiException(status=404, reason="Not Found")
        if body.metadata.resource_version != current.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        self.store.writes.append(("replace", body.spec.holder_identity))
        return self.store.stamp(body)


class DriftingClock:
    """A replica's clock: `offset` seconds off and running at `rate` times the real pace."""

    def __init__(self, real: FakeClock, offset: float = 0.0, rate: float = 1.0) -> None:
        self.real, self.offset, self.rate = real, offset, rate
        self.start = real.now()

    def now(self) -> float:
        return self.start + self.offset + (self.real.now() - self.start) * self.rate

    def sleep(self, seconds: float) -> None:
        self.real.advance(seconds / self.rate)


def elector(
    store: LeaseStore, name: str, clock: Any, timing: Timing = TIMING
) -> tuple[LeaseElector, FakeCoordinationApi]:
    api = FakeCoordinationApi(store)
    lease = LeaseApi(api, "bursting-controller", "ns", timeout=timing.renew_deadline / 2)  # type: ignore[arg-type]
    return LeaseElector(lease, name, timing, clock, jitter=lambda: 0.5), api


def test_racing_electors_one_leads_the_other_stands_by_and_counts_no_transition() -> None:
    real = FakeClock(T0)
    store = LeaseStore()
    a, _ = elector(store, "a", real)
    b, _ = elector(store, "b", real)
    assert a.try_acquire_or_renew() is True
    assert b.try_acquire_or_renew() is False
    lease = store.leases["bursting-controller"]
    assert lease.spec.holder_identity == "a" and lease.spec.lease_transitions == 0
    assert store.writes == [("create", "a")]
    assert "standby: a holds" in b.describe() and "ready to take over" in b.describe()
    for _ in range(20):  # a renews for 40 s: b never takes over
        real.advance(2)
        assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    assert store.leases["bursting-controller"].spec.lease_transitions == 0


def test_a_stale_read_loses_the_race_with_a_409() -> None:
    """Both read the expired Lease; the first write wins, the second gets 409 and stands by."""
    real = FakeClock(T0)
    store = LeaseStore()
    a, _ = elector(store, "a", real)
    a.try_acquire_or_renew()
    b, _ = elector(store, "b", real)
    c, _ = elector(store, "c", real)
    b.try_acquire_or_renew()
    c.try_acquire_or_renew()
    real.advance(15)
    stale = b.lease.read()
    assert c.try_acquire_or_renew() is True  # c takes it over first
    with pytest.raises(Exception, match="Conflict"):
        b.lease.replace(stale, LeaseRecord("b", 15, T0, T0, 1))
    assert b.try_acquire_or_renew() is False  # and b, reading again, waits for c
    assert store.leases["bursting-controller"].spec.holder_identity == "c"
    assert store.leases["bursting-controller"].spec.lease_transitions == 1


def test_a_leader_that_cannot_renew_stops_acting_at_its_deadline_before_any_takeover() -> None:
    real = FakeClock(T0)
    store = LeaseStore()
    a, a_api = elector(store, "a", real)
    b, _ = elector(store, "b", real)
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    a_api.down = True  # a's API calls fail from here on; b's still work
    stopped = took_over = None
    for tick in range(1, 400):
        real.advance(0.05)
        if tick % 40 == 0:  # every 2 s
            a.try_acquire_or_renew()
            b.try_acquire_or_renew()
        if stopped is None and not a.leading():
            stopped = real.now() - T0
        if took_over is None and b.leading():
            took_over = real.now() - T0
        assert not (a.leading() and b.leading())
    assert stopped == pytest.approx(10.0, abs=0.06)  # at its renew deadline, between rounds
    assert took_over is not None and took_over >= 15.0
    a_api.down = False
    assert a.try_acquire_or_renew() is False  # back: it finds b holding the Lease
    assert store.leases["bursting-controller"].spec.lease_transitions == 1


def test_a_conflicting_write_ends_leadership_at_once() -> None:
    real = FakeClock(T0)
    store = LeaseStore()
    a, _ = elector(store, "a", real)
    a.try_acquire_or_renew()
    lease = store.leases["bursting-controller"]
    lease.spec.holder_identity = "intruder"  # written behind a's back
    store.stamp(lease)

    class Racing(FakeCoordinationApi):
        """Reads what a read before the intruder wrote: a's replace then gets a 409."""

        def read_namespaced_lease(self, name: str, namespace: str, **kw: Any) -> Any:
            old = super().read_namespaced_lease(name, namespace, **kw)
            old.spec.holder_identity = "a"
            old.metadata.resource_version = "1"
            return old

    a.lease.api = Racing(store)  # type: ignore[assignment]
    assert a.leading()
    assert a.try_acquire_or_renew() is False
    assert not a.leading()


def test_release_lets_the_standby_take_over_at_its_next_round() -> None:
    real = FakeClock(T0)
    store = LeaseStore()
    a, _ = elector(store, "a", real)
    b, _ = elector(store, "b", real)
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    real.advance(1)
    a.stop(release=True)
    assert not a.leading()
    lease = store.leases["bursting-controller"].spec
    assert (lease.holder_identity, lease.lease_duration_seconds) == ("", 1)
    real.advance(1)
    assert b.try_acquire_or_renew() is True  # 2 s after, not 15
    assert store.leases["bursting-controller"].spec.lease_transitions == 1
    assert b.describe().startswith("leading: b holds")


def test_resigning_ends_leadership_at_once_and_for_good() -> None:
    real = FakeClock(T0)
    store = LeaseStore()
    a, _ = elector(store, "a", real)
    assert a.try_acquire_or_renew()
    a.resign()  # what SIGTERM does, before the loop has ended
    assert not a.leading()
    a.try_acquire_or_renew()  # a round already under way renews, but acts no more
    assert not a.leading()
    assert store.leases["bursting-controller"].spec.holder_identity == "a"  # released later


def test_a_standby_releases_nothing() -> None:
    real = FakeClock(T0)
    store = LeaseStore()
    a, _ = elector(store, "a", real)
    b, _ = elector(store, "b", real)
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    b.stop(release=True)
    assert store.writes == [("create", "a")]


def test_an_api_refusal_is_said_once_with_what_to_check(caplog: pytest.LogCaptureFixture) -> None:
    real = FakeClock(T0)
    a, api = elector(LeaseStore(), "a", real)

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise ApiException(status=403, reason="Forbidden")

    api.read_namespaced_lease = forbidden  # type: ignore[method-assign]
    with caplog.at_level("WARNING", logger="bursting.leader"):
        for _ in range(5):
            assert a.try_acquire_or_renew() is False
            real.advance(2)
    (said,) = [r.getMessage() for r in caplog.records]
    assert "HTTP 403 Forbidden" in said and "get, update on this Lease" in said


RATES = [(1.0, 1.0), (0.97, 1.03), (1.03, 0.97)]
OFFSETS = [(0.0, 0.0), (-3600.0, 3600.0), (3600.0, -3600.0), (0.0, 86400.0 * 365)]


@pytest.mark.parametrize(("rate_a", "rate_b"), RATES)
@pytest.mark.parametrize(("offset_a", "offset_b"), OFFSETS)
def test_with_drifting_clocks_the_old_leader_never_acts_once_the_new_one_leads(
    offset_a: float, offset_b: float, rate_a: float, rate_b: float
) -> None:
    """a leads, then its API calls fail; b, on a clock hours or a year off and a few percent
    faster or slower, takes over. On the real timeline they never both may act, and b does
    take over within the lease duration plus two retry periods (in b's clock's pace)."""
    real = FakeClock(T0)
    store = LeaseStore()
    clock_a = DriftingClock(real, offset_a, rate_a)
    clock_b = DriftingClock(real, offset_b, rate_b)
    a, a_api = elector(store, "a", clock_a)
    b, _ = elector(store, "b", clock_b)
    next_a = next_b = T0
    failed_at = T0 + 7.3
    last_a = took_over = None
    while real.now() < T0 + 60:
        if real.now() >= failed_at:
            a_api.down = True
        if real.now() >= next_a:
            a.try_acquire_or_renew()
            next_a += TIMING.retry_period / rate_a
        if real.now() >= next_b:
            b.try_acquire_or_renew()
            next_b += TIMING.retry_period * 1.6 / rate_b
        if a.leading():
            last_a = real.now()
        if b.leading() and took_over is None:
            took_over = real.now()
        assert not (a.leading() and b.leading()), f"both lead at {real.now() - T0:.2f}s"
        real.advance(0.01)
    assert last_a is not None and took_over is not None and last_a < took_over
    limit = (TIMING.lease_duration + 2 * TIMING.retry_period * 1.6) / rate_b
    assert took_over - failed_at <= limit


# ----- the controller acts only while leading -----
class Switch:
    def __init__(self, on: bool) -> None:
        self.on = on
        self.asked = 0

    def leading(self) -> bool:
        self.asked += 1
        return self.on

    def describe(self) -> str:
        return "leading" if self.on else "standby: b holds the Lease; ready to take over"


def world_with(switch: Switch) -> World:
    world = World()
    world.controller.leadership = switch
    return world


def test_a_standby_runs_no_cycle_and_calls_no_cloud() -> None:
    world = world_with(Switch(False))
    world.pool.add_jobs(10, ONE_CORE, duration=120)
    with pytest.raises(NotLeading):
        world.controller.run_once()
    assert world.private.create_calls == world.public.create_calls == 0
    assert world.store.instances() == []


def test_run_forever_waits_as_a_standby_and_cycles_once_leading() -> None:
    switch = Switch(False)
    world = world_with(switch)
    world.pool.add_jobs(10, ONE_CORE, duration=120)
    polls = 0
    original = world.clock.sleep

    def sleep(seconds: float) -> None:  # the standby polls; lead after the 5th poll
        nonlocal polls
        polls += 1
        switch.on = polls >= 5
        original(seconds)

    world.clock.sleep = sleep  # type: ignore[method-assign]
    world.controller.run_forever(cycles=1)
    assert polls >= 5
    assert world.private.create_calls + world.public.create_calls > 0


def test_leadership_lost_mid_cycle_sends_no_further_action() -> None:
    switch = Switch(True)
    world = world_with(switch)
    world.pool.add_jobs(40, ONE_CORE, duration=120)
    original = world.controller.dry_run

    def observe_then_lose(*args: Any, **kwargs: Any) -> Any:
        report = original(*args, **kwargs)
        switch.on = False  # the renew deadline passes while the cycle observes
        return report

    world.controller.dry_run = observe_then_lose  # type: ignore[method-assign]
    report = world.controller.run_once()
    creates = [a for a in report.plan.actions if a.kind is ActionKind.CREATE]
    assert creates and report.skipped == list(report.plan.actions) and not report.done
    assert world.private.create_calls == world.public.create_calls == 0


def test_fencing_is_asked_again_right_before_each_call() -> None:
    switch = Switch(True)
    world = world_with(switch)
    world.pool.add_jobs(10, ONE_CORE, duration=120)
    world.cycle()
    action = world.controller.last.plan.actions[0]
    switch.on = False
    with pytest.raises(NotLeading):
        world.controller._perform(action)


def test_a_standby_is_ready_and_says_so_and_the_gauge_says_who_leads() -> None:
    switch = Switch(False)
    world = world_with(switch)
    exporter = Exporter(world.controller, CloudCalls(), CollectorRegistry())
    ready = exporter.readiness()
    assert ready.ready and "standby" in ready.reason
    assert b"bursting_leader 0.0" in generate_latest(exporter.registry)
    switch.on = True
    ready = exporter.readiness()
    assert not ready.ready and "no cycle has completed yet" in ready.reason
    world.cycle()
    assert exporter.readiness().ready
    assert b"bursting_leader 1.0" in generate_latest(exporter.registry)


def test_without_leader_election_there_is_no_gauge_and_every_cycle_acts() -> None:
    world = World()
    exporter = Exporter(world.controller, CloudCalls(), CollectorRegistry())
    world.pool.add_jobs(10, ONE_CORE, duration=120)
    world.cycle()
    assert world.controller.leading()
    assert world.private.create_calls + world.public.create_calls > 0
    assert b"bursting_leader" not in generate_latest(exporter.registry)


# ----- the API edge -----
def test_lease_times_always_carry_six_fractional_digits_as_the_api_server_parses_them() -> None:
    from bursting.leader.lease import spec_of

    whole = 1_796_285_328.0  # a whole second: datetime.isoformat() would drop the fraction
    body = client.ApiClient().sanitize_for_serialization(
        client.V1Lease(spec=spec_of(LeaseRecord("a", 15, whole, whole + 0.25, 0)))
    )
    assert body["spec"]["acquireTime"] == "2026-12-03T08:08:48.000000+00:00"
    assert body["spec"]["renewTime"] == "2026-12-03T08:08:48.250000+00:00"


def test_identity_is_the_pod_name_else_host_and_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import socket

    from bursting.leader.lease import identity

    monkeypatch.setenv("POD_NAME", "bursting-7d9f-abcde")
    assert identity() == "bursting-7d9f-abcde"
    monkeypatch.delenv("POD_NAME")
    assert identity() == f"{socket.gethostname()}-{os.getpid()}"


def test_unreachable_settings_are_config_errors_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from bursting.config import LeaderElectionConfig
    from bursting.leader.lease import connect

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError, match=r"kubeconfig: .*not running in a pod"):
        connect(LeaderElectionConfig(enabled=True), timeout=1)
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=r"kubeconfig: no file .*nope; fix the path"):
        connect(LeaderElectionConfig(enabled=True, kubeconfig=missing), timeout=1)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: one\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: not-logged}}]\n"
        "contexts: [{name: one, context: {cluster: c, user: u, namespace: team}}]\n"
    )
    with pytest.raises(ConfigError, match=r"context: no context 'two' .*\(has: one\)"):
        connect(LeaderElectionConfig(enabled=True, kubeconfig=kubeconfig, context="two"), 1)
    lease = connect(LeaderElectionConfig(enabled=True, kubeconfig=kubeconfig), timeout=1)
    assert (lease.namespace, lease.name) == ("team", "bursting-controller")  # the context's
    chosen = LeaderElectionConfig(enabled=True, kubeconfig=kubeconfig, namespace="ops")
    assert connect(chosen, timeout=1).namespace == "ops"
