"""The read-only HTTP server on 127.0.0.1 port 0: /metrics, /healthz, /readyz, /status, GET
only, stopped cleanly; and the metrics section of the config."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from bursting.config import parse_config
from bursting.errors import ConfigError
from bursting.metrics import MetricsServer
from tests.unit.test_metrics import TOKEN, World, busy_world


@pytest.fixture
def served() -> Iterator[tuple[World, str]]:
    world = busy_world()
    server = MetricsServer("127.0.0.1:0", world.exporter).start()
    try:
        yield world, f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def get(url: str, method: str = "GET") -> tuple[int, str, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"] or "", exc.read().decode()


def test_metrics_is_prometheus_text(served: tuple[World, str]) -> None:
    _, base = served
    code, kind, body = get(f"{base}/metrics")
    assert code == 200 and kind.startswith("text/plain; version=")
    assert "bursting_instances{" in body and TOKEN not in body


def test_healthz_and_readyz_follow_the_controller(served: tuple[World, str]) -> None:
    world, base = served
    assert get(f"{base}/healthz")[0] == 200
    code, _, body = get(f"{base}/readyz")
    assert (code, body.startswith("ok:")) == (200, True)
    world.clock.advance(60)
    code, _, body = get(f"{base}/readyz")
    assert code == 503 and "last successful cycle 70s ago" in body
    assert get(f"{base}/healthz")[0] == 200  # alive, though not ready


def test_status_is_the_last_cycle_as_json(served: tuple[World, str]) -> None:
    world, base = served
    code, kind, body = get(f"{base}/status")
    assert (code, kind) == (200, "application/json")
    assert TOKEN not in body
    doc: dict[str, Any] = json.loads(body)
    assert set(doc) == {
        "now",
        "ready",
        "reason",
        "last_cycle",
        "jobs",
        "demand",
        "instances",
        "clouds",
        "decisions",
        "spend",
    }
    assert doc["ready"] is True
    cycle = doc["last_cycle"]
    assert {"started_at", "seconds", "pool", "clouds", "actions", "unschedulable"} <= set(cycle)
    assert cycle["unschedulable"][0]["code"] == "too_many_cores"
    shapes = {row["shape"]: row for row in doc["demand"]}
    one = shapes["1c-1024mb-1gb"]
    assert (one["cores"], one["memory_bytes"]) == (one["jobs"], one["jobs"] * 1024**3)
    assert shapes["64c-1024mb-0gb"]["jobs"] == 3
    group = doc["instances"][0]
    assert {"cloud", "state", "count", "instances"} == set(group)
    first = group["instances"][0]
    assert {"id", "flavor", "age_seconds", "in_state_seconds", "reason"} == set(first)
    assert first["age_seconds"] >= first["in_state_seconds"] >= 0
    assert sum(g["count"] for g in doc["instances"]) == len(world.controller.store.instances())
    clouds = {c["name"]: c for c in doc["clouds"]}
    assert set(clouds) == {"private", "public"}
    assert {"read", "quota", "backoff", "retry_after_seconds", "spend_per_hour", "spent"} <= set(
        clouds["public"]
    )
    assert clouds["public"]["spent"] > 0
    assert doc["decisions"] and {"at", "kind", "cloud", "instance", "code", "reason"} == set(
        doc["decisions"][0]
    )
    assert doc["spend"]["currency"] == "CHF" and doc["spend"]["cap_per_hour"] == 3.0


def test_status_before_any_cycle_says_why_not_ready() -> None:
    world = World()
    server = MetricsServer("127.0.0.1:0", world.exporter).start()
    try:
        code, _, body = get(f"http://127.0.0.1:{server.port}/status")
        assert code == 200
        doc = json.loads(body)
        assert doc["last_cycle"] is None and doc["ready"] is False
        assert "no cycle has completed yet" in doc["reason"]
        assert get(f"http://127.0.0.1:{server.port}/readyz")[0] == 503
    finally:
        server.stop()


def test_only_get_and_known_paths(served: tuple[World, str]) -> None:
    _, base = served
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert get(f"{base}/status", method)[0] == 405
    code, _, body = get(f"{base}/admin")
    assert code == 404 and "/metrics" in body


def test_stop_closes_the_socket() -> None:
    world = World()
    server = MetricsServer("127.0.0.1:0", world.exporter).start()
    port = server.port
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    server.stop()
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


def test_a_taken_port_is_a_config_error_naming_the_field() -> None:
    world = World()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            ConfigError, match=rf"metrics\.listen: cannot listen on 127.0.0.1:{port}"
        ):
            MetricsServer(f"127.0.0.1:{port}", world.exporter)


def test_listen_defaults_to_loopback_and_anything_else_must_be_said() -> None:
    assert parse_config({}).metrics.listen.startswith("127.0.0.1:")
    with pytest.raises(ConfigError) as refused:
        parse_config({"metrics": {"listen": "0.0.0.0:9187"}})
    assert refused.value.problems == [
        "metrics.listen: 0.0.0.0 is not a loopback address; serving metrics and status beyond "
        "this host must be explicit: set metrics.allow_remote: true, or listen on 127.0.0.1"
    ]
    allowed = parse_config({"metrics": {"listen": "0.0.0.0:9187", "allow_remote": True}})
    assert allowed.metrics.listen == "0.0.0.0:9187"
    assert parse_config({"metrics": {"listen": "[::1]:9187"}}).metrics.listen == "[::1]:9187"
    for bad in ("9187", "127.0.0.1", "127.0.0.1:99999", "http://127.0.0.1:9187"):
        with pytest.raises(ConfigError, match=r"metrics\.listen: must be host:port"):
            parse_config({"metrics": {"listen": bad}})
