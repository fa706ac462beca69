"""The WorkerSpec each new instance boots with, from the `workers:` section and its cloud."""

from __future__ import annotations

import os
import threading

from bursting.config import Config, TokenSource
from bursting.errors import ConfigError
from bursting.model import Flavor, Secret, WorkerSpec


def read_token(source: TokenSource, field: str = "workers.token", what: str = "token") -> Secret:
    """A secret workers need (the pool token, the admin key); a clear error naming the config
    field if it is absent."""
    if source.env is not None:
        value = os.environ.get(source.env, "")
        if not value.strip():
            raise ConfigError(
                f"{field}.env",
                [f"environment variable {source.env} is empty or unset; export the pool {what}"],
            )
        return Secret(value.strip())
    assert source.file is not None
    try:
        value = source.file.read_text()
    except OSError as exc:
        raise ConfigError(
            f"{field}.file",
            [
                f"{source.file} cannot be read ({exc.strerror}); create it "
                "(`bursting devpool up` writes one for the personal pool)"
            ],
        ) from None
    if not value.strip():
        raise ConfigError(f"{field}.file", [f"{source.file} is empty; put the {what} in it"])
    return Secret(value.strip())


def idle_shutdown_seconds(config: Config) -> int:
    """Workers shut themselves down well after the controller would have drained them."""
    if config.workers.idle_shutdown_seconds is not None:
        return config.workers.idle_shutdown_seconds
    policy = config.policy
    return int(max(60.0, 3 * policy.idle_seconds + 2 * policy.interval_seconds))


class WorkerFactory:
    """Builds the WorkerSpec for an instance; the token is read once, when first needed."""

    def __init__(
        self, config: Config, token: Secret | None = None, admin_key: Secret | None = None
    ) -> None:
        self.config = config
        self._token = token
        self._admin_key = admin_key
        self._lock = threading.Lock()

    def token(self) -> Secret:
        with self._lock:
            if self._token is None:
                self._token = read_token(self.config.workers.token)
            return self._token

    def admin_key(self) -> Secret | None:
        """The drain-token signing key for workers, if one is configured (read once)."""
        source = self.config.workers.admin_key
        with self._lock:
            if self._admin_key is None and source is not None:
                self._admin_key = read_token(source, "workers.admin_key", "admin key")
            return self._admin_key

    def __call__(self, instance_id: str, cloud: str, flavor: Flavor) -> WorkerSpec:
        workers = self.config.workers
        return WorkerSpec(
            pool_id=self.config.pool.id,
            instance_id=instance_id,
            cloud=cloud,
            flavor=flavor,
            collector=workers.collector or self.config.pool.collector,
            token=self.token(),
            uid_domain=workers.uid_domain,
            admin_identity=workers.admin_identity,
            idle_shutdown_seconds=idle_shutdown_seconds(self.config),
            job_retirement_seconds=workers.retirement_seconds,
            extra_attrs={**workers.attributes, **self.config.cloud(cloud).provides},
            admin_key=self.admin_key(),
        )
