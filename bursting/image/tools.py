"""The one place the image package runs commands: the host tools it needs, and how it calls them."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from bursting.errors import ImageError

# Command -> the Debian package that provides it, for the error that says what to install.
BUILD_TOOLS = {
    "debootstrap": "debootstrap",
    "tar": "tar",
    "buildah": "buildah",
    "podman": "podman",
    "runc": "runc",
}


def missing_packages(
    tools: dict[str, str] = BUILD_TOOLS, which: Callable[[str], str | None] = shutil.which
) -> list[str]:
    """The Debian packages to install for the commands not found on PATH, in a stable order."""
    return sorted({package for command, package in tools.items() if which(command) is None})


def require_build_tools() -> None:
    """Root and every build tool, or an ImageError that says what to run."""
    missing = missing_packages()
    if missing:
        raise ImageError(
            f"building the worker image needs {', '.join(missing)}; "
            f"install with: apt-get install -y {' '.join(missing)}"
        )
    if os.geteuid() != 0:
        raise ImageError(
            "building the worker image needs root (debootstrap, buildah); run it with sudo"
        )


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    log_file: Path | None = None,
    what: str | None = None,
) -> str:
    """Run a command and return its stdout; a failure becomes a one-line ImageError.

    With `log_file`, the command's output is appended there and the error points to it.
    """
    name = what or " ".join(argv[:2])
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        package = BUILD_TOOLS.get(Path(argv[0]).name, Path(argv[0]).name)
        raise ImageError(
            f"{argv[0]} is not installed; install with: apt-get install -y {package}"
        ) from None
    except subprocess.TimeoutExpired:
        raise ImageError(f"{name} did not finish within {timeout:.0f}s") from None
    if log_file is not None:
        with log_file.open("a") as handle:
            handle.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        last = lines[-1].strip() if lines else "no output"
        where = f"; full log: {log_file}" if log_file is not None else ""
        raise ImageError(f"{name} failed (exit {done.returncode}): {last}{where}")
    return done.stdout


def image_id(reference: str) -> str | None:
    """The id podman's storage holds for `reference`, or None (absent, or podman missing)."""
    if shutil.which("podman") is None:
        return None
    done = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", reference],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip() or None if done.returncode == 0 else None


# Ceilings for a container's limits when the caller's own are unlimited.
_MAX_OPEN_FILES = 1_048_576


def container_limits() -> list[str]:
    """`podman run` arguments for a container's open-files and processes limits.

    Left alone, podman (as root) asks the runtime for its own defaults, above a million, which a
    host with lower hard limits and without CAP_SYS_RESOURCE refuses ("error setting rlimit ...
    operation not permitted"), and the kernel also refuses a processes limit above its pid_max.
    So a container gets the caller's own hard limits, which any host grants.
    """
    import resource

    def hard(kind: int, ceiling: int) -> int:
        limit = resource.getrlimit(kind)[1]
        return ceiling if limit == resource.RLIM_INFINITY else min(limit, ceiling)

    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pid_max = 32768  # the kernel's default
    files = hard(resource.RLIMIT_NOFILE, _MAX_OPEN_FILES)
    processes = hard(resource.RLIMIT_NPROC, pid_max)
    return ["--ulimit", f"nofile={files}:{files}", "--ulimit", f"nproc={processes}:{processes}"]
