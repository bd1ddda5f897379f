"""DHT record validators for datanet's key namespaces.

================  ==========================  ===========================================
namespace         key                         value
================  ==========================  ===========================================
``dn``            ``/dn/<org did>/<name>``    a signed descriptor of exactly that dataset
``dn-org``        ``/dn-org/<org did>``       the org record, signed by that org
``dn-rev``        ``/dn-rev/<org did>``       the org's revocation list, signed by it
================  ==========================  ===========================================

Each validator implements :class:`routing.records.Validator`: ``validate`` raises
a :class:`~datanet.errors.DatanetError` for anything that must be neither stored
nor forwarded; ``select`` returns the index of the value with the highest
``sequence``, the earliest on ties (stable).

Invariants:
* The work that depends only on the bytes (decoding, the signature) is cached
  per exact value bytes in a small LRU; everything that depends on ``now`` or on
  the trust store (certificate window, revocation, expiry, trust) is checked on
  every call, so a cached record can never outlive its validity.
* ``select`` never raises for values that passed ``validate``; a value it cannot
  decode ranks below every decodable one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from datanet.errors import (
    DatanetError,
    DecodeError,
    ExpiredRecord,
    ScopeError,
    VerificationError,
)
from datanet.records.descriptor import (
    MAX_CLOCK_SKEW,
    Descriptor,
    check_descriptor,
    open_descriptor,
)
from identity.certs import Revocation, TrustStore, parse_revocation
from identity.envelope import SignedEnvelope
from identity.keys import OrgId
from identity.orgs import OrgRecord, decode_org_record
from routing.records import NamespacedValidator

__all__ = [
    "DescriptorValidator",
    "OrgRecordValidator",
    "RevocationValidator",
    "default_validator",
    "org_record_key",
    "revocation_key",
]

ORG_PREFIX = b"/dn-org/"
REV_PREFIX = b"/dn-rev/"

T = TypeVar("T")


def org_record_key(org: OrgId) -> bytes:
    """The DHT key of ``org``'s org record: ``/dn-org/<did>``."""
    return ORG_PREFIX + str(org).encode("ascii")


def revocation_key(org: OrgId) -> bytes:
    """The DHT key of ``org``'s revocation list: ``/dn-rev/<did>``."""
    return REV_PREFIX + str(org).encode("ascii")


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


def _select_highest(values: Sequence[bytes], sequence_of: Callable[[bytes], int]) -> int:
    """Index of the highest sequence; the first one on ties; undecodable ranks lowest."""
    best_index = 0
    best_seq = -1
    for index, value in enumerate(values):
        try:
            seq = sequence_of(value)
        except DatanetError:
            continue
        if seq > best_seq:
            best_index, best_seq = index, seq
    return best_index


class DescriptorValidator:
    """Validates ``/dn/`` records: signed descriptors under their own dataset key.

    Args:
        trust: the trust store that certificate chains are checked against. It
            is consulted on every call, so revocations added later take effect.
        cache_size: how many decoded descriptors to keep.
    """

    def __init__(self, trust: TrustStore, *, cache_size: int = 512) -> None:
        self.trust = trust
        self._cache: _DecodeCache[tuple[Descriptor, SignedEnvelope]] = _DecodeCache(
            open_descriptor, cache_size
        )

    def validate(self, key: bytes, value: bytes, now: int) -> None:
        """Raise unless ``value`` is a valid descriptor of the dataset named by ``key``.

        Raises:
            DecodeError, RecordTooLarge, SignatureError: the value is not a
                well-formed, well-signed descriptor.
            ScopeError: the key is not the descriptor's dataset key, or the
                certificate is of another org or node.
            CertificateError, ExpiredRecord, VerificationError: see
                :func:`datanet.records.descriptor.verify_descriptor`.
        """
        desc, env = self._cache.get(value)
        expected = desc.dataset_id.dht_key()
        if key != expected:
            raise ScopeError(
                f"descriptor of {desc.dataset_id} stored under the wrong key "
                f"{key[:100].decode('ascii', 'replace')!r}"
            )
        check_descriptor(desc, env, self.trust, now)

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        """The index of the descriptor with the highest sequence (first on ties)."""
        return _select_highest(values, lambda v: self._cache.get(v)[0].sequence)


class OrgRecordValidator:
    """Validates ``/dn-org/<did>`` records: org records signed by that org."""

    def __init__(self, *, cache_size: int = 256) -> None:
        self._cache: _DecodeCache[OrgRecord] = _DecodeCache(decode_org_record, cache_size)

    def validate(self, key: bytes, value: bytes, now: int) -> None:
        """Raise unless ``value`` is a current org record of the org named by ``key``.

        Raises:
            DecodeError, RecordTooLarge, SignatureError: not a well-signed org record.
            ScopeError: the record is of another org than the key names.
            ExpiredRecord: the record expired.
        """
        org = _org_of_key(key, ORG_PREFIX)
        record = self._cache.get(value)
        if record.org != org:
            raise ScopeError(f"org record of {record.org} stored under the key of {org}")
        if now >= record.expires:
            raise ExpiredRecord(f"org record of {record.org} expired at {record.expires}")

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        """The index of the record with the highest sequence (first on ties)."""
        return _select_highest(values, lambda v: self._cache.get(v).sequence)


class RevocationValidator:
    """Validates ``/dn-rev/<did>`` records: revocation lists signed by that org."""

    def __init__(self, *, cache_size: int = 256) -> None:
        self._cache: _DecodeCache[Revocation] = _DecodeCache(parse_revocation, cache_size)

    def validate(self, key: bytes, value: bytes, now: int) -> None:
        """Raise unless ``value`` is a revocation list of the org named by ``key``.

        Revocation lists do not expire (a revocation must outlive the certificate).

        Raises:
            DecodeError, RecordTooLarge, SignatureError: not a well-signed list.
            ScopeError: the list is of another org than the key names.
            VerificationError: the list claims to be issued in the future.
        """
        org = _org_of_key(key, REV_PREFIX)
        rev = self._cache.get(value)
        if rev.org != org:
            raise ScopeError(f"revocation list of {rev.org} stored under the key of {org}")
        if rev.issued_at > now + MAX_CLOCK_SKEW:
            raise VerificationError(f"revocation list of {org} is issued in the future")

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        """The index of the list with the highest sequence (first on ties)."""
        return _select_highest(values, lambda v: self._cache.get(v).sequence)


def default_validator(trust: TrustStore) -> NamespacedValidator:
    """The validator a datanet node uses for its DHT: ``dn``, ``dn-org`` and ``dn-rev``."""
    return NamespacedValidator(
        {
            "dn": DescriptorValidator(trust),
            "dn-org": OrgRecordValidator(),
            "dn-rev": RevocationValidator(),
        }
    )
