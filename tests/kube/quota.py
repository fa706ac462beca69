"""ResourceQuota as the API server enforces it: the admission check that refuses an object
whose usage would pass a quota's `hard` (403, the server's own message), and `status.used` as
the quota controller keeps it."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from tests.kube import quantity
from tests.kube.podrules import containers, pod_resources

TERMINAL = ("Succeeded", "Failed")


def _compute(key: str) -> tuple[str, str] | None:
    """`requests.cpu`/`cpu` -> ("requests", "cpu"); `limits.memory` -> ("limits", "memory")."""
    if key.startswith(("requests.", "limits.")):
        which, _, name = key.partition(".")
        return which, name
    if key in ("cpu", "memory", "ephemeral-storage"):
        return "requests", key
    return None


def _counted_plural(key: str) -> str | None:
    """`pods`, `count/pods`, `configmaps`, `count/leases.coordination.k8s.io` -> the plural."""
    name = key.removeprefix("count/")
    if key.startswith("count/") or name in ("pods", "configmaps", "secrets", "resourcequotas"):
        return name.split(".")[0] if name.endswith(".coordination.k8s.io") else name
    return None


def pod_counts(pod: dict[str, Any]) -> bool:
    """Terminal pods no longer use the namespace's quota."""
    return (pod.get("status") or {}).get("phase") not in TERMINAL


def object_usage(plural: str, obj: dict[str, Any], keys: list[str]) -> dict[str, Fraction]:
    """What one object contributes to each quota key."""
    usage: dict[str, Fraction] = {}
    for key in keys:
        if _counted_plural(key) == plural:
            usage[key] = Fraction(1)
        compute = _compute(key)
        if compute and plural == "pods":
            usage[key] = pod_resources(obj, compute[0]).get(compute[1], Fraction(0))
    return usage


def namespace_usage(
    quota: dict[str, Any], objects: dict[str, list[dict[str, Any]]]
) -> dict[str, Fraction]:
    """`status.used`: the sum over the namespace's objects, by plural."""
    keys = list(((quota.get("spec") or {}).get("hard") or {}).keys())
    used = {key: Fraction(0) for key in keys}
    for plural, items in objects.items():
        for obj in items:
            if plural == "pods" and not pod_counts(obj):
                continue
            for key, amount in object_usage(plural, obj, keys).items():
                used[key] += amount
    return used


def quota_status(quota: dict[str, Any], used: dict[str, Fraction]) -> dict[str, Any]:
    hard = dict((quota.get("spec") or {}).get("hard") or {})
    return {"hard": hard, "used": {k: quantity.format_quantity(k, v) for k, v in used.items()}}


def _pretty(values: dict[str, Fraction]) -> str:
    return ",".join(f"{k}={quantity.format_quantity(k, v)}" for k, v in sorted(values.items()))


def refusal(
    plural: str, obj: dict[str, Any], quota: dict[str, Any], used: dict[str, Fraction]
) -> str | None:
    """Why `quota` refuses `obj` (the text after `... is forbidden: `), or None."""
    name = quota["metadata"]["name"]
    hard = {k: quantity.parse(v) for k, v in ((quota.get("spec") or {}).get("hard") or {}).items()}
    if plural == "pods":
        missing = _unspecified(obj, list(hard))
        if missing:
            return f"failed quota: {name}: must specify {missing}"
    requested = {k: v for k, v in object_usage(plural, obj, list(hard)).items() if v > 0}
    over = [k for k, v in requested.items() if used.get(k, Fraction(0)) + v > hard[k]]
    if not over:
        return None
    return (
        f"exceeded quota: {name}, requested: {_pretty({k: requested[k] for k in over})}, "
        f"used: {_pretty({k: used.get(k, Fraction(0)) for k in over})}, "
        f"limited: {_pretty({k: hard[k] for k in over})}"
    )


def _unspecified(pod: dict[str, Any], keys: list[str]) -> str:
    """A quota on a compute resource requires every container to state it."""
    parts = []
    for key in sorted(keys):
        compute = _compute(key)
        if compute is None or compute[1] not in ("cpu", "memory"):
            continue
        lacking = [
            str(c.get("name"))
            for c in containers(pod.get("spec") or {})
            if compute[1] not in ((c.get("resources") or {}).get(compute[0]) or {})
        ]
        if lacking:
            parts.append(f"{key} for: {','.join(lacking)}")
    return "; ".join(parts)
