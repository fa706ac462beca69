"""Operators' side: Prometheus metrics gathered at scrape time from the controller's latest
cycle, and the /metrics /healthz /readyz /status server `bursting run` starts."""

from __future__ import annotations

from bursting.metrics.calls import CloudCalls, InstrumentedProvider
from bursting.metrics.exporter import Exporter
from bursting.metrics.server import MetricsServer

__all__ = ["CloudCalls", "Exporter", "InstrumentedProvider", "MetricsServer"]
