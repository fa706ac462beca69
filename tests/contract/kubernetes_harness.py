"""The Kubernetes provider's contract harness: the registered provider, through the real
`kubernetes` client, against the strict API stand-in (tests/kube), whose node runs each pod's
container as a local process. Its clock is the harness's, so pod ages follow the fake time.

The knobs: a core quota is a ResourceQuota on requests.cpu in the namespace; a quota the cloud
will not tell is a named ResourceQuota that cannot be read; an unreachable cloud is a kubeconfig
naming a port nobody listens on.
"""

from __future__ import annotations

import base64
import socket
from pathlib import Path
from typing import Any

import yaml

from bursting.clouds.base import CloudProvider, ProviderContext
from bursting.model import Secret
from tests.contract.conftest import CLOUD, FLAVORS, CloudHarness

NAMESPACE = "workers"
TOKEN_SECRET = "pool-token"
QUOTA = "contract-quota"


class KubernetesHarness(CloudHarness):
    kind = "kubernetes"

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        from tests.kube.standin import KubeStandIn

        self.workdir = workdir
        self.standin = KubeStandIn(workdir / "cluster", clock=self.clock.now).start()
        self.standin.create_namespace(NAMESPACE)
        self._core().create_namespaced_secret(
            NAMESPACE,
            {
                "metadata": {"name": TOKEN_SECRET},
                "data": {"token": base64.b64encode(b"contract-token").decode()},
            },
        )

    def _core(self) -> Any:
        import kubernetes

        from tests.kube.standin import kube_client

        return kubernetes.client.CoreV1Api(kube_client(self.standin))

    def config(self, kubeconfig: Path | None = None, resource_quota: str | None = None) -> Any:
        from bursting.clouds.registry import cloud_type

        flavors = [
            {"name": f.name, "cpus": f.cpus, "memory_mb": f.memory_mb, "price_per_hour": 0.0}
            for f in FLAVORS
        ]
        return cloud_type("kubernetes").config_model.model_validate(
            {
                "name": CLOUD,
                "type": "kubernetes",
                "flavors": flavors,
                "call_timeout_seconds": 10,
                "kubernetes": {
                    "kubeconfig": str(kubeconfig or self.standin.kubeconfig),
                    "context": "standin",
                    "namespace": NAMESPACE,
                    "image": "localhost/bursting-worker:contract",
                    "token_secret": TOKEN_SECRET,
                    "grace_period_seconds": 5,
                    "resource_quota": resource_quota,
                },
            }
        )

    def _set_core_quota(self, cores: int | None) -> None:
        core = self._core()
        existing = [q.metadata.name for q in core.list_namespaced_resource_quota(NAMESPACE).items]
        if QUOTA in existing:
            core.delete_namespaced_resource_quota(QUOTA, NAMESPACE)
        if cores is not None:
            core.create_namespaced_resource_quota(
                NAMESPACE,
                {"metadata": {"name": QUOTA}, "spec": {"hard": {"requests.cpu": str(cores)}}},
            )
            self.standin.sync()  # the quota controller fills in status.used

    def _build(self, config: Any) -> CloudProvider:
        from bursting.clouds.registry import cloud_type

        provider = cloud_type("kubernetes").build(config, ProviderContext(self.clock, "contract"))
        self.built.append(provider)
        return provider

    def provider(
        self, *, quota_cores: int | None = None, quota_unknown: bool = False
    ) -> CloudProvider:
        self._set_core_quota(quota_cores)
        unreadable = "no-such-quota" if quota_unknown else None
        return self._build(self.config(resource_quota=unreadable))

    def unreachable(self) -> CloudProvider:
        with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        kubeconfig = yaml.safe_load(self.standin.kubeconfig.read_text())
        kubeconfig["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{port}"
        path = self.workdir / "unreachable.kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig))
        return self._build(self.config(kubeconfig=path))

    def token(self) -> Secret:
        return Secret("contract-token")

    def collector(self) -> str:
        return "127.0.0.1:9618"

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        self.standin.sync()

    def leftovers(self, instance_id: str) -> list[Any]:
        """The containers of the instance's pod the node still runs."""
        from tests.kube.runners import RUNNING

        kubelet = self.standin.kubelet
        return [
            container.name
            for record in list(kubelet.records.values())
            if record.name == instance_id
            for container in record.containers.values()
            if container.handle is not None and kubelet.runner.poll(container.handle) == RUNNING
        ]

    def cleanup(self) -> None:
        super().cleanup()
        reachable = self._build(self.config())
        for spec in self.specs:  # a deleted pod ends once its container stopped
            self.wait_gone(reachable, spec)
        defects = self.standin.defects
        self.standin.stop()
        assert not defects, f"the stand-in stored objects its schema refuses: {defects}"
