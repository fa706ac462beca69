"""The state-store seam."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from bursting.cycle import CycleRecord
from bursting.model import Action, Instance
from bursting.policy.backoff import Backoff


class StateStore(Protocol):
    def instances(self, include_gone: bool = False) -> list[Instance]: ...

    def save(self, instances: Iterable[Instance], now: float) -> None:
        """Upsert instances in one transaction, recording every state change in the history."""
        ...

    def record(self, actions: Sequence[Action], now: float) -> None:
        """Append decisions (with their reasons) to the decision log."""
        ...

    def decisions(self, limit: int = 20) -> list[tuple[float, Action]]: ...

    def backoffs(self) -> dict[tuple[str, str], Backoff]: ...

    def set_backoff(self, cloud: str, flavor: str, backoff: Backoff | None) -> None: ...

    def history(self, instance_id: str) -> list[tuple[float, str, str, str]]: ...

    def save_cycle(self, record: CycleRecord) -> None:
        """Keep this cycle's record (the newest ones are kept, older ones dropped)."""
        ...

    def cycles(self, limit: int = 1) -> list[CycleRecord]: ...

    def accrue(self, amounts: Mapping[str, float], now: float) -> None: ...

    def accrued_at(self) -> float | None: ...

    def spent(self, since: float | None = None) -> dict[str, float]: ...

    def write_problem(self) -> str | None:
        """Why the store cannot take a write right now, or None; safe from any thread."""
        ...
