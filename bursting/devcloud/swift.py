"""Swift's rings and device: one replica on one directory, part power 8 (under a second a ring).

The servers themselves are in services.py; their Keystone user and object-store endpoints are
registered with the rest of the catalog in identity.py.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bursting.devcloud.layout import HOST, PORTS, DevCloudError, Paths

RINGS = {"object": "swift-object", "container": "swift-container", "account": "swift-account"}
DEVICE = "d1"


def check_xattrs(device: Path) -> None:
    """The object server keeps metadata in user xattrs: fail early where there are none."""
    probe = device / ".xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.swift.probe", b"x" * 254)
    except OSError as exc:
        raise DevCloudError(
            f"{device} takes no user xattrs ({exc.strerror}); Swift needs them: set "
            "BURSTING_DEVCLOUD_HOME to a directory on ext4, xfs or tmpfs"
        ) from None
    finally:
        probe.unlink(missing_ok=True)


def build_rings(venv: Path, paths: Paths) -> None:
    """The three rings, in parallel; builder files and rings go to swift_dir."""
    device = paths.swift_devices / DEVICE
    device.mkdir(parents=True, exist_ok=True)
    check_xattrs(device)
    swift_dir = paths.etc / "swift"
    with ThreadPoolExecutor(len(RINGS)) as pool:
        for future in [
            pool.submit(_ring, venv, swift_dir, paths.logs, ring, PORTS[service])
            for ring, service in RINGS.items()
        ]:
            future.result()


def _ring(venv: Path, swift_dir: Path, logs: Path, ring: str, port: int) -> None:
    builder = [str(venv / "bin" / "swift-ring-builder"), f"{ring}.builder"]
    steps = [
        ["create", "8", "1", "1"],
        ["add", "--region", "1", "--zone", "1", "--ip", HOST, "--port", str(port)],
        ["rebalance"],
    ]
    steps[1] += ["--device", DEVICE, "--weight", "100"]
    with (logs / f"ring-{ring}.log").open("a") as log:
        for step in steps:
            done = subprocess.run(
                [*builder, *step],
                cwd=swift_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
            )
            # rebalance exits 1 for warnings only (one device, one replica)
            if done.returncode > (1 if step[0] == "rebalance" else 0):
                raise DevCloudError(
                    f"swift-ring-builder {ring} {step[0]} failed; see {logs}/ring-{ring}.log"
                )
