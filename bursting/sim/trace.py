"""A job trace as the simulator replays it: jobs in submit order, each with its shape and run
time, whatever format it was read from (see readers.py); and the window a replay may keep."""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bursting.errors import PermanentError
from bursting.model import JobShape

DEFAULT_EPOCH = 1_700_000_000.0  # where traces without an absolute start are placed


class TraceError(PermanentError):
    """A trace record that cannot be replayed; the message names file, line and field."""


@dataclass(frozen=True, slots=True)
class TraceJob:
    submit: float  # epoch seconds
    runtime: float  # seconds
    shape: JobShape
    ident: str = ""


@dataclass
class Trace:
    jobs: list[TraceJob]
    source: str
    skipped: dict[str, int] = field(default_factory=dict)  # why -> jobs not replayed

    @property
    def start(self) -> float:
        return self.jobs[0].submit if self.jobs else DEFAULT_EPOCH

    @property
    def span(self) -> float:
        return self.jobs[-1].submit - self.jobs[0].submit if self.jobs else 0.0


@dataclass(frozen=True)
class JobDefaults:
    """What to assume where a trace says nothing (SWF's -1, a missing CSV column)."""

    memory_mb_per_core: int = 2048
    disk_mb: int = 0


def open_text(path: Path) -> io.TextIOBase:
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
        return open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise TraceError(f"{path}: file not found; pass an existing trace file") from None
    except OSError as exc:
        raise TraceError(f"{path}: cannot be read: {exc.strerror}") from None


def parse_moment(text: str, what: str) -> float:
    """Epoch seconds or an ISO 8601 date/time (UTC unless it says otherwise)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise TraceError(
            f"{what}: {text!r} is not a time; use epoch seconds or ISO 8601 (2026-11-01)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def window(trace: Trace, start: float | None, end: float | None) -> Trace:
    """Only the jobs submitted in [start, end): "what would last month have cost?"."""
    jobs = [
        job
        for job in trace.jobs
        if (start is None or job.submit >= start) and (end is None or job.submit < end)
    ]
    if not jobs:
        raise TraceError(
            f"{trace.source}: no job submitted in the window asked for; the trace runs from "
            f"{datetime.fromtimestamp(trace.jobs[0].submit, UTC):%Y-%m-%d %H:%M} to "
            f"{datetime.fromtimestamp(trace.jobs[-1].submit, UTC):%Y-%m-%d %H:%M} UTC"
        )
    return Trace(jobs, trace.source, dict(trace.skipped))
