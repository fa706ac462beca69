"""deploy/grafana/bursting.json against Grafana's dashboard conventions: a stable uid, unique
panel ids, a `datasource` variable every panel and query goes through (no data source uid written
in), a unit on every panel, a tidy grid, and only metrics the exporter or the rules produce.
Every query itself is run against a real Prometheus in tests/integration/test_prometheus.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.unit.test_metrics import FAMILIES

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "bursting.json"
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's unit ids this dashboard may use (its "Standard options > Unit" list).
UNITS = {"short", "none", "s", "ms", "percentunit", "percent", "reqps", "ops", "bytes"}
# Grafana's own variables; anything else a query names must be a template variable.
BUILTINS = {"__rate_interval", "__interval", "__range"}
METRIC = re.compile(r"\bbursting[_:][A-Za-z0-9_:]*")
VARIABLE = re.compile(r"\$\{?(\w+)")


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(data: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every panel, including those inside collapsed rows; rows themselves excluded."""
    out: list[dict[str, Any]] = []
    for panel in (data or dashboard())["panels"]:
        if panel["type"] == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def queries(
    rate_interval: str = "1m", interval: str = "15s", everything: str = ".*"
) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every target, with Grafana's variables substituted the way
    it would: `$__rate_interval` and `$__interval` by the given durations, each template
    variable by its "All" value (multi-value variables with allValue)."""
    data = dashboard()
    values = {v["name"]: v.get("allValue") or everything for v in data["templating"]["list"]}
    values |= {"__rate_interval": rate_interval, "__interval": interval}

    def substitute(expr: str) -> str:
        return VARIABLE.sub(lambda m: values[m.group(1)], expr)

    return [
        (panel["title"], target["refId"], substitute(target["expr"]))
        for panel in panels(data)
        for target in panel["targets"]
    ]


def test_dashboard_has_a_stable_uid_and_a_recent_schema() -> None:
    data = dashboard()
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", data["uid"])
    assert data["title"] and data["schemaVersion"] >= 36
    assert "id" not in data or data["id"] is None  # an instance's own id, never in a file


def test_panel_ids_are_unique_positive_integers() -> None:
    data = dashboard()
    every = [*data["panels"], *(p for r in data["panels"] for p in r.get("panels", []))]
    ids = [p["id"] for p in every]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in panels(data)]
    assert len(titles) == len(set(titles))


def test_a_datasource_variable_of_type_prometheus_is_used_by_every_panel_and_query() -> None:
    data = dashboard()
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name, variable in variables.items():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, name
    for panel in panels(data):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, (panel["title"], target["refId"])
            assert target["expr"].strip(), (panel["title"], target["refId"])


def test_no_data_source_uid_is_written_in() -> None:
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "datasource":
                    uid = value.get("uid") if isinstance(value, dict) else value
                    assert uid in ("${datasource}", "$datasource"), f"{where}: {value!r}"
                else:
                    walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for n, item in enumerate(node):
                walk(item, f"{where}[{n}]")

    walk(dashboard()["panels"], "panels")
    walk([v for v in dashboard()["templating"]["list"] if v["type"] != "datasource"], "vars")
    assert "__inputs" not in dashboard()  # the variable replaces import-time data source inputs


def test_every_panel_has_a_unit_and_a_description() -> None:
    for panel in panels():
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit in UNITS, (panel["title"], unit)
        assert panel.get("description"), panel["title"]
    units = {p["fieldConfig"]["defaults"]["unit"] for p in panels()}
    assert {"s", "short", "percentunit"} <= units


def test_panels_sit_on_the_grid_without_overlapping() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["w"] >= 1 and pos["h"] >= 1 and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells


def test_queries_name_only_exported_metrics_and_known_variables() -> None:
    records = {
        rule["record"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    suffixes = ("", "_total", "_bucket", "_count", "_sum")
    known = {f"{family}{suffix}" for family in FAMILIES for suffix in suffixes} | records
    variables = {v["name"] for v in dashboard()["templating"]["list"]} | BUILTINS
    for panel in panels():
        for target in panel["targets"]:
            for metric in METRIC.findall(target["expr"]):
                assert metric in known, (panel["title"], metric)
            for name in VARIABLE.findall(target["expr"]):
                assert name in variables, (panel["title"], name)
    substituted = [expr for _, _, expr in queries()]
    assert not any("$" in expr for expr in substituted)


def test_the_dashboard_covers_what_operators_look_for() -> None:
    exprs = " ".join(t["expr"] for p in panels() for t in p["targets"])
    for family in (
        "bursting_idle_demand_cores",  # queue ...
        "bursting_cloud_flavor_cores",  # ... vs capacity
        "bursting_instances",  # by cloud and state
        "bursting_instance_boot_seconds_bucket",
        "bursting_instance_join_seconds_bucket",
        "bursting_cloud_api_errors_total",
        "bursting_spend_rate_per_hour",
        "bursting_spend_cap_per_hour",
        "bursting_unschedulable_jobs",
        "bursting_campaign_jobs",
        "bursting_last_successful_cycle_timestamp_seconds",
    ):
        assert family in exprs, family
    assert "histogram_quantile" in exprs and "$__rate_interval" in exprs
