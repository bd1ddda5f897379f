"""Errors of the control API's HTTP layer, and the code ↔ class ↔ status tables.

Every error body the API sends is ``{"error": {"code": str, "message": str}}``. The
``code`` is the ``.code`` of a :class:`~datanet.errors.DatanetError` class, so the
client turns it back into the same exception class the node raised.

Invariants:
* This module imports no web framework and no HTTP client: the server
  (:mod:`datanet.api.app`) and the client (:mod:`datanet.client`) share it.
* :func:`status_for` maps every :class:`DatanetError` to exactly one HTTP status;
  errors caused by the request are 4xx, failures of the node or the network 5xx.
* :data:`ERRORS_BY_CODE` is an explicit table, not a walk over whatever subclasses
  happen to be imported: the client maps a code to the same class whichever
  modules it loaded. Every coded :class:`DatanetError` subclass is either in it or
  named, with the reason, in :data:`CODES_NOT_MAPPED` (a unit test checks both).
* :func:`error_class_for_code` never fails: an unknown code becomes :class:`ApiError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from datanet.errors import (
    CertificateError,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    CorruptKeyFile,
    DatanetError,
    DecodeError,
    ExpiredRecord,
    InvalidInput,
    KeystoreError,
    NetworkError,
    NotFound,
    PeerUnreachable,
    RecordTooLarge,
    RemoteProtocolError,
    RoleNotGranted,
    ScopeError,
    SignatureError,
    StaleRecord,
    StorageError,
    Timeout,
    UntrustedOrganization,
    VerificationError,
    WrongPassphrase,
)
from datanet.node.config import ConfigError
from datanet.records.ids import UnknownAlias
from identity.keystore import InsecureKeyFile, KeyFileExists, KeyFileNotFound, PassphraseRequired

__all__ = [
    "CODES_NOT_MAPPED",
    "ERRORS_BY_CODE",
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
    "error_class_for_code",
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


def _by_code(classes: Iterable[type[DatanetError]]) -> Mapping[str, type[DatanetError]]:
    table: dict[str, type[DatanetError]] = {}
    for cls in classes:
        code = cls.__dict__["code"]  # its own code, never an inherited one
        if code in table:
            raise AssertionError(f"error code {code!r} is used by two classes")
        table[code] = cls
    return MappingProxyType(table)


#: Every error code the client turns back into its class. Add a new error that can
#: reach the API here; the unit test of this table names any that is missing.
ERRORS_BY_CODE: Mapping[str, type[DatanetError]] = _by_code(
    (
        # identity/ (the pure tree) and its keystore
        DatanetError,
        InvalidInput,
        DecodeError,
        RecordTooLarge,
        VerificationError,
        SignatureError,
        CertificateError,
        CertificateExpired,
        CertificateNotYetValid,
        CertificateRevoked,
        UntrustedOrganization,
        RoleNotGranted,
        ScopeError,
        ExpiredRecord,
        StaleRecord,
        KeystoreError,
        WrongPassphrase,
        CorruptKeyFile,
        KeyFileNotFound,
        KeyFileExists,
        InsecureKeyFile,
        PassphraseRequired,
        # datanet's own
        NetworkError,
        PeerUnreachable,
        Timeout,
        RemoteProtocolError,
        StorageError,
        NotFound,
        ConfigError,
        UnknownAlias,
        # the API itself
        ApiError,
        Unauthorized,
        UnknownEndpoint,
        MethodNotAllowed,
        InvalidRequest,
        InvalidJson,
        BodyTooLarge,
        UnsupportedMediaType,
        InternalError,
        DaemonUnreachable,
    )
)

#: Coded errors the client does not map back to their own class, and why. Those
#: that can reach the API still arrive with their ``code``, as an :class:`ApiError`.
CODES_NOT_MAPPED: Mapping[str, str] = MappingProxyType(
    {
        # Raised in the CLI or while the daemon starts: never an API answer.
        "home_error": "local: the data directory",
        "not_initialized": "local: the data directory",
        "already_initialized": "local: the data directory",
        "org_not_found": "local: organizations created here",
        "daemon_error": "local: the daemon before its API serves",
        "daemon_already_running": "local: the daemon before its API serves",
        "devnet_error": "local: the devnet tool",
        "daemon_start_failed": "local: the devnet tool",
        "tour_failed": "local: the devnet tool",
        "devnet_samples_invalid": "local: the devnet tool",
        "localnet_error": "local: a test tool",
        "op_failed": "local: a test tool",
        "warm": "local: a test tool",
        # Raised by the p2p adapter and routing/: the client would need trio, libp2p
        # or routing/ to load their classes, and it must start fast without them.
        "admission_refused": "p2p adapter",
        "protocol_not_supported": "p2p adapter",
        "frame_too_large": "p2p adapter",
        "stream_closed": "p2p adapter",
        "remote_error": "p2p adapter",
        "rate_limited": "routing/",
        "store_full": "routing/",
    }
)


def error_class_for_code(code: str) -> type[DatanetError]:
    """The exception class whose ``code`` is ``code`` (:class:`ApiError` if none is)."""
    return ERRORS_BY_CODE.get(code, ApiError)
