"""The elector: in its own thread, reads the Lease every retry period and does what
`decision.decide` says (create, take over, renew, or wait); the controller asks `leading()`
right before every cycle and every cloud action.

`leading()` is judged from the clock alone, not from the thread: a leader whose renewals hang
or fail stops acting at once when `renew_deadline` has passed since it sent its last successful
renewal, whatever the elector thread is doing. A 409 (someone else wrote the Lease since we
read it) ends leadership at once. On stop, a leader releases the Lease (client-go's
ReleaseOnCancel), so a standby takes over at its next try instead of after the lease duration.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from kubernetes.client import V1Lease
from kubernetes.client.exceptions import ApiException

from bursting.clock import Clock
from bursting.config import LeaderElectionConfig
from bursting.leader.decision import (
    Decision,
    Move,
    Seen,
    Timing,
    decide,
    expires_at,
    may_act,
    observe,
    released,
)
from bursting.leader.lease import Conflict, LeaseApi, connect, identity, record_of

log = logging.getLogger("bursting.leader")
JITTER = 1.2  # a standby's pause is retry_period times 1 to 1 + JITTER (client-go's factor)


class SteadyClock:
    """Wall-clock readings that never jump: the epoch time at start plus monotonic time since.
    The Lease's own timestamps are informative; every judgment uses differences of this clock,
    so an NTP step on this host cannot lengthen or shorten a term."""

    def __init__(self) -> None:
        self._wall = time.time()
        self._mono = time.monotonic()

    def now(self) -> float:
        return self._wall + (time.monotonic() - self._mono)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


def _holder(seen: Seen | None) -> str:
    return "" if seen is None or seen.record is None else seen.record.holder


HINTS = {
    401: "the API server refused the credentials (leader_election.kubeconfig or the pod's token)",
    403: "the account needs create on leases and get, update on this Lease (the chart's Role)",
    404: "does the namespace exist? (leader_election.namespace)",
}


def _api_error(exc: BaseException) -> str:
    """Status and reason only (never the response headers or body), and what to check."""
    if isinstance(exc, ApiException):
        hint = HINTS.get(exc.status or 0)
        return f"HTTP {exc.status} {exc.reason}" + (f": {hint}" if hint else "")
    return type(exc).__name__


class LeaseElector:
    """Elects through `lease` as `identity`; `clock` is this replica's own (injected)."""

    def __init__(
        self,
        lease: LeaseApi,
        identity: str,
        timing: Timing,
        clock: Clock,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.lease = lease
        self.identity = identity
        self.timing = timing
        self.clock = clock
        self._jitter = jitter
        self._lock = threading.Lock()
        self._seen: Seen | None = None
        self._read: V1Lease | None = None  # the Lease as last read or written (its version)
        self._renewal_sent: float | None = None  # own clock: our last successful write's send
        self._was_leading = False
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----- what the controller asks -----
    def leading(self) -> bool:
        """May this replica act now? Own clock against the last successful renewal; never
        again once stopped."""
        if self._stop.is_set():
            return False
        with self._lock:
            sent = self._renewal_sent
        return may_act(sent, self.clock.now(), self.timing)

    def describe(self) -> str:
        """A line for /readyz and logs: who holds the Lease as far as this replica knows."""
        lease = f"Lease {self.lease.namespace}/{self.lease.name}"
        if self.leading():
            return f"leading: {self.identity} holds the {lease}"
        with self._lock:
            seen = self._seen
        holder = seen.record.holder if seen is not None and seen.record is not None else ""
        until = None if seen is None else expires_at(seen)
        if holder and holder != self.identity and until is not None:
            left = max(0.0, until - self.clock.now())
            return (
                f"standby: {holder} holds the {lease} (expires in {left:.0f}s unless renewed); "
                "ready to take over"
            )
        return f"standby: trying to acquire the {lease}; ready to take over"

    # ----- one round -----
    def try_acquire_or_renew(self) -> bool:
        """Read the Lease, decide, write if the decision says so; returns `leading()` after.
        API failures are logged and retried next round (a leader keeps acting only until its
        deadline)."""
        try:
            self._round()
        except Conflict:
            log.info("the Lease was written by another replica since we read it: not leading")
            with self._lock:
                self._renewal_sent = None
        except Exception as exc:  # any API failure: retry next round, the deadline decides
            error = _api_error(exc)
            # Said once while it lasts, not every retry period.
            level = logging.DEBUG if error == self._last_error else logging.WARNING
            log.log(level, "leader election: Lease not read or written: %s", error)
            self._last_error = error
        else:
            self._last_error = None
        self._note_transition()
        return self.leading()

    def _round(self) -> None:
        read = self.lease.read()
        read_at = self.clock.now()  # after the read: the record existed by then
        with self._lock:
            before = self._seen
            decision = decide(before, record_of(read), read_at, self.identity, self.timing)
            self._seen = decision.seen
            self._read = read
            if decision.move is Move.WAIT:
                self._renewal_sent = None
        if decision.move is not Move.WAIT:
            self._write(decision, read)
        elif _holder(before) != _holder(decision.seen):  # once per holder, not per renewal
            log.info("leader election: %s", decision.reason)

    def _write(self, decision: Decision, read: V1Lease | None) -> None:
        assert decision.write is not None
        sent = self.clock.now()  # before the request: the term is counted from here
        if read is None:
            written = self.lease.create(decision.write)
        else:
            written = self.lease.replace(read, decision.write)
        with self._lock:
            self._renewal_sent = sent
            self._read = written
            self._seen = observe(self._seen, record_of(written), self.clock.now())
        if decision.move is not Move.RENEW:
            log.info("leader election: %s (%s)", decision.reason, self.identity)

    def _note_transition(self) -> None:
        leading = self.leading()
        if leading != self._was_leading:
            log.warning(
                "leader election: %s %s",
                self.identity,
                "now leads" if leading else "stopped leading: it acts no more",
            )
            self._was_leading = leading

    # ----- the thread -----
    def start(self) -> LeaseElector:
        self._thread = threading.Thread(target=self._loop, name="leader-election", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = self.clock.now()
            leading = self.try_acquire_or_renew()
            pause = self.timing.retry_period
            if not leading:  # standbys spread their tries, as client-go's JitterUntil
                pause *= 1.0 + JITTER * self._jitter()
            self._stop.wait(max(0.0, began + pause - self.clock.now()))

    def resign(self) -> None:
        """Act no more and stop renewing, at once (safe in a signal handler: sets an Event)."""
        self._stop.set()

    def stop(self, release: bool = True) -> None:
        """Act no more, at once; as the holder, release the Lease so a standby takes over at
        its next try. Call it once the controller has stopped acting (SIGTERM's path)."""
        self._stop.set()  # leading() is False from here on
        if release:
            self._release()
        if self._thread is not None:
            self._thread.join(timeout=self.lease.timeout * 2 + self.timing.retry_period)

    def _release(self) -> None:
        """From a fresh read, not the thread's last one: a renewal in flight must not make the
        release a stale write. Tried twice, in case that renewal lands in between."""
        for _ in range(2):
            try:
                read = self.lease.read()
                record = record_of(read)
                if read is None or record is None or record.holder != self.identity:
                    return  # not ours (any more): nothing to release
                self.lease.replace(read, released(record, self.clock.now()))
                log.info("leader election: released the Lease (%s)", self.identity)
                return
            except Conflict:
                continue
            except Exception as exc:  # the standby takes over after the lease duration instead
                log.warning("leader election: Lease not released: %s", _api_error(exc))
                return


def timing_of(settings: LeaderElectionConfig) -> Timing:
    return Timing(
        settings.lease_duration_seconds,
        settings.renew_deadline_seconds,
        settings.retry_period_seconds,
    )


def build_elector(settings: LeaderElectionConfig, clock: Clock | None = None) -> LeaseElector:
    """The elector `bursting run` starts: connected as `settings` say (problems are
    ConfigErrors), named by POD_NAME or hostname-pid, on a clock NTP steps cannot move.
    Each API call may take half the renew deadline, so one failed call leaves time to retry."""
    lease = connect(settings, timeout=settings.renew_deadline_seconds / 2)
    return LeaseElector(lease, identity(), timing_of(settings), clock or SteadyClock())
