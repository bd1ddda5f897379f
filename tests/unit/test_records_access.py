"""Access requests, traces, grants, denials, grant revocations: round trips and every refusal."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import pytest

from datanet.errors import (
    CertificateRevoked,
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
    SignatureError,
    UntrustedOrganization,
    VerificationError,
)
from datanet.records.access import (
    ACCESS_REQUEST_TAG,
    ACCESS_TRACE_TAG,
    GRANT_TAG,
    MAX_HOPS,
    MAX_REQUEST_LIFETIME,
    MAX_REQUEST_SIZE,
    AccessRequest,
    Denial,
    Grant,
    GrantRevocation,
    TraceEntry,
    decode_grant_unverified,
    grant_revocation_for,
    grant_revocation_key,
    request_id,
    sign_denial,
    sign_grant,
    sign_grant_revocation,
    sign_request,
    sign_trace_entry,
    verify_denial,
    verify_grant,
    verify_grant_revocation,
    verify_request,
    verify_trace,
)
from datanet.records.ids import DatasetId
from datanet.records.ledger import RecordKind, record_kind, verify_ledger_record
from datanet.records.sealed import new_reply_key, open_sealed, seal_to
from datanet.records.validators import GrantRevocationValidator, default_validator
from datanet.testing.clock import DAY, HOUR, NOW
from datanet.testing.records import ORG_A, ORG_B, certificate, key
from identity.certs import Role, TrustStore, issue_revocation, parse_revocation
from identity.encoding import pack, unpack
from identity.envelope import SignedEnvelope, seal
from identity.keys import KeyPair, PeerId

OWNER = key("P")  # publisher node of ORG_A (the dataset's owner)
OWNER_GW = key("G")  # gateway of ORG_A
REQUESTER = key("R")  # requester node of ORG_B
REQ_GW = key("H")  # gateway of ORG_B
OUTSIDER = key("X")  # another gateway of ORG_B
DATASET = DatasetId(ORG_A.org_id, "weather/stations")
REPLY_PRIV, REPLY_PUB = new_reply_key()


def chain(node: KeyPair, org: KeyPair, *roles: Role, serial: int = 7) -> list[bytes]:
    return [certificate(org, node, roles, serial=serial)]


OWNER_CHAIN = chain(OWNER, ORG_A, Role.PUBLISHER)
OWNER_GW_CHAIN = chain(OWNER_GW, ORG_A, Role.GATEWAY, serial=8)
REQUESTER_CHAIN = chain(REQUESTER, ORG_B, Role.REQUESTER)
REQ_GW_CHAIN = chain(REQ_GW, ORG_B, Role.GATEWAY, serial=9)
OUTSIDER_CHAIN = chain(OUTSIDER, ORG_B, Role.GATEWAY, serial=10)
CHAINS = {
    OWNER.peer_id: OWNER_CHAIN,
    OWNER_GW.peer_id: OWNER_GW_CHAIN,
    REQ_GW.peer_id: REQ_GW_CHAIN,
    OUTSIDER.peer_id: OUTSIDER_CHAIN,
}
KEYS = {k.peer_id: k for k in (OWNER, OWNER_GW, REQ_GW, OUTSIDER)}


def trust() -> TrustStore:
    return TrustStore({ORG_A.org_id, ORG_B.org_id})


def access_request(**changes: object) -> AccessRequest:
    values: dict[str, object] = {
        "dataset_id": DATASET,
        "sequence": 5,
        "purpose": "academic-research",
        "validity_days": 30,
        "node": REQUESTER.peer_id,
        "org": ORG_B.org_id,
        "nonce": b"\x01" * 16,
        "created": NOW,
        "deadline": NOW + DAY,
        "reply_key": REPLY_PUB,
        "note": "for a thesis\non rainfall",
    }
    values.update(changes)
    return AccessRequest(**values)  # type: ignore[arg-type]


def signed_request(**changes: object) -> bytes:
    return sign_request(access_request(**changes), REQUESTER, REQUESTER_CHAIN)


def route(
    raw_request: bytes,
    hops: Sequence[tuple[KeyPair, KeyPair]] = ((REQ_GW, ORG_B), (OWNER_GW, ORG_A), (OWNER, ORG_A)),
    *,
    at: int = NOW + 10,
) -> list[bytes]:
    """Trace entries for ``raw_request`` along ``hops`` (the last one decides)."""
    entries: list[bytes] = []
    prev = request_id(raw_request)
    for index, (node, org) in enumerate(hops):
        last = index == len(hops) - 1
        entry = TraceEntry(
            request_id=request_id(raw_request),
            hop=index,
            node=node.peer_id,
            org=org.org_id,
            prev=prev,
            at=at + index,
            action="decide" if last else "forward",
            next=None if last else hops[index + 1][0].peer_id,
        )
        raw = sign_trace_entry(entry, node, CHAINS[node.peer_id])
        entries.append(raw)
        prev = hashlib.sha256(raw).digest()
    return entries


def grant_for(raw_request: bytes, trace: Sequence[bytes], **changes: object) -> Grant:
    req = AccessRequest.decode_body(unpack(raw_request, max_size=1 << 16)[2])  # even if forged
    values: dict[str, object] = {
        "grant_id": b"\x07" * 16,
        "request": raw_request,
        "trace": tuple(trace),
        "dataset_id": req.dataset_id,
        "sequence": req.sequence,
        "grantee_node": req.node,
        "grantee_org": req.org,
        "purpose": req.purpose,
        "not_before": NOW + 20,
        "not_after": NOW + 20 + req.validity_days * DAY,
        "issuer": OWNER.peer_id,
        "issued_at": NOW + 20,
        "sealed_details": seal_to(REPLY_PUB, b"https://data.example/x?token=s3cr3t", b"ctx"),
    }
    values.update(changes)
    return Grant(**values)  # type: ignore[arg-type]


def signed_grant(**changes: object) -> bytes:
    raw = signed_request()
    return sign_grant(grant_for(raw, route(raw), **changes), OWNER, OWNER_CHAIN)


def forge(key: KeyPair, tag: str, body: bytes, chain_: Sequence[bytes]) -> bytes:
    """An envelope sealed with no consistency check, as a forger would."""
    return seal(key, tag, body, chain_).encode()


def resign_body(raw: bytes, body: bytes) -> bytes:
    """``raw`` with its body replaced and the old signature kept."""
    obj = unpack(raw, max_size=1 << 20)
    env = SignedEnvelope(obj[1], body, obj[3], obj[4], tuple(obj[5]))
    return env.encode()


# --- requests -----------------------------------------------------------------------


def test_request_round_trip_and_id() -> None:
    raw = signed_request()
    verified = verify_request(raw, trust(), NOW + 60)
    assert verified.request == access_request()
    assert verified.id == hashlib.sha256(raw).digest() == request_id(raw)
    assert verified.certificate is not None
    assert verified.certificate.node == REQUESTER.peer_id
    assert verified.request.to_json()["reply_key"] == REPLY_PUB.hex()


def test_request_fields_are_checked() -> None:
    with pytest.raises(InvalidInput, match="unknown purpose"):
        access_request(purpose="world-domination")
    with pytest.raises(InvalidInput, match="vocabulary id"):
        access_request(purpose="research")  # an alias: requests carry the canonical id
    with pytest.raises(InvalidInput, match="deadline"):
        access_request(deadline=NOW + MAX_REQUEST_LIFETIME + 1)
    with pytest.raises(InvalidInput, match="deadline"):
        access_request(deadline=NOW)
    with pytest.raises(InvalidInput, match="validity_days"):
        access_request(validity_days=0)
    with pytest.raises(InvalidInput, match="nonce"):
        access_request(nonce=b"short")
    with pytest.raises(InvalidInput, match="reply_key"):
        access_request(reply_key=b"x" * 31)
    with pytest.raises(RecordTooLarge, match="note"):
        access_request(note="x" * 513)
    with pytest.raises(InvalidInput, match="control"):
        access_request(note="\x1b[2J")


def test_request_signer_checks() -> None:
    req = access_request()
    with pytest.raises(ScopeError):
        sign_request(req, REQ_GW, REQUESTER_CHAIN)
    with pytest.raises(RoleNotGranted):
        sign_request(req, REQUESTER, chain(REQUESTER, ORG_B, Role.GATEWAY))
    with pytest.raises(ScopeError, match="issued by"):
        sign_request(req, REQUESTER, chain(REQUESTER, ORG_A, Role.REQUESTER))


def test_request_refusals() -> None:
    raw = signed_request()
    body = access_request().encode_body()
    # forged: signed by one node while naming another
    with pytest.raises(ScopeError):
        verify_request(forge(REQ_GW, ACCESS_REQUEST_TAG, body, REQ_GW_CHAIN), trust(), NOW)
    # tampered body: the signature no longer covers it
    tampered = resign_body(raw, access_request(validity_days=365).encode_body())
    with pytest.raises(SignatureError):
        verify_request(tampered, trust(), NOW)
    # no requester role / wrong org in the chain
    gw_role = forge(REQUESTER, ACCESS_REQUEST_TAG, body, chain(REQUESTER, ORG_B, Role.GATEWAY))
    with pytest.raises(RoleNotGranted):
        verify_request(gw_role, trust(), NOW)
    other_org = forge(REQUESTER, ACCESS_REQUEST_TAG, body, chain(REQUESTER, ORG_A, Role.REQUESTER))
    with pytest.raises(ScopeError):
        verify_request(other_org, trust(), NOW)
    with pytest.raises(UntrustedOrganization):
        verify_request(raw, TrustStore({ORG_A.org_id}), NOW)
    # expired, dated in the future
    with pytest.raises(RequestExpired, match="expired"):
        verify_request(raw, trust(), NOW + DAY)
    with pytest.raises(VerificationError, match="future"):
        verify_request(raw, trust(), NOW - HOUR)
    # with `at` the deadline is not checked, the certificate is checked at `at`
    assert (
        verify_request(raw, trust(), NOW + 10 * DAY, at=NOW + 60).request.node == REQUESTER.peer_id
    )
    # oversized, non-canonical, wrong tag
    with pytest.raises(RecordTooLarge):
        verify_request(raw + b"\x00" * MAX_REQUEST_SIZE, trust(), NOW)
    obj = unpack(raw, max_size=MAX_REQUEST_SIZE)
    with pytest.raises(DecodeError):
        verify_request(pack(obj) + b"\xc0", trust(), NOW)
    with pytest.raises(DecodeError, match="expected a"):
        verify_request(forge(REQUESTER, GRANT_TAG, body, REQUESTER_CHAIN), trust(), NOW)


def test_request_revoked_certificate() -> None:
    trust_ = trust()
    trust_.add_revocation(parse_revocation(issue_revocation(ORG_B, [7], sequence=1, issued_at=NOW)))
    with pytest.raises(CertificateRevoked):
        verify_request(signed_request(), trust_, NOW)


def test_request_unknown_keys_are_ignored_and_bad_version_refused() -> None:
    req = access_request()
    body = unpack(req.encode_body(), max_size=MAX_REQUEST_SIZE)
    body["later"] = "a field of a later version"
    extended = forge(REQUESTER, ACCESS_REQUEST_TAG, pack(body), REQUESTER_CHAIN)
    assert verify_request(extended, trust(), NOW).request == req
    body["v"] = 2
    with pytest.raises(DecodeError, match="version"):
        verify_request(
            forge(REQUESTER, ACCESS_REQUEST_TAG, pack(body), REQUESTER_CHAIN), trust(), NOW
        )


# --- traces -------------------------------------------------------------------------


def vreq(raw: bytes | None = None):  # type: ignore[no-untyped-def]
    return verify_request(raw or signed_request(), trust(), NOW + 60)


def test_trace_round_trip() -> None:
    raw = signed_request()
    entries = route(raw)
    verified = verify_trace(vreq(raw), entries, trust(), NOW + 60)
    assert [v.entry.node for v in verified] == [REQ_GW.peer_id, OWNER_GW.peer_id, OWNER.peer_id]
    assert verified[-1].entry.action == "decide"
    assert verify_trace(vreq(raw), [], trust(), NOW + 60) == ()


def entry_of(raw_request: bytes, hop: int = 0, **changes: object) -> TraceEntry:
    values: dict[str, object] = {
        "request_id": request_id(raw_request),
        "hop": hop,
        "node": REQ_GW.peer_id,
        "org": ORG_B.org_id,
        "prev": request_id(raw_request),
        "at": NOW + 10,
        "action": "forward",
        "next": OWNER_GW.peer_id,
    }
    values.update(changes)
    return TraceEntry(**values)  # type: ignore[arg-type]


def test_trace_entry_fields() -> None:
    raw = signed_request()
    with pytest.raises(InvalidInput, match="next"):
        entry_of(raw, action="decide")
    with pytest.raises(InvalidInput, match="next"):
        entry_of(raw, next=None)
    with pytest.raises(InvalidInput, match="itself"):
        entry_of(raw, next=REQ_GW.peer_id)
    with pytest.raises(InvalidInput, match="hop"):
        entry_of(raw, hop=MAX_HOPS)
    with pytest.raises(InvalidInput, match="action"):
        entry_of(raw, action="sideways")
    with pytest.raises(RoleNotGranted):
        sign_trace_entry(entry_of(raw), REQ_GW, chain(REQ_GW, ORG_B, Role.PUBLISHER))


def test_trace_broken_prev_link() -> None:
    raw = signed_request()
    entries = route(raw)
    bad = entry_of(raw, hop=1, node=OWNER_GW.peer_id, org=ORG_A.org_id, prev=b"\x00" * 32,
                   next=OWNER.peer_id)  # fmt: skip
    entries[1] = sign_trace_entry(bad, OWNER_GW, OWNER_GW_CHAIN)
    with pytest.raises(VerificationError, match=r"trace hop 1 \(node 12D3.*link"):
        verify_trace(vreq(raw), entries, trust(), NOW + 60)


def test_trace_hop_mismatch() -> None:
    raw = signed_request()
    bad = entry_of(raw, hop=1)
    with pytest.raises(VerificationError, match=r"trace hop 0.*says it is hop 1"):
        verify_trace(vreq(raw), [sign_trace_entry(bad, REQ_GW, REQ_GW_CHAIN)], trust(), NOW + 60)


def test_trace_other_request() -> None:
    raw = signed_request()
    other = signed_request(nonce=b"\x02" * 16)
    with pytest.raises(VerificationError, match="another request"):
        verify_trace(vreq(raw), route(other), trust(), NOW + 60)


def test_trace_loop() -> None:
    raw = signed_request()
    hops = ((REQ_GW, ORG_B), (OWNER_GW, ORG_A), (REQ_GW, ORG_B), (OWNER, ORG_A))
    with pytest.raises(LoopDetected, match="trace hop 2"):
        verify_trace(vreq(raw), route(raw, hops), trust(), NOW + 60)


def test_trace_hop_limit() -> None:
    raw = signed_request()
    entries = route(raw)
    with pytest.raises(HopLimitExceeded):
        verify_trace(vreq(raw), entries * 3, trust(), NOW + 60)


def test_trace_next_mismatch() -> None:
    raw = signed_request()
    hops = ((REQ_GW, ORG_B), (OWNER_GW, ORG_A), (OWNER, ORG_A))
    entries = route(raw, hops)
    # hop 1 says it forwarded to OWNER, but OUTSIDER signs hop 2 (linked correctly)
    third = TraceEntry(
        request_id=request_id(raw),
        hop=2,
        node=OUTSIDER.peer_id,
        org=ORG_B.org_id,
        prev=hashlib.sha256(entries[1]).digest(),
        at=NOW + 12,
        action="forward",
        next=OWNER.peer_id,
    )
    entries[2] = sign_trace_entry(third, OUTSIDER, OUTSIDER_CHAIN)
    with pytest.raises(VerificationError, match=r"trace hop 2.*passed the request to"):
        verify_trace(vreq(raw), entries, trust(), NOW + 60)


def test_trace_roles_and_signers() -> None:
    raw = signed_request()
    # a "decide" by a node outside the dataset's org
    hops = ((REQ_GW, ORG_B), (OUTSIDER, ORG_B))
    with pytest.raises(ScopeError, match=r"trace hop 1.*dataset's organization"):
        verify_trace(vreq(raw), route_unchecked(raw, hops), trust(), NOW + 60)
    # a forward by a node without the gateway role
    entry = entry_of(raw, node=REQUESTER.peer_id)
    forged = forge(REQUESTER, ACCESS_TRACE_TAG, entry.encode_body(), REQUESTER_CHAIN)
    with pytest.raises(RoleNotGranted, match="trace hop 0"):
        verify_trace(vreq(raw), [forged], trust(), NOW + 60)
    # an entry signed by someone other than its node
    forged = forge(OUTSIDER, ACCESS_TRACE_TAG, entry_of(raw).encode_body(), OUTSIDER_CHAIN)
    with pytest.raises(ScopeError, match="trace hop 0"):
        verify_trace(vreq(raw), [forged], trust(), NOW + 60)
    # a tampered entry
    good = route(raw)[0]
    tampered = resign_body(good, entry_of(raw, at=NOW + 11).encode_body())
    with pytest.raises(SignatureError, match="trace hop 0"):
        verify_trace(vreq(raw), [tampered], trust(), NOW + 60)


def route_unchecked(raw: bytes, hops: Sequence[tuple[KeyPair, KeyPair]]) -> list[bytes]:
    """Like :func:`route`, but sealed without the signer's role checks."""
    entries: list[bytes] = []
    prev = request_id(raw)
    for index, (node, org) in enumerate(hops):
        last = index == len(hops) - 1
        entry = entry_of(
            raw,
            index,
            node=node.peer_id,
            org=org.org_id,
            prev=prev,
            at=NOW + 10 + index,
            action="decide" if last else "forward",
            next=None if last else hops[index + 1][0].peer_id,
        )
        data = forge(node, ACCESS_TRACE_TAG, entry.encode_body(), CHAINS[node.peer_id])
        entries.append(data)
        prev = hashlib.sha256(data).digest()
    return entries


def test_trace_clock_checks() -> None:
    raw = signed_request()
    with pytest.raises(VerificationError, match="future"):
        verify_trace(vreq(raw), route(raw, at=NOW + HOUR), trust(), NOW + 60)
    hops = ((REQ_GW, ORG_B), (OWNER, ORG_A))
    first = sign_trace_entry(entry_of(raw, at=NOW + HOUR, next=OWNER.peer_id), REQ_GW, REQ_GW_CHAIN)
    second = TraceEntry(
        request_id=request_id(raw),
        hop=1,
        node=OWNER.peer_id,
        org=ORG_A.org_id,
        prev=hashlib.sha256(first).digest(),
        at=NOW,
        action="decide",
    )
    entries = [first, sign_trace_entry(second, OWNER, OWNER_CHAIN)]
    assert hops
    with pytest.raises(VerificationError, match="before the previous hop"):
        verify_trace(vreq(raw), entries, trust(), NOW + 2 * HOUR)


# --- grants -------------------------------------------------------------------------


@pytest.mark.parametrize("deep", [False, True])
def test_grant_round_trip(deep: bool) -> None:
    data = signed_grant()
    verified = verify_grant(data, trust(), NOW + HOUR, deep=deep)
    grant = verified.grant
    assert verified.deep is deep
    assert grant.grantee_node == REQUESTER.peer_id
    assert grant.grantee_org == ORG_B.org_id
    assert grant.request_id == request_id(grant.request)
    if deep:
        assert verified.request is not None
        assert verified.request.id == grant.request_id
        assert verified.request.certificate is not None
        assert len(verified.trace) == 3
        assert all(t.certificate is not None for t in verified.trace)
    else:  # the issuer's word: nothing embedded was re-checked
        assert verified.request is None
        assert verified.trace == ()
    assert verified.valid_until == min(grant.not_after, verified.certificate.not_after)
    assert open_sealed(REPLY_PRIV, grant.sealed_details, b"ctx").startswith(b"https://")
    assert decode_grant_unverified(data) == grant
    assert grant.to_json()["hops"] == 3


def test_grant_without_trace() -> None:
    raw = signed_request()
    data = sign_grant(grant_for(raw, ()), OWNER, OWNER_CHAIN)
    assert verify_grant(data, trust(), NOW + HOUR, deep=True).trace == ()


def test_grant_refusals_of_time_and_revocation() -> None:
    data = signed_grant()
    with pytest.raises(VerificationError, match="not yet valid"):
        verify_grant(data, trust(), NOW + 10)
    with pytest.raises(ExpiredRecord):
        verify_grant(data, trust(), NOW + 20 + 30 * DAY)
    with pytest.raises(GrantRevoked):
        verify_grant(data, trust(), NOW + HOUR, revoked={b"\x07" * 16})
    assert verify_grant(data, trust(), NOW + HOUR, revoked={b"\x08" * 16})


def test_grant_validity_longer_than_asked() -> None:
    raw = signed_request()
    grant = grant_for(raw, route(raw), not_after=NOW + 20 + 31 * DAY)
    with pytest.raises(VerificationError, match="asked for at most 30 days"):
        sign_grant(grant, OWNER, OWNER_CHAIN)
    forged = forge(OWNER, GRANT_TAG, grant.encode_body(), OWNER_CHAIN)
    assert verify_grant(forged, trust(), NOW + HOUR)  # the issuer's word
    with pytest.raises(VerificationError, match="asked for at most 30 days"):
        verify_grant(forged, trust(), NOW + HOUR, deep=True)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dataset_id", DatasetId(ORG_A.org_id, "other")),
        ("sequence", 6),
        ("grantee_node", OWNER_GW.peer_id),
        ("grantee_org", ORG_A.org_id),
        ("purpose", "research-and-development"),
    ],
)
def test_grant_mismatched_fields(field: str, value: object) -> None:
    raw = signed_request()
    grant = grant_for(raw, route(raw), **{field: value})
    with pytest.raises(VerificationError, match="differs from the request"):
        sign_grant(grant, OWNER, OWNER_CHAIN)
    forged = forge(OWNER, GRANT_TAG, grant.encode_body(), OWNER_CHAIN)
    with pytest.raises(VerificationError, match="differs from the request"):
        verify_grant(forged, trust(), NOW + HOUR, deep=True)


def test_grant_tampered_sealed_details_breaks_signature() -> None:
    data = signed_grant()
    grant = decode_grant_unverified(data)
    altered = bytearray(grant.sealed_details)
    altered[-1] ^= 1
    body = dataclasses.replace(grant, sealed_details=bytes(altered)).encode_body()
    with pytest.raises(SignatureError):
        verify_grant(resign_body(data, body), trust(), NOW + HOUR)


def test_grant_issuer_checks() -> None:
    raw = signed_request()
    grant = grant_for(raw, route(raw))
    with pytest.raises(ScopeError):
        sign_grant(grant, OWNER_GW, OWNER_GW_CHAIN)
    with pytest.raises(RoleNotGranted):
        sign_grant(grant, OWNER, chain(OWNER, ORG_A, Role.GATEWAY))
    # the issuer's certificate lacks the publisher role
    forged = forge(OWNER, GRANT_TAG, grant.encode_body(), chain(OWNER, ORG_A, Role.GATEWAY))
    with pytest.raises(RoleNotGranted):
        verify_grant(forged, trust(), NOW + HOUR)
    # a publisher of another org than the dataset's
    forged = forge(OWNER, GRANT_TAG, grant.encode_body(), chain(OWNER, ORG_B, Role.PUBLISHER))
    with pytest.raises(ScopeError):
        verify_grant(forged, trust(), NOW + HOUR)
    # signed by someone else than the named issuer
    forged = forge(OWNER_GW, GRANT_TAG, grant.encode_body(), OWNER_GW_CHAIN)
    with pytest.raises(ScopeError, match="issuer"):
        verify_grant(forged, trust(), NOW + HOUR)
    # the trace must end with the issuer's decision
    short = grant_for(raw, route(raw)[:2])
    forged = forge(OWNER, GRANT_TAG, short.encode_body(), OWNER_CHAIN)
    with pytest.raises(VerificationError, match="issuer's decision"):
        verify_grant(forged, trust(), NOW + HOUR, deep=True)
    with pytest.raises(VerificationError, match="issuer's decision"):
        sign_grant(short, OWNER, OWNER_CHAIN)


def test_grant_default_vs_deep_on_a_forged_hop() -> None:
    """A hop whose own signature is bad: the issuer vouched for it (default passes),
    deep verification catches it."""
    raw = signed_request()
    entries = route(raw)
    good = unpack(entries[0], max_size=1 << 16)
    bad_sig = SignedEnvelope(good[1], good[2], good[3], bytes(64), tuple(good[5])).encode()
    entries = [bad_sig, *route_after(raw, bad_sig)]
    grant = grant_for(raw, entries)
    data = forge(OWNER, GRANT_TAG, grant.encode_body(), OWNER_CHAIN)
    assert verify_grant(data, trust(), NOW + HOUR).grant == grant
    with pytest.raises(SignatureError, match="trace hop 0"):
        verify_grant(data, trust(), NOW + HOUR, deep=True)


def route_after(raw: bytes, first: bytes) -> list[bytes]:
    prev = hashlib.sha256(first).digest()
    second = TraceEntry(
        request_id=request_id(raw),
        hop=1,
        node=OWNER_GW.peer_id,
        org=ORG_A.org_id,
        prev=prev,
        at=NOW + 11,
        action="forward",
        next=OWNER.peer_id,
    )
    s2 = sign_trace_entry(second, OWNER_GW, OWNER_GW_CHAIN)
    third = TraceEntry(
        request_id=request_id(raw),
        hop=2,
        node=OWNER.peer_id,
        org=ORG_A.org_id,
        prev=hashlib.sha256(s2).digest(),
        at=NOW + 12,
        action="decide",
    )
    return [s2, sign_trace_entry(third, OWNER, OWNER_CHAIN)]


def test_grant_deep_checks_request_role() -> None:
    req = access_request()
    raw = forge(
        REQUESTER, ACCESS_REQUEST_TAG, req.encode_body(), chain(REQUESTER, ORG_B, Role.GATEWAY)
    )
    grant = grant_for(raw, route(raw))
    data = forge(OWNER, GRANT_TAG, grant.encode_body(), OWNER_CHAIN)
    assert verify_grant(data, trust(), NOW + HOUR)  # the issuer vouched for the requester
    with pytest.raises(RoleNotGranted, match="the granted request"):
        verify_grant(data, trust(), NOW + HOUR, deep=True)


def test_grant_deep_trace_refusals() -> None:
    deep = True
    raw = signed_request()
    hops = ((REQ_GW, ORG_B), (OWNER_GW, ORG_A), (REQ_GW, ORG_B), (OWNER, ORG_A))
    grant = grant_for(raw, route(raw, hops))
    data = forge(OWNER, GRANT_TAG, grant.encode_body(), OWNER_CHAIN)
    with pytest.raises(LoopDetected):
        verify_grant(data, trust(), NOW + HOUR, deep=deep)
    other = signed_request(nonce=b"\x03" * 16)
    grant = grant_for(raw, route(other))
    data = forge(OWNER, GRANT_TAG, grant.encode_body(), OWNER_CHAIN)
    with pytest.raises(VerificationError, match="another request"):
        verify_grant(data, trust(), NOW + HOUR, deep=deep)


def test_grant_deep_request_signer_named() -> None:
    body = access_request().encode_body()
    raw = forge(REQ_GW, ACCESS_REQUEST_TAG, body, REQ_GW_CHAIN)  # signed by another node
    grant = grant_for(raw, ())
    data = forge(OWNER, GRANT_TAG, grant.encode_body(), OWNER_CHAIN)
    with pytest.raises(ScopeError, match="the granted request"):
        verify_grant(data, trust(), NOW + HOUR, deep=True)


def test_grant_limits() -> None:
    raw = signed_request()
    with pytest.raises(HopLimitExceeded):
        grant_for(raw, route(raw) * 3)
    with pytest.raises(InvalidInput, match="grant_id"):
        grant_for(raw, (), grant_id=b"x")
    with pytest.raises(RecordTooLarge, match="sealed_details"):
        grant_for(raw, (), sealed_details=b"x" * 5000)
    with pytest.raises(InvalidInput, match="not_after"):
        grant_for(raw, (), not_after=NOW + 20)


def test_grant_issued_after_the_deadline() -> None:
    raw = signed_request()
    grant = grant_for(raw, (), issued_at=NOW + 2 * DAY, not_before=NOW + 2 * DAY,
                      not_after=NOW + 3 * DAY)  # fmt: skip
    with pytest.raises(VerificationError, match="deadline"):
        sign_grant(grant, OWNER, OWNER_CHAIN)


# --- denials ------------------------------------------------------------------------


def denial(**changes: object) -> Denial:
    values: dict[str, object] = {
        "request_id": b"\x05" * 32,
        "dataset_id": DATASET,
        "reason": "purpose_not_allowed",
        "message": "ask with --purpose academic-research",
        "node": OWNER.peer_id,
        "org": ORG_A.org_id,
        "decided_at": NOW,
        "trace": (),
    }
    values.update(changes)
    return Denial(**values)  # type: ignore[arg-type]


def test_denial_round_trip_and_refusals() -> None:
    data = sign_denial(denial(), OWNER, OWNER_CHAIN)
    verified = verify_denial(data, trust(), NOW)
    assert verified.denial == denial()
    assert verified.denial.to_json()["explanation"]
    with pytest.raises(InvalidInput, match="reason"):
        denial(reason="because")
    with pytest.raises(InvalidInput, match="control"):
        denial(message="two\nlines")
    with pytest.raises(RecordTooLarge):
        denial(message="x" * 257)
    with pytest.raises(ScopeError):
        sign_denial(denial(org=ORG_B.org_id), OWNER, chain(OWNER, ORG_B, Role.PUBLISHER))
    forged = forge(REQ_GW, "dn/denial/v1", denial(node=REQ_GW.peer_id, org=ORG_B.org_id)
                   .encode_body(), REQ_GW_CHAIN)  # fmt: skip
    with pytest.raises(ScopeError, match="dataset belongs"):
        verify_denial(forged, trust(), NOW)
    gateway = forge(OWNER_GW, "dn/denial/v1", denial(node=OWNER_GW.peer_id).encode_body(),
                    OWNER_GW_CHAIN)  # fmt: skip
    with pytest.raises(RoleNotGranted):
        verify_denial(gateway, trust(), NOW)
    with pytest.raises(VerificationError, match="future"):
        verify_denial(data, trust(), NOW - HOUR)
    with pytest.raises(SignatureError):
        verify_denial(resign_body(data, denial(reason="expired").encode_body()), trust(), NOW)


# --- grant revocations --------------------------------------------------------------


def grant_revocation(**changes: object) -> GrantRevocation:
    values: dict[str, object] = {
        "grant_id": b"\x07" * 16,
        "dataset_id": DATASET,
        "node": OWNER.peer_id,
        "revoked_at": NOW,
        "expires": NOW + 30 * DAY,
        "reason": "the project ended",
    }
    values.update(changes)
    return GrantRevocation(**values)  # type: ignore[arg-type]


def test_grant_revocation_round_trip_and_ledger() -> None:
    rev = grant_revocation()
    data = sign_grant_revocation(rev, OWNER, OWNER_CHAIN)
    verified = verify_grant_revocation(data, trust(), NOW)
    assert verified.revocation == rev
    assert record_kind(data) is RecordKind.GRANT_REVOCATION
    record = verify_ledger_record(data, trust(), NOW)
    key = grant_revocation_key(ORG_A.org_id, rev.grant_id)
    assert key == b"/dn-grev/" + str(ORG_A.org_id).encode() + b"/" + b"07" * 16
    assert record.key == key
    assert (record.sequence, record.timestamp, record.org) == (1, NOW, ORG_A.org_id)
    assert record.expires == verified.valid_until == rev.expires
    assert record.dataset_id is None
    validator = default_validator(trust())
    validator.validate(key, data, NOW)
    assert validator.select(key, [b"junk", data, data]) == 1
    with pytest.raises(ScopeError, match="wrong key"):
        validator.validate(grant_revocation_key(ORG_A.org_id, b"\x08" * 16), data, NOW)
    with pytest.raises(ExpiredRecord):
        GrantRevocationValidator(trust()).validate(key, data, NOW + 30 * DAY)


def test_grant_revocation_refusals() -> None:
    rev = grant_revocation()
    with pytest.raises(ScopeError):
        sign_grant_revocation(rev, OWNER_GW, OWNER_GW_CHAIN)
    with pytest.raises(RoleNotGranted):
        sign_grant_revocation(rev, OWNER, chain(OWNER, ORG_A, Role.GATEWAY))
    forged = forge(
        OWNER, "dn/grant-revocation/v1", rev.encode_body(), chain(OWNER, ORG_B, Role.PUBLISHER)
    )
    with pytest.raises(ScopeError):
        verify_grant_revocation(forged, trust(), NOW)
    with pytest.raises(InvalidInput, match="expires"):
        grant_revocation(expires=NOW)
    with pytest.raises(VerificationError, match="future"):
        verify_grant_revocation(sign_grant_revocation(rev, OWNER, OWNER_CHAIN), trust(), NOW - HOUR)


def test_grant_revocation_for_outlives_the_grant() -> None:
    raw = signed_request()
    grant = grant_for(raw, ())
    rev = grant_revocation_for(grant, node=OWNER.peer_id, now=NOW + HOUR)
    assert rev.expires == grant.not_after
    assert rev.grant_id == grant.grant_id
    assert isinstance(rev.node, PeerId)


@pytest.mark.parametrize(("deep", "checks"), [(False, 1), (True, 5)])
def test_grant_signature_checks_are_counted(
    monkeypatch: pytest.MonkeyPatch, deep: bool, checks: int
) -> None:
    """One Ed25519 check by default (certificates are cached by the trust store);
    deep adds the request's and each of the three hops'."""
    import identity.envelope

    data = signed_grant()
    trust_ = trust()
    verify_grant(data, trust_, NOW + HOUR, deep=True)  # warms the certificate cache
    calls: list[str] = []
    real = identity.envelope.verify_signature

    def counting(public_key: bytes, tag: str, body: bytes, signature: bytes) -> None:
        calls.append(tag)
        real(public_key, tag, body, signature)

    monkeypatch.setattr(identity.envelope, "verify_signature", counting)
    verify_grant(data, trust_, NOW + HOUR, deep=deep)
    assert len(calls) == checks
    assert calls[0] == GRANT_TAG
