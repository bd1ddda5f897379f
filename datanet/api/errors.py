"""Errors of the control API's HTTP layer, and the code ↔ class ↔ status tables.

Every error body the API sends is ``{"error": {"code": str, "message": str}}``. The
``code`` is the ``.code`` of a :class:`~datanet.errors.DatanetError` class, so the
client turns it back into the same exception class the node raised.

Invariants:
* This module imports no web framework and no HTTP client: the server
  (:mod:`datanet.api.app`) and the client (:mod:`datanet.client`) share it.
* :func:`status_for` maps every :class:`DatanetError` to exactly one HTTP status;
  errors caused by the request are 4xx, failures of the node or the network 5xx.
* :func:`error_class_for` never fails: an unknown code becomes :class:`ApiError`.
"""

from __future__ import annotations

from datanet.errors import (
    DatanetError,
    InvalidInput,
    KeystoreError,
    NetworkError,
    NotFound,
    RecordTooLarge,
    StorageError,
    Timeout,
    VerificationError,
)

__all__ = [
    "ApiError",
    "BodyTooLarge",
    "DaemonUnreachable",
    "InternalError",
    "InvalidJson",
    "InvalidRequest",
    "MethodNotAllowed",
    "Unauthorized",
    "UnknownEndpoint",
    "UnsupportedMediaType",
    "error_class_for",
    "status_for",
]


class ApiError(DatanetError):
    """Raised for a failure of the control API itself rather than of the node."""

    code = "api_error"
    status = 500


class Unauthorized(ApiError):
    """Raised when the bearer token is missing or wrong; nothing was done."""

    code = "unauthorized"
    status = 401


class UnknownEndpoint(ApiError):
    """Raised when no API endpoint has the requested path."""

    code = "unknown_endpoint"
    status = 404


class MethodNotAllowed(ApiError):
    """Raised when an endpoint is called with the wrong HTTP method."""

    code = "method_not_allowed"
    status = 405


class InvalidRequest(ApiError, InvalidInput):
    """Raised when a request body does not match the endpoint's schema."""

    code = "invalid_request"
    status = 400


class InvalidJson(InvalidRequest):
    """Raised when a JSON endpoint's body is not a JSON object."""

    code = "invalid_json"


class BodyTooLarge(InvalidRequest):
    """Raised when a request body exceeds ``api.max_body_bytes``."""

    code = "body_too_large"
    status = 413


class UnsupportedMediaType(InvalidRequest):
    """Raised when the request's Content-Type is not the one the endpoint takes."""

    code = "unsupported_media_type"
    status = 415


class InternalError(ApiError):
    """Raised (client side) when the daemon hit a bug; the daemon's log has details."""

    code = "internal_error"
    status = 500


class DaemonUnreachable(NetworkError):
    """Raised by the client when no daemon answers at the API address."""

    code = "daemon_unreachable"


_STATUS_BY_CODE = {"rate_limited": 429}


def status_for(exc: DatanetError) -> int:
    """The HTTP status that reports ``exc``.

    Request problems are 4xx (400 malformed, 404 not found, 413 too large, 422 a
    failed verification, 429 rate limited); node-side failures are 5xx (502 a peer
    failed, 504 a timeout, 500 storage, keystore or anything unclassified).
    """
    if isinstance(exc, ApiError):
        return exc.status
    if exc.code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[exc.code]
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, RecordTooLarge):
        return 413
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, VerificationError):
        return 422
    if isinstance(exc, Timeout):
        return 504
    if isinstance(exc, NetworkError):
        return 502
    if isinstance(exc, StorageError | KeystoreError):
        return 500
    return 500


def _all_subclasses(cls: type[DatanetError]) -> list[type[DatanetError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


def error_class_for(code: str) -> type[DatanetError]:
    """The exception class whose ``code`` is ``code`` (:class:`ApiError` if none is).

    Classes are looked up among every loaded :class:`DatanetError` subclass, so an
    area's own errors (``ConfigError``, ``UnknownAlias``…) come back as themselves.
    """
    for cls in _all_subclasses(DatanetError):
        if cls.__dict__.get("code") == code:
            return cls
    return ApiError
