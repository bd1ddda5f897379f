"""Ed25519 keys and the two names derived from them.

* :class:`PeerId` - a node's libp2p peer id (``12D3KooW…``): the identity
  multihash of the protobuf-encoded public key, in base58btc.
* :class:`OrgId` - an organization's self-certifying ``did:key:z6Mk…``: the
  multicodec ``ed25519-pub`` (0xed 0x01) prefix plus the key, multibase ``z``.

Invariant: both names hold the 32-byte public key itself, so anyone can verify a
signature from a name alone; parsing rejects anything that is not exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from identity.encoding import b58decode, b58encode
from identity.errors import DecodeError, InvalidInput, SignatureError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["KeyPair", "OrgId", "PeerId", "verify_signature"]

# cryptography (about 15 ms to import) is imported inside the functions that sign
# or verify, so parsing and printing ids (every CLI command) does not load it.

# protobuf PublicKey{Type: Ed25519 (1), Data: <32 bytes>} as libp2p encodes it.
_LIBP2P_ED25519_PREFIX = b"\x08\x01\x12\x20"
# identity multihash (code 0x00) of the 36-byte protobuf key.
_IDENTITY_MULTIHASH_PREFIX = b"\x00\x24"
_DID_KEY_PREFIX = "did:key:z"
_ED25519_MULTICODEC = b"\xed\x01"
_SIG_DOMAIN = b"datanet-sig-v1\x00"


def _check_public_key(raw: bytes) -> bytes:
    if not isinstance(raw, bytes) or len(raw) != 32:
        raise DecodeError("an Ed25519 public key is exactly 32 bytes")
    return raw


def signing_input(tag: str, body: bytes) -> bytes:
    """The exact bytes a signature covers: a domain, the record tag, the body.

    The tag is length-prefixed so that no (tag, body) pair collides with another.
    """
    tag_bytes = tag.encode("ascii")
    return _SIG_DOMAIN + len(tag_bytes).to_bytes(2, "big") + tag_bytes + body


def verify_signature(public_key: bytes, tag: str, body: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature over ``signing_input(tag, body)``.

    Raises:
        SignatureError: the signature does not verify.
    """
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415 - see above
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PublicKey,
    )

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, signing_input(tag, body))
    except (InvalidSignature, ValueError):
        raise SignatureError(f"signature on the {tag} record does not verify") from None


@dataclass(frozen=True)
class PeerId:
    """A node's libp2p peer id, holding its Ed25519 public key."""

    public_key: bytes

    def __post_init__(self) -> None:
        _check_public_key(self.public_key)

    def to_bytes(self) -> bytes:
        """The binary peer id (identity multihash), as on the libp2p wire."""
        return _IDENTITY_MULTIHASH_PREFIX + _LIBP2P_ED25519_PREFIX + self.public_key

    @classmethod
    def from_bytes(cls, data: bytes) -> PeerId:
        """Parse a binary peer id; only Ed25519 identity-multihash ids are accepted.

        Raises:
            DecodeError: ``data`` is not an Ed25519 peer id.
        """
        prefix = _IDENTITY_MULTIHASH_PREFIX + _LIBP2P_ED25519_PREFIX
        if len(data) != len(prefix) + 32 or not data.startswith(prefix):
            raise DecodeError("not an Ed25519 libp2p peer id (expected 12D3KooW…)")
        return cls(bytes(data[len(prefix) :]))

    @classmethod
    def parse(cls, text: str) -> PeerId:
        """Parse the base58 text form (``12D3KooW…``).

        Raises:
            DecodeError: ``text`` is not an Ed25519 peer id.
        """
        if not isinstance(text, str) or not 40 <= len(text) <= 60:
            raise DecodeError(f"not a peer id: {str(text)[:80]!r}")
        return cls.from_bytes(b58decode(text))

    @cached_property
    def _text(self) -> str:
        return b58encode(self.to_bytes())

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"PeerId({self._text})"


@dataclass(frozen=True)
class OrgId:
    """An organization's self-certifying id, ``did:key:z6Mk…``."""

    public_key: bytes

    def __post_init__(self) -> None:
        _check_public_key(self.public_key)

    @classmethod
    def parse(cls, text: str) -> OrgId:
        """Parse a ``did:key`` of an Ed25519 key.

        Raises:
            DecodeError: ``text`` is not an Ed25519 ``did:key``.
        """
        if not isinstance(text, str) or not text.startswith(_DID_KEY_PREFIX) or len(text) > 80:
            raise DecodeError(
                f"not an organization id (expected did:key:z6Mk…): {str(text)[:80]!r}"
            )
        raw = b58decode(text[len(_DID_KEY_PREFIX) :])
        if len(raw) != 34 or not raw.startswith(_ED25519_MULTICODEC):
            raise DecodeError(f"not an Ed25519 did:key: {text[:80]!r}")
        return cls(raw[2:])

    @cached_property
    def _text(self) -> str:
        return _DID_KEY_PREFIX + b58encode(_ED25519_MULTICODEC + self.public_key)

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"OrgId({self._text})"


class KeyPair:
    """An Ed25519 private key; the same type serves nodes and organizations."""

    __slots__ = ("_private", "public_key")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        from cryptography.hazmat.primitives.serialization import (  # noqa: PLC0415 - see above
            Encoding,
            PublicFormat,
        )

        self._private = private
        self.public_key: bytes = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls) -> KeyPair:
        """A fresh key from the operating system's randomness."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
            Ed25519PrivateKey,
        )

        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        """Rebuild a key from its 32-byte seed (the raw private key).

        Raises:
            InvalidInput: ``seed`` is not 32 bytes.
        """
        if len(seed) != 32:
            raise InvalidInput("an Ed25519 seed is exactly 32 bytes")
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
            Ed25519PrivateKey,
        )

        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def seed(self) -> bytes:
        """The 32-byte raw private key. Handle with care: it is the identity."""
        from cryptography.hazmat.primitives.serialization import (  # noqa: PLC0415
            Encoding,
            NoEncryption,
            PrivateFormat,
        )

        return self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def peer_id(self) -> PeerId:
        """This key's name as a node."""
        return PeerId(self.public_key)

    @property
    def org_id(self) -> OrgId:
        """This key's name as an organization."""
        return OrgId(self.public_key)

    def sign(self, tag: str, body: bytes) -> bytes:
        """Sign ``body`` under the domain-separation ``tag`` (see :func:`signing_input`)."""
        return self._private.sign(signing_input(tag, body))

    def __repr__(self) -> str:
        return f"KeyPair(public={self.peer_id})"
