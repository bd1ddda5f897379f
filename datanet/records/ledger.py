"""The catalog ledger's records: the five signed kinds that gossip and anti-entropy carry.

================  ===========================  ========================  ==========================
kind              tag                          signed by                 DHT key
================  ===========================  ========================  ==========================
descriptor        ``dn/descriptor/v1``         publishing node + chain   ``/dn/<org>/<name>``
deprecation       ``dn/deprecation/v1``        publisher node + chain    ``/dn/<org>/<name>``
revocation        ``dn/revocation/v1``         org root                  ``/dn-rev/<org>``
org               ``dn/org/v1``                org root                  ``/dn-org/<org>``
grant_revocation  ``dn/grant-revocation/v1``   publisher node + chain    ``/dn-grev/<org>/<id hex>``
================  ===========================  ========================  ==========================

:func:`record_kind` tells the kind from the envelope tag alone (no signature
check); :func:`verify_ledger_record` verifies a record of any kind completely and
returns a :class:`LedgerRecord` with what the node, gossip and anti-entropy need
(key, sequence, a timestamp from the signed body, org, expiry). This module is
also the one home of the org-signed kinds' checks (:func:`check_org_record`,
:func:`check_revocation`) and of the trust rule for them
(:func:`check_org_trusted`), which the DHT validators reuse.

Invariants:
* On any bytes, :func:`record_kind` and :func:`verify_ledger_record` raise only
  :class:`~datanet.errors.DatanetError` subclasses; nothing larger than the
  kind's own bound is decoded.
* Every field of a :class:`LedgerRecord` comes from the signed bytes (never from
  the receiving node's clock), so every node derives the same record.
* Org-signed records (revocation lists, org records) follow the trust store: in a
  ``closed`` network (``accept_any`` off) only trusted organizations' records pass.
* Times are integer Unix seconds passed in by the caller; nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from datanet.errors import (
    DecodeError,
    ExpiredRecord,
    RecordTooLarge,
    UntrustedOrganization,
    VerificationError,
)
from datanet.records.access import (
    GRANT_REVOCATION_TAG,
    GREV_PREFIX,
    MAX_GRANT_REVOCATION_SIZE,
    VerifiedGrantRevocation,
    grant_revocation_key,
    verify_grant_revocation,
)
from datanet.records.deprecation import (
    DEPRECATION_TAG,
    MAX_DEPRECATION_SIZE,
    VerifiedDeprecation,
    verify_deprecation,
)
from datanet.records.descriptor import (
    DESCRIPTOR_TAG,
    MAX_CLOCK_SKEW,
    MAX_DESCRIPTOR_SIZE,
    VerifiedDescriptor,
    verify_descriptor,
)
from datanet.records.ids import DatasetId
from identity.certs import (
    MAX_REVOCATION_SIZE,
    REVOCATION_TAG,
    Revocation,
    TrustStore,
    parse_revocation,
)
from identity.encoding import unpack
from identity.keys import OrgId
from identity.orgs import MAX_ORG_RECORD_SIZE, ORG_RECORD_TAG, OrgRecord, decode_org_record

__all__ = [
    "GREV_PREFIX",
    "MAX_LEDGER_RECORD",
    "ORG_PREFIX",
    "REV_PREFIX",
    "LedgerRecord",
    "LedgerValue",
    "RecordKind",
    "check_org_record",
    "check_org_trusted",
    "check_revocation",
    "grant_revocation_key",
    "max_size_of",
    "newer",
    "org_record_key",
    "record_id",
    "record_kind",
    "revocation_key",
    "verify_ledger_record",
]

ORG_PREFIX = b"/dn-org/"
REV_PREFIX = b"/dn-rev/"


class RecordKind(StrEnum):
    """The kinds of signed record the catalog ledger carries."""

    DESCRIPTOR = "descriptor"
    DEPRECATION = "deprecation"
    REVOCATION = "revocation"
    ORG = "org"
    GRANT_REVOCATION = "grant_revocation"


_KIND_OF_TAG: dict[str, RecordKind] = {
    DESCRIPTOR_TAG: RecordKind.DESCRIPTOR,
    DEPRECATION_TAG: RecordKind.DEPRECATION,
    REVOCATION_TAG: RecordKind.REVOCATION,
    ORG_RECORD_TAG: RecordKind.ORG,
    GRANT_REVOCATION_TAG: RecordKind.GRANT_REVOCATION,
}
_MAX_SIZE: dict[RecordKind, int] = {
    RecordKind.DESCRIPTOR: MAX_DESCRIPTOR_SIZE,
    RecordKind.DEPRECATION: MAX_DEPRECATION_SIZE,
    RecordKind.REVOCATION: MAX_REVOCATION_SIZE,
    RecordKind.ORG: MAX_ORG_RECORD_SIZE,
    RecordKind.GRANT_REVOCATION: MAX_GRANT_REVOCATION_SIZE,
}
#: The largest of the kinds' own bounds: a revocation list may hold 4,096 serials
#: (64 KiB); descriptors, deprecations and grant revocations are at most 16 KiB,
#: org records 8 KiB.
MAX_LEDGER_RECORD = max(_MAX_SIZE.values())


def max_size_of(kind: RecordKind) -> int:
    """The size bound of one kind's signed envelope (bytes)."""
    return _MAX_SIZE[kind]


def org_record_key(org: OrgId) -> bytes:
    """The DHT key of ``org``'s org record: ``/dn-org/<did>``."""
    return ORG_PREFIX + str(org).encode("ascii")


def revocation_key(org: OrgId) -> bytes:
    """The DHT key of ``org``'s revocation list: ``/dn-rev/<did>``."""
    return REV_PREFIX + str(org).encode("ascii")


def record_id(data: bytes) -> bytes:
    """The record's id: sha256 of its exact signed bytes (gossip message id, sync item id)."""
    return hashlib.sha256(data).digest()


def record_kind(data: bytes) -> RecordKind:
    """The kind of a signed record, from its envelope tag alone (no signature check).

    Raises:
        RecordTooLarge: ``data`` is over :data:`MAX_LEDGER_RECORD`, or over its
            kind's own bound.
        DecodeError: ``data`` is not a signed envelope, or its tag is not a ledger kind.
    """
    obj = unpack(data, max_size=MAX_LEDGER_RECORD, max_items=16)
    if not isinstance(obj, list) or len(obj) != 6:
        raise DecodeError("not a datanet signed envelope")
    tag = obj[1]
    kind = _KIND_OF_TAG.get(tag) if isinstance(tag, str) else None
    if kind is None:
        raise DecodeError(f"not a ledger record: unknown tag {str(tag)[:40]!r}")
    if len(data) > _MAX_SIZE[kind]:
        raise RecordTooLarge(f"{kind} record is {len(data)} bytes; the limit is {_MAX_SIZE[kind]}")
    return kind


def check_org_trusted(trust: TrustStore | None, org: OrgId, what: str) -> None:
    """Refuse a record of an untrusted org in a ``closed`` network (``accept_any`` off).

    ``trust=None`` skips the rule (callers that do not filter by trust).

    Raises:
        UntrustedOrganization: ``org`` is not trusted and ``trust.accept_any`` is off.
    """
    if trust is not None and not trust.accept_any and org not in trust.trusted:
        raise UntrustedOrganization(f"{what} of {org}: the organization is not trusted here")


def check_org_record(record: OrgRecord, trust: TrustStore | None, now: int) -> None:
    """The trust- and time-dependent checks of a decoded org record.

    Raises:
        UntrustedOrganization: see :func:`check_org_trusted`.
        ExpiredRecord: ``now`` is at or past ``record.expires``.
    """
    check_org_trusted(trust, record.org, "org record")
    if now >= record.expires:
        raise ExpiredRecord(f"org record of {record.org} expired at {record.expires}")


def check_revocation(rev: Revocation, trust: TrustStore | None, now: int) -> None:
    """The trust- and time-dependent checks of a decoded revocation list.

    Revocation lists do not expire (a revocation must outlive the certificate).

    Raises:
        UntrustedOrganization: see :func:`check_org_trusted`.
        VerificationError: the list claims to be issued more than 300 s in the future.
    """
    check_org_trusted(trust, rev.org, "revocation list")
    if rev.issued_at > now + MAX_CLOCK_SKEW:
        raise VerificationError(f"revocation list of {rev.org} is issued in the future")


LedgerValue = (
    VerifiedDescriptor | VerifiedDeprecation | Revocation | OrgRecord | VerifiedGrantRevocation
)


@dataclass(frozen=True)
class LedgerRecord:
    """A fully verified ledger record and what the node needs to file it.

    Attributes:
        kind: which kind of record.
        key: its DHT key: ``/dn/<org>/<name>`` (descriptor, deprecation),
            ``/dn-rev/<org>``, ``/dn-org/<org>``, ``/dn-grev/<org>/<grant id hex>``.
        sequence: newest wins per key (a grant revocation is final: always 1).
        timestamp: a time from the signed body, the same on every node (anti-entropy
            orders by it): a descriptor's ``modified``, a deprecation's
            ``withdrawn_at``, a revocation list's ``issued_at``, an org record's
            ``expires`` (the only time an org record carries), a grant
            revocation's ``revoked_at``.
        org: the organization the record belongs to.
        raw: the exact signed bytes (store and forward these).
        serial: the signing certificate's serial (descriptor, deprecation, grant
            revocation), else None.
        expires: when it must be dropped (descriptor, deprecation and grant
            revocation: their own expiry or their certificate's, whichever is first;
            org record: its expiry),
            None for revocation lists, which never expire.
        value: the verified record itself.
    """

    kind: RecordKind
    key: bytes
    sequence: int
    timestamp: int
    org: OrgId
    raw: bytes
    serial: int | None
    expires: int | None
    value: LedgerValue

    @property
    def dataset_id(self) -> DatasetId | None:
        """The dataset a descriptor or deprecation is about; None for the other kinds.

        A grant revocation names a dataset too, but it does not compete with the
        dataset's records (its key is its own), so it is not one of them here.
        """
        if isinstance(self.value, VerifiedDescriptor):
            return self.value.descriptor.dataset_id
        if isinstance(self.value, VerifiedDeprecation):
            return self.value.deprecation.dataset_id
        return None


def verify_ledger_record(data: bytes, trust: TrustStore, now: int) -> LedgerRecord:
    """Fully verify a record of any ledger kind at ``now``.

    Descriptors and deprecations: :func:`~datanet.records.descriptor.verify_descriptor`,
    :func:`~datanet.records.deprecation.verify_deprecation`; grant revocations:
    :func:`~datanet.records.access.verify_grant_revocation`. Revocation lists and
    org records: the org root's signature, the trust rule, then
    :func:`check_revocation` / :func:`check_org_record`.

    Raises:
        RecordTooLarge, DecodeError: not a ledger record within its kind's limits.
        SignatureError: the signature does not verify.
        ScopeError: signed outside its scope (wrong node, wrong org).
        CertificateError (and subclasses, incl. UntrustedOrganization): the
            certificate or the organization is not acceptable here.
        ExpiredRecord: the record expired.
        VerificationError: clock sanity failed.
    """
    kind = record_kind(data)
    raw = bytes(data)
    if kind is RecordKind.DESCRIPTOR:
        vdesc = verify_descriptor(raw, trust, now)
        desc = vdesc.descriptor
        return LedgerRecord(
            kind=kind,
            key=desc.dataset_id.dht_key(),
            sequence=desc.sequence,
            timestamp=desc.modified,
            org=desc.dataset_id.org,
            raw=raw,
            serial=vdesc.certificate.serial,
            expires=vdesc.valid_until,
            value=vdesc,
        )
    if kind is RecordKind.DEPRECATION:
        vdep = verify_deprecation(raw, trust, now)
        dep = vdep.deprecation
        return LedgerRecord(
            kind=kind,
            key=dep.dataset_id.dht_key(),
            sequence=dep.sequence,
            timestamp=dep.withdrawn_at,
            org=dep.dataset_id.org,
            raw=raw,
            serial=vdep.certificate.serial,
            expires=vdep.valid_until,
            value=vdep,
        )
    if kind is RecordKind.GRANT_REVOCATION:
        vgrev = verify_grant_revocation(raw, trust, now)
        grev = vgrev.revocation
        return LedgerRecord(
            kind=kind,
            key=grant_revocation_key(grev.org, grev.grant_id),
            sequence=1,
            timestamp=grev.revoked_at,
            org=grev.org,
            raw=raw,
            serial=vgrev.certificate.serial,
            expires=vgrev.valid_until,
            value=vgrev,
        )
    if kind is RecordKind.REVOCATION:
        rev = parse_revocation(raw)
        check_revocation(rev, trust, now)
        return LedgerRecord(
            kind=kind,
            key=revocation_key(rev.org),
            sequence=rev.sequence,
            timestamp=rev.issued_at,
            org=rev.org,
            raw=raw,
            serial=None,
            expires=None,
            value=rev,
        )
    record = decode_org_record(raw)
    check_org_record(record, trust, now)
    return LedgerRecord(
        kind=kind,
        key=org_record_key(record.org),
        sequence=record.sequence,
        timestamp=record.expires,
        org=record.org,
        raw=raw,
        serial=None,
        expires=record.expires,
        value=record,
    )


def newer(
    record: LedgerRecord, held_sequence: int | None, held_kind: RecordKind | None = None
) -> bool:
    """Whether ``record`` supersedes what is held under its key (sequence ``held_sequence``).

    Nothing held (``None``) means it is newer. Otherwise the higher sequence wins;
    at an equal sequence only a deprecation replacing a descriptor (``held_kind``)
    is newer, the rule the ``/dn/`` DHT ``select`` and the catalog follow, so a
    tie never undoes a withdrawal. Equal records are never newer (no re-forwarding).
    """
    if held_sequence is None:
        return True
    if record.sequence != held_sequence:
        return record.sequence > held_sequence
    return record.kind is RecordKind.DEPRECATION and held_kind is RecordKind.DESCRIPTOR
