"""Membership certificates, revocations and TrustStore.verify_chain."""

from __future__ import annotations

import pytest

from identity.certs import (
    CERT_TAG,
    REVOCATION_TAG,
    MembershipCertificate,
    Revocation,
    Role,
    TrustStore,
    issue_certificate,
    issue_revocation,
    parse_certificate,
    parse_revocation,
)
from identity.envelope import seal
from identity.errors import (
    CertificateError,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    DecodeError,
    InvalidInput,
    RoleNotGranted,
    ScopeError,
    SignatureError,
    UntrustedOrganization,
)
from identity.keys import KeyPair

DAY = 86400


@pytest.fixture
def cert(org_key: KeyPair, node_key: KeyPair, now: int) -> bytes:
    return issue_certificate(
        org_key,
        node_key.peer_id,
        {Role.PUBLISHER, Role.GATEWAY},
        not_before=now - DAY,
        not_after=now + 30 * DAY,
        serial=42,
        org_name="acme",
    )


@pytest.fixture
def trust(org_key: KeyPair) -> TrustStore:
    return TrustStore(trusted={org_key.org_id})


def test_issue_parse_round_trip(cert: bytes, org_key: KeyPair, node_key: KeyPair, now: int) -> None:
    c = parse_certificate(cert)
    assert c == MembershipCertificate(
        org_key.org_id,
        node_key.peer_id,
        frozenset({Role.PUBLISHER, Role.GATEWAY}),
        now - DAY,
        now + 30 * DAY,
        42,
        "acme",
    )
    assert MembershipCertificate.decode_body(c.encode_body()) == c


def test_valid_chain_accepted(
    trust: TrustStore, cert: bytes, node_key: KeyPair, org_key: KeyPair, now: int
) -> None:
    c = trust.verify_chain(
        [cert], now=now, node=node_key.peer_id, role=Role.PUBLISHER, org=org_key.org_id
    )
    assert c.serial == 42
    # Cached parse gives the same answer on a second call.
    assert trust.verify_chain([cert], now=now) == c


def test_untrusted_org_rejected(cert: bytes, other_org_key: KeyPair, now: int) -> None:
    with pytest.raises(UntrustedOrganization):
        TrustStore(trusted={other_org_key.org_id}).verify_chain([cert], now=now)
    with pytest.raises(UntrustedOrganization):
        TrustStore().verify_chain([cert], now=now)


def test_accept_any_mode_accepts_untrusted_org_but_still_checks(
    cert: bytes, org_key: KeyPair, now: int
) -> None:
    store = TrustStore(accept_any=True)
    assert store.verify_chain([cert], now=now).org == org_key.org_id
    with pytest.raises(CertificateExpired):
        store.verify_chain([cert], now=now + 31 * DAY)
    rev = parse_revocation(issue_revocation(org_key, [42], sequence=1, issued_at=now))
    store.add_revocation(rev)
    with pytest.raises(CertificateRevoked):
        store.verify_chain([cert], now=now)


def test_expired_rejected(trust: TrustStore, cert: bytes, now: int) -> None:
    with pytest.raises(CertificateExpired):
        trust.verify_chain([cert], now=now + 30 * DAY)  # not_after is exclusive
    trust.verify_chain([cert], now=now + 30 * DAY - 1)


def test_not_yet_valid_rejected(trust: TrustStore, cert: bytes, now: int) -> None:
    with pytest.raises(CertificateNotYetValid):
        trust.verify_chain([cert], now=now - DAY - 1)
    trust.verify_chain([cert], now=now - DAY)


def test_revoked_rejected_and_stale_revocation_ignored(
    trust: TrustStore, cert: bytes, org_key: KeyPair, now: int
) -> None:
    newer = parse_revocation(issue_revocation(org_key, [42], sequence=5, issued_at=now))
    assert trust.add_revocation(newer)
    assert trust.is_revoked(org_key.org_id, 42)
    with pytest.raises(CertificateRevoked):
        trust.verify_chain([cert], now=now)
    # An older (replayed) list that does not revoke 42 is ignored.
    older = parse_revocation(issue_revocation(org_key, [], sequence=4, issued_at=now))
    assert not trust.add_revocation(older)
    same = parse_revocation(issue_revocation(org_key, [], sequence=5, issued_at=now))
    assert not trust.add_revocation(same)
    with pytest.raises(CertificateRevoked):
        trust.verify_chain([cert], now=now)
    # A newer list that un-revokes is accepted (lists are cumulative, highest wins).
    assert trust.add_revocation(
        parse_revocation(issue_revocation(org_key, [1], sequence=6, issued_at=now))
    )
    trust.verify_chain([cert], now=now)


def test_revocation_of_another_org_does_not_apply(
    trust: TrustStore, cert: bytes, other_org_key: KeyPair, now: int
) -> None:
    trust.add_revocation(
        parse_revocation(issue_revocation(other_org_key, [42], sequence=1, issued_at=now))
    )
    trust.verify_chain([cert], now=now)


def test_wrong_node_rejected(
    trust: TrustStore, cert: bytes, other_node_key: KeyPair, now: int
) -> None:
    with pytest.raises(ScopeError):
        trust.verify_chain([cert], now=now, node=other_node_key.peer_id)


def test_wrong_org_scope_rejected(
    cert: bytes, org_key: KeyPair, other_org_key: KeyPair, now: int
) -> None:
    store = TrustStore(trusted={org_key.org_id, other_org_key.org_id})
    with pytest.raises(ScopeError):
        store.verify_chain([cert], now=now, org=other_org_key.org_id)


def test_missing_role_rejected(trust: TrustStore, cert: bytes, now: int) -> None:
    with pytest.raises(RoleNotGranted):
        trust.verify_chain([cert], now=now, role=Role.REQUESTER)


def test_signer_not_the_named_org_rejected(
    org_key: KeyPair, other_org_key: KeyPair, node_key: KeyPair, now: int
) -> None:
    # A body naming org A, correctly signed by org B's key.
    body = MembershipCertificate(
        org_key.org_id, node_key.peer_id, frozenset({Role.ADMIN}), now, now + DAY, 1
    ).encode_body()
    forged = seal(other_org_key, CERT_TAG, body).encode()
    with pytest.raises(CertificateError, match="not signed by the organization"):
        parse_certificate(forged)
    with pytest.raises(CertificateError):
        TrustStore(accept_any=True).verify_chain([forged], now=now)


def test_revocation_signer_must_be_the_org(org_key: KeyPair, other_org_key: KeyPair) -> None:
    body = Revocation(org_key.org_id, frozenset({1}), 1, 0).encode_body()
    forged = seal(other_org_key, REVOCATION_TAG, body).encode()
    with pytest.raises(ScopeError):
        parse_revocation(forged)


def test_certificate_signature_tamper_rejected(cert: bytes) -> None:
    tampered = bytearray(cert)
    tampered[-70] ^= 0x01  # inside the signature
    with pytest.raises((SignatureError, DecodeError)):
        parse_certificate(bytes(tampered))


def test_chain_length_must_be_one(trust: TrustStore, cert: bytes, now: int) -> None:
    with pytest.raises(CertificateError):
        trust.verify_chain([], now=now)
    with pytest.raises(CertificateError):
        trust.verify_chain([cert, cert], now=now)


def test_certificate_is_not_a_revocation(cert: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_revocation(cert)


def test_invalid_certificate_arguments(org_key: KeyPair, node_key: KeyPair, now: int) -> None:
    with pytest.raises(InvalidInput):
        issue_certificate(
            org_key, node_key.peer_id, {Role.ADMIN}, not_before=now, not_after=now, serial=1
        )
    with pytest.raises(InvalidInput):
        issue_certificate(
            org_key, node_key.peer_id, {Role.ADMIN}, not_before=now, not_after=now + 1, serial=-1
        )
    with pytest.raises(InvalidInput):
        issue_certificate(
            org_key,
            node_key.peer_id,
            {Role.ADMIN},
            not_before=now,
            not_after=now + 1,
            serial=1,
            org_name="x" * 129,
        )


def test_invalid_revocation_arguments(org_key: KeyPair, now: int) -> None:
    with pytest.raises(InvalidInput):
        issue_revocation(org_key, [1], sequence=1, issued_at=now, reason="x" * 257)
    with pytest.raises(InvalidInput):
        issue_revocation(org_key, [-1], sequence=1, issued_at=now)
    with pytest.raises(InvalidInput):
        issue_revocation(org_key, range(5000), sequence=1, issued_at=now)


def test_cache_is_bounded(org_key: KeyPair, node_key: KeyPair, now: int) -> None:
    store = TrustStore(trusted={org_key.org_id}, cache_size=3)
    for serial in range(10):
        c = issue_certificate(
            org_key,
            node_key.peer_id,
            {Role.ADMIN},
            not_before=now,
            not_after=now + 1,
            serial=serial,
        )
        store.verify_chain([c], now=now)
    assert len(store._cache) == 3
