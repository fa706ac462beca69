"""HTTP in front of the Cluster: the API server's URL space for the kinds served, bearer-token
authentication, JSON bodies, Status errors, watch streams, and the faults tests inject
(error answers, stalls)."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from tests.kube import apierrors
from tests.kube.api import Cluster
from tests.kube.apierrors import ApiError
from tests.kube.kinds import BY_PLURAL, KINDS, Kind
from tests.kube.selectors import field_matcher, label_matcher

VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-standin",
    "platform": "linux/amd64",
    "goVersion": "go1.24",
    "compiler": "gc",
    "gitCommit": "",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
}
_NAMESPACED = re.compile(
    r"^/(?:api|apis/(?P<group>[^/]+))/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/"
    r"(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)
_CLUSTER = re.compile(
    r"^/(?:api|apis/(?P<group>[^/]+))/(?P<version>[^/]+)/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


class Request(NamedTuple):
    """One answered request, for tests to assert what a client did."""

    method: str
    path: str
    status: int


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    message: str = ""


@dataclass
class Faults:
    """Error answers queued by tests, and a stall deadline (real time)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    queued: list[Fault] = field(default_factory=list)
    frozen_until: float = 0.0
    stopping: threading.Event = field(default_factory=threading.Event)

    def take(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.queued:
                if fault.method in (method, "*") and fault.path.search(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.queued.remove(fault)
                    return fault
        return None

    def stall(self) -> None:
        while not self.stopping.is_set():
            left = self.frozen_until - time.monotonic()
            if left <= 0:
                return
            self.stopping.wait(min(left, 0.05))


@dataclass(frozen=True)
class Route:
    kind: Kind
    namespace: str | None  # None: cluster-scoped, or a list across every namespace
    name: str | None
    subresource: str


def route(path: str) -> Route | None:
    found = _NAMESPACED.match(path)
    if found and found["plural"] not in ("status", "finalize"):
        kind = BY_PLURAL.get((found["group"] or "", found["plural"]))
        if kind is None or kind.version != found["version"] or not kind.namespaced:
            return None
        return Route(kind, found["ns"], found["name"], found["sub"] or "")
    found = _CLUSTER.match(path)
    if found:
        kind = BY_PLURAL.get((found["group"] or "", found["plural"]))
        if kind is None or kind.version != found["version"]:
            return None
        if kind.namespaced and found["name"]:
            return None  # a namespaced object is only reachable through its namespace
        return Route(kind, None, found["name"], found["sub"] or "")
    return None


def discovery(path: str) -> dict[str, Any] | None:
    if path == "/version":
        return VERSION
    if path == "/api":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
            ],
        }
    groups = sorted({k.group for k in KINDS if k.group})
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"},
                }
                for g in groups
            ],
        }
    for group in ["", *groups]:
        prefix = f"/apis/{group}/v1" if group else "/api/v1"
        if path == prefix:
            resources = [
                {
                    "name": k.plural,
                    "singularName": k.kind.lower(),
                    "namespaced": k.namespaced,
                    "kind": k.kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                }
                for k in KINDS
                if k.group == group
            ]
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/v1" if group else "v1",
                "resources": resources,
            }
    return None


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, cluster: Cluster, token: str, faults: Faults, log: list[Request], logs: Any = None
    ) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.cluster = cluster
        self.token = token
        self.faults = faults
        self.log = log
        self.pod_logs = logs  # (namespace, name) -> str, from the kubelet


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # ---- plumbing ------------------------------------------------------------------------
    def _serve(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        self._logged = False
        self._request = (method, path)
        status = 500
        try:
            body = self._read_body()
            self.server.faults.stall()
            if self.headers.get("Authorization") != f"Bearer {self.server.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            fault = self.server.faults.take(method, path)
            if fault is not None:
                raise _injected(fault)
            status = self._dispatch(method, path, query, body)
        except ApiError as exc:
            status = exc.code
            self._send_json(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError):
            status = 499
        except Exception as exc:  # a bug in the stand-in: answer like a server's 500
            status = 500
            self._send_json(
                500, ApiError(500, f"stand-in failure: {type(exc).__name__}: {exc}").status()
            )
            raise
        finally:
            self._record(status)

    def _record(self, status: int) -> None:
        """Log the answer before it is sent, so a client that has it finds it logged."""
        if not self._logged:
            self._logged = True
            self.server.log.append(Request(*self._request, status))

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise apierrors.bad_request(
                f"the body of the request was not valid JSON: {exc}"
            ) from None

    def _send_json(self, code: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self._record(code)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if code == 429:  # the API server's priority and fairness answer says when to retry
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, code: int, text: str) -> None:
        data = text.encode()
        self._record(code)
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # ---- the API -------------------------------------------------------------------------
    def _dispatch(self, method: str, path: str, query: dict[str, str], body: Any) -> int:
        found = discovery(path)
        if found is not None and method == "GET":
            self._send_json(200, found)
            return 200
        target = route(path)
        if target is None:
            raise ApiError(404, "the server could not find the requested resource", "NotFound", {})
        cluster = self.server.cluster
        kind, ns, name, sub = target.kind, target.namespace, target.name, target.subresource
        dry_run = "dryRun" in query
        if sub not in ("", "status", "log") or (sub == "log" and kind.kind != "Pod"):
            raise ApiError(404, "the server could not find the requested resource", "NotFound", {})
        if sub == "status" and not kind.has_status:
            raise ApiError(404, "the server could not find the requested resource", "NotFound", {})
        if name is None:
            if method == "GET":
                if query.get("watch") in ("true", "1"):
                    return self._watch(kind, ns, query)
                return self._list(kind, ns, query)
            if method == "POST" and (ns is not None or not kind.namespaced):
                self._send_json(201, cluster.create(kind, ns, body, dry_run))
                return 201
            raise ApiError(
                405,
                "the server does not allow this method on the requested resource",
                "MethodNotAllowed",
                {},
            )
        if method == "GET" and sub == "log":
            cluster.get(kind, ns, name)
            text = self.server.pod_logs(ns, name) if self.server.pod_logs else ""
            self._send_text(200, text)
            return 200
        if method == "GET":
            self._send_json(200, cluster.get(kind, ns, name))
            return 200
        if method == "PUT":
            self._send_json(200, cluster.replace(kind, ns, name, body, sub, dry_run))
            return 200
        if method == "PATCH":
            content_type = self.headers.get("Content-Type", "")
            self._send_json(200, cluster.patch(kind, ns, name, body, content_type, sub, dry_run))
            return 200
        if method == "DELETE":
            options = dict(body or {})
            if "gracePeriodSeconds" in query:
                options["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
            if "propagationPolicy" in query:
                options["propagationPolicy"] = query["propagationPolicy"]
            answer = cluster.delete(kind, ns, name, options, dry_run)
            self._send_json(200, answer)
            return 200
        raise ApiError(
            405,
            "the server does not allow this method on the requested resource",
            "MethodNotAllowed",
            {},
        )

    def _list(self, kind: Kind, ns: str | None, query: dict[str, str]) -> int:
        limit = int(query.get("limit") or 0) or None
        start = None
        if query.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(query["continue"]))
                start = (token["ns"], token["name"])
            except (ValueError, KeyError, TypeError):
                raise apierrors.bad_request(
                    "continue key is not valid: illegal base64 data"
                ) from None
        items, revision, rest, remaining = self.server.cluster.list(
            kind, ns, query.get("labelSelector"), query.get("fieldSelector"), limit, start
        )
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if rest is not None:
            token = json.dumps({"ns": rest[0], "name": rest[1], "rv": revision}).encode()
            meta["continue"] = base64.urlsafe_b64encode(token).decode()
            meta["remainingItemCount"] = remaining
        self._send_json(
            200,
            {
                "kind": kind.list_kind,
                "apiVersion": kind.api_version,
                "metadata": meta,
                "items": items,
            },
        )
        return 200

    def _watch(self, kind: Kind, ns: str | None, query: dict[str, str]) -> int:
        """A watch stream: ADDED for what exists when no resourceVersion is given, then every
        change; 410 Gone (as an ERROR event) for a resourceVersion older than the history."""
        cluster = self.server.cluster
        labels = label_matcher(query.get("labelSelector"))
        fields = field_matcher(query.get("fieldSelector"), kind.fields, kind.kind)
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)

        def wanted(k: Kind, obj: dict[str, Any]) -> bool:
            return (
                k == kind
                and (ns is None or obj["metadata"].get("namespace") == ns)
                and labels(obj["metadata"].get("labels") or {})
                and fields(obj)
            )

        with cluster.lock:
            since_text = query.get("resourceVersion") or "0"
            if since_text == "0":
                since = cluster.revision
                initial = [
                    ("ADDED", cluster.shown(kind, o))
                    for o in cluster.items(kind, ns)
                    if wanted(kind, o)
                ]
            else:
                since = int(since_text)
                initial = []
                cluster.events_since(since)  # 410 before the stream starts
        self._record(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event, obj in initial:
            self._chunk({"type": event, "object": obj})
        stopping = self.server.faults.stopping
        while time.monotonic() < deadline and not stopping.is_set():
            with cluster.lock:
                try:
                    entries = cluster.events_since(since)
                except ApiError as exc:
                    self._chunk({"type": "ERROR", "object": exc.status()})
                    break
                if not entries:
                    cluster.changed.wait(min(0.2, max(deadline - time.monotonic(), 0)))
                    continue
            for revision, event, k, obj in entries:
                since = revision
                if wanted(k, obj):
                    self._chunk({"type": event, "object": cluster.shown(k, obj)})
        self.wfile.write(b"0\r\n\r\n")
        return 200

    def _chunk(self, payload: Any) -> None:
        data = json.dumps(payload).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _injected(fault: Fault) -> ApiError:
    messages = {
        410: "too old resource version: 1 (2)",
        403: "forbidden (injected by the test)",
        429: "too many requests, please try again later",
        500: "Internal error occurred: injected by the test",
        503: "the server is currently unable to handle the request",
        504: "Timeout: request did not complete within requested timeout",
    }
    message = fault.message or messages.get(fault.status, f"injected HTTP {fault.status}")
    details = {"retryAfterSeconds": 1} if fault.status in (429, 503, 504) else {}
    return ApiError(fault.status, message, apierrors.REASONS.get(fault.status), details)
