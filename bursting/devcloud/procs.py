"""Starting and stopping devcloud's processes: each in its own session, known by its PID.

The PIDs live in a state file (written atomically, under a lock), so `down` from any shell stops
exactly what `up` started and nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bursting.devcloud.layout import DevCloudError, port_open

STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Service:
    """One long-running process: how to start it and how to tell it answers."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    port: int | None = None
    health_path: str | None = None  # HTTP GET that must answer (< 500); else the port opening


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot): with the PID, names it for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[-1].split()[19])


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        _reap(pid)
        if not alive(pid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL to the whole session's process group if it lingers. The group is
    swept either way: every service leads its own, so workers it forked go with it."""
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def wait_port_closed(port: int, timeout: float = STOP_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while port_open(port, timeout=0.2):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def spawn(service: Service, log_file: Path, cwd: Path) -> int:
    """Start one process in a new session, its output to its log; returns its PID."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **service.env}
    try:
        with log_file.open("ab") as out:
            process = subprocess.Popen(
                list(service.argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=cwd,
                env=env,
            )
    except FileNotFoundError:
        raise DevCloudError(
            f"cannot start {service.name}: {service.argv[0]} is missing; install it with: "
            "make system-deps"
        ) from None
    return process.pid


class StateFile:
    """{service name: PID} of the running devcloud, plus a few facts status shows. Each PID is
    kept with its process's start time, so a PID the system has since given to another process
    is never taken for ours (nor signalled)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def pids(self) -> dict[str, int]:
        """The recorded processes that still run (gone or reused PIDs are left out)."""
        return {name: pid for name, pid in self.recorded().items() if self._ours(name, pid)}

    def recorded(self) -> dict[str, int]:
        raw = self.read().get("pids", {})
        if not isinstance(raw, dict):
            return {}
        return {str(k): int(v) for k, v in raw.items() if isinstance(v, int)}

    def _ours(self, name: str, pid: int) -> bool:
        starts = self.read().get("starts")
        known = starts.get(name) if isinstance(starts, dict) else None
        if known is None:
            return alive(pid)  # recorded before start times were kept
        return bool(known == start_time(pid) and alive(pid))

    @contextlib.contextmanager
    def editing(self) -> Iterator[dict[str, object]]:
        """Read, change and write as one step under the lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_suffix(".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.read()
            yield state
            self._write(state)

    def record(self, name: str, pid: int) -> None:
        with self.editing() as state:
            pids = dict(state.get("pids", {}))  # type: ignore[call-overload]
            starts = dict(state.get("starts", {}))  # type: ignore[call-overload]
            pids[name] = pid
            starts[name] = start_time(pid)
            state["pids"] = pids
            state["starts"] = starts

    def forget(self, name: str) -> None:
        with self.editing() as state:
            for key in ("pids", "starts"):
                entries = dict(state.get(key, {}))  # type: ignore[call-overload]
                entries.pop(name, None)
                state[key] = entries

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def _write(self, state: dict[str, object]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(state, indent=2))
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
