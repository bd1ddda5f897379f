"""Signed deprecations (tombstones): sign/verify, every refusal, limits, the builders."""

from __future__ import annotations

import dataclasses

import pytest

from datanet.errors import (
    CertificateError,
    CertificateExpired,
    CertificateRevoked,
    DecodeError,
    ExpiredRecord,
    InvalidInput,
    RecordTooLarge,
    RoleNotGranted,
    ScopeError,
    SignatureError,
    UntrustedOrganization,
    VerificationError,
)
from datanet.records.deprecation import (
    DEFAULT_DEPRECATION_LIFETIME,
    DEPRECATION_TAG,
    MAX_DEPRECATION_SIZE,
    Deprecation,
    decode_deprecation_unverified,
    deprecation_for,
    sign_deprecation,
    verify_deprecation,
)
from datanet.records.descriptor import DESCRIPTOR_TAG, MAX_LIFETIME, verify_descriptor
from datanet.records.ids import DatasetId
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
from identity.certs import Role, TrustStore, issue_revocation, parse_revocation
from identity.encoding import pack, unpack
from identity.envelope import seal
from identity.keys import KeyPair


def trust(*orgs: KeyPair, accept_any: bool = False) -> TrustStore:
    return TrustStore({o.org_id for o in (orgs or (ORG_A,))}, accept_any=accept_any)


def test_sign_verify_round_trip() -> None:
    dep = deprecation(reason="superseded by weather/stations-v2")
    data = signed_deprecation(dep)
    verified = verify_deprecation(data, trust(), NOW)
    assert verified.deprecation == dep
    assert verified.raw == data
    assert verified.certificate.node == NODE_A.peer_id
    assert verified.certificate.org == ORG_A.org_id
    assert verified.deprecation.org == ORG_A.org_id
    assert verified.valid_until == min(dep.expires, verified.certificate.not_after)
    assert decode_deprecation_unverified(data) == dep
    assert Deprecation.decode_body(dep.encode_body()) == dep
    assert len(data) < MAX_DEPRECATION_SIZE


def test_builder_defaults_withdraw_the_default_descriptor() -> None:
    dep = deprecation()
    desc = descriptor()
    assert dep.dataset_id == desc.dataset_id
    assert dep.sequence > desc.sequence
    assert dep.withdrawn_at == NOW
    assert dep.expires == NOW + DEFAULT_DEPRECATION_LIFETIME
    assert DEFAULT_DEPRECATION_LIFETIME < MAX_LIFETIME  # verifiers accept it, with room for skew
    verify_deprecation(signed_deprecation(dep), trust(), NOW)


def test_any_publisher_node_of_the_org_may_withdraw() -> None:
    """The tombstone need not come from the node that published the descriptor."""
    dep = deprecation(node=NODE_B)
    data = signed_deprecation(dep, key=NODE_B)
    assert verify_deprecation(data, trust(), NOW).certificate.node == NODE_B.peer_id


def test_deprecation_for_a_descriptor() -> None:
    desc = descriptor(sequence=41, lifetime=30 * DAY)
    dep = deprecation_for(desc, node=NODE_B.peer_id, now=NOW + 5, reason="gone")
    assert dep.dataset_id == desc.dataset_id
    assert dep.sequence == 42
    assert dep.withdrawn_at == NOW + 5
    assert dep.expires == NOW + 5 + DEFAULT_DEPRECATION_LIFETIME
    assert dep.node == NODE_B.peer_id
    assert dep.reason == "gone"
    # a descriptor that outlives the default span: the tombstone lasts as long
    long_lived = descriptor(sequence=1, lifetime=DEFAULT_DEPRECATION_LIFETIME + DAY)
    assert deprecation_for(long_lived, node=NODE_A.peer_id, now=NOW).expires == long_lived.expires
    # never beyond what verifiers accept
    short = deprecation_for(desc, node=NODE_A.peer_id, now=NOW, lifetime=10 * MAX_LIFETIME)
    assert short.expires == NOW + MAX_LIFETIME
    verify_deprecation(signed_deprecation(short), trust(), NOW)
    with pytest.raises(InvalidInput):
        deprecation_for(descriptor(sequence=2**63 - 1), node=NODE_A.peer_id, now=NOW)


def test_to_json() -> None:
    dep = deprecation(reason="r")
    assert dep.to_json() == {
        "dataset_id": str(dep.dataset_id),
        "org": str(ORG_A.org_id),
        "node": str(NODE_A.peer_id),
        "sequence": 2,
        "withdrawn_at": NOW,
        "expires": NOW + DEFAULT_DEPRECATION_LIFETIME,
        "reason": "r",
    }


# -- field limits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"reason": "x" * 257}, RecordTooLarge),
        ({"reason": "two\nlines"}, InvalidInput),
        ({"reason": "bell\x07"}, InvalidInput),
        ({"expires": NOW}, InvalidInput),
        ({"expires": NOW - 1}, InvalidInput),
        ({"sequence": -1}, InvalidInput),
        ({"sequence": 2**63}, InvalidInput),
        ({"sequence": True}, InvalidInput),
        ({"withdrawn_at": -5}, InvalidInput),
        ({"node": ORG_A.org_id}, InvalidInput),
        ({"dataset_id": "dn://x/y"}, InvalidInput),
    ],
)
def test_field_limits(changes: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        dataclasses.replace(deprecation(), **changes)  # type: ignore[arg-type]


def test_reason_of_256_characters_is_accepted() -> None:
    dep = deprecation(reason="é" * 256)
    assert (
        verify_deprecation(signed_deprecation(dep), trust(), NOW).deprecation.reason == dep.reason
    )


# -- every refusal -------------------------------------------------------------------------


def test_forged_signature_is_refused() -> None:
    data = signed_deprecation(deprecation(reason="aaaa"))
    forged = data.replace(b"aaaa", b"aaab")
    assert forged != data
    with pytest.raises(SignatureError):
        verify_deprecation(forged, trust(), NOW)


def test_signed_by_another_key_than_node_is_refused() -> None:
    dep = deprecation(node=NODE_A)
    data = signed_deprecation(dep, key=NODE_B, chain=[certificate(ORG_A, NODE_B)], check=False)
    with pytest.raises(ScopeError, match="signed by"):
        verify_deprecation(data, trust(), NOW)
    with pytest.raises(ScopeError):
        decode_deprecation_unverified(data)
    with pytest.raises(ScopeError):
        sign_deprecation(dep, NODE_B, [certificate(ORG_A, NODE_B)])


def test_certificate_of_another_node_is_refused() -> None:
    dep = deprecation(node=NODE_A)
    data = signed_deprecation(dep, chain=[certificate(ORG_A, NODE_B)], check=False)
    with pytest.raises(ScopeError, match="for node"):
        verify_deprecation(data, trust(), NOW)
    with pytest.raises(ScopeError):
        sign_deprecation(dep, NODE_A, [certificate(ORG_A, NODE_B)])


def test_wrong_org_scope_is_refused() -> None:
    """A publisher of org B cannot withdraw org A's dataset, even if both are trusted."""
    dep = deprecation(org=ORG_A)
    chain = [certificate(ORG_B, NODE_A)]
    data = signed_deprecation(dep, chain=chain, check=False)
    with pytest.raises(ScopeError, match="issued by"):
        verify_deprecation(data, trust(ORG_A, ORG_B), NOW)
    with pytest.raises(ScopeError):
        verify_deprecation(data, trust(accept_any=True), NOW)
    with pytest.raises(ScopeError):
        sign_deprecation(dep, NODE_A, chain)


def test_node_without_the_publisher_role_is_refused() -> None:
    dep = deprecation()
    chain = [certificate(ORG_A, NODE_A, roles=(Role.REQUESTER, Role.GATEWAY))]
    with pytest.raises(RoleNotGranted):
        sign_deprecation(dep, NODE_A, chain)
    data = signed_deprecation(dep, chain=chain, check=False)
    with pytest.raises(RoleNotGranted):
        verify_deprecation(data, trust(), NOW)


def test_revoked_certificate_is_refused() -> None:
    data = signed_deprecation(deprecation())  # certificate serial 7
    store = trust()
    verify_deprecation(data, store, NOW)
    store.add_revocation(parse_revocation(issue_revocation(ORG_A, [7], sequence=1, issued_at=NOW)))
    with pytest.raises(CertificateRevoked):
        verify_deprecation(data, store, NOW)


def test_untrusted_org_is_refused_in_a_closed_store_only() -> None:
    data = signed_deprecation(deprecation())
    with pytest.raises(UntrustedOrganization):
        verify_deprecation(data, trust(ORG_B), NOW)
    verify_deprecation(data, trust(ORG_B, accept_any=True), NOW)


def test_expired_tombstone_is_refused() -> None:
    dep = deprecation(lifetime=100)
    data = signed_deprecation(dep)
    verify_deprecation(data, trust(), NOW + 99)
    with pytest.raises(ExpiredRecord):
        verify_deprecation(data, trust(), NOW + 100)


def test_tombstone_is_never_valid_past_its_certificate() -> None:
    chain = [certificate(ORG_A, NODE_A, not_after=NOW + 50)]
    data = signed_deprecation(deprecation(lifetime=1000), chain=chain)
    assert verify_deprecation(data, trust(), NOW).valid_until == NOW + 50
    with pytest.raises(CertificateExpired):
        verify_deprecation(data, trust(), NOW + 50)


def test_clock_sanity() -> None:
    future = signed_deprecation(deprecation(now=NOW + 301))
    with pytest.raises(VerificationError, match="future"):
        verify_deprecation(future, trust(), NOW)
    verify_deprecation(signed_deprecation(deprecation(now=NOW + 300)), trust(), NOW)
    far = signed_deprecation(deprecation(lifetime=MAX_LIFETIME + 1))
    with pytest.raises(VerificationError, match="days ahead"):
        verify_deprecation(far, trust(), NOW)


def test_oversized_is_refused() -> None:
    big = pack([1, DEPRECATION_TAG, b"x" * MAX_DEPRECATION_SIZE, NODE_A.public_key, b"s" * 64, []])
    with pytest.raises(RecordTooLarge):
        verify_deprecation(big, trust(), NOW)
    with pytest.raises(RecordTooLarge):
        decode_deprecation_unverified(big)


def test_wrong_tag_is_refused_both_ways() -> None:
    """A tombstone never verifies as a descriptor, nor a descriptor as a tombstone."""
    tomb = signed_deprecation(deprecation())
    desc = signed(descriptor())
    with pytest.raises(DecodeError, match="expected a dn/deprecation/v1"):
        verify_deprecation(desc, trust(), NOW)
    with pytest.raises(DecodeError, match="expected a dn/descriptor/v1"):
        verify_descriptor(tomb, trust(), NOW)
    # the same body and signature under the other tag: the signature covers the tag
    env = unpack(tomb, max_size=MAX_DEPRECATION_SIZE)
    env[1] = DESCRIPTOR_TAG
    with pytest.raises(SignatureError):
        verify_descriptor(pack(env), trust(), NOW)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        b"garbage",
        pack([1, DEPRECATION_TAG]),
        pack({"v": 1}),
        pack([1, DEPRECATION_TAG, b"body", b"k" * 32, b"s" * 64, []]),
        pack([True, DEPRECATION_TAG, b"", b"k" * 32, b"s" * 64, []]),
    ],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises((DecodeError, SignatureError)):
        verify_deprecation(data, trust(), NOW)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("v", 2),
        ("v", True),
        ("org", b"short"),
        ("name", "Upper/Case"),
        ("node", 5),
        ("seq", -1),
        ("seq", "1"),
        ("at", None),
        ("exp", 0),
        ("reason", "x" * 257),
        ("reason", b"bytes"),
    ],
)
def test_bad_body_fields_are_decode_errors(field: str, value: object) -> None:
    body = unpack(deprecation().encode_body(), max_size=MAX_DEPRECATION_SIZE)
    body[field] = value
    data = seal(NODE_A, DEPRECATION_TAG, pack(body), [certificate()]).encode()
    with pytest.raises(DecodeError):
        verify_deprecation(data, trust(), NOW)


def test_missing_body_field_is_a_decode_error() -> None:
    body = unpack(deprecation().encode_body(), max_size=MAX_DEPRECATION_SIZE)
    del body["exp"]
    data = seal(NODE_A, DEPRECATION_TAG, pack(body), [certificate()]).encode()
    with pytest.raises(DecodeError, match="exp"):
        verify_deprecation(data, trust(), NOW)


def test_unknown_body_keys_are_ignored() -> None:
    body = unpack(deprecation().encode_body(), max_size=MAX_DEPRECATION_SIZE)
    body["later"] = "field"
    data = seal(NODE_A, DEPRECATION_TAG, pack(body), [certificate()]).encode()
    assert verify_deprecation(data, trust(), NOW).deprecation == deprecation()


def test_chain_must_be_one_certificate() -> None:
    dep = deprecation()
    with pytest.raises(CertificateError, match="chain of one"):
        sign_deprecation(dep, NODE_A, [])
    data = signed_deprecation(dep, chain=[], check=False)
    with pytest.raises(CertificateError, match="chain of one"):
        verify_deprecation(data, trust(), NOW)


def test_dataset_id_is_carried_exactly() -> None:
    did = DatasetId(ORG_A.org_id, "a/b.c_d-e")
    dep = deprecation(did)
    assert verify_deprecation(signed_deprecation(dep), trust(), NOW).deprecation.dataset_id == did
