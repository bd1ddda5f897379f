"""Property tests: policy evaluation, purpose satisfaction, sealed boxes, and access
records that are refused with a DatanetError (never anything else) when mangled."""

from __future__ import annotations

import contextlib
import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from datanet.errors import DatanetError
from datanet.records.access import (
    AccessRequest,
    Grant,
    TraceEntry,
    request_id,
    sign_grant,
    sign_request,
    sign_trace_entry,
    verify_grant,
    verify_request,
)
from datanet.records.ids import DatasetId
from datanet.records.policy import ACCESS_MODES, AccessPolicy, Verdict, evaluate
from datanet.records.purposes import ALIASES, PURPOSES, purpose_ancestors, purpose_satisfies
from datanet.records.sealed import new_reply_key, open_sealed, seal_to
from datanet.testing.clock import NOW
from datanet.testing.records import certificate, key
from identity.certs import Role, TrustStore
from identity.keys import OrgId

ORGS = [key(c).org_id for c in "abcde"]
TERMS = sorted(PURPOSES)
NAMES = TERMS + sorted(ALIASES) + ["urban-planning", "agriculture"]
CHECKS = (
    "expired",
    "dataset_closed",
    "descriptor_outdated",
    "dataset_unknown",
    "org_not_allowed",
    "purpose_not_allowed",
    "validity_too_long",
)


@st.composite
def policies(draw: st.DrawFn) -> AccessPolicy:
    return AccessPolicy(
        draw(st.sampled_from(ACCESS_MODES)),  # type: ignore[arg-type]
        tuple(draw(st.lists(st.sampled_from(ORGS), max_size=3, unique=True))),
        tuple(draw(st.lists(st.sampled_from(NAMES), max_size=3, unique=True))),
        draw(st.integers(1, 400)),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[AccessPolicy, dict[str, object]]:
    current = draw(st.integers(0, 5))
    return draw(policies()), {
        "current_sequence": current,
        "request_sequence": draw(st.integers(0, 5)),
        "org": draw(st.sampled_from(ORGS)),
        "purpose": draw(st.sampled_from(TERMS)),
        "validity_days": draw(st.integers(1, 500)),
        "deadline": NOW + draw(st.integers(-10, 10)),
        "now": NOW,
    }


def failing(policy: AccessPolicy, a: dict[str, object]) -> list[str]:
    """Every check that fails, in the documented order (an independent restatement)."""
    org, purpose = a["org"], a["purpose"]
    assert isinstance(org, OrgId)
    assert isinstance(purpose, str)
    fails = {
        "expired": a["now"] >= a["deadline"],  # type: ignore[operator]
        "dataset_closed": policy.mode == "closed",
        "descriptor_outdated": a["request_sequence"] < a["current_sequence"],  # type: ignore[operator]
        "dataset_unknown": a["request_sequence"] > a["current_sequence"],  # type: ignore[operator]
        "org_not_allowed": bool(policy.allowed_orgs) and org not in policy.allowed_orgs,
        "purpose_not_allowed": bool(policy.purposes)
        and not any(purpose == p or p in _names_of(purpose) for p in policy.purposes),
        "validity_too_long": a["validity_days"] > policy.max_validity_days,  # type: ignore[operator]
    }
    return [c for c in CHECKS if fails[c]]


def _names_of(purpose: str) -> set[str]:
    """Every name (term or alias) of ``purpose`` and of its broader terms."""
    terms = set(purpose_ancestors(purpose))
    return terms | {alias for alias, term in ALIASES.items() if term in terms}


@given(cases())
def test_verdict_is_the_first_failing_check(case: tuple[AccessPolicy, dict[str, object]]) -> None:
    policy, args = case
    verdict: Verdict = evaluate(policy, **args)  # type: ignore[arg-type]
    fails = failing(policy, args)
    if fails:
        assert verdict.outcome == "deny"
        assert verdict.reason == fails[0]
        assert verdict.message
    else:
        assert verdict.reason is None
        assert verdict.outcome == ("grant" if policy.mode == "open" else "queue")


@given(cases())
def test_closed_never_grants(case: tuple[AccessPolicy, dict[str, object]]) -> None:
    policy, args = case
    closed = dataclasses.replace(policy, mode="closed")
    assert evaluate(closed, **args).outcome == "deny"  # type: ignore[arg-type]


@given(
    cases(), st.lists(st.sampled_from(ORGS)), st.lists(st.sampled_from(NAMES)), st.integers(0, 50)
)
def test_widening_never_turns_a_grant_into_a_deny(
    case: tuple[AccessPolicy, dict[str, object]],
    more_orgs: list[OrgId],
    more_purposes: list[str],
    more_days: int,
) -> None:
    policy, args = case
    before = evaluate(policy, **args)  # type: ignore[arg-type]
    wider = AccessPolicy(
        policy.mode,
        tuple(dict.fromkeys(policy.allowed_orgs + tuple(more_orgs))) if policy.allowed_orgs else (),
        tuple(dict.fromkeys(policy.purposes + tuple(more_purposes)))[:32]
        if policy.purposes
        else (),
        min(policy.max_validity_days + more_days, 3650),
    )
    after = evaluate(wider, **args)  # type: ignore[arg-type]
    if before.outcome != "deny":
        assert after.outcome == before.outcome


@given(st.sampled_from(TERMS))
def test_satisfies_is_reflexive_and_follows_every_ancestor(term: str) -> None:
    assert purpose_satisfies(term, term)
    for ancestor in purpose_ancestors(term):
        assert purpose_satisfies(term, ancestor)


@given(st.sampled_from(TERMS), st.sampled_from(TERMS), st.sampled_from(TERMS))
def test_satisfies_is_transitive(a: str, b: str, c: str) -> None:
    if purpose_satisfies(a, b) and purpose_satisfies(b, c):
        assert purpose_satisfies(a, c)


@given(st.sampled_from(TERMS), st.sampled_from(TERMS))
def test_satisfies_is_antisymmetric(a: str, b: str) -> None:
    if a != b and purpose_satisfies(a, b):
        assert not purpose_satisfies(b, a)


@settings(max_examples=50)
@given(st.binary(max_size=4096), st.binary(max_size=64))
def test_seal_open_round_trip(plaintext: bytes, aad: bytes) -> None:
    private, public = new_reply_key()
    assert open_sealed(private, seal_to(public, plaintext, aad), aad) == plaintext


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_garbage_is_refused_with_datanet_errors_only(data: bytes) -> None:
    trust = TrustStore(accept_any=True)
    for check in (
        lambda: verify_request(data, trust, NOW),
        lambda: verify_grant(data, trust, NOW),
        lambda: verify_grant(data, trust, NOW, deep=True),
        lambda: open_sealed(bytes(32), data, b""),
    ):
        with contextlib.suppress(DatanetError):
            check()


def _signed_grant() -> bytes:
    owner, requester, org_a, org_b = key("P"), key("R"), key("A"), key("B")
    req = AccessRequest(
        dataset_id=DatasetId(org_a.org_id, "weather/stations"),
        sequence=1,
        purpose="scientific-research",
        validity_days=10,
        node=requester.peer_id,
        org=org_b.org_id,
        nonce=bytes(16),
        created=NOW,
        deadline=NOW + 3600,
        reply_key=bytes(range(32)),
    )
    raw = sign_request(req, requester, [certificate(org_b, requester, (Role.REQUESTER,))])
    entry = TraceEntry(
        request_id=request_id(raw),
        hop=0,
        node=owner.peer_id,
        org=org_a.org_id,
        prev=request_id(raw),
        at=NOW + 1,
        action="decide",
    )
    owner_chain = [certificate(org_a, owner, (Role.PUBLISHER,))]
    grant = Grant(
        grant_id=bytes(16),
        request=raw,
        trace=(sign_trace_entry(entry, owner, owner_chain),),
        dataset_id=req.dataset_id,
        sequence=1,
        grantee_node=requester.peer_id,
        grantee_org=org_b.org_id,
        purpose=req.purpose,
        not_before=NOW + 2,
        not_after=NOW + 2 + 86400,
        issuer=owner.peer_id,
        issued_at=NOW + 2,
    )
    return sign_grant(grant, owner, owner_chain)


GRANT = _signed_grant()
GRANT_TRUST = TrustStore({key("A").org_id, key("B").org_id})


def test_the_fixture_grant_verifies() -> None:
    assert verify_grant(GRANT, GRANT_TRUST, NOW + 60, deep=True)


@settings(max_examples=300)
@given(st.integers(0, len(GRANT) - 1), st.integers(1, 255), st.booleans())
def test_any_flipped_byte_is_refused(index: int, flip: int, deep: bool) -> None:
    mangled = bytearray(GRANT)
    mangled[index] ^= flip
    try:
        verify_grant(bytes(mangled), GRANT_TRUST, NOW + 60, deep=deep)
    except DatanetError:
        return
    raise AssertionError(f"a grant with byte {index} flipped still verifies")
