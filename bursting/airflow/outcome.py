"""How a finished cluster is reported to the physicist: job ids, hold reasons, exit codes and the
tail of each failed job's stderr."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

from bursting.model import ClusterStatus, JobOutcome, JobState

TAIL_LINES = 15
MAX_REPORTED = 10


def stderr_tail(job: JobOutcome, lines: int = TAIL_LINES) -> str:
    if not job.stderr_path:
        return "(no stderr file)"
    try:
        with Path(job.stderr_path).open(errors="replace") as handle:
            tail = deque(handle, maxlen=lines)
    except OSError as exc:
        return f"(stderr {job.stderr_path} unreadable: {exc.strerror})"
    return "".join(tail).rstrip() or "(stderr empty)"


def describe(status: ClusterStatus) -> str:
    failed = status.failed_jobs
    parts = [f"cluster {status.cluster_id}: {len(failed)} of {len(status.jobs)} job(s) failed"]
    for job in failed[:MAX_REPORTED]:
        if job.state is JobState.HELD:
            why = f"held: {job.hold_reason or 'no reason given'}"
        elif job.state is JobState.REMOVED:
            why = "removed"
        else:
            why = f"exit code {job.exit_code}"
        parts.append(
            f"job {job.job_id} {why}\n  stderr tail:\n    "
            + stderr_tail(job).replace("\n", "\n    ")
        )
    if len(failed) > MAX_REPORTED:
        parts.append(f"... and {len(failed) - MAX_REPORTED} more")
    return "\n".join(parts)


@dataclass(frozen=True)
class Progress:
    """A cluster's progress as the deferred task logs it: the counts that say it moved on."""

    cluster_id: int
    done: int
    total: int
    failed: int
    running: int = 0

    @classmethod
    def of(cls, status: ClusterStatus) -> Progress:
        return cls(
            status.cluster_id,
            sum(1 for job in status.jobs if job.state.finished),
            len(status.jobs),
            len(status.failed_jobs),
            status.count(JobState.RUNNING),
        )

    def moved_from(self, earlier: Progress | None) -> bool:
        """Jobs done, failed or planned changed (running counts come and go; not a change)."""
        return earlier is None or (self.done, self.failed, self.total) != (
            earlier.done,
            earlier.failed,
            earlier.total,
        )

    def text(self) -> str:
        return (
            f"cluster {self.cluster_id}: {self.done}/{self.total} job(s) done, "
            f"{self.running} running, {self.failed} failed"
        )
