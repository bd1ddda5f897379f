"""Signed deprecations: the tombstone by which an organization withdraws a dataset.

A deprecation travels as a signed envelope (:mod:`identity.envelope`) with tag
``dn/deprecation/v1``, signed by a node of the dataset's organization that holds
the *publisher* role, carrying that node's membership certificate as its chain.
It lives under the dataset's own DHT key (``/dn/<org did>/<name>``) and competes
with the dataset's descriptors by ``sequence``: a tombstone withdraws every
descriptor of a lower sequence, and a descriptor of a higher sequence brings the
dataset back. The body is a small MessagePack map (see ``docs/records.md``).

Verification (:func:`verify_deprecation`) checks, in order: size, envelope
structure and signature, body decoding and field limits, that the signer is the
``node`` named in the body, the certificate chain (trusted org, time window, not
revoked, issued *by the dataset's org* to *that node* with the *publisher* role),
and finally the tombstone's own expiry and clock sanity, exactly as descriptors do.

Invariants:
* A :class:`Deprecation` that exists satisfies every field limit; decoding
  untrusted bytes raises only :class:`~datanet.errors.DatanetError` subclasses.
* The signed bytes are kept verbatim (``VerifiedDeprecation.raw``): nothing is
  re-encoded before being forwarded.
* A tombstone is never valid past its certificate
  (:attr:`VerifiedDeprecation.valid_until`), as for descriptors.
* Times are integer Unix seconds passed in by the caller; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datanet.errors import (
    CertificateError,
    DecodeError,
    InvalidInput,
    RecordTooLarge,
    RoleNotGranted,
    ScopeError,
)
from datanet.records.descriptor import (
    MAX_LIFETIME,
    Descriptor,
    check_dataset_record,
)
from datanet.records.fields import check_int, check_text
from datanet.records.ids import DatasetId
from identity.certs import MembershipCertificate, Role, TrustStore, parse_certificate
from identity.encoding import field as get_field
from identity.encoding import pack, unpack_map
from identity.envelope import SignedEnvelope, open_envelope, seal
from identity.keys import KeyPair, OrgId, PeerId

__all__ = [
    "DEFAULT_DEPRECATION_LIFETIME",
    "DEPRECATION_TAG",
    "MAX_DEPRECATION_SIZE",
    "MAX_REASON",
    "Deprecation",
    "VerifiedDeprecation",
    "check_deprecation",
    "decode_deprecation_unverified",
    "deprecation_for",
    "open_deprecation",
    "sign_deprecation",
    "verify_deprecation",
]

DEPRECATION_TAG = "dn/deprecation/v1"
BODY_VERSION = 1
#: Hard limit on the whole signed envelope (body + signature + chain).
MAX_DEPRECATION_SIZE = 16 * 1024
#: The longest ``reason`` (characters, single line).
MAX_REASON = 256
#: How long a tombstone is kept by default: a year. It must outlive every copy of
#: the descriptors it withdraws that may still circulate (a node offline for weeks
#: comes back with them); descriptors default to 30 days and certificates to about
#: a year, and a tombstone is a few hundred bytes, so a year costs nothing and
#: stays inside ``MAX_LIFETIME`` (400 days) with room for clock skew.
#: :func:`deprecation_for` extends it to the withdrawn descriptor's expiry if later.
DEFAULT_DEPRECATION_LIFETIME = 365 * 86400


@dataclass(frozen=True, kw_only=True)
class Deprecation:
    """An organization's signed statement that a dataset is withdrawn.

    Args:
        dataset_id: the withdrawn dataset; its org is the withdrawing org.
        sequence: must be higher than the sequence of every descriptor it withdraws
            (it competes with them under the same DHT key; the highest wins).
        withdrawn_at: when it was withdrawn (Unix seconds).
        expires: when the tombstone may be dropped (after ``withdrawn_at``).
        node: the signing node: a node of the dataset's org with the publisher role.
        reason: free text for people, single line, at most 256 characters.

    Raises:
        InvalidInput: a field is malformed (``expires`` not after ``withdrawn_at``, …).
        RecordTooLarge: ``reason`` is over its limit.
    """

    dataset_id: DatasetId
    sequence: int
    withdrawn_at: int
    expires: int
    node: PeerId
    reason: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.dataset_id, DatasetId):
            raise InvalidInput("dataset_id must be a DatasetId")
        if not isinstance(self.node, PeerId):
            raise InvalidInput("node must be a PeerId")
        check_int("sequence", self.sequence)
        check_int("withdrawn_at", self.withdrawn_at)
        check_int("expires", self.expires)
        check_text("reason", self.reason, MAX_REASON)
        if self.expires <= self.withdrawn_at:
            raise InvalidInput("expires must lie after withdrawn_at")

    @property
    def org(self) -> OrgId:
        """The withdrawing organization (the dataset id's org)."""
        return self.dataset_id.org

    def encode_body(self) -> bytes:
        """The exact body bytes the signing node signs."""
        return pack(
            {
                "v": BODY_VERSION,
                "org": self.dataset_id.org.public_key,
                "name": self.dataset_id.name,
                "node": self.node.public_key,
                "seq": self.sequence,
                "at": self.withdrawn_at,
                "exp": self.expires,
                "reason": self.reason,
            }
        )

    @classmethod
    def decode_body(cls, body: bytes) -> Deprecation:
        """Parse a deprecation body (no signature check; see :func:`verify_deprecation`).

        Unknown keys are ignored so that later versions can append fields.

        Raises:
            DecodeError: the body is not a valid deprecation; the message names the field.
            RecordTooLarge: the body or a field is over its limit.
        """
        obj: dict[str, Any] = unpack_map(body, max_size=MAX_DEPRECATION_SIZE, max_items=16)
        version = obj.get("v")
        if type(version) is not int or version != BODY_VERSION:
            raise DecodeError(f"unsupported deprecation version {version!r}")
        try:
            return cls(
                dataset_id=DatasetId(
                    OrgId(get_field(obj, "org", bytes)), get_field(obj, "name", str)
                ),
                node=PeerId(get_field(obj, "node", bytes)),
                sequence=get_field(obj, "seq", int),
                withdrawn_at=get_field(obj, "at", int),
                expires=get_field(obj, "exp", int),
                reason=get_field(obj, "reason", str),
            )
        except DecodeError:
            raise
        except InvalidInput as exc:
            raise DecodeError(f"invalid deprecation: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict with readable keys (the HTTP API's form)."""
        return {
            "dataset_id": str(self.dataset_id),
            "org": str(self.dataset_id.org),
            "node": str(self.node),
            "sequence": self.sequence,
            "withdrawn_at": self.withdrawn_at,
            "expires": self.expires,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class VerifiedDeprecation:
    """A deprecation that passed :func:`verify_deprecation` at some ``now``.

    Attributes:
        deprecation: the decoded record.
        certificate: the signing node's membership certificate.
        raw: the exact envelope bytes that were verified (ship these, never re-encode).
    """

    deprecation: Deprecation
    certificate: MembershipCertificate
    raw: bytes

    @property
    def valid_until(self) -> int:
        """When the tombstone stops being valid: its own expiry or its certificate's."""
        return min(self.deprecation.expires, self.certificate.not_after)


def deprecation_for(
    desc: Descriptor,
    *,
    node: PeerId,
    now: int,
    reason: str = "",
    lifetime: int = DEFAULT_DEPRECATION_LIFETIME,
) -> Deprecation:
    """The tombstone that withdraws ``desc`` (and every lower sequence) at ``now``.

    Its sequence is ``desc.sequence + 1``; it expires ``lifetime`` after ``now`` or
    at ``desc.expires`` if that is later (so it outlives the withdrawn record),
    never beyond ``now + MAX_LIFETIME`` (which verifiers would refuse).

    Raises:
        InvalidInput: ``desc.sequence`` is already the largest sequence, or a field
            is out of its limits.
    """
    expires = min(max(now + lifetime, desc.expires), now + MAX_LIFETIME)
    return Deprecation(
        dataset_id=desc.dataset_id,
        sequence=desc.sequence + 1,
        withdrawn_at=now,
        expires=expires,
        node=node,
        reason=reason,
    )


def sign_deprecation(dep: Deprecation, node_key: KeyPair, chain: Sequence[bytes]) -> bytes:
    """Sign ``dep`` with the withdrawing node's key; returns the envelope bytes.

    The chain is checked for consistency (not for trust or time, which depend on
    the verifier) so that a node never ships a record every verifier will refuse.

    Raises:
        ScopeError: the key is not ``dep.node``, or the certificate is for another
            node or another organization than the dataset's.
        CertificateError, DecodeError, SignatureError: the chain is unusable.
        RoleNotGranted: the certificate lacks the publisher role.
        RecordTooLarge: the signed envelope exceeds 16 KiB.
    """
    if node_key.peer_id != dep.node:
        raise ScopeError(f"deprecation names node {dep.node}, but is signed by {node_key.peer_id}")
    if len(chain) != 1:
        raise CertificateError(f"expected a chain of one certificate, got {len(chain)}")
    cert = parse_certificate(chain[0])
    if cert.node != dep.node:
        raise ScopeError(f"certificate is for node {cert.node}, not {dep.node}")
    if cert.org != dep.dataset_id.org:
        raise ScopeError(
            f"certificate is issued by {cert.org}, but the dataset belongs to {dep.dataset_id.org}"
        )
    if Role.PUBLISHER not in cert.roles:
        raise RoleNotGranted(f"certificate {cert.serial} does not grant the publisher role")
    data = seal(node_key, DEPRECATION_TAG, dep.encode_body(), chain).encode()
    if len(data) > MAX_DEPRECATION_SIZE:
        raise RecordTooLarge(
            f"the signed deprecation is {len(data)} bytes; the limit is {MAX_DEPRECATION_SIZE}"
        )
    return data


def open_deprecation(data: bytes) -> tuple[Deprecation, SignedEnvelope]:
    """Decode an envelope, check its signature and that the signer is ``node``.

    The part of verification that depends on neither time nor trust, so its
    result may be cached per exact bytes (the DHT validators do).

    Raises:
        RecordTooLarge: ``data`` is over 16 KiB.
        DecodeError: ``data`` is not a well-formed deprecation envelope.
        SignatureError: the signature does not verify.
        ScopeError: the signer is not the deprecation's ``node``.
    """
    env = open_envelope(data, tag=DEPRECATION_TAG, max_size=MAX_DEPRECATION_SIZE)
    dep = Deprecation.decode_body(env.body)
    if env.signer != dep.node.public_key:
        raise ScopeError(
            f"deprecation names node {dep.node}, but is signed by {PeerId(env.signer)}"
        )
    return dep, env


def check_deprecation(
    dep: Deprecation, env: SignedEnvelope, trust: TrustStore, now: int
) -> MembershipCertificate:
    """The time- and trust-dependent half of verification (after :func:`open_deprecation`).

    Raises:
        CertificateError (and subclasses): the chain is untrusted, expired, not
            yet valid, revoked, or lacks the publisher role.
        ScopeError: the certificate is for another node or organization.
        ExpiredRecord: ``now`` is at or past ``dep.expires``.
        VerificationError: ``withdrawn_at`` lies in the future, or ``expires`` too far.
    """
    return check_dataset_record(
        f"deprecation of {dep.dataset_id}",
        env,
        trust,
        now,
        node=dep.node,
        org=dep.dataset_id.org,
        dated=("is dated", dep.withdrawn_at),
        expires=dep.expires,
    )


def verify_deprecation(data: bytes, trust: TrustStore, now: int) -> VerifiedDeprecation:
    """Fully verify deprecation envelope bytes from anywhere.

    Raises:
        RecordTooLarge, DecodeError: the bytes are not a deprecation within limits.
        SignatureError: the signature does not verify.
        ScopeError: the signer is not ``node``, or the certificate is of another
            org than the dataset's or for another node.
        CertificateError (and subclasses): the certificate is unacceptable.
        ExpiredRecord: the tombstone expired.
        VerificationError: clock sanity failed (dated in the future, expiry too far).
    """
    dep, env = open_deprecation(data)
    cert = check_deprecation(dep, env, trust, now)
    return VerifiedDeprecation(dep, cert, bytes(data))


def decode_deprecation_unverified(data: bytes) -> Deprecation:
    """Decode a deprecation for display when it cannot be fully verified.

    The envelope signature and the signer/``node`` match are still checked, but
    trust, certificate validity, revocation and expiry are not. Never act on it.

    Raises:
        RecordTooLarge, DecodeError, SignatureError, ScopeError: as :func:`open_deprecation`.
    """
    return open_deprecation(data)[0]
