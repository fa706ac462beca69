"""The CLI against the real personal pool, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def bursting(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bursting.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )


def test_devpool_up_is_idempotent_and_status_reports(devpool: Any) -> None:
    again = bursting("devpool", "up")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr
    status = json.loads(bursting("devpool", "status", "--json").stdout)
    assert status["running"] is True
    assert status["collector"] == "127.0.0.1:9618"
    token = Path(status["token"])
    assert token.stat().st_mode & 0o777 == 0o600
    assert bursting("devpool", "token").stdout.strip() == str(token)


def wait_for_output(what: str, args: tuple[str, ...], timeout: float = 60) -> str:
    """Run `bursting *args` until its output contains `what`; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        output = bursting(*args).stdout
        if what in output:
            return output
        if time.monotonic() > deadline:
            raise AssertionError(f"`bursting {' '.join(args)}` never showed {what!r}:\n{output}")
        time.sleep(2)


def test_submit_q_status_rm_round_trip(devpool: Any, job_dir: Path) -> None:
    suffix = uuid.uuid4().hex[:6]
    name, instance = f"cli-node-{suffix}", f"cli-{suffix}"
    submit_file = job_dir / "job.sub"
    submit_file.write_text(
        f"executable = /bin/sleep\narguments = 30\ninitialdir = {job_dir}\n"
        "request_cpus = 3\nrequest_memory = 777\nqueue 4\n"
    )
    submitted = bursting("submit", str(submit_file))
    assert submitted.returncode == 0, submitted.stderr
    cluster = int(submitted.stdout.strip())
    try:
        queue = bursting("q")
        assert queue.returncode == 0, queue.stderr
        assert any(
            "3c 777MB" in line and " 4 " in f" {line} " for line in queue.stdout.splitlines()
        )

        node = bursting(
            "devpool",
            "add-node",
            "--cpus",
            "3",
            "--memory",
            "1024",
            "--attr",
            f"BurstingInstance={instance}",
            "--name",
            name,
        )
        assert node.returncode == 0, node.stderr
        assert node.stdout.strip() == name
        status = wait_for_output(instance, ("status",))
        assert f"{name}@" in status

        removed = bursting("rm", str(cluster))
        assert removed.returncode == 0 and f"removed cluster {cluster}" in removed.stdout
        gone = bursting("devpool", "remove-node", name, "--timeout", "90")
        assert gone.returncode == 0, gone.stderr
        assert name not in json.loads(bursting("devpool", "status", "--json").stdout)["nodes"]
    finally:  # whatever failed above, leave no job and no node behind for other tests
        bursting("rm", str(cluster))
        if name in devpool.node_names():
            devpool.kill_node(name)


def test_remove_unknown_node_is_a_clear_error(devpool: Any) -> None:
    result = bursting("devpool", "remove-node", "no-such-node")
    assert result.returncode == 1
    assert "no execute node named no-such-node" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_submit_file_reports_and_queues_nothing(devpool: Any, job_dir: Path) -> None:
    bad = job_dir / "bad.sub"
    bad.write_text("arguments = 1\nqueue\n")
    result = bursting("submit", str(bad))
    assert result.returncode == 1
    assert "no 'executable" in result.stderr
