"""What the API server does to a pod beyond the schema: defaults, the checks its validation
makes, the fields an update may change, the requests the scheduler and quota count."""

from __future__ import annotations

import copy
import re
from fractions import Fraction
from typing import Any

from tests.kube import quantity

Cause = dict[str, str]
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
COMPUTE = ("cpu", "memory")


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(spec.get("containers") or [])


def default_pod(pod: dict[str, Any]) -> None:
    """The defaults a real server fills in on create, so a read pod looks like a cluster's."""
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    for container in [*containers(spec), *(spec.get("initContainers") or [])]:
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1]
        latest = "@" not in tag and (":" not in tag or tag.endswith(":latest"))
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        resources = container.setdefault("resources", {})
        limits = resources.get("limits") or {}
        requests = resources.get("requests")
        if limits:  # requests default to the limits, resource by resource
            merged = dict(limits)
            merged.update(requests or {})
            resources["requests"] = merged
    for volume in spec.get("volumes") or []:
        for source in ("configMap", "secret"):
            if source in volume:
                volume[source].setdefault("defaultMode", 0o644)


def _quantity_causes(field: str, values: dict[str, Any]) -> list[Cause]:
    causes = []
    for name, value in (values or {}).items():
        try:
            amount = quantity.parse(value)
        except quantity.QuantityError as exc:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": f"{field}[{name}]",
                    "message": f"Invalid value: {value!r}: {exc}",
                }
            )
            continue
        if amount < 0:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": f"{field}[{name}]",
                    "message": f"Invalid value: {value!r}: must be greater than or equal to 0",
                }
            )
    return causes


def validate_pod(pod: dict[str, Any]) -> list[Cause]:
    """The checks of the server's pod validation that the schema cannot express."""
    spec = pod.get("spec") or {}
    causes: list[Cause] = []
    listed = containers(spec)
    if not listed:
        causes.append(
            {
                "reason": "FieldValueRequired",
                "field": "spec.containers",
                "message": "Required value",
            }
        )
    seen: set[str] = set()
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    for index, container in enumerate(listed):
        where = f"spec.containers[{index}]"
        name = str(container.get("name", ""))
        if not _DNS_LABEL.match(name) or len(name) > 63:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": f"{where}.name",
                    "message": f"Invalid value: {name!r}: a lowercase RFC 1123 label must "
                    "consist of lower case alphanumeric characters or '-'",
                }
            )
        elif name in seen:
            causes.append(
                {
                    "reason": "FieldValueDuplicate",
                    "field": f"{where}.name",
                    "message": f"Duplicate value: {name!r}",
                }
            )
        seen.add(name)
        if not str(container.get("image", "")).strip():
            causes.append(
                {
                    "reason": "FieldValueRequired",
                    "field": f"{where}.image",
                    "message": "Required value",
                }
            )
        resources = container.get("resources") or {}
        causes += _quantity_causes(f"{where}.resources.requests", resources.get("requests") or {})
        causes += _quantity_causes(f"{where}.resources.limits", resources.get("limits") or {})
        causes += _requests_within_limits(where, resources)
        for env_index, env in enumerate(container.get("env") or []):
            if not _ENV_NAME.match(str(env.get("name", ""))):
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "field": f"{where}.env[{env_index}].name",
                        "message": f"Invalid value: {env.get('name')!r}: a valid "
                        "environment variable name must consist of alphabetic "
                        "characters, digits, '_', '-', or '.'",
                    }
                )
        for mount_index, mount in enumerate(container.get("volumeMounts") or []):
            if mount.get("name") not in volumes:
                causes.append(
                    {
                        "reason": "FieldValueNotFound",
                        "field": f"{where}.volumeMounts[{mount_index}].name",
                        "message": f"Not found: {mount.get('name')!r}",
                    }
                )
    return causes


def _requests_within_limits(where: str, resources: dict[str, Any]) -> list[Cause]:
    causes = []
    limits = resources.get("limits") or {}
    for name, value in (resources.get("requests") or {}).items():
        if name not in limits:
            continue
        try:
            if quantity.parse(value) > quantity.parse(limits[name]):
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "field": f"{where}.resources.requests",
                        "message": f"Invalid value: {value!r}: must be less than or equal "
                        f"to {name} limit of {limits[name]}",
                    }
                )
        except quantity.QuantityError:
            pass  # reported by the quantity check
    return causes


def pod_resources(pod: dict[str, Any], which: str) -> dict[str, Fraction]:
    """The pod's effective `requests` or `limits`: its containers' sum, or an init container's
    if that is larger (init containers run one at a time, before the others)."""
    spec = pod.get("spec") or {}
    total: dict[str, Fraction] = {}
    for container in containers(spec):
        for name, value in ((container.get("resources") or {}).get(which) or {}).items():
            total[name] = total.get(name, Fraction(0)) + quantity.parse(value)
    for container in spec.get("initContainers") or []:
        for name, value in ((container.get("resources") or {}).get(which) or {}).items():
            total[name] = max(total.get(name, Fraction(0)), quantity.parse(value))
    return total


def qos_class(pod: dict[str, Any]) -> str:
    listed = containers(pod.get("spec") or {})
    resources = [c.get("resources") or {} for c in listed]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for name in COMPUTE:
            if name not in limits or quantity.parse(limits[name]) != quantity.parse(
                requests.get(name, limits[name])
            ):
                return "Burstable"
    return "Guaranteed"


# What a pod update may change in spec (everything else is immutable once created).
def _mutable_view(spec: dict[str, Any]) -> dict[str, Any]:
    view = copy.deepcopy(spec)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        view.pop(key, None)
    for group in ("containers", "initContainers"):
        for container in view.get(group) or []:
            container.pop("image", None)
    return view


def spec_update_causes(old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    if _mutable_view(old.get("spec") or {}) == _mutable_view(new.get("spec") or {}):
        return []
    return [
        {
            "reason": "FieldValueForbidden",
            "field": "spec",
            "message": "Forbidden: pod updates may not change fields other than "
            "`spec.containers[*].image`,`spec.initContainers[*].image`,"
            "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
            "existing tolerations),`spec.terminationGracePeriodSeconds` "
            "(allow it to be set to 1 if it was previously negative)",
        }
    ]
