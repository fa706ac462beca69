"""The OpenStack provider's contract harness: the real provider against devcloud's real Nova.

The contract runs in devcloud's public project through its application credential, exactly as
the controller would. Quotas are set through the admin entry and restored afterwards; the cloud
that cannot be reached is the same credential pointed at a closed port; the quota the cloud will
not tell is the same project reached through a forwarding proxy that answers 503 to Nova's
limits call and passes everything else to the real nova-api.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

from bursting.clouds.base import CloudProvider, ProviderContext
from bursting.model import Flavor, Secret
from tests.contract.conftest import CLOUD, FLAVORS, CloudHarness, eventually

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class LimitsRefusingProxy:
    """Forwards every request to `target` except Nova's limits, answered 503 as an overloaded
    API would. Bound to 127.0.0.1 on a free port; stopped by the harness."""

    def __init__(self, target: str) -> None:
        upstream = target.rstrip("/")

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _forward(self) -> None:
                if "/limits" in self.path:
                    body = b'{"computeFault": {"code": 503, "message": "limits unavailable"}}'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                base = upstream.split("/v2.1")[0]
                answer = requests.request(
                    self.command, base + self.path, headers=headers, data=data, timeout=30
                )
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in _HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v2.1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class OpenStackHarness(CloudHarness):
    kind = "openstack"

    def __init__(self, devcloud: Any, work: Path) -> None:
        super().__init__()
        from bursting.devcloud import ADMIN_CLOUD, PUBLIC_CLOUD, connect

        self.devcloud = devcloud
        self.entry = PUBLIC_CLOUD
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.admin = connect(devcloud.clouds_yaml, ADMIN_CLOUD)
        self.user = connect(devcloud.clouds_yaml, PUBLIC_CLOUD)
        self.project_id = self.user.current_project_id
        self._ensure_flavors(FLAVORS)
        self._quota = self.admin.compute.get_quota_set(self.project_id)
        self._proxy: LimitsRefusingProxy | None = None
        self._uuids: dict[str, set[str]] = {}

    def _ensure_flavors(self, flavors: tuple[Flavor, ...]) -> None:
        for flavor in flavors:
            if self.admin.compute.find_flavor(flavor.name, ignore_missing=True) is None:
                self.admin.compute.create_flavor(
                    name=flavor.name, vcpus=flavor.cpus, ram=flavor.memory_mb, disk=flavor.disk_gb
                )

    def _clouds_yaml(self, name: str, **changes: Any) -> Path:
        document = yaml.safe_load(Path(self.devcloud.clouds_yaml).read_text())
        entry = dict(document["clouds"][self.entry])
        auth = dict(entry.get("auth", {}))
        auth.update(changes.pop("auth", {}))
        entry.update(changes, auth=auth)
        path = self.work / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"clouds": {self.entry: entry}}))
        path.chmod(0o600)
        return path

    def config(self, clouds_yaml: Path) -> Any:
        from bursting.clouds.registry import cloud_type

        flavors = [
            {"name": f.name, "cpus": f.cpus, "memory_mb": f.memory_mb, "disk_gb": f.disk_gb}
            for f in FLAVORS
        ]
        return cloud_type("openstack").config_model.model_validate(
            {
                "name": CLOUD,
                "type": "openstack",
                "flavors": flavors,
                "call_timeout_seconds": 20,
                "openstack": {
                    "cloud": self.entry,
                    "clouds_yaml": str(clouds_yaml),
                    "image": "bursting-worker",
                    "network": "bursting-net",
                    "security_groups": ["bursting-worker"],
                },
            }
        )

    def _build(self, clouds_yaml: Path) -> CloudProvider:
        from bursting.clouds.registry import cloud_type

        config = self.config(clouds_yaml)
        provider = cloud_type("openstack").build(config, ProviderContext(self.clock, "contract"))
        self.built.append(provider)
        return provider

    def provider(
        self, *, quota_cores: int | None = None, quota_unknown: bool = False
    ) -> CloudProvider:
        cores = quota_cores if quota_cores is not None else self._quota.cores
        self.admin.compute.update_quota_set(self.project_id, cores=cores)
        if not quota_unknown:
            return self._build(Path(self.devcloud.clouds_yaml))
        if self._proxy is None:
            self._proxy = LimitsRefusingProxy(self.user.compute.get_endpoint())
        return self._build(
            self._clouds_yaml("no-limits", compute_endpoint_override=self._proxy.url)
        )

    def unreachable(self) -> CloudProvider:
        return self._build(self._clouds_yaml("closed", auth={"auth_url": "http://127.0.0.1:1/v3"}))

    def token(self) -> Secret:
        return Secret("contract-token-not-for-any-pool")

    def collector(self) -> str:
        return "127.0.0.1:9618"

    def _servers(self, instance_id: str) -> list[Any]:
        servers = list(
            self.admin.compute.servers(details=True, all_projects=True, name=f"^{instance_id}$")
        )
        self._uuids.setdefault(instance_id, set()).update(s.id for s in servers)
        return servers

    def leftovers(self, instance_id: str) -> list[Any]:
        """The server in Nova (any state), else its node container once the hypervisor has
        had time to stop it."""
        servers = self._servers(instance_id)
        if servers:
            return servers
        from bursting.devcloud.hypervisor import node_name
        from bursting.devpool import DevPool

        nodes = DevPool().containers()
        names = [node_name(uuid) for uuid in self._uuids.get(instance_id, ())]
        deadline = time.monotonic() + 60
        while True:
            running = [name for name in names if nodes.node_pids(name)]
            if not running or time.monotonic() > deadline:
                return running
            time.sleep(0.5)

    def cleanup(self) -> None:
        super().cleanup()
        for spec in self.specs:  # the next test's quota must not count this one's servers
            eventually(f"{spec.id} deleted", lambda s=spec: not self._servers(s.id), timeout=90)
        self.admin.compute.update_quota_set(self.project_id, cores=self._quota.cores)
        if self._proxy is not None:
            self._proxy.stop()
