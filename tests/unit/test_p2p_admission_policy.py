"""Admission decisions and the /datanet/id Hello codec (pure, no network)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datanet.p2p import Admission, AdmissionMode, Hello
from datanet.p2p.admission import MAX_HELLO_SIZE, Refusal, decode_reply
from datanet.testing.clock import NOW
from identity import (
    KeyPair,
    Role,
    TrustStore,
    issue_certificate,
    issue_revocation,
    parse_revocation,
)
from identity.encoding import pack
from identity.errors import DecodeError, InvalidInput

ORG_A = KeyPair.from_seed(b"A" * 32)
ORG_B = KeyPair.from_seed(b"B" * 32)
NODE = KeyPair.from_seed(b"n" * 32)
OTHER = KeyPair.from_seed(b"m" * 32)


def cert(org: KeyPair, node: KeyPair, *, serial: int = 7, not_after: int = NOW + 100) -> bytes:
    return issue_certificate(
        org,
        node.peer_id,
        [Role.PUBLISHER],
        not_before=NOW - 100,
        not_after=not_after,
        serial=serial,
    )


def policy(mode: str, *trusted: KeyPair) -> Admission:
    trust = TrustStore()
    for org in trusted:
        trust.trust(org.org_id)
    return Admission(AdmissionMode(mode), trust, (), lambda: NOW)


def test_hello_roundtrip() -> None:
    hello = Hello((cert(ORG_A, NODE),), frozenset({"kad-server"}), ("/ip4/127.0.0.1/tcp/1",))
    assert Hello.decode(hello.encode()) == hello
    assert decode_reply(hello.encode()) == hello
    refusal = Refusal("untrusted_organization", "nope")
    assert decode_reply(refusal.encode()) == refusal


@pytest.mark.parametrize(
    "obj",
    [
        {"v": 2},
        {"v": 1, "chain": "x"},
        {"v": 1, "chain": [b"c"] * 5},
        {"v": 1, "chain": [b"c" * 2000]},
        {"v": 1, "modes": [1]},
        {"v": 1, "modes": ["m" * 40]},
        {"v": 1, "addrs": ["/ip4/1.1.1.1/tcp/1"] * 17},
        {"v": 1, "refused": 3},
    ],
)
def test_malformed_hellos_refused(obj: dict[str, object]) -> None:
    with pytest.raises(DecodeError):
        decode_reply(pack(obj))


def test_oversized_hello_refused() -> None:
    with pytest.raises(DecodeError):
        Hello.decode(b"\x00" * (MAX_HELLO_SIZE + 1))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_hello_fuzz_raises_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_reply(data)


def test_closed_mode() -> None:
    closed = policy("closed", ORG_A)
    assert closed.decide(NODE.peer_id, Hello((cert(ORG_A, NODE),))).admitted
    refused = closed.decide(NODE.peer_id, Hello((cert(ORG_B, NODE),)))
    assert not refused.admitted
    assert refused.code == "untrusted_organization"
    assert not closed.decide(NODE.peer_id, None).admitted
    assert not closed.decide(NODE.peer_id, Hello(())).admitted


def test_a_chain_cannot_be_replayed_by_another_node() -> None:
    decision = policy("closed", ORG_A).decide(OTHER.peer_id, Hello((cert(ORG_A, NODE),)))
    assert not decision.admitted
    assert decision.code == "wrong_scope"


def test_expired_and_revoked_chains() -> None:
    closed = policy("closed", ORG_A)
    expired = closed.decide(NODE.peer_id, Hello((cert(ORG_A, NODE, not_after=NOW - 1),)))
    assert expired.code == "certificate_expired"
    closed.trust.add_revocation(
        parse_revocation(issue_revocation(ORG_A, [7], sequence=1, issued_at=NOW))
    )
    revoked = closed.decide(NODE.peer_id, Hello((cert(ORG_A, NODE),)))
    assert not revoked.admitted
    assert revoked.code == "certificate_revoked"


def test_members_mode_accepts_any_org_but_still_checks() -> None:
    members = policy("members")
    decision = members.decide(NODE.peer_id, Hello((cert(ORG_B, NODE),)))
    assert decision.admitted
    assert decision.cert is not None
    assert decision.cert.org == ORG_B.org_id
    assert not members.decide(NODE.peer_id, Hello(())).admitted
    assert not members.decide(NODE.peer_id, None).admitted
    # revocations added to the caller's trust store apply to the members view too
    members.trust.add_revocation(
        parse_revocation(issue_revocation(ORG_B, [7], sequence=1, issued_at=NOW))
    )
    assert not members.decide(NODE.peer_id, Hello((cert(ORG_B, NODE),))).admitted


def test_open_mode_admits_everyone_and_keeps_valid_certs() -> None:
    opened = policy("open")
    assert opened.decide(NODE.peer_id, None).admitted
    forged = opened.decide(OTHER.peer_id, Hello((cert(ORG_A, NODE),)))
    assert forged.admitted
    assert forged.cert is None
    assert forged.code == "wrong_scope"
    good = opened.decide(NODE.peer_id, Hello((cert(ORG_A, NODE),)))
    assert good.cert is not None


def test_closed_with_accept_any_is_a_configuration_error() -> None:
    with pytest.raises(InvalidInput):
        Admission(AdmissionMode.CLOSED, TrustStore(accept_any=True))
    with pytest.raises(ValueError, match="nonsense"):
        Admission("nonsense", TrustStore())  # type: ignore[arg-type]
