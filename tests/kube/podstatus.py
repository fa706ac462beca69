"""A pod's status as the kubelet writes it: the phase from its containers, and conditions that
keep their transition times."""

from __future__ import annotations

from typing import Any, Protocol


class ContainerView(Protocol):
    state: dict[str, Any]
    restarts: int
    ended: bool


def phase(containers: list[ContainerView]) -> str:
    if all(c.ended for c in containers):
        codes = [c.state["terminated"]["exitCode"] for c in containers]
        return "Succeeded" if all(code == 0 for code in codes) else "Failed"
    if any("running" in c.state or c.restarts or c.ended for c in containers):
        return "Running"
    return "Pending"


def set_condition(
    pod: dict[str, Any], kind: str, status: str, reason: str | None, message: str | None, now: str
) -> None:
    conditions = pod.setdefault("status", {}).setdefault("conditions", [])
    for condition in conditions:
        if condition["type"] == kind:
            if condition["status"] != status:
                condition["lastTransitionTime"] = now
            condition["status"] = status
            break
    else:
        condition = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": now,
        }
        conditions.append(condition)
    for key, value in (("reason", reason), ("message", message)):
        if value is None:
            condition.pop(key, None)
        else:
            condition[key] = value
