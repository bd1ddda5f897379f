"""Multiaddr parsing and the binary form carried in kad messages."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datanet.p2p import addr_from_bytes, addr_to_bytes, parse_addr
from identity import KeyPair
from identity.errors import DecodeError, InvalidInput

PEER = KeyPair.from_seed(b"p" * 32).peer_id


@pytest.mark.parametrize(
    "text",
    [
        "/ip4/127.0.0.1/tcp/4001",
        "/ip6/::1/tcp/1",
        "/dns4/node-1.example.org/tcp/443",
        "/dns/localhost/tcp/65535",
        f"/ip4/10.0.0.5/tcp/4001/p2p/{PEER}",
    ],
)
def test_good_addresses_roundtrip(text: str) -> None:
    parsed = parse_addr(text)
    assert str(parsed) == text
    assert addr_from_bytes(addr_to_bytes(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "/ip4/127.0.0.1",
        "/ip4/300.0.0.1/tcp/1",
        "/ip4/127.0.0.1/udp/1",
        "/ip4/127.0.0.1/tcp/70000",
        "/ip4/127.0.0.1/tcp/0",
        "/ip4/127.0.0.1/tcp/1/p2p/QmNotAnEd25519Id",
        "/ip4/127.0.0.1/tcp/1/ws",
        "/dns4/bad_host!/tcp/1",
        "/unix/tmp/sock",
        "ip4/127.0.0.1/tcp/1",
        "/ip4/127.0.0.1/tcp/1" + "/x" * 200,
    ],
)
def test_bad_addresses_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_addr(text)


def test_port_zero_only_for_listening() -> None:
    assert parse_addr("/ip4/0.0.0.0/tcp/0", allow_port_zero=True).port == 0


def test_truncated_binary_multiaddr_refused() -> None:
    good = addr_to_bytes("/ip4/127.0.0.1/tcp/4001")
    for cut in range(1, len(good)):
        with pytest.raises(DecodeError):
            addr_from_bytes(good[:cut])
    with pytest.raises(DecodeError):
        addr_from_bytes(bytes.fromhex("0401"))  # py-multiaddr reads this as /ip4/0.0.0.1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_binary_multiaddr_fuzz_raises_only_decode_error(data: bytes) -> None:
    try:
        text = addr_from_bytes(data)
    except DecodeError:
        return
    assert addr_to_bytes(text) == data
