"""HTCondorClusterTrigger: wait in the triggerer until a cluster's jobs have all ended.

The bindings block, so each poll runs in a thread. A schedd that cannot be reached is a blip, not
a failure: polling continues until `unreachable_timeout` has passed without an answer.
Progress (jobs done/total, failures) is logged when it changes, else once per `progress_every`
polls, so a long campaign shows it is alive without a line every poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from bursting.airflow.hooks.htcondor import HTCondorHook
from bursting.airflow.outcome import Progress, describe
from bursting.errors import PoolUnavailable


class HTCondorClusterTrigger(BaseTrigger):
    def __init__(
        self,
        cluster_id: int,
        htcondor_conn_id: str = HTCondorHook.default_conn_name,
        poll_interval: float = 10.0,
        unreachable_timeout: float = 600.0,
        deadline: float | None = None,
        progress_every: int = 12,
    ) -> None:
        super().__init__()
        self.cluster_id = int(cluster_id)
        self.htcondor_conn_id = htcondor_conn_id
        self.poll_interval = float(poll_interval)
        self.unreachable_timeout = float(unreachable_timeout)
        self.deadline = deadline  # epoch seconds; the cluster is removed when it passes
        self.progress_every = max(1, int(progress_every))  # polls between unchanged reports

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "cluster_id": self.cluster_id,
                "htcondor_conn_id": self.htcondor_conn_id,
                "poll_interval": self.poll_interval,
                "unreachable_timeout": self.unreachable_timeout,
                "deadline": self.deadline,
                "progress_every": self.progress_every,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        pool = await HTCondorHook.apool(self.htcondor_conn_id)
        last_answer = time.monotonic()
        reported: Progress | None = None
        quiet = 0  # polls since the last progress line
        while True:
            if self.deadline is not None and time.time() > self.deadline:
                await asyncio.to_thread(pool.remove, self.cluster_id, "Airflow task timed out")
                yield TriggerEvent(
                    {
                        "status": "timeout",
                        "cluster_id": self.cluster_id,
                        "message": f"cluster {self.cluster_id} removed: timed out",
                    }
                )
                return
            try:
                status = await asyncio.to_thread(pool.job_status, self.cluster_id)
            except PoolUnavailable as exc:
                silent = time.monotonic() - last_answer
                if silent > self.unreachable_timeout:
                    yield TriggerEvent(
                        {
                            "status": "error",
                            "cluster_id": self.cluster_id,
                            "message": f"pool unreachable for {silent:.0f}s: {exc}",
                        }
                    )
                    return
                self.log.warning("pool unreachable (%s); polling again", exc)
                await asyncio.sleep(self.poll_interval)
                continue
            last_answer = time.monotonic()
            if not status.jobs:
                yield TriggerEvent(
                    {
                        "status": "error",
                        "cluster_id": self.cluster_id,
                        "message": f"cluster {self.cluster_id} is unknown to the schedd",
                    }
                )
                return
            if status.done:
                failed = status.failed_jobs
                yield TriggerEvent(
                    {
                        "status": "failed" if failed else "success",
                        "cluster_id": self.cluster_id,
                        "jobs": len(status.jobs),
                        "message": describe(status)
                        if failed
                        else f"cluster {self.cluster_id}: {len(status.jobs)} job(s) succeeded",
                    }
                )
                return
            progress, quiet = Progress.of(status), quiet + 1
            if progress.moved_from(reported) or quiet >= self.progress_every:
                self.log.info("%s", progress.text())
                reported, quiet = progress, 0
            await asyncio.sleep(self.poll_interval)

    async def on_kill(self) -> None:
        """The user killed the deferred task (mark failed, clear): remove its cluster. Not called
        on triggerer restarts or redistribution, so running work survives those."""
        pool = await HTCondorHook.apool(self.htcondor_conn_id)
        await asyncio.wait_for(
            asyncio.to_thread(pool.remove, self.cluster_id, "Airflow task was killed"),
            timeout=pool.config.timeout_seconds + 5,
        )
