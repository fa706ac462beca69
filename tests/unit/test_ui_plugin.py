"""plugins/bursting_ui.py: it only declares the AirflowPlugin, whose app Airflow mounts (built at
its first request) and whose views put the page under Browse and the Campaign tabs on DAG pages."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bursting.ui.plugin import URL_PREFIX, LazyApp, external_views

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "bursting_ui.py"


def load_plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bursting_ui_plugin_under_test", PLUGIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plugin_file_only_declares() -> None:
    tree = ast.parse(PLUGIN.read_text())
    body = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    assert isinstance(body[0], ast.Expr)  # the docstring
    (plugin_class,) = body[1:]
    assert isinstance(plugin_class, ast.ClassDef)
    assert all(isinstance(n, ast.Assign) for n in plugin_class.body)
    imported = {
        n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module is not None
    }
    assert {m for m in imported if m.startswith("bursting")} == {"bursting.ui"}


def test_the_plugin_adds_the_app_and_the_views() -> None:
    from airflow.plugins_manager import AirflowPlugin

    plugin = load_plugin().BurstingUIPlugin
    assert issubclass(plugin, AirflowPlugin) and plugin.name == "bursting_ui"
    (app,) = plugin.fastapi_apps
    assert app["url_prefix"] == URL_PREFIX and isinstance(app["app"], LazyApp)
    views = {(v["destination"], v["name"]): v for v in plugin.external_views}
    pool = views[("nav", "Burst pool")]
    assert pool["category"] == "browse" and pool["href"] == f"{URL_PREFIX}/pool"
    assert views[("dag", "Campaign")]["href"] == f"{URL_PREFIX}/runs?dag_id={{DAG_ID}}"
    run_tab = views[("dag_run", "Campaign")]["href"]
    assert run_tab == f"{URL_PREFIX}/campaign?dag_id={{DAG_ID}}&run_id={{RUN_ID}}"
    routes = [v["url_route"] for v in plugin.external_views]
    assert len(set(routes)) == len(routes)


def test_views_follow_airflows_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.org/team-a/")
    assert external_views()[0]["href"] == "/team-a/bursting/pool"


def test_the_app_is_built_at_its_first_request_and_refuses_anonymous_ones() -> None:
    built: list[FastAPI] = []

    def factory() -> FastAPI:
        from bursting.ui.app import create_app

        built.append(create_app())
        return built[-1]

    lazy = LazyApp(factory)
    api_server = FastAPI()
    api_server.mount(URL_PREFIX, lazy)  # as Airflow's api-server mounts plugin apps
    assert built == []
    client = TestClient(api_server)
    assert client.get(f"{URL_PREFIX}/pool").status_code == 401
    assert client.get(f"{URL_PREFIX}/static/bursting.css").status_code == 401
    assert len(built) == 1
    client.get(f"{URL_PREFIX}/pool")
    assert len(built) == 1
