"""Leader election against the strict Kubernetes API stand-in, through the real `kubernetes`
client: electors racing, a leader killed, released, cut off from the API or frozen with it, and
clocks that drift; then two real `bursting run` processes of which only the leader acts.

Every replica's leadership is sampled every few milliseconds on the real timeline; the samples
must never show two replicas that may act at once."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bursting.config import LeaderElectionConfig
from bursting.leader.elector import LeaseElector, SteadyClock, timing_of
from bursting.leader.lease import connect
from tests.kube.standin import CONTEXT, KubeStandIn

pytestmark = pytest.mark.integration

NAMESPACE = "ha"
LEASE = "bursting-controller"
# Short terms so the tests are quick; the same ratios as the defaults (15/10/2).
DURATION, DEADLINE, RETRY = 3, 2.0, 0.3
STANDBY_TRY = RETRY * 2.2  # a standby's longest pause (jitter up to 1.2 retry periods more)
SLACK = 1.5  # scheduling and HTTP with both cores busy
LATE = 0.3  # how much later than planned a busy machine may run a leader's last renewal


# ----- helpers -----
class Partition:
    """A TCP relay on 127.0.0.1 in front of the stand-in for one replica: `cut()` holds every
    byte in both directions (the API unreachable from this replica only), `heal()` lets
    them through again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def cut(self) -> None:
        self._cut.set()

    def heal(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                near, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            far = socket.create_connection(self.upstream, timeout=5)
            for source, sink in ((near, far), (far, near)):
                pump = threading.Thread(target=self._pump, args=(source, sink), daemon=True)
                pump.start()
                self._threads.append(pump)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(0.1)
        with contextlib.suppress(OSError):
            while not self._stop.is_set():
                try:
                    data = source.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                while self._cut.is_set() and not self._stop.is_set():
                    time.sleep(0.01)
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


class DriftingClock:
    """This replica's clock: `offset` seconds off the real one and running `rate` times as
    fast (monotonic underneath, like SteadyClock)."""

    def __init__(self, offset: float, rate: float) -> None:
        self.offset, self.rate = offset, rate
        self._wall, self._mono = time.time(), time.monotonic()

    def now(self) -> float:
        return self._wall + self.offset + (time.monotonic() - self._mono) * self.rate

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / self.rate)


def kubeconfig_through(kube: KubeStandIn, port: int, path: Path) -> Path:
    config = yaml.safe_load(kube.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{port}"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def settings(kubeconfig: Path) -> LeaderElectionConfig:
    return LeaderElectionConfig(
        enabled=True,
        lease_name=LEASE,
        namespace=NAMESPACE,
        kubeconfig=kubeconfig,
        context=CONTEXT,
        lease_duration_seconds=DURATION,
        renew_deadline_seconds=DEADLINE,
        retry_period_seconds=RETRY,
    )


def make_elector(name: str, kubeconfig: Path, clock: Any = None) -> LeaseElector:
    chosen = settings(kubeconfig)
    lease = connect(chosen, timeout=DEADLINE / 2)
    return LeaseElector(lease, name, timing_of(chosen), clock or SteadyClock())


class Timeline:
    """Samples every elector's `leading()` on the real (monotonic) clock in a thread."""

    def __init__(self, electors: dict[str, LeaseElector]) -> None:
        self.electors = electors
        self.samples: list[tuple[float, frozenset[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Timeline:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.1)  # a few more samples: what was just waited for is on the timeline too
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            leading = frozenset(n for n, e in self.electors.items() if e.leading())
            self.samples.append((time.monotonic(), leading))
            time.sleep(0.005)

    def both(self) -> list[float]:
        return [t for t, who in self.samples if len(who) > 1]

    def first(self, name: str, after: float = 0.0) -> float | None:
        return next((t for t, who in self.samples if name in who and t >= after), None)

    def last(self, name: str) -> float | None:
        return next((t for t, who in reversed(self.samples) if name in who), None)


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError(f"not within {timeout}s: {what}")


def the_leader(electors: dict[str, LeaseElector]) -> str | None:
    leading = [n for n, e in electors.items() if e.leading()]
    return leading[0] if len(leading) == 1 else None


def lease_spec(kube: KubeStandIn) -> dict[str, Any]:
    (lease,) = [o for o in kube.objects("Lease", NAMESPACE) if o["metadata"]["name"] == LEASE]
    return dict(lease["spec"])


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeStandIn]:
    standin = KubeStandIn(tmp_path / "kube").start()
    try:
        standin.create_namespace(NAMESPACE)
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def started() -> Iterator[list[LeaseElector]]:
    """Electors a test starts; stopped (without releasing) at the end whatever happened."""
    electors: list[LeaseElector] = []
    yield electors
    for elector in electors:
        elector.stop(release=False)


# ----- electors in this process -----
def test_racing_electors_exactly_one_leads(kube: KubeStandIn, started: list[LeaseElector]) -> None:
    electors = {n: make_elector(n, kube.kubeconfig) for n in ("a", "b", "c")}
    with Timeline(electors) as timeline:
        started += [e.start() for e in electors.values()]
        leader = wait_for(lambda: the_leader(electors), 5 + SLACK, "a leader")
        time.sleep(DURATION + 1)  # well past a term: still the same one, alone
        assert the_leader(electors) == leader
    assert not timeline.both()
    assert {who for _, who in timeline.samples if who} == {frozenset([leader])}
    spec = lease_spec(kube)
    assert spec["holderIdentity"] == leader and spec["leaseTransitions"] == 0
    assert spec["leaseDurationSeconds"] == DURATION
    # The stand-in saw one create succeed; every other write was a renewal by the leader.
    assert len(kube.requests_matching("POST", rf"/namespaces/{NAMESPACE}/leases$")) >= 1


def test_a_killed_leader_is_replaced_within_the_lease_duration(
    kube: KubeStandIn, started: list[LeaseElector]
) -> None:
    electors = {n: make_elector(n, kube.kubeconfig) for n in ("a", "b")}
    with Timeline(electors) as timeline:
        started.append(electors["a"].start())
        wait_for(electors["a"].leading, 3, "a leads")
        started.append(electors["b"].start())
        time.sleep(1)
        killed = time.monotonic()
        electors["a"].stop(release=False)  # dies: no release, its Lease simply stops renewing
        wait_for(electors["b"].leading, DURATION + STANDBY_TRY + SLACK, "b takes over")
        took = time.monotonic() - killed
    assert not timeline.both()
    # Not before a's term could have ended (its last renewal was at most a retry period before
    # it died), and within a term plus the standby's pause.
    assert DURATION - RETRY - LATE <= took <= DURATION + STANDBY_TRY + SLACK
    spec = lease_spec(kube)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


def test_a_released_lease_is_taken_over_at_once(
    kube: KubeStandIn, started: list[LeaseElector]
) -> None:
    electors = {n: make_elector(n, kube.kubeconfig) for n in ("a", "b")}
    with Timeline(electors) as timeline:
        started.append(electors["a"].start())
        wait_for(electors["a"].leading, 3, "a leads")
        started.append(electors["b"].start())
        time.sleep(1)
        stopped = time.monotonic()
        electors["a"].stop(release=True)  # what SIGTERM does
        assert not electors["a"].leading()
        wait_for(electors["b"].leading, STANDBY_TRY + SLACK, "b takes over at its next try")
        took = time.monotonic() - stopped
    assert not timeline.both()
    assert took < DURATION  # not a whole term: the release handed it over
    spec = lease_spec(kube)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


@pytest.mark.parametrize(
    ("drift_a", "drift_b"),
    [((0.0, 1.0), (0.0, 1.0)), ((3600.0, 1.03), (-3600.0, 0.97)), ((-86400.0, 0.97), (0.0, 1.03))],
    ids=["same-clocks", "a-ahead-and-fast", "a-behind-and-slow"],
)
def test_a_leader_cut_off_from_the_api_stops_before_the_standby_takes_over(
    kube: KubeStandIn,
    started: list[LeaseElector],
    tmp_path: Path,
    drift_a: tuple[float, float],
    drift_b: tuple[float, float],
) -> None:
    """a reaches the API through a relay that then holds every byte: its renewals hang. It
    stops acting within its renew deadline; b, on a clock hours off and a few percent faster
    or slower, takes over only after that."""
    relay = Partition(("127.0.0.1", int(kube.url.rsplit(":", 1)[1])))
    try:
        through = kubeconfig_through(kube, relay.port, tmp_path / "a.kubeconfig")
        electors = {
            "a": make_elector("a", through, DriftingClock(*drift_a)),
            "b": make_elector("b", kube.kubeconfig, DriftingClock(*drift_b)),
        }
        with Timeline(electors) as timeline:
            started.append(electors["a"].start())
            wait_for(electors["a"].leading, 3, "a leads")
            started.append(electors["b"].start())
            time.sleep(1)
            relay.cut()
            cut = time.monotonic()
            wait_for(lambda: not electors["a"].leading(), DEADLINE / drift_a[1] + 0.2, "a stops")
            wait_for(electors["b"].leading, 2 * DURATION + SLACK, "b takes over")
        assert not timeline.both()
        stopped, took_over = timeline.last("a"), timeline.first("b")
        assert stopped is not None and took_over is not None
        assert stopped < took_over
        assert stopped - cut <= DEADLINE / drift_a[1] + 0.2
        # b's term for a's last renewal (sent at most a retry period before the cut) ran out.
        assert took_over - cut >= DURATION / drift_b[1] - RETRY / drift_a[1] - LATE
        relay.heal()
        time.sleep(2 * RETRY + SLACK)
        assert the_leader(electors) == "b"  # a, back, finds b holding the Lease
    finally:
        relay.close()


def test_an_api_frozen_for_everyone_never_lets_two_replicas_act(
    kube: KubeStandIn, started: list[LeaseElector]
) -> None:
    """The stand-in stalls every answer for longer than a term: the leader stops acting within
    its renew deadline; afterwards exactly one replica leads again."""
    electors = {n: make_elector(n, kube.kubeconfig) for n in ("a", "b")}
    with Timeline(electors) as timeline:
        started.append(electors["a"].start())
        wait_for(electors["a"].leading, 3, "a leads")
        started.append(electors["b"].start())
        time.sleep(1)
        kube.freeze(DURATION + 1)
        frozen = time.monotonic()
        wait_for(lambda: not electors["a"].leading(), DEADLINE + 0.2, "a stops")
        assert time.monotonic() - frozen <= DEADLINE + 0.2
        assert the_leader(electors) is None  # nobody acts while nobody can renew
        leader = wait_for(lambda: the_leader(electors), DURATION + 1 + 2 * DURATION, "a leader")
        time.sleep(1)
        assert the_leader(electors) == leader
    assert not timeline.both()


def test_a_conflicting_write_through_the_real_client_ends_leadership_at_once(
    kube: KubeStandIn, started: list[LeaseElector]
) -> None:
    elector = make_elector("a", kube.kubeconfig)
    assert elector.try_acquire_or_renew()
    kube.fail_next("PUT", rf"/namespaces/{NAMESPACE}/leases/{LEASE}$", 409)
    assert elector.try_acquire_or_renew() is False
    assert not elector.leading()
    assert elector.try_acquire_or_renew() is True  # still the holder: it renews next round
    kube.fail_next("GET", rf"/namespaces/{NAMESPACE}/leases/{LEASE}$", 503, times=100)
    assert elector.try_acquire_or_renew() is True  # a failed read: leading until the deadline
    time.sleep(DEADLINE)
    assert elector.leading() is False


# ----- two real `bursting run` processes -----
INTERVAL = 2.0  # long enough for a listing (each waits at most half of it) with both cores busy
METRICS_LINE = re.compile(r"metrics, health and status on http://127\.0\.0\.1:(\d+)/")


class Replica:
    """`bursting run` as replica `name` (POD_NAME), its JSON log in a file, its own store."""

    def __init__(self, name: str, config: dict[str, Any], workdir: Path) -> None:
        self.name = name
        self.store_url = f"sqlite:///{workdir}/{name}.db"
        self.config_path = workdir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump({**config, "store": {"url": self.store_url}}))
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def intend(self, instance_id: str) -> None:
        """An instance this replica's store holds as requested but not yet confirmed by the
        cloud (as after a crash): its lifecycle asks the cloud to create it, by its id, in the
        next cycle this replica acts in. The pod's name tells which replica acted."""
        from bursting.model import Instance, InstanceState
        from bursting.store import open_store

        now = time.time()
        intent = Instance(
            instance_id, "k8s", "small", 1, 512, 0.0, InstanceState.REQUESTED, now, now
        )
        open_store(self.store_url).save([intent], now)

    def start(self) -> Replica:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bursting.cli", "run", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "POD_NAME": self.name},
            )
        self.port = int(
            wait_for(
                lambda: (
                    (m := METRICS_LINE.search(self.log_path.read_text()[offset:])) and m.group(1)
                ),
                30,
                f"{self.name} serves its metrics",
            )
        )
        return self

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def leading(self) -> bool | None:
        """The bursting_leader gauge (None if it does not answer)."""
        try:
            _, text = self.get("/metrics")
        except OSError:
            return None
        found = re.search(r"^bursting_leader (\S+)$", text, re.MULTILINE)
        return None if found is None else float(found.group(1)) == 1.0

    def cycles(self) -> int:
        from bursting.store import open_store

        return len(open_store(self.store_url).cycles(limit=10_000))

    def creates(self) -> list[float]:
        from bursting.model import ActionKind
        from bursting.store import open_store

        decisions = open_store(self.store_url).decisions(limit=10_000)
        return [at for at, action in decisions if action.kind is ActionKind.CREATE]

    def signal(self, signum: int) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def replica_config(kube: KubeStandIn, workdir: Path) -> dict[str, Any]:
    """No HTCondor pool (its collector address answers nothing: cycles still complete, and
    nothing grows or shrinks on missing data) and one Kubernetes cloud on the stand-in."""
    from kubernetes import client

    from tests.kube.standin import kube_client

    kube.create_namespace("workers")
    client.CoreV1Api(kube_client(kube)).create_namespaced_secret(
        "workers",
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="pool-token"), string_data={"token": "t"}
        ),
    )
    token = workdir / "worker.token"
    token.write_text("worker-token-for-the-test\n")
    token.chmod(0o600)
    return {
        "pool": {"id": "ha", "collector": "127.0.0.1:1", "timeout_seconds": 1},
        "workers": {"token": {"file": str(token)}, "admin_key": None},
        "clouds": [
            {
                "name": "k8s",
                "type": "kubernetes",
                "max_instances": 3,
                "flavors": [{"name": "small", "cpus": 1, "memory_mb": 512, "disk_gb": 1}],
                "kubernetes": {
                    "kubeconfig": str(kube.kubeconfig),
                    "context": CONTEXT,
                    "namespace": "workers",
                    "image": "bursting-worker:test",
                    "token_secret": "pool-token",
                },
            }
        ],
        "policy": {"interval_seconds": INTERVAL, "min_idle_seconds": 0},
        "metrics": {"listen": "127.0.0.1:0"},
        "leader_election": {
            "enabled": True,
            "lease_name": LEASE,
            "namespace": NAMESPACE,
            "kubeconfig": str(kube.kubeconfig),
            "context": CONTEXT,
            "lease_duration_seconds": DURATION,
            "renew_deadline_seconds": DEADLINE,
            "retry_period_seconds": RETRY,
        },
    }


def pods(kube: KubeStandIn) -> set[str]:
    return {p["metadata"]["name"] for p in kube.objects("Pod", "workers")}


def test_two_bursting_run_processes_only_the_leader_acts(kube: KubeStandIn, tmp_path: Path) -> None:
    config = replica_config(kube, tmp_path)
    replicas = {n: Replica(n, config, tmp_path) for n in ("replica-a", "replica-b")}
    intents = {"replica-a": "ha-k8s-a0001", "replica-b": "ha-k8s-b0001"}
    try:
        for name, replica in replicas.items():
            replica.intend(intents[name])
            replica.start()

        def one_leader() -> str | None:
            states = {n: r.leading() for n, r in replicas.items()}
            leaders = [n for n, s in states.items() if s]
            return leaders[0] if len(leaders) == 1 and None not in states.values() else None

        first = wait_for(one_leader, 10, "exactly one replica leads")
        (second,) = set(replicas) - {first}
        leader, standby = replicas[first], replicas[second]
        wait_for(lambda: leader.cycles() >= 2 and pods(kube), 20, "the leader acts")
        time.sleep(
            2 * INTERVAL
        )  # two more intervals: the standby's intent must still not be acted on
        assert pods(kube) == {intents[first]}  # only the leader's cycle reached the cloud
        assert standby.leading() is False
        assert standby.cycles() == 0 and standby.creates() == []
        code, text = standby.get("/readyz")
        assert code == 200 and text.startswith(f"standby: {first} holds the Lease"), text
        assert leader.get("/readyz")[0] == 200
        assert lease_spec(kube)["holderIdentity"] == first

        # SIGTERM: the leader stops, releases, and the standby takes over at once.
        stopped = time.time()
        assert leader.process is not None
        leader.process.send_signal(signal.SIGTERM)
        # Measured on the Lease itself (a scrape may wait while a cycle holds the GIL), while
        # the old leader is still shutting down.
        took = wait_for(
            lambda: lease_spec(kube)["holderIdentity"] == second and time.time(),
            INTERVAL + STANDBY_TRY + SLACK,
            "takeover",
        )
        # Handed over by the release, not by expiry; the leader first finished the cycle it was
        # in (without acting further), at most an interval.
        # (The new leader logs why after its write to the Lease: wait for the line.)
        wait_for(
            lambda: "released: take it over" in standby.log_path.read_text(),
            10,
            "the new leader's log of the release",
        )
        assert took - stopped < INTERVAL + STANDBY_TRY + SLACK
        assert leader.process.wait(timeout=30) == 0  # and it exits cleanly
        cycles_before = leader.cycles()
        wait_for(lambda: standby.leading(), 10, "the new leader's gauge")
        wait_for(lambda: intents[second] in pods(kube), 20, "the new leader acts")
        assert all(at >= stopped for at in standby.creates())
        assert leader.cycles() == cycles_before
        spec = lease_spec(kube)
        assert spec["holderIdentity"] == second and spec["leaseTransitions"] == 1

        # The old leader comes back as a standby; the new leader is killed (no release): the
        # standby takes over once the Lease expires, within its duration plus a pause.
        leader.start()
        wait_for(lambda: leader.leading() is False, 10, "the restarted replica stands by")
        assert leader.cycles() == cycles_before  # standing by: no cycle
        standby.signal(signal.SIGKILL)
        killed = time.time()
        took = wait_for(
            lambda: lease_spec(kube)["holderIdentity"] == first and time.time(),
            DURATION + STANDBY_TRY + SLACK,
            "takeover after a kill",
        )
        assert took - killed >= DURATION - RETRY - LATE
        wait_for(lambda: leader.cycles() > cycles_before, 20, "it cycles again")
        assert leader.leading() is True
        assert lease_spec(kube)["leaseTransitions"] == 2
    finally:
        for replica in replicas.values():
            replica.stop()
