"""Requirements-aware matching: job Requirements as the schedd writes them vs flavor machine ads."""

from __future__ import annotations

import classad2
import pytest

from bursting.model import Demand, Flavor, JobShape
from bursting.policy.matching import (
    Matcher,
    Mismatch,
    Unmatched,
    classad_literal,
    describe,
    job_ad,
    machine_ad,
    provides_config,
    split_conjunction,
)

# What condor_submit writes for a vanilla job with should_transfer_files = YES.
STANDARD = (
    '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk)'
    " && (TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)"
    " && (TARGET.HasFileTransfer)"
)
CVMFS = f"(TARGET.HasCVMFS =?= true) && {STANDARD}"
GPU = f"{STANDARD} && (TARGET.GPUs >= RequestGPUs)"
IF_NEEDED = (
    '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk)'
    " && (TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)"
    " && ((TARGET.FileSystemDomain == MY.FileSystemDomain) || (TARGET.HasFileTransfer))"
)

SMALL = Flavor("small", 4, 16384, 50)
LARGE = Flavor("large", 16, 65536, 200)
GPU_FLAVOR = Flavor("gpu", 8, 32768, 100, gpus=2)
CLOUDS = [("private", SMALL), ("private", LARGE), ("public", SMALL), ("public", LARGE)]


def shape(requirements: str = STANDARD, cpus: int = 1, memory: int = 2000, **kw: int) -> JobShape:
    return JobShape(cpus, memory, kw.get("disk_mb", 1024), kw.get("gpus", 0), requirements)


@pytest.fixture
def matcher() -> Matcher:
    return Matcher("pool-a", {"private": {"HasCVMFS": True, "Site": "DESY"}})


def test_machine_ad_is_what_a_debian_worker_of_the_flavor_advertises() -> None:
    ad = machine_ad(LARGE, pool_id="pool-a", cloud="private", provides={"HasCVMFS": True})
    assert ad["Cpus"] == ad["TotalSlotCpus"] == 16
    assert ad["Memory"] == 65536
    assert ad["Disk"] == 200 * 1024 * 1024  # KiB, as a startd reports it
    assert (ad["Arch"], ad["OpSys"], ad["OpSysAndVer"]) == ("X86_64", "LINUX", "Debian13")
    assert ad["SlotType"] == "Partitionable" and ad["HasFileTransfer"] is True
    assert (ad["BurstingPool"], ad["BurstingCloud"], ad["BurstingFlavor"]) == (
        "pool-a",
        "private",
        "large",
    )
    assert ad["HasCVMFS"] is True
    assert "GPUs" not in ad  # HTCondor leaves GPUs undefined on a machine without any
    assert machine_ad(GPU_FLAVOR, pool_id="p", cloud="c", provides={})["GPUs"] == 2


def test_job_ad_carries_requests_in_htcondor_units() -> None:
    ad = job_ad(JobShape(2, 3000, 5 * 1024, 1, STANDARD))
    assert (ad["RequestCpus"], ad["RequestMemory"], ad["RequestGPUs"]) == (2, 3000, 1)
    assert ad["RequestDisk"] == 5 * 1024 * 1024
    big = machine_ad(LARGE, pool_id="p", cloud="c")
    assert big.matches(ad)  # HTCondor's own one-way match agrees with the matcher below
    assert not machine_ad(Flavor("tiny", 1, 1024, 1), pool_id="p", cloud="c").matches(ad)


@pytest.mark.parametrize("requirements", [STANDARD, IF_NEEDED, ""])
def test_standard_requirements_run_on_every_fitting_flavor(
    matcher: Matcher, requirements: str
) -> None:
    job = shape(requirements, cpus=4, memory=16000)
    assert all(matcher.can_run(job, cloud, flavor) for cloud, flavor in CLOUDS)
    assert matcher.why_not(job, CLOUDS) is None


def test_resources_are_checked_even_when_requirements_do_not_mention_them(
    matcher: Matcher,
) -> None:
    job = shape('(TARGET.Arch == "X86_64")', cpus=8)
    assert not matcher.can_run(job, "private", SMALL)
    assert matcher.can_run(job, "private", LARGE)


def test_a_cloud_that_provides_the_attribute_matches_others_do_not(matcher: Matcher) -> None:
    job = shape(CVMFS)
    assert matcher.can_run(job, "private", SMALL)
    assert not matcher.can_run(job, "public", SMALL)
    assert matcher.runnable_on(job, CLOUDS) == [("private", SMALL), ("private", LARGE)]


def test_unscoped_names_fall_back_to_the_machine_ad_as_in_matchmaking(matcher: Matcher) -> None:
    job = shape(f'(HasCVMFS =?= true) && (Site == "DESY") && {STANDARD}')
    assert matcher.can_run(job, "private", LARGE)
    assert not matcher.can_run(job, "public", LARGE)


def test_regexp_and_member_and_burst_tags(matcher: Matcher) -> None:
    tagged = shape(f'regexp("^priv", TARGET.BurstingCloud) && {STANDARD}')
    assert matcher.can_run(tagged, "private", SMALL)
    assert not matcher.can_run(tagged, "public", SMALL)
    listed = shape(f'member(TARGET.BurstingFlavor, {{"large", "xlarge"}}) && {STANDARD}')
    assert matcher.can_run(listed, "public", LARGE)
    assert not matcher.can_run(listed, "public", SMALL)
    pool = shape(f'(TARGET.BurstingPool == "pool-b") && {STANDARD}')
    assert not any(matcher.can_run(pool, cloud, flavor) for cloud, flavor in CLOUDS)


def test_gpu_jobs_need_a_gpu_flavor(matcher: Matcher) -> None:
    job = shape(GPU, gpus=1)
    assert not matcher.can_run(job, "public", LARGE)
    assert matcher.can_run(job, "public", GPU_FLAVOR)
    assert not matcher.can_run(shape(GPU, gpus=3), "public", GPU_FLAVOR)


def test_undefined_and_non_boolean_values_decide_like_htcondor(matcher: Matcher) -> None:
    undefined = shape(f"{STANDARD} && TARGET.NoSuchAttribute")
    assert not matcher.can_run(undefined, "private", LARGE)
    numeric = shape(f"{STANDARD} && (TARGET.Cpus - 1)")
    assert matcher.can_run(numeric, "private", LARGE)  # a nonzero number counts as true
    odd = shape(f'{STANDARD} && "yes"')  # a string operand of && is an error
    assert not matcher.can_run(odd, "private", LARGE)


def test_provides_can_override_the_default_platform() -> None:
    arm = Matcher("p", {"arm": {"Arch": "aarch64"}})
    job = shape(STANDARD)
    assert not arm.can_run(job, "arm", LARGE)
    assert arm.can_run(shape(STANDARD.replace("X86_64", "aarch64")), "arm", LARGE)


@pytest.mark.parametrize(
    ("job", "code", "text"),
    [
        (shape(cpus=64), Unmatched.TOO_MANY_CORES, "needs 64 cores, largest flavor has 16"),
        (
            shape(memory=100_000),
            Unmatched.TOO_MUCH_MEMORY,
            "needs 100000 MB memory, largest flavor has 65536 MB",
        ),
        (
            shape(disk_mb=300 * 1024),
            Unmatched.TOO_MUCH_DISK,
            "needs 307200 MB disk, largest flavor has 204800 MB",
        ),
        (shape(GPU, gpus=1), Unmatched.GPUS, "needs 1 GPU(s), no flavor has GPUs"),
        (
            shape("(TARGET.HasCVMFS =?= true) && (TARGET.Arch == "),
            Unmatched.UNPARSEABLE,
            "Requirements cannot be parsed",
        ),
        (
            shape(f"{STANDARD} && (TARGET.HasSingularity =?= true)"),
            Unmatched.REQUIREMENTS,
            "Requirements unmet: (TARGET.HasSingularity =?= true)",
        ),
    ],
)
def test_why_not_names_the_reason(
    matcher: Matcher, job: JobShape, code: Unmatched, text: str
) -> None:
    assert matcher.why_not(job, CLOUDS) == Mismatch(code, text)


def test_why_not_gpus_when_flavors_have_fewer(matcher: Matcher) -> None:
    reason = matcher.why_not(shape(GPU, gpus=4), [("public", GPU_FLAVOR)])
    assert reason == Mismatch(Unmatched.GPUS, "needs 4 GPU(s), largest flavor has 2")


def test_why_not_when_no_single_flavor_has_all_resources(matcher: Matcher) -> None:
    lean = Flavor("lean", 32, 8000, 100)
    fat = Flavor("fat", 2, 200_000, 100)
    reason = matcher.why_not(shape(cpus=16, memory=100_000), [("c", lean), ("c", fat)])
    assert reason is not None and reason.code is Unmatched.RESOURCES


def test_why_not_names_the_clause_that_fails_everywhere_not_one_that_fails_somewhere(
    matcher: Matcher,
) -> None:
    job = shape(f'(TARGET.BurstingCloud == "public") && (TARGET.HasEOS =?= true) && {STANDARD}')
    reason = matcher.why_not(job, CLOUDS)
    assert reason == Mismatch(
        Unmatched.REQUIREMENTS, "Requirements unmet: (TARGET.HasEOS =?= true)"
    )


def test_why_not_lists_each_flavors_failing_clause_when_none_fails_everywhere(
    matcher: Matcher,
) -> None:
    job = shape(f'(TARGET.BurstingCloud == "public") && (TARGET.Site == "DESY") && {STANDARD}')
    reason = matcher.why_not(job, CLOUDS)
    assert reason is not None and reason.code is Unmatched.REQUIREMENTS
    assert '(TARGET.Site == "DESY")' in reason.text
    assert '(TARGET.BurstingCloud == "public")' in reason.text


def test_why_not_with_no_usable_cloud(matcher: Matcher) -> None:
    reason = matcher.why_not(shape(), [])
    assert reason is not None and reason.code is Unmatched.NO_FLAVOR


def test_a_running_worker_matches_as_its_flavor_does(matcher: Matcher) -> None:
    # Free room on a worker of (public, large) counts only for shapes that match that flavor.
    assert matcher.can_run(shape(STANDARD), "public", LARGE)
    assert not matcher.can_run(shape(CVMFS), "public", LARGE)


def test_results_are_cached_per_shape_and_clause(matcher: Matcher) -> None:
    odd = "(TARGET.Memory - RequestMemory > 1000)"  # reads a request, not in the plain form
    job = shape(f"{CVMFS} && {odd}")
    assert matcher.can_run(job, "private", SMALL)
    # HasCVMFS, Arch, OpSys, HasFileTransfer and the odd clause; the three plain resource
    # comparisons are integer comparisons done without classad2.
    assert matcher.evaluations == 5
    matcher.can_run(job, "private", SMALL)
    matcher.why_not(job, [("private", SMALL)])
    assert matcher.evaluations == 5  # the same (shape, cloud, flavor): nothing new
    matcher.can_run(shape(f"{CVMFS} && {odd}", cpus=2), "private", SMALL)
    assert matcher.evaluations == 5  # no classad clause reads RequestCpus
    matcher.can_run(shape(f"{CVMFS} && {odd}", memory=3000), "private", SMALL)
    assert matcher.evaluations == 6  # only the clause reading RequestMemory
    matcher.can_run(job, "private", LARGE)
    assert matcher.evaluations == 7  # only the clause reading TARGET.Memory differs by flavor
    assert not matcher.can_run(job, "public", LARGE)
    assert matcher.evaluations == 8  # HasCVMFS: the public cloud does not provide it


@pytest.mark.parametrize("requirements", [STANDARD, CVMFS, GPU, IF_NEEDED])
def test_agrees_with_classad_matchmaking(matcher: Matcher, requirements: str) -> None:
    flavors = [*CLOUDS, ("public", GPU_FLAVOR), ("private", Flavor("tiny", 1, 1024, 1))]
    for cpus in (1, 4, 16):
        for memory in (1000, 16384, 40000):
            for gpus in (0, 1):
                job = shape(requirements, cpus=cpus, memory=memory, disk_mb=2048, gpus=gpus)
                for cloud, flavor in flavors:
                    ad = machine_ad(
                        flavor, pool_id="pool-a", cloud=cloud, provides=matcher.provides.get(cloud)
                    )
                    expected = ad.matches(job_ad(job)) and job.gpus <= flavor.gpus
                    assert matcher.can_run(job, cloud, flavor) is expected, (job, cloud, flavor)


def test_ten_thousand_shapes_share_few_evaluations(matcher: Matcher) -> None:
    shapes = [
        shape(STANDARD if i % 2 else CVMFS, cpus=1 + i % 4, memory=500 + i) for i in range(10_000)
    ]
    runnable = sum(matcher.can_run(s, cloud, flavor) for s in shapes for cloud, flavor in CLOUDS)
    assert runnable == 10_000 * 4 - 5_000 * 2  # CVMFS shapes cannot run on the public cloud
    assert matcher.evaluations < 2_000


def test_split_conjunction_respects_parentheses_and_strings() -> None:
    assert split_conjunction('(A && B) && regexp("x&&y", C) && {1, 2}') == [
        "(A && B)",
        'regexp("x&&y", C)',
        "{1, 2}",
    ]
    assert split_conjunction("A && B || C") == ["A && B || C"]
    assert split_conjunction("A && B ? C : D") == ["A && B ? C : D"]
    assert split_conjunction('A == "a\\"&&b" && B') == ['A == "a\\"&&b"', "B"]


def test_unrunnable_counts_jobs_per_reason_and_describe_says_why(matcher: Matcher) -> None:
    demand = [
        Demand(shape(CVMFS.replace("HasCVMFS", "HasEOS")), (1.0,) * 6),
        Demand(shape(cpus=64), (1.0,) * 2),
        Demand(shape(), (1.0,) * 50),
    ]
    counts = matcher.unrunnable(demand, CLOUDS)
    assert {reason.code: jobs for reason, jobs in counts.items()} == {
        Unmatched.REQUIREMENTS: 6,
        Unmatched.TOO_MANY_CORES: 2,
    }
    assert describe(counts) == (
        "6 idle jobs can never start: Requirements unmet: (TARGET.HasEOS =?= true)",
        "2 idle jobs can never start: needs 64 cores, largest flavor has 16",
    )


def test_provides_render_as_classad_literals_the_worker_advertises() -> None:
    rendered = provides_config({"HasCVMFS": True, "Site": 'D"ESY', "Slots": 3, "Speed": 1.5})
    assert rendered == {"HasCVMFS": "true", "Site": '"D\\"ESY"', "Slots": "3", "Speed": "1.5"}
    parsed = classad2.ClassAd("[" + "; ".join(f"{k} = {v}" for k, v in rendered.items()) + "]")
    assert parsed["Site"] == 'D"ESY' and parsed["HasCVMFS"] is True
    assert classad_literal(False) == "false"
    with pytest.raises(ValueError, match="not a valid ClassAd attribute name"):
        provides_config({"has-cvmfs": True})


@pytest.mark.parametrize(
    "value",
    ["true", "false", "1", "0", "0.5", "0.0", "undefined", "error", '"a"', "{1}", "[a = 1]"],
)
def test_clause_by_clause_agrees_with_classad_conjunction(matcher: Matcher, value: str) -> None:
    # The matcher decides each top-level clause on its own; that is exact only if `&&` is true
    # precisely when every operand is true or a nonzero number. Hold classad2 to it.
    ad = machine_ad(LARGE, pool_id="pool-a", cloud="private")
    for requirements in (f"(TARGET.Cpus > 1) && {value}", f"{value} && (TARGET.Cpus > 1)"):
        job = shape(requirements)
        assert matcher.can_run(job, "private", LARGE) is ad.matches(job_ad(job)), requirements
