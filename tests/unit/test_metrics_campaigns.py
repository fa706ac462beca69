"""bursting_campaign_jobs: counts per campaign and state, bounded to the top campaigns plus
"other"; kept, not zeroed, when the pool cannot be read; the pool asked for recent history only.
And the families the dashboard builds capacity and latency panels on."""

from __future__ import annotations

from bursting.errors import PoolUnavailable
from bursting.metrics.campaigns import (
    CAMPAIGN_STATES,
    CAMPAIGN_WINDOW_SECONDS,
    CampaignRow,
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
    # asked during the cycle, before the clock moved on by an interval
    cycle_at = world.clock.now() - world.config.policy.interval_seconds
    assert world.campaigns.asked == [cycle_at - CAMPAIGN_WINDOW_SECONDS]
    world.cycle(20)
    text = world.scrape()
    assert value(text, "bursting_campaign_jobs", campaign="zmumu", state="done") == 4
    assert value(text, "bursting_campaign_jobs", campaign="zmumu", state="idle") == 0


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

    def broken(since: float) -> dict[tuple[str, JobState], int]:
        raise PoolUnavailable("schedd history timed out")

    world.campaigns.campaign_counts = broken  # type: ignore[method-assign]
    world.cycle()
    assert value(world.scrape(), "bursting_campaign_jobs", campaign="zmumu", state="idle") == 2
    assert world.exporter.readiness().ready  # the controller's cycle is not its business


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
