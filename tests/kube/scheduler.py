"""The default scheduler's filters for the stand-in's one node, and its FailedScheduling
message: taints and tolerations, node selector and required node affinity, resources."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from tests.kube import quantity
from tests.kube.podrules import pod_resources

MAX_PODS = 110
NOT_HELPFUL = "1 Preemption is not helpful for scheduling."
NO_VICTIMS = "1 No preemption victims found for incoming pod."


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    operator = toleration.get("operator") or "Equal"
    if not toleration.get("key"):
        return operator == "Exists"
    if toleration["key"] != taint.get("key"):
        return False
    return operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated(pod: dict[str, Any], taints: list[dict[str, Any]]) -> dict[str, Any] | None:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue  # PreferNoSchedule only steers
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _expression(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels and labels[key].lstrip("-").isdigit() and values:
        return (
            int(labels[key]) > int(values[0]) if op == "Gt" else int(labels[key]) < int(values[0])
        )
    return False


def selects(pod: dict[str, Any], labels: dict[str, str]) -> bool:
    """nodeSelector and requiredDuringSchedulingIgnoredDuringExecution node affinity."""
    spec = pod.get("spec") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    return any(
        all(_expression(e, labels) for e in term.get("matchExpressions") or []) for term in terms
    )


def unfit(
    pod: dict[str, Any],
    allocatable: dict[str, Fraction],
    used: dict[str, Fraction],
    pods_on_node: int,
    labels: dict[str, str],
    taints: list[dict[str, Any]],
) -> str | None:
    """None if the pod fits the node, else the scheduler's FailedScheduling message. Filters
    run in the scheduler's order and the first that fails speaks for the node."""
    taint = untolerated(pod, taints)
    if taint is not None:
        shown = (
            f"{taint.get('key')}: {taint.get('value')}"
            if taint.get("value")
            else str(taint.get("key"))
        )
        return _message([f"1 node(s) had untolerated taint {{{shown}}}"], NOT_HELPFUL)
    if not selects(pod, labels):
        return _message(["1 node(s) didn't match Pod's node affinity/selector"], NOT_HELPFUL)
    reasons = []
    if pods_on_node + 1 > MAX_PODS:
        reasons.append("1 Too many pods")
    for name, amount in sorted(pod_resources(pod, "requests").items()):
        if amount > 0 and used.get(name, Fraction(0)) + amount > allocatable.get(name, Fraction(0)):
            reasons.append(f"1 Insufficient {name}")
    return _message(reasons, NO_VICTIMS) if reasons else None


def _message(reasons: list[str], preemption: str) -> str:
    return (
        f"0/1 nodes are available: {', '.join(sorted(reasons))}. "
        f"preemption: 0/1 nodes are available: {preemption}"
    )


def node_allocatable(cpus: float, memory_mb: int) -> dict[str, Fraction]:
    return {
        "cpu": quantity.parse(str(cpus)),
        "memory": Fraction(memory_mb * 1024 * 1024),
        "pods": Fraction(MAX_PODS),
        "ephemeral-storage": Fraction(100 * 2**30),
    }
