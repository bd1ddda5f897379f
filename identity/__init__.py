"""identity: keys, peer ids, organizations, certificates, signing - pure, no network I/O.

The public names below are imported on first use (PEP 562 ``__getattr__``):
``import identity.errors`` (which every command-line command does, through
``datanet.errors``) must not load certificates, keys and cryptography.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from identity._lazy import lazy_names

if TYPE_CHECKING:
    from identity.certs import (
        MembershipCertificate,
        Revocation,
        Role,
        TrustStore,
        issue_certificate,
        issue_revocation,
        parse_certificate,
        parse_revocation,
    )
    from identity.envelope import SignedEnvelope, open_envelope, seal
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
    from identity.keys import KeyPair, OrgId, PeerId, verify_signature
    from identity.keystore import KeyType, load_key, read_key_info, save_key

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
    "KeyPair",
    "KeyType",
    "KeystoreError",
    "MembershipCertificate",
    "OrgId",
    "PeerId",
    "RecordTooLarge",
    "Revocation",
    "Role",
    "RoleNotGranted",
    "ScopeError",
    "SignatureError",
    "SignedEnvelope",
    "StaleRecord",
    "TrustStore",
    "UntrustedOrganization",
    "VerificationError",
    "WrongPassphrase",
    "issue_certificate",
    "issue_revocation",
    "load_key",
    "open_envelope",
    "parse_certificate",
    "parse_revocation",
    "read_key_info",
    "save_key",
    "seal",
    "verify_signature",
]

#: Where each public name lives (imported on first access).
_HOMES: dict[str, str] = {
    "CertificateError": "identity.errors",
    "CertificateExpired": "identity.errors",
    "CertificateNotYetValid": "identity.errors",
    "CertificateRevoked": "identity.errors",
    "CorruptKeyFile": "identity.errors",
    "DatanetError": "identity.errors",
    "DecodeError": "identity.errors",
    "ExpiredRecord": "identity.errors",
    "InvalidInput": "identity.errors",
    "KeyPair": "identity.keys",
    "KeyType": "identity.keystore",
    "KeystoreError": "identity.errors",
    "MembershipCertificate": "identity.certs",
    "OrgId": "identity.keys",
    "PeerId": "identity.keys",
    "RecordTooLarge": "identity.errors",
    "Revocation": "identity.certs",
    "Role": "identity.certs",
    "RoleNotGranted": "identity.errors",
    "ScopeError": "identity.errors",
    "SignatureError": "identity.errors",
    "SignedEnvelope": "identity.envelope",
    "StaleRecord": "identity.errors",
    "TrustStore": "identity.certs",
    "UntrustedOrganization": "identity.errors",
    "VerificationError": "identity.errors",
    "WrongPassphrase": "identity.errors",
    "issue_certificate": "identity.certs",
    "issue_revocation": "identity.certs",
    "load_key": "identity.keystore",
    "open_envelope": "identity.envelope",
    "parse_certificate": "identity.certs",
    "parse_revocation": "identity.certs",
    "read_key_info": "identity.keystore",
    "save_key": "identity.keystore",
    "seal": "identity.envelope",
    "verify_signature": "identity.keys",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _HOMES, __all__)
