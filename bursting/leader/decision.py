"""Leader election decisions, pure: what one replica does with the Lease it just read, and
whether it may still act. client-go's leaderelection is the model.

Every time here is the deciding replica's OWN clock. A Lease held by another replica expires
`lease_duration` after this replica last saw its record change, never by the record's
renewTime (written by another clock), so clocks that disagree cannot shorten a leader's term.
A leader may act until `renew_deadline` after it SENT its last successful renewal; since
`renew_deadline < lease_duration`, and a standby's timer only starts once the renewal has
landed, the leader has stopped acting before any standby may take over.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


class Move(Enum):
    CREATE = "create"  # there is no Lease: create it, holding it
    ACQUIRE = "acquire"  # free (released) or expired: take it over
    RENEW = "renew"  # ours: renew it
    WAIT = "wait"  # another replica's, still valid: stand by


@dataclass(frozen=True)
class LeaseRecord:
    """A Lease's spec as leader election reads and writes it. `holder` is "" when released;
    times are seconds since the epoch on the writer's clock (informative only)."""

    holder: str
    duration_seconds: int
    acquired_at: float | None
    renewed_at: float | None
    transitions: int


@dataclass(frozen=True)
class Seen:
    """The last Lease record this replica read (None: no Lease exists) and, on its own clock,
    when it first read that record: the start of the holder's term as this replica sees it."""

    record: LeaseRecord | None
    since: float


@dataclass(frozen=True)
class Timing:
    lease_duration: int
    renew_deadline: float
    retry_period: float


@dataclass(frozen=True)
class Decision:
    move: Move
    seen: Seen  # what to remember until the next read
    write: LeaseRecord | None  # the record to create or replace with (None for WAIT)
    reason: str


def observe(previous: Seen | None, current: LeaseRecord | None, now: float) -> Seen:
    """The record's change time moves only when the record changes (client-go compares the
    whole record, so a holder that stopped renewing is noticed even if its clock is off)."""
    if previous is not None and previous.record == current:
        return previous
    return Seen(current, now)


def expires_at(seen: Seen) -> float | None:
    """When, on this replica's clock, the seen holder's term ends (None: nobody holds it)."""
    if seen.record is None or not seen.record.holder:
        return None
    return seen.since + seen.record.duration_seconds


def decide(
    previous: Seen | None,
    current: LeaseRecord | None,
    now: float,
    identity: str,
    timing: Timing,
) -> Decision:
    """What `identity` does with the Lease it read at `now` (its own clock), having last seen
    `previous`."""
    seen = observe(previous, current, now)
    if current is None:
        fresh = LeaseRecord(identity, timing.lease_duration, now, now, 0)
        return Decision(Move.CREATE, seen, fresh, "no Lease yet: create it")
    if current.holder == identity:
        renewed = replace(current, duration_seconds=timing.lease_duration, renewed_at=now)
        return Decision(Move.RENEW, seen, renewed, "held by us: renew")
    until = expires_at(seen)
    if until is not None and now < until:
        return Decision(
            Move.WAIT,
            seen,
            None,
            f"held by {current.holder} for {until - now:.1f}s more unless renewed",
        )
    why = "released" if until is None else f"expired (not renewed for {now - seen.since:.1f}s)"
    taken = LeaseRecord(identity, timing.lease_duration, now, now, current.transitions + 1)
    return Decision(Move.ACQUIRE, seen, taken, f"{why}: take it over")


def released(record: LeaseRecord, now: float) -> LeaseRecord:
    """What a leader writes when it steps down (client-go's ReleaseOnCancel): no holder, a
    one-second term, the transitions kept; a standby may take it over at once."""
    return LeaseRecord("", 1, now, now, record.transitions)


def may_act(last_renewal_sent: float | None, now: float, timing: Timing) -> bool:
    """Whether a leader may still act: its last successful write was SENT less than
    `renew_deadline` ago (own clock). A clock read before that send (time running backwards)
    is not trusted either."""
    if last_renewal_sent is None:
        return False
    return 0.0 <= now - last_renewal_sent < timing.renew_deadline
