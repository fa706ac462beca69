"""Each job's wait from queue entry to its first start, observed exactly once for
`bursting_job_wait_seconds`.

A job seen running in a cycle's pool snapshot is counted there. A job that starts and ends
between two snapshots is never seen running: it is counted when the schedd's history shows it
left the queue (read incrementally, like the campaign counts). Ids counted from a snapshot are
kept until the history shows them leaving, so no job counts twice; only starts after the
controller started count.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from bursting.model import PoolSnapshot

Started = tuple[str, float, float]  # job id, queued at, first started at
KEEP_SECONDS = 24 * 3600.0  # a job seen running longer than this ago is forgotten


@runtime_checkable
class StartSource(Protocol):
    """What can tell the jobs that ran and left the queue (HTCondorPool can)."""

    def started_history(
        self, after: str | None, since: float
    ) -> tuple[tuple[Started, ...], str | None]: ...


class WaitTracker:
    """Waits of jobs that started after `since`; called once per cycle, in the controller's
    thread."""

    def __init__(self, since: float, source: StartSource | None = None) -> None:
        self.since = since
        self.source = source
        self._counted: dict[str, float] = {}  # seen running -> when it started
        self._cursor: str | None = None
        self._last_read: frozenset[str] = frozenset()

    def from_snapshot(self, pool: PoolSnapshot) -> list[float]:
        """Waits of running jobs not counted yet."""
        waits = []
        for job_id, queued, started in pool.job_starts:
            if job_id in self._counted or not self.since < started <= pool.taken_at:
                continue
            self._counted[job_id] = started
            waits.append(max(0.0, started - queued))
        return waits

    def from_history(self, now: float) -> list[float]:
        """Waits of jobs that left the queue since the last read and were never seen running.
        Raises what the source raises, changing nothing then."""
        if self.source is None:
            return []
        left, cursor = self.source.started_history(self._cursor, self.since)
        waits = []
        for job_id, queued, started in left:
            if job_id in self._last_read:
                continue  # read last time too
            if self._counted.pop(job_id, None) is not None:
                continue  # counted while it ran
            if started > self.since:
                waits.append(max(0.0, started - queued))
        self._cursor, self._last_read = cursor, frozenset(job_id for job_id, *_ in left)
        for job_id in [j for j, at in self._counted.items() if at < now - KEEP_SECONDS]:
            del self._counted[job_id]
        return waits
