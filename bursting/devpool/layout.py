"""Where the personal pool's HTCondor lives: a native install, or Debian trixie's in a chroot.

HTCondor's daemons are not packaged for the host's Debian release and the PyPI wheel carries only
the bindings, so without a native install we build a trixie chroot once (debootstrap + apt) and
cache it outside any clone. Everything here needs root: it mounts and chroots.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bursting.errors import DevPoolError

SUITE = "trixie"
PACKAGES = ("condor", "minicondor")
READY_STAMP = ".bursting-ready"


def cache_root() -> Path:
    """Cache shared by every clone on this machine; BURSTING_CACHE overrides it."""
    override = os.environ.get("BURSTING_CACHE")
    base = Path(override) if override else Path.home() / ".cache" / "bursting"
    return base.expanduser().resolve()


def require_root() -> None:
    if os.geteuid() != 0:
        raise DevPoolError(
            "the personal pool needs root (it builds a chroot and bind-mounts into it); "
            "run the command with sudo"
        )


def clean_env() -> dict[str, str]:
    """The environment for HTCondor's own tools: none of the host bindings' CONDOR_CONFIG or
    _CONDOR_ settings (the bindings set some on import) may leak into the pool's daemons."""
    return {
        key: value
        for key, value in os.environ.items()
        if key != "CONDOR_CONFIG" and not key.upper().startswith("_CONDOR_")
    }


def run(argv: Sequence[str], *, timeout: float = 600, check: bool = True, **kwargs: object) -> str:
    """Run a command, returning stdout; failure becomes DevPoolError with the command's words."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=clean_env(),
            **kwargs,
        )  # type: ignore[call-overload]
    except FileNotFoundError:
        raise DevPoolError(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise DevPoolError(f"{' '.join(argv[:3])} did not finish within {timeout:.0f}s") from None
    if check and done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-12:]
        raise DevPoolError(
            f"{' '.join(argv[:4])} failed (exit {done.returncode}):\n  " + "\n  ".join(tail)
        )
    return str(done.stdout)


@dataclass(frozen=True)
class Layout:
    """The filesystem root HTCondor runs in and how to run a command there."""

    root: Path
    native: bool

    def path(self, inner: str) -> Path:
        """Host path of a path as HTCondor sees it."""
        return self.root / inner.lstrip("/") if not self.native else Path(inner)

    def command(self, argv: Sequence[str], env: dict[str, str] | None = None) -> list[str]:
        prefix = [] if self.native else ["chroot", str(self.root)]
        assignments = [f"{key}={value}" for key, value in (env or {}).items()]
        return [*prefix, *(["env", *assignments] if assignments else []), *argv]


def detect(cache: Path | None = None) -> Layout:
    """Prefer a native HTCondor; otherwise the cached trixie chroot (built on demand by `build`)."""
    if os.environ.get("BURSTING_DEVPOOL_MODE", "auto") != "chroot" and shutil.which(
        "condor_master"
    ):
        return Layout(Path("/"), native=True)
    return Layout((cache or cache_root()) / f"condor-{SUITE}", native=False)


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def is_built(layout: Layout) -> bool:
    return layout.native or (layout.root / READY_STAMP).exists()


def build(layout: Layout, log: object = None) -> None:
    """Build the chroot once; concurrent callers wait for the first and then reuse its result."""
    if layout.native or is_built(layout):
        return
    require_root()
    if not shutil.which("debootstrap"):
        raise DevPoolError(
            "debootstrap is missing; install it with: apt-get install -y debootstrap"
        )
    with _exclusive(layout.root.with_suffix(".lock")):
        if is_built(layout):
            return
        partial = layout.root.with_name(layout.root.name + ".partial")
        if partial.exists():
            unmount_all(partial)
            shutil.rmtree(partial)
        _say(log, f"building Debian {SUITE} with HTCondor in {layout.root} (once, ~3 minutes)")
        try:
            run(["debootstrap", "--variant=minbase", SUITE, str(partial), *_mirror()], timeout=1800)
        except DevPoolError as exc:
            raise DevPoolError(
                f"debootstrap of Debian {SUITE} failed; is the Debian mirror reachable? "
                f"(set BURSTING_DEBIAN_MIRROR to use another)\n{exc}"
            ) from None
        policy = partial / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\n# no service starts inside the image\nexit 101\n")
        policy.chmod(0o755)
        staging = Layout(partial, native=False)
        try:
            mount_system(staging)
            run(
                staging.command(
                    [
                        "sh",
                        "-c",
                        "apt-get update -q && apt-get install -y -q "
                        "--no-install-recommends " + " ".join(PACKAGES),
                    ],
                    env={"DEBIAN_FRONTEND": "noninteractive"},
                ),
                timeout=1800,
            )
        finally:
            unmount_all(partial)
        (partial / READY_STAMP).write_text(f"{SUITE} {' '.join(PACKAGES)}\n")
        partial.rename(layout.root)
        _say(log, "HTCondor image ready")


def _mirror() -> list[str]:
    mirror = os.environ.get("BURSTING_DEBIAN_MIRROR")
    return [mirror] if mirror else []


def _say(log: object, message: str) -> None:
    if callable(log):
        log(message)


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below root, deepest first, as the kernel reports them."""
    prefix = str(root.resolve())
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def is_mounted(path: Path) -> bool:
    return path.resolve() in mounts_under(path)


def mount_system(layout: Layout) -> None:
    for kind, target, source in (("proc", "proc", "proc"), ("sysfs", "sys", "sys")):
        point = layout.root / target
        if not is_mounted(point):
            run(["mount", "-t", kind, source, str(point)])
    bind(Path("/dev"), layout.root / "dev")


def bind(source: Path, target: Path) -> None:
    """Bind-mount a host directory at the given place (created if needed), once."""
    if is_mounted(target):
        return
    target.mkdir(parents=True, exist_ok=True)
    run(["mount", "--bind", str(source), str(target)])


def unmount_all(root: Path) -> None:
    """Unmount everything under root. A mount can be hidden under a later one at a parent path
    (the venv bound before the repo that contains it): it is reachable only once the parent is
    gone, so passes repeat while they make progress; what is busy is detached lazily."""
    for _ in range(8):
        points = mounts_under(root)
        if not points:
            return
        for point in points:
            done = subprocess.run(["umount", str(point)], capture_output=True, check=False)
            if done.returncode != 0:
                subprocess.run(["umount", "--lazy", str(point)], capture_output=True, check=False)
        if mounts_under(root) == points:
            break
    left = mounts_under(root)
    if left:
        raise DevPoolError(f"still mounted after unmounting: {', '.join(map(str, left))}")


def python_dirs() -> list[Path]:
    """What a job needs to run this interpreter and its venv at the same paths."""
    dirs = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    return sorted(dirs)


def processes_in(root: Path) -> list[int]:
    """PIDs whose filesystem root is this chroot (stray daemons show up here)."""
    target = str(root.resolve())
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "root") == target:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids
