"""Signed dataset descriptors: DCAT-style metadata plus an access policy.

A descriptor travels as a signed envelope (:mod:`identity.envelope`) with tag
``dn/descriptor/v1``, signed by the *publishing node's* key and carrying that
node's membership certificate as its chain. The body is a MessagePack map with
short keys (see ``docs/records.md`` for the table and every limit).

Verification (:func:`verify_descriptor`) checks, in order: size, envelope
structure and signature, body decoding and field limits, that the signer is the
``publisher_node`` named in the body, the certificate chain (trusted org, time
window, not revoked, issued *by the dataset's org* to *that node* with the
*publisher* role), and finally the descriptor's own expiry and clock sanity.

Invariants:
* A :class:`Descriptor` that exists satisfies every field limit; decoding
  untrusted bytes raises only :class:`~datanet.errors.DatanetError` subclasses.
* The signed body bytes are kept verbatim (``VerifiedDescriptor.raw`` is the
  whole envelope): nothing is ever re-encoded before being forwarded.
* A descriptor is never valid past its certificate: :func:`verify_descriptor`
  rejects it once the certificate expired, and
  :attr:`VerifiedDescriptor.valid_until` is ``min(expires, cert.not_after)``;
  stores should expire the record at that time.
* Times are integer Unix seconds passed in by the caller; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from datanet.errors import (
    CertificateError,
    DecodeError,
    ExpiredRecord,
    InvalidInput,
    RecordTooLarge,
    RoleNotGranted,
    ScopeError,
    VerificationError,
)
from datanet.records.fields import MAX_U63, check_int, check_text, check_texts
from datanet.records.ids import DatasetId
from datanet.records.policy import (
    ACCESS_MODES,
    MAX_ALLOWED_ORGS,
    AccessMode,
    AccessPolicy,
)
from identity.certs import MembershipCertificate, Role, TrustStore, parse_certificate
from identity.encoding import pack, unpack_map
from identity.envelope import SignedEnvelope, open_envelope, seal
from identity.keys import KeyPair, OrgId, PeerId

__all__ = [
    "ACCESS_MODES",
    "DESCRIPTOR_TAG",
    "MAX_CLOCK_SKEW",
    "MAX_DESCRIPTOR_SIZE",
    "MAX_LIFETIME",
    "AccessMode",
    "AccessPolicy",
    "Descriptor",
    "Distribution",
    "VerifiedDescriptor",
    "check_descriptor",
    "decode_descriptor_unverified",
    "open_descriptor",
    "sign_descriptor",
    "verify_descriptor",
]

DESCRIPTOR_TAG = "dn/descriptor/v1"
BODY_VERSION = 1
#: Hard limit on the whole signed envelope (body + signature + chain).
MAX_DESCRIPTOR_SIZE = 16 * 1024
#: How far in the future a record's own time may lie before it is refused: a
#: descriptor's ``modified``, a revocation list's ``issued_at`` (validators).
MAX_CLOCK_SKEW = 300
#: The furthest in the future ``expires`` may lie, measured from ``now``.
MAX_LIFETIME = 400 * 86400

# Field limits: characters for strings, items for lists.
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_KEYWORDS = 32
MAX_KEYWORD = 64
MAX_THEMES = 16
MAX_THEME = 256
MAX_LICENSE = 256
MAX_VERSION = 64
MAX_SCHEMA = 512
MAX_DISTRIBUTIONS = 16
MAX_MEDIA_TYPE = 128
MAX_ACCESS = 512
MAX_SPATIAL = 512
# Largest list inside the body; bounds the MessagePack decoder.
_MAX_ITEMS = max(MAX_ALLOWED_ORGS, MAX_KEYWORDS, 32)


@dataclass(frozen=True)
class Distribution:
    """One way to obtain the data (DCAT ``dcat:Distribution``).

    Args:
        media_type: IANA media type, e.g. ``text/csv``.
        title: a human label for this distribution.
        access: where to ask: ``"request"`` (a datanet access request to the
            publisher) or a URL.
        byte_size: the size in bytes, when known.
    """

    media_type: str
    title: str = ""
    access: str = "request"
    byte_size: int | None = None

    def __post_init__(self) -> None:
        check_text("distribution media_type", self.media_type, MAX_MEDIA_TYPE, required=True)
        check_text("distribution title", self.title, MAX_TITLE)
        check_text("distribution access", self.access, MAX_ACCESS, required=True)
        if self.byte_size is not None:
            check_int("distribution byte_size", self.byte_size)


@dataclass(frozen=True, kw_only=True)
class Descriptor:
    """A dataset's metadata as its publisher signs it (DCAT-style).

    The publishing organization is ``dataset_id.org``; ``publisher_node`` is the
    node that signs and answers requests. ``sequence`` orders versions (the
    highest wins everywhere); ``expires`` is when the record must be dropped.

    Raises:
        InvalidInput: a field is malformed or inconsistent (``issued`` after
            ``modified``, ``expires`` not after ``modified``, …).
        RecordTooLarge: a field is over its limit.
    """

    dataset_id: DatasetId
    title: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    publisher_node: PeerId
    license: str = ""
    version: str = ""
    issued: int
    modified: int
    schema: str = ""
    distributions: tuple[Distribution, ...] = ()
    temporal: tuple[int, int] | None = None
    spatial: str | None = None
    access_policy: AccessPolicy = field(default_factory=AccessPolicy)
    sequence: int
    expires: int

    def __post_init__(self) -> None:
        if not isinstance(self.dataset_id, DatasetId):
            raise InvalidInput("dataset_id must be a DatasetId")
        if not isinstance(self.publisher_node, PeerId):
            raise InvalidInput("publisher_node must be a PeerId")
        check_text("title", self.title, MAX_TITLE, required=True)
        check_text("description", self.description, MAX_DESCRIPTION, multiline=True)
        check_texts("keywords", self.keywords, MAX_KEYWORDS, MAX_KEYWORD)
        check_texts("themes", self.themes, MAX_THEMES, MAX_THEME)
        check_text("license", self.license, MAX_LICENSE)
        check_text("version", self.version, MAX_VERSION)
        check_text("schema", self.schema, MAX_SCHEMA)
        if not isinstance(self.distributions, tuple):
            raise InvalidInput("distributions must be a tuple")
        if len(self.distributions) > MAX_DISTRIBUTIONS:
            raise RecordTooLarge(
                f"distributions has {len(self.distributions)} items; "
                f"the limit is {MAX_DISTRIBUTIONS}"
            )
        if not all(isinstance(d, Distribution) for d in self.distributions):
            raise InvalidInput("distributions must hold Distribution values")
        if self.temporal is not None:
            if not isinstance(self.temporal, tuple) or len(self.temporal) != 2:
                raise InvalidInput("temporal must be a (start, end) pair or None")
            start = check_int("temporal start", self.temporal[0], -MAX_U63)
            end = check_int("temporal end", self.temporal[1], -MAX_U63)
            if end < start:
                raise InvalidInput("temporal end lies before its start")
        if self.spatial is not None:
            check_text("spatial", self.spatial, MAX_SPATIAL, required=True)
        if not isinstance(self.access_policy, AccessPolicy):
            raise InvalidInput("access_policy must be an AccessPolicy")
        check_int("issued", self.issued)
        check_int("modified", self.modified)
        check_int("sequence", self.sequence)
        check_int("expires", self.expires)
        if self.modified < self.issued:
            raise InvalidInput("modified lies before issued")
        if self.expires <= self.modified:
            raise InvalidInput("expires must lie after modified")

    @property
    def publisher_org(self) -> OrgId:
        """The publishing organization (the dataset id's org)."""
        return self.dataset_id.org

    # -- MessagePack body -------------------------------------------------

    def encode_body(self) -> bytes:
        """The exact body bytes the publishing node signs."""
        pol = self.access_policy
        return pack(
            {
                "v": BODY_VERSION,
                "org": self.dataset_id.org.public_key,
                "name": self.dataset_id.name,
                "title": self.title,
                "desc": self.description,
                "kw": list(self.keywords),
                "th": list(self.themes),
                "node": self.publisher_node.public_key,
                "lic": self.license,
                "ver": self.version,
                "iss": self.issued,
                "mod": self.modified,
                "sch": self.schema,
                "dist": [
                    [d.media_type, d.title, d.access, d.byte_size] for d in self.distributions
                ],
                "tmp": list(self.temporal) if self.temporal is not None else None,
                "spa": self.spatial,
                "pol": [
                    pol.mode,
                    [o.public_key for o in pol.allowed_orgs],
                    list(pol.purposes),
                    pol.max_validity_days,
                ],
                "seq": self.sequence,
                "exp": self.expires,
            }
        )

    @classmethod
    def decode_body(cls, body: bytes) -> Descriptor:
        """Parse a descriptor body (no signature check; see :func:`verify_descriptor`).

        Unknown keys are ignored so that later versions can append fields.

        Raises:
            DecodeError: the body is not a valid descriptor; the message names the field.
            RecordTooLarge: the body or a field is over its limit.
        """
        obj = unpack_map(body, max_size=MAX_DESCRIPTOR_SIZE, max_items=_MAX_ITEMS)
        version = obj.get("v")
        if type(version) is not int or version != BODY_VERSION:
            raise DecodeError(f"unsupported descriptor version {version!r}")
        try:
            return cls._from_body(obj)
        except DecodeError:
            raise
        except InvalidInput as exc:
            raise DecodeError(f"invalid descriptor: {exc}") from None

    @classmethod
    def _from_body(cls, obj: dict[str, Any]) -> Descriptor:
        dist_raw = _get(obj, "dist", list)
        distributions = []
        for item in dist_raw:
            if not isinstance(item, list) or len(item) != 4:
                raise DecodeError("each distribution is [media_type, title, access, byte_size]")
            media_type, title, access, size = item
            distributions.append(Distribution(media_type, title, access, size))
        tmp = obj.get("tmp")
        temporal: tuple[int, int] | None = None
        if tmp is not None:
            if not isinstance(tmp, list) or len(tmp) != 2:
                raise DecodeError("temporal must be [start, end] or nil")
            temporal = (tmp[0], tmp[1])
        pol = _get(obj, "pol", list)
        if len(pol) != 4:
            raise DecodeError("access policy must be [mode, orgs, purposes, max_days]")
        mode, orgs, purposes, max_days = pol
        if not isinstance(orgs, list) or not all(isinstance(o, bytes) for o in orgs):
            raise DecodeError("access policy orgs must be a list of 32-byte keys")
        if len(orgs) > MAX_ALLOWED_ORGS:
            raise RecordTooLarge(f"access policy lists more than {MAX_ALLOWED_ORGS} orgs")
        if not isinstance(purposes, list):
            raise DecodeError("access policy purposes must be a list")
        spatial = obj.get("spa")
        return cls(
            dataset_id=DatasetId(OrgId(_get(obj, "org", bytes)), _get(obj, "name", str)),
            title=_get(obj, "title", str),
            description=_get(obj, "desc", str),
            keywords=tuple(_get(obj, "kw", list)),
            themes=tuple(_get(obj, "th", list)),
            publisher_node=PeerId(_get(obj, "node", bytes)),
            license=_get(obj, "lic", str),
            version=_get(obj, "ver", str),
            issued=_get(obj, "iss", int),
            modified=_get(obj, "mod", int),
            schema=_get(obj, "sch", str),
            distributions=tuple(distributions),
            temporal=temporal,
            spatial=spatial,
            access_policy=AccessPolicy(
                mode=mode,
                allowed_orgs=tuple(OrgId(o) for o in orgs),
                purposes=tuple(purposes),
                max_validity_days=max_days,
            ),
            sequence=_get(obj, "seq", int),
            expires=_get(obj, "exp", int),
        )

    # -- JSON (HTTP API) ----------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict with readable keys (the HTTP API's form)."""
        pol = self.access_policy
        return {
            "dataset_id": str(self.dataset_id),
            "title": self.title,
            "description": self.description,
            "keywords": list(self.keywords),
            "themes": list(self.themes),
            "publisher_org": str(self.dataset_id.org),
            "publisher_node": str(self.publisher_node),
            "license": self.license,
            "version": self.version,
            "issued": self.issued,
            "modified": self.modified,
            "schema": self.schema,
            "distributions": [
                {
                    "media_type": d.media_type,
                    "title": d.title,
                    "access": d.access,
                    "byte_size": d.byte_size,
                }
                for d in self.distributions
            ],
            "temporal": (
                None
                if self.temporal is None
                else {"start": self.temporal[0], "end": self.temporal[1]}
            ),
            "spatial": self.spatial,
            "access_policy": {
                "mode": pol.mode,
                "allowed_orgs": [str(o) for o in pol.allowed_orgs],
                "purposes": list(pol.purposes),
                "max_validity_days": pol.max_validity_days,
            },
            "sequence": self.sequence,
            "expires": self.expires,
        }

    @classmethod
    def from_json(cls, obj: object) -> Descriptor:
        """Inverse of :meth:`to_json`; ``publisher_org`` is ignored (it is derived).

        Optional keys may be left out (their defaults apply); unknown keys are refused.

        Raises:
            InvalidInput: a field is missing, of the wrong type or out of limits;
                the message names the field.
        """
        if not isinstance(obj, dict):
            raise InvalidInput("a descriptor must be a JSON object")
        unknown = set(obj) - _JSON_KEYS
        if unknown:
            raise InvalidInput(f"unknown descriptor field(s): {', '.join(sorted(unknown))}")
        try:
            return cls._from_json(obj)
        except InvalidInput:
            raise
        except (TypeError, ValueError, KeyError, IndexError) as exc:  # defensive; never leak
            raise InvalidInput(f"invalid descriptor: {exc}") from None

    @classmethod
    def _from_json(cls, obj: dict[str, Any]) -> Descriptor:
        def text_list(name: str) -> tuple[str, ...]:
            value = obj.get(name, [])
            if not isinstance(value, list):
                raise InvalidInput(f"{name} must be a list")
            return tuple(value)

        dists = obj.get("distributions", [])
        if not isinstance(dists, list) or len(dists) > MAX_DISTRIBUTIONS:
            raise InvalidInput(f"distributions must be a list of at most {MAX_DISTRIBUTIONS}")
        distributions = []
        for i, d in enumerate(dists):
            if not isinstance(d, dict):
                raise InvalidInput(f"distributions[{i}] must be an object")
            if "media_type" not in d:
                raise InvalidInput(f"distributions[{i}] needs a media_type")
            distributions.append(
                Distribution(
                    d["media_type"],
                    d.get("title", ""),
                    d.get("access", "request"),
                    d.get("byte_size"),
                )
            )
        tmp = obj.get("temporal")
        temporal: tuple[int, int] | None = None
        if tmp is not None:
            if not isinstance(tmp, dict) or set(tmp) != {"start", "end"}:
                raise InvalidInput("temporal must be {start, end} or null")
            temporal = (tmp["start"], tmp["end"])
        pol = obj.get("access_policy", {})
        if not isinstance(pol, dict):
            raise InvalidInput("access_policy must be an object")
        orgs = pol.get("allowed_orgs", [])
        if not isinstance(orgs, list) or len(orgs) > MAX_ALLOWED_ORGS:
            raise InvalidInput(
                f"access_policy allowed_orgs must be a list of at most {MAX_ALLOWED_ORGS}"
            )
        purposes = pol.get("purposes", [])
        if not isinstance(purposes, list):
            raise InvalidInput("access_policy purposes must be a list")
        for name in (
            "dataset_id",
            "title",
            "publisher_node",
            "issued",
            "modified",
            "sequence",
            "expires",
        ):
            if name not in obj:
                raise InvalidInput(f"missing descriptor field {name!r}")
        return cls(
            dataset_id=DatasetId.parse(obj["dataset_id"]),
            title=obj["title"],
            description=obj.get("description", ""),
            keywords=text_list("keywords"),
            themes=text_list("themes"),
            publisher_node=PeerId.parse(obj["publisher_node"]),
            license=obj.get("license", ""),
            version=obj.get("version", ""),
            issued=obj["issued"],
            modified=obj["modified"],
            schema=obj.get("schema", ""),
            distributions=tuple(distributions),
            temporal=temporal,
            spatial=obj.get("spatial"),
            access_policy=AccessPolicy(
                mode=cast(AccessMode, pol.get("mode", "request")),
                allowed_orgs=tuple(OrgId.parse(o) for o in orgs),
                purposes=tuple(purposes),
                max_validity_days=pol.get("max_validity_days", 365),
            ),
            sequence=obj["sequence"],
            expires=obj["expires"],
        )


_JSON_KEYS = frozenset(
    {
        "dataset_id",
        "title",
        "description",
        "keywords",
        "themes",
        "publisher_org",
        "publisher_node",
        "license",
        "version",
        "issued",
        "modified",
        "schema",
        "distributions",
        "temporal",
        "spatial",
        "access_policy",
        "sequence",
        "expires",
    }
)


def _get(obj: dict[str, Any], name: str, kind: type) -> Any:
    """A required body field of the given type (``bool`` never counts as ``int``)."""
    if name not in obj:
        raise DecodeError(f"descriptor field {name!r} is missing")
    value = obj[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DecodeError(f"descriptor field {name!r} has the wrong type ({type(value).__name__})")
    return value


@dataclass(frozen=True)
class VerifiedDescriptor:
    """A descriptor that passed :func:`verify_descriptor` at some ``now``.

    Attributes:
        descriptor: the decoded record.
        certificate: the publishing node's membership certificate.
        raw: the exact envelope bytes that were verified (ship these, never re-encode).
    """

    descriptor: Descriptor
    certificate: MembershipCertificate
    raw: bytes

    @property
    def valid_until(self) -> int:
        """When the record stops being valid: its own expiry or its certificate's."""
        return min(self.descriptor.expires, self.certificate.not_after)


def sign_descriptor(desc: Descriptor, node_key: KeyPair, chain: Sequence[bytes]) -> bytes:
    """Sign ``desc`` with the publishing node's key; returns the envelope bytes.

    The chain is checked for consistency (not for trust or time, which depend on
    the verifier) so that a node never ships a record every verifier will refuse.

    Args:
        desc: the descriptor; ``desc.publisher_node`` must be ``node_key``'s peer id.
        node_key: the publishing node's key.
        chain: the node's membership certificate bytes (today exactly one).

    Raises:
        ScopeError: the key is not ``publisher_node``, or the certificate is for
            another node or another organization than the dataset's.
        CertificateError, DecodeError, SignatureError: the chain is unusable.
        RoleNotGranted: the certificate lacks the publisher role.
        RecordTooLarge: the signed envelope exceeds 16 KiB.
    """
    if node_key.peer_id != desc.publisher_node:
        raise ScopeError(
            f"descriptor names publisher node {desc.publisher_node}, "
            f"but is signed by {node_key.peer_id}"
        )
    if len(chain) != 1:
        raise CertificateError(f"expected a chain of one certificate, got {len(chain)}")
    cert = parse_certificate(chain[0])
    if cert.node != desc.publisher_node:
        raise ScopeError(f"certificate is for node {cert.node}, not {desc.publisher_node}")
    if cert.org != desc.dataset_id.org:
        raise ScopeError(
            f"certificate is issued by {cert.org}, but the dataset belongs to {desc.dataset_id.org}"
        )
    if Role.PUBLISHER not in cert.roles:
        raise RoleNotGranted(f"certificate {cert.serial} does not grant the publisher role")
    data = seal(node_key, DESCRIPTOR_TAG, desc.encode_body(), chain).encode()
    if len(data) > MAX_DESCRIPTOR_SIZE:
        raise RecordTooLarge(
            f"the signed descriptor is {len(data)} bytes; the limit is {MAX_DESCRIPTOR_SIZE}"
        )
    return data


def open_descriptor(data: bytes) -> tuple[Descriptor, SignedEnvelope]:
    """Decode an envelope, check its signature and that the signer is ``publisher_node``.

    This is the part of verification that does not depend on time or trust, so
    its result may be cached per exact bytes (the DHT validators do).

    Raises:
        RecordTooLarge: ``data`` is over 16 KiB.
        DecodeError: ``data`` is not a well-formed descriptor envelope.
        SignatureError: the signature does not verify.
        ScopeError: the signer is not the descriptor's ``publisher_node``.
    """
    env = open_envelope(data, tag=DESCRIPTOR_TAG, max_size=MAX_DESCRIPTOR_SIZE)
    desc = Descriptor.decode_body(env.body)
    if env.signer != desc.publisher_node.public_key:
        raise ScopeError(
            f"descriptor names publisher node {desc.publisher_node}, "
            f"but is signed by {PeerId(env.signer)}"
        )
    return desc, env


def check_descriptor(
    desc: Descriptor, env: SignedEnvelope, trust: TrustStore, now: int
) -> MembershipCertificate:
    """The time- and trust-dependent half of verification (after :func:`open_descriptor`).

    Raises:
        CertificateError (and subclasses): the chain is untrusted, expired,
            not yet valid, revoked, or lacks the publisher role.
        ScopeError: the certificate is for another node or organization.
        ExpiredRecord: ``now`` is at or past ``desc.expires``.
        VerificationError: ``modified`` lies in the future, or ``expires`` too far.
    """
    return check_dataset_record(
        f"descriptor of {desc.dataset_id}",
        env,
        trust,
        now,
        node=desc.publisher_node,
        org=desc.dataset_id.org,
        dated=("was modified", desc.modified),
        expires=desc.expires,
    )


def check_dataset_record(
    what: str,
    env: SignedEnvelope,
    trust: TrustStore,
    now: int,
    *,
    node: PeerId,
    org: OrgId,
    dated: tuple[str, int],
    expires: int,
) -> MembershipCertificate:
    """The checks every record a publisher node signs about a dataset shares.

    The chain must be a publisher certificate of ``org`` for ``node``; the record
    must not have expired, be dated in the future, or claim a lifetime beyond
    ``MAX_LIFETIME``. ``dated`` is (what the date means, the date) for the message.
    """
    cert = trust.verify_chain(env.chain, now=now, node=node, role=Role.PUBLISHER, org=org)
    if now >= expires:
        raise ExpiredRecord(f"{what} expired at {expires}")
    verb, when = dated
    if when > now + MAX_CLOCK_SKEW:
        raise VerificationError(f"{what} {verb} in the future ({when} > {now})")
    if expires > now + MAX_LIFETIME:
        raise VerificationError(f"{what} expires more than {MAX_LIFETIME // 86400} days ahead")
    return cert


def verify_descriptor(data: bytes, trust: TrustStore, now: int) -> VerifiedDescriptor:
    """Fully verify descriptor envelope bytes from anywhere.

    Args:
        data: the envelope bytes.
        trust: which organizations are trusted and what they revoked.
        now: the current time in Unix seconds.

    Raises:
        RecordTooLarge, DecodeError: the bytes are not a descriptor within limits.
        SignatureError: the signature does not verify.
        ScopeError: the signer is not ``publisher_node``, or the certificate is of
            another org than the dataset's or for another node.
        CertificateError (and subclasses): the certificate is unacceptable.
        ExpiredRecord: the descriptor expired.
        VerificationError: clock sanity failed (modified in the future, expiry too far).
    """
    desc, env = open_descriptor(data)
    cert = check_descriptor(desc, env, trust, now)
    return VerifiedDescriptor(desc, cert, bytes(data))


def decode_descriptor_unverified(data: bytes) -> Descriptor:
    """Decode a descriptor for display when it cannot be fully verified.

    The envelope signature and the signer/``publisher_node`` match are still
    checked (a record that fails those is garbage), but trust, certificate
    validity, revocation and expiry are not. Never act on the result.

    Raises:
        RecordTooLarge, DecodeError, SignatureError, ScopeError: as :func:`open_descriptor`.
    """
    return open_descriptor(data)[0]
