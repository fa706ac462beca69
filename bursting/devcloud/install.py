"""The services' own venv, installed once from the shipped lock file, and the Debian commands.

The OpenStack services pin versions that conflict with Airflow's, so they never go into the
project venv: they get a venv of their own, named by a hash of the lock file and cached outside
the clone, so every clone with the same lock reuses it and a changed lock gets a fresh one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

from bursting.devcloud.layout import DevCloudError, cache_root

READY_MARKER = ".bursting-ready"
PIP_TIMEOUT = 1800.0
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")

# Debian commands devcloud runs, and the package each comes from.
SYSTEM_COMMANDS: dict[str, str] = {
    "/usr/sbin/mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "mariadb": "mariadb-client",
    str(RABBITMQ_BIN / "rabbitmq-server"): "rabbitmq-server",
    str(RABBITMQ_BIN / "rabbitmqctl"): "rabbitmq-server",
}


def lock_text() -> str:
    return resources.files("bursting.devcloud").joinpath("requirements.lock").read_text()


def lock_hash(text: str) -> str:
    """12 hex digits naming the venv: the same lock gives the same venv, any change a new one."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def venv_dir(text: str | None = None) -> Path:
    return (
        cache_root() / "devcloud" / f"venv-{lock_hash(text if text is not None else lock_text())}"
    )


def is_installed(venv: Path) -> bool:
    return (venv / READY_MARKER).exists()


def missing_commands() -> list[tuple[str, str]]:
    """(command, Debian package) for each system command devcloud needs and cannot find."""
    return [
        (command, package)
        for command, package in SYSTEM_COMMANDS.items()
        if not (Path(command).exists() if "/" in command else shutil.which(command))
    ]


def require_commands() -> None:
    missing = missing_commands()
    if missing:
        names = ", ".join(f"{Path(c).name} ({p})" for c, p in missing)
        raise DevCloudError(
            f"devcloud needs {names}; install the Debian packages with: make system-deps"
        )


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_venv(log: Callable[[str], None]) -> Path:
    """The services' venv: reused when its marker is there, else installed (about a minute).
    Concurrent callers wait for the first and reuse its result."""
    text = lock_text()
    venv = venv_dir(text)
    if is_installed(venv):
        return venv
    with _exclusive(venv.with_name(venv.name + ".lock")):
        if is_installed(venv):
            return venv
        if venv.exists():
            shutil.rmtree(venv)  # a half-made venv from an interrupted install
        log(f"installing the OpenStack services into {venv} (once, about a minute)")
        started = time.monotonic()
        lock_copy = venv.with_name(venv.name + ".requirements.lock")
        lock_copy.write_text(text)
        _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
        _run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "-r",
                str(lock_copy),
            ],
            "pip install of the devcloud lock",
        )
        (venv / READY_MARKER).write_text(f"installed in {time.monotonic() - started:.0f}s\n")
        log(f"OpenStack services installed in {time.monotonic() - started:.0f}s")
    return venv


def _run(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise DevCloudError(f"{what} did not finish within {PIP_TIMEOUT:.0f}s") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-12:]
        raise DevCloudError(f"{what} failed (exit {done.returncode}):\n  " + "\n  ".join(tail))
