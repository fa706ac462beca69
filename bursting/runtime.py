"""Wiring for the daemon and the dry run: config -> pool, clouds, store, controller."""

from __future__ import annotations

import json
import logging
import sys
import time

from bursting.clock import Clock, SystemClock
from bursting.clouds.base import CloudProvider, ProviderContext
from bursting.clouds.registry import cloud_type
from bursting.config import Config
from bursting.controller import Controller, Leadership
from bursting.metrics.calls import CloudCalls
from bursting.pool.htcondor import HTCondorPool
from bursting.store import open_store


class JsonLines(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(entry)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def build_clouds(config: Config, clock: Clock) -> dict[str, CloudProvider]:
    """A provider per enabled cloud, each built by its type's registered factory."""
    context = ProviderContext(clock=clock, pool_id=config.pool.id)
    return {
        cloud.name: cloud_type(cloud.type).build(cloud, context)
        for cloud in config.clouds
        if cloud.enabled
    }


def build_controller(
    config: Config,
    clock: Clock | None = None,
    calls: CloudCalls | None = None,
    leadership: Leadership | None = None,
) -> Controller:
    """Every provider is wrapped once in the instrumented one, so each cloud call is counted,
    timed and its error classed (into `calls`, which the metrics exporter reads)."""
    clock = clock or SystemClock()
    calls = calls if calls is not None else CloudCalls()
    return Controller(
        config,
        HTCondorPool(config.pool),
        {name: calls.wrap(p) for name, p in build_clouds(config, clock).items()},
        open_store(config.store.url),
        clock,
        leadership=leadership,
    )
