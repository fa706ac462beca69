"""The read-only HTTP server on `metrics.listen`: /metrics, /healthz, /readyz, /status.

The standard library's ThreadingHTTPServer in a daemon thread; GET only; stopped cleanly by
`stop()` (the serving thread is joined and the socket closed).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from bursting.errors import ConfigError
from bursting.metrics.exporter import Exporter

log = logging.getLogger("bursting.metrics")
PATHS = ("/metrics", "/healthz", "/readyz", "/status")


def split_listen(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port); the config has validated the form."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    exporter: Exporter


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "bursting"

    def do_GET(self) -> None:
        exporter = self.server.exporter
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(exporter.registry))
        elif path == "/healthz":
            self._text(HTTPStatus.OK, "ok: the controller process is alive\n")
        elif path == "/readyz":
            ready = exporter.readiness()
            code = HTTPStatus.OK if ready.ready else HTTPStatus.SERVICE_UNAVAILABLE
            self._text(code, ready.reason + "\n")
        elif path == "/status":
            self._json(HTTPStatus.OK, exporter.status())
        else:
            self._text(HTTPStatus.NOT_FOUND, f"not found; try {', '.join(PATHS)}\n")

    def _refuse(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _refuse

    def _text(self, code: HTTPStatus, text: str) -> None:
        self._send(code, "text/plain; charset=utf-8", text.encode())

    def _json(self, code: HTTPStatus, doc: Any) -> None:
        self._send(code, "application/json", json.dumps(doc, sort_keys=True).encode())

    def _send(self, code: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class MetricsServer:
    """Serve `exporter` on `listen` (host:port; port 0 picks a free one, see `.port`)."""

    def __init__(self, listen: str, exporter: Exporter) -> None:
        host, port = split_listen(listen)
        try:
            self._server = (_Server6 if ":" in host else _Server)((host, port), _Handler)
        except OSError as exc:
            raise ConfigError(
                "metrics.listen", [f"cannot listen on {listen}: {exc.strerror or exc}"]
            ) from None
        self._server.exporter = exporter
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("metrics, health and status on http://%s:%d/", self.host, self.port)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
