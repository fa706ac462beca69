"""`DevCloud`: a real OpenStack on 127.0.0.1 (Keystone, Nova with the fake driver, Placement,
Glance, Neutron, Swift; MariaDB and RabbitMQ from Debian), two projects standing for a private
and a public cloud, and a `clouds.yaml` for both.

Every process is started in its own session and recorded by PID; `down` stops exactly those.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bursting.devcloud import identity, resources, services
from bursting.devcloud.clouds import (
    ADMIN_CLOUD,
    PRIVATE_CLOUD,
    PUBLIC_CLOUD,
    clouds_document,
    write_clouds_yaml,
)
from bursting.devcloud.identity import Member, ProjectSpec, new_secret
from bursting.devcloud.install import ensure_venv, require_commands
from bursting.devcloud.layout import (
    HOST,
    PORTS,
    REGION_PRIVATE,
    REGION_PUBLIC,
    DevCloudError,
    Paths,
    check_port_free,
    port_holder,
)
from bursting.devcloud.procs import (
    Service,
    StateFile,
    alive,
    spawn,
    stop_pid,
    wait_gone,
    wait_port_closed,
)
from bursting.devcloud.render import DB_USER, Settings, write_configs, write_private
from bursting.devcloud.swift import build_rings
from bursting.model import Secret

PRIVATE = ProjectSpec("bursting-private", "bursting-private", REGION_PRIVATE, 4, 8, 16384)
PUBLIC = ProjectSpec("bursting-public", "bursting-public", REGION_PUBLIC, 20, 40, 81920)
CIDRS = {PRIVATE.project: "10.81.0.0/24", PUBLIC.project: "10.82.0.0/24"}
DATABASES = ("keystone", "placement", "nova_api", "nova_cell0", "nova", "glance", "neutron")
# How long one service may take to answer: about 60 s for Keystone on a loaded 2-core machine.
START_TIMEOUT = 300.0

Log = Callable[[str], None]


class DevCloud:
    """One devcloud on this machine; its state and credentials under `paths.base`."""

    PRIVATE_CLOUD = PRIVATE_CLOUD
    PUBLIC_CLOUD = PUBLIC_CLOUD
    ADMIN_CLOUD = ADMIN_CLOUD

    def __init__(self, paths: Paths | None = None, log: Log | None = None) -> None:
        self.paths = paths or Paths.default()
        self.log: Log = log or (lambda message: None)
        self.state = StateFile(self.paths.state_file)
        self._t0 = time.monotonic()

    # ----- facts -----
    @property
    def clouds_yaml(self) -> Path:
        return self.paths.clouds_yaml

    @property
    def ec2_file(self) -> Path:
        return self.paths.ec2_file

    @property
    def auth_url(self) -> str:
        return f"http://{HOST}:{PORTS['keystone']}/v3"

    def running(self) -> bool:
        """Up and ready: `up` finished, and the database and Keystone still run."""
        state = self.state.read()
        pids = self.state.pids()
        return bool(state.get("ready")) and all(
            name in pids and alive(pids[name]) for name in ("mariadb", "keystone")
        )

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One `up`, `down` or restart at a time on this machine."""
        self.paths.base.mkdir(parents=True, exist_ok=True)
        with self.paths.lock_file.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    # ----- up -----
    def up(self) -> None:
        """Start everything and create the clouds' projects and resources; a no-op when up."""
        with self._exclusive():
            if self.running():
                self._ensure_hypervisor()
                self.log(f"devcloud already up (clouds.yaml: {self.clouds_yaml})")
                return
            if self.state.pids():
                self.log("stopping what is left of an earlier devcloud")
                self._stop_all()
            self._t0 = time.monotonic()
            require_commands()
            for name, port in PORTS.items():
                check_port_free(name, port)
            image: Future[Any] = _in_thread(self._worker_image)
            venv = ensure_venv(self.log)
            self._say("services' venv ready")
            self.state.clear()
            with self.state.editing() as state:
                state.update({"pids": {}, "ready": False, "venv": str(venv)})
            try:
                self._start(venv, image)
            except BaseException:
                self.log("start-up failed; stopping what was started")
                if "rabbitmq" in self.state.pids():
                    # The Erlang VM started epmd as a daemon of its own; the port was free at
                    # the start, so whoever holds it now is ours (left, it blocks the next up).
                    self._record_epmd()
                self._stop_all()
                raise
            with self.state.editing() as state:
                state["ready"] = True
                state["up_seconds"] = round(time.monotonic() - self._t0, 1)
            self._say(f"devcloud up; clouds.yaml {self.clouds_yaml}")

    def _say(self, message: str) -> None:
        self.log(f"[{time.monotonic() - self._t0:5.1f}s] {message}")

    def _prepare_run_dir(self) -> None:
        paths = self.paths
        if paths.run.exists():
            shutil.rmtree(paths.run)
        for directory in (
            paths.logs / "nova",
            paths.logs / "rabbit",
            paths.data / "mysql",
            paths.data / "nova" / "instances",
            paths.data / "nova" / "lock",
            paths.data / "glance" / "images",
            paths.data / "glance" / "staging",
            paths.data / "glance" / "tasks",
            paths.data / "glance" / "lock",
            paths.data / "neutron" / "lock",
            paths.run / "rabbit",
            paths.swift_devices,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        paths.run.chmod(0o700)

    def _start(self, venv: Path, image: Future[Any]) -> None:
        paths = self.paths
        self._prepare_run_dir()
        settings = Settings(paths, db_password=new_secret(), service_password=new_secret())
        write_configs(settings)
        admin_password = self._admin_password()

        self._run(
            [
                "mariadb-install-db",
                f"--defaults-file={paths.etc / 'my.cnf'}",
                "--auth-root-authentication-method=normal",
            ],
            "mariadb-install-db",
        )
        for name in services.INFRA:
            self._spawn(venv, name)
        self._wait(venv, "mariadb", 60)
        self._create_databases(settings.db_password)
        self._say("mariadb up")

        syncs = ThreadPoolExecutor(4)
        pending = [syncs.submit(self._sync, venv, name) for name in ("placement", "nova")]
        pending += [syncs.submit(self._sync, venv, name) for name in ("glance", "neutron")]
        try:
            self._keystone_setup(venv, admin_password)
            self._spawn(venv, "keystone")
            self._wait(venv, "keystone")
            self._say("keystone up")
            admin = self._admin_connection(admin_password)
            identity.register_services(admin, settings.service_password)
            admin.close()
            self._say("service users, regions and endpoints registered")
            for future in pending:
                future.result()
        finally:
            syncs.shutdown(wait=True)
        self._say("database schemas ready")
        self._wait(venv, "rabbitmq", 90)
        self._record_epmd()
        self._say("rabbitmq up")

        for name in ("placement", "glance", "neutron", "nova-api", "nova-api-public"):
            self._spawn(venv, name)
        for name in ("nova-conductor", "nova-scheduler"):
            self._spawn(venv, name)
        build_rings(venv, paths)
        for name in services.SWIFT:
            self._spawn(venv, name)
        self._wait(venv, "placement")
        self._spawn(venv, "nova-compute")
        for name in ("glance", "neutron", "nova-api", "nova-api-public", *services.SWIFT):
            self._wait(venv, name)
        self._say("all APIs answering")

        # A new connection: the first one holds a catalog from before the endpoints existed.
        admin = self._admin_connection(admin_password)
        # One at a time: made concurrently, Neutron refused the admin's network create (403).
        private = self._make_project(admin, PRIVATE)
        public = self._make_project(admin, PUBLIC)
        resources.create_flavors(admin)
        write_private(
            self.ec2_file, json.dumps(identity.create_ec2_credential(admin, public), indent=2)
        )
        write_clouds_yaml(
            self.clouds_yaml, clouds_document(self.auth_url, private, public, admin_password)
        )
        self._say("projects, users, application credentials, quotas, flavors, networks made")
        self._discover_compute(venv)
        self._say("compute host discovered")
        self._register_image(admin, image)
        admin.close()
        self.set_faults()  # a fresh devcloud boots every server, promptly
        self._spawn(venv, services.HYPERVISOR)
        self._say("hypervisor watching Nova")

    # ----- steps -----
    def _make_project(self, admin: Any, spec: ProjectSpec) -> Member:
        member = identity.create_member(admin, spec, self.auth_url)
        resources.set_quota(admin, member)
        resources.create_network(admin, member, CIDRS[spec.project])
        return member

    def _admin_password(self) -> Secret:
        """Made at the first `up` and kept (0600); never printed or logged."""
        path = self.paths.admin_password_file
        if path.exists():
            return Secret(path.read_text().strip())
        secret = new_secret()
        write_private(path, secret.reveal() + "\n")
        return secret

    def _admin_connection(self, password: Secret) -> Any:
        import openstack

        return openstack.connect(
            auth_url=self.auth_url,
            username="admin",
            password=password.reveal(),
            project_name="admin",
            user_domain_name="Default",
            project_domain_name="Default",
            region_name=REGION_PRIVATE,
            identity_api_version="3",
        )

    def _run(
        self,
        argv: list[str],
        what: str,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
        timeout: float = 300,
    ) -> None:
        """Run a set-up command, its output appended to logs/<what>.log."""
        import os

        log_file = self.paths.logs / f"{what.split()[0]}.log"
        with log_file.open("a") as log:
            try:
                done = subprocess.run(
                    argv,
                    input=stdin,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=timeout,
                    env={**os.environ, **(env or {})},
                    cwd=self.paths.run,
                    check=False,
                )
            except FileNotFoundError:
                raise DevCloudError(
                    f"{argv[0]} is missing; install the Debian packages with: make system-deps"
                ) from None
            except subprocess.TimeoutExpired:
                raise DevCloudError(f"{what} did not finish within {timeout:.0f}s") from None
        if done.returncode != 0:
            raise DevCloudError(f"{what} failed (exit {done.returncode}); see {log_file}")

    def _create_databases(self, db_password: Secret) -> None:
        creates = " ".join(f"CREATE DATABASE {name};" for name in DATABASES)
        sql = (
            f"{creates} CREATE USER '{DB_USER}'@'{HOST}' IDENTIFIED BY '{db_password.reveal()}';"
            f" GRANT ALL ON *.* TO '{DB_USER}'@'{HOST}'; FLUSH PRIVILEGES;"
        )
        # The SQL goes on stdin, so the password never shows in a process list.
        self._run(
            ["mariadb", f"--defaults-file={self.paths.etc / 'my.cnf'}", "-u", "root"],
            "mariadb-setup",
            stdin=sql,
        )

    def _sync(self, venv: Path, name: str) -> None:
        etc, bin_dir = self.paths.etc, venv / "bin"
        if name == "placement":
            conf = ["--config-file", str(etc / "placement" / "placement.conf")]
            self._run([str(bin_dir / "placement-manage"), *conf, "db", "sync"], "sync-placement")
        elif name == "glance":
            conf = ["--config-file", str(etc / "glance" / "glance-api.conf")]
            self._run([str(bin_dir / "glance-manage"), *conf, "db_sync"], "sync-glance")
        elif name == "neutron":
            conf = [
                "--config-file",
                str(etc / "neutron" / "neutron.conf"),
                "--config-file",
                str(etc / "neutron" / "plugins" / "ml2" / "ml2_conf.ini"),
            ]
            self._run(
                [str(bin_dir / "neutron-db-manage"), *conf, "upgrade", "heads"], "sync-neutron"
            )
        elif name == "nova":
            manage = [
                str(bin_dir / "nova-manage"),
                "--config-file",
                str(etc / "nova" / "nova.conf"),
            ]
            for step in (
                ["api_db", "sync"],
                ["cell_v2", "map_cell0"],
                ["cell_v2", "create_cell", "--name", "cell1"],
                ["db", "sync"],
            ):
                self._run([*manage, *step], "sync-nova")

    def _keystone_setup(self, venv: Path, admin_password: Secret) -> None:
        manage = [
            str(venv / "bin" / "keystone-manage"),
            "--config-file",
            str(self.paths.etc / "keystone" / "keystone.conf"),
        ]
        owner = ["--keystone-user", _user_name(), "--keystone-group", _group_name()]
        # The key repositories need no database: made while the schema is.
        with ThreadPoolExecutor(3) as pool:
            steps = [["db_sync"], ["fernet_setup", *owner], ["credential_setup", *owner]]
            for future in [
                pool.submit(self._run, [*manage, *step], f"keystone-manage-{step[0]}")
                for step in steps
            ]:
                future.result()
        url = f"{self.auth_url}/"
        self._run(
            [
                *manage,
                "bootstrap",
                "--bootstrap-username",
                "admin",
                "--bootstrap-project-name",
                "admin",
                "--bootstrap-role-name",
                "admin",
                "--bootstrap-service-name",
                "keystone",
                "--bootstrap-region-id",
                REGION_PRIVATE,
                "--bootstrap-admin-url",
                url,
                "--bootstrap-public-url",
                url,
                "--bootstrap-internal-url",
                url,
            ],
            "keystone-manage",
            # From the environment, so the password never shows in a process list.
            env={"OS_BOOTSTRAP_PASSWORD": admin_password.reveal()},
        )

    def _record_epmd(self) -> None:
        """epmd is started by the Erlang VM as a daemon of its own: record it to stop it."""
        holder = port_holder(PORTS["epmd"])
        if holder is not None:
            self.state.record("epmd", holder[0])

    def _discover_compute(self, venv: Path) -> None:
        manage = [
            str(venv / "bin" / "nova-manage"),
            "--config-file",
            str(self.paths.etc / "nova" / "nova.conf"),
        ]
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            # --strict: exit 0 only once a new host was mapped. devcloud is the only one that
            # maps hosts (the scheduler's periodic discovery is off in nova.conf).
            found = subprocess.run(
                [*manage, "cell_v2", "discover_hosts", "--strict"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if found.returncode == 0:
                return
            self._check_alive("nova-compute")
            time.sleep(0.5)
        raise DevCloudError(
            f"nova-compute did not register within {START_TIMEOUT:.0f}s; "
            f"see {self.paths.logs / 'nova'}"
        )

    def _worker_image(self) -> Any:
        from bursting.image import ensure_image

        return ensure_image(log=self.log)

    def _register_image(self, admin: Any, image: Future[Any]) -> None:
        try:
            info = image.result()
        except Exception as exc:
            self.log(
                f"worker image not registered in Glance ({exc}); "
                "build it with: bursting image build, then run bursting devcloud up again"
            )
            return
        resources.register_worker_image(admin, info.reference, info.key, self.log)
        self._say(f"worker image {info.reference} in Glance")

    # ----- processes -----
    def _service(self, venv: Path, name: str) -> Service:
        return services.service(name, venv, self.paths)

    def _spawn(self, venv: Path, name: str) -> int:
        svc = self._service(venv, name)
        pid = spawn(svc, self.paths.logs / f"{name}.stdout", self.paths.run)
        self.state.record(name, pid)
        return pid

    def _check_alive(self, name: str) -> None:
        pid = self.state.pids().get(name)
        if pid is None or not alive(pid):
            raise DevCloudError(
                f"{name} exited during start-up; see {self.paths.logs}/{name}.stdout "
                f"and the logs beside it"
            )

    def _wait(self, venv: Path, name: str, timeout: float = START_TIMEOUT) -> None:
        svc = self._service(venv, name)
        deadline = time.monotonic() + timeout
        while not services.answering(svc):
            self._check_alive(name)
            if time.monotonic() > deadline:
                raise DevCloudError(
                    f"{name} did not answer on {HOST}:{svc.port} within {timeout:.0f}s; "
                    f"see {self.paths.logs}/{name}.stdout"
                )
            time.sleep(0.25)

    def _stop_all(self) -> None:
        """The OpenStack services together, then the message queue and database, then epmd."""
        with self.state.editing() as state:
            state["ready"] = False  # from the first stop on, nobody may take it for up
        pids = self.state.pids()
        stages = [
            [n for n in pids if n not in (*services.INFRA, "epmd")],
            [n for n in services.INFRA if n in pids],
            [n for n in ("epmd",) if n in pids],
        ]
        for stage in stages:
            with ThreadPoolExecutor(max(1, len(stage))) as pool:
                list(pool.map(lambda name: self._stop_one(name, pids[name]), stage))
        for name, port in PORTS.items():
            if not wait_port_closed(port, timeout=10):
                holder = port_holder(port)
                self.log(f"port {port} ({name}) still open" + (f": {holder}" if holder else ""))

    def _stop_one(self, name: str, pid: int) -> None:
        started = time.monotonic()
        stop_pid(pid)
        self.state.forget(name)
        took = time.monotonic() - started
        if took > 5:
            self.log(f"{name} took {took:.0f}s to stop")

    # ----- down / status / one service -----
    def down(self) -> None:
        """Stop every process devcloud started, by PID, and wait for its ports to close."""
        with self._exclusive():
            if not self.state.pids():
                self.log("devcloud is not running")
                self.state.clear()
                return
            self._stop_all()
            self.state.clear()
            self._stop_nodes()
            self.log("devcloud down")

    def _ensure_hypervisor(self) -> None:
        """The stand-in restarted if it died (it keeps no state: it reads Nova at each pass)."""
        pid = self.state.pids().get(services.HYPERVISOR)
        if pid is None or not alive(pid):
            self._spawn(Path(str(self.state.read().get("venv"))), services.HYPERVISOR)
            self.log("hypervisor (re)started")

    def _stop_nodes(self) -> None:
        """The hypervisor's nodes go with it, as VMs go with their hypervisor."""
        from bursting.devcloud.hypervisor import NODE_PREFIX
        from bursting.devpool.containers import ContainerNodes

        nodes = ContainerNodes(lambda: True)
        for name in nodes.node_names():
            if name.startswith(NODE_PREFIX):
                nodes.kill_node(name)

    def set_faults(self, **faults: Any) -> None:
        """What the hypervisor stand-in does wrong from its next pass on (see Faults): servers
        that never join, go to ERROR, boot slowly. No argument: none."""
        from bursting.devcloud.hypervisor import Faults

        checked = Faults.model_validate(faults)
        self.paths.base.mkdir(parents=True, exist_ok=True)
        self.paths.hypervisor_faults.write_text(checked.model_dump_json())

    def stop_service(self, name: str) -> None:
        """Stop one API (say the public cloud's nova-api) while everything else runs."""
        self._check_restartable(name)
        with self._exclusive():
            pid = self.state.pids().get(name)
            if pid is not None:
                stop_pid(pid)
                self.state.forget(name)
            wait_port_closed(PORTS[name])
            self.log(f"{name} stopped")

    def start_service(self, name: str) -> None:
        """Start one API stopped by stop_service; a no-op if it runs."""
        self._check_restartable(name)
        with self._exclusive():
            if not self.running():
                raise DevCloudError("devcloud is not running; start it with: bursting devcloud up")
            venv = Path(str(self.state.read().get("venv")))
            pid = self.state.pids().get(name)
            if pid is not None and alive(pid):
                return
            if pid is not None:
                # A restarted API must wait for the old process to be gone for good (its pid
                # file and socket released) before it starts.
                wait_gone(pid, 30)
            if not wait_port_closed(PORTS[name]):
                check_port_free(name, PORTS[name])
            self._spawn(venv, name)
            try:
                self._wait(venv, name)
            except DevCloudError:
                pid = self.state.pids().get(name)
                if pid is not None:
                    stop_pid(pid)
                    self.state.forget(name)
                raise
            self.log(f"{name} started")

    @staticmethod
    def _check_restartable(name: str) -> None:
        if name not in services.RESTARTABLE:
            raise DevCloudError(
                f"{name!r} cannot be stopped on its own; one of: "
                + ", ".join(sorted(services.RESTARTABLE))
            )

    def status(self) -> dict[str, object]:
        """What runs: per service its PID, port and whether it answers. No secret in it."""
        state = self.state.read()
        pids = self.state.pids()
        venv = Path(str(state.get("venv", "")))
        rows: dict[str, dict[str, object]] = {}
        for name in services.ALL:
            svc = self._service(venv, name)
            pid = pids.get(name)
            running = pid is not None and alive(pid)
            rows[name] = {
                "pid": pid if running else None,
                "port": svc.port,
                # Conductor, scheduler and compute listen on no port: only their PID tells.
                "answering": None
                if svc.port is None
                else running and services.answering(svc, timeout=1.0),
            }
        epmd = pids.get("epmd")
        rows["epmd"] = {
            "pid": epmd if epmd is not None and alive(epmd) else None,
            "port": PORTS["epmd"],
            "answering": None,
        }
        return {
            "running": self.running(),
            "up_seconds": state.get("up_seconds"),
            "auth_url": self.auth_url,
            "regions": {PRIVATE_CLOUD: REGION_PRIVATE, PUBLIC_CLOUD: REGION_PUBLIC},
            "clouds_yaml": str(self.clouds_yaml) if self.clouds_yaml.exists() else None,
            "clouds": [PRIVATE_CLOUD, PUBLIC_CLOUD, ADMIN_CLOUD],
            "ec2_credentials": str(self.ec2_file) if self.ec2_file.exists() else None,
            "state_dir": str(self.paths.run),
            "venv": str(venv) if state.get("venv") else None,
            "services": rows,
        }


def _in_thread(target: Callable[[], Any]) -> Future[Any]:
    """Run one call in a daemon thread (the image build may take minutes; start-up goes on)."""
    future: Future[Any] = Future()

    def run() -> None:
        try:
            future.set_result(target())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True, name="devcloud-image").start()
    return future


def _user_name() -> str:
    import os
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _group_name() -> str:
    import grp
    import os

    return grp.getgrgid(os.getgid()).gr_name
