"""Errors that say whether to retry; SDK and binding errors become these at the edge."""

from __future__ import annotations


class BurstingError(Exception):
    """Base of every error the project raises on purpose."""


class TransientError(BurstingError):
    """Worth retrying, after `retry_after` seconds if the remote side said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(BurstingError):
    """Retrying the same call will fail the same way; the input or the setup must change."""


class QuotaExceeded(TransientError):
    """The cloud refused for quota; capacity may come back when instances are deleted."""


class CloudUnavailable(TransientError):
    """A cloud's API could not be reached or answered with a server error."""


class PoolUnavailable(TransientError):
    """The schedd or collector could not be read; never treat this as an empty pool."""


class ConfigError(PermanentError):
    """A configuration file or argument is invalid; `problems` lists each one with its fix."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class AuthError(PermanentError):
    """A daemon refused our credentials (a corrupted, revoked or foreign token); never logs it."""


class SubmitError(PermanentError):
    """A submit description or its item data was rejected before anything was queued."""


class UnknownCampaign(PermanentError):
    """No job of this campaign is in the queue or the history (or its name is not one)."""


class DevPoolError(PermanentError):
    """The personal development pool cannot be built, started or used as asked."""


class ImageError(PermanentError):
    """The worker image cannot be built or inspected; the message says what to run."""
