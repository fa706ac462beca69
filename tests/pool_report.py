"""What the personal pool looked like when an integration test failed: its slots, the jobs not
finished and the negotiator's latest matches, appended to the failure's report."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

JOB_ATTRIBUTES = [
    "ClusterId",
    "ProcId",
    "JobStatus",
    "NumShadowStarts",
    "RemoteHost",
    "LastRemoteHost",
    "HoldReason",
    "LastRejMatchReason",
]


Section = tuple[str, Callable[[], str]]


def sections_report(sections: tuple[Section, ...], redact: Callable[[str], str] = str) -> str:
    """Each section under its title. Never raises: a section that cannot be had says why."""
    parts = []
    for title, build in sections:
        try:
            parts.append(f"-- {title}\n{redact(build())}")
        except Exception as exc:  # a report must not hide the failure it comes with
            parts.append(f"-- {title}: unavailable ({type(exc).__name__}: {redact(str(exc))})")
    return "\n".join(parts)


def pool_report(collector: str, log_dir: Path, limit: int = 30) -> str:
    return sections_report(
        (
            ("slots", lambda: _slots(collector, limit)),
            ("jobs not finished", lambda: _jobs(collector, limit)),
            ("negotiator, latest", lambda: _negotiator(log_dir / "NegotiatorLog", limit)),
        )
    )


def _slots(collector: str, limit: int) -> str:
    import htcondor2

    ads = htcondor2.Collector(collector).query(
        htcondor2.AdTypes.Startd,
        projection=["Name", "State", "Activity", "Cpus", "Memory", "LastHeardFrom"],
    )
    now = time.time()
    lines = [
        f"{ad.get('Name')} {ad.get('State')}/{ad.get('Activity')} cpus={ad.get('Cpus')} "
        f"memory={ad.get('Memory')} heard {now - float(ad.get('LastHeardFrom', now)):.0f}s ago"
        for ad in ads
    ]
    return "\n".join(lines[:limit]) or "(none)"


def _jobs(collector: str, limit: int) -> str:
    import htcondor2

    location = htcondor2.Collector(collector).locate(htcondor2.DaemonTypes.Schedd)
    ads = htcondor2.Schedd(location).query("JobStatus != 4", projection=JOB_ATTRIBUTES)
    lines = [" ".join(f"{key}={ad.get(key)!r}" for key in JOB_ATTRIBUTES) for ad in ads]
    return "\n".join(lines[-limit:]) or "(none)"


def _negotiator(log: Path, limit: int) -> str:
    lines = log.read_text(errors="replace").splitlines()
    wanted = [line for line in lines if "atched" in line or "rror" in line]
    return "\n".join(wanted[-limit:]) or "(none)"
