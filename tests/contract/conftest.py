"""One harness per CloudProvider implementation, so the same contract tests run against each.

A harness builds its provider from a config (the real ones through their registered CloudType),
makes valid InstanceSpecs, moves time on and offers the knobs the contract needs: a core quota,
a quota the cloud will not tell, and a cloud that cannot be reached. Time is a FakeClock for every
implementation: the local cloud's boots progress when its API is used after the boot delay, as
they would on a real cloud between calls, so no test waits on the wall clock for a boot.
A provider joins by adding a harness and a parameter below; OpenStack's is in
openstack_harness.py, Kubernetes' in kubernetes_harness.py.
"""

from __future__ import annotations

import abc
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bursting.clock import FakeClock
from bursting.clouds.base import CloudProvider, ProviderContext
from bursting.model import CloudInstance, CloudStatus, Flavor, InstanceSpec, Secret, WorkerSpec
from tests.fakes import FakeCloud, FakePool

CLOUD = "contract"
SMALL = Flavor("ct.1c", 1, 512, 1, 0, 0.0)
LARGE = Flavor("ct.2c", 2, 1024, 1, 0, 0.25)
FLAVORS = (SMALL, LARGE)
NOT_OFFERED = Flavor("ct.huge", 64, 262144)
BOOT_SECONDS = 5.0  # fake time

T = TypeVar("T")


def eventually(what: str, check: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll `check` until it returns something truthy; bounded, so a broken provider fails."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


class CloudHarness(abc.ABC):
    """What every implementation's harness offers the contract tests."""

    kind = ""
    flavors: tuple[Flavor, ...] = FLAVORS

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.built: list[CloudProvider] = []
        self.specs: list[InstanceSpec] = []

    # ----- each implementation provides these -----
    @abc.abstractmethod
    def provider(
        self, *, quota_cores: int | None = None, quota_unknown: bool = False
    ) -> CloudProvider: ...

    @abc.abstractmethod
    def unreachable(self) -> CloudProvider:
        """A provider whose cloud API cannot be reached."""
        ...

    @abc.abstractmethod
    def token(self) -> Secret: ...

    @abc.abstractmethod
    def collector(self) -> str: ...

    @abc.abstractmethod
    def leftovers(self, instance_id: str) -> list[Any]:
        """What still runs of an instance outside the cloud's listing: its node's processes
        (local), its worker in the pool (fake). Empty once the instance is really gone."""
        ...

    # ----- common -----
    def spec(self, pool_id: str, flavor: Flavor = SMALL) -> InstanceSpec:
        instance_id = f"{pool_id}-{CLOUD}-{uuid.uuid4().hex[:8]}"
        worker = WorkerSpec(pool_id, instance_id, CLOUD, flavor, self.collector(), self.token())
        spec = InstanceSpec(instance_id, pool_id, CLOUD, flavor, worker)
        self.specs.append(spec)
        return spec

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def listed(self, provider: CloudProvider, pool_id: str) -> dict[str, CloudInstance]:
        return provider.list_instances(pool_id).by_id()

    def wait_active(self, provider: CloudProvider, spec: InstanceSpec) -> CloudInstance:
        """Time moves on by the boot delay until the listing shows the instance ACTIVE."""

        def active() -> CloudInstance | None:
            instance = self.listed(provider, spec.pool_id).get(spec.id)
            assert instance is not None, f"{spec.id} vanished while booting"
            assert instance.status is not CloudStatus.ERROR, instance.fault
            if instance.status is CloudStatus.ACTIVE:
                return instance
            self.advance(BOOT_SECONDS)
            return None

        return eventually(f"{spec.id} ACTIVE", active)

    def wait_gone(self, provider: CloudProvider, spec: InstanceSpec) -> None:
        def gone() -> bool:
            if spec.id in self.listed(provider, spec.pool_id):
                self.advance(1.0)
                return False
            return True

        eventually(f"{spec.id} gone from the listing", gone)

    def cleanup(self) -> None:
        """Delete whatever the test created, through every provider it built."""
        for provider in self.built:
            for spec in self.specs:
                try:
                    provider.delete(spec.id)
                except Exception:  # an unreachable provider: another one cleans up
                    continue


class FakeHarness(CloudHarness):
    """tests/fakes.py's FakeCloud, held to the same contract as the real providers."""

    kind = "fake"

    def __init__(self) -> None:
        super().__init__()
        self.pool = FakePool(self.clock, "contract")
        self.cloud: FakeCloud | None = None

    def _shared(self) -> FakeCloud:
        # One cloud, however often the test asks for a provider: what a reconfigured real cloud
        # does too (its records outlive the provider object).
        if self.cloud is None:
            self.cloud = FakeCloud(
                CLOUD, self.clock, self.pool, FLAVORS, boot_delay=BOOT_SECONDS, join_delay=0
            )
            self.built.append(self.cloud)
        return self.cloud

    def provider(
        self, *, quota_cores: int | None = None, quota_unknown: bool = False
    ) -> CloudProvider:
        cloud = self._shared()
        cloud.readable = True
        cloud.quota_cores = quota_cores
        cloud.quota_unknown = quota_unknown
        return cloud

    def unreachable(self) -> CloudProvider:
        cloud = self._shared()
        cloud.readable = False
        return cloud

    def token(self) -> Secret:
        return Secret("contract-token")

    def collector(self) -> str:
        return "127.0.0.1:9618"

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        if self.cloud is not None:
            self.cloud.step()

    def leftovers(self, instance_id: str) -> list[Any]:
        return [w for w in self.pool.workers.values() if w.instance_id == instance_id]

    def cleanup(self) -> None:
        if self.cloud is not None:
            self.cloud.readable = True
        super().cleanup()


class LocalHarness(CloudHarness):
    """The local cloud: instances are real execute nodes of the personal pool."""

    kind = "local"

    def __init__(self, devpool: Any, state_dir: Path) -> None:
        super().__init__()
        self.devpool = devpool
        self.state_dir = state_dir

    def config(self, **faults: Any) -> Any:
        from bursting.clouds.registry import cloud_type

        flavors = [
            {
                "name": f.name,
                "cpus": f.cpus,
                "memory_mb": f.memory_mb,
                "disk_gb": f.disk_gb,
                "price_per_hour": f.price_per_hour,
            }
            for f in FLAVORS
        ]
        return cloud_type("local").config_model.model_validate(
            {
                "name": CLOUD,
                "type": "local",
                "flavors": flavors,
                "local": {
                    "boot_delay_seconds": BOOT_SECONDS,
                    "state_dir": str(self.state_dir),
                    "faults": faults,
                },
            }
        )

    def provider(
        self, *, quota_cores: int | None = None, quota_unknown: bool = False
    ) -> CloudProvider:
        from bursting.clouds.registry import cloud_type

        config = self.config(quota_cores=quota_cores, quota_unknown=quota_unknown)
        provider = cloud_type("local").build(config, ProviderContext(self.clock, "contract"))
        self.built.append(provider)
        return provider

    def unreachable(self) -> CloudProvider:
        # The local cloud's "API" is its records file, always at hand; what it cannot reach is
        # the personal pool hosting its nodes. The registered factory always uses the machine's
        # pool (which the session keeps running), so a stand-in pool that is down is handed to
        # the provider's own constructor, the way the wiring would if the pool had stopped.
        from bursting.clouds.local import LocalCloudProvider
        from bursting.devpool import DevPool

        class StoppedPool(DevPool):
            def running(self) -> bool:
                return False

        return LocalCloudProvider(self.config(), nodes=StoppedPool().containers(), clock=self.clock)

    def token(self) -> Secret:
        return Secret(Path(self.devpool.worker_token_file).read_text().strip())

    def collector(self) -> str:
        from bursting.devpool import condor_config as cc

        return cc.COLLECTOR

    def leftovers(self, instance_id: str) -> list[Any]:
        return list(self.devpool.containers().node_pids(instance_id))


@pytest.fixture(
    params=[
        pytest.param("fake"),
        pytest.param("local", marks=pytest.mark.integration),
        pytest.param("openstack", marks=pytest.mark.integration),
        pytest.param("kubernetes"),
    ]
)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CloudHarness]:
    """Each contract test once per implementation; the local one needs the real pool, the
    OpenStack one devcloud, the Kubernetes one the API stand-in (started per test)."""
    built: CloudHarness
    if request.param == "fake":
        built = FakeHarness()
    elif request.param == "kubernetes":
        from tests.contract.kubernetes_harness import KubernetesHarness

        built = KubernetesHarness(tmp_path / "kubernetes")
    elif request.param == "openstack":
        from tests.contract.openstack_harness import OpenStackHarness

        built = OpenStackHarness(request.getfixturevalue("devcloud"), tmp_path / "openstack")
    else:
        built = LocalHarness(request.getfixturevalue("devpool"), tmp_path / "clouds")
    yield built
    built.cleanup()
    for spec in built.specs:
        assert not built.leftovers(spec.id), f"{spec.id} left running after cleanup"


@pytest.fixture
def pool_id() -> str:
    return f"ct{uuid.uuid4().hex[:6]}"
