"""Kubernetes API errors, translated at the provider's edge into the project's error classes.

The client raises `kubernetes.client.ApiException` (and its 4xx subclasses) for answers, carrying
the server's `Status` object as JSON in its body; a cluster that is down, refusing or frozen
surfaces as urllib3's errors instead. Messages pass through the redactor: the API token must
never reach a log.
"""

from __future__ import annotations

import json
from typing import Any

from bursting.clouds.openstack_errors import Redactor
from bursting.errors import (
    AuthError,
    BurstingError,
    CloudUnavailable,
    PermanentError,
    QuotaExceeded,
    TransientError,
)

DEFAULT_RETRY_SECONDS = 15.0


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) and status > 0 else None


def message_of(exc: BaseException) -> str:
    """The Status object's message when the server sent one, else the exception's text."""
    body = getattr(exc, "body", None)
    if body:
        try:
            decoded: Any = json.loads(body)
        except (TypeError, ValueError):
            decoded = None
        if isinstance(decoded, dict) and decoded.get("message"):
            return str(decoded["message"])
    reason = getattr(exc, "reason", None)
    text = str(reason) if reason and status_of(exc) else str(exc)
    text = " ".join(text.split())
    return text[:500] if text else type(exc).__name__


def retry_after(exc: BaseException) -> float | None:
    """The Retry-After seconds the API server sent (it sends seconds, with 429 and 5xx)."""
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def is_quota_refusal(status: int | None, message: str) -> bool:
    """The ResourceQuota admission's 403: "exceeded quota: <name>, requested: ..."."""
    return status == 403 and "exceeded quota" in message.lower()


def translate(exc: BaseException, cloud: str, operation: str, redact: Redactor) -> BurstingError:
    """The project's error for one failed call; `operation` names what was asked."""
    if isinstance(exc, BurstingError):
        return exc
    status = status_of(exc)
    where = f"{cloud}: {operation}"
    text = redact(message_of(exc))
    if status is None:
        # Refused, reset, DNS, TLS, connect or read timeout: the API is not there now.
        return CloudUnavailable(
            f"{where}: API unreachable: {type(exc).__name__}: {text}", DEFAULT_RETRY_SECONDS
        )
    if status == 401:
        return AuthError(
            f"{where}: the cluster refused our credentials (401); check the kubeconfig's user "
            "or the ServiceAccount token (expired or revoked)"
        )
    if is_quota_refusal(status, text):
        return QuotaExceeded(f"{where}: {text}", retry_after(exc))
    if status == 403:
        return AuthError(
            f"{where}: not allowed (403): {text}; the ServiceAccount's Role must grant it "
            "(the Helm chart's Role lists what the provider calls)"
        )
    if status == 410:
        return TransientError(f"{where}: the resource version is too old (410): {text}", 1.0)
    if status == 429:
        return TransientError(f"{where}: rate limited: {text}", retry_after(exc) or 30.0)
    if status >= 500:
        return CloudUnavailable(
            f"{where}: server error {status}: {text}", retry_after(exc) or DEFAULT_RETRY_SECONDS
        )
    return PermanentError(f"{where}: refused ({status}): {text}")
