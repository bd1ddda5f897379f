"""Signed descriptors: sign/verify, scope, expiry, certificates, limits, JSON form."""

from __future__ import annotations

import dataclasses
import json

import pytest

from datanet.errors import (
    CertificateError,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    DatanetError,
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
from datanet.records.descriptor import (
    DESCRIPTOR_TAG,
    MAX_DESCRIPTOR_SIZE,
    MAX_LIFETIME,
    AccessPolicy,
    Descriptor,
    Distribution,
    decode_descriptor_unverified,
    sign_descriptor,
    verify_descriptor,
)
from datanet.records.ids import DatasetId
from datanet.testing.clock import DAY, NOW
from datanet.testing.records import NODE_A, NODE_B, ORG_A, ORG_B, certificate, full_descriptor
from identity.certs import (
    Revocation,
    Role,
    TrustStore,
    issue_revocation,
    parse_revocation,
)
from identity.encoding import pack, unpack
from identity.envelope import seal
from identity.keys import KeyPair


def trust(*orgs: KeyPair) -> TrustStore:
    return TrustStore({o.org_id for o in (orgs or (ORG_A,))})


def test_sign_verify_round_trip() -> None:
    desc = full_descriptor()
    data = sign_descriptor(desc, NODE_A, [certificate()])
    verified = verify_descriptor(data, trust(), NOW)
    assert verified.descriptor == desc
    assert verified.raw == data
    assert verified.certificate.node == NODE_A.peer_id
    assert verified.certificate.org == ORG_A.org_id
    assert verified.descriptor.publisher_org == ORG_A.org_id
    assert verified.valid_until == desc.expires
    assert len(data) < MAX_DESCRIPTOR_SIZE


def test_minimal_descriptor_round_trip() -> None:
    desc = Descriptor(
        dataset_id=DatasetId(ORG_A.org_id, "x"),
        title="x",
        publisher_node=NODE_A.peer_id,
        issued=NOW,
        modified=NOW,
        sequence=0,
        expires=NOW + 1,
    )
    data = sign_descriptor(desc, NODE_A, [certificate()])
    assert verify_descriptor(data, trust(), NOW).descriptor == desc


def test_encoding_is_deterministic() -> None:
    assert full_descriptor().encode_body() == full_descriptor().encode_body()
    assert Descriptor.decode_body(full_descriptor().encode_body()) == full_descriptor()


def test_valid_until_is_capped_by_the_certificate() -> None:
    short = certificate(not_after=NOW + DAY)
    data = sign_descriptor(full_descriptor(), NODE_A, [short])
    assert verify_descriptor(data, trust(), NOW).valid_until == NOW + DAY
    with pytest.raises(CertificateExpired):
        verify_descriptor(data, trust(), NOW + DAY)


def test_any_org_mode_accepts_untrusted_but_valid_chains() -> None:
    data = sign_descriptor(full_descriptor(), NODE_A, [certificate()])
    with pytest.raises(UntrustedOrganization):
        verify_descriptor(data, TrustStore(), NOW)
    assert verify_descriptor(data, TrustStore(accept_any=True), NOW).descriptor == full_descriptor()


# -- scope -------------------------------------------------------------------


def test_certificate_of_another_org_is_refused_when_signing() -> None:
    with pytest.raises(ScopeError, match="belongs to"):
        sign_descriptor(full_descriptor(), NODE_A, [certificate(org=ORG_B)])


def test_certificate_of_another_org_is_refused_when_verifying() -> None:
    """A node of org B forges a descriptor for dn://A/… with its own valid certificate."""
    forged = seal(
        NODE_A, DESCRIPTOR_TAG, full_descriptor().encode_body(), [certificate(org=ORG_B)]
    ).encode()
    with pytest.raises(ScopeError, match="issued by"):
        verify_descriptor(forged, trust(ORG_A, ORG_B), NOW)


def test_signer_must_be_the_publisher_node() -> None:
    with pytest.raises(ScopeError):
        sign_descriptor(full_descriptor(), NODE_B, [certificate(node=NODE_B)])
    forged = seal(
        NODE_B, DESCRIPTOR_TAG, full_descriptor().encode_body(), [certificate(node=NODE_B)]
    ).encode()
    with pytest.raises(ScopeError, match="signed by"):
        verify_descriptor(forged, trust(), NOW)


def test_certificate_for_another_node_is_refused() -> None:
    with pytest.raises(ScopeError, match="certificate is for node"):
        sign_descriptor(full_descriptor(), NODE_A, [certificate(node=NODE_B)])
    forged = seal(
        NODE_A, DESCRIPTOR_TAG, full_descriptor().encode_body(), [certificate(node=NODE_B)]
    ).encode()
    with pytest.raises(ScopeError, match="certificate is for node"):
        verify_descriptor(forged, trust(), NOW)


def test_publisher_role_is_required() -> None:
    requester = certificate(roles=(Role.REQUESTER,))
    with pytest.raises(RoleNotGranted):
        sign_descriptor(full_descriptor(), NODE_A, [requester])
    forged = seal(NODE_A, DESCRIPTOR_TAG, full_descriptor().encode_body(), [requester]).encode()
    with pytest.raises(RoleNotGranted):
        verify_descriptor(forged, trust(), NOW)


def test_chain_must_hold_exactly_one_certificate() -> None:
    with pytest.raises(CertificateError):
        sign_descriptor(full_descriptor(), NODE_A, [])
    empty = seal(NODE_A, DESCRIPTOR_TAG, full_descriptor().encode_body(), []).encode()
    with pytest.raises(CertificateError):
        verify_descriptor(empty, trust(), NOW)


# -- time ----------------------------------------------------------------------


def test_expired_descriptor() -> None:
    data = sign_descriptor(full_descriptor(), NODE_A, [certificate()])
    verify_descriptor(data, trust(), NOW + 30 * DAY - 1)
    with pytest.raises(ExpiredRecord):
        verify_descriptor(data, trust(), NOW + 30 * DAY)


def test_certificate_not_yet_valid() -> None:
    data = sign_descriptor(full_descriptor(), NODE_A, [certificate(not_before=NOW + 10)])
    with pytest.raises(CertificateNotYetValid):
        verify_descriptor(data, trust(), NOW)


def test_certificate_expired() -> None:
    data = sign_descriptor(
        full_descriptor(), NODE_A, [certificate(not_before=NOW - 9, not_after=NOW)]
    )
    with pytest.raises(CertificateExpired):
        verify_descriptor(data, trust(), NOW)


def test_certificate_revoked() -> None:
    data = sign_descriptor(full_descriptor(), NODE_A, [certificate(serial=42)])
    store = trust()
    verify_descriptor(data, store, NOW)
    store.add_revocation(parse_revocation(issue_revocation(ORG_A, [42], sequence=1, issued_at=NOW)))
    with pytest.raises(CertificateRevoked):
        verify_descriptor(data, store, NOW)


def test_revocation_by_another_org_does_not_count() -> None:
    data = sign_descriptor(full_descriptor(), NODE_A, [certificate(serial=42)])
    store = trust()
    store.add_revocation(Revocation(ORG_B.org_id, frozenset({42}), 1, NOW))
    verify_descriptor(data, store, NOW)


def test_modified_in_the_future_is_refused() -> None:
    desc = full_descriptor(issued=NOW, modified=NOW + 3600)
    data = sign_descriptor(desc, NODE_A, [certificate()])
    with pytest.raises(VerificationError, match="future"):
        verify_descriptor(data, trust(), NOW)
    verify_descriptor(data, trust(), NOW + 3600)


def test_expiry_too_far_ahead_is_refused() -> None:
    data = sign_descriptor(full_descriptor(expires=NOW + MAX_LIFETIME + 1), NODE_A, [certificate()])
    with pytest.raises(VerificationError, match="days ahead"):
        verify_descriptor(data, trust(), NOW)


# -- bytes ---------------------------------------------------------------------


def test_tampered_body_fails_the_signature() -> None:
    data = sign_descriptor(full_descriptor(), NODE_A, [certificate()])
    tampered = data.replace(b"Weather stations", b"Weather stationz")
    assert tampered != data
    with pytest.raises(SignatureError):
        verify_descriptor(tampered, trust(), NOW)


def test_oversized_input_is_refused_before_decoding() -> None:
    with pytest.raises(RecordTooLarge):
        verify_descriptor(b"\x00" * (MAX_DESCRIPTOR_SIZE + 1), trust(), NOW)


def test_oversized_descriptor_cannot_be_signed() -> None:
    huge = full_descriptor(description="\U0001f600" * 4096)  # 16 KiB of UTF-8 in the description
    with pytest.raises(RecordTooLarge, match="16384"):
        sign_descriptor(huge, NODE_A, [certificate()])


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x90", pack([1, "dn/descriptor/v1"]), pack({"a": 1}), b"\xff" * 100],
)
def test_malformed_input_gives_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        verify_descriptor(data, trust(), NOW)


def test_other_record_types_are_refused() -> None:
    with pytest.raises(DecodeError, match="expected a dn/descriptor/v1"):
        verify_descriptor(certificate(), trust(), NOW)


def test_wrongly_typed_body_field_gives_a_decode_error() -> None:
    body = unpack(full_descriptor().encode_body(), max_size=MAX_DESCRIPTOR_SIZE)
    for name, bad in [("title", 5), ("kw", ["ok", 3]), ("seq", True), ("pol", ["x", [], [], 1])]:
        changed = dict(body, **{name: bad})
        data = seal(NODE_A, DESCRIPTOR_TAG, pack(changed), [certificate()]).encode()
        with pytest.raises(DecodeError):
            verify_descriptor(data, trust(), NOW)


def test_unknown_body_fields_are_ignored_for_forward_compatibility() -> None:
    body = unpack(full_descriptor().encode_body(), max_size=MAX_DESCRIPTOR_SIZE)
    body["future"] = [1, 2, 3]
    data = seal(NODE_A, DESCRIPTOR_TAG, pack(body), [certificate()]).encode()
    assert verify_descriptor(data, trust(), NOW).descriptor == full_descriptor()


def test_decode_unverified_shows_untrusted_and_expired_records() -> None:
    data = sign_descriptor(
        full_descriptor(), NODE_A, [certificate(not_before=NOW - 9, not_after=NOW)]
    )
    with pytest.raises(UntrustedOrganization):
        verify_descriptor(data, TrustStore(), NOW)
    with pytest.raises(CertificateExpired):
        verify_descriptor(data, trust(), NOW + DAY)
    assert decode_descriptor_unverified(data) == full_descriptor()
    with pytest.raises(SignatureError):
        decode_descriptor_unverified(data.replace(b"Weather", b"Xeather"))


# -- field limits ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "fragment"),
    [
        ({"title": ""}, InvalidInput, "title must not be empty"),
        ({"title": "   "}, InvalidInput, "title must not be empty"),
        ({"title": "x" * 257}, RecordTooLarge, "title is 257 characters"),
        ({"title": "bell\x07"}, InvalidInput, "title contains control characters"),
        ({"title": "esc\x1b[31m"}, InvalidInput, "control characters"),
        ({"title": "two\nlines"}, InvalidInput, "control characters"),
        ({"description": "x" * 4097}, RecordTooLarge, "description"),
        ({"keywords": tuple(f"k{i}" for i in range(33))}, RecordTooLarge, "keywords has 33"),
        ({"keywords": ("",)}, InvalidInput, "keywords[0] must not be empty"),
        ({"keywords": ["list"]}, InvalidInput, "keywords must be a tuple"),
        ({"themes": ("t" * 257,)}, RecordTooLarge, "themes[0]"),
        ({"license": "l" * 257}, RecordTooLarge, "license"),
        ({"version": "v" * 65}, RecordTooLarge, "version"),
        ({"schema": "s" * 513}, RecordTooLarge, "schema"),
        ({"spatial": ""}, InvalidInput, "spatial must not be empty"),
        ({"distributions": (Distribution("text/csv"),) * 17}, RecordTooLarge, "distributions"),
        ({"temporal": (5, 4)}, InvalidInput, "temporal end lies before"),
        ({"temporal": (1, 2, 3)}, InvalidInput, "temporal"),
        ({"issued": NOW, "modified": NOW - 1}, InvalidInput, "modified lies before issued"),
        ({"expires": NOW - DAY}, InvalidInput, "expires must lie after modified"),
        ({"sequence": -1}, InvalidInput, "sequence"),
        ({"sequence": 2**63}, InvalidInput, "sequence"),
        ({"sequence": True}, InvalidInput, "sequence must be an integer"),
        ({"publisher_node": "12D3KooW"}, InvalidInput, "publisher_node"),
    ],
)
def test_field_limits(changes: dict[str, object], error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as info:
        full_descriptor(**changes)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: Distribution(""), "media_type must not be empty"),
        (lambda: Distribution("text/csv", access=""), "access must not be empty"),
        (lambda: Distribution("text/csv", byte_size=-1), "byte_size"),
        (lambda: AccessPolicy("public"), "mode must be one of open, request, closed"),  # type: ignore[arg-type]
        (lambda: AccessPolicy(max_validity_days=0), "max_validity_days"),
        (lambda: AccessPolicy(max_validity_days=3651), "max_validity_days"),
        (lambda: AccessPolicy(purposes=("p" * 65,)), "purposes[0]"),
        (lambda: AccessPolicy(allowed_orgs=("did:key:x",)), "OrgId"),  # type: ignore[arg-type]
        (lambda: AccessPolicy(allowed_orgs=(ORG_A.org_id,) * 65), "allowed_orgs"),
    ],
)
def test_part_limits(build: object, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        build()  # type: ignore[operator]
    assert fragment in str(info.value)


def test_multiline_description_with_tabs_is_fine() -> None:
    assert full_descriptor(description="a\n\tb\n").description == "a\n\tb\n"


# -- JSON --------------------------------------------------------------------------


def test_json_round_trip() -> None:
    desc = full_descriptor()
    obj = json.loads(json.dumps(desc.to_json()))
    assert obj["dataset_id"] == str(desc.dataset_id)
    assert obj["publisher_org"] == str(ORG_A.org_id)
    assert obj["access_policy"]["allowed_orgs"] == [str(ORG_B.org_id)]
    assert Descriptor.from_json(obj) == desc
    minimal = dataclasses.replace(
        desc, temporal=None, spatial=None, distributions=(), keywords=(), themes=()
    )
    assert Descriptor.from_json(json.loads(json.dumps(minimal.to_json()))) == minimal


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"titel": "x"}, "unknown descriptor field(s): titel"),
        ({"title": None}, "title must be text"),
        ({"dataset_id": "dn://acme/x"}, "not an organization id"),
        ({"publisher_node": "nope"}, "not a peer id"),
        ({"keywords": "weather"}, "keywords must be a list"),
        ({"distributions": [{"title": "x"}]}, "distributions[0] needs a media_type"),
        ({"distributions": ["text/csv"]}, "distributions[0] must be an object"),
        ({"temporal": {"start": 1}}, "temporal must be {start, end}"),
        ({"access_policy": {"mode": "maybe"}}, "mode must be one of"),
        ({"access_policy": {"allowed_orgs": ["x"]}}, "not an organization id"),
        ({"issued": "2024-01-01"}, "issued must be an integer"),
    ],
)
def test_json_errors_name_the_field(change: dict[str, object], fragment: str) -> None:
    obj = full_descriptor().to_json()
    obj.update(change)
    with pytest.raises(InvalidInput) as info:
        Descriptor.from_json(obj)
    assert fragment in str(info.value)


def test_json_missing_field_and_non_object() -> None:
    obj = full_descriptor().to_json()
    del obj["sequence"]
    with pytest.raises(InvalidInput, match="'sequence'"):
        Descriptor.from_json(obj)
    with pytest.raises(InvalidInput, match="JSON object"):
        Descriptor.from_json([1, 2])


def test_every_error_is_a_datanet_error() -> None:
    assert issubclass(InvalidInput, DatanetError)
    assert issubclass(VerificationError, DatanetError)
