"""A PodRunner that runs each container from its OCI image with podman, the way devcloud's
hypervisor boots an OpenStack server into an HTCondor execute node (bursting.devpool.containers):
its own container sized to the pod's limits, configured only by what the pod spec gives it (the
ConfigMap and Secret volumes as files at their mount paths, env, command and args), nothing of
this host besides the platform's layer (the host's network namespace: loopback HTCondor). With
the worker image and the provider's pod, a Kubernetes worker runs real jobs."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bursting.devpool.containers import PLATFORM_CONFIG, RUNTIME_ARGS, platform_config
from bursting.devpool.layout import clean_env
from bursting.image.tools import container_limits
from tests.kube.runners import RUNNING, ContainerStartError, Exited, ImagePullError, Launch, State

LABEL = "io.bursting.kube-standin"  # its value: the runner that started the container
POD_LABEL = "io.bursting.kube-pod"
PREFIX = "bursting-kube-"
TIMEOUT = 120.0
POLL_EVERY = 1.0  # seconds between two `podman inspect`s of one container (2 shared cores)
_SETPRIV = shutil.which("setpriv")
_DIES_WITH_CALLER = (_SETPRIV, "--pdeathsig", "KILL") if _SETPRIV else ()


@dataclass
class Handle:
    name: str
    seed: Path
    checked: float = 0.0
    state: State = RUNNING


def podman(args: list[str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("podman")
    if binary is None:
        raise ContainerStartError("podman is not installed; apt-get install -y podman runc")
    try:
        return subprocess.run(
            [*_DIES_WITH_CALLER, binary, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=clean_env(),
        )
    except subprocess.TimeoutExpired:
        raise ContainerStartError(
            f"podman {args[0]} did not answer within {timeout:.0f}s"
        ) from None


def container_name(launch: Launch) -> str:
    return f"{PREFIX}{launch.namespace}-{launch.pod}-{launch.container}-{launch.uid[:8]}"[:120]


def write_seed(launch: Launch, seed: Path) -> list[str]:
    """Each mount's files under `seed` (private to root: tokens are among them), and the
    `--volume` arguments that show them at their mount paths. The platform's HTCondor layer
    goes in beside them, into a mounted directory when one holds its path."""
    shutil.rmtree(seed, ignore_errors=True)
    seed.mkdir(parents=True, mode=0o700)
    seed.chmod(0o700)
    arguments: list[str] = []
    platform = (platform_config().encode(), 0o644)
    placed = False
    for index, mount in enumerate(launch.mounts):
        root = seed / str(index)
        files = dict(mount.files)
        if not mount.file and PurePosixPath(PLATFORM_CONFIG).parent == PurePosixPath(mount.path):
            files[PurePosixPath(PLATFORM_CONFIG).name] = platform
            placed = True
        if mount.file:
            content, mode = files[""]
            root.mkdir()
            target = root / PurePosixPath(mount.path).name
            target.write_bytes(content)
            target.chmod(mode)
        else:
            for relative, (content, mode) in files.items():
                target = root / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
                target.chmod(mode)
            root.mkdir(exist_ok=True)
            target = root
        arguments += ["--volume", f"{target}:{mount.path}:{'ro' if mount.read_only else 'rw'}"]
    if not placed:
        target = seed / "platform" / PurePosixPath(PLATFORM_CONFIG).name
        target.parent.mkdir()
        target.write_bytes(platform[0])
        target.chmod(platform[1])
        arguments += ["--volume", f"{target}:{PLATFORM_CONFIG}:ro"]
    return arguments


def run_arguments(launch: Launch, image: str, volumes: list[str], runner: str) -> list[str]:
    """`podman run` for one container: the pod's size, env, volumes, command and args."""
    sizing: list[str] = []
    if launch.cpus:
        sizing += ["--cpus", f"{launch.cpus:g}"]
    if launch.memory_mb:
        sizing += ["--memory", f"{launch.memory_mb}m", "--memory-swap", f"{launch.memory_mb}m"]
    env: list[str] = []
    for key, value in sorted(launch.env.items()):
        env += ["--env", f"{key}={value}"]
    entry = ["--entrypoint", json.dumps(list(launch.command))] if launch.command else []
    workdir = ["--workdir", launch.working_dir] if launch.working_dir else []
    return [
        "run", "--detach", "--pull", "never", *RUNTIME_ARGS, *container_limits(),
        "--name", container_name(launch),
        "--label", f"{LABEL}={runner}", "--label", f"{POD_LABEL}={launch.namespace}.{launch.pod}",
        "--hostname", launch.pod, "--add-host", f"{launch.pod}:127.0.0.1", "--network", "host",
        *sizing, *env, *volumes, *entry, *workdir, image, *launch.args,
    ]  # fmt: skip


class WorkerImageRunner:
    """Runs containers from their images with podman (see the module's docstring). `image_for`
    maps a pod's image name to a local reference (default: the name itself)."""

    def __init__(self, seeds: Path, image_for: Callable[[str], str] | None = None) -> None:
        self.seeds = Path(seeds)
        self.image_for = image_for or (lambda image: image)
        self.id = uuid.uuid4().hex[:12]  # labels this runner's containers (others run beside)

    def start(self, launch: Launch) -> Handle:
        image = self.image_for(launch.image)
        if podman(["image", "exists", image]).returncode != 0:
            raise ImagePullError(
                f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
                f"{image}: image not known (the stand-in pulls nothing; build it first)"
            )
        name = container_name(launch)
        podman(["rm", "--force", "--ignore", "--time", "0", name])
        seed = self.seeds / name
        done = podman(run_arguments(launch, image, write_seed(launch, seed), self.id))
        if done.returncode != 0:  # what a failed run created is dropped, as a kubelet would
            podman(["rm", "--force", "--ignore", "--time", "0", name])
            shutil.rmtree(seed, ignore_errors=True)
            tail = " / ".join((done.stderr or done.stdout).strip().splitlines()[-4:])
            raise ContainerStartError(f"podman run failed (exit {done.returncode}): {tail}")
        return Handle(name, seed, time.monotonic())

    def poll(self, handle: Handle) -> State:
        if handle.state != RUNNING or time.monotonic() - handle.checked < POLL_EVERY:
            return handle.state
        handle.checked = time.monotonic()
        done = podman(["container", "inspect", "--format", "{{json .State}}", handle.name])
        if done.returncode != 0:
            handle.state = Exited(137)  # removed behind our back: as if killed
            return handle.state
        state = json.loads(done.stdout)
        if not state.get("Running"):
            handle.state = Exited(int(state.get("ExitCode") or 0))
        return handle.state

    def stop(self, handle: Handle, grace_seconds: float) -> None:
        """`podman stop` (the image's stop signal, SIGTERM for the worker image: HTCondor's
        graceful shutdown, then SIGKILL after the grace period); with no grace the container
        and its files are removed."""
        if grace_seconds > 0:
            podman(["stop", "--time", str(max(int(grace_seconds), 1)), handle.name],
                   timeout=grace_seconds + TIMEOUT)  # fmt: skip
            handle.checked = 0.0
            return
        podman(["rm", "--force", "--ignore", "--time", "0", handle.name])
        shutil.rmtree(handle.seed, ignore_errors=True)
        if handle.state == RUNNING:
            handle.state = Exited(137)

    def logs(self, handle: Handle) -> str:
        if not handle.seed.exists():
            return ""
        done = podman(["logs", handle.name])
        return done.stdout + done.stderr

    def leftovers(self) -> list[str]:
        """Containers this runner started that still exist (none after the stand-in stopped)."""
        done = podman(
            ["ps", "--all", "--filter", f"label={LABEL}={self.id}", "--format", "{{.Names}}"]
        )
        return sorted(line for line in done.stdout.splitlines() if line.startswith(PREFIX))
