"""Whether a worker's absence from the pool is evidence that it is gone.

A collector that restarted knows only the workers that advertised since; a schedd that restarted
may not have reconnected to its running jobs yet. Until every worker has had time to advertise
again, "not in the collector" and "no job running there" mean "not heard from yet", and acting on
them would delete live workers (as COBalD/TARDIS #376 did). Pure: `now` is passed in.
"""

from __future__ import annotations

from bursting.model import PoolSnapshot

# Time for a worker's update to reach a fresh collector, on top of the advertise intervals.
MARGIN_SECONDS = 30.0
# Updates are datagrams or short connections: allow one of them to be lost.
INTERVALS = 2


def distrust_window(advertise_interval: float) -> float:
    """How long after a restart absence stays meaningless: two intervals plus a margin."""
    return INTERVALS * max(0.0, advertise_interval) + MARGIN_SECONDS


def absence_doubt(pool: PoolSnapshot, now: float) -> str | None:
    """Why absence is not evidence right now (a daemon restarted too recently), or None."""
    window = distrust_window(pool.advertise_interval)
    for daemon, started in (
        ("collector", pool.collector_started_at),
        ("schedd", pool.schedd_started_at),
    ):
        if started is None:
            continue
        age = now - started
        if age < window:
            return (
                f"the {daemon} restarted {max(0.0, age):.0f}s ago (< {window:.0f}s): a worker "
                "it has not heard from yet is not missing"
            )
    return None


def absence_is_evidence(pool: PoolSnapshot, now: float) -> bool:
    """True when a worker missing from this snapshot (and from the schedd's running jobs) may
    be taken as gone: both the collector and the schedd have run long enough to know."""
    return absence_doubt(pool, now) is None
