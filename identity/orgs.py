"""Organization records: an org's signed list of gateways, published in the DHT.

An org record says "organization X calls itself N and can be reached through
these gateway nodes at these addresses". It is signed by the org's *root* key
(tag ``dn/org/v1``), so it needs no certificate chain: the org id is the key.
The highest ``sequence`` wins; the record is dropped at ``expires``.
``egress`` says that the org's own nodes must send access requests out through
these gateways (body key ``"egress"``; absent in records signed before the field
existed, which therefore read as ``False`` and still verify).

Limits: name 128 characters, 16 gateways, 8 addresses per gateway, 256
characters per address, 8 KiB for the whole envelope.

Invariants:
* Decoding untrusted bytes raises only :class:`DatanetError` subclasses.
* A record is accepted only if the signer is the org it names.
* Times are integer Unix seconds passed in by the caller.
* New records always write ``"egress"``; a body without it decodes as ``False``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from identity.encoding import field as get_field
from identity.encoding import pack, unpack_map
from identity.envelope import open_envelope, seal
from identity.errors import DecodeError, ExpiredRecord, InvalidInput, RecordTooLarge, ScopeError
from identity.keys import KeyPair, OrgId, PeerId

__all__ = [
    "MAX_ORG_RECORD_SIZE",
    "ORG_RECORD_TAG",
    "Gateway",
    "OrgRecord",
    "decode_org_record",
    "issue_org_record",
    "parse_org_record",
]

ORG_RECORD_TAG = "dn/org/v1"
MAX_ORG_RECORD_SIZE = 8 * 1024
MAX_ORG_NAME = 128
MAX_GATEWAYS = 16
MAX_ADDRS = 8
MAX_ADDR_LEN = 256
_MAX_U63 = 2**63 - 1


def _check_addr(addr: object) -> str:
    if not isinstance(addr, str):
        raise InvalidInput("a gateway address must be text")
    if len(addr) > MAX_ADDR_LEN:
        raise RecordTooLarge(f"a gateway address is longer than {MAX_ADDR_LEN} characters")
    if not addr.startswith("/") or not addr.isascii() or not addr.isprintable() or " " in addr:
        raise InvalidInput(f"a gateway address must be a multiaddr like /ip4/…: {addr[:80]!r}")
    return addr


@dataclass(frozen=True)
class Gateway:
    """A node that accepts requests for its org, and where to dial it."""

    peer: PeerId
    addrs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.peer, PeerId):
            raise InvalidInput("Gateway.peer must be a PeerId")
        if not isinstance(self.addrs, tuple):
            raise InvalidInput("Gateway.addrs must be a tuple")
        if len(self.addrs) > MAX_ADDRS:
            raise RecordTooLarge(f"a gateway lists more than {MAX_ADDRS} addresses")
        for addr in self.addrs:
            _check_addr(addr)


@dataclass(frozen=True)
class OrgRecord:
    """An organization's self-signed directory entry."""

    org: OrgId
    name: str
    gateways: tuple[Gateway, ...]
    sequence: int
    expires: int
    egress: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.org, OrgId):
            raise InvalidInput("OrgRecord.org must be an OrgId")
        if not isinstance(self.name, str) or not self.name.isprintable():
            raise InvalidInput("an organization name must be printable text")
        if len(self.name) > MAX_ORG_NAME:
            raise RecordTooLarge(f"an organization name is at most {MAX_ORG_NAME} characters")
        if not isinstance(self.gateways, tuple) or not all(
            isinstance(g, Gateway) for g in self.gateways
        ):
            raise InvalidInput("OrgRecord.gateways must be a tuple of Gateway")
        if len(self.gateways) > MAX_GATEWAYS:
            raise RecordTooLarge(f"an org record lists at most {MAX_GATEWAYS} gateways")
        for name, value in (("sequence", self.sequence), ("expires", self.expires)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_U63:
                raise InvalidInput(f"OrgRecord.{name} must be an integer in 0..2**63-1")
        if not isinstance(self.egress, bool):
            raise InvalidInput("OrgRecord.egress must be a bool")

    def encode_body(self) -> bytes:
        """The exact bytes the organization signs."""
        return pack(
            {
                "v": 1,
                "org": self.org.public_key,
                "name": self.name,
                "gw": [[g.peer.public_key, list(g.addrs)] for g in self.gateways],
                "seq": self.sequence,
                "exp": self.expires,
                "egress": self.egress,
            }
        )

    @classmethod
    def decode_body(cls, body: bytes) -> OrgRecord:
        """Parse an org record body (no signature check).

        Raises:
            DecodeError: the body is not a valid org record.
        """
        obj = unpack_map(body, max_size=MAX_ORG_RECORD_SIZE, max_items=MAX_GATEWAYS)
        version = obj.get("v")
        if type(version) is not int or version != 1:
            raise DecodeError(f"unsupported org record version {version!r}")
        try:
            return cls(
                org=OrgId(get_field(obj, "org", bytes)),
                name=get_field(obj, "name", str, max_len=MAX_ORG_NAME),
                gateways=_decode_gateways(get_field(obj, "gw", list, max_len=MAX_GATEWAYS)),
                sequence=get_field(obj, "seq", int),
                expires=get_field(obj, "exp", int),
                egress=_decode_egress(obj),
            )
        except DecodeError:
            raise
        except InvalidInput as exc:
            raise DecodeError(f"invalid org record: {exc}") from None


def _decode_egress(obj: dict[str, object]) -> bool:
    # Absent in records signed before the field existed: those never gated egress.
    value = obj.get("egress", False)
    if not isinstance(value, bool):
        raise DecodeError("'egress' must be a boolean")
    return value


def _decode_gateways(items: list[object]) -> tuple[Gateway, ...]:
    gateways = []
    for item in items:
        if not isinstance(item, list) or len(item) != 2:
            raise DecodeError("each gateway is [peer key, [addrs]]")
        peer, addrs = item
        if not isinstance(peer, bytes) or not isinstance(addrs, list):
            raise DecodeError("each gateway is [peer key, [addrs]]")
        gateways.append(Gateway(PeerId(peer), tuple(addrs)))
    return tuple(gateways)


def issue_org_record(
    org_key: KeyPair,
    *,
    name: str,
    gateways: Iterable[Gateway],
    sequence: int,
    expires: int,
    egress: bool = False,
) -> bytes:
    """Sign an org record with the organization's root key; returns the envelope bytes.

    Raises:
        InvalidInput: a field is out of its limits.
        RecordTooLarge: the signed record exceeds 8 KiB.
    """
    record = OrgRecord(org_key.org_id, name, tuple(gateways), sequence, expires, egress)
    data = seal(org_key, ORG_RECORD_TAG, record.encode_body()).encode()
    if len(data) > MAX_ORG_RECORD_SIZE:
        raise RecordTooLarge(f"the org record is {len(data)} bytes; the limit is 8 KiB")
    return data


def decode_org_record(data: bytes) -> OrgRecord:
    """Decode org record bytes and check the org's signature, but not the expiry.

    Raises:
        RecordTooLarge, DecodeError: not an org record within limits.
        SignatureError: the signature does not verify.
        ScopeError: signed by a key other than the org it names.
    """
    env = open_envelope(data, tag=ORG_RECORD_TAG, max_size=MAX_ORG_RECORD_SIZE)
    if env.chain:
        raise DecodeError("an org record carries no certificate chain")
    record = OrgRecord.decode_body(env.body)
    if env.signer != record.org.public_key:
        raise ScopeError("org record is not signed by the organization it names")
    return record


def parse_org_record(data: bytes, now: int) -> OrgRecord:
    """Decode and fully verify org record bytes at ``now``.

    Raises:
        RecordTooLarge, DecodeError, SignatureError, ScopeError: as
            :func:`decode_org_record`.
        ExpiredRecord: ``now`` is at or past the record's ``expires``.
    """
    record = decode_org_record(data)
    if now >= record.expires:
        raise ExpiredRecord(f"org record of {record.org} expired at {record.expires}")
    return record
