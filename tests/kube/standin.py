"""A strict Kubernetes API stand-in for tests: a real HTTP server on 127.0.0.1 that the real
`kubernetes` client reaches through a kubeconfig, keeping state the way an API server does
(see api.py for the rules, server.py for HTTP, kubelet.py for the node that runs pods).

    with KubeStandIn(tmp_path, node_cpus=4) as kube:
        core = kubernetes.client.CoreV1Api(kube_client(kube))

Serves core/v1 pods (and their status and log), configmaps, secrets, events, namespaces,
resourcequotas, nodes (its one node) and coordination.k8s.io/v1 leases. Its one node runs
scheduled pods through a PodRunner: runners.SubprocessRunner (default; a container's command as
a local process) or podman.WorkerImageRunner (the container from its OCI image, e.g. the worker
image). Helpers for tests: create_namespace, objects, fail_next, freeze, sync, requests_log,
requests_matching, defects (stored objects failing the official schema: should stay empty).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import kubernetes
import yaml

from tests.kube.api import Cluster
from tests.kube.kinds import BY_KIND, kind_named
from tests.kube.kubelet import Kubelet
from tests.kube.runners import PodRunner, SubprocessRunner
from tests.kube.server import Fault, Faults, Request, Server

CONTEXT = "standin"


class KubeStandIn:
    def __init__(
        self,
        workdir: Path,
        *,
        clock: Callable[[], float] = time.time,
        node_cpus: float = 8,
        node_memory_mb: int = 16384,
        node_labels: dict[str, str] | None = None,
        node_taints: list[dict[str, Any]] | None = None,
        runner: PodRunner | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.clock = clock
        self.cluster = Cluster(clock)
        self.token = secrets.token_urlsafe(24)
        self.requests_log: list[Request] = []
        self._faults = Faults()
        self.runner = runner if runner is not None else SubprocessRunner(self.workdir / "pods")
        self.kubelet = Kubelet(
            self.cluster,
            self.runner,
            cpus=node_cpus,
            memory_mb=node_memory_mb,
            labels=node_labels or {},
            taints=node_taints or [],
        )
        self._server: Server | None = None
        self._threads: list[threading.Thread] = []
        self.url = ""
        self.kubeconfig = self.workdir / "kubeconfig"

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> KubeStandIn:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create_namespace(name)
        self.kubelet.register_node()
        self._server = Server(
            self.cluster, self.token, self._faults, self.requests_log, self.kubelet.logs
        )
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        self._write_kubeconfig()
        serve = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="kube-standin-http",
            daemon=True,
        )
        serve.start()
        self._threads.append(serve)
        self.kubelet.start(self._faults.stopping)
        return self

    def stop(self) -> None:
        """Stop serving, stop every pod's container, and wait for the threads."""
        self._faults.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.kubelet.stop()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> KubeStandIn:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CONTEXT, "cluster": {"server": self.url}}],
            "users": [{"name": CONTEXT, "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": CONTEXT,
                    "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"},
                }
            ],
            "current-context": CONTEXT,
            "preferences": {},
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    # ---- helpers for tests ---------------------------------------------------------------
    def create_namespace(self, name: str) -> dict[str, Any]:
        kind = BY_KIND["Namespace"]
        with self.cluster.lock:
            existing = self.cluster.find(kind, None, name)
            if existing is not None:
                return self.cluster.shown(kind, existing)
            return self.cluster.create(kind, None, {"metadata": {"name": name}})

    def objects(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        """The stored objects of a kind in a namespace (for cluster-scoped kinds the namespace
        is ignored), as the server would show them."""
        found = kind_named(kind)
        with self.cluster.lock:
            items = self.cluster.items(found, namespace if found.namespaced else None)
            return [self.cluster.shown(found, o) for o in items]

    def fail_next(self, method: str, path_regex: str, status: int, times: int = 1) -> None:
        """The next `times` requests with `method` ("*" for any) whose path matches get an
        error answer with `status` (a Status body with the reason the server would give)."""
        with self._faults.lock:
            self._faults.queued.append(Fault(method.upper(), re.compile(path_regex), status, times))

    def freeze(self, seconds: float) -> None:
        """Every answer stalls for `seconds` of real time from now (for client timeouts)."""
        self._faults.frozen_until = time.monotonic() + seconds

    def sync(self) -> None:
        """Run the scheduler and kubelet now (they also run every 50 ms): a pass, the
        containers it started, another pass."""
        self.kubelet.settle()

    @property
    def defects(self) -> list[str]:
        """Objects the stand-in stored that fail the official schema (its own bugs)."""
        return list(self.cluster.defects)

    def requests_matching(self, method: str, path_regex: str) -> list[Request]:
        pattern = re.compile(path_regex)
        return [r for r in list(self.requests_log) if r.method == method and pattern.search(r.path)]


def kube_client(standin: KubeStandIn) -> kubernetes.client.ApiClient:
    """An ApiClient of the real kubernetes package, configured only by the kubeconfig file."""
    return kubernetes.config.new_client_from_config(config_file=str(standin.kubeconfig))
