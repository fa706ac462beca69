"""Readiness as a pure function of the controller's times: ready when a cycle completed within
the last few intervals and the store takes writes; otherwise the reason, for /readyz."""

from __future__ import annotations

from dataclasses import dataclass

STALE_INTERVALS = 3.0


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str


def readiness(
    now: float,
    interval: float,
    started_at: float,
    last_success_at: float | None,
    last_failure: tuple[float, str] | None,
    store_problem: str | None,
) -> Readiness:
    """Not ready while the store cannot be written, before a first cycle completed, or once
    the last completed cycle is older than STALE_INTERVALS intervals (the last failure said)."""
    if store_problem is not None:
        return Readiness(False, f"store not writable: {store_problem}")
    failure = (
        f"; last failure {now - last_failure[0]:.0f}s ago: {last_failure[1]}"
        if (last_failure is not None)
        else ""
    )
    if last_success_at is None:
        return Readiness(
            False, f"no cycle has completed yet (started {now - started_at:.0f}s ago){failure}"
        )
    age = now - last_success_at
    limit = STALE_INTERVALS * interval
    if age > limit:
        return Readiness(
            False,
            f"last successful cycle {age:.0f}s ago, more than {STALE_INTERVALS:g} intervals "
            f"({limit:.0f}s){failure}",
        )
    return Readiness(True, f"ok: last successful cycle {age:.0f}s ago")
