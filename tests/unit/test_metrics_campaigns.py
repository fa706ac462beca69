"""bursting_campaign_jobs: counts per campaign and state, bounded to the top campaigns plus
"other"; kept, not zeroed, when the pool cannot be read; the history read incrementally.
And the families the dashboard builds capacity and latency panels on."""

from __future__ import annotations

import pytest

from bursting.errors import PoolUnavailable
from bursting.metrics.campaigns import (
    CAMPAIGN_STATES,
    CAMPAIGN_WINDOW_SECONDS,
    CampaignRow,
    CampaignTracker,
    LeftJob,
    campaign_label,
    campaign_rows,
)
from bursting.model import JobState
from tests.unit.test_metrics import ONE_CORE, World, busy_world, samples, value


def test_rows_carry_every_state_of_each_campaign() -> None:
    rows = campaign_rows(
        {
            ("zmumu", JobState.IDLE): 3,
            ("zmumu", JobState.COMPLETED): 5,
            ("zmumu", JobState.TRANSFERRING_OUTPUT): 1,
            ("zmumu", JobState.RUNNING): 1,
            ("ttbar", JobState.HELD): 2,
            ("ttbar", JobState.REMOVED): 1,
        }
    )
    table = {(r.campaign, r.state): r.jobs for r in rows}
    assert table == {
        **{("ttbar", s): 0 for s in CAMPAIGN_STATES},
        **{("zmumu", s): 0 for s in CAMPAIGN_STATES},
        ("zmumu", "idle"): 3,
        ("zmumu", "running"): 2,
        ("zmumu", "done"): 5,
        ("ttbar", "held"): 2,
        ("ttbar", "removed"): 1,
    }


def test_only_the_top_campaigns_keep_their_label_the_rest_is_other() -> None:
    # In order of recency, as the pool gives them: c00 finished most recently.
    counts = {(f"c{n:02d}", JobState.COMPLETED): 100 - n for n in range(25)}
    rows = campaign_rows(counts, top=10)
    assert {r.campaign for r in rows} == {f"c{n:02d}" for n in range(10)} | {"other"}
    other = {r.state: r.jobs for r in rows if r.campaign == "other"}
    assert other["done"] == sum(100 - n for n in range(10, 25))
    assert sum(r.jobs for r in rows) == sum(100 - n for n in range(25))


def test_campaigns_in_the_queue_come_first_largest_first() -> None:
    counts = {(f"old{n}", JobState.COMPLETED): 1000 for n in range(5)}
    counts |= {
        ("small", JobState.IDLE): 1,
        ("big", JobState.RUNNING): 50,
        ("held", JobState.HELD): 2,
    }
    rows = campaign_rows(counts, top=4)
    assert {r.campaign for r in rows} == {"big", "held", "small", "old0", "other"}
    assert CampaignRow("other", "done", 4000) in rows


def test_a_name_that_is_no_campaign_name_is_never_a_label() -> None:
    assert campaign_label("ttbar-2026.v1") == "ttbar-2026.v1"
    for bad in ("alice's run", "x" * 65, "", "-lead", 'a"b', "a\nb"):
        assert campaign_label(bad) == "other"
    rows = campaign_rows({("/home/alice/job 7", JobState.IDLE): 4, ("zmumu", JobState.IDLE): 1})
    assert CampaignRow("other", "idle", 4) in rows and CampaignRow("zmumu", "idle", 1) in rows


def test_the_exporter_counts_campaigns_each_cycle_from_recent_history() -> None:
    world = World()
    world.pool.add_jobs(4, ONE_CORE, duration=15, campaign="zmumu")
    world.cycle()
    text = world.scrape()
    assert value(text, "bursting_campaign_jobs", campaign="zmumu", state="idle") == 4
    assert value(text, "bursting_campaign_jobs", campaign="zmumu", state="done") == 0
    # asked during the cycle, before the clock moved on by an interval; no cursor yet
    cycle_at = world.clock.now() - world.config.policy.interval_seconds
    assert world.campaigns.asked == [(None, cycle_at - CAMPAIGN_WINDOW_SECONDS)]
    world.cycle(20)
    text = world.scrape()
    assert value(text, "bursting_campaign_jobs", campaign="zmumu", state="done") == 4
    assert value(text, "bursting_campaign_jobs", campaign="zmumu", state="idle") == 0
    assert world.campaigns.asked[-1][0] == "4"  # later cycles read only what is new


def test_an_unreadable_pool_keeps_the_last_counts() -> None:
    world = World()
    world.pool.add_jobs(2, ONE_CORE, duration=15, campaign="zmumu")
    world.cycle()
    world.pool.readable = False
    world.cycle()
    assert value(world.scrape(), "bursting_campaign_jobs", campaign="zmumu", state="idle") == 2


def test_a_failing_count_keeps_the_last_counts() -> None:
    world = World()
    world.pool.add_jobs(2, ONE_CORE, duration=15, campaign="zmumu")
    world.cycle()

    def broken() -> dict[tuple[str, JobState], int]:
        raise PoolUnavailable("schedd query timed out")

    world.campaigns.campaign_queue = broken  # type: ignore[method-assign]
    world.cycle()
    assert value(world.scrape(), "bursting_campaign_jobs", campaign="zmumu", state="idle") == 2
    assert world.exporter.readiness().ready  # the controller's cycle is not its business


class History:
    """A schedd's history as CampaignTracker reads it, with the reads scripted."""

    def __init__(self) -> None:
        self.queue: dict[tuple[str, JobState], int] = {}
        self.answers: list[tuple[tuple[LeftJob, ...], str | None]] = []
        self.asked: list[tuple[str | None, float]] = []

    def campaign_queue(self) -> dict[tuple[str, JobState], int]:
        return dict(self.queue)

    def campaign_history(
        self, after: str | None, since: float
    ) -> tuple[tuple[LeftJob, ...], str | None]:
        self.asked.append((after, since))
        return self.answers.pop(0)


def test_the_history_is_read_once_from_the_window_then_only_what_is_new() -> None:
    history = History()
    tracker = CampaignTracker(history, window=3600)
    now = 100_000.0
    history.answers = [
        (
            (
                ("7.1", "zmumu", JobState.COMPLETED, now - 60),
                ("7.0", "zmumu", JobState.REMOVED, now - 70),
            ),
            "9.0",
        ),
        # 7.1 comes back (written after the last cursor was taken): counted once
        (
            (
                ("9.3", "ttbar", JobState.COMPLETED, now + 5),
                ("7.1", "zmumu", JobState.COMPLETED, now - 60),
            ),
            "9.3",
        ),
    ]
    history.queue = {("ttbar", JobState.IDLE): 3}
    first = tracker.counts(now)
    assert first == {
        ("ttbar", JobState.IDLE): 3,
        ("zmumu", JobState.COMPLETED): 1,
        ("zmumu", JobState.REMOVED): 1,
    }
    second = tracker.counts(now + 10)
    assert second[("zmumu", JobState.COMPLETED)] == 1 and second[("ttbar", JobState.COMPLETED)] == 1
    assert history.asked == [(None, now - 3600), ("9.0", now + 10 - 3600)]
    # ttbar finished last: after the queue's campaigns, the most recent first
    assert list(second)[:2] == [("ttbar", JobState.IDLE), ("ttbar", JobState.COMPLETED)]


def test_jobs_older_than_the_window_leave_the_counts() -> None:
    history = History()
    tracker = CampaignTracker(history, window=3600)
    now = 100_000.0
    history.answers = [
        ((("1.0", "zmumu", JobState.COMPLETED, now - 100),), "1.0"),
        ((), "1.0"),
        # a cursor the schedd no longer has (its history rotated): the whole file comes back
        (
            (
                ("1.0", "zmumu", JobState.COMPLETED, now - 100),
                ("0.5", "old", JobState.COMPLETED, 5.0),
            ),
            "2.0",
        ),
    ]
    assert tracker.counts(now) == {("zmumu", JobState.COMPLETED): 1}
    assert tracker.counts(now + 3600) == {}
    assert tracker.counts(now + 3700) == {}


def test_a_failed_history_read_changes_nothing() -> None:
    history = History()
    tracker = CampaignTracker(history, window=3600)
    history.answers = [((("1.0", "zmumu", JobState.COMPLETED, 99_990.0),), "1.0")]
    assert tracker.counts(100_000.0) == {("zmumu", JobState.COMPLETED): 1}

    def broken(after: str | None, since: float) -> tuple[tuple[LeftJob, ...], str | None]:
        raise PoolUnavailable("schedd history timed out")

    history.campaign_history = broken  # type: ignore[method-assign]
    with pytest.raises(PoolUnavailable):
        tracker.counts(100_010.0)
    history.campaign_history = lambda after, since: ((), after)  # type: ignore[method-assign]
    assert tracker.counts(100_020.0) == {("zmumu", JobState.COMPLETED): 1}


def test_a_pool_that_cannot_count_campaigns_exports_no_family() -> None:
    from prometheus_client import CollectorRegistry

    from bursting.metrics import Exporter

    world = World()
    plain = Exporter(world.controller, world.calls, CollectorRegistry())
    assert plain.campaigns is None  # FakePool has no campaign_counts
    world.cycle()
    assert plain.scrape().campaigns is None


def test_latency_histograms_start_at_zero_for_every_enabled_cloud() -> None:
    world = World()
    world.cycle()  # nothing booted yet
    text = world.scrape()
    for cloud in ("private", "public"):
        for family in ("bursting_instance_boot_seconds", "bursting_instance_join_seconds"):
            assert value(text, f"{family}_count", cloud=cloud) == 0
            assert value(text, f"{family}_bucket", cloud=cloud, le="+Inf") == 0
    busy = busy_world().scrape()
    assert value(busy, "bursting_instance_boot_seconds_count", cloud="private") >= 1


def test_flavor_cores_turn_instances_into_capacity() -> None:
    text = busy_world().scrape()
    assert value(text, "bursting_cloud_flavor_cores", cloud="private", flavor="p.4c") == 4
    assert value(text, "bursting_cloud_flavor_cores", cloud="public", flavor="c.4c") == 4
    assert len(samples(text)["bursting_cloud_flavor_cores"]) == 2
