"""The README's first command, run as a new user runs it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.system, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def readme_command(purpose: str) -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- {purpose} -->\s*```(?:sh|bash)?\n(.+?)\n```", text, re.S)
    assert match, f"README.md has no marked {purpose} command"
    return match.group(1).strip()


def test_readme_demo_command_runs_the_workload(devpool: object) -> None:
    command = readme_command("demo")
    assert command == "make demo"
    result = subprocess.run(
        command,
        shell=True,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**__import__("os").environ, "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout
    assert re.search(r"│ jobs\s+│\s+80 │", summary), summary[-2000:]
    assert re.search(r"│ completed, exit 0\s+│\s+80 │", summary)
    assert re.search(r"│ failed or held\s+│\s+0 │", summary)
    assert re.search(r"│ jobs on demo-0@\S+\s+│\s+\d+ │", summary)
    assert re.search(r"│ jobs on demo-1@\S+\s+│\s+\d+ │", summary)


def test_readme_test_command_is_what_ci_runs() -> None:
    assert readme_command("test") == "make test"
    assert "make test" in (REPO / ".ci" / "run").read_text()
