"""The ledger: record kinds from tags, full verification of every kind, ids, bounds."""

from __future__ import annotations

import hashlib

import pytest

from datanet.errors import (
    CertificateRevoked,
    DecodeError,
    ExpiredRecord,
    RecordTooLarge,
    RoleNotGranted,
    ScopeError,
    SignatureError,
    UntrustedOrganization,
    VerificationError,
)
from datanet.records.access import MAX_GRANT_REVOCATION_SIZE
from datanet.records.deprecation import (
    DEPRECATION_TAG,
    MAX_DEPRECATION_SIZE,
    VerifiedDeprecation,
)
from datanet.records.descriptor import DESCRIPTOR_TAG, MAX_DESCRIPTOR_SIZE, VerifiedDescriptor
from datanet.records.ledger import (
    MAX_LEDGER_RECORD,
    LedgerRecord,
    RecordKind,
    max_size_of,
    newer,
    org_record_key,
    record_id,
    record_kind,
    revocation_key,
    verify_ledger_record,
)
from datanet.testing.clock import DAY, NOW
from datanet.testing.records import (
    NODE_A,
    NODE_B,
    ORG_A,
    ORG_B,
    certificate,
    deprecation,
    descriptor,
    signed,
    signed_deprecation,
)
from identity.certs import (
    CERT_TAG,
    MAX_REVOCATION_SIZE,
    REVOCATION_TAG,
    Revocation,
    Role,
    TrustStore,
    issue_revocation,
    parse_revocation,
)
from identity.encoding import pack
from identity.envelope import seal
from identity.keys import KeyPair
from identity.orgs import MAX_ORG_RECORD_SIZE, ORG_RECORD_TAG, Gateway, OrgRecord, issue_org_record


def trust(*orgs: KeyPair, accept_any: bool = False) -> TrustStore:
    return TrustStore({o.org_id for o in (orgs or (ORG_A,))}, accept_any=accept_any)


def org_record(org: KeyPair = ORG_A, *, sequence: int = 3, expires: int = NOW + DAY) -> bytes:
    gw = (Gateway(NODE_A.peer_id, ("/ip4/127.0.0.1/tcp/4001",)),)
    return issue_org_record(org, name="acme", gateways=gw, sequence=sequence, expires=expires)


def revocation(org: KeyPair = ORG_A, serials: tuple[int, ...] = (99,), **kw: int) -> bytes:
    return issue_revocation(
        org, serials, sequence=kw.get("sequence", 4), issued_at=kw.get("issued_at", NOW - 10)
    )


# -- kinds and bounds -------------------------------------------------------------------


def test_max_ledger_record_is_the_largest_kind_bound() -> None:
    bounds = {kind: max_size_of(kind) for kind in RecordKind}
    assert bounds == {
        RecordKind.DESCRIPTOR: MAX_DESCRIPTOR_SIZE,
        RecordKind.DEPRECATION: MAX_DEPRECATION_SIZE,
        RecordKind.REVOCATION: MAX_REVOCATION_SIZE,
        RecordKind.ORG: MAX_ORG_RECORD_SIZE,
        RecordKind.GRANT_REVOCATION: MAX_GRANT_REVOCATION_SIZE,
    }
    assert max(bounds.values()) == MAX_LEDGER_RECORD


def test_record_kind_from_the_tag() -> None:
    assert record_kind(signed(descriptor())) is RecordKind.DESCRIPTOR
    assert record_kind(signed_deprecation(deprecation())) is RecordKind.DEPRECATION
    assert record_kind(revocation()) is RecordKind.REVOCATION
    assert record_kind(org_record()) is RecordKind.ORG
    assert [k.value for k in RecordKind] == [
        "descriptor",
        "deprecation",
        "revocation",
        "org",
        "grant_revocation",
    ]


def test_record_kind_does_not_check_the_signature() -> None:
    """Cheap by design: a forged record still has a kind; verification refuses it."""
    forged = pack([1, DEPRECATION_TAG, b"body", b"k" * 32, b"s" * 64, []])
    assert record_kind(forged) is RecordKind.DEPRECATION
    with pytest.raises(SignatureError):
        verify_ledger_record(forged, trust(), NOW)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\xc1",
        pack({"v": 1}),
        pack([1, DESCRIPTOR_TAG]),
        pack([1, "dn/unknown/v1", b"", b"k" * 32, b"s" * 64, []]),
        pack([1, 5, b"", b"k" * 32, b"s" * 64, []]),
        pack([1, None, b"", b"k" * 32, b"s" * 64, []]),
        certificate(),  # a real envelope, but certificates are not ledger records
    ],
)
def test_record_kind_refuses_garbage_and_other_tags(data: bytes) -> None:
    with pytest.raises(DecodeError):
        record_kind(data)
    with pytest.raises(DecodeError):
        verify_ledger_record(data, trust(), NOW)


def test_certificate_is_named_in_the_refusal() -> None:
    with pytest.raises(DecodeError, match=CERT_TAG):
        record_kind(certificate())


def test_oversize_is_refused_per_kind() -> None:
    def envelope(tag: str, body_size: int) -> bytes:
        return pack([1, tag, b"x" * body_size, b"k" * 32, b"s" * 64, []])

    # over the kind's own bound, though under the ledger bound
    for tag, bound in (
        (DESCRIPTOR_TAG, MAX_DESCRIPTOR_SIZE),
        (DEPRECATION_TAG, MAX_DEPRECATION_SIZE),
        (ORG_RECORD_TAG, MAX_ORG_RECORD_SIZE),
    ):
        data = envelope(tag, bound)
        assert bound < len(data) <= MAX_LEDGER_RECORD
        with pytest.raises(RecordTooLarge):
            record_kind(data)
        with pytest.raises(RecordTooLarge):
            verify_ledger_record(data, trust(), NOW)
    # over the ledger bound: refused before any decoding
    with pytest.raises(RecordTooLarge):
        record_kind(envelope(REVOCATION_TAG, MAX_LEDGER_RECORD))
    with pytest.raises(RecordTooLarge):
        record_kind(b"\x00" * (MAX_LEDGER_RECORD + 1))


def test_record_id_is_sha256_of_the_bytes() -> None:
    data = signed(descriptor())
    assert record_id(data) == hashlib.sha256(data).digest()
    assert len(record_id(data)) == 32
    assert record_id(data) != record_id(signed(descriptor(sequence=2)))


# -- verification of each kind ------------------------------------------------------------


def test_descriptor_record() -> None:
    desc = descriptor(sequence=9, lifetime=2 * DAY, issued=NOW - 100)
    data = signed(desc)
    rec = verify_ledger_record(data, trust(), NOW)
    assert rec.kind is RecordKind.DESCRIPTOR
    assert rec.key == desc.dataset_id.dht_key()
    assert rec.sequence == 9
    assert rec.timestamp == desc.modified
    assert rec.org == ORG_A.org_id
    assert rec.raw == data
    assert rec.serial == 7
    assert rec.expires == NOW + 2 * DAY
    assert isinstance(rec.value, VerifiedDescriptor)
    assert rec.value.descriptor == desc
    assert rec.dataset_id == desc.dataset_id


def test_descriptor_record_expires_with_its_certificate() -> None:
    data = signed(descriptor(lifetime=2 * DAY), chain=[certificate(not_after=NOW + 60)])
    assert verify_ledger_record(data, trust(), NOW).expires == NOW + 60


def test_deprecation_record() -> None:
    dep = deprecation(node=NODE_B, sequence=10, reason="replaced", lifetime=30 * DAY)
    data = signed_deprecation(dep, key=NODE_B, chain=[certificate(ORG_A, NODE_B, serial=12)])
    rec = verify_ledger_record(data, trust(), NOW)
    assert rec.kind is RecordKind.DEPRECATION
    assert rec.key == dep.dataset_id.dht_key() == descriptor().dataset_id.dht_key()
    assert rec.sequence == 10
    assert rec.timestamp == NOW
    assert rec.org == ORG_A.org_id
    assert rec.raw == data
    assert rec.serial == 12
    assert rec.expires == NOW + 30 * DAY
    assert isinstance(rec.value, VerifiedDeprecation)
    assert rec.value.deprecation == dep
    assert rec.dataset_id == dep.dataset_id


def test_revocation_record() -> None:
    data = revocation(serials=(1, 2, 3), sequence=6, issued_at=NOW - 5)
    rec = verify_ledger_record(data, trust(), NOW)
    assert rec.kind is RecordKind.REVOCATION
    assert rec.key == revocation_key(ORG_A.org_id)
    assert rec.sequence == 6
    assert rec.timestamp == NOW - 5
    assert rec.org == ORG_A.org_id
    assert rec.serial is None
    assert rec.expires is None
    assert rec.dataset_id is None
    assert isinstance(rec.value, Revocation)
    assert rec.value.serials == frozenset({1, 2, 3})


def test_large_revocation_list_verifies() -> None:
    """Revocation lists are the largest kind: thousands of serials, up to 64 KiB."""
    serials = tuple(range(2**40, 2**40 + 4096))
    data = revocation(serials=serials)
    assert len(data) > MAX_DESCRIPTOR_SIZE
    rec = verify_ledger_record(data, trust(), NOW)
    assert isinstance(rec.value, Revocation)
    assert len(rec.value.serials) == 4096
    assert parse_revocation(revocation(serials=tuple(range(17)))).serials == frozenset(range(17))


def test_org_record() -> None:
    data = org_record(sequence=8, expires=NOW + 3 * DAY)
    rec = verify_ledger_record(data, trust(), NOW)
    assert rec.kind is RecordKind.ORG
    assert rec.key == org_record_key(ORG_A.org_id)
    assert rec.sequence == 8
    assert rec.timestamp == NOW + 3 * DAY  # the only time an org record carries
    assert rec.org == ORG_A.org_id
    assert rec.serial is None
    assert rec.expires == NOW + 3 * DAY
    assert rec.dataset_id is None
    assert isinstance(rec.value, OrgRecord)
    assert rec.value.name == "acme"


def test_same_bytes_same_record_on_every_node() -> None:
    """Nothing in a LedgerRecord depends on the verifier's clock or trust beyond pass/fail."""
    for data in (
        signed(descriptor()),
        signed_deprecation(deprecation()),
        revocation(),
        org_record(),
    ):
        a = verify_ledger_record(data, trust(), NOW)
        b = verify_ledger_record(data, trust(ORG_A, ORG_B), NOW + 30)
        assert isinstance(a, LedgerRecord)
        assert (a.kind, a.key, a.sequence, a.timestamp, a.org, a.raw, a.serial, a.expires) == (
            b.kind,
            b.key,
            b.sequence,
            b.timestamp,
            b.org,
            b.raw,
            b.serial,
            b.expires,
        )


# -- refusals of each kind --------------------------------------------------------------


def test_descriptor_refusals() -> None:
    data = signed(descriptor(lifetime=100))
    with pytest.raises(ExpiredRecord):
        verify_ledger_record(data, trust(), NOW + 100)
    with pytest.raises(UntrustedOrganization):
        verify_ledger_record(data, trust(ORG_B), NOW)
    chain = [certificate(roles=(Role.REQUESTER,))]
    no_role = seal(NODE_A, DESCRIPTOR_TAG, descriptor().encode_body(), chain).encode()
    with pytest.raises(RoleNotGranted):
        verify_ledger_record(no_role, trust(), NOW)


def test_deprecation_refusals() -> None:
    dep = deprecation(lifetime=100)
    good = signed_deprecation(dep)
    verify_ledger_record(good, trust(), NOW)
    with pytest.raises(SignatureError):
        verify_ledger_record(good.replace(b"weather", b"weathes"), trust(), NOW)
    with pytest.raises(ExpiredRecord):
        verify_ledger_record(good, trust(), NOW + 100)
    with pytest.raises(UntrustedOrganization):
        verify_ledger_record(good, trust(ORG_B), NOW)
    wrong_org = signed_deprecation(dep, chain=[certificate(ORG_B, NODE_A)], check=False)
    with pytest.raises(ScopeError):
        verify_ledger_record(wrong_org, trust(ORG_A, ORG_B), NOW)
    no_role = signed_deprecation(
        dep, chain=[certificate(ORG_A, NODE_A, roles=(Role.GATEWAY,))], check=False
    )
    with pytest.raises(RoleNotGranted):
        verify_ledger_record(no_role, trust(), NOW)
    store = trust()
    store.add_revocation(parse_revocation(revocation(serials=(7,))))
    with pytest.raises(CertificateRevoked):
        verify_ledger_record(good, store, NOW)


def test_revocation_refusals() -> None:
    data = revocation()
    with pytest.raises(UntrustedOrganization):
        verify_ledger_record(data, trust(ORG_B), NOW)
    verify_ledger_record(data, trust(ORG_B, accept_any=True), NOW)
    with pytest.raises(VerificationError, match="future"):
        verify_ledger_record(revocation(issued_at=NOW + 301), trust(), NOW)
    verify_ledger_record(revocation(issued_at=NOW + 300), trust(), NOW)
    # revocation lists never expire
    assert verify_ledger_record(data, trust(), NOW + 10 * 365 * DAY).expires is None
    # signed by someone other than the org it names
    body = Revocation(ORG_A.org_id, frozenset({1}), 1, NOW).encode_body()
    foreign = seal(ORG_B, REVOCATION_TAG, body).encode()
    with pytest.raises(ScopeError):
        verify_ledger_record(foreign, trust(ORG_A, ORG_B), NOW)
    with pytest.raises(SignatureError):
        verify_ledger_record(data[:-3] + bytes([data[-3] ^ 1]) + data[-2:], trust(), NOW)


def test_org_record_refusals() -> None:
    data = org_record(expires=NOW + 50)
    with pytest.raises(ExpiredRecord):
        verify_ledger_record(data, trust(), NOW + 50)
    with pytest.raises(UntrustedOrganization):
        verify_ledger_record(data, trust(ORG_B), NOW)
    verify_ledger_record(data, trust(ORG_B, accept_any=True), NOW)
    body = OrgRecord(ORG_A.org_id, "acme", (), 1, NOW + 50).encode_body()
    foreign = seal(ORG_B, ORG_RECORD_TAG, body).encode()
    with pytest.raises(ScopeError):
        verify_ledger_record(foreign, trust(ORG_A, ORG_B), NOW)
    with_chain = seal(ORG_A, ORG_RECORD_TAG, body, [certificate()]).encode()
    with pytest.raises(DecodeError, match="no certificate chain"):
        verify_ledger_record(with_chain, trust(), NOW)


def test_newer() -> None:
    desc = verify_ledger_record(signed(descriptor(sequence=5)), trust(), NOW)
    tomb = verify_ledger_record(signed_deprecation(deprecation(sequence=5)), trust(), NOW)
    for rec in (desc, tomb):
        assert newer(rec, None)
        assert newer(rec, 4)
        assert not newer(rec, 6)
        assert not newer(rec, 5)
        assert not newer(rec, 5, rec.kind)
    # at an equal sequence a tombstone replaces a descriptor, never the other way round
    assert newer(tomb, 5, RecordKind.DESCRIPTOR)
    assert not newer(desc, 5, RecordKind.DEPRECATION)
    assert newer(desc, 4, RecordKind.DEPRECATION)
