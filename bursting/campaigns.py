"""Wiring for a campaign's cost: its jobs from the pool, prices from the config, worker lifetimes
from the store, priced by the pure bursting.policy.cost. Shared by `bursting cost` and the DAG."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from bursting.config import Config
from bursting.model import CampaignJob, Flavor, Instance
from bursting.policy.cost import CampaignCost, campaign_cost, check_campaign


class CampaignJobs(Protocol):
    def campaign_jobs(self, campaign: str, now: float | None = None) -> tuple[CampaignJob, ...]: ...


def price_list(config: Config) -> dict[str, list[Flavor]]:
    """Each configured cloud's flavors (disabled clouds too: their past jobs still cost)."""
    return {cloud.name: [f.to_flavor() for f in cloud.flavors] for cloud in config.clouds}


def stored_instances(config: Config, ids: set[str]) -> list[Instance]:
    """The store's records of these instances, gone ones included. A store that does not exist
    yet is not created for a read: no records, so no busy share."""
    url = config.store.url
    path = url.removeprefix("sqlite://").removeprefix("/")
    if not ids or not path or not Path(path).expanduser().exists():
        return []
    from bursting.store import open_store

    store = open_store(url)
    return [i for i in store.instances(include_gone=True) if i.id in ids]


def read_campaign_cost(
    config: Config, pool: CampaignJobs, campaign: str, now: float | None = None
) -> CampaignCost:
    """The campaign's cost now; UnknownCampaign if no job carries its name, PoolUnavailable if
    the schedd cannot be read."""
    at = time.time() if now is None else now
    jobs = pool.campaign_jobs(check_campaign(campaign), at)
    ids = {job.instance for job in jobs if job.instance is not None}
    return campaign_cost(
        campaign,
        jobs,
        price_list(config),
        stored_instances(config, ids),
        at,
        config.policy.spend.currency,
    )
