"""`devpool down` leaves nothing behind, and `up` after it brings the same pool back; nodes are
found from their processes and two deletions at once do not collide on the state file."""

from __future__ import annotations

import os
import threading
import uuid
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


def test_concurrent_kills_and_a_node_nobody_recorded(devpool: Any) -> None:
    prefix = f"life{uuid.uuid4().hex[:5]}"
    names = [devpool.add_node(1, 512, name=f"{prefix}-{i}") for i in range(3)]
    unrecorded = names[2]
    devpool._forget_node(unrecorded)  # its starter was killed before it wrote the state file
    assert unrecorded not in devpool._nodes()
    assert set(names) <= set(devpool.node_names()), "found from their processes"

    errors: list[BaseException] = []

    def kill(name: str) -> None:
        try:
            devpool.kill_node(name)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=kill, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert not [n for n in devpool.node_names() if n.startswith(prefix)]
    assert not [n for n in devpool._nodes() if n.startswith(prefix)]
    assert devpool.running(), "the central manager's entry survived the concurrent edits"
    leftovers = list(devpool.state_file.parent.glob(f".{devpool.state_file.name}.*.tmp"))
    assert leftovers == []
