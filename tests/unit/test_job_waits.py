"""Each job's wait from queue entry to its first start is observed exactly once: from the pool
snapshot while it runs, or from the schedd's history when it started and ended between two
snapshots; never twice, never for a start before the controller started."""

from __future__ import annotations

import pytest

from bursting.errors import PoolUnavailable
from bursting.metrics.waits import Started, WaitTracker
from bursting.model import PoolSnapshot


class History:
    """The schedd's history as started_history reads it: records after a cursor."""

    def __init__(self) -> None:
        self.records: list[Started] = []
        self.fail = False
        self.race = False  # the last record was written after the newest record was read

    def left(self, *records: Started) -> None:
        self.records.extend(records)

    def started_history(
        self, after: str | None, since: float
    ) -> tuple[tuple[Started, ...], str | None]:
        if self.fail:
            raise PoolUnavailable("schedd history: connection refused")
        ids = [r[0] for r in self.records]
        start = ids.index(after) + 1 if after in ids else 0
        newest = ids[-2 if self.race else -1] if len(ids) > int(self.race) else after
        return tuple(reversed(self.records[start:])), newest


def snapshot(at: float, *running: Started) -> PoolSnapshot:
    return PoolSnapshot(taken_at=at, demand=(), workers=(), job_starts=running)


def test_a_running_job_counts_once_however_many_cycles_see_it() -> None:
    tracker = WaitTracker(since=100.0)
    assert tracker.from_snapshot(snapshot(130, ("1.0", 105.0, 125.0))) == [20.0]
    assert tracker.from_snapshot(snapshot(160, ("1.0", 105.0, 125.0))) == []


def test_a_job_between_two_cycles_counts_from_the_history() -> None:
    history = History()
    tracker = WaitTracker(since=100.0, source=history)
    assert tracker.from_snapshot(snapshot(130)) == []
    history.left(("2.0", 120.0, 135.0))  # started after the snapshot, ended before the next
    assert tracker.from_history(now=150) == [15.0]
    assert tracker.from_history(now=180) == []  # the cursor moved past it


def test_a_job_seen_running_is_not_counted_again_when_it_leaves() -> None:
    history = History()
    tracker = WaitTracker(since=100.0, source=history)
    assert tracker.from_snapshot(snapshot(130, ("3.0", 110.0, 120.0))) == [10.0]
    history.left(("3.0", 110.0, 120.0))
    assert tracker.from_history(now=140) == []


def test_starts_before_the_controller_started_do_not_count() -> None:
    history = History()
    history.left(("4.0", 10.0, 50.0))
    tracker = WaitTracker(since=100.0, source=history)
    assert tracker.from_snapshot(snapshot(130, ("5.0", 20.0, 90.0))) == []
    assert tracker.from_history(now=130) == []


def test_a_record_read_twice_counts_once() -> None:
    """A record written between reading the newest record and reading the history arrives
    again in the next read."""
    history = History()
    tracker = WaitTracker(since=100.0, source=history)
    history.left(("6.0", 100.0, 130.0))
    history.race = True
    assert tracker.from_history(now=140) == [30.0]
    history.race = False
    assert tracker.from_history(now=150) == []  # the same record came back


def test_an_unreadable_history_changes_nothing_and_is_read_again() -> None:
    history = History()
    tracker = WaitTracker(since=100.0, source=history)
    history.left(("7.0", 100.0, 112.0))
    history.fail = True
    with pytest.raises(PoolUnavailable):
        tracker.from_history(now=130)
    history.fail = False
    assert tracker.from_history(now=160) == [12.0]


def test_without_a_history_only_snapshots_count() -> None:
    tracker = WaitTracker(since=0.0)
    assert tracker.from_history(now=10) == []
    assert tracker.from_snapshot(snapshot(10, ("8.0", 1.0, 4.0))) == [3.0]
