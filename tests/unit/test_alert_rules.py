"""deploy/prometheus: `promtool check rules` and `promtool test rules` (series that fire and do
not fire each alert), every alert documented, every metric a rule reads really exported."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_metrics import FAMILIES

# Exported only with leader_election on (tests/unit/test_leader_election.py checks the gauge).
HA_FAMILIES = {"bursting_leader"}

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
TESTS = sorted((REPO / "deploy" / "prometheus" / "tests").glob("*.yml"))
RUNBOOK = REPO / "deploy" / "prometheus" / "RUNBOOK.md"
REQUIRED_ALERTS = {
    "BurstingJobsWaitingWithHeadroom",
    "BurstingJobsUnschedulable",
    "BurstingCloudFailingBoots",
    "BurstingInstancesStuckProvisioning",
    "BurstingSpendNearCap",
    "BurstingControllerNotCycling",
    "BurstingOrphansFound",
    "BurstingCloudUnreachable",
    "BurstingCloudAuthFailing",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool not found: apt-get install prometheus (make system-deps does it)")
    return subprocess.run(
        [tool, *args], capture_output=True, text=True, timeout=120, check=False, cwd=REPO
    )


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def test_promtool_checks_the_rules() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_unit_tests_pass() -> None:
    assert TESTS
    tested = promtool("test", "rules", *map(str, TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_required_alert_exists_with_summary_description_and_runbook() -> None:
    found = alerts()
    assert set(found) >= REQUIRED_ALERTS
    runbook = RUNBOOK.read_text()
    anchors = {
        re.sub(r"[^a-z0-9-]", "", title.strip().lower().replace(" ", "-"))
        for title in re.findall(r"^## (.+)$", runbook, re.MULTILINE)
    }
    for name, rule in found.items():
        notes = rule.get("annotations", {})
        assert notes.get("summary") and notes.get("description"), name
        url = notes.get("runbook_url", "")
        assert url == f"deploy/prometheus/RUNBOOK.md#{name.lower()}", name
        assert name.lower() in anchors, f"{name}: no '## {name}' section in RUNBOOK.md"
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), name


def test_every_alert_has_series_that_fire_it_and_series_that_do_not() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(alerts()) <= fires, f"never fired in a test: {set(alerts()) - fires}"
    assert set(alerts()) <= quiet, f"never shown quiet in a test: {set(alerts()) - quiet}"


def test_rules_read_only_metrics_the_exporter_has() -> None:
    used: set[str] = set()
    for rule in rules():
        for name in re.findall(r"\bbursting_[a-z_]+", rule["expr"]):
            used.add(re.sub(r"_(total|bucket|count|sum)$", "", name))
    exported = FAMILIES | HA_FAMILIES
    assert used and used <= exported, f"not exported: {used - exported}"
