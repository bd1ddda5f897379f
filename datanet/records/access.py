"""Access requests, their route traces, grants, denials and grant revocations.

Five signed record kinds (envelopes of :mod:`identity.envelope`, each carrying
its signer's membership certificate as a chain of exactly one), whose bodies are
small MessagePack maps with ``"v": 1`` (unknown keys ignored; see
``docs/records.md`` for the tables and every limit):

=============================  =========================  =================================
tag                            signed by                  role checked
=============================  =========================  =================================
``dn/access-request/v1``       the requesting node        requester, of the claimed org
``dn/access-trace/v1``         each hop on the route      gateway ("forward") or publisher
                                                          of the dataset's org ("decide")
``dn/grant/v1``                the deciding node          publisher of the dataset's org
``dn/denial/v1``               the deciding node          publisher of the dataset's org
``dn/grant-revocation/v1``     a node of the owner        publisher of the dataset's org
=============================  =========================  =================================

A request's id is the SHA-256 of its exact envelope bytes (:func:`request_id`).
Every hop that carries the request appends a trace entry linked to the previous
one (``prev`` = SHA-256 of the previous entry's bytes, the request id for hop 0).
A grant embeds the request and the trace verbatim inside its signed body, so
the issuer vouches for the route it signed: :func:`verify_grant` checks the
grant's one signature and, by default, the embedded records only structurally
(fields, links, signers named); ``deep=True`` also verifies every embedded
signature and certificate chain as of the grant's ``issued_at``.

Invariants:
* A record dataclass that exists satisfies every field limit; decoding untrusted
  bytes raises only :class:`~datanet.errors.DatanetError` subclasses.
* Signed bytes are kept verbatim (``raw``); nothing is re-encoded before being
  forwarded, and ids are hashes of those exact bytes.
* :func:`verify_grant` makes exactly one Ed25519 signature check by default (the
  grant's own; certificates are parsed and checked once by the
  :class:`~identity.certs.TrustStore` cache); ``deep=True`` adds one per embedded record.
* Times are integer Unix seconds passed in by the caller; nothing here reads a
  clock or draws randomness.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from datanet.errors import (
    CertificateError,
    DatanetError,
    DecodeError,
    ExpiredRecord,
    GrantRevoked,
    HopLimitExceeded,
    InvalidInput,
    LoopDetected,
    RecordTooLarge,
    RequestExpired,
    RoleNotGranted,
    ScopeError,
    VerificationError,
)
from datanet.records.descriptor import MAX_CLOCK_SKEW, MAX_LIFETIME, check_dataset_record
from datanet.records.fields import check_int, check_text
from datanet.records.ids import DatasetId
from datanet.records.policy import DENIAL_REASONS, MAX_VALIDITY_DAYS
from datanet.records.purposes import canonical_purpose
from datanet.records.sealed import MAX_SEALED
from identity.certs import MembershipCertificate, Role, TrustStore, parse_certificate
from identity.encoding import field as get_field
from identity.encoding import pack, unpack_map
from identity.envelope import SignedEnvelope, open_envelope, seal
from identity.keys import KeyPair, OrgId, PeerId

__all__ = [
    "ACCESS_REQUEST_TAG",
    "ACCESS_TRACE_TAG",
    "DENIAL_REASONS",
    "DENIAL_TAG",
    "GRANT_ID_SIZE",
    "GRANT_REVOCATION_TAG",
    "GRANT_TAG",
    "GREV_PREFIX",
    "MAX_DENIAL_SIZE",
    "MAX_GRANT_REVOCATION_SIZE",
    "MAX_GRANT_SIZE",
    "MAX_HOPS",
    "MAX_MESSAGE",
    "MAX_NOTE",
    "MAX_REQUEST_LIFETIME",
    "MAX_REQUEST_SIZE",
    "MAX_TRACE_ENTRY_SIZE",
    "NONCE_SIZE",
    "REQUEST_ID_SIZE",
    "AccessRequest",
    "Denial",
    "Grant",
    "GrantRevocation",
    "TraceEntry",
    "VerifiedDenial",
    "VerifiedGrant",
    "VerifiedGrantRevocation",
    "VerifiedRequest",
    "VerifiedTraceEntry",
    "check_grant_revocation",
    "decode_grant_unverified",
    "grant_revocation_for",
    "grant_revocation_key",
    "open_denial",
    "open_grant_revocation",
    "open_request",
    "open_trace_entry",
    "request_id",
    "sign_denial",
    "sign_grant",
    "sign_grant_revocation",
    "sign_request",
    "sign_trace_entry",
    "verify_denial",
    "verify_grant",
    "verify_grant_revocation",
    "verify_request",
    "verify_trace",
]

ACCESS_REQUEST_TAG = "dn/access-request/v1"
ACCESS_TRACE_TAG = "dn/access-trace/v1"
GRANT_TAG = "dn/grant/v1"
DENIAL_TAG = "dn/denial/v1"
GRANT_REVOCATION_TAG = "dn/grant-revocation/v1"
BODY_VERSION = 1

#: Limits on whole signed envelopes (body + signature + chain), in bytes.
MAX_REQUEST_SIZE = 8 * 1024
MAX_TRACE_ENTRY_SIZE = 4 * 1024
MAX_GRANT_SIZE = 64 * 1024
MAX_DENIAL_SIZE = 64 * 1024
MAX_GRANT_REVOCATION_SIZE = 16 * 1024
#: The most trace entries a request may gather (and a grant or denial carry).
MAX_HOPS = 8
#: The longest request note (characters; newlines and tabs allowed).
MAX_NOTE = 512
#: The longest denial message and revocation reason (characters, single line).
MAX_MESSAGE = 256
#: The longest a request may stay open: ``deadline - created``.
MAX_REQUEST_LIFETIME = 30 * 86400
NONCE_SIZE = 16
GRANT_ID_SIZE = 16
REQUEST_ID_SIZE = 32
_REPLY_KEY_SIZE = 32
#: The DHT key prefix of grant revocations: ``/dn-grev/<org did>/<grant id hex>``.
GREV_PREFIX = b"/dn-grev/"

Action = Literal["forward", "decide"]
_ACTIONS: tuple[str, ...] = ("forward", "decide")


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def request_id(raw: bytes) -> bytes:
    """A request's id: SHA-256 of its exact envelope bytes (32 bytes; shown as hex)."""
    return _sha256(raw)


def _check_bytes(name: str, value: object, size: int) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise InvalidInput(f"{name} must be {size} bytes")
    return value


def _check_type(name: str, value: object, kind: type) -> None:
    if not isinstance(value, kind):
        raise InvalidInput(f"{name} must be a {kind.__name__}")


def _decode(kind: str, build: Any) -> Any:
    """Run a body constructor, turning field errors into DecodeError naming the record."""
    try:
        return build()
    except DecodeError:
        raise
    except InvalidInput as exc:
        raise DecodeError(f"invalid {kind}: {exc}") from None


def _body(body: bytes, kind: str, max_size: int, max_items: int = 24) -> dict[str, Any]:
    obj: dict[str, Any] = unpack_map(body, max_size=max_size, max_items=max_items)
    version = obj.get("v")
    if type(version) is not int or version != BODY_VERSION:
        raise DecodeError(f"unsupported {kind} version {version!r}")
    return obj


def _signer_certificate(
    chain: Sequence[bytes], key: KeyPair, *, node: PeerId, org: OrgId, role: Role, what: str
) -> MembershipCertificate:
    """The consistency checks a signer makes on its own key and chain before signing."""
    if key.peer_id != node:
        raise ScopeError(f"{what} names node {node}, but is signed by {key.peer_id}")
    if len(chain) != 1:
        raise CertificateError(f"expected a chain of one certificate, got {len(chain)}")
    cert = parse_certificate(chain[0])
    if cert.node != node:
        raise ScopeError(f"certificate is for node {cert.node}, not {node}")
    if cert.org != org:
        raise ScopeError(f"certificate is issued by {cert.org}, not {org}")
    if role not in cert.roles:
        raise RoleNotGranted(f"certificate {cert.serial} does not grant the {role} role")
    return cert


def _sealed(key: KeyPair, tag: str, body: bytes, chain: Sequence[bytes], limit: int) -> bytes:
    data = seal(key, tag, body, chain).encode()
    if len(data) > limit:
        what = tag.split("/")[1]
        raise RecordTooLarge(f"the signed {what} is {len(data)} bytes; the limit is {limit}")
    return data


# --- requests ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AccessRequest:
    """A node's signed request for access to a dataset.

    Args:
        dataset_id: the dataset asked for.
        sequence: the descriptor sequence the requester saw.
        purpose: a canonical purpose id (:mod:`datanet.records.purposes`).
        validity_days: the grant length asked for, 1..``MAX_VALIDITY_DAYS``.
        node: the requesting node (the signer); it holds the requester role.
        org: the requesting node's organization.
        nonce: 16 random bytes, so two otherwise equal requests differ.
        created: when it was made; ``deadline`` lies after it, at most 30 days.
        reply_key: the X25519 public key the access details are sealed to.
        note: free text for the owner's operator (newlines allowed, 512 characters).

    Raises:
        InvalidInput: a field is malformed (the message names it).
        RecordTooLarge: ``note`` is over its limit.
    """

    dataset_id: DatasetId
    sequence: int
    purpose: str
    validity_days: int
    node: PeerId
    org: OrgId
    nonce: bytes
    created: int
    deadline: int
    reply_key: bytes
    note: str = ""

    def __post_init__(self) -> None:
        _check_type("dataset_id", self.dataset_id, DatasetId)
        _check_type("node", self.node, PeerId)
        _check_type("org", self.org, OrgId)
        check_int("sequence", self.sequence)
        if not isinstance(self.purpose, str) or canonical_purpose(self.purpose) != self.purpose:
            raise InvalidInput(
                f"purpose must be a vocabulary id (e.g. {canonical_purpose(self.purpose)!r}), "
                f"not {self.purpose!r}"
            )
        check_int("validity_days", self.validity_days, 1, MAX_VALIDITY_DAYS)
        _check_bytes("nonce", self.nonce, NONCE_SIZE)
        check_int("created", self.created)
        check_int("deadline", self.deadline)
        if not self.created < self.deadline <= self.created + MAX_REQUEST_LIFETIME:
            raise InvalidInput(
                "deadline must lie after created, at most "
                f"{MAX_REQUEST_LIFETIME // 86400} days later"
            )
        _check_bytes("reply_key", self.reply_key, _REPLY_KEY_SIZE)
        check_text("note", self.note, MAX_NOTE, multiline=True)

    def encode_body(self) -> bytes:
        """The exact body bytes the requesting node signs."""
        return pack(
            {
                "v": BODY_VERSION,
                "dorg": self.dataset_id.org.public_key,
                "dname": self.dataset_id.name,
                "seq": self.sequence,
                "purpose": self.purpose,
                "days": self.validity_days,
                "node": self.node.public_key,
                "org": self.org.public_key,
                "nonce": self.nonce,
                "created": self.created,
                "deadline": self.deadline,
                "rkey": self.reply_key,
                "note": self.note,
            }
        )

    @classmethod
    def decode_body(cls, body: bytes) -> AccessRequest:
        """Parse a request body (no signature check). Unknown keys are ignored.

        Raises:
            DecodeError: not a valid request body; the message names the field.
            RecordTooLarge: over a limit.
        """
        obj = _body(body, "access request", MAX_REQUEST_SIZE)
        return _decode(  # type: ignore[no-any-return]
            "access request",
            lambda: cls(
                dataset_id=DatasetId(
                    OrgId(get_field(obj, "dorg", bytes)), get_field(obj, "dname", str)
                ),
                sequence=get_field(obj, "seq", int),
                purpose=get_field(obj, "purpose", str),
                validity_days=get_field(obj, "days", int),
                node=PeerId(get_field(obj, "node", bytes)),
                org=OrgId(get_field(obj, "org", bytes)),
                nonce=get_field(obj, "nonce", bytes),
                created=get_field(obj, "created", int),
                deadline=get_field(obj, "deadline", int),
                reply_key=get_field(obj, "rkey", bytes),
                note=get_field(obj, "note", str),
            ),
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (bytes as lowercase hex)."""
        return {
            "dataset_id": str(self.dataset_id),
            "sequence": self.sequence,
            "purpose": self.purpose,
            "validity_days": self.validity_days,
            "node": str(self.node),
            "org": str(self.org),
            "nonce": self.nonce.hex(),
            "created": self.created,
            "deadline": self.deadline,
            "reply_key": self.reply_key.hex(),
            "note": self.note,
        }


@dataclass(frozen=True)
class VerifiedRequest:
    """A request that passed :func:`verify_request` (or a grant's structural check).

    Attributes:
        request: the decoded request.
        certificate: the requester's membership certificate; None when the request
            was checked only structurally inside a grant (``verify_grant`` without
            ``deep``), where the grant's issuer vouches for it.
        raw: the exact envelope bytes.
    """

    request: AccessRequest
    certificate: MembershipCertificate | None
    raw: bytes

    @cached_property
    def id(self) -> bytes:
        """The request id: SHA-256 of :attr:`raw`."""
        return _sha256(self.raw)


def sign_request(req: AccessRequest, node_key: KeyPair, chain: Sequence[bytes]) -> bytes:
    """Sign ``req`` with the requesting node's key; returns the envelope bytes.

    Raises:
        ScopeError: the key is not ``req.node``, or the certificate is for another
            node or organization than ``req.node`` / ``req.org``.
        RoleNotGranted: the certificate lacks the requester role.
        CertificateError, DecodeError, SignatureError: the chain is unusable.
        RecordTooLarge: the envelope exceeds 8 KiB.
    """
    _signer_certificate(
        chain, node_key, node=req.node, org=req.org, role=Role.REQUESTER, what="access request"
    )
    return _sealed(node_key, ACCESS_REQUEST_TAG, req.encode_body(), chain, MAX_REQUEST_SIZE)


def open_request(data: bytes) -> tuple[AccessRequest, SignedEnvelope]:
    """Decode a request envelope, check its signature and that the signer is ``node``.

    Depends on neither time nor trust, so it may be cached per exact bytes.

    Raises:
        RecordTooLarge, DecodeError: not a request within limits.
        SignatureError: the signature does not verify.
        ScopeError: the signer is not the request's ``node``.
    """
    env = open_envelope(data, tag=ACCESS_REQUEST_TAG, max_size=MAX_REQUEST_SIZE)
    req = AccessRequest.decode_body(env.body)
    if env.signer != req.node.public_key:
        raise ScopeError(
            f"access request names node {req.node}, but is signed by {PeerId(env.signer)}"
        )
    return req, env


def verify_request(
    data: bytes, trust: TrustStore, now: int, *, at: int | None = None
) -> VerifiedRequest:
    """Fully verify request envelope bytes.

    Args:
        data: the envelope bytes.
        trust: the trust store the requester's chain is checked against.
        now: the current time.
        at: check the certificate and the clock as of this time instead (a grant's
            ``issued_at``); the deadline is then not checked.

    Raises:
        RecordTooLarge, DecodeError, SignatureError, ScopeError: see :func:`open_request`.
        CertificateError (and subclasses): the chain is not a requester
            certificate of ``org`` for ``node`` (untrusted, expired, revoked, role).
        VerificationError: the request is dated in the future.
        RequestExpired: ``now`` is at or past the deadline (only without ``at``).
    """
    req, env = open_request(data)
    when = now if at is None else at
    cert = trust.verify_chain(env.chain, now=when, node=req.node, role=Role.REQUESTER, org=req.org)
    if req.created > when + MAX_CLOCK_SKEW:
        raise VerificationError(
            f"access request of {req.node} is dated in the future ({req.created} > {when})"
        )
    if at is None and now >= req.deadline:
        raise RequestExpired(f"access request of {req.node} expired at {req.deadline}")
    return VerifiedRequest(req, cert, bytes(data))


# --- trace entries ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TraceEntry:
    """One hop's signed statement that it carried a request.

    Args:
        request_id: the id of the request carried.
        hop: the entry's position, 0-based, below ``MAX_HOPS``.
        node: the signing node; org: its organization.
        prev: SHA-256 of the previous entry's bytes (the request id for hop 0).
        at: when the hop handled it.
        action: ``forward`` (passed it on to ``next``) or ``decide`` (the owner's
            node that decides; ``next`` is None).
        next: the node it was forwarded to.
    """

    request_id: bytes
    hop: int
    node: PeerId
    org: OrgId
    prev: bytes
    at: int
    action: Action
    next: PeerId | None = None

    def __post_init__(self) -> None:
        _check_bytes("request_id", self.request_id, REQUEST_ID_SIZE)
        check_int("hop", self.hop, 0, MAX_HOPS - 1)
        _check_type("node", self.node, PeerId)
        _check_type("org", self.org, OrgId)
        _check_bytes("prev", self.prev, REQUEST_ID_SIZE)
        check_int("at", self.at)
        if self.action not in _ACTIONS:
            raise InvalidInput(f"action must be forward or decide, not {self.action!r}")
        if self.action == "forward":
            _check_type("next", self.next, PeerId)
            if self.next == self.node:
                raise InvalidInput("a hop cannot forward to itself")
        elif self.next is not None:
            raise InvalidInput("a decide entry names no next node")

    def encode_body(self) -> bytes:
        """The exact body bytes the hop signs."""
        return pack(
            {
                "v": BODY_VERSION,
                "req": self.request_id,
                "hop": self.hop,
                "node": self.node.public_key,
                "org": self.org.public_key,
                "prev": self.prev,
                "at": self.at,
                "act": self.action,
                "next": None if self.next is None else self.next.public_key,
            }
        )

    @classmethod
    def decode_body(cls, body: bytes) -> TraceEntry:
        """Parse a trace entry body (no signature check). Unknown keys are ignored.

        Raises:
            DecodeError, RecordTooLarge: not a valid trace entry body.
        """
        obj = _body(body, "trace entry", MAX_TRACE_ENTRY_SIZE)

        def build() -> TraceEntry:
            nxt = get_field(obj, "next", (bytes, type(None)))
            return cls(
                request_id=get_field(obj, "req", bytes),
                hop=get_field(obj, "hop", int),
                node=PeerId(get_field(obj, "node", bytes)),
                org=OrgId(get_field(obj, "org", bytes)),
                prev=get_field(obj, "prev", bytes),
                at=get_field(obj, "at", int),
                action=get_field(obj, "act", str),
                next=None if nxt is None else PeerId(nxt),
            )

        return _decode("trace entry", build)  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (bytes as lowercase hex)."""
        return {
            "request_id": self.request_id.hex(),
            "hop": self.hop,
            "node": str(self.node),
            "org": str(self.org),
            "prev": self.prev.hex(),
            "at": self.at,
            "action": self.action,
            "next": None if self.next is None else str(self.next),
        }


@dataclass(frozen=True)
class VerifiedTraceEntry:
    """A trace entry checked by :func:`verify_trace` (or structurally inside a grant).

    Attributes:
        entry: the decoded entry.
        certificate: the hop's certificate; None when checked only structurally.
        raw: the exact envelope bytes.
    """

    entry: TraceEntry
    certificate: MembershipCertificate | None
    raw: bytes


def sign_trace_entry(entry: TraceEntry, node_key: KeyPair, chain: Sequence[bytes]) -> bytes:
    """Sign ``entry`` with the hop's key; returns the envelope bytes.

    Raises:
        ScopeError: the key or the certificate is not ``entry.node`` / ``entry.org``.
        RoleNotGranted: no gateway role (``forward``) or publisher role (``decide``).
        CertificateError, DecodeError, SignatureError: the chain is unusable.
        RecordTooLarge: the envelope exceeds 4 KiB.
    """
    role = Role.GATEWAY if entry.action == "forward" else Role.PUBLISHER
    _signer_certificate(
        chain, node_key, node=entry.node, org=entry.org, role=role, what="trace entry"
    )
    return _sealed(node_key, ACCESS_TRACE_TAG, entry.encode_body(), chain, MAX_TRACE_ENTRY_SIZE)


def open_trace_entry(data: bytes) -> tuple[TraceEntry, SignedEnvelope]:
    """Decode a trace entry envelope, check its signature and that the signer is ``node``.

    Raises:
        RecordTooLarge, DecodeError, SignatureError, ScopeError: as :func:`open_request`.
    """
    env = open_envelope(data, tag=ACCESS_TRACE_TAG, max_size=MAX_TRACE_ENTRY_SIZE)
    return _entry_of(env), env


def _entry_of(env: SignedEnvelope) -> TraceEntry:
    entry = TraceEntry.decode_body(env.body)
    if env.signer != entry.node.public_key:
        raise ScopeError(
            f"the entry names node {entry.node}, but is signed by {PeerId(env.signer)}"
        )
    return entry


def _at_hop(index: int, node: PeerId | None, exc: DatanetError) -> DatanetError:
    where = f"trace hop {index}" + ("" if node is None else f" (node {node})")
    return type(exc)(f"{where}: {exc}")


def _check_links(req_id: bytes, entries: Sequence[tuple[TraceEntry, bytes]], when: int) -> None:
    """The route's structure: ids, hop numbers, hash links, next pointers, loops, clocks."""
    if len(entries) > MAX_HOPS:
        raise HopLimitExceeded(f"the trace has {len(entries)} hops; the limit is {MAX_HOPS}")
    prev = req_id
    seen: set[PeerId] = set()
    before: TraceEntry | None = None
    for index, (entry, raw) in enumerate(entries):
        try:
            if entry.request_id != req_id:
                raise VerificationError("the entry belongs to another request")
            if entry.hop != index:
                raise VerificationError(f"the entry says it is hop {entry.hop}")
            if entry.prev != prev:
                raise VerificationError("the entry does not link to the previous one")
            if entry.node in seen:
                raise LoopDetected("the node appears twice on the route")
            if before is not None and before.next != entry.node:
                raise VerificationError(
                    f"the previous hop passed the request to {before.next}, not to this node"
                )
            if entry.at > when + MAX_CLOCK_SKEW:
                raise VerificationError(f"the entry is dated in the future ({entry.at} > {when})")
            if before is not None and entry.at < before.at - MAX_CLOCK_SKEW:
                raise VerificationError("the entry is dated before the previous hop")
        except DatanetError as exc:
            raise _at_hop(index, entry.node, exc) from None
        seen.add(entry.node)
        prev = _sha256(raw)
        before = entry


def verify_trace(
    request: VerifiedRequest,
    entries: Sequence[bytes],
    trust: TrustStore,
    now: int,
    *,
    at: int | None = None,
) -> tuple[VerifiedTraceEntry, ...]:
    """Verify a request's trace: every entry's signature and chain, and the links.

    Each entry must be signed by its ``node``, whose certificate (at ``at`` if
    given, else ``now``) is of ``org``, with the gateway role for ``forward`` and
    the publisher role of the dataset's organization for ``decide``. The entries
    must belong to ``request``, number their hops 0, 1, …, link each to the
    previous (``prev``) and follow the ``next`` pointers; no node twice, at most
    ``MAX_HOPS`` entries, none dated in the future or (beyond the clock skew)
    before the previous one.

    Raises:
        HopLimitExceeded: more than ``MAX_HOPS`` entries.
        LoopDetected: a node appears twice.
        VerificationError (and subclasses): any other failure; the message names
            the hop (``trace hop 2 (node 12D3…): …``).
        RecordTooLarge, DecodeError: an entry is not a trace entry within limits.
    """
    if len(entries) > MAX_HOPS:
        raise HopLimitExceeded(f"the trace has {len(entries)} hops; the limit is {MAX_HOPS}")
    when = now if at is None else at
    dataset_org = request.request.dataset_id.org
    decoded: list[tuple[TraceEntry, bytes]] = []
    verified: list[VerifiedTraceEntry] = []
    for index, raw in enumerate(entries):
        entry: TraceEntry | None = None
        try:
            entry, env = open_trace_entry(raw)
            if entry.action == "decide":
                if entry.org != dataset_org:
                    raise ScopeError(
                        f"only a node of the dataset's organization {dataset_org} decides"
                    )
                role = Role.PUBLISHER
            else:
                role = Role.GATEWAY
            cert = trust.verify_chain(
                env.chain, now=when, node=entry.node, role=role, org=entry.org
            )
        except DatanetError as exc:
            raise _at_hop(index, None if entry is None else entry.node, exc) from None
        decoded.append((entry, bytes(raw)))
        verified.append(VerifiedTraceEntry(entry, cert, bytes(raw)))
    _check_links(request.id, decoded, when)
    return tuple(verified)


# --- grants -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Grant:
    """The owner's signed permission, verifiable offline with the trust store alone.

    Args:
        grant_id: 16 random bytes naming the grant (revocations name it).
        request: the request envelope, verbatim.
        trace: the route's trace entries, verbatim (may be empty: a local request).
        dataset_id, sequence, grantee_node, grantee_org, purpose: copied from the
            request (verification checks they are equal).
        not_before, not_after: the validity window, at most ``validity_days`` long.
        issuer: the deciding node (the signer), a publisher of the dataset's org.
        issued_at: when it was issued.
        sealed_details: the access details sealed to the request's reply key
            (:mod:`datanet.records.sealed`), or empty.

    Raises:
        InvalidInput, RecordTooLarge: a field is malformed or too large.
        HopLimitExceeded: more than ``MAX_HOPS`` trace entries.
    """

    grant_id: bytes
    request: bytes
    trace: tuple[bytes, ...]
    dataset_id: DatasetId
    sequence: int
    grantee_node: PeerId
    grantee_org: OrgId
    purpose: str
    not_before: int
    not_after: int
    issuer: PeerId
    issued_at: int
    sealed_details: bytes = b""

    def __post_init__(self) -> None:
        _check_bytes("grant_id", self.grant_id, GRANT_ID_SIZE)
        if not isinstance(self.request, bytes) or not self.request:
            raise InvalidInput("request must be the request's envelope bytes")
        if len(self.request) > MAX_REQUEST_SIZE:
            raise RecordTooLarge(
                f"request is {len(self.request)} bytes; the limit is {MAX_REQUEST_SIZE}"
            )
        if not isinstance(self.trace, tuple) or not all(isinstance(t, bytes) for t in self.trace):
            raise InvalidInput("trace must be a tuple of entry envelope bytes")
        if len(self.trace) > MAX_HOPS:
            raise HopLimitExceeded(f"the trace has {len(self.trace)} hops; the limit is {MAX_HOPS}")
        for index, entry in enumerate(self.trace):
            if len(entry) > MAX_TRACE_ENTRY_SIZE:
                raise RecordTooLarge(
                    f"trace[{index}] is {len(entry)} bytes; the limit is {MAX_TRACE_ENTRY_SIZE}"
                )
        _check_type("dataset_id", self.dataset_id, DatasetId)
        check_int("sequence", self.sequence)
        _check_type("grantee_node", self.grantee_node, PeerId)
        _check_type("grantee_org", self.grantee_org, OrgId)
        if not isinstance(self.purpose, str) or canonical_purpose(self.purpose) != self.purpose:
            raise InvalidInput(f"purpose must be a vocabulary id, not {self.purpose!r}")
        check_int("not_before", self.not_before)
        check_int("not_after", self.not_after)
        if self.not_after <= self.not_before:
            raise InvalidInput("not_after must lie after not_before")
        _check_type("issuer", self.issuer, PeerId)
        check_int("issued_at", self.issued_at)
        if not isinstance(self.sealed_details, bytes):
            raise InvalidInput("sealed_details must be bytes")
        if len(self.sealed_details) > MAX_SEALED:
            raise RecordTooLarge(
                f"sealed_details is {len(self.sealed_details)} bytes; the limit is {MAX_SEALED}"
            )

    @cached_property
    def request_id(self) -> bytes:
        """The id of the granted request: SHA-256 of :attr:`request`."""
        return _sha256(self.request)

    def encode_body(self) -> bytes:
        """The exact body bytes the issuer signs."""
        return pack(
            {
                "v": BODY_VERSION,
                "id": self.grant_id,
                "req": self.request,
                "trace": list(self.trace),
                "dorg": self.dataset_id.org.public_key,
                "dname": self.dataset_id.name,
                "seq": self.sequence,
                "gnode": self.grantee_node.public_key,
                "gorg": self.grantee_org.public_key,
                "purpose": self.purpose,
                "nb": self.not_before,
                "na": self.not_after,
                "issuer": self.issuer.public_key,
                "at": self.issued_at,
                "sealed": self.sealed_details,
            }
        )

    @classmethod
    def decode_body(cls, body: bytes) -> Grant:
        """Parse a grant body (no signature check). Unknown keys are ignored.

        Raises:
            DecodeError, RecordTooLarge: not a valid grant body.
            HopLimitExceeded: the trace is too long.
        """
        obj = _body(body, "grant", MAX_GRANT_SIZE, max_items=32)

        def build() -> Grant:
            trace = get_field(obj, "trace", list)
            return cls(
                grant_id=get_field(obj, "id", bytes),
                request=get_field(obj, "req", bytes),
                trace=tuple(trace),
                dataset_id=DatasetId(
                    OrgId(get_field(obj, "dorg", bytes)), get_field(obj, "dname", str)
                ),
                sequence=get_field(obj, "seq", int),
                grantee_node=PeerId(get_field(obj, "gnode", bytes)),
                grantee_org=OrgId(get_field(obj, "gorg", bytes)),
                purpose=get_field(obj, "purpose", str),
                not_before=get_field(obj, "nb", int),
                not_after=get_field(obj, "na", int),
                issuer=PeerId(get_field(obj, "issuer", bytes)),
                issued_at=get_field(obj, "at", int),
                sealed_details=get_field(obj, "sealed", bytes),
            )

        return _decode("grant", build)  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (bytes as lowercase hex; the embedded records by id and count)."""
        return {
            "grant_id": self.grant_id.hex(),
            "request_id": self.request_id.hex(),
            "hops": len(self.trace),
            "dataset_id": str(self.dataset_id),
            "sequence": self.sequence,
            "grantee_node": str(self.grantee_node),
            "grantee_org": str(self.grantee_org),
            "purpose": self.purpose,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "issuer": str(self.issuer),
            "issued_at": self.issued_at,
            "sealed_details": self.sealed_details.hex(),
        }


@dataclass(frozen=True)
class VerifiedGrant:
    """A grant that passed :func:`verify_grant` at some ``now``.

    Attributes:
        grant: the decoded grant.
        certificate: the issuer's membership certificate.
        request: the embedded request, verified (``deep`` only; else None).
        trace: the embedded trace, verified (``deep`` only; else empty).
        raw: the exact grant envelope bytes.
        deep: whether the embedded records' signatures and chains were verified.
    """

    grant: Grant
    certificate: MembershipCertificate
    request: VerifiedRequest | None
    trace: tuple[VerifiedTraceEntry, ...]
    raw: bytes
    deep: bool = False

    @property
    def valid_until(self) -> int:
        """When the grant stops being valid: its ``not_after`` or its issuer's certificate's."""
        return min(self.grant.not_after, self.certificate.not_after)


def _check_grant_matches(grant: Grant, req: AccessRequest) -> None:
    """The grant's own fields against the request's and the route's end."""
    for name, mine, theirs in (
        ("dataset", grant.dataset_id, req.dataset_id),
        ("sequence", grant.sequence, req.sequence),
        ("grantee node", grant.grantee_node, req.node),
        ("grantee org", grant.grantee_org, req.org),
        ("purpose", grant.purpose, req.purpose),
    ):
        if mine != theirs:
            raise VerificationError(
                f"the grant's {name} ({mine}) differs from the request's ({theirs})"
            )
    longest = req.validity_days * 86400
    if grant.not_after - grant.not_before > longest:
        raise VerificationError(
            f"the grant is valid for {grant.not_after - grant.not_before} s; the request "
            f"asked for at most {req.validity_days} days"
        )
    if grant.issued_at > req.deadline + MAX_CLOCK_SKEW:
        raise VerificationError("the grant was issued after the request's deadline")
    if grant.issued_at + MAX_CLOCK_SKEW < req.created:
        raise VerificationError("the grant was issued before the request was made")


def _check_route_end(grant: Grant, trace: Sequence[VerifiedTraceEntry]) -> None:
    if not trace:
        return
    last = trace[-1].entry
    if last.action != "decide" or last.node != grant.issuer:
        raise VerificationError(
            f"the trace does not end with the issuer's decision (hop {len(trace) - 1} "
            f"is a {last.action} by {last.node})"
        )


def sign_grant(grant: Grant, node_key: KeyPair, chain: Sequence[bytes]) -> bytes:
    """Sign ``grant`` with the issuer's key; returns the envelope bytes.

    The embedded request and trace are decoded and checked (signatures, links,
    fields equal to the grant's) so that a node never issues a grant that
    verifiers refuse; trust and time are the verifier's.

    Raises:
        ScopeError: the key or certificate is not the issuer, or not of the dataset's org.
        RoleNotGranted: the certificate lacks the publisher role.
        VerificationError (and subclasses): the grant does not match its request
            or trace; DecodeError, SignatureError: an embedded record is broken.
        RecordTooLarge: the envelope exceeds 64 KiB.
    """
    _signer_certificate(
        chain,
        node_key,
        node=grant.issuer,
        org=grant.dataset_id.org,
        role=Role.PUBLISHER,
        what="grant",
    )
    req, _ = open_request(grant.request)
    entries = []
    for index, raw in enumerate(grant.trace):
        try:
            entry, _env = open_trace_entry(raw)
        except DatanetError as exc:
            raise _at_hop(index, None, exc) from None
        entries.append((entry, raw))
    _check_links(grant.request_id, entries, grant.issued_at)
    _check_route_end(grant, [VerifiedTraceEntry(e, None, r) for e, r in entries])
    _check_grant_matches(grant, req)
    return _sealed(node_key, GRANT_TAG, grant.encode_body(), chain, MAX_GRANT_SIZE)


def _open_grant(data: bytes) -> tuple[Grant, SignedEnvelope]:
    env = open_envelope(data, tag=GRANT_TAG, max_size=MAX_GRANT_SIZE)
    grant = Grant.decode_body(env.body)
    if env.signer != grant.issuer.public_key:
        raise ScopeError(
            f"grant names issuer {grant.issuer}, but is signed by {PeerId(env.signer)}"
        )
    return grant, env


def verify_grant(
    data: bytes,
    trust: TrustStore,
    now: int,
    *,
    revoked: Container[bytes] = frozenset(),
    deep: bool = False,
) -> VerifiedGrant:
    """Verify grant envelope bytes offline, with the trust store alone.

    By default: the grant's signature and issuer (a publisher certificate of the
    dataset's organization, valid at ``now``), its fields, validity window and
    revocation. That is one Ed25519 verification: the request and the trace are
    inside the issuer-signed body, and the issuer checked them before signing
    (:func:`sign_grant`), so the grant is the issuer's word for them.

    With ``deep`` the embedded records are re-checked as well, as of
    ``issued_at``: the request's signature and requester chain, its fields
    against the grant's (the window no longer than the days asked for), and
    every trace entry's signature, chain and links (hops, next pointers, no loop,
    ending with the issuer's ``decide``).

    Args:
        data: the grant envelope bytes.
        trust: the trust store.
        now: the current time.
        revoked: grant ids known to be revoked (e.g. from the ledger).
        deep: verify every embedded signature and chain as well.

    Raises:
        RecordTooLarge, DecodeError, SignatureError, ScopeError: malformed or
            forged grant, or an embedded record signed by someone else than it names.
        CertificateError (and subclasses): the issuer's (or, with ``deep``, an
            embedded record's) certificate is unacceptable.
        VerificationError (and subclasses HopLimitExceeded, LoopDetected): the
            grant does not match its request or route, or is not yet valid.
        ExpiredRecord: ``now`` is at or past ``valid_until``.
        GrantRevoked: ``grant_id`` is in ``revoked``.
    """
    grant, env = _open_grant(data)
    cert = trust.verify_chain(
        env.chain, now=now, node=grant.issuer, role=Role.PUBLISHER, org=grant.dataset_id.org
    )
    if grant.issued_at > now + MAX_CLOCK_SKEW:
        raise VerificationError(f"the grant is issued in the future ({grant.issued_at} > {now})")
    vreq: VerifiedRequest | None = None
    trace: tuple[VerifiedTraceEntry, ...] = ()
    if deep:
        # The issuer checked all of this before signing (sign_grant); deep re-checks it.
        try:
            vreq = verify_request(grant.request, trust, now, at=grant.issued_at)
        except DatanetError as exc:
            raise type(exc)(f"the granted request: {exc}") from None
        vreq.__dict__["id"] = grant.request_id  # the cached_property, computed once
        _check_grant_matches(grant, vreq.request)
        trace = verify_trace(vreq, grant.trace, trust, now, at=grant.issued_at)
        _check_route_end(grant, trace)
    verified = VerifiedGrant(grant, cert, vreq, trace, bytes(data), deep)
    if now < grant.not_before:
        raise VerificationError(f"the grant is not yet valid (from {grant.not_before})")
    if now >= verified.valid_until:
        raise ExpiredRecord(f"the grant expired at {verified.valid_until}")
    if grant.grant_id in revoked:
        raise GrantRevoked(f"grant {grant.grant_id.hex()} was revoked by {grant.dataset_id.org}")
    return verified


def decode_grant_unverified(data: bytes) -> Grant:
    """Decode a grant for display: its signature and issuer match are checked, not
    trust, time, revocation or the embedded records. Never act on the result.

    Raises:
        RecordTooLarge, DecodeError, SignatureError, ScopeError: a malformed grant.
    """
    return _open_grant(data)[0]


# --- denials ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Denial:
    """The owner's signed, reasoned refusal of a request.

    Args:
        request_id: the refused request's id.
        dataset_id: the dataset asked for.
        reason: a code of :data:`DENIAL_REASONS`.
        message: one line for people (256 characters), e.g. what to ask instead.
        node: the deciding node (the signer); org: its organization (the dataset's).
        decided_at: when it was decided.
        trace: the route's trace entries, verbatim (for the requester's records).
    """

    request_id: bytes
    dataset_id: DatasetId
    reason: str
    message: str
    node: PeerId
    org: OrgId
    decided_at: int
    trace: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        _check_bytes("request_id", self.request_id, REQUEST_ID_SIZE)
        _check_type("dataset_id", self.dataset_id, DatasetId)
        if self.reason not in DENIAL_REASONS:
            raise InvalidInput(
                f"reason must be one of {', '.join(DENIAL_REASONS)}, not {str(self.reason)[:40]!r}"
            )
        check_text("message", self.message, MAX_MESSAGE)
        _check_type("node", self.node, PeerId)
        _check_type("org", self.org, OrgId)
        check_int("decided_at", self.decided_at)
        if not isinstance(self.trace, tuple) or not all(isinstance(t, bytes) for t in self.trace):
            raise InvalidInput("trace must be a tuple of entry envelope bytes")
        if len(self.trace) > MAX_HOPS:
            raise HopLimitExceeded(f"the trace has {len(self.trace)} hops; the limit is {MAX_HOPS}")
        for index, entry in enumerate(self.trace):
            if len(entry) > MAX_TRACE_ENTRY_SIZE:
                raise RecordTooLarge(
                    f"trace[{index}] is {len(entry)} bytes; the limit is {MAX_TRACE_ENTRY_SIZE}"
                )

    def encode_body(self) -> bytes:
        """The exact body bytes the deciding node signs."""
        return pack(
            {
                "v": BODY_VERSION,
                "req": self.request_id,
                "dorg": self.dataset_id.org.public_key,
                "dname": self.dataset_id.name,
                "reason": self.reason,
                "msg": self.message,
                "node": self.node.public_key,
                "org": self.org.public_key,
                "at": self.decided_at,
                "trace": list(self.trace),
            }
        )

    @classmethod
    def decode_body(cls, body: bytes) -> Denial:
        """Parse a denial body (no signature check). Unknown keys are ignored.

        Raises:
            DecodeError, RecordTooLarge: not a valid denial body.
        """
        obj = _body(body, "denial", MAX_DENIAL_SIZE)
        return _decode(  # type: ignore[no-any-return]
            "denial",
            lambda: cls(
                request_id=get_field(obj, "req", bytes),
                dataset_id=DatasetId(
                    OrgId(get_field(obj, "dorg", bytes)), get_field(obj, "dname", str)
                ),
                reason=get_field(obj, "reason", str),
                message=get_field(obj, "msg", str),
                node=PeerId(get_field(obj, "node", bytes)),
                org=OrgId(get_field(obj, "org", bytes)),
                decided_at=get_field(obj, "at", int),
                trace=tuple(get_field(obj, "trace", list)),
            ),
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict, with the reason's explanation."""
        return {
            "request_id": self.request_id.hex(),
            "dataset_id": str(self.dataset_id),
            "reason": self.reason,
            "explanation": DENIAL_REASONS[self.reason],
            "message": self.message,
            "node": str(self.node),
            "org": str(self.org),
            "decided_at": self.decided_at,
            "hops": len(self.trace),
        }


@dataclass(frozen=True)
class VerifiedDenial:
    """A denial that passed :func:`verify_denial`: the record, the signer's certificate, bytes."""

    denial: Denial
    certificate: MembershipCertificate
    raw: bytes


def sign_denial(denial: Denial, node_key: KeyPair, chain: Sequence[bytes]) -> bytes:
    """Sign ``denial`` with the deciding node's key; returns the envelope bytes.

    Raises:
        ScopeError: the key or certificate is not ``denial.node``, or ``denial.org``
            is not the dataset's organization.
        RoleNotGranted: the certificate lacks the publisher role.
        RecordTooLarge: the envelope exceeds 64 KiB.
    """
    if denial.org != denial.dataset_id.org:
        raise ScopeError(
            f"only the dataset's organization {denial.dataset_id.org} denies requests for it"
        )
    _signer_certificate(
        chain, node_key, node=denial.node, org=denial.org, role=Role.PUBLISHER, what="denial"
    )
    return _sealed(node_key, DENIAL_TAG, denial.encode_body(), chain, MAX_DENIAL_SIZE)


def open_denial(data: bytes) -> tuple[Denial, SignedEnvelope]:
    """Decode a denial envelope, check its signature and that the signer is ``node``.

    Raises:
        RecordTooLarge, DecodeError, SignatureError, ScopeError: as :func:`open_request`.
    """
    env = open_envelope(data, tag=DENIAL_TAG, max_size=MAX_DENIAL_SIZE)
    denial = Denial.decode_body(env.body)
    if env.signer != denial.node.public_key:
        raise ScopeError(f"denial names node {denial.node}, but is signed by {PeerId(env.signer)}")
    return denial, env


def verify_denial(data: bytes, trust: TrustStore, now: int) -> VerifiedDenial:
    """Verify denial envelope bytes: signer, a publisher of the dataset's org, clock sanity.

    Raises:
        RecordTooLarge, DecodeError, SignatureError: a malformed or forged denial.
        ScopeError: signed by another node than named, or not by the dataset's org.
        CertificateError (and subclasses): the certificate is unacceptable.
        VerificationError: the denial is dated in the future.
    """
    denial, env = open_denial(data)
    if denial.org != denial.dataset_id.org:
        raise ScopeError(
            f"denial by {denial.org}, but the dataset belongs to {denial.dataset_id.org}"
        )
    cert = trust.verify_chain(
        env.chain, now=now, node=denial.node, role=Role.PUBLISHER, org=denial.org
    )
    if denial.decided_at > now + MAX_CLOCK_SKEW:
        raise VerificationError(f"the denial is dated in the future ({denial.decided_at} > {now})")
    return VerifiedDenial(denial, cert, bytes(data))


# --- grant revocations --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GrantRevocation:
    """The owner's signed, final withdrawal of a grant (a ledger record).

    Args:
        grant_id: the revoked grant.
        dataset_id: the granted dataset; its org is the revoking org.
        node: the signing node, a publisher of the dataset's organization.
        revoked_at: when it was revoked.
        expires: when the record may be dropped (after the grant's end).
        reason: free text, single line, 256 characters.
    """

    grant_id: bytes
    dataset_id: DatasetId
    node: PeerId
    revoked_at: int
    expires: int
    reason: str = ""

    def __post_init__(self) -> None:
        _check_bytes("grant_id", self.grant_id, GRANT_ID_SIZE)
        _check_type("dataset_id", self.dataset_id, DatasetId)
        _check_type("node", self.node, PeerId)
        check_int("revoked_at", self.revoked_at)
        check_int("expires", self.expires)
        check_text("reason", self.reason, MAX_MESSAGE)
        if self.expires <= self.revoked_at:
            raise InvalidInput("expires must lie after revoked_at")

    @property
    def org(self) -> OrgId:
        """The revoking organization (the dataset's)."""
        return self.dataset_id.org

    def encode_body(self) -> bytes:
        """The exact body bytes the signing node signs."""
        return pack(
            {
                "v": BODY_VERSION,
                "id": self.grant_id,
                "dorg": self.dataset_id.org.public_key,
                "dname": self.dataset_id.name,
                "node": self.node.public_key,
                "at": self.revoked_at,
                "exp": self.expires,
                "reason": self.reason,
            }
        )

    @classmethod
    def decode_body(cls, body: bytes) -> GrantRevocation:
        """Parse a grant revocation body (no signature check). Unknown keys are ignored.

        Raises:
            DecodeError, RecordTooLarge: not a valid grant revocation body.
        """
        obj = _body(body, "grant revocation", MAX_GRANT_REVOCATION_SIZE, max_items=16)
        return _decode(  # type: ignore[no-any-return]
            "grant revocation",
            lambda: cls(
                grant_id=get_field(obj, "id", bytes),
                dataset_id=DatasetId(
                    OrgId(get_field(obj, "dorg", bytes)), get_field(obj, "dname", str)
                ),
                node=PeerId(get_field(obj, "node", bytes)),
                revoked_at=get_field(obj, "at", int),
                expires=get_field(obj, "exp", int),
                reason=get_field(obj, "reason", str),
            ),
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "grant_id": self.grant_id.hex(),
            "dataset_id": str(self.dataset_id),
            "org": str(self.org),
            "node": str(self.node),
            "revoked_at": self.revoked_at,
            "expires": self.expires,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class VerifiedGrantRevocation:
    """A grant revocation that passed :func:`verify_grant_revocation`."""

    revocation: GrantRevocation
    certificate: MembershipCertificate
    raw: bytes

    @property
    def valid_until(self) -> int:
        """When the record may be dropped: its expiry or its certificate's."""
        return min(self.revocation.expires, self.certificate.not_after)


def grant_revocation_key(org: OrgId, grant_id: bytes) -> bytes:
    """The DHT key of a grant revocation: ``/dn-grev/<org did>/<grant id hex>``."""
    return GREV_PREFIX + str(org).encode("ascii") + b"/" + grant_id.hex().encode("ascii")


def grant_revocation_for(
    grant: Grant, *, node: PeerId, now: int, reason: str = ""
) -> GrantRevocation:
    """The revocation of ``grant`` at ``now``: it expires when the grant ends (at
    least a day from now), never beyond ``now + MAX_LIFETIME`` (verifiers refuse that).

    Raises:
        InvalidInput: a field is out of its limits.
    """
    expires = min(max(grant.not_after, now + 86400), now + MAX_LIFETIME)
    return GrantRevocation(
        grant_id=grant.grant_id,
        dataset_id=grant.dataset_id,
        node=node,
        revoked_at=now,
        expires=expires,
        reason=reason,
    )


def sign_grant_revocation(rev: GrantRevocation, node_key: KeyPair, chain: Sequence[bytes]) -> bytes:
    """Sign ``rev`` with a publisher node's key; returns the envelope bytes.

    Raises:
        ScopeError: the key or certificate is not ``rev.node``, or not of the dataset's org.
        RoleNotGranted: the certificate lacks the publisher role.
        RecordTooLarge: the envelope exceeds 16 KiB.
    """
    _signer_certificate(
        chain, node_key, node=rev.node, org=rev.org, role=Role.PUBLISHER, what="grant revocation"
    )
    return _sealed(
        node_key, GRANT_REVOCATION_TAG, rev.encode_body(), chain, MAX_GRANT_REVOCATION_SIZE
    )


def open_grant_revocation(data: bytes) -> tuple[GrantRevocation, SignedEnvelope]:
    """Decode a grant revocation, check its signature and that the signer is ``node``.

    Raises:
        RecordTooLarge, DecodeError, SignatureError, ScopeError: as :func:`open_request`.
    """
    env = open_envelope(data, tag=GRANT_REVOCATION_TAG, max_size=MAX_GRANT_REVOCATION_SIZE)
    rev = GrantRevocation.decode_body(env.body)
    if env.signer != rev.node.public_key:
        raise ScopeError(
            f"grant revocation names node {rev.node}, but is signed by {PeerId(env.signer)}"
        )
    return rev, env


def check_grant_revocation(
    rev: GrantRevocation, env: SignedEnvelope, trust: TrustStore, now: int
) -> MembershipCertificate:
    """The time- and trust-dependent half of verification (after :func:`open_grant_revocation`).

    Raises:
        CertificateError (and subclasses), ScopeError: not a publisher of the dataset's org.
        ExpiredRecord: ``now`` is at or past ``expires``.
        VerificationError: dated in the future, or expiring too far ahead.
    """
    return check_dataset_record(
        f"revocation of grant {rev.grant_id.hex()}",
        env,
        trust,
        now,
        node=rev.node,
        org=rev.org,
        dated=("is dated", rev.revoked_at),
        expires=rev.expires,
    )


def verify_grant_revocation(data: bytes, trust: TrustStore, now: int) -> VerifiedGrantRevocation:
    """Fully verify grant revocation envelope bytes.

    Raises:
        RecordTooLarge, DecodeError, SignatureError, ScopeError: malformed or forged.
        CertificateError (and subclasses): the certificate is unacceptable.
        ExpiredRecord: the record expired.
        VerificationError: clock sanity failed.
    """
    rev, env = open_grant_revocation(data)
    cert = check_grant_revocation(rev, env, trust, now)
    return VerifiedGrantRevocation(rev, cert, bytes(data))
