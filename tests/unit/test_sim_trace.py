"""Trace readers: SWF with its -1 unknowns, condor_history -json, CSV; bad records are refused
with file, line and field."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bursting.model import JobShape
from bursting.sim.generate import Bursts, generate
from bursting.sim.readers import read_trace, write_csv
from bursting.sim.trace import JobDefaults, TraceError

SWF_HEADER = "; Version: 2.2\n; UnixStartTime: 1000000000\n;\n"


def swf_line(
    job: int, submit: int, run: int, procs: int, used_kb: int, req_procs: int, req_kb: int
) -> str:
    fields = [
        job,
        submit,
        5,
        run,
        procs,
        -1,
        used_kb,
        req_procs,
        3600,
        req_kb,
        1,
        3,
        1,
        -1,
        1,
        1,
        -1,
        -1,
    ]
    return " ".join(str(f) for f in fields) + "\n"


def test_swf_reads_jobs_with_unknown_fields(tmp_path: Path) -> None:
    path = tmp_path / "t.swf"
    path.write_text(
        SWF_HEADER
        + swf_line(1, 10, 100, 4, -1, -1, -1)  # memory unknown: the default per core
        + swf_line(2, 20, 50, -1, 1024, 2, -1)  # allocated unknown: requested; used memory
        + swf_line(3, 30, -1, 1, -1, 1, -1)  # never ran: skipped and counted
        + swf_line(4, 40, 10, 1, -1, 1, 4096)  # requested memory, KB per processor
    )
    trace = read_trace(path, JobDefaults(memory_mb_per_core=1000))
    assert [job.submit for job in trace.jobs] == [1000000010, 1000000020, 1000000040]
    assert trace.jobs[0].shape == JobShape(4, 4000)
    assert trace.jobs[1].shape == JobShape(2, 2)  # 1024 KB x 2 processors = 2 MB
    assert trace.jobs[2].shape == JobShape(1, 4)
    assert trace.jobs[1].runtime == 50
    assert sum(trace.skipped.values()) == 1


def test_swf_gzip_is_read(tmp_path: Path) -> None:
    path = tmp_path / "t.swf.gz"
    with gzip.open(path, "wt") as stream:
        stream.write(SWF_HEADER + swf_line(1, 0, 60, 1, -1, 1, -1))
    assert len(read_trace(path).jobs) == 1


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("1 10 5 abc 1 -1 -1 1 60 -1 1 1 1 -1 1 1 -1 -1", ["field 4", "run time", "not a number"]),
        ("1 10 5 60 1 -1 -7 1 60 -1 1 1 1 -1 1 1 -1 -1", ["field 7", "used memory", "-1"]),
        ("1 10 5 60 1 -1 -1 1 60", ["9 fields", "18"]),
        ("1 -1 5 60 1 -1 -1 1 60 -1 1 1 1 -1 1 1 -1 -1", ["field 2", "submit time"]),
        ("1 10 5 60 -1 -1 -1 -1 60 -1 1 1 1 -1 1 1 -1 -1", ["processors"]),
    ],
)
def test_swf_bad_record_names_file_line_and_field(
    tmp_path: Path, line: str, words: list[str]
) -> None:
    path = tmp_path / "bad.swf"
    path.write_text(SWF_HEADER + line + "\n")
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    message = str(caught.value)
    assert f"{path}:4" in message
    for word in words:
        assert word in message


def test_condor_history_json_array_and_lines(tmp_path: Path) -> None:
    ads = [
        {
            "ClusterId": 7,
            "ProcId": 0,
            "QDate": 1700000000,
            "RemoteWallClockTime": 120.0,
            "RequestCpus": 2,
            "RequestMemory": 3000,
            "RequestDisk": 2048,
            "Requirements": "/Expr((TARGET.HasCVMFS == true) && (TARGET.Memory >= RequestMemory))/",
        },
        {"QDate": 1700000100, "JobCurrentStartDate": 1700000200, "CompletionDate": 1700000260},
        {"QDate": 1700000050, "RemoteWallClockTime": 0},  # removed before it ran
    ]
    array = tmp_path / "history.json"
    array.write_text(json.dumps(ads, indent=1))
    lines = tmp_path / "history.jsonl"
    lines.write_text("\n".join(json.dumps(ad) for ad in ads))
    for path in (array, lines):
        trace = read_trace(path)
        first, second = trace.jobs
        assert first.shape == JobShape(
            2, 3000, 2, 0, "(TARGET.HasCVMFS == true) && (TARGET.Memory >= RequestMemory)"
        )
        assert first.runtime == 120.0
        assert second.runtime == 60.0 and second.shape.cpus == 1
        assert sum(trace.skipped.values()) == 1


def test_condor_history_bad_value_is_named(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    path.write_text(json.dumps([{"QDate": 1, "RemoteWallClockTime": 5, "RequestCpus": "many"}]))
    with pytest.raises(TraceError, match=r"ad 1: RequestCpus is 'many', not a number"):
        read_trace(path)
    path.write_text(json.dumps([{"RemoteWallClockTime": 5}]))
    with pytest.raises(TraceError, match="QDate is missing"):
        read_trace(path)


def test_csv_with_iso_times_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text(
        "# exported from our pool\n"
        "submit,runtime_seconds,cpus,memory_mb\n"
        "2026-01-01T00:00:10+00:00,60,4,\n"
        "1767225600,30,,512\n"
    )
    trace = read_trace(path, JobDefaults(memory_mb_per_core=100))
    assert [(j.submit, j.runtime) for j in trace.jobs] == [(1767225600, 30), (1767225610, 60)]
    assert trace.jobs[1].shape == JobShape(4, 400)
    assert trace.jobs[0].shape == JobShape(1, 512)


def test_csv_errors_name_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text("submit,runtime_seconds,cores\n1,2,3\n")
    with pytest.raises(TraceError, match=r"jobs.csv:1: .*unknown cores"):
        read_trace(path)
    path.write_text("submit,runtime_seconds,cpus\n1,60,2\nyesterday,60,1\n")
    with pytest.raises(TraceError, match=r"jobs.csv:3: submit: 'yesterday' is not a time"):
        read_trace(path)
    path.write_text("submit,runtime_seconds,cpus\n1,60,-2\n")
    with pytest.raises(TraceError, match=r"jobs.csv:2: cpus is -2"):
        read_trace(path)


def test_generated_trace_round_trips_through_csv(tmp_path: Path) -> None:
    trace = generate(Bursts(300, 2, burst_size=50), seed=3)
    assert trace.jobs == generate(Bursts(300, 2, burst_size=50), seed=3).jobs
    assert trace.jobs != generate(Bursts(300, 2, burst_size=50), seed=4).jobs
    path = tmp_path / "g.csv"
    write_csv(trace.jobs, path)
    back = read_trace(path)
    assert len(back.jobs) == 300
    assert [j.shape for j in back.jobs] == [j.shape for j in trace.jobs]
    assert all(abs(a.submit - b.submit) < 1e-3 for a, b in zip(back.jobs, trace.jobs, strict=True))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="file not found"):
        read_trace(tmp_path / "nope.swf")


def test_window_keeps_jobs_submitted_in_it_and_names_the_span_otherwise(tmp_path: Path) -> None:
    from bursting.sim.trace import parse_moment, window

    path = tmp_path / "jobs.csv"
    path.write_text(
        "submit,runtime_seconds\n2026-10-31T23:00:00,60\n2026-11-15,60\n2026-12-01,60\n"
    )
    trace = read_trace(path)
    begin, end = parse_moment("2026-11-01", "--start"), parse_moment("2026-12-01", "--end")
    november = window(trace, begin, end)
    assert [j.submit for j in november.jobs] == [parse_moment("2026-11-15", "x")]
    with pytest.raises(TraceError, match=r"no job submitted in the window.*2026-10-31 23:00"):
        window(trace, parse_moment("2027-01-01", "--start"), None)
    with pytest.raises(TraceError, match="--start: 'last month' is not a time"):
        parse_moment("last month", "--start")


def test_condor_history_expressions_are_evaluated_against_the_ad(tmp_path: Path) -> None:
    memory = "/Expr(ifThenElse(MemoryUsage =!= undefined, MemoryUsage * 2, 1000))/"
    ads = [
        {"QDate": 1, "RemoteWallClockTime": 60, "MemoryUsage": 700, "RequestMemory": memory},
        {"QDate": 2, "RemoteWallClockTime": 60, "RequestMemory": memory, "RequestCpus": 2},
        {"QDate": 3, "RemoteWallClockTime": 60, "RequestMemory": "/Expr(Undefined)/"},
    ]
    path = tmp_path / "h.json"
    path.write_text(json.dumps(ads))
    trace = read_trace(path, JobDefaults(memory_mb_per_core=300))
    assert [j.shape.memory_mb for j in trace.jobs] == [1400, 1000, 300]
