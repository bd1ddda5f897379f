"""DHT record validators for datanet's key namespaces.

================  ==========================  ===========================================
namespace         key                         value
================  ==========================  ===========================================
``dn``            ``/dn/<org did>/<name>``    a signed descriptor *or deprecation* (tombstone)
                                              of exactly that dataset
``dn-org``        ``/dn-org/<org did>``       the org record, signed by that org
``dn-rev``        ``/dn-rev/<org did>``       the org's revocation list, signed by it
``dn-grev``       ``/dn-grev/<org did>/<id>``  a grant revocation of grant ``<id>`` (hex),
                                              signed by a publisher node of that org
================  ==========================  ===========================================

Each validator implements :class:`routing.records.Validator`: ``validate`` raises
a :class:`~datanet.errors.DatanetError` for anything that must be neither stored
nor forwarded; ``select`` returns the index of the value with the highest
``sequence``, the earliest on ties (stable). Under a ``/dn/`` key descriptors and
deprecations compete by ``sequence`` alike, so a tombstone withdraws every lower
sequence and a newer descriptor brings the dataset back; at an equal sequence the
tombstone wins, whatever the order (a withdrawal is never undone by a tie).
The per-kind checks live in :mod:`datanet.records.descriptor`,
:mod:`datanet.records.deprecation` and :mod:`datanet.records.ledger`; the
validators add only the key binding, the cache and ``select``.

Invariants:
* The work that depends only on the bytes (decoding, the signature) is cached
  per exact value bytes in a small LRU; everything that depends on ``now`` or on
  the trust store (certificate window, revocation, expiry, trust) is checked on
  every call, so a cached record can never outlive its validity.
* ``select`` never raises for values that passed ``validate``; a value it cannot
  decode ranks below every decodable one.
* Org records and revocation lists follow the same trust rule as everything else
  (:func:`datanet.records.ledger.check_org_trusted`) when the validator has a
  trust store: in a ``closed`` network only trusted organizations' records.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from datanet.errors import (
    DatanetError,
    DecodeError,
    ScopeError,
)
from datanet.records.access import (
    GrantRevocation,
    check_grant_revocation,
    grant_revocation_key,
    open_grant_revocation,
)
from datanet.records.deprecation import Deprecation, check_deprecation, open_deprecation
from datanet.records.descriptor import (
    Descriptor,
    check_descriptor,
    open_descriptor,
)
from datanet.records.ledger import (
    ORG_PREFIX,
    REV_PREFIX,
    RecordKind,
    check_org_record,
    check_revocation,
    org_record_key,
    record_kind,
    revocation_key,
)
from identity.certs import Revocation, TrustStore, parse_revocation
from identity.envelope import SignedEnvelope
from identity.keys import OrgId
from identity.orgs import OrgRecord, decode_org_record
from routing.records import NamespacedValidator

__all__ = [
    "DatasetRecord",
    "DescriptorValidator",
    "GrantRevocationValidator",
    "OrgRecordValidator",
    "RevocationValidator",
    "default_validator",
    "open_dataset_record",
    "org_record_key",
    "revocation_key",
]

T = TypeVar("T")


def _org_of_key(key: bytes, prefix: bytes) -> OrgId:
    if not key.startswith(prefix):
        raise DecodeError(f"expected a {prefix.decode()} key")
    try:
        text = key[len(prefix) :].decode("ascii")
    except UnicodeDecodeError:
        raise DecodeError("DHT keys are ASCII") from None
    org = OrgId.parse(text)
    if str(org) != text:
        raise DecodeError("the organization id in the key is not canonical")
    return org


#: Decoded records a descriptor or grant-revocation validator keeps. The cache
#: saves re-decoding the same bytes when they arrive by several paths within
#: seconds (gossip duplicates, a DHT put, a lookup's answers). Each entry holds
#: the decoded record and its bytes (a few KB): 512 per node filled over the
#: soak's first 17 minutes (one new descriptor every 2 s) and were most of its
#: live memory growth.
DECODE_CACHE_SIZE = 128


class _DecodeCache(Generic[T]):
    """A small LRU of decoded values keyed by their exact bytes (successes only)."""

    def __init__(self, decode: Callable[[bytes], T], size: int) -> None:
        self._decode = decode
        self._size = size
        self._items: OrderedDict[bytes, T] = OrderedDict()

    def get(self, value: bytes) -> T:
        value = bytes(value)
        hit = self._items.get(value)
        if hit is not None:
            self._items.move_to_end(value)
            return hit
        decoded = self._decode(value)
        self._items[value] = decoded
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return decoded


def _select_highest(values: Sequence[bytes], rank_of: Callable[[bytes], tuple[int, ...]]) -> int:
    """Index of the highest rank; the first one on ties; undecodable ranks lowest."""
    best_index = 0
    best_rank: tuple[int, ...] = (-1,)
    for index, value in enumerate(values):
        try:
            rank = rank_of(value)
        except DatanetError:
            continue
        if rank > best_rank:
            best_index, best_rank = index, rank
    return best_index


#: A decoded, signature-checked value of a ``/dn/`` key: a descriptor or a tombstone.
DatasetRecord = tuple[Descriptor, SignedEnvelope] | tuple[Deprecation, SignedEnvelope]


def open_dataset_record(value: bytes) -> DatasetRecord:
    """Decode a ``/dn/`` value, a descriptor or a deprecation, and check its signature.

    Raises:
        RecordTooLarge, DecodeError: neither kind, or over the kind's bound.
        SignatureError, ScopeError: see :func:`~datanet.records.descriptor.open_descriptor`
            and :func:`~datanet.records.deprecation.open_deprecation`.
    """
    kind = record_kind(value)
    if kind is RecordKind.DESCRIPTOR:
        return open_descriptor(value)
    if kind is RecordKind.DEPRECATION:
        return open_deprecation(value)
    raise DecodeError(f"a /dn/ value is a descriptor or a deprecation, not a {kind} record")


def _dataset_rank(record: DatasetRecord) -> tuple[int, int]:
    # At an equal sequence the tombstone ranks higher, so a tie never undoes a withdrawal.
    rec = record[0]
    return (rec.sequence, 1 if isinstance(rec, Deprecation) else 0)


class DescriptorValidator:
    """Validates ``/dn/`` records: a dataset's signed descriptors and deprecations.

    Args:
        trust: the trust store that certificate chains are checked against. It
            is consulted on every call, so revocations added later take effect.
        cache_size: how many decoded records to keep.
    """

    def __init__(self, trust: TrustStore, *, cache_size: int = DECODE_CACHE_SIZE) -> None:
        self.trust = trust
        self._cache: _DecodeCache[DatasetRecord] = _DecodeCache(open_dataset_record, cache_size)

    def validate(self, key: bytes, value: bytes, now: int) -> None:
        """Raise unless ``value`` is a valid descriptor or deprecation of the dataset ``key``.

        Raises:
            DecodeError, RecordTooLarge, SignatureError: the value is not a
                well-formed, well-signed descriptor or deprecation.
            ScopeError: the key is not the record's dataset key, or the
                certificate is of another org or node.
            CertificateError, ExpiredRecord, VerificationError: see
                :func:`datanet.records.descriptor.verify_descriptor` and
                :func:`datanet.records.deprecation.verify_deprecation`.
        """
        record, env = self._cache.get(value)
        expected = record.dataset_id.dht_key()
        if key != expected:
            what = "deprecation" if isinstance(record, Deprecation) else "descriptor"
            raise ScopeError(
                f"{what} of {record.dataset_id} stored under the wrong key "
                f"{key[:100].decode('ascii', 'replace')!r}"
            )
        if isinstance(record, Deprecation):
            check_deprecation(record, env, self.trust, now)
        else:
            check_descriptor(record, env, self.trust, now)

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        """The index of the highest sequence (first on ties; a tombstone beats a descriptor)."""
        return _select_highest(values, lambda v: _dataset_rank(self._cache.get(v)))


class OrgRecordValidator:
    """Validates ``/dn-org/<did>`` records: org records signed by that org.

    Args:
        trust: if given, a ``closed`` store refuses untrusted organizations' records.
        cache_size: how many decoded records to keep.
    """

    def __init__(self, trust: TrustStore | None = None, *, cache_size: int = 256) -> None:
        self.trust = trust
        self._cache: _DecodeCache[OrgRecord] = _DecodeCache(decode_org_record, cache_size)

    def validate(self, key: bytes, value: bytes, now: int) -> None:
        """Raise unless ``value`` is a current org record of the org named by ``key``.

        Raises:
            DecodeError, RecordTooLarge, SignatureError: not a well-signed org record.
            ScopeError: the record is of another org than the key names.
            UntrustedOrganization: the org is not trusted in a ``closed`` network.
            ExpiredRecord: the record expired.
        """
        org = _org_of_key(key, ORG_PREFIX)
        record = self._cache.get(value)
        if record.org != org:
            raise ScopeError(f"org record of {record.org} stored under the key of {org}")
        check_org_record(record, self.trust, now)

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        """The index of the record with the highest sequence (first on ties)."""
        return _select_highest(values, lambda v: (self._cache.get(v).sequence,))


class RevocationValidator:
    """Validates ``/dn-rev/<did>`` records: revocation lists signed by that org.

    Args:
        trust: if given, a ``closed`` store refuses untrusted organizations' lists.
        cache_size: how many decoded lists to keep.
    """

    def __init__(self, trust: TrustStore | None = None, *, cache_size: int = 256) -> None:
        self.trust = trust
        self._cache: _DecodeCache[Revocation] = _DecodeCache(parse_revocation, cache_size)

    def validate(self, key: bytes, value: bytes, now: int) -> None:
        """Raise unless ``value`` is a revocation list of the org named by ``key``.

        Revocation lists do not expire (a revocation must outlive the certificate).

        Raises:
            DecodeError, RecordTooLarge, SignatureError: not a well-signed list.
            ScopeError: the list is of another org than the key names.
            UntrustedOrganization: the org is not trusted in a ``closed`` network.
            VerificationError: the list claims to be issued in the future.
        """
        org = _org_of_key(key, REV_PREFIX)
        rev = self._cache.get(value)
        if rev.org != org:
            raise ScopeError(f"revocation list of {rev.org} stored under the key of {org}")
        check_revocation(rev, self.trust, now)

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        """The index of the list with the highest sequence (first on ties)."""
        return _select_highest(values, lambda v: (self._cache.get(v).sequence,))


class GrantRevocationValidator:
    """Validates ``/dn-grev/<did>/<grant id hex>`` records: an org's grant revocations.

    A revocation is final (there is nothing newer than it), so every valid value
    under a key is as good as another; ``select`` keeps the first.

    Args:
        trust: the trust store the signer's chain is checked against (every call).
        cache_size: how many decoded records to keep.
    """

    def __init__(self, trust: TrustStore, *, cache_size: int = DECODE_CACHE_SIZE) -> None:
        self.trust = trust
        self._cache: _DecodeCache[tuple[GrantRevocation, SignedEnvelope]] = _DecodeCache(
            open_grant_revocation, cache_size
        )

    def validate(self, key: bytes, value: bytes, now: int) -> None:
        """Raise unless ``value`` is a valid revocation of the grant named by ``key``.

        Raises:
            DecodeError, RecordTooLarge, SignatureError: not a well-signed grant revocation.
            ScopeError: the key is not the record's key, or the signer is not named.
            CertificateError, ExpiredRecord, VerificationError: see
                :func:`datanet.records.access.verify_grant_revocation`.
        """
        rev, env = self._cache.get(value)
        if key != grant_revocation_key(rev.org, rev.grant_id):
            raise ScopeError(
                f"revocation of grant {rev.grant_id.hex()} stored under the wrong key "
                f"{key[:120].decode('ascii', 'replace')!r}"
            )
        check_grant_revocation(rev, env, self.trust, now)

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        """The first decodable value (all revocations of one grant are final alike)."""
        return _select_highest(values, self._rank)

    def _rank(self, value: bytes) -> tuple[int]:
        self._cache.get(value)  # raises for an undecodable value, which ranks lowest
        return (1,)


def default_validator(trust: TrustStore) -> NamespacedValidator:
    """The validator a datanet node uses for its DHT: ``dn``, ``dn-org``, ``dn-rev``, ``dn-grev``.

    ``dn-grev`` holds grant revocations (:class:`GrantRevocationValidator`).
    """
    return NamespacedValidator(
        {
            "dn": DescriptorValidator(trust),
            "dn-org": OrgRecordValidator(trust),
            "dn-rev": RevocationValidator(trust),
            "dn-grev": GrantRevocationValidator(trust),
        }
    )
