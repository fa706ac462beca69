"""The chart's values: bad ones refused before anything renders, with a message that names the
value; the README's values table is the schema's, and the schema's config keys are config.py's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_python import Chart
from helm_python.errors import HelmError

from bursting.config import PoolConfig, WorkersConfig

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm/bursting"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
README_SECTION = "## Deploying the controller with Helm"
OPENSTACK = {
    "name": "private",
    "type": "openstack",
    "flavors": [{"name": "m1", "cpus": 2, "memory_mb": 2048}],
    "openstack": {"cloud": "private", "image": "worker"},
}


@pytest.fixture(scope="module")
def chart() -> Iterator[Chart]:
    with Chart.load(CHART) as loaded:
        yield loaded


def test_the_defaults_satisfy_the_schema(chart: Chart) -> None:
    chart.validate_schema(DEFAULTS)
    chart.validate_schema({})
    assert chart.values == DEFAULTS


# Refused by values.schema.json (Helm checks it before rendering): (values, words the message has).
SCHEMA_REFUSALS = [
    ({"replicaCount": 0}, ["/replicaCount", "minimum"]),
    ({"replicaCount": "3"}, ["/replicaCount", "want integer"]),
    ({"image": {"pullPolicy": "Sometimes"}}, ["/image/pullPolicy", "'IfNotPresent'"]),
    ({"metrics": {"port": 80}}, ["/metrics/port", "minimum"]),
    ({"config": {"metrics": {"listen": "0.0.0.0:1"}}}, ["/config", "'metrics' not allowed"]),
    ({"config": {"store": {"url": "sqlite:///x"}}}, ["/config", "'store' not allowed"]),
    ({"config": {"workers": {"token": {"file": "/t"}}}}, ["/config/workers", "'token'"]),
    ({"config": {"pool": {"token_dir": "/t"}}}, ["/config/pool", "'token_dir'"]),
    ({"config": {"pool": {"id": "Not_A_Name"}}}, ["/config/pool/id", "does not match"]),
    ({"config": {"clouds": [{"name": "x", "type": "local"}]}}, ["/config/clouds/0", "flavors"]),
    ({"leaderElection": {"leaseDurationSeconds": 1}}, ["/leaderElection/leaseDurationSeconds"]),
    ({"secrets": {"pool": {"workerToken": 42}}}, ["/secrets/pool/workerToken", "want string"]),
    ({"secrets": {"pool": {"token": "x"}}}, ["/secrets/pool", "'token' not allowed"]),
    ({"monitoring": {"serviceMonitor": {"interval": "often"}}}, ["/serviceMonitor/interval"]),
    ({"replicas": 2}, ["additional properties 'replicas' not allowed"]),
]


@pytest.mark.parametrize(("values", "words"), SCHEMA_REFUSALS)
def test_the_schema_refuses_bad_values_naming_them(
    chart: Chart, values: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(HelmError) as refused:
        chart.validate_schema(values)
    for word in words:
        assert word in str(refused.value)
    with pytest.raises(HelmError):  # rendering checks the schema too
        chart.render(values, name="r", namespace="n")


# Refused by the templates (what a schema cannot say across values): (values, the message).
RENDER_REFUSALS = [
    (
        {"secrets": {"pool": {"existingSecret": ""}}},
        "secrets.pool.workerToken is empty: give the token workers join the pool with, or name "
        "an existing Secret in secrets.pool.existingSecret",
    ),
    (
        {"secrets": {"pool": {"existingSecret": "", "workerToken": "w"}}},
        "secrets.pool.controllerToken is empty",
    ),
    (
        {"secrets": {"pool": {"existingSecret": "", "workerToken": "w", "controllerToken": "c"}}},
        "secrets.pool.workerAdminKey is empty while secrets.pool.adminKey is true",
    ),
    (
        {"config": {"clouds": [OPENSTACK]}},
        "an OpenStack cloud is configured but secrets.cloudsYaml has neither existingSecret nor "
        "content",
    ),
    (
        {"replicaCount": 2, "leaderElection": {"renewDeadlineSeconds": 15}},
        "leaderElection.renewDeadlineSeconds (15) must be below "
        "leaderElection.leaseDurationSeconds (15)",
    ),
    (
        {"replicaCount": 2, "state": {"existingClaim": "store"}},
        "state.existingClaim holds one controller's sqlite store and cannot be shared by replicas",
    ),
    (
        {"replicaCount": 2, "podDisruptionBudget": {"minAvailable": 2}},
        "podDisruptionBudget.minAvailable (2) must be below replicaCount (2)",
    ),
]


@pytest.mark.parametrize(("values", "message"), RENDER_REFUSALS)
def test_inconsistent_values_are_refused_with_the_fix(
    chart: Chart, values: dict[str, Any], message: str
) -> None:
    chart.validate_schema(values)  # each value is fine alone
    with pytest.raises(HelmError) as refused:
        chart.render(values, name="r", namespace="n")
    assert message in str(refused.value)


def test_the_schema_names_exactly_the_config_keys_the_chart_leaves_to_the_user() -> None:
    config = SCHEMA["properties"]["config"]["properties"]
    assert set(config) == {"pool", "workers", "clouds", "policy"}
    assert set(config["pool"]["properties"]) == set(PoolConfig.model_fields) - {"token_dir"}
    assert set(config["workers"]["properties"]) == set(WorkersConfig.model_fields) - {
        "token",
        "admin_key",
    }


# ----- the README's values table -----
def leaves(schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every described value that has no described children, by dotted path."""
    for name, node in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        children = [c for c in node.get("properties", {}).values() if "description" in c]
        if children:
            yield from leaves(node, f"{path}.")
        else:
            yield path, node


def default_of(path: str) -> Any:
    node: Any = DEFAULTS
    for part in path.split("."):
        node = node[part]
    return node


def values_table() -> list[str]:
    rows = ["| Value | Default | What it is |", "|---|---|---|"]
    for path, node in leaves(SCHEMA):
        default = json.dumps(default_of(path), separators=(", ", ": "))
        rows.append(f"| `{path}` | `{default}` | {node['description']} |")
    return rows


def readme_table() -> list[str]:
    text = (REPO / "README.md").read_text()
    assert README_SECTION in text, f"README.md has no section {README_SECTION!r}"
    section = text.split(README_SECTION, 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_every_value_outside_config_is_described() -> None:
    def undescribed(node: dict[str, Any], prefix: str) -> Iterator[str]:
        for name, child in node.get("properties", {}).items():
            if prefix == "config.":
                continue  # config.py's own keys, described in deploy/config.example.yaml
            if "description" not in child:
                yield f"{prefix}{name}"
            yield from undescribed(child, f"{prefix}{name}.")

    assert list(undescribed(SCHEMA, "")) == []
    assert {path for path, _ in leaves(SCHEMA)} >= {"replicaCount", "config.pool", "metrics.port"}


def test_the_readme_values_table_is_the_schemas() -> None:
    expected = values_table()
    assert readme_table() == expected, (
        "README.md's values table is out of date with helm/bursting/values.schema.json; "
        "replace it with:\n" + "\n".join(expected)
    )
