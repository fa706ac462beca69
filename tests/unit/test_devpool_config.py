"""The personal pool's central manager: ads of dead nodes go within minutes, live ones stay."""

from __future__ import annotations

from bursting.devpool.condor_config import central_manager
from bursting.devpool.containers import platform_config


def settings(config: str) -> dict[str, str]:
    """KEY = value lines as HTCondor reads them: the last assignment wins."""
    found: dict[str, str] = {}
    for line in config.splitlines():
        key, equals, value = line.partition("=")
        if equals and not line.lstrip().startswith("#") and " " not in key.strip():
            found[key.strip()] = value.strip()
    return found


def test_a_silent_ad_expires_only_after_many_missed_updates_and_within_minutes() -> None:
    manager = settings(central_manager({}, "admin@bursting.devpool"))
    node = settings(platform_config())
    lifetime = int(manager["CLASSAD_LIFETIME"])
    update = int(manager["UPDATE_INTERVAL"])
    assert int(node["UPDATE_INTERVAL"]) == update  # the nodes' startds and masters
    assert 10 * update <= lifetime <= 120
    # Daemons that update on their own clock must do so well within the lifetime too.
    assert manager["NEGOTIATOR_UPDATE_INTERVAL"] == "$(UPDATE_INTERVAL)"
    assert 2 * int(manager["COLLECTOR_UPDATE_INTERVAL"]) <= lifetime
