"""The build context of deploy/worker/Containerfile: a Debian root, the image config, wheels.

The same context serves `bursting image build` here and an operator's image pipeline for a real
cloud (`bursting image context DIR`). Wheels are fetched on the host: the image build is offline.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bursting.errors import ImageError
from bursting.image.key import CONTAINERFILE, IMAGE_CONFIG, SUITE, SUITE_PYTHON, PayloadRequirement
from bursting.image.tools import run

Log = Callable[[str], None]
REQUIREMENTS_FILE = "payload-requirements.txt"
# What `setuptools` needs from the checkout to build the wheel; copied, so the checkout's own
# build/ directory (which may hold files deleted since) never leaks into the wheel.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "bursting")


def rootfs_tar(cache: Path, log: Log) -> Path:
    """A minimal Debian root as a tar, made once per suite with debootstrap and cached."""
    tar = cache / f"rootfs-{SUITE}.tar"
    if tar.is_file():
        return tar
    partial = cache / f"rootfs-{SUITE}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    mirror = [m for m in [os.environ.get("BURSTING_DEBIAN_MIRROR")] if m]
    log(f"debootstrap Debian {SUITE} (once, about 70 s)")
    try:
        run(
            [
                "debootstrap",
                "--variant=minbase",
                SUITE,
                str(partial),
                *mirror,
            ],
            timeout=1800,
            log_file=cache / "build.log",
            what=f"debootstrap {SUITE}",
        )
    except ImageError as exc:
        raise ImageError(
            f"{exc} (is the Debian mirror reachable? set BURSTING_DEBIAN_MIRROR to use another)"
        ) from None
    tmp = tar.with_suffix(".tar.partial")
    run(["tar", "-C", str(partial), "-cf", str(tmp), "."], timeout=600, what="tar of the root")
    os.replace(tmp, tar)
    shutil.rmtree(partial, ignore_errors=True)
    return tar


def bursting_wheel(root: Path, wheels: Path, log_file: Path) -> None:
    """Build the bursting wheel from a copy of the checkout's package sources."""
    with tempfile.TemporaryDirectory(prefix="bursting-wheel-") as tmp:
        staged = Path(tmp)
        for name in WHEEL_SOURCES:
            source = root / name
            if source.is_dir():
                shutil.copytree(
                    source, staged / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                shutil.copy2(source, staged / name)
        run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), tmp],
            timeout=600,
            log_file=log_file,
            what="pip wheel (bursting)",
        )


def download_command(wheels: Path, requirements: Sequence[str]) -> list[str]:
    """pip download of binary wheels for the image's CPython, whatever the host's Python."""
    version = SUITE_PYTHON[SUITE]
    tag = "cp" + version.replace(".", "")
    platforms = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any"]
    return [
        sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
        "--python-version", version, "--implementation", "cp", "--abi", tag,
        *(arg for platform in platforms for arg in ("--platform", platform)),
        "-d", str(wheels), *requirements,
    ]  # fmt: skip


def payload_wheels(
    requirements: tuple[PayloadRequirement, ...], wheels: Path, log_file: Path
) -> list[str]:
    """Fetch the payload's wheels: pinned to the host's versions where the image's Python has
    them, else as declared. Returns the requirement lines used (written for the image's pip)."""
    pinned = [r.candidates()[0] for r in requirements]
    try:
        run(download_command(wheels, pinned), timeout=900, log_file=log_file, what="pip download")
        return pinned
    except ImageError:
        pass
    chosen = []
    for requirement in requirements:
        for index, candidate in enumerate(requirement.candidates()):
            try:
                run(
                    download_command(wheels, [candidate]),
                    timeout=900,
                    log_file=log_file,
                    what=f"pip download {candidate}",
                )
            except ImageError:
                if index == len(requirement.candidates()) - 1:
                    raise
                continue
            chosen.append(candidate)
            break
    return chosen


def prepare_context(
    root: Path,
    context: Path,
    cache: Path,
    requirements: tuple[PayloadRequirement, ...],
    log: Log,
) -> list[str]:
    """Fill `context` (emptied first) for the Containerfile; returns the payload requirements."""
    shutil.rmtree(context, ignore_errors=True)
    wheels = context / "wheels"
    wheels.mkdir(parents=True)
    tar = rootfs_tar(cache, log)
    try:
        os.link(tar, context / "rootfs.tar")
    except OSError:
        shutil.copy2(tar, context / "rootfs.tar")
    for path in (CONTAINERFILE, IMAGE_CONFIG):
        shutil.copy2(root / path, context / path.name)
    log("building the bursting wheel and fetching the payload's wheels")
    log_file = cache / "build.log"
    bursting_wheel(root, wheels, log_file)
    chosen = payload_wheels(requirements, wheels, log_file)
    (wheels / REQUIREMENTS_FILE).write_text("\n".join(chosen) + "\n")
    return chosen
