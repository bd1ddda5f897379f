"""datanet's exception tree.

Invariant: every error that datanet code raises on purpose is a subclass of
:class:`DatanetError` and carries a stable machine-readable ``code``. Decoders of
untrusted bytes raise only these, never ``KeyError``/``msgpack`` errors. The tree
lives in ``identity`` (the lowest layer) so that ``routing`` and ``datanet`` share
it without importing each other; ``datanet.errors`` re-exports and extends it.

The tree is grouped by what the caller can do about it (as in httpcore/h11):

* :class:`InvalidInput` - the bytes or arguments are wrong; retrying is useless.
* :class:`VerificationError` - well-formed, but a signature, certificate, scope,
  freshness or expiry check failed.
* :class:`KeystoreError` - a key file cannot be read or unlocked.
"""

from __future__ import annotations

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
    "RecordTooLarge",
    "RoleNotGranted",
    "ScopeError",
    "SignatureError",
    "StaleRecord",
    "UntrustedOrganization",
    "VerificationError",
    "WrongPassphrase",
]


class DatanetError(Exception):
    """Root of every error datanet raises on purpose."""

    code = "datanet_error"


class InvalidInput(DatanetError, ValueError):
    """Raised when an argument or a user-supplied value is malformed."""

    code = "invalid_input"


class DecodeError(InvalidInput):
    """Raised when untrusted bytes cannot be decoded into a record."""

    code = "decode_error"


class RecordTooLarge(DecodeError):
    """Raised when encoded bytes or a field exceed a hard size limit."""

    code = "record_too_large"


class VerificationError(DatanetError):
    """Raised when a well-formed record fails a cryptographic or policy check."""

    code = "verification_failed"


class SignatureError(VerificationError):
    """Raised when a signature does not verify over the tagged body."""

    code = "bad_signature"


class CertificateError(VerificationError):
    """Raised when a membership certificate chain is not acceptable."""

    code = "bad_certificate"


class CertificateExpired(CertificateError):
    """Raised when ``now`` is past the certificate's ``not_after``."""

    code = "certificate_expired"


class CertificateNotYetValid(CertificateError):
    """Raised when ``now`` is before the certificate's ``not_before``."""

    code = "certificate_not_yet_valid"


class CertificateRevoked(CertificateError):
    """Raised when the issuing organization revoked the certificate's serial."""

    code = "certificate_revoked"


class UntrustedOrganization(CertificateError):
    """Raised when the issuing organization is not in the trust store."""

    code = "untrusted_organization"


class RoleNotGranted(CertificateError):
    """Raised when the certificate does not grant the role an action needs."""

    code = "role_not_granted"


class ScopeError(VerificationError):
    """Raised when a record is signed by someone outside its scope.

    Example: a descriptor for ``dn://<org A>/x`` carried by a certificate of org B.
    """

    code = "wrong_scope"


class ExpiredRecord(VerificationError):
    """Raised when a record's own expiry lies in the past."""

    code = "record_expired"


class StaleRecord(VerificationError):
    """Raised when a record's sequence number is lower than one already held."""

    code = "stale_record"


class KeystoreError(DatanetError):
    """Raised when a key file is missing, unreadable or of the wrong kind."""

    code = "keystore_error"


class WrongPassphrase(KeystoreError):
    """Raised when a passphrase-encrypted key file does not open with the passphrase."""

    code = "wrong_passphrase"


class CorruptKeyFile(KeystoreError):
    """Raised when a key file's contents are damaged or not a datanet key."""

    code = "corrupt_key_file"
