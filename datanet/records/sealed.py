"""Sealed boxes: private access details encrypted to the requester's reply key.

A grant travels back through gateways of other organizations; the endpoint and
token it carries for the grantee must be readable by the grantee alone. The
request names an X25519 public key (its *reply key*); the owner seals the details
to it, ECIES-style:

* a fresh X25519 ephemeral key pair; ``shared = X25519(eph_priv, recipient_pub)``;
* ``key = HKDF-SHA256(shared, salt=b"", info=b"datanet-sealed-v1" + eph_pub +
  recipient_pub, length=32)``;
* ``ChaCha20-Poly1305(key)`` with a 12-byte zero nonce (the key is used once:
  every box has its own ephemeral key) and the caller's context as associated
  data (the request id, so a box cannot be moved to another request's grant).

Wire form: ``b"\\x01" + eph_pub (32 bytes) + ciphertext`` (plaintext + 16-byte tag).

Invariants:
* :func:`open_sealed` raises only :class:`~datanet.errors.DecodeError` on any
  failure (wrong key, wrong context, truncated or altered box), never a library
  exception, and says nothing about which check failed.
* Plaintexts are at most :data:`MAX_PLAINTEXT` bytes, boxes at most :data:`MAX_SEALED`.
* Randomness comes from the OS (through ``cryptography``) only in
  :func:`new_reply_key` and :func:`seal_to`.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from datanet.errors import DecodeError, InvalidInput, RecordTooLarge

__all__ = [
    "MAX_PLAINTEXT",
    "MAX_SEALED",
    "SEALED_VERSION",
    "new_reply_key",
    "open_sealed",
    "seal_to",
]

SEALED_VERSION = 1
#: The largest plaintext a box holds (an endpoint and a token fit many times over).
MAX_PLAINTEXT = 4096
_KEY = 32
_TAG = 16
#: The largest box: version byte, ephemeral key, plaintext, tag.
MAX_SEALED = MAX_PLAINTEXT + 1 + _KEY + _TAG
_INFO = b"datanet-sealed-v1"
_NONCE = bytes(12)


def _raw_public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _derive(shared: bytes, eph_pub: bytes, recipient_pub: bytes) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"", info=_INFO + eph_pub + recipient_pub
    )
    return hkdf.derive(shared)


def new_reply_key() -> tuple[bytes, bytes]:
    """A fresh X25519 key pair for a request: (private raw 32 bytes, public raw 32 bytes)."""
    key = X25519PrivateKey.generate()
    private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return private, _raw_public(key)


def seal_to(recipient_public: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt ``plaintext`` so that only the holder of ``recipient_public``'s key reads it.

    Args:
        recipient_public: the request's reply key (X25519, 32 raw bytes).
        plaintext: at most :data:`MAX_PLAINTEXT` bytes.
        aad: the context the box is bound to (the request id).

    Raises:
        InvalidInput: the key is not 32 bytes, or is a low-order point.
        RecordTooLarge: ``plaintext`` is over :data:`MAX_PLAINTEXT`.
    """
    if not isinstance(recipient_public, bytes) or len(recipient_public) != _KEY:
        raise InvalidInput("the reply key must be a 32-byte X25519 public key")
    if len(plaintext) > MAX_PLAINTEXT:
        raise RecordTooLarge(
            f"the access details are {len(plaintext)} bytes; the limit is {MAX_PLAINTEXT}"
        )
    eph = X25519PrivateKey.generate()
    eph_pub = _raw_public(eph)
    try:
        shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient_public))
    except ValueError:  # an all-zero shared secret: a low-order public key
        raise InvalidInput("the reply key is not a usable X25519 public key") from None
    key = _derive(shared, eph_pub, recipient_public)
    sealed = ChaCha20Poly1305(key).encrypt(_NONCE, bytes(plaintext), bytes(aad))
    return bytes([SEALED_VERSION]) + eph_pub + sealed


def open_sealed(private: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Decrypt a box made by :func:`seal_to` for this private key and context.

    Raises:
        DecodeError: the box cannot be opened (wrong key or context, altered,
            truncated, too large, unknown version).
    """
    fail = "the access details could not be decrypted: "
    if not isinstance(private, bytes) or len(private) != _KEY:
        raise DecodeError(fail + "the reply key must be 32 raw bytes")
    if not isinstance(sealed, bytes) or not 1 + _KEY + _TAG <= len(sealed) <= MAX_SEALED:
        raise DecodeError(fail + "the sealed box has an impossible size")
    if sealed[0] != SEALED_VERSION:
        raise DecodeError(fail + f"unknown sealed-box version {sealed[0]}")
    eph_pub = sealed[1 : 1 + _KEY]
    key = X25519PrivateKey.from_private_bytes(private)
    try:
        shared = key.exchange(X25519PublicKey.from_public_bytes(eph_pub))
    except ValueError:
        raise DecodeError(fail + "the ephemeral key is unusable") from None
    box_key = _derive(shared, eph_pub, _raw_public(key))
    try:
        return ChaCha20Poly1305(box_key).decrypt(_NONCE, sealed[1 + _KEY :], bytes(aad))
    except InvalidTag:
        raise DecodeError(fail + "wrong key, wrong request, or the box was altered") from None
