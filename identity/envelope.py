"""The signed envelope every record travels in: sign the bytes, ship the bytes.

Wire form (MessagePack array)::

    [1, tag, body, signer, signature, [chain certificate bytes…]]

``signature`` is Ed25519 by ``signer`` (a raw 32-byte public key) over
``signing_input(tag, body)``. The body is kept as the exact bytes that were
signed, so no re-encoding question ever arises.

Invariants:
* :func:`open_envelope` checks only the structure, the tag and the signature;
  binding the signer to a certificate or an organization is the job of the
  record's own verifier. The chain is not covered by the envelope signature
  (each certificate carries its own org signature).
* An envelope has exactly one accepted wire form (canonical MessagePack, as
  :meth:`SignedEnvelope.encode` writes it), so the same record is always the
  same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from identity.encoding import pack, unpack
from identity.errors import DecodeError
from identity.keys import KeyPair, verify_signature

__all__ = ["MAX_CHAIN", "SignedEnvelope", "open_envelope", "seal"]

ENVELOPE_VERSION = 1
MAX_CHAIN = 4


@dataclass(frozen=True)
class SignedEnvelope:
    """A decoded envelope whose signature has been checked."""

    tag: str
    body: bytes
    signer: bytes
    signature: bytes
    chain: tuple[bytes, ...] = ()

    def encode(self) -> bytes:
        """The wire bytes."""
        return pack(
            [ENVELOPE_VERSION, self.tag, self.body, self.signer, self.signature, list(self.chain)]
        )


def seal(key: KeyPair, tag: str, body: bytes, chain: Sequence[bytes] = ()) -> SignedEnvelope:
    """Sign ``body`` under ``tag`` with ``key`` and wrap it, with an optional chain."""
    return SignedEnvelope(tag, body, key.public_key, key.sign(tag, body), tuple(chain))


def open_envelope(data: bytes, *, tag: str, max_size: int) -> SignedEnvelope:
    """Decode untrusted envelope bytes and verify the signature.

    Args:
        data: the wire bytes.
        tag: the record type the caller expects; any other tag is rejected, so a
            signature made for one record type never validates as another.
        max_size: the limit on the whole encoding.

    Raises:
        RecordTooLarge: ``data`` exceeds ``max_size``.
        DecodeError: ``data`` is not an envelope of type ``tag``.
        SignatureError: the signature does not verify.
    """
    obj = unpack(data, max_size=max_size, max_items=16)
    if not isinstance(obj, list) or len(obj) != 6:
        raise DecodeError("not a datanet signed envelope")
    version, got_tag, body, signer, signature, chain = obj
    if isinstance(version, bool) or version != ENVELOPE_VERSION:  # True == 1 in Python
        raise DecodeError(f"unsupported envelope version {version!r}")
    if got_tag != tag:
        raise DecodeError(f"expected a {tag} record, got {str(got_tag)[:40]!r}")
    if not isinstance(body, bytes):
        raise DecodeError("envelope body must be bytes")
    if not isinstance(signer, bytes) or len(signer) != 32:
        raise DecodeError("envelope signer must be a 32-byte Ed25519 public key")
    if not isinstance(signature, bytes) or len(signature) != 64:
        raise DecodeError("envelope signature must be 64 bytes")
    if not isinstance(chain, list) or len(chain) > MAX_CHAIN:
        raise DecodeError(f"certificate chain must be a list of at most {MAX_CHAIN} items")
    if not all(isinstance(c, bytes) for c in chain):
        raise DecodeError("certificate chain items must be bytes")
    env = SignedEnvelope(tag, body, signer, signature, tuple(chain))
    if env.encode() != data:
        # One signed record has exactly one wire form, so equal records are equal bytes.
        raise DecodeError("envelope is not in canonical MessagePack form")
    verify_signature(signer, tag, body, signature)
    return env
