"""The HTCondor backend of the BatchPool seam, through the official htcondor2/classad2 bindings.

Every call runs with a timeout; an unreachable schedd or collector raises PoolUnavailable so
callers never mistake "could not look" for "nothing there". Tokens are read by the bindings from
the token directory and never pass through our logs.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import classad2
import htcondor2

from bursting.config import PoolConfig
from bursting.errors import AuthError, PoolUnavailable, SubmitError
from bursting.model import (
    CAMPAIGN_ATTRIBUTE,
    MACHINE_ATTRS,
    CampaignJob,
    ClusterStatus,
    Demand,
    JobOutcome,
    JobShape,
    JobState,
    PoolSnapshot,
    QueueRow,
    Worker,
)
from bursting.policy.cost import check_campaign
from bursting.pool.shapes import job_shape, worker_from_slots

log = logging.getLogger(__name__)
T = TypeVar("T")

JOB_PROJECTION = [
    "ClusterId",
    "ProcId",
    "JobStatus",
    "Owner",
    "RequestCpus",
    "RequestMemory",
    "RequestDisk",
    "RequestGpus",
    "Requirements",
    "EnteredCurrentStatus",
    "QDate",
    "JobStartDate",
    # referenced by the default RequestMemory/RequestDisk expressions
    "RemoteHost",
    "MemoryUsage",
    "ImageSize",
    "DiskUsage",
    "ExecutableSize",
    # late materialization (max_materialize, max_idle): on the cluster ad of a job factory
    "JobFactoryTotalProcs",
    "TotalSubmitProcs",
    "JobMaterializeNextProcId",
    "JobMaterializePaused",
]
SLOT_PROJECTION = [
    "Name",
    "Machine",
    "SlotType",
    "State",
    "Activity",
    "Cpus",
    "Memory",
    "TotalSlotCpus",
    "TotalSlotMemory",
    "Draining",
    "BurstingPool",
    "BurstingInstance",
    "MyAddress",
]
STATUS_PROJECTION = [
    "ClusterId",
    "ProcId",
    "JobStatus",
    "ExitCode",
    "ExitBySignal",
    "ExitSignal",
    "HoldReason",
    "Err",
    "Iwd",
    "QDate",
    "JobStartDate",
    "CompletionDate",
    "LastRemoteHost",
    "RemoteHost",
    "NumJobStarts",
    "MachineAttrBurstingInstance0",
]
COST_PROJECTION = [
    "ClusterId",
    "ProcId",
    "JobStatus",
    "ExitCode",
    "ExitBySignal",
    "ExitSignal",
    "RequestCpus",
    "RemoteWallClockTime",  # wall time of the runs that ended (all of them, once it is done)
    "JobCurrentStartDate",  # a running job's current run, not yet in RemoteWallClockTime
    *(f"MachineAttr{name}0" for name in MACHINE_ATTRS),
]
CAMPAIGN_PROJECTION = [CAMPAIGN_ATTRIBUTE, "JobStatus", "ClusterId", "ProcId"]
LOCATION_PROJECTION = [
    "Name",
    "Machine",
    "MyAddress",
    "AddressV1",
    "CondorVersion",
    "CondorPlatform",
]
LIVE_JOBS = "JobStatus =?= 1 || JobStatus =?= 2 || JobStatus =?= 5"
# Live procs, plus the cluster ad of every job factory (it has no ProcId): one query, so the
# procs materialized so far and the count still to come are read from the same queue state.
DEMAND_QUERY = f"({LIVE_JOBS}) || (ProcId =?= undefined && JobMaterializeNextProcId =!= undefined)"
DAEMON_QUERY = 'MyType == "Collector" || MyType == "Scheduler"'
DAEMON_PROJECTION = [
    "MyType",
    "Name",
    "MyAddress",
    "AddressV1",
    "CondorVersion",
    "DaemonStartTime",
    "MonitorSelfTime",
    "MonitorSelfAge",
]
# HTCondor's UPDATE_INTERVAL default: how often a startd re-advertises unless configured
# otherwise (burst workers keep it). No ad states it: the collector's own "UpdateInterval" is its
# report to the HTCondor developers' collector. The collector's configuration is asked instead.
DEFAULT_ADVERTISE_INTERVAL = 300.0
_CONNECT_WORDS = ("connect", "timed out", "timeout", "locate", "refused", "unreachable")


def _with_timeout(what: str, seconds: float, call: Callable[[], T]) -> T:
    """Run a blocking binding call in a helper thread; a hung daemon becomes PoolUnavailable."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"htcondor:{what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise PoolUnavailable(f"{what}: no answer within {seconds:.0f}s", retry_after=seconds)
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, (PoolUnavailable, SubmitError)):
            raise error
        raise PoolUnavailable(f"{what}: {_one_line(error)}") from None
    return outcome["value"]  # type: ignore[no-any-return]


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] or type(error).__name__


_KEYRING_LOCK = threading.Lock()
_keyring: Path | None = None


def _process_keyring() -> Path:
    """The process's one token directory, configured once (the bindings read the token
    directory only from process-wide config, and schedd calls take no per-call security)."""
    global _keyring
    if _keyring is None:
        directory = Path(tempfile.mkdtemp(prefix="bursting-keyring-"))
        directory.chmod(0o700)
        atexit.register(shutil.rmtree, directory, True)
        htcondor2.param["SEC_TOKEN_DIRECTORY"] = str(directory)
        htcondor2.param["SEC_CLIENT_AUTHENTICATION_METHODS"] = "IDTOKENS"
        _keyring = directory
    return _keyring


def configure_client(token_dir: Path) -> None:
    """Make the tokens in `token_dir` available to the bindings beside every other pool's.

    Each token file is linked (not copied: a re-minted token is seen) into the process keyring.
    HTCondor's IDTOKENS client offers a daemon only tokens issued by that daemon's trust domain,
    so each pool authenticates with its own token; no pool changes a process-wide parameter.
    """
    with _KEYRING_LOCK:
        keyring = _process_keyring()
        try:
            sources = sorted(p for p in token_dir.iterdir() if p.is_file())
        except OSError:
            return  # no tokens (yet): reads still work, writes are refused by the schedd
        tag = hashlib.sha256(str(token_dir.resolve()).encode()).hexdigest()[:12]
        for source in sources:
            link = keyring / f"{tag}-{source.name}"
            if not link.is_symlink():
                link.symlink_to(source.resolve())


def _first_token(token_dir: Path) -> str | None:
    """The token the bindings would offer from `token_dir` (the first file by name)."""
    try:
        files = sorted(p for p in token_dir.iterdir() if p.is_file())
    except OSError:
        return None
    for file in files:
        text = file.read_text(errors="replace").strip()
        if text:
            return text
    return None


def probe_pool(collector: str, timeout: float = 5.0) -> str | None:
    """None when the collector answers and lists a schedd, else what is wrong."""
    try:
        ads = _with_timeout(
            "collector",
            timeout,
            lambda: htcondor2.Collector(collector).query(
                htcondor2.AdType.Schedd, projection=["Name"]
            ),
        )
    except PoolUnavailable as exc:
        return str(exc)
    return None if ads else "collector answers but no schedd has advertised yet"


class HTCondorPool:
    """BatchPool over one collector and one schedd."""

    def __init__(self, config: PoolConfig, token: str | None = None) -> None:
        """`token`: this pool's IDTOKEN by value, used where the bindings take one per call
        (the authenticated ping); else the first token in `config.token_dir`."""
        self.config = config
        self._token = token
        with _KEYRING_LOCK:
            _process_keyring()  # process-wide settings, once; this pool's tokens join on first use
        self._schedd_ad: classad2.ClassAd | None = None
        self._tokens_linked = False

    @classmethod
    def for_devpool(cls, token_dir: Path) -> HTCondorPool:
        return cls(PoolConfig(collector="127.0.0.1:9618", token_dir=token_dir))

    # ----- connections -----
    def _collector(self) -> htcondor2.Collector:
        self._link_tokens()  # a collector query precedes every startd command (drain)
        return htcondor2.Collector(self.config.collector)

    def _link_tokens(self) -> None:
        if not self._tokens_linked:
            configure_client(self.config.token_dir)
            self._tokens_linked = True

    def _call(self, what: str, call: Callable[[], T]) -> T:
        return _with_timeout(what, self.config.timeout_seconds, call)

    def _schedd(self, link_tokens: bool = True) -> htcondor2.Schedd:
        """The schedd; its lookup also links this pool's tokens into the process keyring
        (except for `authenticate`, so a token the schedd refuses never joins it)."""
        if self._schedd_ad is None:
            ads = self._call(
                f"collector {self.config.collector}",
                lambda: htcondor2.Collector(self.config.collector).query(htcondor2.AdType.Schedd),
            )
            wanted = self.config.schedd
            matching = [ad for ad in ads if wanted is None or ad.get("Name") == wanted]
            if not matching:
                names = ", ".join(str(ad.get("Name")) for ad in ads) or "none"
                raise PoolUnavailable(
                    f"schedd {wanted or '(any)'} not advertised at {self.config.collector}; "
                    f"advertised: {names}"
                )
            if len(matching) > 1:
                raise PoolUnavailable(
                    "several schedds advertise; set pool.schedd to one of: "
                    + ", ".join(str(ad.get("Name")) for ad in matching)
                )
            self._schedd_ad = matching[0]
            self._tokens_linked = False  # (re)link on each lookup: token files may be new
        if link_tokens:
            self._link_tokens()
        return htcondor2.Schedd(self._schedd_ad)

    def authenticate(self, authz: str = "WRITE") -> str:
        """Prove the schedd accepts this pool's token for `authz` (reading the queue needs no
        login, so only this shows a refused token); returns the identity it maps the token to.
        The token goes by value in a SecurityContext, so no cached session can answer for it."""
        token = self._token or _first_token(self.config.token_dir)
        if token is None:
            raise AuthError(f"no IDTOKEN given and none in {self.config.token_dir}")
        self._schedd(link_tokens=False)  # looks up and caches the schedd's ad
        schedd_ad = self._schedd_ad
        name = schedd_ad.get("Name") if schedd_ad is not None else "?"
        what = f"authenticate to schedd {name}"
        # An unauthenticated READ ping first: if it answers, a failed WRITE is the token's fault.
        self._call(what, lambda: htcondor2.ping(schedd_ad, "READ"))
        security = htcondor2.SecurityContext(token=token)
        try:
            answer = self._call(what, lambda: htcondor2.ping(schedd_ad, authz, security))
        except PoolUnavailable as exc:
            if "no answer within" in str(exc):
                raise
            raise AuthError(
                f"schedd {name} refused the token for {authz}: authentication failed "
                "(token corrupted, revoked, or signed by another pool's key)"
            ) from None
        if answer.get("AuthorizationSucceeded") is not True:
            raise AuthError(f"schedd {name} does not authorize {authz} for this token's identity")
        return str(answer.get("MyRemoteUserName", "?"))

    def _schedd_call(
        self, what: str, call: Callable[[htcondor2.Schedd], T], retry: bool = True
    ) -> T:
        """Call the schedd; if a cached address fails, look the schedd up again and retry once
        (it may have restarted on another port). Submits retry only when nothing was sent."""
        cached = self._schedd_ad is not None
        schedd = self._schedd()
        try:
            return self._call(what, lambda: call(schedd))
        except PoolUnavailable as exc:
            self._schedd_ad = None
            if not (cached and (retry or "failed to connect" in str(exc).lower())):
                raise
            log.info("%s failed on the cached schedd address (%s); looking it up again", what, exc)
        schedd = self._schedd()
        return self._call(what, lambda: call(schedd))

    # ----- BatchPool -----
    _advertise_interval: float | None = None  # asked of the collector once, then kept

    def snapshot(self, now: float | None = None) -> PoolSnapshot:
        jobs = self._schedd_call(
            "schedd query",
            lambda s: s.query(
                DEMAND_QUERY, projection=JOB_PROJECTION, opts=htcondor2.QueryOpt.IncludeClusterAd
            ),
        )
        slots = self._call(
            f"collector {self.config.collector}",
            lambda: self._collector().query(htcondor2.AdType.Startd, projection=SLOT_PROJECTION),
        )
        # After the slots: a collector restarting in between then shows as young (safe side).
        daemons = self._call(
            f"collector {self.config.collector}",
            lambda: self._collector().query(
                htcondor2.AdType.Any, constraint=DAEMON_QUERY, projection=DAEMON_PROJECTION
            ),
        )
        snapshot = build_snapshot(jobs, slots, now)
        collector, schedd = daemon_starts(daemons, self.config.schedd, snapshot.taken_at)
        return replace(
            snapshot,
            collector_started_at=collector,
            schedd_started_at=schedd,
            advertise_interval=self._workers_interval(daemons),
        )

    def _workers_interval(self, daemons: Sequence[classad2.ClassAd]) -> float:
        """The pool's UPDATE_INTERVAL as the collector's configuration says (the workers share
        the pool's configuration), asked once; HTCondor's default if it will not say."""
        if self._advertise_interval is None:
            collector = next((ad for ad in daemons if ad.get("MyType") == "Collector"), None)
            if collector is None:
                return DEFAULT_ADVERTISE_INTERVAL  # ask again next time
            try:
                value = self._call(
                    "collector configuration",
                    lambda: htcondor2.RemoteParam(collector).get("UPDATE_INTERVAL"),
                )
                interval = float(value) if value is not None else DEFAULT_ADVERTISE_INTERVAL
            except (PoolUnavailable, ValueError) as exc:
                log.info("collector will not tell its UPDATE_INTERVAL (%s); assuming 300s", exc)
                interval = DEFAULT_ADVERTISE_INTERVAL
            self._advertise_interval = interval if interval > 0 else DEFAULT_ADVERTISE_INTERVAL
        return self._advertise_interval

    def workers(self) -> tuple[Worker, ...]:
        slots = self._call(
            f"collector {self.config.collector}",
            lambda: self._collector().query(htcondor2.AdType.Startd, projection=SLOT_PROJECTION),
        )
        return group_workers(slots)

    def drain(self, worker_names: Sequence[str]) -> list[str]:
        """Graceful drain with exit on completion; returns the nodes that accepted it."""
        drained = []
        for name in worker_names:
            location = self._startd_location(name)
            if location is None:
                log.warning("cannot drain %s: no such execute node in the collector", name)
                continue
            self._call(
                f"drain {name}",
                lambda loc=location: htcondor2.Startd(loc).drainJobs(  # type: ignore[misc]
                    htcondor2.DrainType.Graceful,
                    htcondor2.CompletionType.Exit,
                    reason="bursting: node no longer needed",
                ),
            )
            drained.append(name)
        return drained

    def _startd_location(self, node: str) -> classad2.ClassAd | None:
        """The address ad of one startd, from its slot ads (present as soon as the node is)."""
        ads = self._call(
            f"collector {self.config.collector}",
            lambda: self._collector().query(
                htcondor2.AdType.Startd,
                constraint=f"Name == {classad2.quote('slot1@' + node)} || Name == "
                f"{classad2.quote(node)} || (SlotID == 1 && Machine == {classad2.quote(node)})",
                projection=LOCATION_PROJECTION,
            ),
        )
        return ads[0] if ads else None

    def submit(
        self,
        description: str,
        itemdata: Iterable[Mapping[str, str]] | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> int:
        """Queue one cluster in one transaction. `attributes` become string job attributes
        (e.g. an idempotency key) without touching the description's queue statement."""
        submit = parse_submit(description)
        for name, value in (attributes or {}).items():
            submit[f"+{name}"] = classad2.quote(value)
        items = [dict(item) for item in itemdata] if itemdata is not None else None
        if items is not None and not items:
            raise SubmitError("itemdata is empty: pass at least one item, or none at all")

        def do(schedd: htcondor2.Schedd) -> int:
            try:
                if items is None:
                    result = schedd.submit(submit)
                else:
                    result = schedd.submit(submit, itemdata=iter(items))
            except Exception as exc:  # the bindings raise plain HTCondor errors
                text = _one_line(exc)
                if any(word in text.lower() for word in _CONNECT_WORDS):
                    raise PoolUnavailable(f"submit: {text}") from None
                raise SubmitError(f"the schedd refused the submit description: {text}") from None
            return int(result.cluster())

        return self._schedd_call("submit", do, retry=False)

    def job_status(self, cluster_id: int) -> ClusterStatus:
        constraint = f"ClusterId == {int(cluster_id)}"
        live = self._schedd_call(
            "schedd query", lambda s: s.query(constraint, projection=STATUS_PROJECTION)
        )
        seen = {int(ad["ProcId"]) for ad in live}
        ended = self._schedd_call(
            "schedd history", lambda s: s.history(constraint, projection=STATUS_PROJECTION)
        )
        ads = list(live) + [ad for ad in ended if int(ad["ProcId"]) not in seen]
        jobs = sorted((job_outcome(ad) for ad in ads), key=lambda j: int(j.job_id.split(".")[1]))
        return ClusterStatus(int(cluster_id), tuple(jobs))

    def find_cluster(self, attribute: str, value: str) -> int | None:
        """The newest cluster whose jobs carry `attribute == value`, queued or finished."""
        clusters = self.find_clusters(f"{attribute} =?= {classad2.quote(value)}")
        return clusters[-1] if clusters else None

    def find_clusters(self, constraint: str) -> list[int]:
        """Ids of the clusters with a job matching `constraint`, queued or finished, ascending."""
        live = self._schedd_call(
            "schedd query", lambda s: s.query(constraint, projection=["ClusterId"])
        )
        ended = self._schedd_call(
            "schedd history", lambda s: s.history(constraint, projection=["ClusterId"])
        )
        return sorted({int(ad["ClusterId"]) for ad in (*live, *ended)})

    def campaign_jobs(self, campaign: str, now: float | None = None) -> tuple[CampaignJob, ...]:
        """Every job of a campaign, queued or finished, with its wall time, cores and the burst
        worker it last ran on; the name must be a campaign name (it goes into a constraint)."""
        constraint = f"{CAMPAIGN_ATTRIBUTE} =?= {classad2.quote(check_campaign(campaign))}"
        live = self._schedd_call(
            "schedd query", lambda s: s.query(constraint, projection=COST_PROJECTION)
        )
        ended = self._schedd_call(
            "schedd history", lambda s: s.history(constraint, projection=COST_PROJECTION)
        )
        at = now if now is not None else time.time()
        seen = {(int(ad["ClusterId"]), int(ad["ProcId"])) for ad in live}
        ads = list(live) + [
            ad for ad in ended if (int(ad["ClusterId"]), int(ad["ProcId"])) not in seen
        ]
        return tuple(campaign_job(ad, at) for ad in ads)

    def campaign_queue(self) -> dict[tuple[str, JobState], int]:
        """Jobs in the queue that carry a campaign, by (campaign, state), names as the jobs
        carry them."""
        ads = self._schedd_call(
            "schedd query",
            lambda s: s.query(
                f"{CAMPAIGN_ATTRIBUTE} =!= undefined", projection=CAMPAIGN_PROJECTION
            ),
        )
        counts: dict[tuple[str, JobState], int] = {}
        for ad in ads:
            name = ad.get(CAMPAIGN_ATTRIBUTE)
            if isinstance(name, str):
                key = (name, JobState(int(ad.get("JobStatus", 1))))
                counts[key] = counts.get(key, 0) + 1
        return counts

    def _history_since(
        self, constraint: str, projection: list[str], after: str | None, since: float
    ) -> tuple[list[classad2.ClassAd], str | None]:
        """History records matching `constraint` written after the record `after` (what the
        previous call returned), or without one since `since`, newest first; and the newest
        record of the whole history, to pass next time. The bindings hold the GIL while the
        schedd reads its history, so each call reads only what is new; a record read twice
        (written between the two reads) is the caller's to skip by its id."""
        newest = self._schedd_call(
            "schedd history", lambda s: s.history(None, projection=["ClusterId", "ProcId"], match=1)
        )
        stop = after if after is not None else f"EnteredCurrentStatus < {int(since)}"
        ads = self._schedd_call(
            "schedd history",
            lambda s: s.history(constraint, projection=projection, since=stop),
        )
        cursor = f"{int(newest[0]['ClusterId'])}.{int(newest[0]['ProcId'])}" if newest else after
        return [ad for ad in ads if "ProcId" in ad], cursor

    def campaign_history(
        self, after: str | None, since: float
    ) -> tuple[tuple[tuple[str, str, JobState, float], ...], str | None]:
        """(job id, campaign, state, when it left the queue) of campaign jobs that left the
        queue after `after` / since `since` (see _history_since)."""
        ads, cursor = self._history_since(
            f"{CAMPAIGN_ATTRIBUTE} =!= undefined",
            [*CAMPAIGN_PROJECTION, "EnteredCurrentStatus"],
            after,
            since,
        )
        left = tuple(
            (
                f"{int(ad['ClusterId'])}.{int(ad['ProcId'])}",
                ad[CAMPAIGN_ATTRIBUTE],
                JobState(int(ad.get("JobStatus", 4))),
                float(ad.get("EnteredCurrentStatus", 0) or 0),
            )
            for ad in ads
            if isinstance(ad.get(CAMPAIGN_ATTRIBUTE), str)
        )
        return left, cursor

    def started_history(
        self, after: str | None, since: float
    ) -> tuple[tuple[tuple[str, float, float], ...], str | None]:
        """(job id, queued at, first started at) of jobs that ran and left the queue after
        `after` / since `since` (see _history_since): the waits of jobs too short to be seen
        running in a snapshot."""
        ads, cursor = self._history_since(
            "JobStartDate > 0", ["ClusterId", "ProcId", "QDate", "JobStartDate"], after, since
        )
        started = tuple(
            (f"{int(ad['ClusterId'])}.{int(ad['ProcId'])}", queued, first)
            for ad in ads
            if (first := _epoch(ad.get("JobStartDate"))) is not None
            and (queued := _epoch(ad.get("QDate"))) is not None
        )
        return started, cursor

    def remove(self, cluster_id: int, reason: str = "removed by bursting") -> None:
        self._schedd_call(
            "remove",
            lambda s: s.act(htcondor2.JobAction.Remove, f"ClusterId == {int(cluster_id)}", reason),
        )


def parse_submit(description: str) -> htcondor2.Submit:
    """Parse a submit description; say what is wrong before anything reaches the schedd."""
    if not description.strip():
        raise SubmitError("the submit description is empty; give at least 'executable = ...'")
    try:
        submit = htcondor2.Submit(description)
    except Exception as exc:
        raise SubmitError(f"the submit description does not parse: {_one_line(exc)}") from None
    keys = {key.lower() for key in submit}
    if "executable" not in keys and "cmd" not in keys:
        raise SubmitError("the submit description has no 'executable = ...' line; add one")
    return submit


def job_outcome(ad: classad2.ClassAd) -> JobOutcome:
    state = JobState(int(ad.get("JobStatus", 1)))
    exit_code = ad.get("ExitCode")
    if ad.get("ExitBySignal") is True:
        exit_code = 128 + int(ad.get("ExitSignal", 0))
    err = ad.get("Err")
    iwd = ad.get("Iwd")
    stderr = None
    if isinstance(err, str) and err not in ("/dev/null", ""):
        stderr = err if err.startswith("/") or not isinstance(iwd, str) else f"{iwd}/{err}"
    hold = ad.get("HoldReason") if state is JobState.HELD else None
    host = ad.get("RemoteHost") or ad.get("LastRemoteHost")
    return JobOutcome(
        job_id=f"{int(ad['ClusterId'])}.{int(ad['ProcId'])}",
        state=state,
        exit_code=int(exit_code) if isinstance(exit_code, int) else None,
        hold_reason=str(hold) if hold else None,
        stderr_path=stderr,
        queued_at=_epoch(ad.get("QDate")),
        started_at=_epoch(ad.get("JobStartDate")),
        finished_at=_epoch(ad.get("CompletionDate")),
        host=str(host) if isinstance(host, str) else None,
        starts=int(ad.get("NumJobStarts", 0) or 0),
        instance=_text(ad.get("MachineAttrBurstingInstance0")),
    )


def campaign_job(ad: classad2.ClassAd, now: float) -> CampaignJob:
    """A job ad (queue or history) as the cost reads it; a running job's wall time includes its
    current run."""
    state = JobState(int(ad.get("JobStatus", 1)))
    wall = ad.get("RemoteWallClockTime")
    seconds = float(wall) if isinstance(wall, (int, float)) and not isinstance(wall, bool) else 0.0
    started = _epoch(ad.get("JobCurrentStartDate"))
    if state is JobState.RUNNING and started is not None:
        seconds += max(0.0, now - started)
    cpus = ad.get("RequestCpus", 1)
    if not isinstance(cpus, int) or isinstance(cpus, bool):
        try:
            cpus = int(ad.eval("RequestCpus"))
        except Exception:  # an expression that needs the machine: one core, as HTCondor defaults
            cpus = 1
    exit_code = ad.get("ExitCode")
    if ad.get("ExitBySignal") is True:
        exit_code = 128 + int(ad.get("ExitSignal", 0))
    cloud, flavor, instance = (_text(ad.get(f"MachineAttr{name}0")) for name in MACHINE_ATTRS)
    return CampaignJob(
        job_id=f"{int(ad['ClusterId'])}.{int(ad['ProcId'])}",
        state=state,
        cpus=max(1, cpus),
        wall_seconds=seconds,
        cloud=cloud,
        flavor=flavor,
        instance=instance,
        exit_code=int(exit_code) if isinstance(exit_code, int) else None,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _epoch(value: object) -> float | None:
    """HTCondor leaves dates 0 or undefined until they happen."""
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def daemon_starts(
    daemons: Iterable[classad2.ClassAd], schedd: str | None, now: float
) -> tuple[float, float]:
    """(collector, schedd): when each started, from its own ad. A daemon whose ad is missing
    counts as started `now`: a collector that has not even listed itself, or a schedd it has not
    heard from, has surely not heard from every worker either."""
    found: dict[str, list[float]] = {"Collector": [], "Scheduler": []}
    for ad in daemons:
        kind = str(ad.get("MyType"))
        if kind == "Scheduler" and schedd is not None and ad.get("Name") != schedd:
            continue
        started = _started_at(ad)
        if kind in found and started is not None:
            found[kind].append(started)
    # Several of a kind (e.g. no schedd configured): the youngest decides, on the safe side.
    return max(found["Collector"], default=now), max(found["Scheduler"], default=now)


def _started_at(ad: classad2.ClassAd) -> float | None:
    """A daemon's start time: DaemonStartTime, or (the collector's ad has none) the time of its
    last self-monitoring minus its age then."""
    start = ad.get("DaemonStartTime")
    if isinstance(start, (int, float)) and not isinstance(start, bool) and start > 0:
        return float(start)
    at, age = ad.get("MonitorSelfTime"), ad.get("MonitorSelfAge")
    if isinstance(at, (int, float)) and isinstance(age, (int, float)) and at > 0:
        return float(at - age)
    return None


def factory_backlog(ad: classad2.ClassAd) -> int:
    """Procs a late-materializing cluster (max_materialize, max_idle) has yet to materialize;
    0 for a paused factory (held or removed cluster, or an error) and for any other ad."""
    if "ProcId" in ad or int(ad.get("JobMaterializePaused", 0) or 0) != 0:
        return 0
    total = ad.get("JobFactoryTotalProcs", ad.get("TotalSubmitProcs"))
    following = ad.get("JobMaterializeNextProcId")
    if not isinstance(total, int) or not isinstance(following, int):
        return 0
    return max(0, total - following)


def build_snapshot(
    jobs: Iterable[classad2.ClassAd], slots: Iterable[classad2.ClassAd], now: float | None
) -> PoolSnapshot:
    """Group job ads by shape (demand, queue rows) and slot ads by execute node (workers).
    A job factory's cluster ad adds its procs still to materialize as idle since its QDate."""
    idle: dict[JobShape, list[float]] = defaultdict(list)
    counts: dict[tuple[str, JobShape], list[int]] = defaultdict(lambda: [0, 0, 0])
    busy: set[str] = set()
    starts: list[tuple[str, float, float]] = []
    for ad in jobs:
        if "ProcId" not in ad:
            backlog = factory_backlog(ad)
            if backlog:
                shape = job_shape(ad)
                idle[shape].extend([float(ad.get("QDate", 0) or 0)] * backlog)
                counts[(str(ad.get("Owner", "?")), shape)][0] += backlog
            continue
        shape = job_shape(ad)
        status = int(ad.get("JobStatus", 1))
        owner = str(ad.get("Owner", "?"))
        entered = float(ad.get("EnteredCurrentStatus", ad.get("QDate", 0)) or 0)
        if status == 1:
            idle[shape].append(entered)
            counts[(owner, shape)][0] += 1
        elif status == 2:
            counts[(owner, shape)][1] += 1
            first = float(ad.get("JobStartDate", entered) or entered)
            job_id = f"{int(ad.get('ClusterId', 0))}.{int(ad.get('ProcId', 0))}"
            starts.append((job_id, float(ad.get("QDate", first) or first), first))
            host = ad.get("RemoteHost")
            if isinstance(host, str) and "@" in host:
                busy.add(host.split("@", 1)[1])
        elif status == 5:
            counts[(owner, shape)][2] += 1
    demand = tuple(Demand(shape, tuple(sorted(times))) for shape, times in sorted(idle.items()))
    queue = tuple(
        QueueRow(owner, shape, *numbers) for (owner, shape), numbers in sorted(counts.items())
    )
    return PoolSnapshot(
        taken_at=now if now is not None else time.time(),
        demand=demand,
        workers=group_workers(slots),
        queue=queue,
        busy_hosts=frozenset(busy),
        job_starts=tuple(starts),
    )


def group_workers(slots: Iterable[classad2.ClassAd]) -> tuple[Worker, ...]:
    by_node: dict[str, list[classad2.ClassAd]] = defaultdict(list)
    for ad in slots:
        name = str(ad.get("Name", ""))
        node = name.split("@", 1)[1] if "@" in name else name
        by_node[node].append(ad)
    return tuple(worker_from_slots(node, ads) for node, ads in sorted(by_node.items()))
