"""HTCondorHook: an Airflow connection turned into the project's HTCondor backend.

Connection: host and port of the collector, the schedd name and a timeout as extra fields, and
the IDTOKEN in the password field. The token is written to a private 0600 file for the bindings
(which offer each daemon only tokens of its own trust domain, so several pools can share a
process) and never logged. Without a token, the default token directory is used.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook, Connection

from bursting.config import PoolConfig
from bursting.errors import AuthError, PoolUnavailable
from bursting.pool.htcondor import HTCondorPool

DEFAULT_PORT = 9618
_TOKEN_DIRS: dict[str, Path] = {}


def _token_dir(token: str) -> Path:
    """A private directory holding just this token (0700 dir, 0600 file), reused per token."""
    key = hashlib.sha256(token.encode()).hexdigest()[:16]
    if key not in _TOKEN_DIRS:
        directory = Path(tempfile.mkdtemp(prefix="bursting-token-"))
        directory.chmod(0o700)
        fd = os.open(directory / "airflow", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token.strip() + "\n")
        _TOKEN_DIRS[key] = directory
        atexit.register(shutil.rmtree, directory, True)
    return _TOKEN_DIRS[key]


def pool_config(connection: Connection) -> PoolConfig:
    """The backend's settings from a connection (sync and async callers share this)."""
    extra: dict[str, Any] = connection.extra_dejson or {}
    values: dict[str, Any] = {
        "collector": f"{connection.host or '127.0.0.1'}:{connection.port or DEFAULT_PORT}",
        "schedd": extra.get("schedd") or None,
    }
    if extra.get("timeout"):
        values["timeout_seconds"] = float(extra["timeout"])
    if connection.password:
        values["token_dir"] = _token_dir(connection.password)
    return PoolConfig(**values)


def pool_from(connection: Connection) -> HTCondorPool:
    return HTCondorPool(pool_config(connection), token=(connection.password or "").strip() or None)


class HTCondorHook(BaseHook):
    """Talk to an HTCondor pool through the project's backend (one client, not two)."""

    conn_name_attr = "htcondor_conn_id"
    default_conn_name = "htcondor_default"
    conn_type = "htcondor"
    hook_name = "HTCondor"

    def __init__(self, htcondor_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.htcondor_conn_id = htcondor_conn_id
        self._pool: HTCondorPool | None = None

    def get_conn(self) -> HTCondorPool:
        """The pool client, built once per hook."""
        if self._pool is None:
            self._pool = pool_from(self.get_connection(self.htcondor_conn_id))
        return self._pool

    @classmethod
    async def apool(cls, conn_id: str) -> HTCondorPool:
        """For triggers: the connection is fetched without blocking the event loop."""
        return pool_from(await cls.aget_connection(conn_id))

    def test_connection(self) -> tuple[bool, str]:
        """The UI's "Test": an authenticated ping of the schedd with the connection's token, as
        reading the queue needs no login and would pass with a token the schedd refuses."""
        try:
            pool = self.get_conn()
            identity = pool.authenticate("WRITE")
        except (AuthError, PoolUnavailable) as exc:
            return False, str(exc)
        except Exception as exc:  # the UI shows the message; keep it to one safe line
            return False, f"{type(exc).__name__}: connection test failed"
        return True, f"schedd accepts the token for submitting, as {identity}"
