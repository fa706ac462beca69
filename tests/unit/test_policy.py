"""Pure policy: demand, bin-packing, cloud choice, scale-down, backoff."""

from __future__ import annotations

import pytest

from bursting.model import Demand, Flavor, Instance, InstanceState, JobShape, Quota
from bursting.policy.backoff import Backoff, after_failure, blocked
from bursting.policy.demand import eligible_demand
from bursting.policy.packing import Packer, Room
from bursting.policy.scale_down import plan_scale_down
from bursting.policy.scale_up import Budget, CloudView, choose_clouds, plan_scale_up

SMALL = JobShape(1, 2000)
BIG = JobShape(4, 8000)
M8 = Flavor("m8", 8, 16384, 80, 0, 0.4)
M2 = Flavor("m2", 2, 4096, 20, 0, 0.1)


def ids() -> object:
    counter = iter(range(10_000))
    return lambda cloud: f"{cloud}-{next(counter)}"


def test_only_jobs_idle_long_enough_count() -> None:
    demand = [Demand(SMALL, (100.0, 200.0, 290.0)), Demand(BIG, (295.0,))]
    assert eligible_demand(demand, min_idle_seconds=60, now=300) == {SMALL: 2}
    assert eligible_demand(demand, min_idle_seconds=0, now=300) == {SMALL: 3, BIG: 1}


def test_existing_free_room_absorbs_demand_first() -> None:
    packer = Packer([Room(4, 8192, 1 << 30), Room(2, 4096, 1 << 30)])
    assert packer.absorb({SMALL: 10}) == {SMALL: 4}  # 4 + 2 fit by cpu and memory


def test_first_fit_decreasing_packs_big_jobs_first_and_fills_gaps() -> None:
    packing = Packer().pack_new({BIG: 3, SMALL: 4}, [M8], max_instances=10)
    assert packing.placed == 7
    assert packing.instances == 2  # 2 BIG per m8; the 3rd BIG's m8 keeps 4 cores for SMALLs


def test_packing_respects_every_resource() -> None:
    memory_heavy = JobShape(1, 9000)
    packing = Packer().pack_new({memory_heavy: 4}, [M8], max_instances=10)
    assert packing.instances == 4  # one per m8 by memory although cores would fit 8
    disk_heavy = JobShape(1, 100, disk_mb=50 * 1024)
    assert Packer().pack_new({disk_heavy: 2}, [M8], max_instances=10).instances == 2


def test_tail_goes_to_the_cheapest_flavor_that_holds_it() -> None:
    packing = Packer().pack_new({SMALL: 10}, [M8, M2], max_instances=10)
    flavors = {b.flavor.name: b.count for b in packing.new_bins}
    assert flavors == {"m8": 1, "m2": 1}


def test_shape_too_big_for_every_flavor_is_left_unplaced() -> None:
    huge = JobShape(64, 1000)
    packing = Packer().pack_new({huge: 2, SMALL: 1}, [M8], max_instances=10)
    assert packing.unplaced == {huge: 2}
    assert packing.placed == 1


def test_headroom_caps_new_instances_and_leaves_the_rest() -> None:
    packing = Packer().pack_new({SMALL: 100}, [M8], max_instances=3)
    assert packing.instances == 3 and packing.unplaced == {SMALL: 100 - 24}


def view(name: str, **kw: object) -> CloudView:
    values: dict[str, object] = {
        "name": name,
        "enabled": True,
        "priority": 1,
        "readable": True,
        "flavors": (M8,),
        "max_instances": 10,
        "max_concurrent_boots": 5,
    }
    values.update(kw)
    return CloudView(**values)  # type: ignore[arg-type]


def test_filters_then_priority_then_price() -> None:
    clouds = [
        view("cheap-but-low-priority", priority=5, flavors=(M2,)),
        view("expensive", priority=1, flavors=(Flavor("x", 8, 16384, 80, 0, 9.0),)),
        view("cheaper", priority=1),
        view("off", enabled=False),
        view("down", readable=False),
        view("full", live=10),
        view("storming", booting=5),
        view("backing-off", backoff={"m8": Backoff(1, 500)}),
        view("no-quota", quota=Quota(instances=0)),
    ]
    chosen, notes = choose_clouds(clouds, now=100)
    assert [c.cloud.name for c in chosen] == ["cheaper", "expensive", "cheap-but-low-priority"]
    text = " ".join(notes)
    for reason in (
        "disabled",
        "could not be read",
        "max_instances",
        "max_concurrent_boots",
        "backing off",
        "quota",
    ):
        assert reason in text


def test_backoff_expires() -> None:
    chosen, _ = choose_clouds([view("a", backoff={"m8": Backoff(1, 500)})], now=501)
    assert [c.cloud.name for c in chosen] == ["a"]


def test_overflow_to_the_next_cloud_and_core_quota() -> None:
    clouds = [view("private", max_instances=1), view("public", priority=2, quota=Quota(cores=16))]
    actions, _, rest = plan_scale_up({SMALL: 40}, clouds, Budget(None), 0, ids())
    per_cloud = {c: sum(1 for a in actions if a.cloud == c) for c in ("private", "public")}
    assert per_cloud == {"private": 1, "public": 2}  # 16 cores of quota = two m8
    assert rest == {SMALL: 40 - 24}
    assert len({a.instance_id for a in actions}) == len(actions)


def test_spend_cap_across_clouds() -> None:
    clouds = [view("a", priority=1), view("b", priority=2)]
    actions, notes, _ = plan_scale_up({SMALL: 80}, clouds, Budget(1.0), 0, ids())
    assert len(actions) == 2  # 2 x 0.4/h within 1.0/h
    assert "left without capacity" in " ".join(notes)


def running(
    i: int, cloud: str = "private", idle_for: float | None = 1000, price: float = 0.0
) -> Instance:
    return Instance(
        f"{cloud}-{i}",
        cloud,
        "m8",
        8,
        16384,
        price,
        InstanceState.RUNNING,
        0,
        0,
        idle_since=None if idle_for is None else 5000 - idle_for,
    )


FLAVORS = {("private", "m8"): M8, ("public", "m8"): M8}


def test_scale_down_drains_idle_workers_keeps_min_and_busy() -> None:
    instances = [running(1), running(2), running(3, idle_for=None), running(4, idle_for=10)]
    chosen = plan_scale_down(instances, FLAVORS, {"private"}, True, {}, 600, {"private": 2}, 5000)
    assert len(chosen) == 2 and set(chosen) <= {"private-1", "private-2"}
    assert all("idle for" in reason for reason in chosen.values())


def test_scale_down_never_on_missing_data() -> None:
    instances = [running(1), running(2)]
    assert plan_scale_down(instances, FLAVORS, {"private"}, False, {}, 600, {}, 5000) == {}
    assert plan_scale_down(instances, FLAVORS, set(), True, {}, 600, {}, 5000) == {}


def test_scale_down_keeps_workers_idle_jobs_could_use() -> None:
    instances = [running(1)]
    assert plan_scale_down(instances, FLAVORS, {"private"}, True, {SMALL: 3}, 600, {}, 5000) == {}


def test_scale_down_drains_priced_workers_first() -> None:
    instances = [running(1), running(2, "public", price=0.4)]
    chosen = plan_scale_down(
        instances, FLAVORS, {"private", "public"}, True, {}, 600, {"private": 0, "public": 0}, 5000
    )
    assert list(chosen) == ["public-2", "private-1"]


def test_backoff_doubles_and_caps() -> None:
    first = after_failure(None, 0, 60, 300)
    second = after_failure(first, 0, 60, 300)
    third = after_failure(second, 0, 60, 300)
    fourth = after_failure(third, 0, 60, 300)
    assert [b.until for b in (first, second, third, fourth)] == [60, 120, 240, 300]
    assert blocked(first, 59) and not blocked(first, 60) and not blocked(None, 0)


@pytest.mark.parametrize("count", [1, 7, 8, 9, 63, 64, 65])
def test_every_job_fits_in_what_is_opened(count: int) -> None:
    packing = Packer().pack_new({SMALL: count}, [M8, M2], max_instances=1000)
    capacity = sum(Room.of_flavor(b.flavor).fits(SMALL) * b.count for b in packing.new_bins)
    assert packing.placed == count <= capacity
    assert capacity - count < 8  # no more than one partly empty instance
