"""datanet's exception tree, extended with the node's own failures, and the code registry.

Re-exports the pure tree from :mod:`identity.errors` and adds what only a running
node can hit: network, timeout, remote protocol, storage, not-found; the errors of
the settings, the data directory, the daemon and the control API. Library
exceptions (py-libp2p, sqlite3, httpx) are translated into these once, at the
adapter that calls the library.

Invariants:
* Every error's ``code`` is stable: it is what the control API sends and what the
  CLI prints with ``--json``. The modules that raise these errors re-export them
  (``datanet.node.config.ConfigError``, ``datanet.api.errors.Unauthorized``, …).
* :data:`ERRORS_BY_CODE` is an explicit table, not a walk over whatever subclasses
  happen to be imported, so the client maps a code to the same class whichever
  modules it loaded. Every coded :class:`DatanetError` subclass anywhere is either
  in it or named, with the reason, in :data:`CODES_NOT_MAPPED` (a unit test checks).
* :func:`error_class_for_code` never fails: an unknown code becomes :class:`ApiError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from identity.errors import (
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
    RecordTooLarge,
    RoleNotGranted,
    ScopeError,
    SignatureError,
    StaleRecord,
    UntrustedOrganization,
    VerificationError,
    WrongPassphrase,
)
from identity.keystore import InsecureKeyFile, KeyFileExists, KeyFileNotFound, PassphraseRequired

__all__ = [
    "CODES_NOT_MAPPED",
    "ERRORS_BY_CODE",
    "AlreadyInitialized",
    "ApiError",
    "BodyTooLarge",
    "CertificateError",
    "CertificateExpired",
    "CertificateNotYetValid",
    "CertificateRevoked",
    "ConfigError",
    "Conflict",
    "CorruptKeyFile",
    "DaemonAlreadyRunning",
    "DaemonError",
    "DaemonUnreachable",
    "DatanetError",
    "DatasetWithdrawn",
    "DecodeError",
    "EgressRequired",
    "ExpiredRecord",
    "GatewayUnreachable",
    "GrantRevoked",
    "HomeError",
    "HopLimitExceeded",
    "InternalError",
    "InvalidInput",
    "InvalidJson",
    "InvalidRequest",
    "KeystoreError",
    "LoopDetected",
    "MethodNotAllowed",
    "NetworkError",
    "NoRoute",
    "NotAGateway",
    "NotFound",
    "NotInitialized",
    "OrgNotFound",
    "PeerSentJunk",
    "PeerUnreachable",
    "RecordTooLarge",
    "RemoteProtocolError",
    "ReplayedRequest",
    "RequestExpired",
    "RoleNotGranted",
    "ScopeError",
    "SignatureError",
    "StaleRecord",
    "StorageError",
    "Timeout",
    "Unauthorized",
    "UnknownAlias",
    "UnknownEndpoint",
    "UnsupportedMediaType",
    "UntrustedOrganization",
    "VerificationError",
    "WrongPassphrase",
    "WrongSender",
    "error_class_for_code",
]


class NetworkError(DatanetError):
    """Raised when talking to a peer failed for a reason outside our control."""

    code = "network_error"


class PeerUnreachable(NetworkError):
    """Raised when no address of a peer could be dialled."""

    code = "peer_unreachable"


class Timeout(NetworkError):
    """Raised when a peer or an operation did not answer within its time limit."""

    code = "timeout"


class RemoteProtocolError(NetworkError):
    """Raised when a peer broke a protocol (bad frame, oversized message, wrong type)."""

    code = "remote_protocol_error"


class PeerSentJunk(RemoteProtocolError):
    """Raised when a peer sent records that do not verify, past the bound a session
    allows: the node cuts that peer off (an honest peer never does this)."""

    code = "peer_sent_junk"


class StorageError(DatanetError):
    """Raised when the node's SQLite store cannot be read or written."""

    code = "storage_error"


class NotFound(DatanetError):
    """Raised when a record, dataset or peer is not found anywhere we looked."""

    code = "not_found"


class DatasetWithdrawn(NotFound):
    """Raised when a dataset left the catalog: deprecated by its publisher, its
    publisher's certificate revoked, or its descriptor expired (the message says which)."""

    code = "dataset_withdrawn"


class Conflict(InvalidInput):
    """Raised when a change is refused because the record's state no longer allows it:
    a request already decided, a grant already revoked (the message names the state).
    Nothing was changed; retrying the same change is useless."""

    code = "conflict"


# --- access requests: routing refusals and grant checks ------------------------------


class GrantRevoked(VerificationError):
    """Raised when a grant's id is on the owner's revocation list (a signed
    ``dn/grant-revocation/v1`` record reached the verifier)."""

    code = "grant_revoked"


class RequestExpired(ExpiredRecord):
    """Raised when an access request is past its deadline (or a queued one ran out)."""

    code = "request_expired"


class HopLimitExceeded(VerificationError):
    """Raised when an access request's trace is longer than the hop limit (8)."""

    code = "hop_limit"


class LoopDetected(VerificationError):
    """Raised when a node appears twice in an access request's trace."""

    code = "loop_detected"


class ReplayedRequest(VerificationError):
    """Raised when a node sees an access request (same id) it has already handled."""

    code = "replayed_request"


class WrongSender(VerificationError):
    """Raised when a request or answer arrives from a peer other than the one the
    trace says should have sent it."""

    code = "wrong_sender"


class NotAGateway(ScopeError):
    """Raised when a node without the gateway role (or not listed in its org record)
    is asked to forward an access request across organizations."""

    code = "not_a_gateway"


class EgressRequired(ScopeError):
    """Raised when a node of an organization that gates egress sends a request out
    directly instead of through one of its gateways."""

    code = "egress_required"


class NoRoute(NotFound):
    """Raised when no gateway of the dataset's organization is known or reachable
    from here (no org record, or it lists no gateway)."""

    code = "no_route"


class GatewayUnreachable(PeerUnreachable):
    """Raised when a gateway on the route could not be dialled; the message names the hop."""

    code = "gateway_unreachable"


# --- settings, the data directory, organizations, the daemon -----------------------


class ConfigError(InvalidInput):
    """Raised when a config file, key or value is not acceptable."""

    code = "invalid_config"


class UnknownAlias(InvalidInput):
    """Raised when ``dn://<alias>/…`` names an alias that is not configured."""

    code = "unknown_alias"


class HomeError(DatanetError):
    """Raised when a file of the data directory cannot be read, written or parsed."""

    code = "home_error"


class NotInitialized(NotFound):
    """Raised when the data directory holds no node key (run ``datanet init``)."""

    code = "not_initialized"


class AlreadyInitialized(HomeError):
    """Raised by :meth:`Home.init` when the data directory already holds a node key."""

    code = "already_initialized"


class OrgNotFound(NotFound):
    """Raised when no organization of that name or id is known here."""

    code = "org_not_found"


class DaemonError(DatanetError):
    """Raised when the daemon cannot start (files, ports, node)."""

    code = "daemon_error"


class DaemonAlreadyRunning(DaemonError):
    """Raised when another daemon holds this data directory's pid lock."""

    code = "daemon_already_running"


# --- the control API (``status``: the HTTP status that reports it) -----------------


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


# --- the code -> class registry ---------------------------------------------------


def _by_code(classes: Iterable[type[DatanetError]]) -> Mapping[str, type[DatanetError]]:
    table: dict[str, type[DatanetError]] = {}
    for cls in classes:
        code = cls.__dict__["code"]  # its own code, never an inherited one
        if code in table:
            raise AssertionError(f"error code {code!r} is used by two classes")
        table[code] = cls
    return MappingProxyType(table)


#: Every error code the client turns back into its class. Add a new error here; the
#: unit test of this table names any coded class that is missing.
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
        PeerSentJunk,
        StorageError,
        NotFound,
        DatasetWithdrawn,
        Conflict,
        # access requests
        GrantRevoked,
        HopLimitExceeded,
        LoopDetected,
        ReplayedRequest,
        RequestExpired,
        WrongSender,
        NotAGateway,
        EgressRequired,
        NoRoute,
        GatewayUnreachable,
        ConfigError,
        UnknownAlias,
        HomeError,
        NotInitialized,
        AlreadyInitialized,
        OrgNotFound,
        DaemonError,
        DaemonAlreadyRunning,
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
        # Raised by the devnet and test tools only: never an API answer.
        "devnet_error": "local: the devnet tool",
        "daemon_start_failed": "local: the devnet tool",
        "tour_failed": "local: the devnet tool",
        "devnet_samples_invalid": "local: the devnet tool",
        "localnet_error": "local: a test tool",
        "op_failed": "local: a test tool",
        "warm": "local: a test tool",
        "js_peer": "local: a test tool (the js-libp2p interop peer)",
        "node_stopped": "local: a test tool (the localnet worker)",
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
