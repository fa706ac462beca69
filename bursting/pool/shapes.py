"""Turn job and slot ClassAds into shapes and workers: pure functions, testable without daemons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bursting.model import JobShape, Worker


def _number(ad: Any, key: str, default: float) -> float:
    """An attribute's value, evaluating expressions (RequestMemory often is one)."""
    if key not in ad:
        return default
    try:
        value = ad.eval(key)
    except (KeyError, ValueError, TypeError):
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value)


def job_shape(ad: Any) -> JobShape:
    """What a job asks for; disk is converted from HTCondor's KiB to MiB."""
    requirements = str(ad.lookup("Requirements")) if "Requirements" in ad else ""
    return JobShape(
        cpus=max(1, int(_number(ad, "RequestCpus", 1))),
        memory_mb=max(1, int(_number(ad, "RequestMemory", 1))),
        disk_mb=max(0, int(_number(ad, "RequestDisk", 0)) // 1024),
        gpus=max(0, int(_number(ad, "RequestGpus", 0))),
        requirements=requirements,
    )


def _text(ad: Any, key: str) -> str | None:
    value = ad.get(key) if key in ad else None
    return value if isinstance(value, str) and value else None


def worker_from_slots(node: str, slots: Sequence[Any]) -> Worker:
    """One execute node from all its slot ads (partitionable, dynamic or static)."""
    total_cpus = total_memory = free_cpus = free_memory = running = 0
    draining = False
    machine = instance_id = pool_id = None
    for ad in slots:
        machine = machine or _text(ad, "Machine")
        instance_id = instance_id or _text(ad, "BurstingInstance")
        pool_id = pool_id or _text(ad, "BurstingPool")
        draining = draining or ad.get("Draining") is True
        kind = ad.get("SlotType")
        cpus = int(_number(ad, "Cpus", 0))
        memory = int(_number(ad, "Memory", 0))
        if kind == "Partitionable":
            total_cpus += int(_number(ad, "TotalSlotCpus", cpus))
            total_memory += int(_number(ad, "TotalSlotMemory", memory))
            free_cpus += cpus
            free_memory += memory
        elif kind == "Dynamic":
            running += ad.get("State") == "Claimed"
        else:
            total_cpus += cpus
            total_memory += memory
            if ad.get("State") == "Claimed":
                running += 1
            else:
                free_cpus += cpus
                free_memory += memory
    return Worker(
        name=node,
        machine=machine or node.rsplit("@", 1)[-1],
        instance_id=instance_id,
        pool_id=pool_id,
        total_cpus=total_cpus,
        total_memory_mb=total_memory,
        free_cpus=0 if draining else free_cpus,
        free_memory_mb=0 if draining else free_memory,
        running_jobs=running,
        draining=draining,
        slots=len(slots),
    )
