"""Turning HTTP provider failures into :class:`~rlmx.errors.ProviderError` (private).

Every provider client maps its SDK's exceptions through :func:`http_error` /
:func:`transport_error`, so retry policy and fix-it messages are the same everywhere:

* retryable: 408, 409, 429, every 5xx, timeouts, connection errors;
* not retryable: other 4xx (400 bad request, 401 bad key, 403 no access, 404 unknown
  model or deployment, 413/422 request too large or malformed), with a message saying
  how to fix it.

A ``Retry-After`` hint from the server (seconds, ``retry-after-ms`` milliseconds or an
HTTP date) is attached as the attribute ``retry_after_s`` (float seconds) of the
ProviderError; :func:`retry_after_of` reads it back (None when absent). Wrappers such as
:class:`~rlmx.lm.wrappers.RetryingLM` honour it.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from rlmx.errors import ProviderError

__all__ = [
    "RETRYABLE_STATUSES",
    "http_error",
    "is_retryable_status",
    "parse_retry_after",
    "retry_after_of",
    "transport_error",
]

RETRYABLE_STATUSES = frozenset({408, 409, 429})


def is_retryable_status(status: int) -> bool:
    """True for 408, 409, 429 and every 5xx (transient by HTTP convention)."""
    return status in RETRYABLE_STATUSES or status >= 500


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date).

    Returns None when absent or unparsable; negative values become 0.
    """
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    ms = lowered.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retry_after_of(exc: BaseException) -> float | None:
    """The ``retry_after_s`` hint (seconds) carried by a ProviderError, or None."""
    value = getattr(exc, "retry_after_s", None)
    return float(value) if isinstance(value, int | float) else None


def _with_retry_after(err: ProviderError, retry_after_s: float | None) -> ProviderError:
    setattr(err, "retry_after_s", retry_after_s)  # noqa: B010 - documented extra attribute
    return err


def http_error(
    label: str,
    status: int,
    detail: str,
    *,
    hints: Mapping[int, str] | None = None,
    retry_after_s: float | None = None,
) -> ProviderError:
    """A ProviderError for an HTTP error response.

    ``label`` names the call (``"openai:gpt-5 at https://..."``); ``detail`` is the
    server's message; ``hints`` maps status codes to how-to-fix sentences.
    """
    retryable = is_retryable_status(status)
    hint = (hints or {}).get(status)
    if hint is None:
        if status == 429:
            hint = "rate limited; retry later or lower RLMX_MAX_CONCURRENCY"
        elif status >= 500:
            hint = "the provider had a server error; retry later"
        elif status in (413, 422):
            hint = "the request is too large or malformed for this model"
    message = f"{label}: HTTP {status}: {detail.strip() or 'no detail'}"
    if hint:
        message += f" ({hint})"
    err = ProviderError(message, status=status, retryable=retryable)
    return _with_retry_after(err, retry_after_s)


def transport_error(label: str, exc: BaseException, *, timeout: bool) -> ProviderError:
    """A retryable ProviderError for a timeout or a connection failure (no HTTP status)."""
    kind = "timed out" if timeout else "could not connect"
    hint = (
        "raise RLMX_REQUEST_TIMEOUT_S or check the server"
        if timeout
        else "check the base URL / endpoint and your network"
    )
    err = ProviderError(f"{label}: request {kind}: {exc} ({hint})", status=None, retryable=True)
    return _with_retry_after(err, None)
