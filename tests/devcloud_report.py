"""What devcloud looked like when an integration test failed: the services not answering, every
server with its status and fault, and the latest errors in the services' logs, appended to the
failure's report. Secrets devcloud wrote are masked."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from bursting.clouds.openstack_errors import Redactor, fault_text
from tests.pool_report import sections_report

# ERROR lines every run has, which explain no failure: an optional cache backend that is not
# installed, and Nova's own response-schema checks of its debug build.
NOISE = ("oslo_cache.memcache_pool", "nova.api.validation")
MARKERS = (" ERROR ", " CRITICAL ", "[ERROR]", "[CRITICAL]", "Traceback")


def devcloud_report(cloud: Any, limit: int = 30, recent_seconds: float = 900) -> str:
    """Never raises: a report that cannot be had says why instead."""
    return sections_report(
        (
            ("services not answering", lambda: _services(cloud)),
            ("servers", lambda: _servers(cloud, limit)),
            ("latest errors in the logs", lambda: errors(cloud.paths.logs, limit, recent_seconds)),
        ),
        _redactor(cloud),
    )


def _redactor(cloud: Any) -> Redactor:
    secrets: list[str] = []
    try:
        clouds = yaml.safe_load(Path(cloud.clouds_yaml).read_text())["clouds"]
        for entry in clouds.values():
            auth = entry.get("auth") or {}
            secrets += [str(v) for k, v in auth.items() if "password" in k or "secret" in k]
        secrets.append(str(json.loads(Path(cloud.ec2_file).read_text())["secret"]))
    except Exception:  # nothing written yet: nothing to mask
        pass
    return Redactor(secrets)


def _services(cloud: Any) -> str:
    rows = cloud.status()["services"]
    down = [
        f"{name} pid={row['pid']} answering={row['answering']}"
        for name, row in rows.items()
        if row["pid"] is None or row["answering"] is False
    ]
    return "\n".join(down) or "(every service runs and answers)"


def _servers(cloud: Any, limit: int) -> str:
    from bursting.devcloud import ADMIN_CLOUD, connect

    admin = connect(cloud.clouds_yaml, ADMIN_CLOUD, timeout=10)
    lines = []
    for server in admin.compute.servers(details=True, all_projects=True):
        line = f"{server.name} {server.status} task={server.task_state} project={server.project_id}"
        if server.status == "ERROR":
            line += f" fault={fault_text(server.fault)}"
        lines.append(line)
    return "\n".join(lines[:limit]) or "(none)"


def errors(logs: Path, limit: int, recent_seconds: float) -> str:
    """The last error lines of the logs written to lately, oldest file first."""
    since = time.time() - recent_seconds
    files = sorted(
        (p for p in logs.rglob("*") if p.is_file() and p.stat().st_mtime >= since),
        key=lambda p: p.stat().st_mtime,
    )
    found = []
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            if any(m in line for m in MARKERS) and not any(n in line for n in NOISE):
                found.append(f"{path.relative_to(logs)}: {line[:300]}")
    return "\n".join(found[-limit:]) or "(none)"
