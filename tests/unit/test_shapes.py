"""Demand and worker grouping from real ClassAds, without daemons."""

from __future__ import annotations

import classad2

from bursting.model import JobState
from bursting.pool.htcondor import build_snapshot, daemon_starts, job_outcome

REQS = '(TARGET.Arch == "X86_64") && (TARGET.Memory >= RequestMemory)'


def job(
    proc: int,
    status: int,
    cpus: int = 1,
    memory: str = "2048",
    entered: int = 100,
    owner: str = "alice",
) -> classad2.ClassAd:
    return classad2.ClassAd(
        f'[ClusterId = 7; ProcId = {proc}; JobStatus = {status}; Owner = "{owner}";'
        f" RequestCpus = {cpus}; RequestMemory = {memory}; RequestDisk = 2097152;"
        f" Requirements = {REQS}; EnteredCurrentStatus = {entered}; ImageSize = 4096]"
    )


def slot(
    name: str, kind: str, cpus: int, memory: int, state: str = "Unclaimed", extra: str = ""
) -> classad2.ClassAd:
    return classad2.ClassAd(
        f'[Name = "{name}"; Machine = "host"; SlotType = "{kind}"; State = "{state}";'
        f" Cpus = {cpus}; Memory = {memory}; TotalSlotCpus = 8; TotalSlotMemory = 16384; {extra}]"
    )


def test_idle_jobs_group_by_shape_with_their_idle_times() -> None:
    jobs = [job(0, 1, entered=300), job(1, 1, entered=100), job(2, 1, cpus=4), job(3, 2), job(4, 5)]
    snapshot = build_snapshot(jobs, [], now=1000.0)
    by_cpus = {d.shape.cpus: d for d in snapshot.demand}
    assert by_cpus[1].idle_jobs == 2
    assert by_cpus[1].idle_since == (100.0, 300.0)  # oldest first
    assert by_cpus[4].idle_jobs == 1
    assert by_cpus[1].shape.disk_mb == 2048  # RequestDisk is KiB
    assert by_cpus[1].shape.requirements == REQS
    assert snapshot.idle_jobs == 3
    assert snapshot.taken_at == 1000.0


def test_queue_rows_count_idle_running_held_per_owner_and_shape() -> None:
    jobs = [job(0, 1), job(1, 2), job(2, 2), job(3, 5), job(4, 1, owner="bob")]
    rows = {(r.owner, r.shape.cpus): r for r in build_snapshot(jobs, [], now=0).queue}
    alice = rows[("alice", 1)]
    assert (alice.idle, alice.running, alice.held) == (1, 2, 1)
    assert rows[("bob", 1)].idle == 1


def test_memory_expression_is_evaluated() -> None:
    expression = "ifthenelse(MemoryUsage =!= undefined, MemoryUsage, (ImageSize + 1023) / 1024)"
    (demand,) = build_snapshot([job(0, 1, memory=expression)], [], now=0).demand
    assert demand.shape.memory_mb == 4  # ClassAd integer division: (4096 + 1023) / 1024


def test_partitionable_node_with_dynamic_slots() -> None:
    tags = 'BurstingInstance = "bx-1"; BurstingPool = "cern-batch";'
    slots = [
        slot("slot1@w1@host", "Partitionable", 6, 12288, extra=tags),
        slot("slot1_1@w1@host", "Dynamic", 1, 2048, "Claimed", tags),
        slot("slot1_2@w1@host", "Dynamic", 1, 2048, "Claimed", tags),
        slot("slot1@w2@host", "Partitionable", 8, 16384),
    ]
    workers = {w.name: w for w in build_snapshot([], slots, now=0).workers}
    w1 = workers["w1@host"]
    assert (w1.total_cpus, w1.free_cpus, w1.running_jobs, w1.slots) == (8, 6, 2, 3)
    assert (w1.instance_id, w1.pool_id) == ("bx-1", "cern-batch")
    assert w1.busy
    w2 = workers["w2@host"]
    assert (w2.free_cpus, w2.running_jobs, w2.instance_id) == (8, 0, None)
    assert not w2.busy


def test_draining_node_offers_no_free_capacity() -> None:
    slots = [slot("slot1@w1@host", "Partitionable", 8, 16384, extra="Draining = true;")]
    (worker,) = build_snapshot([], slots, now=0).workers
    assert worker.draining and worker.free_cpus == 0


def test_static_slots() -> None:
    slots = [
        slot("slot1@host", "Static", 1, 1024, "Claimed"),
        slot("slot2@host", "Static", 1, 1024),
    ]
    (worker,) = build_snapshot([], slots, now=0).workers
    assert (worker.total_cpus, worker.free_cpus, worker.running_jobs) == (2, 1, 1)


def test_job_outcome_from_history_ad() -> None:
    ad = classad2.ClassAd(
        "[ClusterId = 3; ProcId = 1; JobStatus = 4; ExitCode = 2; ExitBySignal = false;"
        ' Err = "err.1"; Iwd = "/data/run"; QDate = 100; JobStartDate = 130;'
        ' CompletionDate = 200; LastRemoteHost = "slot1_1@w1@host"]'
    )
    outcome = job_outcome(ad)
    assert outcome.job_id == "3.1"
    assert outcome.state is JobState.COMPLETED
    assert outcome.exit_code == 2
    assert outcome.stderr_path == "/data/run/err.1"
    assert outcome.wait_seconds == 30.0
    assert outcome.host == "slot1_1@w1@host"
    assert outcome.instance is None  # it did not run on a burst worker


def test_job_outcome_names_the_burst_instance_it_ran_on() -> None:
    """An OpenStack server's host name (os-<uuid>) is not its instance id; the attribute the
    worker advertised, copied into the job at the match, is."""
    ad = classad2.ClassAd(
        '[ClusterId = 3; ProcId = 1; JobStatus = 4; LastRemoteHost = "slot1_1@os-5f2a";'
        ' MachineAttrBurstingInstance0 = "bx-7-private-3"]'
    )
    assert job_outcome(ad).instance == "bx-7-private-3"


def test_killed_by_signal_reports_shell_style_code() -> None:
    ad = classad2.ClassAd(
        "[ClusterId = 3; ProcId = 0; JobStatus = 4; ExitBySignal = true; ExitSignal = 9]"
    )
    assert job_outcome(ad).exit_code == 137


def test_held_job_keeps_its_reason() -> None:
    ad = classad2.ClassAd(
        '[ClusterId = 3; ProcId = 0; JobStatus = 5; HoldReason = "Error from slot: no such file"]'
    )
    outcome = job_outcome(ad)
    assert outcome.state is JobState.HELD
    assert outcome.hold_reason == "Error from slot: no such file"


def factory(total: int, following: int, paused: int = 0, qdate: int = 50) -> classad2.ClassAd:
    """The cluster ad of a late-materializing cluster: no ProcId."""
    return classad2.ClassAd(
        f'[ClusterId = 7; Owner = "alice"; RequestCpus = 1; RequestMemory = 2048;'
        f" RequestDisk = 2097152; Requirements = {REQS}; QDate = {qdate};"
        f" JobFactoryTotalProcs = {total}; TotalSubmitProcs = {total};"
        f" JobMaterializeNextProcId = {following}; JobMaterializePaused = {paused};"
        f" JobMaterializeLimit = 50; JobStatus = 1]"
    )


def test_procs_still_to_materialize_are_idle_demand_since_the_cluster_was_queued() -> None:
    materialized = [job(p, 1, entered=60 + p) for p in range(50)]
    snapshot = build_snapshot([factory(2000, 50), *materialized], [], now=1000.0)
    (demand,) = snapshot.demand  # the cluster ad's shape is the procs' shape
    assert demand.idle_jobs == 2000
    assert demand.idle_since[:1950] == (50.0,) * 1950  # the cluster's QDate, oldest first
    assert demand.idle_since[1950:] == tuple(float(60 + p) for p in range(50))
    (row,) = build_snapshot([factory(2000, 50), *materialized], [], now=0).queue
    assert row.idle == 2000


def test_finished_procs_are_not_counted_again() -> None:
    # 1990 procs materialized (and most of them done); 10 still to come, 5 idle in the queue.
    snapshot = build_snapshot([factory(2000, 1990), *[job(p, 1) for p in range(5)]], [], 0)
    assert snapshot.idle_jobs == 15
    assert build_snapshot([factory(2000, 2000)], [], 0).demand == ()


def test_a_paused_factory_is_no_demand() -> None:
    # held, removed or failed clusters pause their factory: nothing more will materialize
    for paused in (1, 2, 3):
        assert build_snapshot([factory(2000, 50, paused=paused)], [], 0).idle_jobs == 0


def test_daemon_start_times_from_their_own_ads() -> None:
    collector = classad2.ClassAd(
        '[MyType = "Collector"; Name = "cm"; MonitorSelfTime = 900; MonitorSelfAge = 300]'
    )
    schedd = classad2.ClassAd('[MyType = "Scheduler"; Name = "s1"; DaemonStartTime = 400]')
    other = classad2.ClassAd('[MyType = "Scheduler"; Name = "s2"; DaemonStartTime = 700]')
    assert daemon_starts([collector, schedd], None, now=1000.0) == (600.0, 400.0)
    assert daemon_starts([collector, schedd, other], "s1", now=1000.0) == (600.0, 400.0)
    assert daemon_starts([collector, schedd, other], None, now=1000.0) == (600.0, 700.0)
    # missing ads: as if just started, so absence is not trusted
    assert daemon_starts([], None, now=1000.0) == (1000.0, 1000.0)
    assert daemon_starts([schedd], "elsewhere", now=1000.0) == (1000.0, 1000.0)
