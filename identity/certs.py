"""Membership certificates, revocations and the trust store.

An organization (an Ed25519 root key named by its ``did:key``) issues a
**membership certificate** to each of its nodes: org, node peer id, roles,
validity window, serial. It revokes serials with a signed, cumulative
**revocation list** whose highest sequence number wins.

A chain is, today, exactly one certificate (org root -> node): the org id is the
root key itself, so no root certificate is needed. Chains are carried as a list
so that delegation (an org's intermediate key) can be appended later.

Invariants:
* ``TrustStore.verify_chain`` checks signature, trust, validity window, revocation
  and role on every call; only the signature check of identical certificate
  bytes is cached (that part can never change its answer).
* Times are integer Unix seconds passed in by the caller; nothing here reads a clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from identity.encoding import field as get_field
from identity.encoding import pack, unpack_map
from identity.envelope import open_envelope, seal
from identity.errors import (
    CertificateError,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    DecodeError,
    InvalidInput,
    RoleNotGranted,
    ScopeError,
    UntrustedOrganization,
)
from identity.keys import KeyPair, OrgId, PeerId

__all__ = [
    "CERT_TAG",
    "MAX_CERT_SIZE",
    "REVOCATION_TAG",
    "MembershipCertificate",
    "Revocation",
    "Role",
    "TrustStore",
    "issue_certificate",
    "issue_revocation",
    "parse_certificate",
    "parse_revocation",
]

CERT_TAG = "dn/cert/v1"
REVOCATION_TAG = "dn/revocation/v1"
MAX_CERT_SIZE = 1024
MAX_REVOCATION_SIZE = 64 * 1024
MAX_REVOKED_SERIALS = 4096
MAX_NAME_LEN = 128
_MAX_U63 = 2**63 - 1


class Role(StrEnum):
    """What a certificate lets a node do for its organization."""

    PUBLISHER = "publisher"
    GATEWAY = "gateway"
    REQUESTER = "requester"
    ADMIN = "admin"


def _parse_roles(values: object) -> frozenset[Role]:
    if not isinstance(values, list) or len(values) > len(Role):
        raise DecodeError("roles must be a short list")
    try:
        return frozenset(Role(v) for v in values)
    except ValueError:
        raise DecodeError(f"unknown role in {values!r}") from None


def _check_u63(name: str, value: int) -> int:
    if not 0 <= value <= _MAX_U63:
        raise InvalidInput(f"{name} must be between 0 and 2**63-1")
    return value


@dataclass(frozen=True)
class MembershipCertificate:
    """An org's statement that ``node`` belongs to it with ``roles`` in a window."""

    org: OrgId
    node: PeerId
    roles: frozenset[Role]
    not_before: int
    not_after: int
    serial: int
    org_name: str = ""

    def __post_init__(self) -> None:
        _check_u63("not_before", self.not_before)
        _check_u63("not_after", self.not_after)
        _check_u63("serial", self.serial)
        if self.not_after <= self.not_before:
            raise InvalidInput("a certificate's not_after must be later than its not_before")
        if len(self.org_name) > MAX_NAME_LEN:
            raise InvalidInput(f"organization name is longer than {MAX_NAME_LEN} characters")

    def encode_body(self) -> bytes:
        """The exact bytes the organization signs."""
        return pack(
            {
                "v": 1,
                "org": self.org.public_key,
                "node": self.node.public_key,
                "roles": sorted(r.value for r in self.roles),
                "nbf": self.not_before,
                "naf": self.not_after,
                "serial": self.serial,
                "name": self.org_name,
            }
        )

    @classmethod
    def decode_body(cls, body: bytes) -> MembershipCertificate:
        """Parse a certificate body (no signature check; see :func:`parse_certificate`)."""
        obj = unpack_map(body, max_size=MAX_CERT_SIZE, max_items=16)
        if obj.get("v") != 1:
            raise DecodeError("unsupported certificate version")
        try:
            return cls(
                org=OrgId(get_field(obj, "org", bytes)),
                node=PeerId(get_field(obj, "node", bytes)),
                roles=_parse_roles(obj.get("roles")),
                not_before=get_field(obj, "nbf", int),
                not_after=get_field(obj, "naf", int),
                serial=get_field(obj, "serial", int),
                org_name=get_field(obj, "name", str, max_len=MAX_NAME_LEN),
            )
        except InvalidInput as exc:
            raise DecodeError(f"invalid certificate: {exc}") from None

    def check_time(self, now: int) -> None:
        """Raise unless ``now`` lies inside the validity window."""
        if now < self.not_before:
            raise CertificateNotYetValid(
                f"certificate {self.serial} of {self.org} is not valid before {self.not_before}"
            )
        if now >= self.not_after:
            raise CertificateExpired(
                f"certificate {self.serial} of {self.org} expired at {self.not_after}"
            )


def issue_certificate(
    org_key: KeyPair,
    node: PeerId,
    roles: Iterable[Role],
    *,
    not_before: int,
    not_after: int,
    serial: int,
    org_name: str = "",
) -> bytes:
    """Issue and sign a membership certificate; returns its wire bytes."""
    cert = MembershipCertificate(
        org_key.org_id, node, frozenset(roles), not_before, not_after, serial, org_name
    )
    return seal(org_key, CERT_TAG, cert.encode_body()).encode()


def parse_certificate(data: bytes) -> MembershipCertificate:
    """Decode certificate bytes and check that the named org signed them.

    Validity window, trust and revocation are *not* checked here (they depend on
    ``now`` and on the trust store): use :meth:`TrustStore.verify_chain`.

    Raises:
        DecodeError, SignatureError: the bytes are not a well-signed certificate.
        CertificateError: the signer is not the organization named inside.
    """
    env = open_envelope(data, tag=CERT_TAG, max_size=MAX_CERT_SIZE)
    cert = MembershipCertificate.decode_body(env.body)
    if env.signer != cert.org.public_key:
        raise CertificateError("certificate is not signed by the organization it names")
    return cert


@dataclass(frozen=True)
class Revocation:
    """An org's cumulative list of revoked certificate serials (highest sequence wins)."""

    org: OrgId
    serials: frozenset[int]
    sequence: int
    issued_at: int
    reason: str = ""

    def encode_body(self) -> bytes:
        """The exact bytes the organization signs."""
        return pack(
            {
                "v": 1,
                "org": self.org.public_key,
                "serials": sorted(self.serials),
                "seq": self.sequence,
                "at": self.issued_at,
                "reason": self.reason,
            }
        )


def issue_revocation(
    org_key: KeyPair, serials: Iterable[int], *, sequence: int, issued_at: int, reason: str = ""
) -> bytes:
    """Sign a revocation list for ``org_key``'s organization; returns its wire bytes.

    Raises:
        InvalidInput: too many serials, or a reason longer than 256 characters.
    """
    serial_set = frozenset(_check_u63("serial", s) for s in serials)
    if len(serial_set) > MAX_REVOKED_SERIALS:
        raise InvalidInput(f"a revocation list holds at most {MAX_REVOKED_SERIALS} serials")
    if len(reason) > 256:
        raise InvalidInput("a revocation reason is at most 256 characters")
    rev = Revocation(
        org_key.org_id,
        serial_set,
        _check_u63("sequence", sequence),
        _check_u63("issued_at", issued_at),
        reason,
    )
    return seal(org_key, REVOCATION_TAG, rev.encode_body()).encode()


def parse_revocation(data: bytes) -> Revocation:
    """Decode revocation bytes and check the organization's signature.

    Raises:
        DecodeError, SignatureError: not a well-signed revocation list.
        ScopeError: signed by a key other than the organization it names.
    """
    env = open_envelope(data, tag=REVOCATION_TAG, max_size=MAX_REVOCATION_SIZE)
    obj = unpack_map(env.body, max_size=MAX_REVOCATION_SIZE, max_items=MAX_REVOKED_SERIALS)
    if obj.get("v") != 1:
        raise DecodeError("unsupported revocation version")
    serials = get_field(obj, "serials", list, max_len=MAX_REVOKED_SERIALS)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in serials):
        raise DecodeError("revoked serials must be non-negative integers")
    rev = Revocation(
        org=OrgId(get_field(obj, "org", bytes)),
        serials=frozenset(serials),
        sequence=get_field(obj, "seq", int),
        issued_at=get_field(obj, "at", int),
        reason=get_field(obj, "reason", str, max_len=256),
    )
    if env.signer != rev.org.public_key:
        raise ScopeError("revocation list is not signed by the organization it names")
    return rev


@dataclass
class TrustStore:
    """Which organizations this node trusts, and what they revoked.

    Args:
        trusted: org ids whose certificates are accepted.
        accept_any: accept a valid chain from *any* org (``members``/``open``
            discovery). Signatures, windows and revocations still apply.
    """

    trusted: set[OrgId] = field(default_factory=set)
    accept_any: bool = False
    revocations: dict[OrgId, Revocation] = field(default_factory=dict)
    _cache: OrderedDict[bytes, MembershipCertificate] = field(
        default_factory=OrderedDict, repr=False
    )
    cache_size: int = 4096

    def trust(self, org: OrgId) -> None:
        """Add ``org`` to the trusted set."""
        self.trusted.add(org)

    def add_revocation(self, rev: Revocation) -> bool:
        """Keep ``rev`` if it is newer than what we hold for its org.

        Returns:
            True if it replaced or added a list, False if it was stale.
        """
        held = self.revocations.get(rev.org)
        if held is not None and held.sequence >= rev.sequence:
            return False
        self.revocations[rev.org] = rev
        return True

    def is_revoked(self, org: OrgId, serial: int) -> bool:
        """Whether ``org`` has revoked certificate ``serial``."""
        rev = self.revocations.get(org)
        return rev is not None and serial in rev.serials

    def _parse_cached(self, data: bytes) -> MembershipCertificate:
        cert = self._cache.get(data)
        if cert is not None:
            self._cache.move_to_end(data)
            return cert
        cert = parse_certificate(data)
        self._cache[data] = cert
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return cert

    def verify_chain(
        self,
        chain: Sequence[bytes],
        *,
        now: int,
        node: PeerId | None = None,
        role: Role | None = None,
        org: OrgId | None = None,
    ) -> MembershipCertificate:
        """Verify a membership chain and return the node's certificate.

        Args:
            chain: certificate wire bytes, leaf first (today: exactly one).
            now: the current time in Unix seconds.
            node: if given, the certificate must be for this node.
            role: if given, the certificate must grant this role.
            org: if given, the certificate must be issued by this org.

        Raises:
            CertificateError (or a subclass): the chain is not acceptable; the
                subclass says why (expired, revoked, untrusted, role, …).
            ScopeError: the certificate is for another node or organization.
        """
        if len(chain) != 1:
            raise CertificateError(f"expected a chain of one certificate, got {len(chain)}")
        cert = self._parse_cached(chain[0])
        if not self.accept_any and cert.org not in self.trusted:
            raise UntrustedOrganization(f"organization {cert.org} is not trusted here")
        cert.check_time(now)
        if self.is_revoked(cert.org, cert.serial):
            raise CertificateRevoked(f"certificate {cert.serial} of {cert.org} was revoked")
        if node is not None and cert.node != node:
            raise ScopeError(f"certificate is for node {cert.node}, not {node}")
        if org is not None and cert.org != org:
            raise ScopeError(f"certificate is issued by {cert.org}, not {org}")
        if role is not None and role not in cert.roles:
            raise RoleNotGranted(f"certificate {cert.serial} does not grant the {role} role")
        return cert
