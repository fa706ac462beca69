"""The chart's Roles grant exactly what the code calls: the Kubernetes API calls are read from the
provider's and the leader election's source (the `kubernetes` client's method names say resource
and verb), so a new call without its rule, or a rule no call needs, fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_python import Chart

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm/bursting"
PROVIDER_GLOB = "bursting/clouds/kubernetes*.py"
# The client's verbs: method prefix -> RBAC verb.
VERBS = {
    "create": "create",
    "read": "get",
    "list": "list",
    "patch": "patch",
    "replace": "update",
    "delete": "delete",
    "delete_collection": "deletecollection",
}
CALL = re.compile(
    r"\b(delete_collection|create|read|list|patch|replace|delete)_namespaced_(\w+?)\b"
)
WATCHED = re.compile(r"\.stream\(\s*[\w.]*\blist_namespaced_(\w+?)\b")
RESOURCES = {
    "pod": "pods",
    "config_map": "configmaps",
    "secret": "secrets",
    "event": "events",
    "resource_quota": "resourcequotas",
    "lease": "leases",
}
SUFFIXES = ("_with_http_info", "_status")


def resource(suffix: str) -> str:
    for tail in SUFFIXES:
        suffix = suffix.removesuffix(tail)
    assert suffix in RESOURCES, f"no RBAC resource known for *_namespaced_{suffix}; add it here"
    return RESOURCES[suffix]


def calls(paths: list[Path]) -> set[tuple[str, str]]:
    """(resource, verb) for every namespaced call of the `kubernetes` client in `paths`."""
    found = set()
    for path in paths:
        text = path.read_text()
        found |= {(resource(name), VERBS[verb]) for verb, name in CALL.findall(text)}
        found |= {(resource(name), "watch") for name in WATCHED.findall(text)}
    return found


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(r, verb) for rule in rules for r in rule["resources"] for verb in rule["verbs"]}


@pytest.fixture(scope="module")
def roles() -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Role name suffix -> rules, for an HA release with an in-cluster Kubernetes cloud."""
    cloud = {
        "name": "k8s",
        "type": "kubernetes",
        "flavors": [{"name": "p", "cpus": 1, "memory_mb": 1024}],
        "kubernetes": {"namespace": "workers", "image": "w", "token_secret": "pool-token"},
    }
    with Chart.load(CHART) as chart:
        rendered = chart.render(
            {"replicaCount": 2, "config": {"clouds": [cloud]}}, name="r", namespace="n"
        )
    docs = [d for d in yaml.safe_load_all(rendered["bursting/templates/rbac.yaml"]) if d]
    yield {
        d["metadata"]["name"].removeprefix("r-bursting-"): d["rules"]
        for d in docs
        if d["kind"] == "Role"
    }


def test_the_workers_role_is_what_the_kubernetes_provider_calls(
    roles: dict[str, list[dict[str, Any]]],
) -> None:
    provider = sorted(REPO.glob(PROVIDER_GLOB))
    assert provider, f"{PROVIDER_GLOB} is missing: the Role's rules cannot be held to the provider"
    used = calls(provider) - {(r, v) for r, v in calls(provider) if r == "leases"}
    assert used, f"no namespaced call of the kubernetes client found in {provider}"
    assert granted(roles["workers"]) == used


def test_the_lease_role_is_what_leader_election_calls(
    roles: dict[str, list[dict[str, Any]]],
) -> None:
    sources = [
        p for p in sorted((REPO / "bursting").rglob("*.py")) if "_namespaced_lease" in p.read_text()
    ]
    assert sources, "no module calls the Lease API: leader election is missing"
    assert granted(roles["leader-election"]) == calls(sources)
