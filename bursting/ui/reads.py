"""The page's two live sources, each remembered: the controller's /status document and the
pool's snapshot. A failed read returns the last good one with its age and a plain sentence,
never an exception text that could carry more than the page should show."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bursting.errors import BurstingError
from bursting.model import PoolSnapshot
from bursting.ui.settings import display_url

T = TypeVar("T")


@dataclass(frozen=True)
class Read(Generic[T]):
    """What a source gave: `value` (fresh, or the last known one), when it was read, and why the
    latest attempt failed (None: `value` is fresh)."""

    value: T | None
    read_at: float | None
    problem: str | None = None

    @property
    def stale(self) -> bool:
        return self.problem is not None

    def age(self, now: float) -> float | None:
        return None if self.read_at is None else max(0.0, now - self.read_at)


class Remembered(Generic[T]):
    """Calls `read`; on failure keeps serving the last good value with the failure's sentence."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[T, float] | None = None

    def read(
        self, attempt: Callable[[], T], now: float, describe: Callable[[Exception], str]
    ) -> Read[T]:
        try:
            value = attempt()
        except Exception as exc:  # shown to the user as one safe sentence, never a trace
            with self._lock:
                last = self._last
            if last is None:
                return Read(None, None, describe(exc))
            return Read(last[0], last[1], describe(exc))
        with self._lock:
            self._last = (value, now)
        return Read(value, now)


def fetch_status(url: str, timeout: float) -> dict[str, Any]:
    """The controller's /status document; ValueError if the answer is not one."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        document = json.loads(answer.read())
    if not isinstance(document, dict) or "ready" not in document:
        raise ValueError("the answer is not a bursting status document")
    return document


def status_problem(url: str) -> Callable[[Exception], str]:
    def describe(exc: Exception) -> str:
        where = display_url(url)
        if isinstance(exc, urllib.error.HTTPError):
            return f"Cannot read the controller at {where}: it answered HTTP {exc.code}."
        if isinstance(exc, ValueError):
            return f"Cannot read the controller at {where}: {exc}."
        reason = getattr(exc, "reason", None) or exc
        text = getattr(reason, "strerror", None) or type(reason).__name__
        return f"Cannot reach the controller at {where} ({text})."

    return describe


def pool_problem(conn_id: str) -> Callable[[Exception], str]:
    def describe(exc: Exception) -> str:
        if isinstance(exc, BurstingError):
            detail = " ".join(str(exc).split())[:200]
            return f"Cannot read the pool of connection {conn_id!r}: {detail}"
        return f"Cannot read the pool of connection {conn_id!r} ({type(exc).__name__})."

    return describe


class Sources:
    """The remembered reads, one set per app (per api-server worker)."""

    def __init__(self) -> None:
        self.status: Remembered[dict[str, Any]] = Remembered()
        self.pool: Remembered[PoolSnapshot] = Remembered()
