"""The host's address book: announced addresses, limits, unspecified hosts."""

from __future__ import annotations

import pytest

from datanet.errors import InvalidInput
from datanet.p2p import Admission, AdmissionMode, Host, HostLimits
from identity import KeyPair, TrustStore

ME = KeyPair.from_seed(b"h" * 32)
PEER = KeyPair.from_seed(b"q" * 32).peer_id
OTHER = KeyPair.from_seed(b"r" * 32).peer_id


def host(**limits: int) -> Host:
    policy = Admission(AdmissionMode.OPEN, TrustStore())
    return Host(ME, policy, limits=HostLimits(**limits))  # not started: no sockets


def test_announced_unspecified_addresses_use_the_observed_ip() -> None:
    h = host()
    got = h._remember_announced(
        PEER,
        ["/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4002", "/ip4/10.1.2.3/tcp/4003", "junk"],
        "192.0.2.7",
    )
    assert got == ("/ip4/192.0.2.7/tcp/4001", "/ip4/10.1.2.3/tcp/4003")
    assert h.peer_addrs(PEER) == list(got)
    assert h._remember_announced(OTHER, ["/ip4/0.0.0.0/tcp/1"], None) == ()


def test_address_book_keeps_newest_first_and_bounded() -> None:
    h = host(max_peer_addrs=3)
    h.add_addrs(PEER, [f"/ip4/10.0.0.{i}/tcp/1" for i in range(5)])
    assert len(h.peer_addrs(PEER)) == 3
    h.add_addrs(PEER.to_bytes(), [f"/ip4/10.9.9.9/tcp/1/p2p/{PEER}"])
    assert h.peer_addrs(PEER)[0] == "/ip4/10.9.9.9/tcp/1"
    with pytest.raises(InvalidInput):
        h.add_addrs(PEER, [f"/ip4/10.9.9.9/tcp/1/p2p/{OTHER}"])
    with pytest.raises(InvalidInput):
        h.add_addrs(PEER, ["/ip4/10.9.9.9/udp/1"])
    h.add_addrs(ME.peer_id, ["/ip4/10.0.0.1/tcp/1"])  # never our own
    assert h.peer_addrs(ME.peer_id) == []


def test_limits_are_checked() -> None:
    with pytest.raises(InvalidInput):
        HostLimits(inbound_streams_per_peer=0)
    with pytest.raises(InvalidInput):
        HostLimits(request_timeout=0)
