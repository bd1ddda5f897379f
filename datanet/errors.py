"""datanet's exception tree, extended with the node's own failures.

Re-exports the pure tree from :mod:`identity.errors` and adds what only a running
node can hit: network, timeout, remote protocol, storage, not-found. Library
exceptions (py-libp2p, sqlite3, httpx) are translated into these once, at the
adapter that calls the library.
"""

from __future__ import annotations

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

__all__ = [
    "CertificateError",
    "CertificateExpired",
    "CertificateNotYetValid",
    "CertificateRevoked",
    "CorruptKeyFile",
    "DatanetError",
    "DecodeError",
    "ExpiredRecord",
    "InvalidInput",
    "KeystoreError",
    "NetworkError",
    "NotFound",
    "PeerUnreachable",
    "RecordTooLarge",
    "RemoteProtocolError",
    "RoleNotGranted",
    "ScopeError",
    "SignatureError",
    "StaleRecord",
    "StorageError",
    "Timeout",
    "UntrustedOrganization",
    "VerificationError",
    "WrongPassphrase",
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


class StorageError(DatanetError):
    """Raised when the node's SQLite store cannot be read or written."""

    code = "storage_error"


class NotFound(DatanetError):
    """Raised when a record, dataset or peer is not found anywhere we looked."""

    code = "not_found"
