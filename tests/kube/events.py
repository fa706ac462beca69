"""Events as the kubelet's and the scheduler's recorders write them: about one pod, counted up
when the same one happens again."""

from __future__ import annotations

import copy
import secrets
from typing import Any

from tests.kube.api import Cluster
from tests.kube.kinds import BY_KIND

NODE = "standin-node"
EVENT = BY_KIND["Event"]


def record(
    cluster: Cluster,
    pod: dict[str, Any],
    type_: str,
    reason: str,
    message: str,
    component: str = "kubelet",
    field_path: str | None = None,
    repeat: bool = True,
) -> None:
    """Record an Event about `pod`; the same one again counts up (as the recorder
    aggregates), unless `repeat` is False: then it is recorded once per message."""
    meta = pod["metadata"]
    involved = {
        "kind": "Pod",
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
        "apiVersion": "v1",
    }
    if field_path:
        involved["fieldPath"] = f"spec.containers{{{field_path}}}"
    now = cluster.now()
    with cluster.lock:
        for existing in cluster.items(EVENT, meta["namespace"]):
            if (
                existing.get("involvedObject", {}).get("uid") == meta["uid"]
                and existing.get("reason") == reason
                and existing.get("message") == message
            ):
                if repeat:
                    new = copy.deepcopy(existing)
                    new["count"] = int(existing.get("count") or 1) + 1
                    new["lastTimestamp"] = now
                    cluster.store_update(EVENT, existing, new)
                return
        if cluster.find(BY_KIND["Namespace"], None, meta["namespace"]) is None:
            return
        cluster.create(
            EVENT,
            meta["namespace"],
            {
                "metadata": {
                    "name": f"{meta['name']}.{secrets.token_hex(8)}",
                    "namespace": meta["namespace"],
                },
                "involvedObject": involved,
                "reason": reason,
                "message": message,
                "type": type_,
                "source": {
                    "component": component,
                    **({"host": NODE} if component == "kubelet" else {}),
                },
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "reportingComponent": component,
                "reportingInstance": NODE if component == "kubelet" else "",
            },
        )
