"""The API server's semantics over an in-memory store: create, read, list, replace, patch and
delete with the real rules (uid, creationTimestamp and resourceVersion assigned; 409 on a stale
update or a duplicate; 404; 422 for bodies that fail the official schema; quota admission;
graceful pod deletion; ownerReference garbage collection). HTTP lives in server.py."""

from __future__ import annotations

import copy
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from typing import Any

from tests.kube import apierrors, datarules, patching, podrules, quota
from tests.kube.apierrors import ApiError
from tests.kube.deletion import Deletion, timestamp
from tests.kube.kinds import BY_KIND, KINDS, Kind
from tests.kube.schema import schema_causes
from tests.kube.selectors import field_matcher, label_matcher

Obj = dict[str, Any]
Key = tuple[str, str, str]  # kind, namespace ("" for cluster-scoped), name

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
HISTORY = 2000  # watch events kept; an older resourceVersion is 410 Gone


class Cluster(Deletion):
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
            datarules.fold_string_data(obj)
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
            return datarules.data_causes(kind, obj)
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
            datarules.fold_string_data(new)
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
                patched = patching.json_patch(current, patch)
            elif "merge-patch" in content_type:
                patched = patching.merge_patch(current, patch)
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

    def events_since(self, revision: int) -> list[tuple[int, str, Kind, Obj]]:
        if self.history and revision < self.history[0][0] - 1:
            raise apierrors.gone(f"too old resource version: {revision} ({self.history[0][0] - 1})")
        return [entry for entry in self.history if entry[0] > revision]


def _position(obj: Obj) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
