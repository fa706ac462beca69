"""The Helm chart rendered by Helm's own engine (helm-python-sdk) for the value sets operators use;
every manifest checked against the official Kubernetes schemas (kubernetes-validate, strict), and
the fields that keep the controller safe asserted."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from helm_python import Chart, lint
from kubernetes_validate.utils import SchemaNotFoundError, latest_version

from bursting.config import parse_config

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm/bursting"
RELEASE, NAMESPACE = "burst", "batch"
FULLNAME = "burst-bursting"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas known.
KUBE_VERSIONS = ("1.25", latest_version())
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}  # no official schema: checked field by field

SECRET_VALUES = {
    "controllerToken": "ctl-token-SECRET-1a2b",
    "workerToken": "wrk-token-SECRET-3c4d",
    "workerAdminKey": "adm-key-SECRET-5e6f",
}
CLOUDS_SECRET = "os-appcred-SECRET-7a8b"
CLOUDS_YAML = (
    "clouds:\n  private:\n    auth_type: v3applicationcredential\n"
    f"    auth: {{auth_url: 'https://keystone.example:5000/v3', "
    f"application_credential_id: abc, application_credential_secret: {CLOUDS_SECRET}}}\n"
)
OPENSTACK = {
    "name": "private",
    "type": "openstack",
    "priority": 1,
    "flavors": [{"name": "m1.large", "cpus": 8, "memory_mb": 16384}],
    "openstack": {"cloud": "private", "image": "htcondor-worker", "network": "batch-net"},
}
KUBERNETES = {
    "name": "k8s",
    "type": "kubernetes",
    "flavors": [{"name": "pod-4c", "cpus": 4, "memory_mb": 8192}],
    "kubernetes": {"namespace": "workers", "image": "worker:1", "token_secret": "pool-token"},
}
REMOTE_KUBERNETES = {
    **KUBERNETES,
    "kubernetes": {**KUBERNETES["kubernetes"], "kubeconfig": "/etc/bursting/kube/site-b"},
}
ALL_MONITORING = {
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    }
}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "ha": {"replicaCount": 3},
    "monitoring": ALL_MONITORING,
    "chart-secrets": {
        "secrets": {
            "pool": {"existingSecret": "", **SECRET_VALUES},
            "cloudsYaml": {"content": CLOUDS_YAML},
        },
        "config": {"clouds": [OPENSTACK]},
    },
    "existing-secrets": {
        "secrets": {
            "pool": {"existingSecret": "site-pool", "adminKey": False},
            "cloudsYaml": {"existingSecret": "site-clouds"},
        },
        "config": {"clouds": [OPENSTACK]},
    },
    "kubernetes-ha": {"replicaCount": 2, "config": {"clouds": [KUBERNETES]}, **ALL_MONITORING},
    "kubernetes-remote": {
        "secrets": {"kubeconfig": {"existingSecret": "site-kubeconfigs"}},
        "config": {"clouds": [REMOTE_KUBERNETES]},
    },
}


@pytest.fixture(scope="module")
def chart() -> Iterator[Chart]:
    with Chart.load(CHART) as loaded:
        yield loaded


def render(chart: Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object the chart renders for `values`, in template order."""
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    docs = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        docs += [doc for doc in yaml.safe_load_all(rendered[path]) if doc]
    return docs


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def controller_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    config_map = next(d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == FULLNAME)
    loaded: dict[str, Any] = yaml.safe_load(config_map["data"]["config.yaml"])
    return loaded


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_reports_nothing(name: str) -> None:
    report = lint(CHART, VALUE_SETS[name], strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    # Severity 1 is informational ("icon is recommended"); warnings and errors fail.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_manifest_passes_the_official_schemas_strictly(chart: Chart, name: str) -> None:
    docs = render(chart, VALUE_SETS[name])
    assert {"Deployment", "ConfigMap", "Service", "ServiceAccount"} <= {d["kind"] for d in docs}
    for doc in docs:
        for version in KUBE_VERSIONS:
            if doc["kind"] in CRD_KINDS:
                with pytest.raises(SchemaNotFoundError):
                    kubernetes_validate.validate(doc, version, strict=True)
                continue
            kubernetes_validate.validate(doc, version, strict=True)  # raises on any violation


@pytest.mark.parametrize("name", VALUE_SETS)
def test_the_pod_runs_unprivileged_with_a_read_only_root(chart: Chart, name: str) -> None:
    spec = pod_spec(render(chart, VALUE_SETS[name]))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # Writable: only the state store and /tmp, both volumes; every secret mount read-only.
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/var/lib/bursting", "/tmp"}
    assert container["resources"]["limits"]["memory"]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_probes_ask_the_controllers_health_endpoints_on_its_listen_port(
    chart: Chart, name: str
) -> None:
    docs = render(chart, VALUE_SETS[name])
    (container,) = pod_spec(docs)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    metrics = controller_config(docs)["metrics"]
    # In a pod the server must be reachable by the kubelet and Prometheus: 0.0.0.0, said on
    # purpose (allow_remote); the loopback-only rule is for this machine and the tests.
    assert metrics == {"allow_remote": True, "listen": f"0.0.0.0:{ports['metrics']}"}
    assert container["args"] == ["run", "--config", "/etc/bursting/config.yaml"]
    service = one(docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["selector"].items() <= (
        one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )


@pytest.mark.parametrize(
    ("values", "elected", "pdb"),
    [
        ({}, False, False),
        ({"replicaCount": 2}, True, True),
        ({"replicaCount": 3}, True, True),
        ({"leaderElection": {"force": True}}, True, False),
    ],
)
def test_leader_election_is_on_exactly_when_replicas_must_share_the_work(
    chart: Chart, values: dict[str, Any], elected: bool, pdb: bool
) -> None:
    docs = render(chart, values)
    config = controller_config(docs)
    spec = pod_spec(docs)
    (container,) = spec["containers"]
    env = {e["name"]: e for e in container.get("env", [])}
    strategy = one(docs, "Deployment")["spec"]["strategy"]["type"]
    if elected:
        assert config["leader_election"] == {
            "enabled": True,
            "lease_name": FULLNAME,
            "namespace": NAMESPACE,
            "lease_duration_seconds": 15,
            "renew_deadline_seconds": 10,
            "retry_period_seconds": 2,
        }
        assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert spec["automountServiceAccountToken"] is True
        assert strategy == "RollingUpdate"
    else:
        assert "leader_election" not in config
        assert "POD_NAME" not in env
        assert spec["automountServiceAccountToken"] is False  # no API use: no API token
        assert strategy == "Recreate"  # two unelected controllers must never overlap
    budgets = of_kind(docs, "PodDisruptionBudget")
    assert len(budgets) == int(pdb)
    if pdb:
        assert budgets[0]["spec"]["minAvailable"] == 1
        assert budgets[0]["spec"]["selector"]["matchLabels"].items() <= (
            one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
        )


def rules_of(docs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(namespace, Role name) -> its rules, checking each Role is bound to the chart's account."""
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in of_kind(docs, "Role")}
    bindings = of_kind(docs, "RoleBinding")
    assert len(bindings) == len(roles)
    for binding in bindings:
        key = (binding["metadata"]["namespace"], binding["roleRef"]["name"])
        assert key in roles
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
        ]
    assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")
    return {key: role["rules"] for key, role in roles.items()}


LEASE_RULES = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": [FULLNAME],
        "verbs": ["get", "update"],
    },
]
WORKER_RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "get", "list"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "delete", "get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["get", "list"]},
]


def test_no_role_at_all_when_the_controller_never_calls_the_api(chart: Chart) -> None:
    for name in ("defaults", "monitoring", "chart-secrets", "existing-secrets"):
        assert rules_of(render(chart, VALUE_SETS[name])) == {}


def test_ha_gets_the_lease_verbs_and_nothing_else(chart: Chart) -> None:
    assert rules_of(render(chart, VALUE_SETS["ha"])) == {
        (NAMESPACE, f"{FULLNAME}-leader-election"): LEASE_RULES
    }


def test_in_cluster_kubernetes_clouds_get_the_providers_verbs_in_their_namespace(
    chart: Chart,
) -> None:
    secret_rule = {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["pool-token"],
        "verbs": ["get"],
    }
    assert rules_of(render(chart, VALUE_SETS["kubernetes-ha"])) == {
        (NAMESPACE, f"{FULLNAME}-leader-election"): LEASE_RULES,
        ("workers", f"{FULLNAME}-workers"): [*WORKER_RULES, secret_rule],
    }
    # Without a referenced token Secret, no Secret may be read at all.
    plain = {**KUBERNETES, "kubernetes": {"namespace": "workers", "image": "worker:1"}}
    assert rules_of(render(chart, {"config": {"clouds": [plain]}})) == {
        ("workers", f"{FULLNAME}-workers"): WORKER_RULES
    }
    # A cluster reached through a kubeconfig is another cluster: nothing to grant here; a
    # disabled cloud needs nothing either.
    remote = {**KUBERNETES, "kubernetes": {**KUBERNETES["kubernetes"], "kubeconfig": "/k/c"}}
    disabled = {**KUBERNETES, "enabled": False}
    for cloud in (remote, disabled):
        assert rules_of(render(chart, {"config": {"clouds": [cloud]}})) == {}
    # No namespace given: the release's.
    here = {**KUBERNETES, "kubernetes": {"image": "worker:1"}}
    assert list(rules_of(render(chart, {"config": {"clouds": [here]}}))) == [
        (NAMESPACE, f"{FULLNAME}-workers")
    ]


def test_secret_values_reach_only_secrets_and_are_mounted_as_files(chart: Chart) -> None:
    docs = render(chart, VALUE_SETS["chart-secrets"])
    secrets = [*SECRET_VALUES.values(), CLOUDS_SECRET]
    not_secrets = [d for d in docs if d["kind"] != "Secret"]
    text = json.dumps(not_secrets)
    for value in secrets:
        assert value not in text
        encoded = base64.b64encode(value.encode()).decode()
        assert encoded not in text
    stored = {
        key: base64.b64decode(value).decode()
        for secret in of_kind(docs, "Secret")
        for key, value in secret["data"].items()
    }
    assert stored["controller.token"] == SECRET_VALUES["controllerToken"]
    assert stored["worker.token"] == SECRET_VALUES["workerToken"]
    assert stored["worker-admin.key"] == SECRET_VALUES["workerAdminKey"]
    assert CLOUDS_SECRET in stored["clouds.yaml"]
    (container,) = pod_spec(docs)["containers"]
    # The environment holds the pod's name at most: no secret goes through it.
    for variable in container.get("env", []):
        assert set(variable) == {"name", "valueFrom"}
        assert set(variable["valueFrom"]) == {"fieldRef"}
    assert "envFrom" not in container


def mounted_files(spec: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Path in the container -> (Secret or ConfigMap name, key) for every mounted item."""
    volumes = {v["name"]: v for v in spec["volumes"]}
    files = {}
    for mount in spec["containers"][0]["volumeMounts"]:
        volume = volumes[mount["name"]]
        source = volume.get("secret") or volume.get("configMap")
        if source is None:
            continue
        name = source.get("secretName") or source.get("name")
        for item in source.get("items", []):
            files[f"{mount['mountPath']}/{item['path']}"] = (name, item["key"])
        if "subPath" in mount:
            files[mount["mountPath"]] = (name, mount["subPath"])
    return files


@pytest.mark.parametrize(
    ("name", "pool_secret", "clouds_secret", "admin_key"),
    [
        ("chart-secrets", f"{FULLNAME}-pool", f"{FULLNAME}-clouds-yaml", True),
        ("existing-secrets", "site-pool", "site-clouds", False),
        ("defaults", "bursting-pool", None, True),
    ],
)
def test_the_config_points_at_files_mounted_from_the_right_secrets(
    chart: Chart, name: str, pool_secret: str, clouds_secret: str | None, admin_key: bool
) -> None:
    docs = render(chart, VALUE_SETS[name])
    config = controller_config(docs)
    files = mounted_files(pod_spec(docs))
    assert files["/etc/bursting/config.yaml"] == (FULLNAME, "config.yaml")
    assert files[f"{config['pool']['token_dir']}/controller.token"] == (
        pool_secret,
        "controller.token",
    )
    assert files[config["workers"]["token"]["file"]] == (pool_secret, "worker.token")
    if admin_key:
        assert files[config["workers"]["admin_key"]["file"]] == (pool_secret, "worker-admin.key")
    else:
        assert config["workers"]["admin_key"] is None
        assert (pool_secret, "worker-admin.key") not in files.values()
    for cloud in config["clouds"]:
        assert files[cloud["openstack"]["clouds_yaml"]] == (clouds_secret, "clouds.yaml")
    if clouds_secret is None:
        assert not [v for v in files.values() if v[1] == "clouds.yaml"]
    created = {s["metadata"]["name"] for s in of_kind(docs, "Secret")}
    assert created == ({pool_secret, clouds_secret} if name == "chart-secrets" else set())
    assert config["store"] == {"url": "sqlite:////var/lib/bursting/state.db"}


@pytest.mark.parametrize("name", VALUE_SETS)
def test_the_rendered_config_is_one_the_controller_accepts(chart: Chart, name: str) -> None:
    """Including leader_election and Kubernetes clouds: config.py's own checks, not the chart's."""
    config = parse_config(controller_config(render(chart, VALUE_SETS[name])), "rendered")
    assert config.metrics.listen == "0.0.0.0:9187"
    assert config.pool.token_dir == Path("/etc/bursting/tokens.d")


def test_prometheus_rule_is_deploy_prometheus_rules_yml_itself(chart: Chart) -> None:
    docs = render(chart, ALL_MONITORING)
    rules = yaml.safe_load((REPO / "deploy/prometheus/rules.yml").read_text())
    assert one(docs, "PrometheusRule")["spec"] == {"groups": rules["groups"]}
    # Not a copy: the chart's files are links into deploy/.
    for link, target in [
        ("files/rules.yml", "deploy/prometheus/rules.yml"),
        ("files/bursting.json", "deploy/grafana/bursting.json"),
    ]:
        assert (CHART / link).is_symlink()
        assert (CHART / link).resolve() == (REPO / target).resolve()


def test_service_monitor_scrapes_the_metrics_port_of_the_charts_service(chart: Chart) -> None:
    docs = render(chart, ALL_MONITORING)
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_dashboard_config_map_carries_deploy_grafana_bursting_json(chart: Chart) -> None:
    docs = render(chart, ALL_MONITORING)
    dashboard = next(
        d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")
    )
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["bursting.json"]) == json.loads(
        (REPO / "deploy/grafana/bursting.json").read_text()
    )


def test_monitoring_objects_are_off_by_default(chart: Chart) -> None:
    kinds = {d["kind"] for d in render(chart, {})}
    assert not kinds & CRD_KINDS
    assert len(of_kind(render(chart, {}), "ConfigMap")) == 1


def test_the_packaged_chart_carries_the_files_contents(chart: Chart, tmp_path: Path) -> None:
    """`helm package` follows the links: the archive works away from the checkout."""
    archive = chart.save(tmp_path)
    with Chart.load(archive) as packaged:
        docs = render(packaged, ALL_MONITORING)
    rules = yaml.safe_load((REPO / "deploy/prometheus/rules.yml").read_text())
    assert one(docs, "PrometheusRule")["spec"] == {"groups": rules["groups"]}


def test_kubeconfigs_of_other_clusters_are_mounted_from_their_secret(chart: Chart) -> None:
    docs = render(chart, VALUE_SETS["kubernetes-remote"])
    spec = pod_spec(docs)
    mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert mounts["kubeconfig"] == {
        "name": "kubeconfig",
        "mountPath": "/etc/bursting/kube",
        "readOnly": True,
    }
    assert volumes["kubeconfig"]["secret"]["secretName"] == "site-kubeconfigs"
    (cloud,) = controller_config(docs)["clouds"]
    assert cloud["kubernetes"]["kubeconfig"].startswith("/etc/bursting/kube/")
    # Another cluster's rights come with its kubeconfig: nothing granted, no API token here.
    assert rules_of(docs) == {}
    assert spec["automountServiceAccountToken"] is False
    assert "kubeconfig" not in {v["name"] for v in pod_spec(render(chart, {}))["volumes"]}
