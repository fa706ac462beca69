"""`devpool down` leaves nothing behind, and `up` after it brings the same pool back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bursting.devpool.layout import mounts_under, processes_in

pytestmark = pytest.mark.integration


def condor_processes() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
            state = (entry / "stat").read_text().split()[2]
        except (OSError, IndexError):
            continue
        if os.path.basename(command).startswith("condor_") and state != "Z":
            found.append(f"{entry.name} {command}")
    return found


def test_down_leaves_no_process_or_mount_and_up_restores(devpool: Any) -> None:
    devpool.add_node(1, 512, name="lifecycle")
    assert condor_processes()
    devpool.down()
    assert not devpool.running()
    assert condor_processes() == []
    if not devpool.layout.native:
        assert processes_in(devpool.layout.root) == []
        assert mounts_under(devpool.layout.root) == []
    devpool.down()  # twice is harmless

    devpool.up(shared=[Path(__file__).resolve().parents[2]])
    assert devpool.running()
    assert devpool.node_names() == []
    status = devpool.status()
    assert status["token"] and Path(str(status["token"])).stat().st_mode & 0o777 == 0o600
