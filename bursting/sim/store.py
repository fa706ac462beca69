"""The state store in memory, for a simulated run: the StateStore seam without a database.

It keeps what the controller reads back (live instances, backoffs, spend of the last hour, the
latest cycle record) and counts the rest; decisions are kept for the last few only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from bursting.cycle import CycleRecord
from bursting.model import Action, Instance, InstanceState
from bursting.policy.backoff import Backoff

WINDOW = 3600.0  # spend is kept in detail for the last hour, what the spend cap reads


class MemoryStore:
    def __init__(self) -> None:
        self._live: dict[str, Instance] = {}
        self._gone: dict[str, Instance] = {}
        self._backoffs: dict[tuple[str, str], Backoff] = {}
        self._decisions: deque[tuple[float, Action]] = deque(maxlen=200)
        self._cycle: CycleRecord | None = None
        # (from, to, cloud, amount): an accrual covers the time since the previous one, which in
        # a simulated run may be hours of skipped quiet cycles; spent(since) takes its share.
        self._spend: deque[tuple[float, float, str, float]] = deque()
        self._total: dict[str, float] = {}
        self._accrued_at: float | None = None
        self.failed: list[Instance] = []  # every record that entered FAILED, for the report

    def instances(self, include_gone: bool = False) -> list[Instance]:
        live = list(self._live.values())
        return live + list(self._gone.values()) if include_gone else live

    def save(self, instances: Iterable[Instance], now: float) -> None:
        for instance in instances:
            before = self._live.get(instance.id)
            if instance.state is InstanceState.FAILED and (
                before is None or before.state is not InstanceState.FAILED
            ):
                self.failed.append(instance)
            if instance.state is InstanceState.GONE:
                self._live.pop(instance.id, None)
                self._gone[instance.id] = instance
            else:
                self._live[instance.id] = instance

    def record(self, actions: Sequence[Action], now: float) -> None:
        self._decisions.extend((now, action) for action in actions)

    def decisions(self, limit: int = 20) -> list[tuple[float, Action]]:
        return list(self._decisions)[-limit:][::-1]

    def backoffs(self) -> dict[tuple[str, str], Backoff]:
        return dict(self._backoffs)

    def set_backoff(self, cloud: str, flavor: str, backoff: Backoff | None) -> None:
        if backoff is None:
            self._backoffs.pop((cloud, flavor), None)
        else:
            self._backoffs[(cloud, flavor)] = backoff

    def history(self, instance_id: str) -> list[tuple[float, str, str, str]]:
        return []  # not kept: a six-month run would hold millions of rows for nobody

    def save_cycle(self, record: CycleRecord) -> None:
        self._cycle = record

    def cycles(self, limit: int = 1) -> list[CycleRecord]:
        return [self._cycle] if self._cycle is not None and limit > 0 else []

    def accrue(self, amounts: Mapping[str, float], now: float) -> None:
        begin = now if self._accrued_at is None else self._accrued_at
        for cloud, amount in amounts.items():
            self._spend.append((begin, now, cloud, amount))
            self._total[cloud] = self._total.get(cloud, 0.0) + amount
        self._accrued_at = now
        while self._spend and self._spend[0][1] < now - 2 * WINDOW:
            self._spend.popleft()

    def accrued_at(self) -> float | None:
        return self._accrued_at

    def spent(self, since: float | None = None) -> dict[str, float]:
        """Accrued spend per cloud, in all or since `since` (at most two hours back)."""
        if since is None:
            return dict(self._total)
        amounts: dict[str, float] = {}
        for begin, end, cloud, amount in reversed(self._spend):
            if end <= since:
                break
            share = 1.0 if begin >= since or end <= begin else (end - since) / (end - begin)
            amounts[cloud] = amounts.get(cloud, 0.0) + amount * share
        return amounts

    def write_problem(self) -> str | None:
        return None
