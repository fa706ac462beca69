"""How a finished cluster is reported to the physicist: job ids, hold reasons, exit codes and the
tail of each failed job's stderr."""

from __future__ import annotations

from collections import deque
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
