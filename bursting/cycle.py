"""One record of each reconcile cycle: what it read, what it planned, what it did, how long.

The single source for the log, `bursting status`, metrics and the UI. It is an immutable value
that is stored as JSON, so readers in other threads or processes never touch the controller's
own database connection.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SourceRead:
    """One source the cycle read (the pool, or one cloud): ok, or the error's class and text."""

    name: str
    ok: bool
    error_class: str = ""
    error: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class ActionRecord:
    """One planned action and what became of it: done, failed (error class kept), pending
    (still in flight when the cycle ended) or skipped (the previous call is still out)."""

    kind: str
    cloud: str
    instance_id: str
    flavor: str
    code: str
    reason: str
    outcome: str = "planned"
    error_class: str = ""
    error: str = ""


@dataclass(frozen=True)
class Unschedulable:
    """Idle jobs that no flavor of any usable cloud can run, grouped by why."""

    code: str
    jobs: int
    shapes: int
    why: str


@dataclass(frozen=True)
class CycleRecord:
    started_at: float
    seconds: float
    pool: SourceRead
    clouds: tuple[SourceRead, ...]
    idle_jobs: int | None
    actions: tuple[ActionRecord, ...] = ()
    unschedulable: tuple[Unschedulable, ...] = ()
    notes: tuple[str, ...] = ()
    instances: dict[str, dict[str, int]] = field(default_factory=dict)  # cloud -> state -> n
    spend_per_hour: dict[str, float] = field(default_factory=dict)  # cloud -> current rate
    spent: dict[str, float] = field(default_factory=dict)  # cloud -> accrued total
    dry_run: bool = False

    def count(self, outcome: str) -> int:
        return sum(1 for action in self.actions if action.outcome == outcome)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CycleRecord:
        raw: dict[str, Any] = json.loads(text)
        return cls(
            **{
                **raw,
                "pool": SourceRead(**raw["pool"]),
                "clouds": tuple(SourceRead(**c) for c in raw["clouds"]),
                "actions": tuple(ActionRecord(**a) for a in raw["actions"]),
                "unschedulable": tuple(Unschedulable(**u) for u in raw["unschedulable"]),
                "notes": tuple(raw["notes"]),
            }
        )
