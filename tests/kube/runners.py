"""How the stand-in's kubelet runs a container: a small protocol and two runners, a subprocess
(fast tests) and the worker image in its own podman container (Kubernetes workers that run real
jobs, the way devcloud's hypervisor boots OpenStack servers)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

RUNNING = "running"


class ImagePullError(Exception):
    """The image cannot be pulled: the container waits with ErrImagePull/ImagePullBackOff."""


class ContainerStartError(Exception):
    """The image is there but the container could not start (StartError, exit code 128)."""


@dataclass(frozen=True)
class Exited:
    code: int


State = str | Exited  # RUNNING, or how the container ended


@dataclass(frozen=True)
class Mount:
    """A volume as the container sees it at `path`: a directory of `files` (relative path ->
    content, mode), or with `file` set a single file (`files` holds it under "")."""

    path: str
    files: dict[str, tuple[bytes, int]]
    file: bool = False
    read_only: bool = True


@dataclass(frozen=True)
class Launch:
    """One container of a scheduled pod, with everything the kubelet resolved for it: its
    volumes as files, its environment (valueFrom and $(VAR) expanded), its size."""

    namespace: str
    pod: str
    uid: str
    container: str
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: dict[str, str]
    mounts: tuple[Mount, ...]
    cpus: float | None
    memory_mb: int | None
    labels: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None

    def files(self) -> dict[str, tuple[bytes, int]]:
        """Absolute path inside the container -> (content, mode), for every mounted file."""
        found = {}
        for mount in self.mounts:
            for relative, content in mount.files.items():
                path = mount.path if mount.file else str(PurePosixPath(mount.path) / relative)
                found[path] = content
        return found


class PodRunner(Protocol):
    """What the kubelet needs from a container runtime."""

    def start(self, launch: Launch) -> Any:
        """Start the container; returns a handle. Raises ImagePullError or ContainerStartError."""

    def poll(self, handle: Any) -> State:
        """RUNNING, or Exited(code)."""

    def stop(self, handle: Any, grace_seconds: float) -> None:
        """Ask the container to stop (SIGTERM), killing it after `grace_seconds`; returns at
        once. Stopping a stopped container does nothing."""

    def logs(self, handle: Any) -> str:
        """What the container wrote to stdout and stderr."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command, args and env values; $$ escapes."""

    def one(found: re.Match[str]) -> str:
        if found.group(0) == "$$":
            return "$"
        name = found.group(1)
        return env.get(name, found.group(0))

    return re.sub(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)", one, text)


# ---- the subprocess runner ---------------------------------------------------------------
@dataclass
class _Process:
    process: subprocess.Popen[bytes]
    log: Path
    killer: threading.Timer | None = None


class SubprocessRunner:
    """Runs a container's command as a local process, for fast tests. The container's files
    are written under a root directory of its own, named by $STANDIN_ROOT in its environment
    (and its working directory). `images` maps each pullable image to its entrypoint; without
    it every image can be pulled and a container without a command sleeps until stopped."""

    def __init__(
        self,
        root: Path,
        images: Mapping[str, list[str]] | Collection[str] | None = None,
        pull_error: Callable[[str], str | None] | None = None,
    ) -> None:
        self.root = Path(root)
        if images is not None and not isinstance(images, Mapping):
            images = {name: ["sleep", "3600"] for name in images}
        self.images = images
        self._pull_error = pull_error

    def start(self, launch: Launch) -> _Process:
        entrypoint = self._entrypoint(launch.image)
        root = self.root / f"{launch.namespace}_{launch.pod}_{launch.uid[:8]}" / launch.container
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        for path, (content, mode) in launch.files().items():
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            target.chmod(mode)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOSTNAME": launch.pod,
            "STANDIN_ROOT": str(root),
            **launch.env,
        }
        argv = [expand(a, env) for a in [*(launch.command or entrypoint), *launch.args]]
        log = root.parent / f"{launch.container}.log"
        try:
            with open(log, "ab") as out:
                process = subprocess.Popen(
                    argv,
                    cwd=root,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        except (FileNotFoundError, PermissionError) as exc:
            raise ContainerStartError(
                f"failed to create containerd task: failed to create shim task: OCI runtime "
                f"create failed: runc create failed: unable to start container process: exec: "
                f'"{argv[0] if argv else ""}": {exc.strerror}'
            ) from None
        return _Process(process, log)

    def _entrypoint(self, image: str) -> list[str]:
        if self._pull_error is not None and (why := self._pull_error(image)):
            raise ImagePullError(why)
        if self.images is None:
            return ["sleep", "3600"]
        if image not in self.images:
            raise ImagePullError(
                f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
                f'failed to resolve reference "{image}": {image}: not found'
            )
        return list(self.images[image])

    def poll(self, handle: _Process) -> State:
        code = handle.process.poll()
        if code is None:
            return RUNNING
        return Exited(128 - code if code < 0 else code)  # killed by signal N: 128+N

    def stop(self, handle: _Process, grace_seconds: float) -> None:
        if handle.process.poll() is not None:
            return
        if grace_seconds <= 0:
            self._signal(handle, signal.SIGKILL)
            return
        self._signal(handle, signal.SIGTERM)
        if handle.killer is None:
            handle.killer = threading.Timer(grace_seconds, self._signal, (handle, signal.SIGKILL))
            handle.killer.daemon = True
            handle.killer.start()

    @staticmethod
    def _signal(handle: _Process, sig: signal.Signals) -> None:
        if handle.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(handle.process.pid, sig)
        if sig == signal.SIGKILL:
            with contextlib.suppress(subprocess.TimeoutExpired):
                handle.process.wait(timeout=5)

    def logs(self, handle: _Process) -> str:
        try:
            return handle.log.read_text(errors="replace")
        except OSError:
            return ""
