"""HTCondorSubmitOperator: submit one cluster, wait for it (deferred by default), report failures.

A retried task never submits its jobs twice: every cluster carries the task instance's key
(`BurstingTaskKey`, dag/task/run/map index), and the cluster id is also kept in Airflow's
task_state_store (ResumableJobMixin). A retry reconnects to a cluster still running, returns at
once for one that succeeded, and submits afresh only after a failed one. A submit whose answer was
lost (timeout, dropped connection) is never simply repeated: the queue and history are first
searched for a cluster with this key that is newer than any earlier try's, and that one is adopted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import classad2
from airflow.sdk import BaseOperator, Context, ResumableJobMixin
from airflow.sdk.exceptions import AirflowException
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from bursting.airflow.hooks.htcondor import HTCondorHook
from bursting.airflow.outcome import describe
from bursting.airflow.triggers.cluster import HTCondorClusterTrigger
from bursting.errors import PoolUnavailable
from bursting.model import ClusterStatus
from bursting.pool.htcondor import HTCondorPool

TASK_KEY_ATTRIBUTE = "BurstingTaskKey"
ACTIVE, SUCCEEDED, FAILED = "ACTIVE", "SUCCEEDED", "FAILED"


def task_key(context: Context) -> str:
    ti = context["ti"]
    return f"{ti.dag_id}/{ti.task_id}/{ti.run_id}/{getattr(ti, 'map_index', -1)}"


def state_of(status: ClusterStatus) -> str:
    if not status.done:
        return ACTIVE
    return FAILED if status.failed_jobs else SUCCEEDED


class HTCondorSubmitOperator(ResumableJobMixin, BaseOperator):
    """Submit `submit_description` (HTCondor submit language, templated) with `itemdata` (a list
    of dicts, one job each; templated, so an upstream task's output works) as one cluster."""

    template_fields: Sequence[str] = ("submit_description", "itemdata")
    template_ext: Sequence[str] = (".sub",)
    ui_color = "#c8e6ff"
    external_id_key = "htcondor_cluster_id"
    retry_wait: Any = wait_exponential(multiplier=2, max=30)  # between attempts at one call

    def __init__(
        self,
        *,
        submit_description: str,
        itemdata: Sequence[Mapping[str, Any]] | None = None,
        htcondor_conn_id: str = HTCondorHook.default_conn_name,
        deferrable: bool = True,
        poll_interval: float = 10.0,
        unreachable_timeout: float = 600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.submit_description = submit_description
        self.itemdata = itemdata
        self.htcondor_conn_id = htcondor_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.unreachable_timeout = unreachable_timeout
        self._cluster_id: int | None = None
        self._newest_seen: int | None = None  # the newest cluster of an earlier try, if any
        self._hook: HTCondorHook | None = None

    @property
    def htcondor(self) -> HTCondorPool:
        """One hook, hence one pool client, per operator run."""
        if self._hook is None:
            self._hook = HTCondorHook(self.htcondor_conn_id)
        return self._hook.get_conn()

    # ----- entry points -----
    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return self.execute_resumable(context)
        cluster = self._reuse_or_submit(context)
        if cluster is None:
            return self._finished_cluster
        deadline = None
        if isinstance(self.execution_timeout, timedelta):
            deadline = time.time() + self.execution_timeout.total_seconds()
        self.defer(
            trigger=HTCondorClusterTrigger(
                cluster,
                self.htcondor_conn_id,
                self.poll_interval,
                self.unreachable_timeout,
                deadline,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> int:
        cluster = int(event["cluster_id"])
        if event.get("status") != "success":
            raise AirflowException(event.get("message") or f"cluster {cluster} failed")
        self.log.info("%s", event.get("message"))
        return cluster

    def on_kill(self) -> None:
        if self._cluster_id is not None:
            self.log.info("removing cluster %s", self._cluster_id)
            self.htcondor.remove(self._cluster_id, "Airflow task was killed")

    # ----- submission, once per task instance -----
    def _reuse_or_submit(self, context: Context) -> int | None:
        """The cluster to wait for; None when an earlier try's cluster already succeeded."""
        cluster, state = self._cluster_for(context)
        if state == SUCCEEDED:
            self._finished_cluster = cluster
            return None
        return cluster

    def _cluster_for(self, context: Context) -> tuple[int, str]:
        """This task instance's cluster: an earlier try's if it is running or succeeded (found by
        its key in the queue or the history), else a fresh submission."""
        key = task_key(context)
        previous = self._call(lambda: self.htcondor.find_cluster(TASK_KEY_ATTRIBUTE, key))
        self._newest_seen = previous
        if previous is not None:
            state = self.get_job_status(previous, context)
            if state in (ACTIVE, SUCCEEDED):
                self.log.info(
                    "cluster %s of an earlier try is %s; not submitting again",
                    previous,
                    state.lower(),
                )
                return self._remember(previous, context), state
            self.log.info("cluster %s of an earlier try failed; submitting afresh", previous)
        return self._remember(self._submit(context), context), ACTIVE

    def _remember(self, cluster: int, context: Context) -> int:
        self._cluster_id = cluster
        context["ti"].xcom_push(key="cluster_id", value=cluster)
        store = context.get("task_state_store")
        if store is not None:
            store.set(self.external_id_key, cluster)
        return cluster

    def _call(self, call: Any) -> Any:
        """A blip in reaching the schedd is retried with backoff before the task fails."""
        return retry(
            retry=retry_if_exception_type(PoolUnavailable),
            wait=self.retry_wait,
            stop=stop_after_delay(self.unreachable_timeout),
            reraise=True,
        )(call)()

    # ----- ResumableJobMixin -----
    def submit_job(self, context: Context) -> int:
        return self._cluster_for(context)[0]

    def _submit(self, context: Context) -> int:
        """Submit once. After a lost answer the next attempt first looks for the cluster by its
        key and adopts it if it landed; the raw submit is repeated only when that lookup answered
        and found nothing. Attempts share the one backoff of `_call`."""
        items = [{k: str(v) for k, v in item.items()} for item in self.itemdata or []] or None
        key = task_key(context)
        lost = False

        def attempt() -> int:
            nonlocal lost
            if lost:
                landed = self._landed(key)  # cannot look: PoolUnavailable, retried, no submit
                if landed is not None:
                    self.log.info("the lost submit did land as cluster %s; adopting it", landed)
                    return landed
                lost = False
                self.log.info("no cluster landed for %s; submitting again", key)
            try:
                return int(
                    self.htcondor.submit(self.submit_description, items, {TASK_KEY_ATTRIBUTE: key})
                )
            except PoolUnavailable as exc:
                lost = True
                self.log.warning("submit for %s got no answer (%s); looking for it next", key, exc)
                raise

        cluster: int = self._call(attempt)
        self.log.info(
            "cluster %s (%s job(s)) for %s",
            cluster,
            len(items) if items else "the description's",
            key,
        )
        return cluster

    def _landed(self, key: str) -> int | None:
        """A cluster with this key newer than any earlier try's: the lost submit, if it landed.
        Looked for twice, the second time after the pool's call timeout, so that a submit still
        in flight when its answer was given up on has committed or been abandoned."""
        older = self._newest_seen
        constraint = f"{TASK_KEY_ATTRIBUTE} =?= {classad2.quote(key)}"
        for look in range(2):
            if look:
                time.sleep(self.htcondor.config.timeout_seconds)
            clusters = self.htcondor.find_clusters(constraint)
            newer = [c for c in clusters if older is None or c > older]
            if newer:
                return int(newer[-1])
        return None

    def get_job_status(self, external_id: Any, context: Context) -> str:
        return state_of(self._call(lambda: self.htcondor.job_status(int(external_id))))

    def is_job_active(self, status: str) -> bool:
        return status == ACTIVE

    def is_job_succeeded(self, status: str) -> bool:
        return status == SUCCEEDED

    def poll_until_complete(self, external_id: Any, context: Context) -> None:
        cluster = int(external_id)
        self._remember(cluster, context)
        while True:
            status = self._call(lambda: self.htcondor.job_status(cluster))
            if status.done:
                if status.failed_jobs:
                    raise AirflowException(describe(status))
                return
            time.sleep(self.poll_interval)

    def get_job_result(self, external_id: Any, context: Context) -> int:
        return int(external_id)
