"""The service's errors: each carries the HTTP status it is answered with (400, 403, 404,
409, 413, 429; 503 for a fault of the server, whose detail goes to the server's log, not
to the client) and a message saying what to do. They descend from
:class:`rlmx.errors.RlmxError`, so a catch-all for rlmx errors sees them too; handlers that
answer a :class:`ServiceError` with its own status must therefore come first."""

from __future__ import annotations

from ..errors import RlmxError

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "ServiceError",
    "TooLarge",
    "TooMany",
    "Unavailable",
]


class ServiceError(RlmxError):
    """An error answered to the client with ``status`` and a message saying what to do."""

    status = 400

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers


class BadRequest(ServiceError):
    status = 400


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class TooLarge(ServiceError):
    status = 413


class TooMany(ServiceError):
    status = 429


class Unavailable(ServiceError):
    """The server cannot serve the request (its own configuration or dependencies): a
    generic message for the client; the detail is logged on the server."""

    status = 503
