"""Peer ids and org ids: agreement with py-libp2p, did:key test vectors, parse errors."""

from __future__ import annotations

import base58
import pytest
from libp2p.crypto.ed25519 import Ed25519PrivateKey
from libp2p.peer.id import ID

from identity.errors import DecodeError, InvalidInput, SignatureError
from identity.keys import KeyPair, OrgId, PeerId, signing_input, verify_signature

# Published did:key Ed25519 test vectors: w3c-ccg/did-method-key,
# test-vectors/ed25519-x25519.json (seed -> did, publicKeyBase58). The seed is the
# raw 32-byte Ed25519 private key.
DID_KEY_VECTORS = [
    (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
        "4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000001",
        "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
        "6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000002",
        "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf",
        "8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH",
    ),
]


@pytest.mark.parametrize(("seed_hex", "did", "public_b58"), DID_KEY_VECTORS)
def test_did_key_matches_published_vectors(seed_hex: str, did: str, public_b58: str) -> None:
    key = KeyPair.from_seed(bytes.fromhex(seed_hex))
    assert str(key.org_id) == did
    assert key.public_key == base58.b58decode(public_b58)
    parsed = OrgId.parse(did)
    assert parsed.public_key == key.public_key
    assert str(parsed) == did


@pytest.mark.parametrize("seed", [bytes(32), bytes([7]) * 32, bytes(range(32))])
def test_peer_id_equals_py_libp2p(seed: bytes) -> None:
    theirs = ID.from_pubkey(Ed25519PrivateKey.from_bytes(seed).get_public_key())
    ours = KeyPair.from_seed(seed).peer_id
    assert str(ours) == theirs.to_base58()
    assert ours.to_bytes() == theirs.to_bytes()
    assert str(ours).startswith("12D3KooW")
    assert PeerId.parse(theirs.to_base58()) == ours
    assert PeerId.from_bytes(theirs.to_bytes()) == ours


def test_peer_id_round_trip(node_key: KeyPair) -> None:
    peer = node_key.peer_id
    assert PeerId.parse(str(peer)) == peer
    assert PeerId.from_bytes(peer.to_bytes()) == peer
    assert repr(peer) == f"PeerId({peer})"


def test_org_id_round_trip(org_key: KeyPair) -> None:
    org = org_key.org_id
    assert OrgId.parse(str(org)) == org
    assert str(org).startswith("did:key:z6Mk")
    assert repr(org) == f"OrgId({org})"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "did:key:",
        "did:key:z",
        "did:web:example.com",
        "did:key:6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",  # no multibase z
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW0",  # 0 is not base58
        "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",  # secp256k1 did:key
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDoo",  # truncated
        "did:key:z" + "1" * 200,  # too long
    ],
)
def test_org_id_parse_errors_are_decode_errors(text: str) -> None:
    with pytest.raises(DecodeError):
        OrgId.parse(text)


def test_org_id_parse_rejects_non_text() -> None:
    with pytest.raises(DecodeError):
        OrgId.parse(b"did:key:z6Mk")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "12D3KooW",
        "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",  # RSA-style sha256 peer id
        "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXT0",  # bad base58 char
        "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTNX",  # one char too many
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
    ],
)
def test_peer_id_parse_errors_are_decode_errors(text: str) -> None:
    with pytest.raises(DecodeError):
        PeerId.parse(text)


def test_public_key_must_be_32_bytes() -> None:
    with pytest.raises(DecodeError):
        PeerId(b"\x00" * 31)
    with pytest.raises(DecodeError):
        OrgId(b"\x00" * 33)


def test_seed_must_be_32_bytes() -> None:
    with pytest.raises(InvalidInput):
        KeyPair.from_seed(b"\x00" * 31)


def test_seed_round_trip(node_key: KeyPair) -> None:
    assert KeyPair.from_seed(node_key.seed()).public_key == node_key.public_key


def test_sign_verify_round_trip(node_key: KeyPair) -> None:
    sig = node_key.sign("dn/test/v1", b"body")
    verify_signature(node_key.public_key, "dn/test/v1", b"body", sig)


def test_signature_is_bound_to_tag_and_body_and_key(
    node_key: KeyPair, other_node_key: KeyPair
) -> None:
    sig = node_key.sign("dn/test/v1", b"body")
    for key, tag, body in [
        (node_key.public_key, "dn/other/v1", b"body"),
        (node_key.public_key, "dn/test/v1", b"bodx"),
        (other_node_key.public_key, "dn/test/v1", b"body"),
    ]:
        with pytest.raises(SignatureError):
            verify_signature(key, tag, body, sig)


def test_signing_input_is_unambiguous() -> None:
    # The tag is length-prefixed: moving bytes between tag and body changes the input.
    assert signing_input("ab", b"c") != signing_input("a", b"bc")
    assert signing_input("t", b"x").startswith(b"datanet-sig-v1\x00")
