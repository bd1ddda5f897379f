"""Admission on ``/datanet/id/1.0.0``: who may use a network's datanet protocols.

When two datanet nodes connect, the dialer opens ``/datanet/id/1.0.0`` and sends a
:class:`Hello` (its membership certificate chain, the services it offers, its
listen addresses); the listener checks it and answers with its own Hello, or
with a :class:`Refusal` before closing the connection. The dialer then checks
the listener's Hello. Each side decides with :meth:`Admission.decide`:

* ``closed`` - a valid chain from an organization in the trust store.
* ``members`` - a valid chain from any organization (signature, validity window
  and revocations still apply).
* ``open`` - anyone, including plain libp2p nodes without ``/datanet/id``; a
  valid chain is recorded when there is one. Records are verified regardless.

Invariants:
* A peer is admitted only if its chain names *its own* peer id (a chain cannot
  be replayed by another node) and verifies at the current time.
* :meth:`Hello.decode` and :func:`decode_reply` take untrusted bytes and raise
  only :class:`~identity.errors.DecodeError`; all sizes are bounded.
* Nothing here does I/O or reads a clock except through ``Admission.clock``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from identity.certs import MAX_CERT_SIZE, MembershipCertificate, TrustStore
from identity.encoding import pack, unpack_map
from identity.errors import DecodeError, InvalidInput, VerificationError
from identity.keys import PeerId

__all__ = [
    "ID_PROTOCOL",
    "MAX_HELLO_SIZE",
    "MODE_KAD_SERVER",
    "Admission",
    "AdmissionMode",
    "Decision",
    "Hello",
    "Refusal",
    "decode_reply",
]

ID_PROTOCOL = "/datanet/id/1.0.0"
MAX_HELLO_SIZE = 8 * 1024
MODE_KAD_SERVER = "kad-server"
_MAX_CHAIN = 4
_MAX_MODES = 16
_MAX_MODE_LEN = 32
_MAX_ADDRS = 16
_MAX_ADDR_LEN = 256


class AdmissionMode(StrEnum):
    """Who may use a network's datanet protocols."""

    CLOSED = "closed"
    MEMBERS = "members"
    OPEN = "open"


def _unix_now() -> int:
    return int(time.time())


@dataclass(frozen=True)
class Hello:
    """What a datanet node says about itself on ``/datanet/id/1.0.0``.

    Attributes:
        chain: its membership certificate chain (wire bytes, leaf first); may be
            empty for a node of an ``open`` network that has no certificate.
        modes: services it offers, e.g. ``"kad-server"`` (answers kad requests).
        addrs: multiaddrs it listens on (so an inbound peer can be dialled back).
    """

    chain: tuple[bytes, ...] = ()
    modes: frozenset[str] = frozenset()
    addrs: tuple[str, ...] = ()

    def encode(self) -> bytes:
        """The MessagePack wire form.

        Raises:
            InvalidInput: a field exceeds its bound.
        """
        if len(self.chain) > _MAX_CHAIN or any(len(c) > MAX_CERT_SIZE for c in self.chain):
            raise InvalidInput("certificate chain too long")
        if len(self.modes) > _MAX_MODES or any(len(m) > _MAX_MODE_LEN for m in self.modes):
            raise InvalidInput("too many or too long modes")
        addrs = self.addrs[:_MAX_ADDRS]
        if any(len(a) > _MAX_ADDR_LEN for a in addrs):
            raise InvalidInput("address too long")
        data = pack(
            {"v": 1, "chain": list(self.chain), "modes": sorted(self.modes), "addrs": list(addrs)}
        )
        if len(data) > MAX_HELLO_SIZE:
            raise InvalidInput(f"hello is {len(data)} bytes; the limit is {MAX_HELLO_SIZE}")
        return data

    @classmethod
    def decode(cls, data: bytes) -> Hello:
        """Parse a peer's Hello.

        Raises:
            DecodeError: malformed or out of bounds.
        """
        obj = unpack_map(data, max_size=MAX_HELLO_SIZE, max_items=64)
        return cls._from_map(obj)

    @classmethod
    def _from_map(cls, obj: dict[str, object]) -> Hello:
        if obj.get("v") != 1:
            raise DecodeError("unsupported hello version")
        chain = obj.get("chain", [])
        modes = obj.get("modes", [])
        addrs = obj.get("addrs", [])
        if (
            not isinstance(chain, list)
            or len(chain) > _MAX_CHAIN
            or not all(isinstance(c, bytes) and len(c) <= MAX_CERT_SIZE for c in chain)
        ):
            raise DecodeError("hello: chain must be a short list of certificates")
        if (
            not isinstance(modes, list)
            or len(modes) > _MAX_MODES
            or not all(isinstance(m, str) and len(m) <= _MAX_MODE_LEN for m in modes)
        ):
            raise DecodeError("hello: modes must be a short list of names")
        if (
            not isinstance(addrs, list)
            or len(addrs) > _MAX_ADDRS
            or not all(isinstance(a, str) and len(a) <= _MAX_ADDR_LEN for a in addrs)
        ):
            raise DecodeError("hello: addrs must be a short list of multiaddrs")
        return cls(tuple(chain), frozenset(modes), tuple(addrs))


@dataclass(frozen=True)
class Refusal:
    """The listener's answer when it does not admit the dialer."""

    code: str
    message: str

    def encode(self) -> bytes:
        """The MessagePack wire form."""
        return pack({"v": 1, "refused": self.code[:64], "msg": self.message[:512]})


def decode_reply(data: bytes) -> Hello | Refusal:
    """Parse the listener's answer to our Hello.

    Raises:
        DecodeError: malformed or out of bounds.
    """
    obj = unpack_map(data, max_size=MAX_HELLO_SIZE, max_items=64)
    if "refused" in obj:
        code, msg = obj.get("refused"), obj.get("msg", "")
        if not isinstance(code, str) or not isinstance(msg, str):
            raise DecodeError("refusal: code and msg must be text")
        return Refusal(code[:64], msg[:512])
    return Hello._from_map(obj)


@dataclass(frozen=True)
class Decision:
    """The outcome of checking a peer.

    Attributes:
        admitted: whether the peer may use datanet protocols.
        cert: its verified membership certificate, if it presented a valid one.
        code: why it was refused (an error code), or ``""``.
        reason: a human-readable explanation, or ``""``.
        transient: the exchange itself broke (timeout, reset connection): the
            refusal says nothing about the peer's credentials, so a caller may
            try again.
    """

    admitted: bool
    cert: MembershipCertificate | None = None
    code: str = ""
    reason: str = ""
    transient: bool = False


@dataclass(frozen=True)
class Admission:
    """A network's admission policy and this node's own credentials.

    Args:
        mode: ``closed``, ``members`` or ``open``.
        trust: the trust store (trusted orgs, revocations). For ``closed`` it must
            not have ``accept_any``; for ``members`` a view with ``accept_any`` is
            used, sharing the same trusted set and revocations.
        chain: this node's membership certificate chain (leaf first).
        clock: current Unix time in seconds (injected for tests).

    Raises:
        InvalidInput: ``closed`` with an ``accept_any`` trust store, or a chain
            that is not a sequence of bytes.
    """

    mode: AdmissionMode
    trust: TrustStore
    chain: tuple[bytes, ...] = ()
    clock: Callable[[], int] = _unix_now
    _verifier: TrustStore = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", AdmissionMode(self.mode))
        if self.mode is AdmissionMode.CLOSED and self.trust.accept_any:
            raise InvalidInput("a closed network needs a trust store without accept_any")
        if not all(isinstance(c, bytes) for c in self.chain):
            raise InvalidInput("a certificate chain is a sequence of bytes")
        object.__setattr__(self, "chain", tuple(self.chain))
        verifier = self.trust
        if self.mode is not AdmissionMode.CLOSED and not self.trust.accept_any:
            verifier = TrustStore(
                trusted=self.trust.trusted, accept_any=True, revocations=self.trust.revocations
            )
        object.__setattr__(self, "_verifier", verifier)

    @property
    def gated(self) -> bool:
        """Whether peers must be admitted before they use datanet protocols."""
        return self.mode is not AdmissionMode.OPEN

    def verify(self, chain: Sequence[bytes], peer: PeerId) -> MembershipCertificate:
        """Verify ``peer``'s chain at the current time under this network's mode.

        Raises:
            CertificateError: invalid, untrusted, expired, revoked (the subclass says).
            ScopeError: the certificate names another node.
            DecodeError, SignatureError: malformed or forged certificate.
        """
        return self._verifier.verify_chain(chain, now=self.clock(), node=peer)

    def decide(self, peer: PeerId, hello: Hello | None) -> Decision:
        """Decide whether ``peer`` is admitted, given its Hello (None: it sent none).

        In ``open`` mode everyone is admitted; the certificate is kept when valid.
        """
        if hello is None:
            if self.gated:
                return Decision(False, None, "no_hello", "the peer does not speak /datanet/id")
            return Decision(True)
        try:
            cert = self.verify(hello.chain, peer)
        except (VerificationError, InvalidInput) as exc:
            return Decision(not self.gated, None, exc.code, str(exc))
        return Decision(True, cert)
