"""Unit tests of the audit log's pure formats: RFC 9162 hashing and proofs (known
answers), entries, signed tree heads, witness cosignatures and receipts."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from datanet.errors import (
    CertificateNotYetValid,
    CertificateRevoked,
    DecodeError,
    InvalidInput,
    RecordTooLarge,
    ScopeError,
    SignatureError,
    UntrustedOrganization,
    VerificationError,
)
from datanet.records.audit import (
    AUDIT_COSIGN_TAG,
    AUDIT_HEAD_TAG,
    EMPTY_ROOT,
    MAX_INLINE_RECORD,
    AuditEntry,
    Cosignature,
    EntryKind,
    MerkleFrontier,
    Receipt,
    TreeHead,
    consistency_proof,
    cosign_head,
    decode_entry,
    decode_receipt,
    inclusion_proof,
    leaf_hash,
    make_receipt,
    merkle_root,
    node_hash,
    open_tree_head,
    sign_tree_head,
    verify_consistency,
    verify_cosignature,
    verify_inclusion,
    verify_receipt,
    verify_tree_head,
)
from datanet.testing.clock import DAY, NOW
from datanet.testing.records import NODE_A, NODE_B, ORG_A, ORG_B, certificate
from identity.certs import TrustStore, issue_revocation, parse_revocation
from identity.encoding import pack, unpack
from identity.envelope import seal

# The eight-leaf tree of the Certificate Transparency reference tests.
LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
HASHES = [leaf_hash(x) for x in LEAVES]
ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

WITNESS_CERT = certificate(ORG_B, NODE_B)
LOG_CERT = certificate(ORG_A, NODE_A)


def trust_both() -> TrustStore:
    return TrustStore({ORG_A.org_id, ORG_B.org_id})


# -- hashing and proofs -----------------------------------------------------


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle_root([]) == EMPTY_ROOT
    assert MerkleFrontier().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", sorted(ROOTS))
def test_known_roots(size: int) -> None:
    assert merkle_root(HASHES[:size]).hex() == ROOTS[size]


def test_leaves_and_nodes_are_domain_separated() -> None:
    a, b = HASHES[0], HASHES[1]
    assert leaf_hash(a + b) != node_hash(a, b)
    # a two-leaf tree's root is not the leaf hash of the two leaves' concatenation
    assert merkle_root([a, b]) == node_hash(a, b)


def test_known_inclusion_proof() -> None:
    proof = inclusion_proof(HASHES, 0, 8)
    assert [p.hex()[:8] for p in proof] == ["96a296d2", "5f083f0a", "6b47aaf2"]
    verify_inclusion(HASHES[0], 0, 8, proof, bytes.fromhex(ROOTS[8]))


def test_known_consistency_proof() -> None:
    proof = consistency_proof(HASHES, 3, 8)
    assert [p.hex()[:8] for p in proof] == ["0298d122", "07506a85", "fac54203", "6b47aaf2"]
    verify_consistency(3, 8, bytes.fromhex(ROOTS[3]), bytes.fromhex(ROOTS[8]), proof)


def test_single_leaf_tree_has_an_empty_inclusion_proof() -> None:
    assert inclusion_proof(HASHES, 0, 1) == []
    verify_inclusion(HASHES[0], 0, 1, [], HASHES[0])


def test_inclusion_refuses_index_beyond_size_and_wrong_proof_lengths() -> None:
    root = bytes.fromhex(ROOTS[8])
    proof = inclusion_proof(HASHES, 5, 8)
    with pytest.raises(VerificationError):
        verify_inclusion(HASHES[5], 8, 8, proof, root)
    with pytest.raises(VerificationError, match="shorter"):
        verify_inclusion(HASHES[5], 5, 8, proof[:-1], root)
    with pytest.raises(VerificationError, match="longer"):
        verify_inclusion(HASHES[5], 5, 8, [*proof, HASHES[0]], root)
    with pytest.raises(VerificationError):
        verify_inclusion(HASHES[5], 4, 8, proof, root)
    with pytest.raises(InvalidInput):
        inclusion_proof(HASHES, 8, 8)
    with pytest.raises(InvalidInput):
        inclusion_proof(HASHES, 0, 9)


def test_malformed_proof_arguments_are_invalid_input() -> None:
    root = bytes.fromhex(ROOTS[8])
    with pytest.raises(InvalidInput):
        verify_inclusion(HASHES[0], 0, 8, [b"short"], root)
    with pytest.raises(InvalidInput):
        verify_inclusion(HASHES[0], -1, 8, [], root)
    with pytest.raises(InvalidInput):
        verify_inclusion(b"x", 0, 1, [], root)
    with pytest.raises(RecordTooLarge):
        verify_inclusion(HASHES[0], 0, 8, [root] * 129, root)
    with pytest.raises(InvalidInput):
        verify_consistency(1, 2, root, root, "not a list")  # type: ignore[arg-type]


def test_consistency_edge_cases() -> None:
    r3, r8 = bytes.fromhex(ROOTS[3]), bytes.fromhex(ROOTS[8])
    verify_consistency(0, 8, EMPTY_ROOT, r8, [])
    verify_consistency(8, 8, r8, r8, [])
    assert consistency_proof(HASHES, 0, 8) == []
    assert consistency_proof(HASHES, 8, 8) == []
    with pytest.raises(VerificationError, match="shrank"):
        verify_consistency(8, 3, r8, r3, [])
    with pytest.raises(VerificationError, match="fork"):
        verify_consistency(8, 8, r8, r3, [])
    with pytest.raises(VerificationError):
        verify_consistency(8, 8, r8, r8, [r3])
    with pytest.raises(VerificationError):
        verify_consistency(0, 8, r3, r8, [])
    with pytest.raises(VerificationError, match="empty"):
        verify_consistency(3, 8, r3, r8, [])
    with pytest.raises(InvalidInput):
        consistency_proof(HASHES, 5, 3)


def test_consistency_from_a_power_of_two_uses_the_old_root() -> None:
    proof = consistency_proof(HASHES, 4, 8)
    assert bytes.fromhex(ROOTS[4]) not in proof  # implied, not sent
    verify_consistency(4, 8, bytes.fromhex(ROOTS[4]), bytes.fromhex(ROOTS[8]), proof)


def test_frontier_reports_completed_subtrees_and_rebuilds() -> None:
    frontier = MerkleFrontier()
    assert frontier.append(HASHES[0]) == []
    assert frontier.append(HASHES[1]) == [(1, 0, merkle_root(HASHES[:2]))]
    assert frontier.append(HASHES[2]) == []
    done = frontier.append(HASHES[3])
    assert [(lv, i) for lv, i, _ in done] == [(1, 1), (2, 0)]
    assert MerkleFrontier.subtree_spans(7) == [(2, 0), (1, 2), (0, 6)]
    rebuilt = MerkleFrontier(7, [merkle_root(HASHES[:4]), merkle_root(HASHES[4:6]), HASHES[6]])
    assert rebuilt.root().hex() == ROOTS[7]
    with pytest.raises(InvalidInput):
        MerkleFrontier(7, [HASHES[0]])
    copy = rebuilt.copy()
    copy.append(HASHES[7])
    assert (copy.size, rebuilt.size) == (8, 7)
    assert copy.root().hex() == ROOTS[8]


# -- entries -----------------------------------------------------------------


def test_entry_kinds_are_the_issues_list() -> None:
    assert {k.value for k in EntryKind} == {
        "publish",
        "withdraw",
        "request_received",
        "request_forwarded",
        "request_answered",
        "decision",
        "grant",
        "grant_revoked",
        "approval",
        "denial",
        "cert_change",
        "trust_change",
    }


def test_entry_keeps_small_records_and_hashes_large_ones() -> None:
    small = b"s" * MAX_INLINE_RECORD
    large = b"l" * (MAX_INLINE_RECORD + 1)
    kept = AuditEntry.create("grant", NOW, small)
    hashed = AuditEntry.create(EntryKind.PUBLISH, NOW, large)
    assert kept.record == small
    assert kept.record_hash is None
    assert hashed.record is None
    assert hashed.record_hash is not None
    assert hashed.refers_to(large)
    assert not hashed.refers_to(small)
    assert kept.refers_to(small)
    assert kept.subject_hash == hashlib.sha256(small).digest()
    assert hashed.subject_hash == hashlib.sha256(large).digest()
    assert AuditEntry.create("trust_change", NOW, None, {"org": "x"}).subject_hash is None


def test_entry_round_trips_with_sorted_details() -> None:
    entry = AuditEntry.create("decision", NOW, b"rec", {"z": 1, "a": [True, None, "x", {"k": -5}]})
    assert list(entry.details) == ["a", "z"]
    raw = entry.encode()
    assert decode_entry(raw) == entry
    assert entry.leaf_hash() == leaf_hash(raw)
    assert entry.to_json()["kind"] == "decision"
    assert entry.to_json()["record"] == b"rec".hex()


def test_entry_refuses_bad_fields() -> None:
    with pytest.raises(InvalidInput, match="kind"):
        AuditEntry.create("shredded", NOW)
    with pytest.raises(InvalidInput):
        AuditEntry.create("grant", -1)
    with pytest.raises(InvalidInput, match="float"):
        AuditEntry.create("grant", NOW, None, {"x": 1.5})
    with pytest.raises(InvalidInput, match="deeper"):
        AuditEntry.create("grant", NOW, None, {"a": {"b": {"c": {"d": {}}}}})
    with pytest.raises(RecordTooLarge):
        AuditEntry.create("grant", NOW, None, {"x": "y" * 2000})
    with pytest.raises(InvalidInput, match="both"):
        AuditEntry(EntryKind.GRANT, NOW, b"r", b"h" * 32)
    with pytest.raises(RecordTooLarge):
        AuditEntry(EntryKind.GRANT, NOW, b"r" * (MAX_INLINE_RECORD + 1))
    with pytest.raises(InvalidInput):
        AuditEntry(EntryKind.GRANT, NOW, None, b"short")


def test_decode_entry_refuses_non_canonical_and_malformed_bytes() -> None:
    unsorted = pack({"v": 1, "k": "grant", "t": NOW, "r": None, "h": None, "d": {"b": 1, "a": 2}})
    with pytest.raises(DecodeError, match="canonical"):
        decode_entry(unsorted)
    reordered = pack({"k": "grant", "v": 1, "t": NOW, "r": None, "h": None, "d": {}})
    with pytest.raises(DecodeError, match="canonical"):
        decode_entry(reordered)
    with pytest.raises(DecodeError, match="version"):
        decode_entry(pack({"v": 2}))
    with pytest.raises(DecodeError):
        decode_entry(pack({"v": 1, "k": "nope", "t": NOW, "r": None, "h": None, "d": {}}))
    with pytest.raises(DecodeError):
        decode_entry(pack({"v": 1, "k": "grant", "t": NOW, "r": 5, "h": None, "d": {}}))
    with pytest.raises(RecordTooLarge):
        decode_entry(b"\x00" * 9000)
    with pytest.raises(DecodeError):
        decode_entry(b"\xc1")


# -- signed tree heads -----------------------------------------------------------


def head_at(size: int = 8, timestamp: int = NOW) -> TreeHead:
    return TreeHead(NODE_A.peer_id, size, bytes.fromhex(ROOTS[size]), timestamp)


def test_tree_head_signs_and_verifies() -> None:
    raw = sign_tree_head(head_at(), NODE_A, [LOG_CERT])
    verified = verify_tree_head(raw, trust_both(), NOW)
    assert verified.head == head_at()
    assert verified.org == ORG_A.org_id
    assert verified.raw == raw
    assert open_tree_head(raw)[1].tag == AUDIT_HEAD_TAG
    assert verified.head.to_json()["root"] == ROOTS[8]


def test_tree_head_refuses_the_wrong_signer_or_chain() -> None:
    with pytest.raises(ScopeError):
        sign_tree_head(head_at(), NODE_B, [WITNESS_CERT])
    with pytest.raises(ScopeError):
        sign_tree_head(head_at(), NODE_A, [WITNESS_CERT])
    forged = seal(NODE_B, AUDIT_HEAD_TAG, head_at().encode_body(), [WITNESS_CERT]).encode()
    with pytest.raises(ScopeError):
        verify_tree_head(forged, trust_both(), NOW)
    raw = sign_tree_head(head_at(), NODE_A, [LOG_CERT])
    with pytest.raises(UntrustedOrganization):
        verify_tree_head(raw, TrustStore({ORG_B.org_id}), NOW)


def test_tree_head_refuses_tampering() -> None:
    raw = sign_tree_head(head_at(), NODE_A, [LOG_CERT])
    other = head_at(7)
    env = open_tree_head(raw)[1]
    swapped = dataclasses.replace(env, body=other.encode_body()).encode()
    with pytest.raises(SignatureError):
        verify_tree_head(swapped, trust_both(), NOW)
    with pytest.raises(DecodeError):
        verify_tree_head(raw[:-1], trust_both(), NOW)
    cosig = cosign_head(head_at(), NODE_B, [WITNESS_CERT], NOW)
    with pytest.raises(DecodeError, match=AUDIT_HEAD_TAG):
        verify_tree_head(cosig, trust_both(), NOW)


def test_tree_head_time_rules() -> None:
    future = sign_tree_head(head_at(timestamp=NOW + 3600), NODE_A, [LOG_CERT])
    with pytest.raises(VerificationError, match="future"):
        verify_tree_head(future, trust_both(), NOW)
    # evidence outlives the certificate: checked at the head's own time
    raw = sign_tree_head(head_at(), NODE_A, [LOG_CERT])
    verify_tree_head(raw, trust_both(), NOW + 3 * 365 * DAY)
    before = sign_tree_head(head_at(timestamp=NOW - 30 * DAY), NODE_A, [LOG_CERT])
    with pytest.raises(CertificateNotYetValid):
        verify_tree_head(before, trust_both(), NOW)
    trust = trust_both()
    trust.add_revocation(parse_revocation(issue_revocation(ORG_A, [7], sequence=1, issued_at=NOW)))
    with pytest.raises(CertificateRevoked):
        verify_tree_head(raw, trust, NOW)


# -- cosignatures ---------------------------------------------------------------


def test_cosignature_verifies_and_matches_its_head() -> None:
    raw = cosign_head(head_at(), NODE_B, [WITNESS_CERT], NOW + 60)
    verified = verify_cosignature(raw, trust_both(), NOW + 60)
    assert verified.cosignature.matches(head_at())
    assert not verified.cosignature.matches(head_at(7))
    assert not verified.cosignature.matches(head_at(timestamp=NOW + 1))
    assert verified.org == ORG_B.org_id
    assert verified.cosignature.witnessed_at == NOW + 60


def test_cosignature_refusals() -> None:
    with pytest.raises(InvalidInput, match="own head"):
        cosign_head(head_at(), NODE_A, [LOG_CERT], NOW)
    with pytest.raises(ScopeError):
        cosign_head(head_at(), NODE_B, [LOG_CERT], NOW)
    early = cosign_head(head_at(timestamp=NOW), NODE_B, [WITNESS_CERT], NOW - 3600)
    with pytest.raises(VerificationError, match="before the head"):
        verify_cosignature(early, trust_both(), NOW)
    future = cosign_head(head_at(), NODE_B, [WITNESS_CERT], NOW + 3600)
    with pytest.raises(VerificationError, match="future"):
        verify_cosignature(future, trust_both(), NOW)
    body = Cosignature(NODE_B.peer_id, NODE_A.peer_id, 8, HASHES[0], NOW, NOW).encode_body()
    forged = seal(NODE_A, AUDIT_COSIGN_TAG, body, [LOG_CERT]).encode()
    with pytest.raises(ScopeError):
        verify_cosignature(forged, trust_both(), NOW)


# -- receipts ---------------------------------------------------------------------


def receipt_for(which: int, **changes: object) -> bytes:
    entries = [
        AuditEntry.create("decision", NOW + i, b"decision %d" % i, {"i": i}).encode()
        for i in range(6)
    ]
    leaves = [leaf_hash(e) for e in entries]
    head = TreeHead(NODE_A.peer_id, 6, merkle_root(leaves), NOW + 10)
    parts: dict[str, object] = {
        "head": sign_tree_head(head, NODE_A, [LOG_CERT]),
        "index": which,
        "proof": inclusion_proof(leaves, which),
        "entry": entries[which],
        "cosignatures": [cosign_head(head, NODE_B, [WITNESS_CERT], NOW + 20)],
    }
    parts.update(changes)
    return make_receipt(**parts)  # type: ignore[arg-type]


def test_receipt_verifies_offline() -> None:
    raw = receipt_for(3)
    verified = verify_receipt(raw, trust_both(), NOW + 30)
    assert verified.index == 3
    assert verified.entry.details == {"i": 3}
    assert verified.entry.record == b"decision 3"
    assert verified.head.head.size == 6
    assert verified.witness_orgs == {ORG_B.org_id}
    assert verify_receipt(decode_receipt(raw), trust_both(), NOW + 30) == verified


def test_receipt_refuses_the_wrong_entry_index_or_proof() -> None:
    other_entry = AuditEntry.create("decision", NOW + 4, b"decision 4", {"i": 4}).encode()
    with pytest.raises(VerificationError):
        verify_receipt(receipt_for(3, entry=other_entry), trust_both(), NOW + 30)
    with pytest.raises(VerificationError):
        verify_receipt(receipt_for(3, index=2), trust_both(), NOW + 30)
    good = decode_receipt(receipt_for(3))
    bad_proof = dataclasses.replace(good, proof=(good.proof[1], good.proof[0], *good.proof[2:]))
    with pytest.raises(VerificationError):
        verify_receipt(bad_proof, trust_both(), NOW + 30)
    with pytest.raises(InvalidInput):
        receipt_for(3, proof=[b"short"] * 3)
    fields = unpack(receipt_for(3), max_size=10**6)
    fields["proof"] = [b"short"] * 3
    with pytest.raises(DecodeError):
        verify_receipt(pack(fields), trust_both(), NOW + 30)


def test_receipt_refuses_a_cosignature_of_another_head() -> None:
    other = TreeHead(NODE_A.peer_id, 6, HASHES[0], NOW + 10)
    cosig = cosign_head(other, NODE_B, [WITNESS_CERT], NOW + 20)
    with pytest.raises(VerificationError, match="another tree head"):
        verify_receipt(receipt_for(1, cosignatures=[cosig]), trust_both(), NOW + 30)


def test_receipt_bounds() -> None:
    with pytest.raises(RecordTooLarge):
        Receipt(b"h", 0, (), b"e", (b"c",) * 9)
    with pytest.raises(RecordTooLarge):
        decode_receipt(b"\x00" * (80 * 1024 + 1))
    with pytest.raises(DecodeError):
        decode_receipt(pack([1, 2, 3]))
    with pytest.raises(DecodeError):
        decode_receipt(pack({"v": 1, "head": b"", "i": 0, "proof": [1], "entry": b"", "cosig": []}))
