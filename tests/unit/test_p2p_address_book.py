"""The host's address book: announced addresses, limits, unspecified hosts, the peer bound."""

from __future__ import annotations

import pytest

from datanet.errors import InvalidInput
from datanet.p2p import Admission, AdmissionMode, Host, HostLimits
from datanet.p2p.addrbook import ADDR_BOOK_PEERS, AddressBook
from datanet.p2p.addrs import TcpAddr
from identity import KeyPair, TrustStore
from identity.keys import PeerId

ME = KeyPair.from_seed(b"h" * 32)
PEER = KeyPair.from_seed(b"q" * 32).peer_id
OTHER = KeyPair.from_seed(b"r" * 32).peer_id


def host(**limits: int) -> Host:
    policy = Admission(AdmissionMode.OPEN, TrustStore())
    return Host(ME, policy, limits=HostLimits(**limits))  # not started: no sockets


def test_announced_unspecified_addresses_use_the_observed_ip() -> None:
    book = AddressBook(ME.peer_id, per_peer=8)
    got = book.remember_announced(
        PEER,
        ["/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4002", "/ip4/10.1.2.3/tcp/4003", "junk"],
        "192.0.2.7",
    )
    assert got == ("/ip4/192.0.2.7/tcp/4001", "/ip4/10.1.2.3/tcp/4003")
    assert book.transports(PEER) == got
    assert book.remember_announced(OTHER, ["/ip4/0.0.0.0/tcp/1"], None) == ()
    assert OTHER not in book
    # an address naming another peer is not this peer's
    assert book.remember_announced(OTHER, [f"/ip4/10.0.0.1/tcp/1/p2p/{PEER}"]) == ()


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


def test_address_book_forgets_the_least_recently_updated_peer_past_its_bound() -> None:
    book = AddressBook(ME.peer_id, per_peer=2, max_peers=3)
    peers = [KeyPair.from_seed(bytes([i]) * 32).peer_id for i in range(5)]
    addr = TcpAddr("ip4", "10.0.0.1", 1)
    for p in peers[:3]:
        book.remember(p, [addr])
    book.remember(peers[0], [TcpAddr("ip4", "10.0.0.2", 1)])  # peers[0] is fresh again
    book.remember(peers[3], [addr])
    assert len(book) == 3
    assert peers[1] not in book
    assert peers[0] in book
    assert book.transports(peers[0]) == ("/ip4/10.0.0.2/tcp/1", "/ip4/10.0.0.1/tcp/1")
    book.remember(peers[4], [addr, TcpAddr("ip4", "10.0.0.3", 1), TcpAddr("ip4", "10.0.0.4", 1)])
    assert len(book) == 3
    assert len(book.get(peers[4])) == 2


def test_the_hosts_address_book_holds_at_most_20000_peers() -> None:
    assert ADDR_BOOK_PEERS == 20_000
    h = host(max_peer_addrs=1)
    # peers learnt from kad responses and hellos never grow it past the bound
    peers = [PeerId((i + 1).to_bytes(32, "big")) for i in range(ADDR_BOOK_PEERS + 100)]
    for peer in peers:
        h.add_addrs(peer, ["/ip4/10.0.0.1/tcp/1"])
    assert len(h._book) == ADDR_BOOK_PEERS
    assert h.peer_addrs(peers[99]) == []  # the oldest are forgotten first
    assert h.peer_addrs(peers[100]) == ["/ip4/10.0.0.1/tcp/1"]
    assert h.peer_addrs(peers[-1]) == ["/ip4/10.0.0.1/tcp/1"]


def test_limits_are_checked() -> None:
    with pytest.raises(InvalidInput):
        HostLimits(inbound_streams_per_peer=0)
    with pytest.raises(InvalidInput):
        HostLimits(request_timeout=0)
    with pytest.raises(InvalidInput):
        AddressBook(ME.peer_id, per_peer=0)
