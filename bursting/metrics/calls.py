"""One instrumented wrapper around every CloudProvider: calls, latency and errors by cloud,
operation and error class, recorded without any code in the providers themselves.

The wrapper is itself a CloudProvider; `bursting.runtime.build_controller` wraps each provider
once. Calls come from the controller's worker threads, so the recorder takes a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bursting.clouds.base import CloudProvider
from bursting.metrics.labels import error_class
from bursting.metrics.tally import Histogram
from bursting.model import CloudInstance, CloudSnapshot, Flavor, InstanceSpec, Quota

T = TypeVar("T")
CALL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class CallCounts:
    """A copy of everything recorded so far, for one scrape."""

    calls: dict[tuple[str, str], int] = field(default_factory=dict)
    errors: dict[tuple[str, str, str], int] = field(default_factory=dict)
    seconds: dict[tuple[str, str], Histogram] = field(default_factory=dict)


class CloudCalls:
    """Thread-safe recorder of cloud API calls; `timer` is a monotonic clock (injected)."""

    def __init__(self, timer: Callable[[], float] = time.monotonic) -> None:
        self.timer = timer
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, str], int] = {}
        self._errors: dict[tuple[str, str, str], int] = {}
        self._seconds: dict[tuple[str, str], Histogram] = {}

    def record(
        self, cloud: str, operation: str, seconds: float, error: BaseException | None
    ) -> None:
        key = (cloud, operation)
        with self._lock:
            self._calls[key] = self._calls.get(key, 0) + 1
            self._seconds[key] = self._seconds.get(key, Histogram(CALL_BUCKETS)).observe([seconds])
            if error is not None:
                err = (cloud, operation, error_class(error))
                self._errors[err] = self._errors.get(err, 0) + 1

    def counts(self) -> CallCounts:
        with self._lock:
            return CallCounts(dict(self._calls), dict(self._errors), dict(self._seconds))

    def wrap(self, provider: CloudProvider) -> InstrumentedProvider:
        return InstrumentedProvider(provider, self)


class InstrumentedProvider:
    """A CloudProvider that delegates every call and records it; anything else a provider
    offers (its own helpers) is passed through untouched."""

    def __init__(self, inner: CloudProvider, calls: CloudCalls) -> None:
        self.inner = inner
        self.name = inner.name
        self._calls = calls

    def _timed(self, operation: str, call: Callable[[], T]) -> T:
        began = self._calls.timer()
        try:
            result = call()
        except BaseException as exc:
            self._calls.record(self.name, operation, self._calls.timer() - began, exc)
            raise
        self._calls.record(self.name, operation, self._calls.timer() - began, None)
        return result

    def list_instances(self, pool_id: str) -> CloudSnapshot:
        return self._timed("list_instances", lambda: self.inner.list_instances(pool_id))

    def create(self, spec: InstanceSpec) -> CloudInstance:
        return self._timed("create", lambda: self.inner.create(spec))

    def delete(self, instance_id: str) -> None:
        self._timed("delete", lambda: self.inner.delete(instance_id))

    def flavors(self) -> tuple[Flavor, ...]:
        return self._timed("flavors", self.inner.flavors)

    def quota(self) -> Quota:
        return self._timed("quota", self.inner.quota)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _conforms(provider: InstrumentedProvider) -> CloudProvider:
    return provider  # mypy holds the wrapper to the seam; never called
