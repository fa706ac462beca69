"""Simulated time: one clock, one queue of future events, and the controller's wake-ups.

Events are ordered by (time, kind, key), never by insertion order, so the simulated clouds can
be called from the controller's worker threads and a seed still gives the same run.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from bursting.clock import FakeClock

# Kinds, in the order same-time events are handled.
CLOUD_EVENT = 0
JOB_FINISH = 1

Handler = Callable[[], None]


@dataclass(order=True)
class _Event:
    time: float
    kind: int
    key: str
    handler: Handler = field(compare=False)


class World:
    """The clock, the event heap and the controller's wake-up heap, shared by pool and clouds."""

    def __init__(self, start: float) -> None:
        self.clock = FakeClock(start)
        self._events: list[_Event] = []
        self._wakes: list[float] = []
        self._lock = threading.Lock()
        self.lock = threading.RLock()  # held by the simulated pool and clouds while they change

    @property
    def now(self) -> float:
        return self.clock.now()

    def at(self, time: float, kind: int, key: str, handler: Handler) -> None:
        with self._lock:
            heapq.heappush(self._events, _Event(max(time, self.now), kind, key, handler))

    def wake(self, time: float | None = None) -> None:
        """Ask for a controller cycle at the first tick at or after `time` (default: now)."""
        with self._lock:
            heapq.heappush(self._wakes, self.now if time is None else time)

    def next_event(self) -> float:
        return self._events[0].time if self._events else float("inf")

    def pop_events(self, time: float) -> list[Handler]:
        """Handlers of every event due at `time`, in order."""
        due = []
        with self._lock:
            while self._events and self._events[0].time <= time:
                due.append(heapq.heappop(self._events).handler)
        return due

    def next_wake(self) -> float:
        return self._wakes[0] if self._wakes else float("inf")

    def take_wakes(self, time: float) -> None:
        with self._lock:
            while self._wakes and self._wakes[0] <= time:
                heapq.heappop(self._wakes)

    def advance_to(self, time: float) -> None:
        if time > self.now:
            self.clock.advance(time - self.now)
