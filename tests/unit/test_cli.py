"""The command line as a user meets it: exit codes, messages, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bursting.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_config_check_ok_prints_summary() -> None:
    result = runner.invoke(app, ["config", "check", str(REPO / "deploy/config.example.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok\n")
    assert "private" in result.output and "collector 127.0.0.1:9618" in result.output


def test_config_check_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "clouds:\n"
        "  - {name: a, type: local, flavors: [{name: f, cpus: 1, memory_mb: 1024}]}\n"
        "  - {name: b, type: local, max_instances: -3,\n"
        "     flavors: [{name: f, cpus: 0, memory_mb: 1024}]}\n"
        "polcy: {}\n"
    )
    result = runner.invoke(app, ["config", "check", str(bad)])
    assert result.exit_code == 1
    assert "clouds[1].max_instances: must be >= 0, got -3" in result.output
    assert "clouds[1].flavors[0].cpus: must be >= 1, got 0" in result.output
    assert "polcy: is not a known key" in result.output
    assert "Traceback" not in result.output


def test_usage_errors_exit_2() -> None:
    assert runner.invoke(app, ["rm", "not-a-number"]).exit_code == 2
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2
    assert runner.invoke(app, ["devpool", "add-node", "--cpus", "0"]).exit_code == 2
    assert runner.invoke(app, ["devpool", "add-node", "--attr", "novalue"]).exit_code == 2


def test_help_describes_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("submit", "q", "status", "rm", "config", "devpool"):
        assert command in result.output


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bursting.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_user_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("pool: {collector: '127.0.0.1:1', timeout_seconds: 3}\n")
    result = run_cli("q", "--config", str(config))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error:") and "127.0.0.1:1" in line
    assert "Traceback" not in result.stderr


def test_missing_submit_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("submit", str(tmp_path / "missing.sub"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr


def test_devpool_refuses_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from bursting.devpool import DevPool
    from bursting.errors import DevPoolError

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(DevPoolError, match="needs root"):
        DevPool().up()


def test_port_taken_is_reported() -> None:
    import socket

    from bursting.devpool.pool import _port_free_or_fail
    from bursting.errors import DevPoolError

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(DevPoolError, match=f"port {port} on 127.0.0.1 is taken"):
            _port_free_or_fail(f"127.0.0.1:{port}")


def test_missing_debootstrap_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import shutil

    from bursting.devpool import layout
    from bursting.errors import DevPoolError

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(DevPoolError, match="apt-get install -y debootstrap"):
        layout.build(layout.Layout(tmp_path / "image", native=False))
