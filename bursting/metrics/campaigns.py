"""Jobs per campaign and state for `bursting_campaign_jobs`, with the label kept bounded.

Only campaigns the pool still knows recently are counted (jobs in the queue, and jobs that left
it within CAMPAIGN_WINDOW_SECONDS), a name that is not a campaign name counts as "other", and only
TOP_CAMPAIGNS keep their own label, the rest summed as "other": campaigns with jobs in the queue
first (the largest first), then finished ones, the most recently finished first.

The schedd's history is read incrementally (`CampaignTracker`): once back to the window's start,
then each cycle only the records written since, because the HTCondor bindings hold the GIL while
the schedd reads its history, and a whole day's history would stall every scrape. `campaign_rows`
is pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bursting.metrics.labels import OTHER
from bursting.model import CAMPAIGN_PATTERN, JobState

TOP_CAMPAIGNS = 10
# "done" and "removed" count jobs that left the queue this long ago at most: the history a
# cycle reads stays small, and a campaign finished yesterday leaves the metric.
CAMPAIGN_WINDOW_SECONDS = 24 * 3600.0
CAMPAIGN_STATES = ("idle", "running", "held", "done", "removed")
_STATE = {
    JobState.IDLE: "idle",
    JobState.RUNNING: "running",
    JobState.TRANSFERRING_OUTPUT: "running",
    JobState.SUSPENDED: "running",
    JobState.HELD: "held",
    JobState.COMPLETED: "done",
    JobState.REMOVED: "removed",
}


LeftJob = tuple[str, str, JobState, float]  # job id, campaign, state, when it left the queue


@runtime_checkable
class CampaignSource(Protocol):
    """What can count jobs by campaign (HTCondorPool); a pool without it exports no family."""

    def campaign_queue(self) -> Mapping[tuple[str, JobState], int]: ...

    def campaign_history(
        self, after: str | None, since: float
    ) -> tuple[tuple[LeftJob, ...], str | None]: ...


class CampaignTracker:
    """Jobs per campaign: the queue as it is, and the jobs that left it within the window,
    kept here per minute from the history read so far (called in the controller's thread)."""

    def __init__(self, source: CampaignSource, window: float = CAMPAIGN_WINDOW_SECONDS) -> None:
        self.source = source
        self.window = window
        self._cursor: str | None = None
        self._last_read: frozenset[str] = frozenset()
        self._minutes: dict[int, dict[tuple[str, JobState], int]] = {}

    def counts(self, now: float) -> dict[tuple[str, JobState], int]:
        """(campaign, state) -> jobs, in order of recency: the queue's campaigns first, then by
        when their last job left it. Raises what the source raises, changing nothing then.
        The history is read before the queue: a job leaving in between is missed for a cycle
        rather than counted twice."""
        cutoff = now - self.window
        left, cursor = self.source.campaign_history(self._cursor, cutoff)
        queue = self.source.campaign_queue()
        for job_id, name, state, left_at in left:
            if job_id in self._last_read or left_at < cutoff:
                continue  # read last time too, or older than the window (a rotated cursor)
            minute = self._minutes.setdefault(int(left_at // 60), {})
            minute[(name, state)] = minute.get((name, state), 0) + 1
        self._cursor, self._last_read = cursor, frozenset(job_id for job_id, *_ in left)
        for minute_key in [m for m in self._minutes if m < cutoff // 60]:
            del self._minutes[minute_key]
        counts = dict(queue)
        for minute_key in sorted(self._minutes, reverse=True):
            for key, n in self._minutes[minute_key].items():
                counts[key] = counts.get(key, 0) + n
        return counts


@dataclass(frozen=True)
class CampaignRow:
    campaign: str
    state: str
    jobs: int


def campaign_label(name: str) -> str:
    """The name if it is one the DAG could have set, else "other" (a job attribute is free
    text: anything else could be long, a user name or an id)."""
    return name if re.fullmatch(CAMPAIGN_PATTERN, name) else OTHER


def campaign_rows(
    counts: Mapping[tuple[str, JobState], int], top: int = TOP_CAMPAIGNS
) -> tuple[CampaignRow, ...]:
    """Rows per (campaign label, state) for the `top` campaigns, the rest as "other".
    `counts` is in order of recency (HTCondorPool.campaign_counts), which ranks finished
    campaigns. Every state of a kept campaign is present (0 included), so its progress reads
    whole."""
    by_name: dict[str, dict[str, int]] = {}
    for (name, job_state), n in counts.items():
        row = by_name.setdefault(campaign_label(name), dict.fromkeys(CAMPAIGN_STATES, 0))
        row[_STATE[job_state]] += n

    def rank(item: tuple[str, dict[str, int]]) -> tuple[bool, int]:
        states = item[1]
        queued = states["idle"] + states["running"] + states["held"]
        return (queued == 0, -sum(states.values()) if queued else 0)

    ranked = sorted(by_name.items(), key=rank)  # stable: finished ones stay in recency order
    kept = dict(ranked[:top])
    rest = [states for _, states in ranked[top:]]
    if rest:
        other = kept.setdefault(OTHER, dict.fromkeys(CAMPAIGN_STATES, 0))
        for states in rest:
            for state, n in states.items():
                other[state] += n
    return tuple(
        CampaignRow(name, state, kept[name][state])
        for name in sorted(kept)
        for state in CAMPAIGN_STATES
    )
