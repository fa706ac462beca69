"""The trace readers: SWF (Parallel Workloads Archive), `condor_history -json`, a simple CSV.

Every reader returns the same `Trace`. A record that cannot be a job raises TraceError naming
the file, the line and the field; a job that never ran is skipped and counted.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import classad2

from bursting.model import JobShape
from bursting.sim.trace import (
    DEFAULT_EPOCH,
    JobDefaults,
    Trace,
    TraceError,
    TraceJob,
    open_text,
    parse_moment,
)


def detect_format(path: Path) -> str:
    """swf, json or csv, from the name, else from the first meaningful character."""
    name = path.name.lower().removesuffix(".gz")
    for suffix, kind in ((".swf", "swf"), (".json", "json"), (".jsonl", "json"), (".csv", "csv")):
        if name.endswith(suffix):
            return kind
    with open_text(path) as stream:
        for line in stream:
            text = line.strip()
            if not text:
                continue
            if text[0] in "[{":
                return "json"
            if text[0] == ";" or re.match(r"^-?\d+(\.\d+)?\s+-?\d", text):
                return "swf"
            return "csv"
    raise TraceError(f"{path}: empty trace; pass a file with at least one job")


def read_trace(path: str | Path, defaults: JobDefaults | None = None, fmt: str = "auto") -> Trace:
    """Read a trace of any supported format; jobs come back sorted by submit time."""
    file = Path(path).expanduser()
    defaults = defaults or JobDefaults()
    kind = detect_format(file) if fmt == "auto" else fmt
    readers = {"swf": read_swf, "json": read_condor_json, "csv": read_csv}
    if kind not in readers:
        raise TraceError(f"{file}: unknown trace format {kind!r}; use swf, json or csv")
    trace = readers[kind](file, defaults)
    trace.jobs.sort(key=lambda job: job.submit)
    if not trace.jobs:
        why = ", ".join(f"{n} {reason}" for reason, n in trace.skipped.items()) or "no records"
        raise TraceError(f"{file}: no job to replay ({why})")
    return trace


# ----- SWF -----
SWF_FIELDS = (
    "job number",
    "submit time",
    "wait time",
    "run time",
    "allocated processors",
    "average cpu time",
    "used memory",
    "requested processors",
    "requested time",
    "requested memory",
    "status",
    "user",
    "group",
    "executable",
    "queue",
    "partition",
    "preceding job",
    "think time",
)


def _swf_number(where: str, text: str, column: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(
            f"{where}: field {column + 1} ({SWF_FIELDS[column]}) is {text!r}, not a number"
        ) from None
    if (value < 0 and value != -1) or math.isnan(value):
        raise TraceError(
            f"{where}: field {column + 1} ({SWF_FIELDS[column]}) is {text}; "
            "only -1 (unknown) may be negative"
        )
    return value


def read_swf(path: Path, defaults: JobDefaults) -> Trace:
    """Standard Workload Format: one job per line, 18 numbers, -1 unknown; `;` header lines.
    Submit times are relative to the header's UnixStartTime. Memory fields are KB per processor."""
    jobs: list[TraceJob] = []
    skipped: dict[str, int] = {}
    epoch = DEFAULT_EPOCH
    with open_text(path) as stream:
        for number, line in enumerate(stream, 1):
            text = line.strip()
            if not text:
                continue
            if text.startswith(";"):
                found = re.match(r";\s*UnixStartTime:\s*(\d+)", text)
                if found:
                    epoch = float(found[1])
                continue
            job = _swf_job(f"{path}:{number}", text.split(), epoch, defaults, skipped)
            if job is not None:
                jobs.append(job)
    return Trace(jobs, str(path), skipped)


def _swf_job(
    where: str, parts: list[str], epoch: float, defaults: JobDefaults, skipped: dict[str, int]
) -> TraceJob | None:
    if len(parts) != len(SWF_FIELDS):
        raise TraceError(
            f"{where}: {len(parts)} fields, SWF has {len(SWF_FIELDS)}; is this an SWF file?"
        )
    values = [_swf_number(where, text, column) for column, text in enumerate(parts[:11])]
    submit, runtime = values[1], values[3]
    if submit == -1:
        raise TraceError(f"{where}: field 2 (submit time) is -1; a job needs a submit time")
    if runtime <= 0:
        reason = "never ran (run time unknown or 0)"
        skipped[reason] = skipped.get(reason, 0) + 1
        return None
    cores = values[7] if values[7] > 0 else values[4]
    if cores <= 0:
        raise TraceError(
            f"{where}: fields 8 and 5 (requested and allocated processors) are both unknown; "
            "a job needs a processor count"
        )
    memory_kb = values[9] if values[9] > 0 else values[6]
    cpus = int(cores)
    memory_mb = (
        math.ceil(memory_kb * cpus / 1024) if memory_kb > 0 else defaults.memory_mb_per_core * cpus
    )
    shape = JobShape(cpus, max(1, memory_mb), defaults.disk_mb)
    return TraceJob(epoch + submit, runtime, shape, parts[0])


# ----- condor_history -json -----
_EXPRESSION = re.compile(r"/Expr\((.*)\)/", re.DOTALL)  # how -json prints an expression


def _condor_ads(path: Path) -> Iterator[tuple[int, object]]:
    """The ads of a `condor_history -json` array, or of JSON lines (one ad per line)."""
    with open_text(path) as stream:
        text = stream.read()
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            ads = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        for index, ad in enumerate(ads):
            yield index + 1, ad
        return
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise TraceError(f"{path}:{number}: invalid JSON ({exc.msg})") from None


def _expression(value: object) -> str:
    """condor_history -json prints expressions as "/Expr(...)/"; plain strings are kept."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    found = _EXPRESSION.fullmatch(value)
    return found[1] if found else value


def _ad_number(where: str, ad: dict[str, object], name: str, default: float | None) -> float:
    value = ad.get(name)
    if isinstance(value, str) and _EXPRESSION.fullmatch(value):
        value = _evaluate(ad, _expression(value))  # e.g. RequestMemory from MemoryUsage
    if value is None:
        if default is None:
            raise TraceError(f"{where}: {name} is missing; condor_history must print it")
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TraceError(f"{where}: {name} is {value!r}, not a number")
    return float(value)


def _evaluate(ad: dict[str, object], text: str) -> float | None:
    """An attribute printed as an expression (RequestMemory often is), evaluated against the
    ad's plain values as the schedd would; None if it does not come out a number."""
    plain = {
        key: value
        for key, value in ad.items()
        if isinstance(value, (bool, int, float))
        or (isinstance(value, str) and not _EXPRESSION.fullmatch(value))
    }
    try:
        result = classad2.ExprTree(text).eval(scope=classad2.ClassAd(plain))
    except (classad2.ClassAdException, ValueError, TypeError):
        return None
    if isinstance(result, (classad2.Value, bool)):
        return None
    return float(result) if isinstance(result, (int, float)) else None


def read_condor_json(path: Path, defaults: JobDefaults) -> Trace:
    """`condor_history -json` (an array of job ads) or JSON lines: QDate, the run time
    (RemoteWallClockTime, else CompletionDate - JobCurrentStartDate), RequestCpus/Memory/Disk/
    GPUs and Requirements. Jobs that never started are skipped."""
    jobs: list[TraceJob] = []
    skipped: dict[str, int] = {}
    for number, ad in _condor_ads(path):
        where = f"{path}: ad {number}"
        if not isinstance(ad, dict):
            raise TraceError(f"{where}: not a job ad (a JSON object)")
        submit = _ad_number(where, ad, "QDate", None)
        runtime = _ad_number(where, ad, "RemoteWallClockTime", 0.0)
        if runtime <= 0:
            started = _ad_number(where, ad, "JobCurrentStartDate", 0.0)
            ended = _ad_number(where, ad, "CompletionDate", 0.0)
            runtime = ended - started if started > 0 and ended > started else 0.0
        if runtime <= 0:
            reason = "never ran (no wall clock time)"
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        cpus = int(_ad_number(where, ad, "RequestCpus", 1))
        memory = _ad_number(where, ad, "RequestMemory", defaults.memory_mb_per_core * cpus)
        disk_kib = _ad_number(where, ad, "RequestDisk", defaults.disk_mb * 1024)
        gpus = int(_ad_number(where, ad, "RequestGPUs", 0))
        if cpus < 1:
            raise TraceError(f"{where}: RequestCpus is {cpus}; must be >= 1")
        shape = JobShape(
            cpus,
            max(1, int(memory)),
            math.ceil(disk_kib / 1024),
            gpus,
            _expression(ad.get("Requirements")),
        )
        ident = f"{ad.get('ClusterId', number)}.{ad.get('ProcId', 0)}"
        jobs.append(TraceJob(submit, runtime, shape, ident))
    return Trace(jobs, str(path), skipped)


# ----- CSV -----
CSV_COLUMNS = ("submit", "runtime_seconds", "cpus", "memory_mb", "disk_mb", "gpus", "requirements")
CSV_REQUIRED = ("submit", "runtime_seconds")


def _csv_int(where: str, row: dict[str, str], name: str, default: int) -> int:
    text = (row.get(name) or "").strip()
    if not text:
        return default
    try:
        value = int(float(text))
    except ValueError:
        raise TraceError(f"{where}: {name} is {text!r}, not a number") from None
    if value < 0:
        raise TraceError(f"{where}: {name} is {value}; must be >= 0")
    return value


def read_csv(path: Path, defaults: JobDefaults) -> Trace:
    """A header line naming the columns (submit, runtime_seconds required; cpus, memory_mb,
    disk_mb, gpus, requirements optional), then one job per line."""
    jobs: list[TraceJob] = []
    skipped: dict[str, int] = {}
    with open_text(path) as stream:
        lines = list(stream)
    skip = 0
    while skip < len(lines) and (lines[skip].startswith("#") or not lines[skip].strip()):
        skip += 1  # comments above the header
    rows = csv.DictReader(_data_lines(lines[skip:]))
    names = [name.strip() for name in rows.fieldnames or ()]
    missing = [name for name in CSV_REQUIRED if name not in names]
    unknown = [name for name in names if name not in CSV_COLUMNS]
    if missing or unknown:
        raise TraceError(
            f"{path}:{skip + 1}: header {', '.join(names) or '(empty)'}: "
            + (f"missing {', '.join(missing)}; " if missing else "")
            + (f"unknown {', '.join(unknown)}; " if unknown else "")
            + f"columns are {', '.join(CSV_COLUMNS)}"
        )
    for row in rows:
        where = f"{path}:{skip + rows.line_num}"
        row = {key.strip(): value for key, value in row.items() if key}
        submit = parse_moment((row.get("submit") or "").strip(), f"{where}: submit")
        try:
            runtime = float(row.get("runtime_seconds") or "")
        except ValueError:
            raise TraceError(
                f"{where}: runtime_seconds is {row.get('runtime_seconds')!r}, not a number"
            ) from None
        if runtime <= 0:
            skipped["never ran (runtime_seconds <= 0)"] = (
                skipped.get("never ran (runtime_seconds <= 0)", 0) + 1
            )
            continue
        cpus = _csv_int(where, row, "cpus", 1)
        if cpus < 1:
            raise TraceError(f"{where}: cpus is {cpus}; must be >= 1")
        memory = _csv_int(where, row, "memory_mb", defaults.memory_mb_per_core * cpus)
        shape = JobShape(
            cpus,
            max(1, memory),
            _csv_int(where, row, "disk_mb", defaults.disk_mb),
            _csv_int(where, row, "gpus", 0),
            (row.get("requirements") or "").strip(),
        )
        jobs.append(TraceJob(submit, runtime, shape, str(len(jobs) + 1)))
    return Trace(jobs, str(path), skipped)


def _data_lines(stream: Iterable[str]) -> Iterator[str]:
    """Lines as csv reads them; `#` comment lines become empty so line numbers stay true."""
    for line in stream:
        yield "\n" if line.startswith("#") else line


def write_csv(jobs: Iterable[TraceJob], path: Path) -> None:
    """A trace in the simple CSV format (what the generator and tests write)."""
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_COLUMNS)
        for job in jobs:
            shape = job.shape
            writer.writerow(
                [
                    f"{job.submit:.3f}",
                    f"{job.runtime:.3f}",
                    shape.cpus,
                    shape.memory_mb,
                    shape.disk_mb,
                    shape.gpus,
                    shape.requirements,
                ]
            )
