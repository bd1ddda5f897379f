"""Errors of the control API's HTTP layer and the status each error is reported with.

Every error body the API sends is ``{"error": {"code": str, "message": str}}``. The
``code`` is the ``.code`` of a :class:`~datanet.errors.DatanetError` class, so the
client turns it back into the same exception class the node raised
(:func:`datanet.errors.error_class_for_code`).

Invariants:
* This module imports no web framework and no HTTP client: the server
  (:mod:`datanet.api.app`) and the client (:mod:`datanet.client`) share it.
* :func:`status_for` maps every :class:`DatanetError` to exactly one HTTP status;
  errors caused by the request are 4xx, failures of the node or the network 5xx.
* The API's error classes are defined in :mod:`datanet.errors` (next to the code ->
  class registry, :data:`datanet.errors.ERRORS_BY_CODE`) and re-exported here.
"""

from __future__ import annotations

from datanet.errors import (
    ApiError,
    BodyTooLarge,
    DaemonUnreachable,
    DatanetError,
    InternalError,
    InvalidInput,
    InvalidJson,
    InvalidRequest,
    KeystoreError,
    MethodNotAllowed,
    NetworkError,
    NotFound,
    RecordTooLarge,
    StorageError,
    Timeout,
    Unauthorized,
    UnknownEndpoint,
    UnsupportedMediaType,
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
    "status_for",
]


_STATUS_BY_CODE = {
    "rate_limited": 429,
    # access requests: refused by policy or role (403), a duplicate (409), no way there (502)
    "grant_revoked": 403,
    "not_a_gateway": 403,
    "egress_required": 403,
    "replayed_request": 409,
    "conflict": 409,
    "no_route": 502,
}


def status_for(exc: DatanetError) -> int:
    """The HTTP status that reports ``exc``.

    Request problems are 4xx (400 malformed, 403 refused by role or
    revocation, 404 not found, 409 a replayed request or a decision already
    made, 413 too large, 422 a failed verification, 429 rate limited);
    node-side failures are 5xx (502 a peer failed, 504 a timeout, 500 storage,
    keystore or anything unclassified).
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
