"""Signed envelopes: round trip, wrong tag, oversize, and every single-bit flip rejected."""

from __future__ import annotations

import pytest

from identity.certs import (
    CERT_TAG,
    MAX_CERT_SIZE,
    Role,
    issue_certificate,
    issue_revocation,
    parse_certificate,
    parse_revocation,
)
from identity.encoding import pack
from identity.envelope import MAX_CHAIN, SignedEnvelope, open_envelope, seal
from identity.errors import DatanetError, DecodeError, RecordTooLarge, SignatureError
from identity.keys import KeyPair

TAG = "dn/test/v1"


def test_seal_open_round_trip(node_key: KeyPair) -> None:
    env = seal(node_key, TAG, b"hello", chain=[b"c1"])
    data = env.encode()
    opened = open_envelope(data, tag=TAG, max_size=1024)
    assert opened == env
    assert opened.signer == node_key.public_key
    assert opened.chain == (b"c1",)
    assert opened.encode() == data  # ship the bytes: re-encoding is stable


def test_wrong_tag_rejected(node_key: KeyPair) -> None:
    data = seal(node_key, TAG, b"hello").encode()
    with pytest.raises(DecodeError, match="expected a dn/other/v1 record"):
        open_envelope(data, tag="dn/other/v1", max_size=1024)


def test_signature_for_one_tag_never_validates_as_another(node_key: KeyPair) -> None:
    # Re-label an envelope with another tag, keeping the signature: must fail.
    env = seal(node_key, TAG, b"hello")
    forged = SignedEnvelope("dn/other/v1", env.body, env.signer, env.signature).encode()
    with pytest.raises(SignatureError):
        open_envelope(forged, tag="dn/other/v1", max_size=1024)


def test_oversized_rejected(node_key: KeyPair) -> None:
    data = seal(node_key, TAG, b"x" * 2000).encode()
    with pytest.raises(RecordTooLarge):
        open_envelope(data, tag=TAG, max_size=1024)


def test_signer_swap_rejected(node_key: KeyPair, other_node_key: KeyPair) -> None:
    env = seal(node_key, TAG, b"hello")
    forged = SignedEnvelope(TAG, env.body, other_node_key.public_key, env.signature).encode()
    with pytest.raises(SignatureError):
        open_envelope(forged, tag=TAG, max_size=1024)


@pytest.mark.parametrize(
    "obj",
    [
        [],
        {"a": 1},
        [1, TAG, b"b", b"s" * 32, b"g" * 64],  # five items
        [2, TAG, b"b", b"s" * 32, b"g" * 64, []],  # version
        [1, TAG, "text body", b"s" * 32, b"g" * 64, []],
        [1, TAG, b"b", b"s" * 31, b"g" * 64, []],
        [1, TAG, b"b", b"s" * 32, b"g" * 63, []],
        [1, TAG, b"b", b"s" * 32, b"g" * 64, [b"c"] * (MAX_CHAIN + 1)],
        [1, TAG, b"b", b"s" * 32, b"g" * 64, ["not bytes"]],
        [1, TAG, b"b", b"s" * 32, b"g" * 64, b"not a list"],
        [1, 7, b"b", b"s" * 32, b"g" * 64, []],
    ],
)
def test_malformed_structures_are_decode_errors(obj: object) -> None:
    with pytest.raises(DecodeError):
        open_envelope(pack(obj), tag=TAG, max_size=1024)


def test_garbage_and_trailing_bytes_rejected(node_key: KeyPair) -> None:
    data = seal(node_key, TAG, b"hello").encode()
    for bad in (b"", b"\xc1", data[:-1], data + b"\x00", b"\xff" * 10):
        with pytest.raises(DecodeError):
            open_envelope(bad, tag=TAG, max_size=1024)


def _every_bit_flip(data: bytes) -> list[bytes]:
    out = []
    for i in range(len(data)):
        for bit in range(8):
            b = bytearray(data)
            b[i] ^= 1 << bit
            out.append(bytes(b))
    return out


def test_every_bit_flip_of_a_certificate_is_rejected(
    org_key: KeyPair, node_key: KeyPair, now: int
) -> None:
    data = issue_certificate(
        org_key,
        node_key.peer_id,
        {Role.PUBLISHER, Role.GATEWAY},
        not_before=now,
        not_after=now + 86400,
        serial=7,
        org_name="acme",
    )
    parse_certificate(data)  # the original is fine
    for flipped in _every_bit_flip(data):
        with pytest.raises(DatanetError):
            parse_certificate(flipped)


def test_every_bit_flip_of_a_revocation_is_rejected(org_key: KeyPair, now: int) -> None:
    data = issue_revocation(org_key, [1, 5, 9], sequence=3, issued_at=now, reason="lost laptop")
    parse_revocation(data)
    for flipped in _every_bit_flip(data):
        with pytest.raises(DatanetError):
            parse_revocation(flipped)


def test_certificate_size_limit(org_key: KeyPair, node_key: KeyPair, now: int) -> None:
    data = issue_certificate(
        org_key, node_key.peer_id, {Role.ADMIN}, not_before=now, not_after=now + 1, serial=1
    )
    assert len(data) < MAX_CERT_SIZE
    with pytest.raises(RecordTooLarge):
        parse_certificate(data + b"\x00" * MAX_CERT_SIZE)
    big = seal(org_key, CERT_TAG, b"\x00" * (MAX_CERT_SIZE + 1)).encode()
    with pytest.raises(RecordTooLarge):
        parse_certificate(big)


def test_every_byte_value_in_the_header_is_rejected(org_key: KeyPair, now: int) -> None:
    # Regression: a version of True (0xc3) used to pass as 1, since True == 1.
    data = issue_revocation(org_key, [1], sequence=1, issued_at=now)
    for i in range(16):  # array header, version, tag, body header
        for mask in range(1, 256):
            b = bytearray(data)
            b[i] ^= mask
            with pytest.raises(DatanetError):
                parse_revocation(bytes(b))


def test_version_true_is_not_version_one(node_key: KeyPair) -> None:
    env = seal(node_key, TAG, b"x")
    data = pack([True, TAG, env.body, env.signer, env.signature, []])
    with pytest.raises(DecodeError, match="version"):
        open_envelope(data, tag=TAG, max_size=1024)


def test_non_canonical_encodings_rejected(node_key: KeyPair) -> None:
    # Regression: the same signed record must have exactly one wire form.
    data = seal(node_key, TAG, b"x").encode()
    assert data[1] == 0x01
    assert data[2] == 0xA0 | len(TAG)
    for alt in (
        data[:1] + b"\xcc\x01" + data[2:],  # version as uint8
        data[:2] + bytes([0xD9, len(TAG)]) + data[3:],  # tag as str8
        b"\xdc\x00\x06" + data[1:],  # array16 header
    ):
        with pytest.raises(DecodeError, match="canonical"):
            open_envelope(alt, tag=TAG, max_size=1024)
