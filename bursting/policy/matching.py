"""Would a job of this shape run on a burst worker of that flavor? Requirements vs machine ads.

Pure: each job shape's `Requirements` is evaluated with classad2 against the machine ad a worker
of each (cloud, flavor) advertises, so planning agrees with HTCondor's own matchmaking. Results
are cached per (shape, cloud, flavor) and, underneath, per top-level `&&` clause and the few
attribute values that clause reads, so 10k shapes share a handful of real evaluations.

Assumed worker: Debian trixie's HTCondor on x86_64, one partitionable slot sized to the flavor
(contextualize.py), so a fresh worker's slot offers the whole flavor. A cloud's `provides:` map is
advertised verbatim by the worker's configuration (see `provides_config`) and may override the
defaults here (say Arch "aarch64").
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import classad2

# HTCondor's own ClassAd functions (split, stringListSize, splitSlotName, ...) are registered in
# classad2 only once the htcondor2 bindings are loaded; without them the clause condor_submit adds
# by default, `versionGE(split(TARGET.CondorVersion)[1], ...) || ...`, is an error and every job
# would look unrunnable. Loading the bindings contacts no daemon and reads no file.
import htcondor2  # noqa: F401

from bursting.model import Demand, Flavor, JobShape

Scalar = bool | int | float | str
Candidate = tuple[str, Flavor]  # (cloud name, flavor)

# What Debian 13's (trixie) HTCondor, x86_64, advertises about its platform. CondorVersion is
# read by the default Requirements newer submitters add: `(versionGE(split(TARGET.CondorVersion)
# [1], "25.12.0") || (TARGET.Disk >= RequestDisk))` is an error, never true, without it.
PLATFORM: dict[str, Scalar] = {
    "CondorVersion": "$CondorVersion: 23.9.6 2026-07-12 PackageID: 23.9.6+dfsg-2.1+b10 $",
    "CondorPlatform": "$CondorPlatform: X86_64-Debian_13 $",
    "Arch": "X86_64",
    "OpSys": "LINUX",
    "OpSysAndVer": "Debian13",
    "OpSysName": "Debian",
    "OpSysShortName": "Debian",
    "OpSysLegacy": "LINUX",
    "OpSysMajorVer": 13,
    "OpSysVer": 1300,
}
MAX_CACHE_ENTRIES = 500_000  # a crude bound: the caches start over rather than grow forever

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ATTR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Job attributes a clause may read, in the order of `_job_values`.
_CANONICAL_JOB_ATTRS = ("RequestCpus", "RequestMemory", "RequestDisk", "RequestGPUs")
_JOB_ATTRS = tuple(name.lower() for name in _CANONICAL_JOB_ATTRS)
# `(TARGET.Memory >= RequestMemory)` and its kin, the bulk of every job's Requirements: compared
# in Python when both sides are integers (what classad2 would answer), evaluated otherwise.
_RESOURCE_CLAUSE = re.compile(
    r"^\(?\s*TARGET\.([A-Za-z_]\w*)\s*>=\s*(?:MY\.)?(Request(?:Cpus|Memory|Disk|GPUs))\s*\)?$",
    re.IGNORECASE,
)


class Unmatched(enum.Enum):
    """Why no flavor of any usable cloud can run a shape: a small fixed set, safe as a label."""

    NO_FLAVOR = "no_flavor"  # no usable cloud offers any flavor right now
    GPUS = "gpus"
    TOO_MANY_CORES = "too_many_cores"
    TOO_MUCH_MEMORY = "too_much_memory"
    TOO_MUCH_DISK = "too_much_disk"
    RESOURCES = "resources"  # each resource fits some flavor, but no flavor fits them all
    UNPARSEABLE = "unparseable"
    REQUIREMENTS = "requirements"


@dataclass(frozen=True)
class Mismatch:
    """The reason code and a short human text naming the detail."""

    code: Unmatched
    text: str

    def __str__(self) -> str:
        return self.text


def machine_attributes(
    flavor: Flavor, *, pool_id: str, cloud: str, provides: Mapping[str, Scalar] | None = None
) -> dict[str, Scalar]:
    """The partitionable slot a fresh worker of `flavor` advertises (Memory MB, Disk KiB)."""
    disk_kib = flavor.disk_gb * 1024 * 1024
    attrs: dict[str, Scalar] = {
        "Cpus": flavor.cpus,
        "TotalCpus": flavor.cpus,
        "TotalSlotCpus": flavor.cpus,
        "Memory": flavor.memory_mb,
        "TotalMemory": flavor.memory_mb,
        "TotalSlotMemory": flavor.memory_mb,
        "Disk": disk_kib,
        "TotalDisk": disk_kib,
        "TotalSlotDisk": disk_kib,
        **PLATFORM,
        "HasFileTransfer": True,
        "SlotType": "Partitionable",
        "PartitionableSlot": True,
        "Start": True,
        "BurstingPool": pool_id,
        "BurstingCloud": cloud,
        "BurstingFlavor": flavor.name,
    }
    if flavor.gpus:  # without GPUs HTCondor leaves these undefined, so GPU jobs cannot match
        attrs.update(GPUs=flavor.gpus, TotalGPUs=flavor.gpus, TotalSlotGPUs=flavor.gpus)
    attrs.update(provides or {})
    return attrs


def machine_ad(
    flavor: Flavor, *, pool_id: str, cloud: str, provides: Mapping[str, Scalar] | None = None
) -> classad2.ClassAd:
    """`machine_attributes` as a ClassAd."""
    return classad2.ClassAd(
        machine_attributes(flavor, pool_id=pool_id, cloud=cloud, provides=provides)
    )


def classad_literal(value: Scalar) -> str:
    """A Python value as a ClassAd literal, as a worker's HTCondor configuration writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def provides_config(provides: Mapping[str, Scalar]) -> dict[str, str]:
    """Config lines (name -> ClassAd literal) that make a worker advertise its cloud's map."""
    for name in provides:
        if not _ATTR_NAME.match(name):
            raise ValueError(f"provides: {name!r} is not a valid ClassAd attribute name")
    return {name: classad_literal(value) for name, value in provides.items()}


def job_ad(shape: JobShape) -> classad2.ClassAd:
    """The job side of a match: its requests (RequestDisk in KiB) and its Requirements; raises
    classad2.ClassAdException if the Requirements cannot be parsed."""
    ad = classad2.ClassAd(dict(zip(_CANONICAL_JOB_ATTRS, _job_values(shape), strict=True)))
    if shape.requirements.strip():
        ad["Requirements"] = classad2.ExprTree(shape.requirements)
    return ad


def _job_values(shape: JobShape) -> tuple[int, int, int, int]:
    return (shape.cpus, shape.memory_mb, shape.disk_mb * 1024, shape.gpus)


def split_conjunction(text: str) -> list[str]:
    """Top-level `&&` clauses of an expression, or the whole text if `||` or `?:` sits at the top
    (those bind looser than `&&`). Respects parentheses, brackets, braces and string literals."""
    clauses, depth, start, i, top_level_or = [], 0, 0, 0, False
    while i < len(text):
        char = text[i]
        if char == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith("&&", i):
            clauses.append(text[start:i])
            start = i + 2
            i += 1
        elif depth == 0 and (text.startswith("||", i) or char == "?"):
            top_level_or = True
        i += 1
    clauses.append(text[start:])
    parts = [clause.strip() for clause in clauses]
    if top_level_or or depth != 0 or not all(parts):
        return [text.strip()]
    return parts


class _Clause:
    """One top-level clause, parsed once, with what it reads: job fields and lowercase words."""

    __slots__ = ("compare", "expr", "job_fields", "text", "words")

    def __init__(self, text: str) -> None:
        self.text = text
        self.expr = classad2.ExprTree(text)
        words = {word.lower() for word in _WORD.findall(text)}
        self.job_fields = tuple(i for i, name in enumerate(_JOB_ATTRS) if name in words)
        self.words = tuple(sorted(words - set(_JOB_ATTRS)))
        # (machine attribute, job field index) when the clause is `TARGET.X >= RequestY`.
        self.compare: tuple[str, int] | None = None
        found = _RESOURCE_CLAUSE.match(text)
        if found and found[0].count("(") == found[0].count(")"):
            self.compare = (found[1].lower(), _JOB_ATTRS.index(found[2].lower()))


class _Requirements:
    """A Requirements text parsed once: its clauses, and the unscoped names to alias."""

    __slots__ = ("aliases", "clauses", "parsed")

    def __init__(self, text: str) -> None:
        self.clauses: tuple[_Clause, ...] = ()
        self.aliases: tuple[str, ...] = ()
        self.parsed = True
        if not text.strip():
            return
        try:
            whole = classad2.ExprTree(text)
            self.clauses = tuple(_Clause(part) for part in split_conjunction(text))
        except classad2.ClassAdException:
            self.parsed = False
            return
        # HTCondor's matchmaking looks a name the job ad lacks up in the machine ad.
        template = classad2.ClassAd(dict.fromkeys(_CANONICAL_JOB_ATTRS, 0))
        refs = template.externalRefs(whole)
        self.aliases = tuple(name for name in refs if name and "." not in name)


@dataclass(frozen=True)
class _Profile:
    """Requirements against one machine: settled clauses folded, the rest left per shape."""

    never: bool  # a clause that reads no request is not true here
    compares: tuple[tuple[int, int], ...]  # (machine's integer, job field): offered >= asked
    dynamic: tuple[_Clause, ...]  # clauses that read requests: evaluated per request values


def _truthy(value: object) -> bool:
    """How `&&` and matchmaking read a value: true, or a nonzero number. A conjunction is true
    exactly when each clause is, so clauses can be decided (and cached) one by one."""
    if isinstance(value, classad2.Value):  # undefined, error (an int subclass: check first)
        return False
    if isinstance(value, bool):
        return value
    return isinstance(value, (int, float)) and value != 0


class Matcher:
    """Evaluates shapes against the machine ads of (cloud, flavor); cached, so keep one around.

    `provides` maps a cloud name to the attributes its workers advertise. A running worker of a
    known (cloud, flavor) matches exactly what a fresh one would: `can_run` answers for both;
    whether its free room fits is the caller's resource check. Flavor names are unique per cloud.
    """

    def __init__(self, pool_id: str, provides: Mapping[str, Mapping[str, Scalar]] | None = None):
        self.pool_id = pool_id
        self.provides = {cloud: dict(attrs) for cloud, attrs in (provides or {}).items()}
        self.evaluations = 0  # classad evaluations actually performed (cache misses)
        self._machines: dict[tuple[str, str], tuple[classad2.ClassAd, dict[str, Scalar]]] = {}
        self._requirements: dict[str, _Requirements] = {}
        self._profiles: dict[tuple[str, str, str], _Profile] = {}
        self._runs: dict[tuple[JobShape, str, str], bool] = {}
        self._values: dict[tuple[_Clause, tuple[int, ...], tuple[object, ...]], object] = {}
        self._verdicts: dict[tuple[JobShape, tuple[tuple[str, str], ...]], Mismatch | None] = {}

    def can_run(self, shape: JobShape, cloud: str, flavor: Flavor) -> bool:
        """Whether a worker of this flavor on this cloud could ever run a job of this shape."""
        key = (shape, cloud, flavor.name)
        known = self._runs.get(key)
        if known is None:
            if len(self._runs) > MAX_CACHE_ENTRIES:
                self._runs.clear()
            known = self._runs[key] = self._fits(shape, flavor) and self._meets(
                shape, cloud, flavor
            )
        return known

    def runnable_on(self, shape: JobShape, candidates: Sequence[Candidate]) -> list[Candidate]:
        """The candidates that could run the shape, in the order given."""
        return [
            (cloud, flavor) for cloud, flavor in candidates if self.can_run(shape, cloud, flavor)
        ]

    def why_not(self, shape: JobShape, candidates: Sequence[Candidate]) -> Mismatch | None:
        """None if some candidate can run the shape; otherwise the first reason that holds."""
        return self._why_not(shape, candidates, tuple((c, f.name) for c, f in candidates))

    def unrunnable(
        self, demand: Iterable[Demand], candidates: Sequence[Candidate]
    ) -> dict[Mismatch, int]:
        """Idle jobs no candidate can run, counted per reason (for the plan, log and status)."""
        names = tuple((cloud, flavor.name) for cloud, flavor in candidates)
        counts: dict[Mismatch, int] = {}
        for entry in demand:
            reason = self._why_not(entry.shape, candidates, names)
            if reason is not None:
                counts[reason] = counts.get(reason, 0) + entry.idle_jobs
        return counts

    # -- internals -------------------------------------------------------------------------

    def _why_not(
        self, shape: JobShape, candidates: Sequence[Candidate], names: tuple[tuple[str, str], ...]
    ) -> Mismatch | None:
        key = (shape, names)
        if key in self._verdicts:
            return self._verdicts[key]
        if len(self._verdicts) > MAX_CACHE_ENTRIES:
            self._verdicts.clear()
        verdict = self._verdicts[key] = self._diagnose(shape, candidates)
        return verdict

    def _diagnose(self, shape: JobShape, candidates: Sequence[Candidate]) -> Mismatch | None:
        if any(self.can_run(shape, cloud, flavor) for cloud, flavor in candidates):
            return None
        flavors = [flavor for _, flavor in candidates]
        if not flavors:
            return Mismatch(Unmatched.NO_FLAVOR, "no usable cloud offers a flavor")
        most = max(flavor.gpus for flavor in flavors)
        if shape.gpus > most:
            detail = f"largest flavor has {most}" if most else "no flavor has GPUs"
            return Mismatch(Unmatched.GPUS, f"needs {shape.gpus} GPU(s), {detail}")
        most = max(flavor.cpus for flavor in flavors)
        if shape.cpus > most:
            text = f"needs {shape.cpus} cores, largest flavor has {most}"
            return Mismatch(Unmatched.TOO_MANY_CORES, text)
        most = max(flavor.memory_mb for flavor in flavors)
        if shape.memory_mb > most:
            text = f"needs {shape.memory_mb} MB memory, largest flavor has {most} MB"
            return Mismatch(Unmatched.TOO_MUCH_MEMORY, text)
        most = max(flavor.disk_gb for flavor in flavors) * 1024
        if shape.disk_mb > most:
            text = f"needs {shape.disk_mb} MB disk, largest flavor has {most} MB"
            return Mismatch(Unmatched.TOO_MUCH_DISK, text)
        fitting = [(cloud, flavor) for cloud, flavor in candidates if self._fits(shape, flavor)]
        if not fitting:
            text = (
                f"needs {shape.cpus} cores, {shape.memory_mb} MB memory, {shape.disk_mb} MB disk"
                " together; no flavor has them all"
            )
            return Mismatch(Unmatched.RESOURCES, text)
        requirements = self._parsed(shape.requirements)
        if not requirements.parsed:
            return Mismatch(Unmatched.UNPARSEABLE, "Requirements cannot be parsed")
        return Mismatch(
            Unmatched.REQUIREMENTS, f"Requirements unmet: {self._culprit(shape, fitting)}"
        )

    @staticmethod
    def _fits(shape: JobShape, flavor: Flavor) -> bool:
        return (
            shape.cpus <= flavor.cpus
            and shape.memory_mb <= flavor.memory_mb
            and shape.disk_mb <= flavor.disk_gb * 1024
            and shape.gpus <= flavor.gpus
        )

    def _parsed(self, text: str) -> _Requirements:
        parsed = self._requirements.get(text)
        if parsed is None:
            parsed = self._requirements[text] = _Requirements(text)
        return parsed

    def _machine(self, cloud: str, flavor: Flavor) -> tuple[classad2.ClassAd, dict[str, Scalar]]:
        known = self._machines.get((cloud, flavor.name))
        if known is None:
            attrs = machine_attributes(
                flavor, pool_id=self.pool_id, cloud=cloud, provides=self.provides.get(cloud)
            )
            lowered = {name.lower(): value for name, value in attrs.items()}
            known = self._machines[(cloud, flavor.name)] = (classad2.ClassAd(attrs), lowered)
        return known

    def _meets(self, shape: JobShape, cloud: str, flavor: Flavor) -> bool:
        """The job's Requirements, evaluated with the machine ad as TARGET."""
        requirements = self._parsed(shape.requirements)
        if not requirements.parsed:
            return False
        key = (shape.requirements, cloud, flavor.name)
        profile = self._profiles.get(key)
        if profile is None:
            profile = self._profiles[key] = self._profile(requirements, cloud, flavor)
        if profile.never:
            return False
        values = _job_values(shape)
        for offered, field in profile.compares:  # a plain loop: this is the hot path
            if offered < values[field]:
                return False
        return not profile.dynamic or all(
            _truthy(self._value(clause, requirements, values, cloud, flavor))
            for clause in profile.dynamic
        )

    def _profile(self, requirements: _Requirements, cloud: str, flavor: Flavor) -> _Profile:
        lowered = self._machine(cloud, flavor)[1]
        compares, dynamic, never = [], [], False
        for clause in requirements.clauses:
            offered = lowered.get(clause.compare[0]) if clause.compare else 0
            if clause.compare and type(offered) is int:
                compares.append((offered, clause.compare[1]))
            elif clause.compare and offered is None:
                never = True  # TARGET.X undefined: the comparison is undefined, never true
            elif clause.job_fields:
                dynamic.append(clause)
            else:
                never = never or not _truthy(
                    self._value(clause, requirements, (0, 0, 0, 0), cloud, flavor)
                )
        return _Profile(never, tuple(compares), tuple(dynamic))

    def _value(
        self,
        clause: _Clause,
        requirements: _Requirements,
        values: tuple[int, int, int, int],
        cloud: str,
        flavor: Flavor,
    ) -> object:
        """One clause's value, cached per the request and machine values it reads."""
        machine, lowered = self._machine(cloud, flavor)
        key = (
            clause,
            tuple(values[i] for i in clause.job_fields),
            tuple(lowered.get(word) for word in clause.words),
        )
        if key in self._values:
            return self._values[key]
        if len(self._values) > MAX_CACHE_ENTRIES:
            self._values.clear()
        scope = classad2.ClassAd(dict(zip(_CANONICAL_JOB_ATTRS, values, strict=True)))
        for name in requirements.aliases:
            scope[name] = classad2.ExprTree(f"TARGET.{name}")
        self.evaluations += 1
        value = self._values[key] = clause.expr.eval(scope=scope, target=machine)
        return value

    def _holds(
        self,
        clause: _Clause,
        requirements: _Requirements,
        values: tuple[int, int, int, int],
        cloud: str,
        flavor: Flavor,
    ) -> bool:
        if clause.compare:
            offered = self._machine(cloud, flavor)[1].get(clause.compare[0])
            if offered is None or type(offered) is int:
                return offered is not None and offered >= values[clause.compare[1]]
        return _truthy(self._value(clause, requirements, values, cloud, flavor))

    def _culprit(self, shape: JobShape, fitting: Sequence[Candidate]) -> str:
        """The first clause true on no fitting flavor; else each flavor's first false clause."""
        requirements = self._parsed(shape.requirements)
        values = _job_values(shape)
        failing = [
            [
                clause.text
                for clause in requirements.clauses
                if not self._holds(clause, requirements, values, cloud, flavor)
            ]
            for cloud, flavor in fitting
        ]
        for clause in requirements.clauses:
            if all(clause.text in texts for texts in failing):
                return clause.text
        return "; ".join(list(dict.fromkeys(texts[0] for texts in failing if texts))[:3])


def describe(counts: Mapping[Mismatch, int]) -> tuple[str, ...]:
    """One line per reason, most jobs first: "6 idle jobs can never start: <reason>"."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0].code.value, item[0].text))
    return tuple(
        f"{jobs:,} idle job{'s' if jobs != 1 else ''} can never start: {reason.text}"
        for reason, jobs in ranked
    )
