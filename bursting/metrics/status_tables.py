"""`bursting status` from the running controller: fetch its /status document and lay it out as
tables. The document is the one source the UI page reads too, so both tell the same story."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from rich.table import Table

from bursting.errors import BurstingError


class StatusUnavailable(BurstingError):
    """The controller's /status could not be read (not running, another address, an error)."""


def status_url(listen: str) -> str:
    """The /status URL for `metrics.listen`; a wildcard host is reached on the loopback."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/status"


def fetch_status(listen: str, timeout: float = 3.0) -> dict[str, Any]:
    url = status_url(listen)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            document = json.loads(answer.read())
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise StatusUnavailable(f"no controller answered at {url}: {exc}") from None
    if not isinstance(document, dict) or "ready" not in document:
        raise StatusUnavailable(f"{url} did not answer with a bursting status document")
    return document


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def headline(doc: dict[str, Any]) -> str:
    cycle = doc.get("last_cycle")
    ready = "ready" if doc.get("ready") else f"NOT READY ({doc.get('reason', '')})"
    if cycle is None:
        return f"controller {ready}; no cycle yet"
    jobs = doc.get("jobs")
    queue = (
        "pool not read"
        if jobs is None
        else ", ".join(f"{n} {state}" for state, n in sorted(jobs.items()))
    )
    spend = doc.get("spend") or {}
    cap = spend.get("cap_per_hour")
    return (
        f"controller {ready}; last cycle {_age(cycle['age_seconds'])} ago took "
        f"{cycle['seconds']:.2f}s; jobs: {queue}; spend {spend.get('per_hour', 0):.4g}"
        f"{'' if cap is None else f' of {cap:.4g}'} {spend.get('currency', '')}/h, "
        f"{spend.get('total', 0):.4g} so far"
    )


def demand_table(doc: dict[str, Any]) -> Table:
    table = Table("shape", "idle jobs", "cores", "memory GB", title="idle demand by shape")
    for row in doc.get("demand") or []:
        table.add_row(
            row["shape"], str(row["jobs"]), str(row["cores"]), f"{row['memory_bytes'] / 2**30:.1f}"
        )
    return table


def instances_table(doc: dict[str, Any]) -> Table:
    table = Table(
        "cloud", "state", "instance", "flavor", "age", "in state", "reason", title="instances"
    )
    for group in doc.get("instances") or []:
        for row in group["instances"]:
            table.add_row(
                group["cloud"],
                group["state"],
                row["id"],
                row["flavor"],
                _age(row["age_seconds"]),
                _age(row["in_state_seconds"]),
                row.get("reason") or "",
            )
    return table


def _quota_text(quota: dict[str, Any] | None) -> str:
    if quota is None:
        return "-"
    if not quota["known"]:
        return "unknown"
    parts = [
        f"{quota[key]} {label}"
        for key, label in (("instances", "inst"), ("cores", "cores"), ("memory_mb", "MB"))
        if quota[key] is not None
    ]
    return ", ".join(parts) or "unlimited"


def clouds_table(doc: dict[str, Any]) -> Table:
    currency = (doc.get("spend") or {}).get("currency", "")
    table = Table(
        "cloud", "read", "quota left", "backoff", "spend/h", "spent", title=f"clouds ({currency})"
    )
    for cloud in doc.get("clouds") or []:
        read = {True: "ok", False: f"FAILED {cloud['error_class']}", None: "disabled"}
        backoff = [
            f"{b['flavor']} x{b['failures']} {_age(b['remaining_seconds'])}"
            for b in cloud["backoff"]
        ]
        if cloud.get("retry_after_seconds"):
            backoff.append(f"paused {_age(cloud['retry_after_seconds'])}")
        table.add_row(
            cloud["name"],
            read[cloud["read"]],
            _quota_text(cloud["quota"]),
            "; ".join(backoff) or "-",
            f"{cloud['spend_per_hour']:.4g}",
            f"{cloud['spent']:.4g}",
        )
    return table


def decisions_table(doc: dict[str, Any], limit: int = 15) -> Table:
    table = Table("time", "action", "cloud", "instance", "code", "reason", title="recent decisions")
    for row in (doc.get("decisions") or [])[:limit]:
        table.add_row(
            time.strftime("%H:%M:%S", time.localtime(row["at"])),
            row["kind"],
            row["cloud"],
            row["instance"],
            row["code"],
            row["reason"],
        )
    return table


def status_tables(doc: dict[str, Any]) -> list[Table]:
    return [demand_table(doc), instances_table(doc), clouds_table(doc), decisions_table(doc)]
