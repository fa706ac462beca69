"""The README's first command, run as a new user runs it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.system, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
# The demo gives up on its own after 1200 s of running (about 4 minutes on a quiet machine; a CI
# machine with both cores taken by other load needed more than 600 s); Airflow's first start and
# a first image build come on top. pytest's limit covers that plus the pool start-up, so the
# subprocess limit (with its output) is what a slow run reports, never a bare pytest timeout.
DEMO_TIMEOUT = 1500


def readme_command(purpose: str) -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- {purpose} -->\s*```(?:sh|bash)?\n(.+?)\n```", text, re.S)
    assert match, f"README.md has no marked {purpose} command"
    return match.group(1).strip()


@pytest.mark.timeout(DEMO_TIMEOUT + 600)
def test_readme_demo_command_runs_the_workload(devpool: Any) -> None:
    for name in devpool.node_names():  # only the controller's burst nodes may run the workload
        devpool.kill_node(name)
    devpool.containers().kill_all()
    command = readme_command("demo")
    assert command == "make demo"
    result = subprocess.run(
        command,
        shell=True,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
        check=False,
        env={**__import__("os").environ, "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout
    assert re.search(r"│ jobs\s+│\s+200 │", summary), summary[-3000:]
    assert re.search(r"│ completed, exit 0\s+│\s+200 │", summary)
    assert re.search(r"│ instances left at the end\s+│\s+0 │", summary)
    private = re.search(r"│ private\s+│ (\d+)\s+│ (\d+)\s+│", summary)
    public = re.search(r"│ public\s+│ (\d+)\s+│ (\d+)\s+│", summary)
    assert private and public, summary[-3000:]
    assert int(private.group(1)) >= 1 and int(public.group(1)) >= 1  # overflowed to public
    assert int(private.group(2)) + int(public.group(2)) == 200  # every job ran on a burst node
    for process in ("zmumu", "ttbar", "dijet"):  # the physics campaigns, through Airflow
        assert re.search(rf"│ {process}\s+│ success │", summary), summary[-3000:]
    assert summary.count("results demo-") == 3


def test_readme_test_command_is_what_ci_runs() -> None:
    assert readme_command("test") == "make test"
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_make_test_lints_first_including_layering() -> None:
    """CI's `make test` runs `lint`, which holds the fakes to the Protocols and the layering."""
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test:.*\blint\b", makefile, re.M)
    lint = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert lint, "Makefile has no lint recipe"
    recipe = lint.group(1)
    steps = ("ruff check", "ruff format --check", "mypy bursting tests/fakes.py", "lint-imports")
    for step in steps:
        assert step in recipe, f"make lint does not run {step}"
    assert (REPO / ".importlinter").is_file()
