"""The API server's semantics over an in-memory store: create, read, list, replace, patch and
delete with the real rules (uid, creationTimestamp and resourceVersion assigned; 409 on a stale
update or a duplicate; 404; 422 for bodies that fail the official schema; quota admission;
graceful pod deletion; ownerReference garbage collection). HTTP lives in server.py."""

from __future__ import annotations

import base64
import binascii
import copy
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.kube import apierrors, podrules, quota
from tests.kube.apierrors import ApiError
from tests.kube.kinds import BY_KIND, KINDS, Kind
from tests.kube.schema import schema_causes
from tests.kube.selectors import field_matcher, label_matcher

Obj = dict[str, Any]
Key = tuple[str, str, str]  # kind, namespace ("" for cluster-scoped), name

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
HISTORY = 2000  # watch events kept; an older resourceVersion is 410 Gone


def timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


class Cluster:
    """The stored objects and the rules every change goes through; one lock for all."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.objects: dict[Key, Obj] = {}
        self.revision = 0
        self.history: list[tuple[int, str, Kind, Obj]] = []  # (rv, type, kind, object)
        self.on_removed: list[Callable[[Kind, Obj], None]] = []
        self.propagation: dict[str, str] = {}  # uid of a terminating pod -> its policy
        self.history_limit = HISTORY
        # Objects the stand-in itself stored that fail the official schema (its own bugs: the
        # client's strict models would refuse them); tests assert this stays empty.
        self.defects: list[str] = []

    # ---- helpers -------------------------------------------------------------------------
    def now(self) -> str:
        return timestamp(self.clock())

    def _bump(self, kind: Kind, obj: Obj, event: str) -> None:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        self.history.append((self.revision, event, kind, copy.deepcopy(obj)))
        del self.history[: -self.history_limit]
        if event != "DELETED":
            for cause in schema_causes(kind, self.shown(kind, obj)):
                self.defects.append(f"{kind.kind} {obj['metadata'].get('name')}: {cause}")
        self.changed.notify_all()

    @staticmethod
    def key(kind: Kind, namespace: str | None, name: str) -> Key:
        return kind.kind, namespace or "" if kind.namespaced else "", name

    def find(self, kind: Kind, namespace: str | None, name: str) -> Obj | None:
        return self.objects.get(self.key(kind, namespace, name))

    def by_uid(self, uid: str) -> tuple[Kind, Obj] | None:
        for (kind_name, _, _), obj in self.objects.items():
            if obj["metadata"].get("uid") == uid:
                return BY_KIND[kind_name], obj
        return None

    def items(self, kind: Kind, namespace: str | None = None) -> list[Obj]:
        """Stored objects of a kind, in the order etcd keeps them (namespace, name)."""
        found = [
            obj
            for (k, ns, _), obj in self.objects.items()
            if k == kind.kind and (namespace is None or ns == namespace)
        ]
        return sorted(
            found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])
        )

    def _require_namespace(self, kind: Kind, namespace: str | None) -> None:
        if kind.namespaced and self.find(BY_KIND["Namespace"], None, namespace or "") is None:
            raise apierrors.not_found("namespaces", "", namespace or "")

    # ---- read ----------------------------------------------------------------------------
    def get(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        with self.lock:
            obj = self.find(kind, namespace, name)
            if obj is None:
                raise apierrors.not_found(kind.plural, kind.group, name)
            return self.shown(kind, obj)

    @staticmethod
    def shown(kind: Kind, obj: Obj) -> Obj:
        shown = copy.deepcopy(obj)
        shown["apiVersion"], shown["kind"] = kind.api_version, kind.kind
        return shown

    def list(
        self,
        kind: Kind,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        start_after: tuple[str, str] | None = None,
    ) -> tuple[list[Obj], int, tuple[str, str] | None, int]:
        """Matching objects, the revision read at, the last key when `limit` cut the list
        short, and how many remain after it."""
        labels = label_matcher(label_selector)
        fields = field_matcher(field_selector, kind.fields, kind.kind)
        with self.lock:
            matched = [
                o
                for o in self.items(kind, namespace)
                if labels(o["metadata"].get("labels") or {}) and fields(o)
            ]
            if start_after is not None:
                matched = [o for o in matched if _position(o) > start_after]
            rest: tuple[str, str] | None = None
            remaining = 0
            if limit and len(matched) > limit:
                remaining = len(matched) - limit
                matched = matched[:limit]
                rest = _position(matched[-1])
            return [copy.deepcopy(o) for o in matched], self.revision, rest, remaining

    # ---- create --------------------------------------------------------------------------
    def create(self, kind: Kind, namespace: str | None, body: Obj, dry_run: bool = False) -> Obj:
        with self.lock:
            obj = self._admit_body(kind, namespace, body)
            meta = obj["metadata"]
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
            self._check_name(kind, meta.get("name") or "", obj)
            self._require_namespace(kind, namespace)
            if self.find(kind, namespace, meta["name"]) is not None:
                raise apierrors.already_exists(kind.plural, kind.group, meta["name"])
            for field in (
                "uid",
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
                "managedFields",
            ):
                meta.pop(field, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = self.now()
            if kind.namespaced:
                meta["namespace"] = namespace
            self._prepare_create(kind, obj)
            self._validate(kind, obj)
            self._quota_admission(kind, obj)
            if dry_run:
                return self.shown(kind, obj)
            self.objects[self.key(kind, namespace, meta["name"])] = obj
            self._bump(kind, obj, "ADDED")
            self.refresh_quotas(meta.get("namespace"))
            return self.shown(kind, obj)

    def _admit_body(self, kind: Kind, namespace: str | None, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise apierrors.bad_request(
                f"the body of the request was not a JSON object ({kind.kind})"
            )
        obj = copy.deepcopy(body)
        if (
            obj.get("apiVersion", kind.api_version) != kind.api_version
            or obj.get("kind", kind.kind) != kind.kind
        ):
            raise apierrors.bad_request(
                f"the API version in the data ({obj.get('apiVersion')}) does not match the "
                f"expected API version ({kind.api_version})"
                if obj.get("apiVersion", kind.api_version) != kind.api_version
                else f"the kind in the data ({obj.get('kind')}) does not match the expected kind "
                f"({kind.kind})"
            )
        obj.pop("apiVersion", None)
        obj.pop("kind", None)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise apierrors.bad_request("metadata must be an object")
        if kind.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise apierrors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        return obj

    def _check_name(self, kind: Kind, name: str, obj: Obj) -> None:
        pattern = _LABEL if kind.kind == "Namespace" else _SUBDOMAIN
        limit = 63 if kind.kind == "Namespace" else 253
        if not name:
            raise apierrors.invalid(
                kind.kind,
                kind.group,
                "",
                [
                    {
                        "reason": "FieldValueRequired",
                        "field": "metadata.name",
                        "message": "Required value: name or generateName is required",
                    }
                ],
            )
        if not pattern.match(name) or len(name) > limit:
            what = "label" if kind.kind == "Namespace" else "subdomain"
            raise apierrors.invalid(
                kind.kind,
                kind.group,
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "metadata.name",
                        "message": f"Invalid value: {name!r}: a lowercase RFC 1123 {what} "
                        "must consist of lower case alphanumeric characters, '-' or '.', "
                        "and must start and end with an alphanumeric character",
                    }
                ],
            )

    def _prepare_create(self, kind: Kind, obj: Obj) -> None:
        """What the server's strategies do on create: reset status, fill in defaults."""
        if kind.kind == "Pod":
            podrules.default_pod(obj)
            obj["status"] = {"phase": "Pending", "qosClass": podrules.qos_class(obj)}
        elif kind.kind == "Namespace":
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj[
                "metadata"
            ]["name"]
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
        elif kind.kind == "Secret":
            _fold_string_data(obj)
            obj.setdefault("type", "Opaque")
        elif kind.kind == "ResourceQuota":
            obj["status"] = {}

    def _validate(self, kind: Kind, obj: Obj) -> None:
        name = obj["metadata"].get("name", "")
        causes = schema_causes(kind, self.shown(kind, obj))
        if not causes:
            causes = self._semantic_causes(kind, obj)
        if causes:
            raise apierrors.invalid(kind.kind, kind.group, name, causes)

    @staticmethod
    def _semantic_causes(kind: Kind, obj: Obj) -> list[dict[str, str]]:
        if kind.kind == "Pod":
            return podrules.validate_pod(obj)
        if kind.kind in ("ConfigMap", "Secret"):
            return _data_causes(kind, obj)
        if kind.kind == "Lease":
            duration = (obj.get("spec") or {}).get("leaseDurationSeconds")
            if duration is not None and duration <= 0:
                return [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "spec.leaseDurationSeconds",
                        "message": f"Invalid value: {duration}: must be greater than 0",
                    }
                ]
        if kind.kind == "ResourceQuota":
            return podrules._quantity_causes("spec.hard", (obj.get("spec") or {}).get("hard") or {})
        return []

    def _quota_admission(self, kind: Kind, obj: Obj) -> None:
        namespace = obj["metadata"].get("namespace")
        if not kind.namespaced or kind.kind == "Event":
            return
        for rq in self.items(BY_KIND["ResourceQuota"], namespace):
            used = quota.namespace_usage(rq, self._namespace_objects(namespace))
            why = quota.refusal(kind.plural, obj, rq, used)
            if why:
                raise apierrors.forbidden(
                    kind.plural, kind.group, obj["metadata"].get("name", ""), why
                )

    def _namespace_objects(self, namespace: str | None) -> dict[str, list[Obj]]:
        return {k.plural: self.items(k, namespace) for k in KINDS if k.namespaced}

    def refresh_quotas(self, namespace: str | None) -> None:
        """The quota controller: `status.used` follows every change in the namespace."""
        if namespace is None:
            return
        rq_kind = BY_KIND["ResourceQuota"]
        for rq in self.items(rq_kind, namespace):
            status = quota.quota_status(
                rq, quota.namespace_usage(rq, self._namespace_objects(namespace))
            )
            if rq.get("status") != status:
                rq["status"] = status
                self._bump(rq_kind, rq, "MODIFIED")

    # ---- update --------------------------------------------------------------------------
    def replace(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        body: Obj,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Obj:
        with self.lock:
            obj = self._admit_body(kind, namespace, body)
            meta = obj["metadata"]
            if meta.get("name") not in (None, name):
                raise apierrors.bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the "
                    f"URL ({name})"
                )
            old = self.find(kind, namespace, name)
            if old is None:
                raise apierrors.not_found(kind.plural, kind.group, name)
            wanted = meta.get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise apierrors.conflict(kind.plural, kind.group, name)
            if meta.get("uid") and meta["uid"] != old["metadata"]["uid"]:
                raise apierrors.conflict(
                    kind.plural,
                    kind.group,
                    name,
                    (
                        f"Precondition failed: UID in precondition: {meta['uid']}, UID in object "
                        f"meta: {old['metadata']['uid']}"
                    ),
                )
            new = self._merged_update(kind, old, obj, subresource)
            self._validate(kind, new)
            self._update_causes(kind, old, new)
            if dry_run:
                return self.shown(kind, new)
            return self.store_update(kind, old, new)

    def _merged_update(self, kind: Kind, old: Obj, obj: Obj, subresource: str) -> Obj:
        """The stored object after an update: what the client may not change is kept."""
        new = copy.deepcopy(obj)
        meta = new["metadata"]
        for field in (
            "uid",
            "creationTimestamp",
            "namespace",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "generation",
        ):
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
            else:
                meta.pop(field, None)
        meta["name"] = old["metadata"]["name"]
        if subresource == "status":  # only status changes through /status
            kept = copy.deepcopy(old)
            kept["status"] = new.get("status", {})
            return kept
        if kind.has_status:
            new["status"] = copy.deepcopy(old.get("status", {}))
        if kind.kind == "Secret":
            _fold_string_data(new)
            new.setdefault("type", old.get("type", "Opaque"))
        if kind.kind == "Pod":
            podrules.default_pod(new)
        return new

    def _update_causes(self, kind: Kind, old: Obj, new: Obj) -> None:
        causes: list[dict[str, str]] = []
        if kind.kind == "Pod":
            causes = podrules.spec_update_causes(old, new)
        immutable = kind.kind in ("ConfigMap", "Secret") and old.get("immutable")
        if immutable and any(old.get(f) != new.get(f) for f in ("data", "binaryData", "immutable")):
            causes = [
                {
                    "reason": "FieldValueForbidden",
                    "field": "data",
                    "message": "Forbidden: field is immutable when `immutable` is set",
                }
            ]
        if kind.kind == "Secret" and old.get("type") != new.get("type"):
            causes = [
                {
                    "reason": "FieldValueInvalid",
                    "field": "type",
                    "message": f"Invalid value: {new.get('type')!r}: field is immutable",
                }
            ]
        if causes:
            raise apierrors.invalid(kind.kind, kind.group, new["metadata"]["name"], causes)

    def store_update(self, kind: Kind, old: Obj, new: Obj) -> Obj:
        """Store `new` in place of `old` (a no-op keeps the resourceVersion, as the server
        does); an object whose finalizers are gone while it is being deleted is removed."""
        if new == old:
            return self.shown(kind, old)
        key = self.key(kind, old["metadata"].get("namespace"), old["metadata"]["name"])
        self.objects[key] = new
        self._bump(kind, new, "MODIFIED")
        meta = new["metadata"]
        finalized = meta.get("deletionTimestamp") and not meta.get("finalizers")
        if finalized and (kind.kind != "Pod" or meta.get("deletionGracePeriodSeconds") == 0):
            self.remove(kind, new)
        self.refresh_quotas(new["metadata"].get("namespace"))
        return self.shown(kind, new)

    def patch(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        patch: Any,
        content_type: str,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Obj:
        with self.lock:
            old = self.find(kind, namespace, name)
            if old is None:
                raise apierrors.not_found(kind.plural, kind.group, name)
            current = self.shown(kind, old)
            if "json-patch" in content_type:
                patched = _json_patch(current, patch)
            elif "merge-patch" in content_type:
                patched = _merge_patch(current, patch)
            else:
                raise ApiError(
                    415,
                    "the body of the request was in an unknown format - "
                    "accepted media types include: application/json-patch+json, "
                    "application/merge-patch+json, "
                    "application/strategic-merge-patch+json",
                    "UnsupportedMediaType",
                )
            if not isinstance(patched, dict):
                raise apierrors.bad_request("the patch did not produce an object")
            return self.replace(kind, namespace, name, patched, subresource, dry_run)

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

    def events_since(self, revision: int) -> list[tuple[int, str, Kind, Obj]]:
        if self.history and revision < self.history[0][0] - 1:
            raise apierrors.gone(f"too old resource version: {revision} ({self.history[0][0] - 1})")
        return [entry for entry in self.history if entry[0] > revision]


def _position(obj: Obj) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


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


def _fold_string_data(secret: Obj) -> None:
    """`stringData` is write-only: merged into `data`, base64-encoded, never stored."""
    string_data = secret.pop("stringData", None) or {}
    if string_data:
        data = secret.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _data_causes(kind: Kind, obj: Obj) -> list[dict[str, str]]:
    causes = []
    keys: set[str] = set()
    for field in ("data", "binaryData"):
        for key, value in (obj.get(field) or {}).items():
            if not _CONFIG_KEY.match(key) or key in (".", ".."):
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "field": f"{field}[{key}]",
                        "message": f"Invalid value: {key!r}: a valid config key must "
                        "consist of alphanumeric characters, '-', '_' or '.'",
                    }
                )
            if key in keys:
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "field": f"{field}[{key}]",
                        "message": f"Invalid value: {key!r}: duplicate of key present in data",
                    }
                )
            keys.add(key)
            if (kind.kind == "Secret" and field == "data") or field == "binaryData":
                try:
                    base64.b64decode(str(value), validate=True)
                except binascii.Error:
                    causes.append(
                        {
                            "reason": "FieldValueInvalid",
                            "field": f"{field}[{key}]",
                            "message": 'Invalid value: "<value omitted>": illegal base64 data',
                        }
                    )
    size = sum(len(str(v)) for f in ("data", "binaryData") for v in (obj.get(f) or {}).values())
    if size > 1024 * 1024:
        causes.append(
            {
                "reason": "FieldValueTooLong",
                "field": "data",
                "message": "Too long: must have at most 1048576 bytes",
            }
        )
    return causes


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 (strategic merge patches are treated the same: lists are replaced)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise apierrors.bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test."""
    if not isinstance(ops, list):
        raise apierrors.bad_request("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        kind = op.get("op")
        parts = _pointer(op.get("path", ""))
        if kind == "test":
            if _get(doc, parts) != op.get("value"):
                raise ApiError(
                    422,
                    f"the server rejected our request due to an error in our "
                    f"request: testing value {op.get('path')} failed",
                    "Invalid",
                )
            continue
        if kind in ("move", "copy"):
            value = copy.deepcopy(_get(doc, _pointer(op.get("from", ""))))
            if kind == "move":
                doc = _set(doc, _pointer(op["from"]), None, remove=True)
            doc = _set(doc, parts, value, insert=True)
        elif kind == "add":
            doc = _set(doc, parts, copy.deepcopy(op.get("value")), insert=True)
        elif kind == "replace":
            _get(doc, parts)
            doc = _set(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _set(doc, parts, None, remove=True)
        else:
            raise apierrors.bad_request(f"unknown JSON patch operation {kind!r}")
    return doc


def _get(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        try:
            doc = doc[int(part)] if isinstance(doc, list) else doc[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(
                422,
                f"the server rejected our request due to an error in our request: "
                f"path /{'/'.join(parts)} does not exist",
                "Invalid",
            ) from None
    return doc


def _set(doc: Any, parts: list[str], value: Any, insert: bool = False, remove: bool = False) -> Any:
    if not parts:
        return value
    parent = _get(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if remove:
            parent.pop(index)
        elif insert:
            parent.insert(index, value)
        else:
            parent[index] = value
    elif isinstance(parent, dict):
        if remove:
            if last not in parent:
                _get(doc, parts)
            parent.pop(last)
        else:
            parent[last] = value
    else:
        raise apierrors.bad_request(f"cannot patch inside a scalar at /{'/'.join(parts)}")
    return doc
