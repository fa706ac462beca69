"""The stand-in's node: the scheduler's decision for each new pod (bind it, or leave it Pending
with PodScheduled=False/Unschedulable and a FailedScheduling event), then a kubelet that runs
each bound pod's containers through a PodRunner and writes their status back: Pending ->
Running -> Succeeded/Failed, image pull errors, volumes that are not there yet, restarts with
back-off, and graceful termination ending in the pod's removal."""

from __future__ import annotations

import copy
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from tests.kube import events, podstatus, quantity, scheduler, volumes
from tests.kube.api import Cluster
from tests.kube.deletion import parse_timestamp, timestamp
from tests.kube.events import NODE
from tests.kube.kinds import BY_KIND
from tests.kube.podrules import pod_resources
from tests.kube.quota import TERMINAL
from tests.kube.runners import RUNNING, ContainerStartError, Exited, ImagePullError, PodRunner

POD = BY_KIND["Pod"]
BACKOFF_START, BACKOFF_MAX = 10.0, 300.0  # the kubelet's image pull and crash loop back-off
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(  # the distribution reference grammar, as the kubelet parses it
    rf"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)


@dataclass
class Container:
    name: str
    image: str
    handle: Any = None
    last_handle: Any = None  # the latest run's, for its logs after it ended
    starting: Future[Any] | None = None
    state: dict[str, Any] = field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0
    failures: int = 0  # consecutive pull failures or crashes, for the back-off
    retry_at: float = 0.0
    failed_at: float = 0.0
    stopping: bool = False
    ended: bool = False  # terminated for good (no restart under the pod's policy)


@dataclass
class PodRecord:
    uid: str
    namespace: str
    name: str
    containers: dict[str, Container]
    started: str = ""


class Kubelet:
    def __init__(
        self,
        cluster: Cluster,
        runner: PodRunner,
        *,
        cpus: float,
        memory_mb: int,
        labels: dict[str, str],
        taints: list[dict[str, Any]],
        interval: float = 0.05,
    ) -> None:
        self.cluster = cluster
        self.runner = runner
        self.allocatable = scheduler.node_allocatable(cpus, memory_mb)
        self.labels = {
            "kubernetes.io/hostname": NODE,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **labels,
        }
        self.taints = [dict(t) for t in taints]
        self.interval = interval
        self.records: dict[str, PodRecord] = {}
        self._step_lock = threading.RLock()
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="kubelet")
        self._thread: threading.Thread | None = None
        self._stopping: threading.Event | None = None

    # ---- the node ------------------------------------------------------------------------
    def register_node(self) -> None:
        allocatable = {
            name: quantity.format_quantity(name, value) for name, value in self.allocatable.items()
        }
        allocatable["memory"] = f"{int(self.allocatable['memory']) // 1024}Ki"
        node = {
            "metadata": {"name": NODE, "labels": dict(self.labels)},
            "spec": {"taints": self.taints} if self.taints else {},
            "status": {
                "capacity": allocatable,
                "allocatable": allocatable,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": self.cluster.now(),
                        "lastTransitionTime": self.cluster.now(),
                    }
                ],
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": NODE},
                ],
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": "standin",
                    "containerRuntimeVersion": "standin://1",
                    "kernelVersion": "",
                    "kubeProxyVersion": "",
                    "kubeletVersion": "v1.37.0",
                    "machineID": "standin",
                    "operatingSystem": "linux",
                    "osImage": "stand-in",
                    "systemUUID": "standin",
                },
            },
        }
        with self.cluster.lock:
            self.cluster.create(BY_KIND["Node"], None, node)
            stored = self.cluster.find(BY_KIND["Node"], None, NODE)
            assert stored is not None
            stored["status"] = node["status"]  # status is the kubelet's to write

    def start(self, stopping: threading.Event) -> None:
        self._stopping = stopping
        self._thread = threading.Thread(target=self._loop, name="kube-standin-kubelet", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        assert self._stopping is not None
        while not self._stopping.wait(self.interval):
            try:
                self.step()
            except Exception:  # a bad pass must not stop the node; the next one retries
                import logging

                logging.getLogger("tests.kube").exception("kubelet pass failed")

    def stop(self) -> None:
        """Kill every container and wait for the node's threads."""
        if self._stopping is not None:
            self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._step_lock:
            pending = [
                c.starting
                for r in self.records.values()
                for c in r.containers.values()
                if c.starting is not None
            ]
            wait(pending, timeout=130)
            kills = []
            for record in self.records.values():
                for container in record.containers.values():
                    handle = container.last_handle
                    starting = container.starting
                    if starting is not None and starting.done() and not starting.exception():
                        handle = starting.result()
                    if handle is not None:
                        kills.append(self._pool.submit(self.runner.stop, handle, 0))
            wait(kills, timeout=60)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def logs(self, namespace: str, name: str) -> str:
        for record in list(self.records.values()):
            if (record.namespace, record.name) == (namespace, name):
                for container in record.containers.values():
                    if container.last_handle is not None and hasattr(self.runner, "logs"):
                        return str(self.runner.logs(container.last_handle))
        return ""

    # ---- one pass ------------------------------------------------------------------------
    def step(self) -> None:
        with self._step_lock:
            with self.cluster.lock:
                pods = [copy.deepcopy(p) for p in self.cluster.items(POD)]
                self._schedule(pods)
                pods = [copy.deepcopy(p) for p in self.cluster.items(POD)]
            live = {p["metadata"]["uid"] for p in pods}
            for uid in [u for u in self.records if u not in live]:
                self._forget(self.records.pop(uid))
            for pod in pods:
                if (pod.get("spec") or {}).get("nodeName") == NODE:
                    self._sync(pod)
            self.cluster.collect_orphans()

    def settle(self, timeout: float = 130.0) -> None:
        """A pass, then wait for the containers it started, then another pass."""
        self.step()
        with self._step_lock:
            pending = [
                c.starting
                for r in self.records.values()
                for c in r.containers.values()
                if c.starting is not None
            ]
        wait(pending, timeout=timeout)
        self.step()

    # ---- the scheduler -------------------------------------------------------------------
    def _schedule(self, pods: list[dict[str, Any]]) -> None:
        bound = [
            p
            for p in pods
            if (p.get("spec") or {}).get("nodeName") == NODE
            and (p.get("status") or {}).get("phase") not in TERMINAL
        ]
        used: dict[str, Fraction] = {}
        for pod in bound:
            for name, amount in pod_resources(pod, "requests").items():
                used[name] = used.get(name, Fraction(0)) + amount
        waiting = [
            p
            for p in pods
            if not (p.get("spec") or {}).get("nodeName")
            and not p["metadata"].get("deletionTimestamp")
            and (p.get("spec") or {}).get("schedulerName", "default-scheduler")
            == "default-scheduler"
        ]
        waiting.sort(
            key=lambda p: (
                -int(p["spec"].get("priority") or 0),
                p["metadata"]["creationTimestamp"],
                p["metadata"]["name"],
            )
        )
        for pod in waiting:
            message = scheduler.unfit(
                pod, self.allocatable, used, len(bound), self.labels, self.taints
            )
            if message is None:
                self._bind(pod)
                bound.append(pod)
                for name, amount in pod_resources(pod, "requests").items():
                    used[name] = used.get(name, Fraction(0)) + amount
            else:
                self._unschedulable(pod, message)

    def _bind(self, pod: dict[str, Any]) -> None:
        def change(new: dict[str, Any]) -> None:
            new["spec"]["nodeName"] = NODE
            podstatus.set_condition(new, "PodScheduled", "True", None, None, self.cluster.now())

        self._update(pod, change)
        meta = pod["metadata"]
        self.event(
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {NODE}",
            "default-scheduler",
        )

    def _unschedulable(self, pod: dict[str, Any], message: str) -> None:
        def change(new: dict[str, Any]) -> None:
            podstatus.set_condition(
                new, "PodScheduled", "False", "Unschedulable", message, self.cluster.now()
            )

        self._update(pod, change)
        self.event(pod, "Warning", "FailedScheduling", message, "default-scheduler", repeat=False)

    # ---- the kubelet ---------------------------------------------------------------------
    def _sync(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        record = self.records.get(meta["uid"])
        if record is None:
            record = PodRecord(
                meta["uid"],
                meta["namespace"],
                meta["name"],
                {c["name"]: Container(c["name"], c["image"]) for c in pod["spec"]["containers"]},
            )
            record.started = self.cluster.now()
            self.records[meta["uid"]] = record
        if meta.get("deletionTimestamp"):
            self._terminate(pod, record)
            return
        if (pod.get("status") or {}).get("phase") in TERMINAL:
            return
        for spec in pod["spec"]["containers"]:
            container = record.containers[spec["name"]]
            container.image = spec["image"]  # an update may change the image
            self._run(pod, spec, container)
        self._write_status(pod, record)

    def _run(self, pod: dict[str, Any], spec: dict[str, Any], container: Container) -> None:
        now = self.cluster.clock()
        if container.starting is not None:
            if not container.starting.done():
                return
            future, container.starting = container.starting, None
            try:
                container.handle = container.last_handle = future.result()
            except ImagePullError as exc:
                if spec.get("imagePullPolicy") == "Never":
                    self._not_present(pod, container, now)
                else:
                    self._pull_failed(pod, container, str(exc), now)
                return
            except ContainerStartError as exc:
                self._ended(pod, container, 128, "StartError", str(exc), now)
                return
            container.failures = (
                0
                if container.state.get("waiting", {}).get("reason")
                in ("ErrImagePull", "ImagePullBackOff", "ContainerCreating")
                else container.failures
            )
            container.state = {"running": {"startedAt": timestamp(now)}}
            self.event(
                pod,
                "Normal",
                "Pulled",
                f'Container image "{container.image}" already present on machine',
                field_path=spec["name"],
            )
            self.event(
                pod,
                "Normal",
                "Created",
                f"Created container: {spec['name']}",
                field_path=spec["name"],
            )
            self.event(
                pod,
                "Normal",
                "Started",
                f"Started container {spec['name']}",
                field_path=spec["name"],
            )
        if container.handle is not None:
            state = self.runner.poll(container.handle)
            if state != RUNNING and isinstance(state, Exited):
                reason = "Completed" if state.code == 0 else "Error"
                self._ended(pod, container, state.code, reason, "", now)
            return
        if container.ended:
            return
        waiting = container.state.get("waiting", {})
        if now < container.retry_at:
            if waiting.get("reason") == "ErrImagePull" and now >= container.failed_at + 1:
                container.state = {
                    "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": f'Back-off pulling image "{container.image}": ErrImagePull: '
                        f"{waiting.get('message', '')}",
                    }
                }
                self.event(
                    pod,
                    "Normal",
                    "BackOff",
                    f'Back-off pulling image "{container.image}"',
                    field_path=spec["name"],
                )
                self.event(
                    pod, "Warning", "Failed", "Error: ImagePullBackOff", field_path=spec["name"]
                )
            return
        if not IMAGE_REFERENCE.match(container.image):
            message = (
                f'Failed to apply default image tag "{container.image}": couldn\'t parse '
                f'image name "{container.image}": invalid reference format'
            )
            container.state = {"waiting": {"reason": "InvalidImageName", "message": message}}
            self.event(
                pod, "Warning", "InspectFailed", message, field_path=spec["name"], repeat=False
            )
            return
        try:
            launch = volumes.launch(pod, spec, self._lookup(pod["metadata"]["namespace"]))
        except volumes.NotReady as exc:
            if exc.reason == "FailedMount":
                container.state = {"waiting": {"reason": "ContainerCreating"}}
                self.event(pod, "Warning", "FailedMount", exc.message, repeat=False)
            else:
                container.state = {"waiting": {"reason": exc.reason, "message": exc.message}}
                self.event(
                    pod,
                    "Warning",
                    "Failed",
                    f"Error: {exc.message}",
                    field_path=spec["name"],
                    repeat=False,
                )
            return
        if not waiting.get("reason", "").startswith(("ErrImagePull", "ImagePullBackOff")):
            container.state = {"waiting": {"reason": "ContainerCreating"}}
        self.event(
            pod, "Normal", "Pulling", f'Pulling image "{container.image}"', field_path=spec["name"]
        )
        container.starting = self._pool.submit(self.runner.start, launch)

    def _not_present(self, pod: dict[str, Any], container: Container, now: float) -> None:
        """imagePullPolicy Never and the image is not on the node: the kubelet never pulls."""
        message = f'Container image "{container.image}" is not present with pull policy of Never'
        container.failures += 1
        container.retry_at = now + min(BACKOFF_START * 2 ** (container.failures - 1), BACKOFF_MAX)
        container.state = {"waiting": {"reason": "ErrImageNeverPull", "message": message}}
        self.event(pod, "Warning", "ErrImageNeverPull", message, field_path=container.name)
        self.event(pod, "Warning", "Failed", "Error: ErrImageNeverPull", field_path=container.name)

    def _pull_failed(self, pod: dict[str, Any], container: Container, why: str, now: float) -> None:
        container.failures += 1
        container.failed_at = now
        container.retry_at = now + min(BACKOFF_START * 2 ** (container.failures - 1), BACKOFF_MAX)
        container.state = {"waiting": {"reason": "ErrImagePull", "message": why}}
        self.event(
            pod,
            "Warning",
            "Failed",
            f'Failed to pull image "{container.image}": {why}',
            field_path=container.name,
        )
        self.event(pod, "Warning", "Failed", "Error: ErrImagePull", field_path=container.name)

    def _ended(
        self,
        pod: dict[str, Any],
        container: Container,
        code: int,
        reason: str,
        message: str,
        now: float,
    ) -> None:
        started = container.state.get("running", {}).get("startedAt") or timestamp(now)
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": reason,
            "startedAt": started,
            "finishedAt": timestamp(now),
        }
        if message:
            terminated["message"] = message
        container.handle = None
        policy = pod["spec"].get("restartPolicy", "Always")
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            container.state = {"terminated": terminated}
            container.ended = True
            return
        container.restarts += 1
        container.failures += 1
        container.last_state = {"terminated": terminated}
        container.retry_at = now + min(BACKOFF_START * 2 ** (container.failures - 1), BACKOFF_MAX)
        container.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {container.retry_at - now:.0f}s restarting failed container="
                f"{container.name} pod={pod['metadata']['name']}_{pod['metadata']['namespace']}"
                f"({pod['metadata']['uid']})",
            }
        }
        self.event(
            pod,
            "Warning",
            "BackOff",
            "Back-off restarting failed container "
            f"{container.name} in pod {pod['metadata']['name']}",
            field_path=container.name,
        )

    def _terminate(self, pod: dict[str, Any], record: PodRecord) -> None:
        """Graceful termination: SIGTERM now, the pod object goes when every container has
        stopped or when its deletionTimestamp (the end of its grace period) has passed."""
        now = self.cluster.clock()
        deadline = parse_timestamp(pod["metadata"]["deletionTimestamp"])
        over = now >= deadline
        stopped = True
        for container in record.containers.values():
            if container.starting is not None and not container.starting.done():
                if not over:
                    stopped = False
                continue
            if container.starting is not None:
                try:
                    container.handle = container.starting.result()
                except Exception:
                    container.handle = None
                container.starting = None
            if container.handle is None:
                continue
            if self.runner.poll(container.handle) != RUNNING:
                continue
            if over:
                self._pool.submit(self.runner.stop, container.handle, 0)
                continue
            stopped = False
            if not container.stopping:
                container.stopping = True
                self.event(
                    pod,
                    "Normal",
                    "Killing",
                    f"Stopping container {container.name}",
                    field_path=container.name,
                )
                self._pool.submit(self.runner.stop, container.handle, max(deadline - now, 0))
        if stopped or over:
            with self.cluster.lock:
                current = self.cluster.find(POD, record.namespace, record.name)
                ours = current is not None and current["metadata"]["uid"] == record.uid
                if ours and current and not current["metadata"].get("finalizers"):
                    self.cluster.remove(POD, current)

    def _forget(self, record: PodRecord) -> None:
        """The pod object is gone (deleted at once, or its namespace, or it ended and was
        deleted): kill what still runs and let the runtime drop what is left of it."""
        for container in record.containers.values():
            if container.starting is not None:
                container.starting.add_done_callback(
                    lambda f: f.exception() is None and self.runner.stop(f.result(), 0)
                )
            elif container.last_handle is not None:
                self._pool.submit(self.runner.stop, container.last_handle, 0)

    # ---- status --------------------------------------------------------------------------
    def _write_status(self, pod: dict[str, Any], record: PodRecord) -> None:
        now = self.cluster.now()
        containers = [record.containers[c["name"]] for c in pod["spec"]["containers"]]
        statuses = []
        for c in containers:
            status: dict[str, Any] = {
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": "running" in c.state,
                "started": "running" in c.state,
                "restartCount": c.restarts,
                "state": copy.deepcopy(c.state),
                "lastState": copy.deepcopy(c.last_state),
            }
            if c.handle is not None or "terminated" in c.state:
                status["containerID"] = f"standin://{record.uid[:8]}-{c.name}"
                status["imageID"] = f"standin://{c.image}"
            statuses.append(status)
        phase = podstatus.phase(containers)
        ready = all("running" in c.state for c in containers)

        def change(new: dict[str, Any]) -> None:
            st = new.setdefault("status", {})
            st["phase"] = phase
            st["containerStatuses"] = statuses
            st.setdefault("startTime", record.started)
            st["hostIP"] = "127.0.0.1"
            st["hostIPs"] = [{"ip": "127.0.0.1"}]
            if any(c.handle is not None or "terminated" in c.state for c in containers):
                st["podIP"] = "127.0.0.1"
                st["podIPs"] = [{"ip": "127.0.0.1"}]
            started = any(
                c.handle is not None or c.restarts or "terminated" in c.state for c in containers
            )
            podstatus.set_condition(
                new, "PodReadyToStartContainers", "True" if started else "False", None, None, now
            )
            podstatus.set_condition(new, "Initialized", "True", None, None, now)
            reason = (
                None if ready else ("PodCompleted" if phase in TERMINAL else "ContainersNotReady")
            )
            message = (
                None
                if ready or phase in TERMINAL
                else (
                    "containers with unready status: ["
                    + " ".join(c.name for c in containers if "running" not in c.state)
                    + "]"
                )
            )
            podstatus.set_condition(
                new, "ContainersReady", "True" if ready else "False", reason, message, now
            )
            podstatus.set_condition(
                new, "Ready", "True" if ready else "False", reason, message, now
            )

        self._update(pod, change)

    def _update(self, pod: dict[str, Any], change: Any) -> None:
        with self.cluster.lock:
            meta = pod["metadata"]
            current = self.cluster.find(POD, meta["namespace"], meta["name"])
            if current is None or current["metadata"]["uid"] != meta["uid"]:
                return
            new = copy.deepcopy(current)
            change(new)
            self.cluster.store_update(POD, current, new)

    def _lookup(self, namespace: str) -> volumes.Lookup:
        def find(kind: str, name: str) -> dict[str, Any] | None:
            with self.cluster.lock:
                found = self.cluster.find(BY_KIND[kind], namespace, name)
                return copy.deepcopy(found) if found is not None else None

        return find

    # ---- events --------------------------------------------------------------------------
    def event(
        self,
        pod: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        component: str = "kubelet",
        field_path: str | None = None,
        repeat: bool = True,
    ) -> None:
        events.record(self.cluster, pod, type_, reason, message, component, field_path, repeat)
