"""Exponential backoff per cloud and flavor after failed boots (capped, reset on success)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    failures: int
    until: float


def after_failure(previous: Backoff | None, now: float, initial: float, maximum: float) -> Backoff:
    failures = (previous.failures if previous else 0) + 1
    delay = min(maximum, initial * 2 ** (failures - 1))
    return Backoff(failures, now + delay)


def blocked(backoff: Backoff | None, now: float) -> bool:
    return backoff is not None and now < backoff.until
