"""OpenStack's errors, translated at the provider's edge into the project's error classes.

openstacksdk raises `openstack.exceptions.HttpException` subclasses for answers, but a cloud that
is down or frozen surfaces as keystoneauth1's `ConnectFailure` / `ConnectTimeout`, which are not
`openstack.exceptions` classes; both families are handled here. Messages are passed through a
redactor: an SDK message may quote a request, and credentials must never reach a log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from keystoneauth1 import exceptions as ksa
from openstack import exceptions as sdk
from tenacity import retry, retry_if_exception_type, stop_after_attempt

from bursting.errors import (
    AuthError,
    BurstingError,
    CloudUnavailable,
    PermanentError,
    QuotaExceeded,
    TransientError,
)

# How long a cloud whose API failed is left alone when it did not say (Retry-After).
DEFAULT_RETRY_SECONDS = 15.0


class Redactor:
    """Replaces each known secret (password, application credential secret, token) by ****."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "********")
        return text

    @classmethod
    def for_auth(cls, auth: dict[str, Any]) -> Redactor:
        keys = ("password", "application_credential_secret", "token", "secret")
        return cls(str(auth[key]) for key in keys if auth.get(key))


T = TypeVar("T")


@retry(retry=retry_if_exception_type(ksa.ConnectFailure), stop=stop_after_attempt(2), reraise=True)
def once_more_if_dropped(call: Callable[[], T]) -> T:
    """Run a read, and once more at once if the connection failed under it.

    An API server closes a keep-alive connection idle for its timeout (Apache's is 5 s,
    gunicorn's 2 s); a request sent on it at that moment comes back as "connection reset" though
    the server never read it. A fresh connection answers at once; a cloud that is really down
    refuses that one too, and then the error stands. A timeout is not retried: it would double
    the wait on a frozen API.
    """
    return call()


def is_quota_text(text: str | None) -> bool:
    return bool(text) and "quota exceeded" in (text or "").lower()


def is_quota_fault(fault: dict[str, Any] | None) -> bool:
    """Nova's fault on a server refused by the quota recheck after a racing create: code 403
    or 413 and "Quota exceeded ..." (the API had already answered 202)."""
    if not fault:
        return False
    return fault.get("code") in (403, 413) and is_quota_text(str(fault.get("message", "")))


def fault_text(fault: dict[str, Any] | None) -> str:
    if not fault:
        return "ERROR (the cloud gave no fault)"
    code = fault.get("code")
    message = str(fault.get("message") or "").strip() or "no message"
    return f"{message} (fault {code})" if code else message


def retry_after(exc: BaseException) -> float | None:
    """The Retry-After the cloud sent (seconds or an HTTP date), if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            moment = parsedate_to_datetime(str(value))
        except (TypeError, ValueError):
            return None
        date = response.headers.get("Date") if response is not None else None
        now = parsedate_to_datetime(date) if date else None
        return max(0.0, (moment - now).total_seconds()) if now else None


def translate(exc: BaseException, cloud: str, operation: str, redact: Redactor) -> BurstingError:
    """The project's error for one failed call; `operation` names what was asked."""
    if isinstance(exc, BurstingError):
        return exc
    text = redact(_message(exc))
    where = f"{cloud}: {operation}"
    status = _status(exc)
    # Refused, reset, DNS, connect or read timeout: the API is not there now.
    if isinstance(exc, (ksa.ConnectionError, ksa.RetriableConnectionFailure)):
        return CloudUnavailable(f"{where}: API unreachable: {text}", DEFAULT_RETRY_SECONDS)
    if status == 401 or isinstance(exc, ksa.Unauthorized):
        return AuthError(
            f"{where}: the cloud refused our credentials (401); check the clouds.yaml entry's "
            "application credential or password (expired, deleted or wrong project)"
        )
    if status in (403, 413) and is_quota_text(text):
        return QuotaExceeded(f"{where}: {text}", retry_after(exc))
    if status == 429:
        return TransientError(f"{where}: rate limited: {text}", retry_after(exc) or 30.0)
    if status is not None and status >= 500:
        return CloudUnavailable(
            f"{where}: server error {status}: {text}", retry_after(exc) or DEFAULT_RETRY_SECONDS
        )
    if status == 403:
        return AuthError(f"{where}: not allowed (403): {text}; check the project's roles")
    if status is not None and 400 <= status < 500:
        return PermanentError(f"{where}: refused ({status}): {text}")
    if isinstance(exc, (ksa.ClientException, sdk.SDKException)):
        # Discovery failures, endpoint lookups, SDK timeouts: nothing usable came back.
        return CloudUnavailable(f"{where}: {type(exc).__name__}: {text}", DEFAULT_RETRY_SECONDS)
    return CloudUnavailable(f"{where}: {type(exc).__name__}: {text}", DEFAULT_RETRY_SECONDS)


def _status(exc: BaseException) -> int | None:
    for name in ("status_code", "http_status"):
        value = getattr(exc, name, None)
        if isinstance(value, int):
            return value
    return None


def _message(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    text = str(details) if details else str(exc)
    text = " ".join(text.split())
    return text[:500] if text else type(exc).__name__
