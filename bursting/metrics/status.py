"""The /status document: the last cycle's snapshot as JSON, for people and the UI. Pure.

Instance ids appear here (an operator needs them) but never in a metric label.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bursting.metrics.health import Readiness
from bursting.metrics.view import View


def _instances(view: View, now: float) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for i in sorted(view.instances, key=lambda i: (i.cloud, i.state.value, i.created_at, i.id)):
        groups.setdefault((i.cloud, i.state.value), []).append(
            {
                "id": i.id,
                "flavor": i.flavor,
                "age_seconds": round(max(0.0, now - i.created_at), 3),
                "in_state_seconds": round(max(0.0, now - i.state_since), 3),
                "reason": i.reason,
            }
        )
    return [
        {"cloud": cloud, "state": state, "count": len(rows), "instances": rows}
        for (cloud, state), rows in sorted(groups.items())
    ]


def _clouds(view: View, now: float) -> list[dict[str, Any]]:
    out = []
    for c in view.clouds:
        quota = c.quota
        out.append(
            {
                "name": c.name,
                "enabled": c.enabled,
                "read": c.read,
                "error_class": c.error_class,
                "error": c.error,
                "max_instances": c.max_instances,
                "quota": None
                if quota is None
                else {
                    "known": quota.known,
                    "instances": quota.instances,
                    "cores": quota.cores,
                    "memory_mb": quota.memory_mb,
                },
                "backoff": [
                    {
                        "flavor": b.flavor,
                        "failures": b.failures,
                        "remaining_seconds": round(max(0.0, b.until - now), 3),
                    }
                    for b in c.backoffs
                ],
                "retry_after_seconds": None
                if c.paused_until is None
                else round(max(0.0, c.paused_until - now), 3),
                "spend_per_hour": c.spend_per_hour,
                "spent": c.spent,
            }
        )
    return out


def status_document(view: View | None, now: float, readiness: Readiness) -> dict[str, Any]:
    """Everything `bursting status` and the UI show about the controller, from one view."""
    doc: dict[str, Any] = {
        "now": now,
        "ready": readiness.ready,
        "reason": readiness.reason,
        "last_cycle": None,
    }
    if view is None:
        return doc
    record = view.record
    doc["last_cycle"] = {
        "started_at": record.started_at,
        "seconds": record.seconds,
        "age_seconds": round(max(0.0, now - record.started_at), 3),
        "pool": asdict(record.pool),
        "clouds": [asdict(c) for c in record.clouds],
        "idle_jobs": record.idle_jobs,
        "actions": [asdict(a) for a in record.actions],
        "unschedulable": [asdict(u) for u in record.unschedulable],
        "notes": list(record.notes),
    }
    doc["jobs"] = None if view.jobs is None else dict(view.jobs)
    doc["demand"] = [asdict(row) for row in view.demand]
    doc["instances"] = _instances(view, now)
    doc["clouds"] = _clouds(view, now)
    doc["decisions"] = [
        {"at": at, "kind": kind, "cloud": cloud, "instance": instance, "code": code, "reason": why}
        for at, kind, cloud, instance, code, why in view.decisions
    ]
    doc["spend"] = {
        "currency": view.currency,
        "cap_per_hour": view.spend_cap_per_hour,
        "per_hour": round(sum(c.spend_per_hour for c in view.clouds), 6),
        "total": round(sum(c.spent for c in view.clouds), 6),
    }
    return doc
