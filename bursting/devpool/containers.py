"""Execute nodes that share nothing with this host: one podman container per node, from the
worker image, joined to the personal pool's collector.

A node is configured the way a cloud VM is: the files its cloud-init user-data would write (the
same renderer, `render_cloud_init`) are placed at the same paths inside the container, and the
image's own HTCondor starts. Besides those files the container sees nothing of this host: no repo,
no venv, no interpreter, no campaign directory. The only other layer is the platform's: a VM has
a network of its own, these containers share the host's (so their daemons bind to 127.0.0.1 and
pick their own ports, as the personal pool's do). Deleting a node removes its container and its
writable layer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from bursting.contextualize import render_cloud_init
from bursting.devpool import condor_config as cc
from bursting.devpool.layout import cache_root, clean_env
from bursting.errors import DevPoolError
from bursting.image.tools import container_limits
from bursting.model import WorkerSpec

NAME_PREFIX = "bursting-node-"
NODE_LABEL = "io.bursting.node"
PLATFORM_CONFIG = "/etc/condor/config.d/40-bursting-platform.conf"
# Only what configures HTCondor is carried over from the user-data: the systemd drop-in that
# powers a VM off when HTCondor stops has its equivalent here in the container ending with its
# master.
CARRIED_PREFIXES = ("/etc/condor/",)
PODMAN_TIMEOUT = 120.0
STOP_SECONDS = 10  # a fast shutdown takes about a second; then the container is killed

# `crun`, podman's default runtime, fails on this host's hybrid cgroups; runc works and enforces
# the flavor's cores and memory.
RUNTIME_ARGS = ("--runtime", "runc", "--cgroup-manager", "cgroupfs")

ImageLookup = Callable[[], str]

# A podman call whose caller is killed (kill -9 of the controller mid-boot) is killed too, so no
# container can appear after the caller's successor has looked for it; what it left half-made
# is found by name and removed.
_SETPRIV = shutil.which("setpriv")
_DIES_WITH_CALLER = (_SETPRIV, "--pdeathsig", "KILL") if _SETPRIV else ()


def platform_config() -> str:
    """The platform's layer under the rendered worker config: the host's network namespace is
    shared, so loopback only and no shared port (the central manager holds 9618)."""
    return (
        "# Platform of the personal pool's container nodes: the host's network namespace.\n"
        "USE_SHARED_PORT = False\n"
        "# The central manager answers on the same address but is no relative of this node's\n"
        "# master: a family session would be offered to it and refused.\n"
        "SEC_USE_FAMILY_SESSION = False\n" + cc.loopback_and_tuning()
    )


def user_data_files(user_data: str) -> dict[str, tuple[str, int]]:
    """Path inside the node -> (content, mode): what a cloud-config user-data writes for
    HTCondor (its write_files under /etc/condor), plus the platform's layer."""
    if not user_data.startswith("#cloud-config"):
        raise DevPoolError("user-data: not a #cloud-config document; nothing would configure it")
    try:
        document = yaml.safe_load(user_data.removeprefix("#cloud-config\n")) or {}
    except yaml.YAMLError as exc:
        raise DevPoolError(f"user-data: invalid YAML ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("write_files", []), list):
        raise DevPoolError("user-data: write_files must be a list of {path, content, permissions}")
    files: dict[str, tuple[str, int]] = {}
    for entry in document.get("write_files", []):
        path = str(entry.get("path", ""))
        if path.startswith(CARRIED_PREFIXES):
            files[path] = (
                str(entry.get("content", "")),
                int(str(entry.get("permissions", "0644")), 8),
            )
    files[PLATFORM_CONFIG] = (platform_config(), 0o644)
    return files


def seed_files(spec: WorkerSpec) -> dict[str, tuple[str, int]]:
    """What the node's user-data, rendered from its worker spec, writes for HTCondor."""
    return user_data_files(render_cloud_init(spec))


@dataclass(frozen=True)
class Boot:
    """One node to start: its size, the files its user-data writes, the labels it carries."""

    name: str
    cpus: int
    memory_mb: int
    files: dict[str, tuple[str, int]]
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, spec: WorkerSpec) -> Boot:
        labels = {"io.bursting.cloud": spec.cloud, "io.bursting.pool": spec.pool_id}
        flavor = spec.flavor
        return cls(name, flavor.cpus, flavor.memory_mb, seed_files(spec), labels)


def run_arguments(boot: Boot, image: str, seed: Path) -> list[str]:
    """`podman run` for one node: its own container, sized to the flavor, the seed files only."""
    mounts = []
    for inner in sorted(boot.files):
        mounts += ["--volume", f"{seed / inner.lstrip('/')}:{inner}:ro"]
    labels = []
    for key, value in sorted(boot.labels.items()):
        labels += ["--label", f"{key}={value}"]
    name = boot.name
    return [
        "run",
        "--detach",
        *RUNTIME_ARGS,
        *container_limits(),
        "--name",
        container_name(name),
        "--label",
        f"{NODE_LABEL}={name}",
        *labels,
        "--hostname",
        name,
        "--add-host",
        f"{name}:127.0.0.1",
        "--network",
        "host",
        # What `podman stop` sends: HTCondor's fast shutdown, which kills the jobs and withdraws
        # the node's ads from the collector (a SIGKILL would leave ghosts there to be matched).
        "--stop-signal",
        "SIGQUIT",
        "--cpus",
        str(boot.cpus),
        "--memory",
        f"{boot.memory_mb}m",
        "--memory-swap",
        f"{boot.memory_mb}m",
        *mounts,
        image,
    ]


def container_name(name: str) -> str:
    return NAME_PREFIX + name


class ContainerNodes:
    """The personal pool's execute nodes as containers booted from the worker image: what the
    local cloud's instances are. Same verbs as the pool's chroot nodes (`DevPool`)."""

    def __init__(
        self,
        is_up: Callable[[], bool],
        image: ImageLookup | None = None,
        seeds: Path | None = None,
    ) -> None:
        self._is_up = is_up
        self._image = image or _current_image_reference
        self.seeds = seeds or cache_root() / "node-seeds"

    def running(self) -> bool:
        """Whether the pool these nodes join is up (the nodes' "hypervisor" is podman)."""
        return self._is_up()

    def add_node(
        self,
        cpus: int,
        memory_mb: int,
        attrs: dict[str, str] | None = None,
        name: str | None = None,
        spec: WorkerSpec | None = None,
    ) -> str:
        """Boot one node from the image, configured only by its worker spec's user-data."""
        if name is None or spec is None:
            raise DevPoolError("a container node needs its name and its worker spec")
        if (cpus, memory_mb) != (spec.flavor.cpus, spec.flavor.memory_mb):
            raise DevPoolError(f"node {name}: size differs from its worker spec's flavor")
        return self.boot(Boot.of(name, spec))

    def boot(self, boot: Boot, image: str | None = None) -> str:
        """Start one node from `image` (default: the current worker image), configured only by
        the files of its user-data."""
        reference = image or self._image()
        if self.node_pids(boot.name):
            raise DevPoolError(f"execute node {boot.name} already runs")
        self._remove(boot.name)  # a node that powered itself off: its container is replaced
        seed = self._write_seed(boot.name, boot.files)
        _podman(run_arguments(boot, reference, seed))
        return boot.name

    def node_pids(self, name: str) -> list[int]:
        """The node's init process (its condor_master) while the container runs, else []."""
        state = self._inspect(name)
        if state is None or not state.get("Running"):
            return []
        pid = int(state.get("Pid") or 0)
        return [pid] if pid > 0 else []

    def node_names(self) -> list[str]:
        """Every node container on this host, running or not."""
        out = _podman(
            ["ps", "--all", "--filter", f"label={NODE_LABEL}", "--format", "{{.Names}}"],
        )
        return sorted(
            line.removeprefix(NAME_PREFIX)
            for line in out.splitlines()
            if line.startswith(NAME_PREFIX)
        )

    def kill_node(self, name: str) -> None:
        """Delete the node at once, as a cloud deleting its VM would: its jobs die with it, and
        its container, writable layer and seed files are removed."""
        self._remove(name)
        if self._inspect(name) is not None:
            raise DevPoolError(f"container {container_name(name)} is still there after removal")
        shutil.rmtree(self.seeds / name, ignore_errors=True)

    def kill_all(self) -> None:
        for name in self.node_names():
            self.kill_node(name)
        known = set(self.node_names())
        for named, container_id in _orphans():
            if named.removeprefix(NAME_PREFIX) not in known:
                _remove_orphan(container_id)

    def logs(self, name: str) -> str:
        return _podman(["logs", container_name(name)], check=False)

    def _remove(self, name: str) -> None:
        """Stop (fast shutdown, then SIGKILL after STOP_SECONDS) and remove, whatever its state;
        then anything a `podman run` killed midway left behind under this name."""
        _podman(["rm", "--force", "--ignore", "--time", str(STOP_SECONDS), container_name(name)])
        for named, container_id in _orphans():
            if named == container_name(name):
                _remove_orphan(container_id)

    def _inspect(self, name: str) -> dict[str, Any] | None:
        done = _podman_run(
            ["container", "inspect", "--format", "{{json .State}}", container_name(name)]
        )
        if done.returncode != 0:
            if "no such container" in done.stderr.lower():
                return None
            raise DevPoolError(f"podman container inspect failed: {done.stderr.strip()}")
        state = json.loads(done.stdout)
        return state if isinstance(state, dict) else None

    def _write_seed(self, name: str, files: dict[str, tuple[str, int]]) -> Path:
        """The node's user-data files, private to root (the token is among them)."""
        seed = self.seeds / name
        shutil.rmtree(seed, ignore_errors=True)
        seed.mkdir(parents=True, mode=0o700)
        seed.chmod(0o700)
        for inner, (content, mode) in files.items():
            path = seed / PurePosixPath(inner).relative_to("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            path.chmod(mode)
        return seed


def _orphans() -> list[tuple[str, str]]:
    """(name, id) of node containers whose monitor (conmon) still runs, whether podman knows
    them or not: a `podman run` killed between creating the container and recording it leaves
    one in the runtime's "created" state, a process with no record."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"conmon"):
            continue
        named = _argument(argv, b"-n")
        container_id = _argument(argv, b"-c")
        if named and named.startswith(NAME_PREFIX.encode()) and container_id:
            found.append((named.decode(), container_id.decode()))
    return found


def _argument(argv: list[bytes], flag: bytes) -> bytes | None:
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


def _remove_orphan(container_id: str) -> None:
    """Kill the runtime's half-made container (its conmon then exits) and free its storage."""
    done = subprocess.run(
        ["runc", "delete", "--force", container_id],
        capture_output=True,
        text=True,
        timeout=PODMAN_TIMEOUT,
        check=False,
    )
    if done.returncode != 0 and "does not exist" not in done.stderr:
        raise DevPoolError(f"runc delete {container_id[:12]} failed: {done.stderr.strip()}")
    _podman(["rm", "--force", "--storage", container_id], check=False)


def _current_image_reference() -> str:
    from bursting.image import current_image

    info = current_image()
    if info is None:
        raise DevPoolError(
            "the worker image is not built or is older than the payload; "
            "build it with: bursting image build"
        )
    return info.reference


def _podman_run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    podman = shutil.which("podman")
    if podman is None:
        raise DevPoolError("podman is not installed; apt-get install -y podman runc")
    try:
        return subprocess.run(
            [*_DIES_WITH_CALLER, podman, *args],
            capture_output=True,
            text=True,
            timeout=PODMAN_TIMEOUT,
            check=False,
            env=clean_env(),
        )
    except subprocess.TimeoutExpired:
        raise DevPoolError(
            f"podman {args[0]} did not answer within {PODMAN_TIMEOUT:.0f}s"
        ) from None


def _podman(args: Sequence[str], *, check: bool = True) -> str:
    done = _podman_run(args)
    if check and done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-6:]
        raise DevPoolError(f"podman {args[0]} failed (exit {done.returncode}): " + " / ".join(tail))
    return done.stdout
