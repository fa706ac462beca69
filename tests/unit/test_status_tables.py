"""`bursting status` reads the running controller's /status: fetched over HTTP from the real
server and laid out as tables that carry the same numbers; a controller that does not answer is
said plainly."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

import pytest
from rich.console import Console

from bursting.metrics import MetricsServer
from bursting.metrics.status_tables import (
    StatusUnavailable,
    fetch_status,
    headline,
    status_tables,
    status_url,
)
from tests.unit.test_metrics import TOKEN, World, busy_world


@pytest.fixture
def served() -> Iterator[tuple[World, str]]:
    world = busy_world()
    server = MetricsServer("127.0.0.1:0", world.exporter).start()
    try:
        yield world, f"127.0.0.1:{server.port}"
    finally:
        server.stop()


def rendered(doc: dict[str, object]) -> str:
    console = Console(file=io.StringIO(), width=250, color_system=None)
    console.print(headline(doc))
    for table in status_tables(doc):
        console.print(table)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def test_the_tables_show_what_the_controller_serves(served: tuple[World, str]) -> None:
    world, listen = served
    doc = fetch_status(listen)
    text = rendered(doc)
    assert "controller ready" in text and TOKEN not in text
    for row in doc["demand"]:
        assert row["shape"] in text
    for instance in world.controller.store.instances():
        assert instance.id in text
    for cloud in ("private", "public"):
        assert cloud in text
    assert "CHF" in text and "of 3 CHF/h" in text
    first = doc["decisions"][0]
    assert first["reason"] in text


def test_a_controller_that_does_not_answer_is_said_plainly() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        StatusUnavailable, match=f"no controller answered at http://127.0.0.1:{port}/status"
    ):
        fetch_status(f"127.0.0.1:{port}", timeout=1)


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("127.0.0.1:9187", "http://127.0.0.1:9187/status"),
        ("0.0.0.0:9187", "http://127.0.0.1:9187/status"),
        ("[::1]:9187", "http://[::1]:9187/status"),
        ("[::]:9187", "http://127.0.0.1:9187/status"),
    ],
)
def test_the_status_url_follows_metrics_listen(listen: str, url: str) -> None:
    assert status_url(listen) == url
