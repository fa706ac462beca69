"""HTCondorClusterSensor: wait for a cluster submitted elsewhere; fails if any job failed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator, Context
from airflow.sdk.exceptions import AirflowException

from bursting.airflow.hooks.htcondor import HTCondorHook
from bursting.airflow.outcome import describe
from bursting.airflow.triggers.cluster import HTCondorClusterTrigger
from bursting.errors import PoolUnavailable


class HTCondorClusterSensor(BaseSensorOperator):
    template_fields: Sequence[str] = ("cluster_id",)

    def __init__(
        self,
        *,
        cluster_id: int | str,
        htcondor_conn_id: str = HTCondorHook.default_conn_name,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cluster_id = cluster_id
        self.htcondor_conn_id = htcondor_conn_id
        self.deferrable = deferrable
        self._hook: HTCondorHook | None = None  # one hook, one pool client, for all pokes

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        self.defer(
            trigger=HTCondorClusterTrigger(
                int(self.cluster_id), self.htcondor_conn_id, self.poke_interval
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> bool:
        try:
            if self._hook is None:
                self._hook = HTCondorHook(self.htcondor_conn_id)
            status = self._hook.get_conn().job_status(int(self.cluster_id))
        except PoolUnavailable as exc:
            self.log.warning("pool unreachable (%s); poking again later", exc)
            return False
        if status.done and status.failed_jobs:
            raise AirflowException(describe(status))
        return status.done

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        if event.get("status") != "success":
            raise AirflowException(event.get("message") or "cluster failed")
