"""Where the page reads from: the controller's /status address, the pool's Airflow connection,
which DAGs run campaigns. Read from Airflow's config section `[bursting]` and the `htcondor`
connection's extra field `controller`, once per request (so an edited connection takes effect).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_CONN_ID = "htcondor_default"
DEFAULT_CAMPAIGN_DAGS = ("mc_production",)
DEFAULT_RESULTS = "/var/tmp/bursting/results"
SECTION = "bursting"


@dataclass(frozen=True)
class UISettings:
    """`controller`: the /status URL, or None when neither the connection nor the config names
    one. `config_path`: the controller's YAML (prices for the campaign cost), if readable here."""

    controller: str | None = None
    htcondor_conn_id: str = DEFAULT_CONN_ID
    campaign_dags: tuple[str, ...] = DEFAULT_CAMPAIGN_DAGS
    config_path: Path | None = None
    refresh_seconds: int = 15
    sample_seconds: float = 30.0  # the chart's pool samples between page views; 0: off
    timeout_seconds: float = 3.0
    notes: tuple[str, ...] = field(default=())


def status_url(address: str) -> str:
    """`host:port`, `http(s)://host:port` or a full `.../status` URL -> the /status URL.
    A wildcard host (the controller's own `metrics.listen`) is reached on the loopback."""
    text = address.strip()
    if "://" not in text:
        text = f"http://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"controller address {display_url(address)!r} must be host:port or an http(s) URL"
        )
    netloc = parts.netloc
    if parts.hostname in ("0.0.0.0", "::"):
        netloc = netloc.replace("0.0.0.0", "127.0.0.1").replace("[::]", "127.0.0.1")
    path = parts.path.rstrip("/")
    if not path.endswith("/status"):
        path += "/status"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def display_url(url: str) -> str:
    """A URL as the page may show it: any user:password@ part removed."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", "")) if "://" in url else host


def settings_from_airflow() -> UISettings:
    """The settings as this Airflow deployment configures them (see README: "The Airflow UI")."""
    from airflow.configuration import conf

    conn_id = conf.get(SECTION, "htcondor_conn_id", fallback=DEFAULT_CONN_ID) or DEFAULT_CONN_ID
    notes: list[str] = []
    controller = _connection_controller(conn_id, notes) or conf.get(
        SECTION, "controller", fallback=None
    )
    dags = conf.get(SECTION, "campaign_dags", fallback="") or ",".join(DEFAULT_CAMPAIGN_DAGS)
    config = conf.get(SECTION, "config_file", fallback=None) or os.environ.get("BURSTING_CONFIG")
    url = None
    if controller:
        try:
            url = status_url(controller)
        except ValueError as exc:
            notes.append(str(exc))
    return UISettings(
        controller=url,
        htcondor_conn_id=conn_id,
        campaign_dags=tuple(d.strip() for d in dags.split(",") if d.strip()),
        config_path=Path(config) if config else None,
        refresh_seconds=conf.getint(SECTION, "refresh_seconds", fallback=15),
        sample_seconds=_sample_seconds(conf.getfloat(SECTION, "sample_seconds", fallback=30.0)),
        notes=tuple(notes),
    )


def _sample_seconds(value: float) -> float:
    """0 or less switches sampling off; otherwise at least every 5 s, never a busy loop."""
    return 0.0 if value <= 0 else max(5.0, value)


def _connection_controller(conn_id: str, notes: list[str]) -> str | None:
    """The `controller` extra of the pool's connection; None (with a note) if it is missing."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        extra = BaseHook.get_connection(conn_id).extra_dejson or {}
    except AirflowNotFoundException:
        notes.append(f"the Airflow connection {conn_id!r} is not defined")
        return None
    value = extra.get("controller")
    return str(value) if value else None
