"""datanet.testing's own tools: the manual clock and the record builders."""

from __future__ import annotations

import pytest

from datanet.records.descriptor import verify_descriptor
from datanet.testing import (
    NODE_A,
    NOW,
    ORG_A,
    ORG_B,
    ManualClock,
    certificate,
    descriptor,
    full_descriptor,
    key,
    signed,
)
from identity.certs import Role, TrustStore, parse_certificate
from identity.keys import KeyPair


def test_the_manual_clock_moves_only_forward_and_only_when_told() -> None:
    clock = ManualClock()
    assert clock() == NOW
    assert clock.advance(10) == NOW + 10
    assert clock() == NOW + 10
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    assert clock() == NOW + 10


def test_keys_are_fixed_by_their_tag() -> None:
    assert key("A").org_id == ORG_A.org_id
    assert ORG_A.org_id == KeyPair.from_seed(b"A" * 32).org_id
    assert key("org-1").org_id != key("org-2").org_id
    assert ORG_A.org_id != ORG_B.org_id
    with pytest.raises(ValueError, match="empty"):
        key("")


def test_built_descriptors_sign_and_verify_at_now() -> None:
    for desc in (descriptor(), full_descriptor(), descriptor("a/b", sequence=3, title="x")):
        verified = verify_descriptor(signed(desc), TrustStore({ORG_A.org_id}), NOW)
        assert verified.descriptor == desc
        assert verified.certificate.node == NODE_A.peer_id
    cert = parse_certificate(certificate(roles=(Role.REQUESTER,), serial=3))
    assert (cert.org, cert.node, cert.serial) == (ORG_A.org_id, NODE_A.peer_id, 3)
    assert full_descriptor(sequence=9).sequence == 9
