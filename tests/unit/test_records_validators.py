"""DHT validators for /dn/ (descriptors and tombstones), /dn-org/ and /dn-rev/: validity,
scope, trust, select, cache."""

from __future__ import annotations

import dataclasses

import pytest

import datanet.records.validators as validators_module
from datanet.errors import (
    CertificateRevoked,
    DatanetError,
    DecodeError,
    ExpiredRecord,
    ScopeError,
    SignatureError,
    UntrustedOrganization,
    VerificationError,
)
from datanet.records.deprecation import open_deprecation
from datanet.records.descriptor import open_descriptor
from datanet.records.ids import DatasetId
from datanet.records.validators import (
    DECODE_CACHE_SIZE,
    DescriptorValidator,
    OrgRecordValidator,
    RevocationValidator,
    default_validator,
    org_record_key,
    revocation_key,
)
from datanet.testing.clock import NOW
from datanet.testing.records import (
    NODE_A,
    certificate,
    deprecation,
    descriptor,
    key,
    signed_deprecation,
)
from datanet.testing.records import signed as sign
from identity.certs import TrustStore, issue_revocation, parse_revocation
from identity.envelope import seal
from identity.orgs import Gateway, issue_org_record

ORG = key("o")
OTHER = key("x")
NODE = NODE_A
CERT = certificate(ORG, NODE, not_before=NOW - 10, not_after=NOW + 10**6, serial=9)
DID = DatasetId(ORG.org_id, "a/b")
KEY = DID.dht_key()


def signed(sequence: int = 1, title: str = "t", dataset_id: DatasetId = DID) -> bytes:
    desc = descriptor(dataset_id, node=NODE, sequence=sequence, title=title, lifetime=1000)
    return sign(desc, key=NODE, chain=[CERT])


def trust() -> TrustStore:
    return TrustStore({ORG.org_id})


def test_descriptor_valid_under_its_key() -> None:
    validator = default_validator(trust())
    validator.validate(KEY, signed(), NOW)


def test_descriptor_under_the_wrong_key() -> None:
    validator = default_validator(trust())
    other = DatasetId(ORG.org_id, "a/c").dht_key()
    with pytest.raises(ScopeError, match="wrong key"):
        validator.validate(other, signed(), NOW)
    with pytest.raises(DecodeError):
        validator.validate(b"/dn-org/" + str(ORG.org_id).encode(), signed(), NOW)


def test_descriptor_checks_time_and_trust_on_every_call_despite_the_cache() -> None:
    store = trust()
    validator = DescriptorValidator(store)
    data = signed()
    validator.validate(KEY, data, NOW)
    with pytest.raises(ExpiredRecord):
        validator.validate(KEY, data, NOW + 1000)
    store.add_revocation(parse_revocation(issue_revocation(ORG, [9], sequence=1, issued_at=NOW)))
    with pytest.raises(CertificateRevoked):
        validator.validate(KEY, data, NOW)


def test_descriptor_decoding_is_cached_per_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []

    def counting(data: bytes) -> object:
        calls.append(data)
        return open_descriptor(data)

    monkeypatch.setattr(validators_module, "open_descriptor", counting)
    validator = DescriptorValidator(trust(), cache_size=2)
    a, b, c = signed(1), signed(2), signed(3)
    for _ in range(3):
        validator.validate(KEY, a, NOW)
    assert calls == [a]
    validator.validate(KEY, b, NOW)
    validator.validate(KEY, c, NOW)  # evicts a
    validator.validate(KEY, a, NOW)
    assert calls == [a, b, c, a]
    assert validator.select(KEY, [c, a]) == 0
    assert len(calls) == 4


def test_the_decode_cache_keeps_at_most_its_size_however_many_versions_pass() -> None:
    # A network publishing one new version every 2 s must reach a steady state soon
    # (the soak's live memory grew for 17 minutes with 512 entries per node).
    validator = DescriptorValidator(trust())
    for sequence in range(1, 2 * DECODE_CACHE_SIZE + 2):
        validator.validate(KEY, signed(sequence), NOW)
    assert len(validator._cache._items) == DECODE_CACHE_SIZE <= 128


def test_invalid_values_are_not_cached_as_valid() -> None:
    validator = DescriptorValidator(trust())
    data = signed()
    bad = data.replace(b"\xa1t", b"\xa1u")
    assert bad != data
    for _ in range(2):
        with pytest.raises(SignatureError):
            validator.validate(KEY, bad, NOW)


def test_select_highest_sequence_and_stable_ties() -> None:
    validator = default_validator(trust())
    old, new = signed(1), signed(2)
    tie_a, tie_b = signed(2, title="a"), signed(2, title="b")
    assert validator.select(KEY, [old, new]) == 1
    assert validator.select(KEY, [new, old]) == 0
    assert validator.select(KEY, [tie_a, tie_b]) == 0
    assert validator.select(KEY, [tie_b, tie_a]) == 0
    assert validator.select(KEY, [old, tie_b, tie_a, old]) == 1
    assert validator.select(KEY, [new]) == 0
    # Same input, same answer.
    values = [signed(s, title=str(s % 3)) for s in (5, 9, 2, 9, 1)]
    assert {validator.select(KEY, values) for _ in range(5)} == {1}


def test_select_stale_sequence_loses() -> None:
    validator = default_validator(trust())
    held = signed(10)
    assert validator.select(KEY, [held, signed(9)]) == 0
    assert validator.select(KEY, [signed(9), held]) == 1


def test_select_ranks_garbage_lowest() -> None:
    validator = default_validator(trust())
    assert validator.select(KEY, [b"junk", signed(0)]) == 1
    assert validator.select(KEY, [b"junk", b"more junk"]) == 0
    with pytest.raises(DecodeError):
        validator.select(KEY, [])


def test_org_record_validator() -> None:
    validator = default_validator(trust())
    key = org_record_key(ORG.org_id)
    gw = (Gateway(NODE.peer_id, ("/ip4/127.0.0.1/tcp/1",)),)
    v1 = issue_org_record(ORG, name="o", gateways=gw, sequence=1, expires=NOW + 50)
    v2 = issue_org_record(ORG, name="o2", gateways=(), sequence=2, expires=NOW + 50)
    validator.validate(key, v1, NOW)
    with pytest.raises(ExpiredRecord):
        validator.validate(key, v1, NOW + 50)
    with pytest.raises(ScopeError):
        validator.validate(org_record_key(OTHER.org_id), v1, NOW)
    with pytest.raises(DecodeError):
        validator.validate(b"/dn-org/did:key:zzz", v1, NOW)
    assert validator.select(key, [v1, v2]) == 1
    assert validator.select(key, [v2, v1]) == 0
    with pytest.raises(DatanetError):
        OrgRecordValidator().validate(key, signed(), NOW)


def test_revocation_validator() -> None:
    validator = default_validator(trust())
    key = revocation_key(ORG.org_id)
    r1 = issue_revocation(ORG, [1], sequence=1, issued_at=NOW)
    r2 = issue_revocation(ORG, [1, 2], sequence=2, issued_at=NOW)
    validator.validate(key, r1, NOW)
    with pytest.raises(ScopeError):
        validator.validate(revocation_key(OTHER.org_id), r1, NOW)
    future = issue_revocation(ORG, [1], sequence=3, issued_at=NOW + 3600)
    with pytest.raises(VerificationError, match="future"):
        validator.validate(key, future, NOW)
    assert validator.select(key, [r1, r2]) == 1
    assert validator.select(key, [r2, r1, r2]) == 0
    with pytest.raises(DatanetError):
        RevocationValidator().validate(key, signed(), NOW)


def test_unknown_namespace_is_refused() -> None:
    validator = default_validator(trust())
    with pytest.raises(DecodeError, match="no validator"):
        validator.validate(b"/ipns/x", signed(), NOW)


def test_descriptor_of_another_org_under_its_key_is_refused() -> None:
    """A node of ORG signs a descriptor for OTHER's namespace: scope error, never stored."""
    foreign = DatasetId(OTHER.org_id, "a/b")
    desc = dataclasses.replace(open_descriptor(signed())[0], dataset_id=foreign)
    data = seal(NODE, "dn/descriptor/v1", desc.encode_body(), [CERT]).encode()
    store = TrustStore({ORG.org_id, OTHER.org_id})
    with pytest.raises(ScopeError):
        default_validator(store).validate(foreign.dht_key(), data, NOW)


# -- /dn/ tombstones (deprecations) ---------------------------------------------------


def tombstone(sequence: int = 2, *, lifetime: int = 1000, dataset_id: DatasetId = DID) -> bytes:
    dep = deprecation(dataset_id, node=NODE, sequence=sequence, lifetime=lifetime)
    return signed_deprecation(dep, key=NODE, chain=[CERT])


def test_tombstone_valid_under_its_dataset_key() -> None:
    validator = default_validator(trust())
    validator.validate(KEY, tombstone(), NOW)
    with pytest.raises(ScopeError, match=r"deprecation .* wrong key"):
        validator.validate(DatasetId(ORG.org_id, "a/c").dht_key(), tombstone(), NOW)
    with pytest.raises(DecodeError):
        validator.validate(org_record_key(ORG.org_id), tombstone(), NOW)


def test_tombstone_checks_time_and_trust_on_every_call() -> None:
    store = trust()
    validator = DescriptorValidator(store)
    data = tombstone(lifetime=500)
    validator.validate(KEY, data, NOW)
    with pytest.raises(ExpiredRecord):
        validator.validate(KEY, data, NOW + 500)
    store.add_revocation(parse_revocation(issue_revocation(ORG, [9], sequence=1, issued_at=NOW)))
    with pytest.raises(CertificateRevoked):
        validator.validate(KEY, data, NOW)
    with pytest.raises(UntrustedOrganization):
        DescriptorValidator(TrustStore({OTHER.org_id})).validate(KEY, tombstone(), NOW)


def test_forged_or_foreign_tombstone_is_refused() -> None:
    validator = default_validator(TrustStore({ORG.org_id, OTHER.org_id}))
    good = tombstone()
    forged = good.replace(b"a/b", b"a/c")
    with pytest.raises(SignatureError):
        validator.validate(DatasetId(ORG.org_id, "a/c").dht_key(), forged, NOW)
    foreign = DatasetId(OTHER.org_id, "a/b")
    dep = deprecation(foreign, node=NODE)
    data = signed_deprecation(dep, key=NODE, chain=[CERT], check=False)
    with pytest.raises(ScopeError):
        validator.validate(foreign.dht_key(), data, NOW)


def test_other_ledger_kinds_are_refused_under_dn() -> None:
    validator = default_validator(trust())
    for value in (
        issue_revocation(ORG, [1], sequence=1, issued_at=NOW),
        issue_org_record(ORG, name="o", gateways=(), sequence=1, expires=NOW + 50),
    ):
        with pytest.raises(DecodeError, match="descriptor or a deprecation"):
            validator.validate(KEY, value, NOW)


def test_select_tombstone_beats_lower_descriptors_and_loses_to_higher() -> None:
    validator = default_validator(trust())
    tomb = tombstone(5)
    older = [signed(1), signed(4, title="x"), signed(3)]
    assert validator.select(KEY, [*older, tomb]) == 3
    assert validator.select(KEY, [tomb, *older]) == 0
    newer = signed(6, title="back")
    assert validator.select(KEY, [tomb, newer]) == 1
    assert validator.select(KEY, [newer, tomb, *older]) == 0
    # an older tombstone loses to a newer one, and to garbage nothing
    assert validator.select(KEY, [tombstone(2), b"junk", tomb]) == 2


def test_select_tombstone_wins_a_tie_whatever_the_order() -> None:
    validator = default_validator(trust())
    tomb, desc = tombstone(5), signed(5)
    assert validator.select(KEY, [desc, tomb]) == 1
    assert validator.select(KEY, [tomb, desc]) == 0
    # two tombstones of one sequence: the first (stable)
    other = signed_deprecation(
        deprecation(DID, node=NODE, sequence=5, reason="other"), key=NODE, chain=[CERT]
    )
    assert validator.select(KEY, [other, tomb, desc]) == 0
    assert validator.select(KEY, [tomb, other]) == 0


def test_tombstone_decoding_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []

    def counting(data: bytes) -> object:
        calls.append(data)
        return open_deprecation(data)

    monkeypatch.setattr(validators_module, "open_deprecation", counting)
    validator = DescriptorValidator(trust())
    data = tombstone()
    for _ in range(3):
        validator.validate(KEY, data, NOW)
    assert validator.select(KEY, [data, signed(1)]) == 0
    assert calls == [data]


# -- the trust rule for org records and revocation lists -------------------------------


def test_closed_store_refuses_untrusted_orgs_records() -> None:
    closed = default_validator(TrustStore({OTHER.org_id}))
    open_ = default_validator(TrustStore({OTHER.org_id}, accept_any=True))
    org_rec = issue_org_record(ORG, name="o", gateways=(), sequence=1, expires=NOW + 50)
    rev = issue_revocation(ORG, [1], sequence=1, issued_at=NOW)
    for key_, value in ((org_record_key(ORG.org_id), org_rec), (revocation_key(ORG.org_id), rev)):
        with pytest.raises(UntrustedOrganization):
            closed.validate(key_, value, NOW)
        open_.validate(key_, value, NOW)
    # without a trust store (the validators' own default) the rule does not apply
    OrgRecordValidator().validate(org_record_key(ORG.org_id), org_rec, NOW)
    RevocationValidator().validate(revocation_key(ORG.org_id), rev, NOW)
