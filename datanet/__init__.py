"""datanet: a decentralized data network node, its records and its client API.

``datanet.Client`` and ``datanet.AsyncClient`` (the HTTP client of a running node)
are loaded on first use, so ``import datanet`` stays light.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from datanet.client import AsyncClient, Client

__all__ = [
    "AsyncClient",
    "CertificateError",
    "CertificateExpired",
    "CertificateNotYetValid",
    "CertificateRevoked",
    "Client",
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


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        from datanet import client  # noqa: PLC0415

        return getattr(client, name)
    raise AttributeError(f"module 'datanet' has no attribute {name!r}")
