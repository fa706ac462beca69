"""The personal HTCondor pool: `bursting devpool up|down|status|token|add-node|remove-node`.

The central manager and every extra execute node is its own `condor_master -f` with its own
CONDOR_CONFIG; their PIDs are kept in a state file so `down` leaves no process or mount behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bursting.contextualize import ADMIN_KEY_NAME, TOKEN_FILE_NAME, WorkerSpec
from bursting.devpool import condor_config as cc
from bursting.devpool.containers import ContainerNodes
from bursting.devpool.layout import (
    Layout,
    bind,
    build,
    cache_root,
    clean_env,
    detect,
    is_built,
    is_mounted,
    mount_system,
    mounts_under,
    processes_in,
    python_dirs,
    require_root,
    run,
    unmount_all,
)
from bursting.errors import DevPoolError
from bursting.model import AttributeValue, Flavor, Secret

DEFAULT_TOKEN_DIR = Path("~/.config/bursting/tokens.d").expanduser()
TOKEN_NAME = "devpool"
WORKER_TOKEN_NAME = "worker.token"
WORKER_ADMIN_KEY_NAME = "worker-admin.key"
DRAIN_TOKEN_NAME = "devpool-workers"
# Holds only the workers' admin key, for minting the drain token: never the central manager's
# own passwords.d, so a worker holding the key cannot mint tokens the central manager accepts.
WORKER_KEYS_DIR = "/var/lib/bursting/worker-keys"
SCRATCH = Path("/var/tmp/bursting")
STOP_TIMEOUT = 60.0


def admin_identity() -> str:
    return f"{cc.JOB_USER}@{cc.UID_DOMAIN}"


@dataclass
class NodeInfo:
    name: str
    pid: int
    cpus: int
    memory_mb: int
    attrs: dict[str, str] = field(default_factory=dict)


class DevPool:
    """One personal pool on this machine, in a native install or the cached chroot."""

    def __init__(
        self,
        layout: Layout | None = None,
        token_dir: Path = DEFAULT_TOKEN_DIR,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.layout = layout or detect()
        self.token_dir = token_dir
        self.log = log or (lambda message: None)
        self.state_file = cache_root() / "devpool-state.json"
        self.nodes_root = cc.local_dir("nodes")  # each node's LOCAL_DIR is under it, by name

    # ----- state -----
    def _state(self) -> dict[str, object]:
        try:
            data = json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, state: dict[str, object]) -> None:
        """Replace the whole state, under the state lock."""
        with self._locked():
            self._write(state)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive over threads and processes; every writer of the state file holds it."""
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        with self.state_file.with_suffix(".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @contextlib.contextmanager
    def _editing(self) -> Iterator[dict[str, object]]:
        """Read, change and write the state as one step, so concurrent edits never lose one."""
        with self._locked():
            state = self._state()
            yield state
            self._write(state)

    def _write(self, state: dict[str, object]) -> None:
        """Atomic: a temp file of its own (never shared with another writer), then rename."""
        fd, tmp = tempfile.mkstemp(
            dir=self.state_file.parent, prefix=f".{self.state_file.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(state, indent=2))
            os.replace(tmp, self.state_file)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _nodes(self) -> dict[str, NodeInfo]:
        raw = self._state().get("nodes", {})
        return {name: NodeInfo(**info) for name, info in dict(raw).items()}  # type: ignore[call-overload]

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        stat = Path(f"/proc/{pid}/stat")
        return not (stat.exists() and stat.read_text().split()[2] == "Z")

    def running(self) -> bool:
        pid = self._state().get("master_pid")
        return isinstance(pid, int) and self._alive(pid)

    @property
    def token_file(self) -> Path:
        return self.token_dir / TOKEN_NAME

    @property
    def worker_admin_key_file(self) -> Path:
        """`workers.admin_key` of the embedded configs: the key burst workers verify the
        controller's drain token with (written 0600 by `up`)."""
        return self.token_dir.parent / WORKER_ADMIN_KEY_NAME

    @property
    def worker_token_file(self) -> Path:
        """The token burst workers join with (identity condor@UID_DOMAIN): `workers.token.file`
        of the embedded configs. Outside tokens.d: the host's own clients must not present it."""
        return self.token_dir.parent / WORKER_TOKEN_NAME

    # ----- up -----
    def up(self, shared: list[Path] | None = None, local_cpus: int = 0) -> None:
        """Build (once), mount, configure and start the central manager; idempotent."""
        require_root()
        shared_dirs = _outermost({*(p.resolve() for p in shared or []), *python_dirs(), SCRATCH})
        if self.running():
            self.log("personal pool already running")
            self._wait_ready()
            self._share(shared_dirs)
            self._write_host_token()
            return
        _port_free_or_fail(cc.COLLECTOR)
        build(self.layout, self.log)
        self._prepare_root(shared_dirs)
        paths = self._distribution_paths()
        self._write_config("pool", cc.central_manager(paths, admin_identity(), local_cpus))
        pid = self._start_master("pool")
        self._save(
            {
                "master_pid": pid,
                "nodes": {},
                "shared": [str(p) for p in shared_dirs],
                "paths": paths,
            }
        )
        try:
            self._wait_ready()
            self._write_host_token()
        except DevPoolError:
            self.down()
            raise
        self.log(f"personal pool up: collector {cc.COLLECTOR}, token {self.token_file}")

    def _share(self, shared_dirs: list[Path]) -> None:
        """Make host directories visible to jobs of a running pool (a new clone, say), and
        re-bind any whose host directory was deleted and made anew since it was mounted."""
        if self.layout.native:
            return
        fixed = []
        for directory in sorted(shared_dirs, key=lambda d: len(d.parts)):
            if self._bind_fresh(directory):
                fixed.append(directory)
        if fixed:
            with self._editing() as state:
                known = {Path(p) for p in state.get("shared", [])}  # type: ignore[attr-defined]
                state["shared"] = [str(p) for p in _outermost(known | set(fixed))]
            self.log(f"now shared with jobs: {', '.join(map(str, fixed))}")

    def _bind_fresh(self, directory: Path) -> bool:
        """Bind-mount a host directory at the same path inside the image unless it already shows
        that very directory; a mount left from a deleted directory is replaced. True if bound."""
        target = self.layout.path(str(directory))
        if _same_directory(directory, target):
            return False
        if is_mounted(target):
            run(["umount", "--lazy", str(target)])  # a stale view of a deleted directory
        bind(directory, target)
        return True

    def _prepare_root(self, shared_dirs: list[Path]) -> None:
        layout = self.layout
        SCRATCH.mkdir(parents=True, exist_ok=True)
        SCRATCH.chmod(0o1777)
        if not layout.native:
            mount_system(layout)
            for directory in sorted(shared_dirs, key=lambda d: len(d.parts)):
                self._bind_fresh(directory)
            hosts = layout.path("/etc/hosts")
            entry = f"127.0.0.1 {socket.gethostname()}"
            if entry not in hosts.read_text().splitlines():
                with hosts.open("a") as handle:
                    handle.write(entry + "\n")
            # The job user must reach the interpreter under /root inside the image.
            layout.path("/root").chmod(0o711)
        self._ensure_job_user()

    def _ensure_job_user(self) -> None:
        """The unprivileged job user, with the same uid on the host and inside the image."""
        try:
            uid = pwd.getpwnam(cc.JOB_USER).pw_uid
        except KeyError:
            run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    cc.JOB_USER,
                ]
            )
            uid = pwd.getpwnam(cc.JOB_USER).pw_uid
        if self.layout.native:
            return
        passwd = self.layout.path("/etc/passwd").read_text()
        if not any(line.startswith(f"{cc.JOB_USER}:") for line in passwd.splitlines()):
            run(
                self.layout.command(
                    [
                        "useradd",
                        "--uid",
                        str(uid),
                        "--no-create-home",
                        "--shell",
                        "/bin/sh",
                        cc.JOB_USER,
                    ]
                )
            )

    def _distribution_paths(self) -> dict[str, str]:
        keys = ["RELEASE_DIR", "BIN", "SBIN", "LIB", "LIBEXEC", "SHARE"]
        out = run(self.layout.command(["condor_config_val", *keys]), timeout=60)
        values = out.strip().splitlines()
        if len(values) != len(keys):
            raise DevPoolError(f"condor_config_val gave unexpected output: {out!r}")
        return dict(zip(keys, values, strict=True))

    def _write_config(self, name: str, base: str, extra: dict[str, str] | None = None) -> Path:
        directory = self.layout.path(cc.local_dir(name))
        for sub in cc.SUBDIRS:
            (directory / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("log", "spool", "execute", "lock", "run"):
            self._chown_condor(directory / sub)
        self.layout.path(f"{cc.STATE_DIR}/etc").mkdir(parents=True, exist_ok=True)
        config = directory / "condor_config"
        config.write_text(base + "\n")
        for file_name, text in (extra or {}).items():
            (directory / "config.d" / file_name).write_text(text)
        return config

    def _chown_condor(self, path: Path) -> None:
        entry = self._passwd_entry("condor")
        if entry:
            os.chown(path, entry[0], entry[1])

    def _passwd_entry(self, user: str) -> tuple[int, int] | None:
        for line in self.layout.path("/etc/passwd").read_text().splitlines():
            parts = line.split(":")
            if parts[0] == user:
                return int(parts[2]), int(parts[3])
        return None

    def _start_master(self, name: str) -> int:
        config = f"{cc.local_dir(name)}/condor_config"
        log_file = self.layout.path(cc.local_dir(name)) / "log" / "master.stdout"
        with log_file.open("ab") as out:
            process = subprocess.Popen(
                self.layout.command(["condor_master", "-f"], env={"CONDOR_CONFIG": config}),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Also in the launcher's own environment (chroot, env): the process is known as
                # this node's from its first instruction, so a node whose starter died before
                # recording it is still found (see node_pids).
                env={**clean_env(), "CONDOR_CONFIG": config},
            )
        _wait_environment(process.pid, f"CONDOR_CONFIG={config}")
        return process.pid

    def _wait_ready(self, timeout: float = 90.0) -> None:
        from bursting.pool.htcondor import probe_pool

        deadline = time.monotonic() + timeout
        problem: str | None = "no answer yet"
        while time.monotonic() < deadline:
            if not self.running():
                raise DevPoolError(
                    "condor_master exited during start-up; see "
                    f"{self.layout.path(cc.local_dir('pool'))}/log/MasterLog"
                )
            problem = probe_pool(cc.COLLECTOR)
            if not problem and self.layout.path(f"{cc.STATE_DIR}/etc/passwords.d/POOL").exists():
                return
            time.sleep(0.5)
        raise DevPoolError(f"personal pool did not come up within {timeout:.0f}s: {problem}")

    # ----- tokens -----
    def mint_token(self, identity: str) -> Secret:
        out = run(
            self.layout.command(
                ["condor_token_create", "-identity", identity],
                env={"CONDOR_CONFIG": f"{cc.local_dir('pool')}/condor_config"},
            ),
            timeout=60,
        )
        return Secret(out.strip())

    def _write_host_token(self) -> None:
        # Minted afresh each time: a token from an earlier image's signing key would be refused.
        token = self.mint_token(admin_identity())
        _write_secret(self.token_file, token)
        _write_secret(self.worker_token_file, self.mint_token(f"condor@{cc.UID_DOMAIN}"))
        self._write_drain_token()

    def _write_drain_token(self) -> None:
        """The host's token for draining burst workers, signed with the workers' admin key (the
        host's clients pick it for a server that holds only that key)."""
        key_file = self.worker_admin_key_file
        if not key_file.exists():
            _write_secret(key_file, Secret(secrets.token_hex(32)))
        inner = self.layout.path(WORKER_KEYS_DIR)
        inner.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_secret(inner / ADMIN_KEY_NAME, Secret(key_file.read_text().strip()))
        out = run(
            self.layout.command(
                ["condor_token_create", "-key", ADMIN_KEY_NAME, "-identity", admin_identity()],
                env={
                    "CONDOR_CONFIG": f"{cc.local_dir('pool')}/condor_config",
                    "_CONDOR_SEC_PASSWORD_DIRECTORY": WORKER_KEYS_DIR,
                },
            ),
            timeout=60,
        )
        _write_secret(self.token_dir / DRAIN_TOKEN_NAME, Secret(out.strip()))

    def ensure_token(self) -> Path:
        require_root()
        if not self.running():
            raise DevPoolError(
                "the personal pool is not running; start it with: bursting devpool up"
            )
        self._write_host_token()
        return self.token_file

    # ----- execute nodes -----
    def add_node(
        self,
        cpus: int,
        memory_mb: int,
        attrs: dict[str, str] | None = None,
        name: str | None = None,
        spec: WorkerSpec | None = None,
    ) -> str:
        """Start one more startd (own master, LOCAL_DIR and name) joining this pool's collector."""
        require_root()
        if not self.running():
            raise DevPoolError(
                "the personal pool is not running; start it with: bursting devpool up"
            )
        name = name or f"node-{secrets.token_hex(3)}"
        if self.node_pids(name):
            raise DevPoolError(f"execute node {name} already runs; pick another --name")
        token_dir = f"{cc.local_dir('nodes/' + name)}/tokens.d"
        spec = spec or self.worker_spec(name, cpus, memory_mb, attrs)
        spec = WorkerSpec(**{**spec.__dict__, "token_dir": token_dir})
        base, worker = cc.execute_node(self._paths(), name, spec)
        self._write_config(f"nodes/{name}", base, {"50-bursting-worker.conf": worker})
        _write_secret(self.layout.path(token_dir) / TOKEN_FILE_NAME, spec.token)
        pid = self._start_master(f"nodes/{name}")
        with self._editing() as state:
            state.setdefault("nodes", {})[name] = NodeInfo(  # type: ignore[index]
                name,
                pid,
                spec.flavor.cpus,
                spec.flavor.memory_mb,
                {k: str(v) for k, v in spec.extra_attrs.items()},
            ).__dict__
        return name

    def worker_spec(
        self, name: str, cpus: int, memory_mb: int, attrs: dict[str, str] | None = None
    ) -> WorkerSpec:
        """How a node added by hand joins this pool; burst tags may be given as attributes."""
        attrs = dict(attrs or {})
        return WorkerSpec(
            pool_id=attrs.pop("BurstingPool", "devpool"),
            instance_id=attrs.pop("BurstingInstance", name),
            cloud=attrs.pop("BurstingCloud", "devpool"),
            flavor=Flavor(attrs.pop("BurstingFlavor", f"{cpus}c{memory_mb}m"), cpus, memory_mb),
            collector=cc.COLLECTOR,
            token=self.mint_token(f"condor@{cc.UID_DOMAIN}"),
            uid_domain=cc.UID_DOMAIN,
            admin_identity=admin_identity(),
            extra_attrs=dict[str, AttributeValue](attrs),
            admin_key=self._admin_key(),
        )

    def _admin_key(self) -> Secret | None:
        try:
            return Secret(self.worker_admin_key_file.read_text().strip())
        except FileNotFoundError:
            return None

    def add_container_node(
        self, cpus: int, memory_mb: int, name: str, attrs: dict[str, str] | None = None
    ) -> str:
        """One execute node booted from the worker image, sharing nothing with this host."""
        require_root()
        if not self.running():
            raise DevPoolError(
                "the personal pool is not running; start it with: bursting devpool up"
            )
        spec = self.worker_spec(name, cpus, memory_mb, attrs)
        return self.containers().add_node(cpus, memory_mb, name=name, spec=spec)

    def node_names(self) -> list[str]:
        """Execute nodes that run, found from their processes: a node whose starter was killed
        before it wrote the state file is listed too."""
        return sorted(_node_processes(self.nodes_root))

    def node_pids(self, name: str) -> list[int]:
        """Every live process of one execute node (its master first), whatever the state says."""
        return _node_processes(self.nodes_root).get(name, [])

    def remove_node(self, name: str, timeout: float = STOP_TIMEOUT) -> None:
        """Stop a node peacefully: drain it (running jobs finish), then stop its master."""
        from bursting.pool.htcondor import HTCondorPool

        pids = self.node_pids(name)  # by its processes: a recorded PID may be stale
        if name not in self._nodes() and not pids:
            raise DevPoolError(f"no execute node named {name}; see: bursting devpool status")
        if pids:
            master = pids[0]
            drained = HTCondorPool.for_devpool(self.token_dir).drain([self.startd_name(name)])
            if not drained or not _wait_gone(master, timeout):
                # Never advertised (so no job can be running), or stuck: shut it down.
                _stop(master, signal.SIGTERM, STOP_TIMEOUT)
        self._forget_node(name)

    def _forget_node(self, name: str) -> None:
        with self._editing() as state:
            nodes = dict(state.get("nodes", {}))  # type: ignore[call-overload]
            nodes.pop(name, None)
            state["nodes"] = nodes

    def kill_node(self, name: str) -> None:
        """Stop a node at once (as a cloud deleting its VM would), jobs or not. The node's
        processes are found by their CONDOR_CONFIG, never by a recorded PID (which may be stale
        or reused, or missing when whoever started the node was killed before recording it)."""
        for _ in range(10):  # looked up afresh each time: a stopped PID may be reused
            pids = self.node_pids(name)
            if not pids:
                break
            _stop(pids[0], signal.SIGQUIT, timeout=STOP_TIMEOUT)  # the master takes the rest
        self._forget_node(name)

    def daemon(self, action: str, daemon: str) -> None:
        """Turn one central-manager daemon off or on (condor_off/condor_on), as fault tests do."""
        if action not in ("off", "on"):
            raise DevPoolError(f"action must be 'off' or 'on', got {action!r}")
        run(
            self.layout.command(
                [f"condor_{action}", "-daemon", daemon],
                env={"CONDOR_CONFIG": f"{cc.local_dir('pool')}/condor_config"},
            ),
            timeout=60,
        )

    @staticmethod
    def startd_name(node: str) -> str:
        return f"{node}@{socket.gethostname()}"

    def _paths(self) -> dict[str, str]:
        paths = self._state().get("paths")
        return dict(paths) if isinstance(paths, dict) else self._distribution_paths()

    # ----- down / status -----
    def down(self) -> None:
        """Stop every master of this pool and undo every mount; safe to call twice."""
        require_root()
        state = self._state()
        for name in self.node_names():
            self.kill_node(name)
        self._remove_containers()
        pid = state.get("master_pid")
        if isinstance(pid, int):
            _stop(pid, signal.SIGTERM, STOP_TIMEOUT)
        if not self.layout.native:
            for stray in processes_in(self.layout.root):
                _stop(stray, signal.SIGKILL, 10)
            unmount_all(self.layout.root)
        self.state_file.unlink(missing_ok=True)

    def containers(self) -> ContainerNodes:
        """The execute nodes booted from the worker image (the local cloud's instances)."""
        return ContainerNodes(self.running)

    def _remove_containers(self) -> None:
        if shutil.which("podman"):  # without podman no container node can have been started
            self.containers().kill_all()

    def status(self) -> dict[str, object]:
        state = self._state()
        return {
            "mode": "native" if self.layout.native else f"chroot {self.layout.root}",
            "built": is_built(self.layout),
            "running": self.running(),
            "collector": cc.COLLECTOR,
            "token": str(self.token_file) if self.token_file.exists() else None,
            "nodes": self.node_names(),
            "containers": self.containers().node_names() if shutil.which("podman") else [],
            "shared": state.get("shared", []),
            "mounts": []
            if self.layout.native
            else [str(m) for m in mounts_under(self.layout.root)],
        }


def _same_directory(host: Path, inside: Path) -> bool:
    try:
        return os.path.samestat(os.stat(host), os.stat(inside))
    except OSError:
        return False


def _node_processes(nodes_root: str) -> dict[str, list[int]]:
    """Live processes of execute nodes by node name, read from their CONDOR_CONFIG; in each
    list the node's master (the process whose parent is not of the same node) comes first."""
    prefix = f"CONDOR_CONFIG={nodes_root}/".encode()
    found: dict[str, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if not fields or fields[0] == "Z":
            continue
        for variable in environ.split(b"\0"):
            if variable.startswith(prefix) and variable.endswith(b"/condor_config"):
                name = variable[len(prefix) : -len(b"/condor_config")].decode()
                if name and "/" not in name:
                    found.setdefault(name, []).append((int(entry.name), int(fields[1])))
                break
    ordered = {}
    for name, members in found.items():
        pids = {pid for pid, _ in members}
        ordered[name] = [pid for pid, parent in sorted(members, key=lambda m: m[1] in pids)]
    return ordered


def _wait_environment(pid: int, variable: str, timeout: float = 5.0) -> None:
    """Wait until a new process's environment shows in /proc: the kernel sets it up a moment
    after Popen returns, and until then node_pids cannot find the node (so a delete could miss
    it). Bounded; a process that exits meanwhile ends the wait."""
    wanted = variable.encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if wanted in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                return
        except OSError:
            return  # gone already: nothing to find
        time.sleep(0.005)


def _outermost(dirs: set[Path]) -> list[Path]:
    """Drop directories already inside another shared one (bind-mounting both is redundant)."""
    return sorted(d for d in dirs if not any(d != o and d.is_relative_to(o) for o in dirs))


def _write_secret(path: Path, secret: Secret) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret.reveal() + "\n")
    path.chmod(0o600)


def _port_free_or_fail(address: str) -> None:
    host, port = address.split(":")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except OSError:
            raise DevPoolError(
                f"port {port} on {host} is taken by another program; stop it "
                f"(see: ss -ltnp 'sport = :{port}') before: bursting devpool up"
            ) from None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not DevPool._alive(pid):
            _reap(pid)
            return True
        _reap(pid)
        time.sleep(0.2)
    return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _stop(pid: int, sig: signal.Signals, timeout: float) -> None:
    if not DevPool._alive(pid):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    if not _wait_gone(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        _wait_gone(pid, 10)
