"""The planner's named steps: requirements-aware demand, room that matches, min_instances,
spend, unknown quota, retry_after, reason codes. Pure: no daemons, fake inputs."""

from __future__ import annotations

import itertools
from typing import Any

from bursting.config import Config, parse_config
from bursting.model import (
    ActionKind,
    CloudInstance,
    CloudSnapshot,
    CloudStatus,
    Demand,
    Instance,
    InstanceState,
    JobShape,
    PoolSnapshot,
    Quota,
    ReasonCode,
    Worker,
)
from bursting.planner import CyclePlan, plan_cycle
from bursting.policy.matching import Unmatched
from bursting.policy.spend import accrue, budget_left

NOW = 1_000_000.0
STANDARD = (
    '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk) '
    "&& (TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus) && "
    "(TARGET.HasFileTransfer)"
)
PLAIN = JobShape(1, 1024, 0, 0, STANDARD)
CVMFS = JobShape(1, 1024, 0, 0, STANDARD + " && (TARGET.HasCVMFS =?= true)")


def cloud(name: str, priority: int, price: float = 0.0, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "local",
        "priority": priority,
        "max_instances": 4,
        "max_concurrent_boots": 4,
        "flavors": [
            {
                "name": f"{name}.4c",
                "cpus": 4,
                "memory_mb": 8192,
                "disk_gb": 20,
                "price_per_hour": price,
            }
        ],
        **extra,
    }


def config(*clouds: dict[str, Any], **policy: Any) -> Config:
    return parse_config(
        {
            "pool": {"id": "t"},
            "clouds": list(clouds) or [cloud("private", 1), cloud("public", 5, 0.4)],
            "policy": {"min_idle_seconds": 0, **policy},
        }
    )


def pool(*demand: tuple[JobShape, int], workers: tuple[Worker, ...] = ()) -> PoolSnapshot:
    return PoolSnapshot(NOW, tuple(Demand(s, (NOW - 100,) * n) for s, n in demand), workers)


def listing(name: str, *instances: CloudInstance, quota: Quota | None = None) -> CloudSnapshot:
    return CloudSnapshot(name, NOW, instances, quota or Quota())


def plan(cfg: Config, snapshot: PoolSnapshot | None, **kw: Any) -> CyclePlan:
    counter = itertools.count()
    clouds = kw.pop("clouds", None) or {c.name: listing(c.name) for c in cfg.clouds}
    stored = kw.pop("stored", [])
    return plan_cycle(
        cfg, stored, {}, snapshot, clouds, NOW, lambda c: f"{c}-{next(counter)}", **kw
    )


def creates(result: CyclePlan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for action in result.actions:
        if action.kind is ActionKind.CREATE:
            counts[action.cloud] = counts.get(action.cloud, 0) + 1
    return counts


def test_jobs_asking_for_what_no_worker_has_start_nothing_and_say_why() -> None:
    result = plan(config(), pool((CVMFS, 6)))
    assert creates(result) == {}
    ((mismatch, jobs),) = result.unschedulable.items()
    assert jobs == 6 and mismatch.code is Unmatched.REQUIREMENTS
    assert "HasCVMFS" in mismatch.text
    assert any("6 idle job(s) can never start" in note for note in result.notes)


def test_a_cloud_that_provides_the_attribute_gets_the_jobs() -> None:
    cfg = config(cloud("private", 1), cloud("cvmfs", 5, 0.4, provides={"HasCVMFS": True}))
    result = plan(cfg, pool((CVMFS, 6), (PLAIN, 4)))
    assert result.unschedulable == {}
    cvmfs_creates = [a for a in result.actions if a.cloud == "cvmfs"]
    assert len(cvmfs_creates) == 2  # 6 one-core jobs on 4-core flavors; private takes PLAIN
    assert creates(result) == {"private": 1, "cvmfs": 2}
    assert all(a.code is ReasonCode.DEMAND for a in result.actions)


def test_gpu_and_oversized_jobs_are_counted_by_reason() -> None:
    result = plan(config(), pool((JobShape(1, 1024, 0, 1, STANDARD), 3), (JobShape(64, 1024), 2)))
    reasons = {m.code: (jobs, m.text) for m, jobs in result.unschedulable.items()}
    assert reasons[Unmatched.GPUS][0] == 3 and "GPU" in reasons[Unmatched.GPUS][1]
    assert reasons[Unmatched.TOO_MANY_CORES] == (2, "needs 64 cores, largest flavor has 4")
    assert creates(result) == {}


def worker(instance_id: str, free_cpus: int, running: int = 0) -> Worker:
    return Worker(
        f"{instance_id}@h", "h", instance_id, "t", 4, 8192, free_cpus, 8192, running, False, 1
    )


def running(instance_id: str, cloud_name: str, idle_since: float | None = None) -> Instance:
    return Instance(
        instance_id,
        cloud_name,
        f"{cloud_name}.4c",
        4,
        8192,
        0.0,
        InstanceState.RUNNING,
        NOW - 1000,
        NOW - 1000,
        idle_since=idle_since,
    )


def active(instance_id: str, cloud_name: str) -> CloudInstance:
    return CloudInstance(
        instance_id, cloud_name, f"{cloud_name}.4c", CloudStatus.ACTIVE, NOW - 1000, "t"
    )


def test_free_room_counts_only_for_jobs_that_could_match_it() -> None:
    cfg = config(cloud("private", 1), cloud("cvmfs", 5, provides={"HasCVMFS": True}))
    stored = [running("p1", "private")]
    clouds = {"private": listing("private", active("p1", "private")), "cvmfs": listing("cvmfs")}
    snapshot = pool((CVMFS, 4), workers=(worker("p1", 4),))
    result = plan(cfg, snapshot, stored=stored, clouds=clouds)
    assert creates(result) == {"cvmfs": 1}  # p1's 4 free cores cannot take HasCVMFS jobs
    plain = plan(cfg, pool((PLAIN, 4), workers=(worker("p1", 4),)), stored=stored, clouds=clouds)
    assert creates(plain) == {}  # the same room absorbs jobs that match it


def test_an_idle_worker_that_cannot_run_the_waiting_jobs_is_drained() -> None:
    cfg = config(
        cloud("private", 1), cloud("cvmfs", 5, provides={"HasCVMFS": True}), idle_seconds=60
    )
    stored = [running("p1", "private", idle_since=NOW - 600)]
    clouds = {"private": listing("private", active("p1", "private")), "cvmfs": listing("cvmfs")}
    result = plan(cfg, pool((CVMFS, 2), workers=(worker("p1", 4),)), stored=stored, clouds=clouds)
    drains = [a for a in result.actions if a.kind is ActionKind.DRAIN]
    assert [a.instance_id for a in drains] == ["p1"] and drains[0].code is ReasonCode.IDLE
    kept = plan(cfg, pool((PLAIN, 2), workers=(worker("p1", 4),)), stored=stored, clouds=clouds)
    assert not [a for a in kept.actions if a.kind is ActionKind.DRAIN]


def test_min_instances_are_created_and_kept() -> None:
    cfg = config(cloud("private", 1, min_instances=2))
    result = plan(cfg, pool())
    floor = [a for a in result.actions if a.kind is ActionKind.CREATE]
    assert len(floor) == 2 and {a.code for a in floor} == {ReasonCode.MIN_INSTANCES}
    assert all(i.state is InstanceState.REQUESTED for i in result.instances)
    # Once they exist, nothing more is created for the floor.
    stored = [running("p1", "private"), running("p2", "private")]
    clouds = {"private": listing("private", active("p1", "private"), active("p2", "private"))}
    workers = (worker("p1", 4), worker("p2", 4))
    again = plan(cfg, pool(workers=workers), stored=stored, clouds=clouds)
    assert creates(again) == {}
    # Not on missing data: an unreadable pool grows nothing.
    assert creates(plan(cfg, None)) == {}


def test_unknown_quota_or_retry_after_skips_that_cloud_for_creates() -> None:
    cfg = config()
    clouds = {"private": listing("private", quota=Quota.unknown()), "public": listing("public")}
    result = plan(cfg, pool((PLAIN, 4)), clouds=clouds)
    assert creates(result) == {"public": 1}
    assert any("quota is unknown" in note for note in result.notes)
    paused = plan(cfg, pool((PLAIN, 4)), paused_until={"private": NOW + 60})
    assert creates(paused) == {"public": 1}
    assert any("retry after 60s" in note for note in paused.notes)
    later = plan(cfg, pool((PLAIN, 4)), paused_until={"private": NOW - 1})
    assert creates(later) == {"private": 1}


def test_the_hourly_cap_counts_what_was_really_spent() -> None:
    capped = config(cloud("public", 1, 0.4), spend={"max_per_hour": 1.0})
    assert creates(plan(capped, pool((PLAIN, 16)))) == {"public": 2}  # 2 x 0.4 within 1.0
    spent = plan(capped, pool((PLAIN, 16)), spent_last_hour={"public": 0.7})
    assert creates(spent) == {}  # 0.3 left: not one more 0.4/h instance


def test_accrue_and_budget() -> None:
    instances = [
        Instance("a", "pub", "f", 4, 8192, 0.6, InstanceState.RUNNING, 0, 0),
        Instance("b", "pub", "f", 4, 8192, 0.6, InstanceState.FAILED, 0, 1800),
        Instance("c", "pub", "f", 4, 8192, 0.6, InstanceState.GONE, 0, 0),
        Instance("d", "priv", "f", 4, 8192, 0.0, InstanceState.RUNNING, 0, 0),
    ]
    assert accrue(instances, None, 3600) == {"pub": 0.6 + 0.3}
    assert accrue(instances, 3000, 3600) == {"pub": 0.1 + 0.1}
    assert budget_left(None, instances, {}) is None
    assert budget_left(2.0, instances, {"pub": 0.5}) == 2.0 - 1.2  # the live rate is larger
    assert budget_left(2.0, instances, {"pub": 1.9}) == 2.0 - 1.9  # the last hour's spend is


def test_an_adopted_instance_of_unknown_flavor_is_priced_never_free() -> None:
    cfg = config(cloud("public", 1, 0.4))
    seen = CloudInstance("x1", "public", "mystery", CloudStatus.ACTIVE, NOW - 10, "t")
    snapshot = pool(workers=(worker("x1", 4),))
    result = plan(cfg, snapshot, clouds={"public": listing("public", seen)})
    (adopted,) = result.instances
    assert adopted.id == "x1" and adopted.price_per_hour == 0.4


def test_lifecycle_actions_carry_their_reason_code() -> None:
    cfg = config(cloud("private", 1), boot_timeout_seconds=60)
    booting = Instance(
        "b1", "private", "private.4c", 4, 8192, 0.0, InstanceState.BOOTING, NOW - 600, NOW - 600
    )
    errored = CloudInstance("b1", "private", "private.4c", CloudStatus.ERROR, NOW - 600, "t")
    result = plan(cfg, pool(), stored=[booting], clouds={"private": listing("private", errored)})
    (action,) = result.actions
    assert action.kind is ActionKind.DELETE and action.code is ReasonCode.BOOT_FAILED
    hung = CloudInstance("b1", "private", "private.4c", CloudStatus.BUILD, NOW - 600, "t")
    result = plan(cfg, pool(), stored=[booting], clouds={"private": listing("private", hung)})
    assert [a.code for a in result.actions] == [ReasonCode.BOOT_TIMEOUT]
    orphan = CloudInstance("o1", "private", "private.4c", CloudStatus.ACTIVE, NOW - 10_000, "t")
    result = plan(cfg, pool(), clouds={"private": listing("private", orphan)})
    assert [a.code for a in result.actions] == [ReasonCode.ORPHAN]


def test_the_clause_condor_submit_adds_by_default_is_understood() -> None:
    """`split` is HTCondor's own ClassAd function: without it every job looked unrunnable."""
    default = (
        '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && '
        '(versionGE(split(TARGET.CondorVersion)[1], "25.12.0") || (TARGET.Disk >= RequestDisk)) '
        "&& (TARGET.Memory >= RequestMemory) && (TARGET.HasFileTransfer)"
    )
    result = plan(config(cloud("private", 1)), pool((JobShape(1, 1024, 1024, 0, default), 4)))
    assert result.unschedulable == {}
    assert creates(result) == {"private": 1}


def test_an_orphan_is_reaped_only_on_pool_data_that_can_be_trusted() -> None:
    cfg = config(cloud("private", 1), orphan_grace_seconds=600)
    orphan = CloudInstance("o1", "private", "private.4c", CloudStatus.ACTIVE, NOW - 10_000, "t")
    clouds = {"private": listing("private", orphan)}
    assert plan(cfg, None, clouds=clouds).actions == []  # the pool could not be read
    young = PoolSnapshot(NOW, (), (), collector_started_at=NOW - 5, advertise_interval=60)
    assert plan(cfg, young, clouds=clouds).actions == []  # a fresh collector knows no one yet
    (action,) = plan(cfg, pool(), clouds=clouds).actions
    assert action.code is ReasonCode.ORPHAN
