"""Servers a failed OpenStack test leaves behind, deleted before the next test starts.

A test that fails mid-burst stops its controller but not its servers; left running they hold the
project's instance quota, and every later test in the project fails on "Quota exceeded" instead of
on its own merits. Each module names its servers with its own prefix, so one regex finds them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tests.integration.test_htcondor_pool import wait_for


def servers_named(admin: Any, name_regex: str) -> list[Any]:
    """Every server in any project whose name matches (Nova's name filter is a regex)."""
    return list(admin.compute.servers(details=True, all_projects=True, name=name_regex))


def delete_servers(admin: Any, name_regex: str, timeout: float = 120) -> list[str]:
    """Delete the matching servers and wait until Nova lists none; their names, for the log."""
    found = servers_named(admin, name_regex)
    for server in found:
        admin.compute.delete_server(server.id, ignore_missing=True)
    if found:
        wait_for(
            f"servers matching {name_regex} deleted",
            lambda: not servers_named(admin, name_regex),
            timeout=timeout,
            every=1,
        )
    return sorted(server.name for server in found)


def cleaned_after(devcloud: Any, name_regex: str) -> Iterator[Any]:
    """For a fixture: the admin connection; after the test, what it left in Nova deleted."""
    from bursting.devcloud import ADMIN_CLOUD, connect

    admin = connect(devcloud.clouds_yaml, ADMIN_CLOUD)
    yield admin
    left = delete_servers(admin, name_regex)
    if left:
        print(f"deleted servers the test left behind: {left}")
