"""Deletion as the API server and its controllers do it: preconditions, graceful pod deletion
(deletionTimestamp, then the kubelet removes the pod), finalizers, the namespace controller, and
the garbage collector following ownerReferences (background or orphan propagation, and a sweep
for dependents whose owners are all gone)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from tests.kube import apierrors, quota
from tests.kube.kinds import BY_KIND, KINDS, Kind

Obj = dict[str, Any]


def timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


class Deletion:
    """The deleting half of the Cluster (api.py), which provides the store and its lock."""

    # ---- delete --------------------------------------------------------------------------
    def delete(
        self, kind: Kind, namespace: str | None, name: str, options: Obj, dry_run: bool = False
    ) -> Obj:
        with self.lock:
            obj = self.find(kind, namespace, name)
            if obj is None:
                raise apierrors.not_found(kind.plural, kind.group, name)
            _check_preconditions(kind, obj, options.get("preconditions") or {})
            propagation = options.get("propagationPolicy") or (
                "Orphan" if options.get("orphanDependents") else "Background"
            )
            if dry_run:
                return self.shown(kind, obj) if kind.returns_deleted else _success(kind, obj)
            if kind.kind == "Pod":
                return self._delete_pod(kind, obj, options.get("gracePeriodSeconds"), propagation)
            if obj["metadata"].get("finalizers"):
                return self._mark_deleting(kind, obj, 0)
            if kind.kind == "Namespace":
                return self._delete_namespace(kind, obj)
            self.remove(kind, obj, propagation)
            return self.shown(kind, obj) if kind.returns_deleted else _success(kind, obj)

    def _mark_deleting(self, kind: Kind, obj: Obj, grace: int) -> Obj:
        new = copy.deepcopy(obj)
        new["metadata"]["deletionTimestamp"] = timestamp(self.clock() + grace)
        new["metadata"]["deletionGracePeriodSeconds"] = grace
        return self.store_update(kind, obj, new)

    def _delete_pod(self, kind: Kind, pod: Obj, grace: int | None, propagation: str) -> Obj:
        """Graceful deletion: a pod on a node gets its grace period (the kubelet stops it and
        then removes it); one never scheduled, or already finished, goes at once."""
        if grace is None:
            grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        phase = (pod.get("status") or {}).get("phase")
        if not pod["spec"].get("nodeName") or phase in quota.TERMINAL:
            grace = 0
        meta = pod["metadata"]
        self.propagation.setdefault(meta["uid"], propagation)
        if grace <= 0 and not meta.get("finalizers"):
            shown = self.shown(kind, pod)
            self.remove(kind, pod, propagation)
            return shown
        deadline = self.clock() + max(grace, 0)
        if meta.get("deletionTimestamp") and parse_timestamp(meta["deletionTimestamp"]) <= deadline:
            return self.shown(kind, pod)  # an earlier deadline stands
        return self._mark_deleting(kind, pod, max(grace, 0))

    def _delete_namespace(self, kind: Kind, ns: Obj) -> Obj:
        """The namespace controller: everything in it goes, then the namespace."""
        name = ns["metadata"]["name"]
        for other in KINDS:
            if other.namespaced:
                for obj in self.items(other, name):
                    self.remove(other, obj)
        terminating = self.shown(kind, ns)
        terminating["status"] = {"phase": "Terminating"}
        terminating["metadata"]["deletionTimestamp"] = self.now()
        self.remove(kind, ns)
        return terminating

    def remove(self, kind: Kind, obj: Obj, propagation: str | None = None) -> None:
        """Take the object out of the store, then let the garbage collector at its
        dependents (objects whose ownerReferences name its uid)."""
        meta = obj["metadata"]
        key = self.key(kind, meta.get("namespace"), meta["name"])
        stored = self.objects.get(key)
        if stored is None or stored["metadata"].get("uid") != meta.get("uid"):
            return  # already gone (or replaced by a namesake)
        propagation = propagation or self.propagation.get(meta["uid"], "Background")
        self.propagation.pop(meta["uid"], None)
        del self.objects[key]
        self._bump(kind, stored, "DELETED")
        for hook in self.on_removed:
            hook(kind, stored)
        self.collect_dependents(meta["uid"], meta.get("namespace"), propagation)
        self.refresh_quotas(meta.get("namespace"))

    def collect_dependents(self, uid: str, namespace: str | None, propagation: str) -> None:
        for (kind_name, ns, _), dependent in list(self.objects.items()):
            refs = dependent["metadata"].get("ownerReferences") or []
            if not any(r.get("uid") == uid for r in refs):
                continue
            if namespace and ns and ns != namespace:
                continue  # owners are in the same namespace, or cluster-scoped
            kind = BY_KIND[kind_name]
            if propagation == "Orphan":
                new = copy.deepcopy(dependent)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                self.store_update(kind, dependent, new)
                continue
            remaining = [r for r in refs if r.get("uid") != uid and self.by_uid(r.get("uid", ""))]
            if remaining:
                continue  # another owner still holds it
            if kind.kind == "Pod":
                self._delete_pod(kind, dependent, None, "Background")
            elif not dependent["metadata"].get("deletionTimestamp"):
                self.remove(kind, dependent)

    def collect_orphans(self) -> None:
        """The garbage collector's sweep: objects all of whose owners (of kinds this server
        knows) no longer exist are deleted, like dependents of a deleted owner."""
        with self.lock:
            known = {k.kind for k in KINDS}
            uids = {o["metadata"]["uid"] for o in self.objects.values()}
            for (kind_name, _ns, _), obj in list(self.objects.items()):
                refs = obj["metadata"].get("ownerReferences") or []
                if not refs or any(r.get("kind") not in known for r in refs):
                    continue
                if any(r.get("uid") in uids for r in refs):
                    continue
                kind = BY_KIND[kind_name]
                if kind.kind == "Pod":
                    if not obj["metadata"].get("deletionTimestamp"):
                        self._delete_pod(kind, obj, None, "Background")
                else:
                    self.remove(kind, obj)


def _success(kind: Kind, obj: Obj) -> Obj:
    details: Obj = {
        "name": obj["metadata"]["name"],
        "kind": kind.plural,
        "uid": obj["metadata"]["uid"],
    }
    if kind.group:
        details["group"] = kind.group
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def _check_preconditions(kind: Kind, obj: Obj, preconditions: Obj) -> None:
    meta = obj["metadata"]
    for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        wanted = preconditions.get(field)
        if wanted and wanted != meta.get(field):
            raise apierrors.conflict(
                kind.plural,
                kind.group,
                meta["name"],
                (
                    f"Precondition failed: {label} in precondition: {wanted}, {label} in object "
                    f"meta: {meta.get(field)}"
                ),
            )
