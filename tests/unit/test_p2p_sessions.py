"""PeerSessions, the I/O half of admission, over in-memory streams (no sockets, no swarm)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from datanet.errors import NetworkError, PeerUnreachable, Timeout
from datanet.p2p import (
    MODE_KAD_SERVER,
    AdmissionRefused,
    Hello,
    HostLimits,
    KadServer,
    PeerConnected,
    PeerDisconnected,
    PeerEvent,
)
from datanet.p2p.addrbook import AddressBook
from datanet.p2p.admission import MAX_HELLO_SIZE, Refusal, decode_reply
from datanet.p2p.events import PeerEvents
from datanet.p2p.sessions import PeerSessions
from datanet.p2p.streams import FramedStream
from datanet.testing.clock import ManualClock
from datanet.testing.p2p import admission, cert_for, node_key, org_key
from datanet.testing.streams import framed_pair
from identity import TrustStore
from identity.keys import PeerId

ME, PEER = node_key(1), node_key(2)
ORG = org_key(1)
ADDR = "/ip4/10.0.0.2/tcp/4001"
LIMITS = HostLimits(hello_timeout=1.0)
OUR_HELLO = Hello((b"ours",), frozenset(), ())


def pipe() -> tuple[FramedStream, FramedStream]:
    return framed_pair("ours", "it")


class Rig:
    def __init__(self, mode: str, clock: ManualClock | None = None) -> None:
        trust = TrustStore()
        trust.trust(ORG.org_id)
        policy = admission(mode, ME, ORG, trust=trust, clock=clock or ManualClock())
        self.events: list[PeerEvent] = []
        hub = PeerEvents()
        hub.add_listener(self.events.append)
        self.spawned: list[str] = []
        self.closed: list[PeerId] = []
        self.sessions = PeerSessions(
            admission=policy,
            limits=LIMITS,
            book=AddressBook(ME.peer_id, per_peer=8),
            events=hub,
            own_hello=lambda: OUR_HELLO,
            open_stream=self._no_streams,
            close_peer=self._close_peer,
            start_soon=self._start_soon,
        )

    async def _no_streams(self, peer: PeerId, protocol: str) -> FramedStream:
        raise AssertionError("not used here")

    async def _close_peer(self, peer: PeerId) -> None:
        self.closed.append(peer)

    def _start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        name = getattr(fn, "__name__", repr(fn))
        self.spawned.append(name)

    async def hello(self, hello: Hello | bytes) -> bytes:
        """The peer dials us and sends ``hello`` on /datanet/id; returns our answer."""
        ours, theirs = pipe()
        frame = hello if isinstance(hello, bytes) else hello.encode()
        await theirs.write_frame(frame, MAX_HELLO_SIZE)
        await self.sessions.serve_id(ours, PEER.peer_id)
        return await theirs.read_required(MAX_HELLO_SIZE)


GOOD = Hello((cert_for(ORG, PEER),), frozenset({MODE_KAD_SERVER}), (ADDR,))


async def test_the_listener_answers_admits_and_announces() -> None:
    rig = Rig("closed")
    rig.sessions.connection_opened(PEER.peer_id, None, inbound=True)
    assert rig.spawned == ["_await_hello"]
    assert decode_reply(await rig.hello(GOOD)) == OUR_HELLO
    assert rig.events == [
        PeerConnected(PEER.peer_id, ORG.org_id, True, (ADDR,)),
        KadServer(PEER.peer_id, (ADDR,)),
    ]
    await rig.sessions.wait_admitted(PEER.peer_id, trio.current_time() + 1)
    p = rig.sessions.get(PEER.peer_id)
    assert p is not None
    assert await rig.sessions.gate(p)
    rig.sessions.last_connection_closed(PEER.peer_id)
    assert rig.events[-1] == PeerDisconnected(PEER.peer_id)
    assert rig.sessions.get(PEER.peer_id) is None
    with pytest.raises(PeerUnreachable):
        await rig.sessions.wait_admitted(PEER.peer_id, trio.current_time() + 1)


async def test_a_refused_dialer_gets_the_refusal_and_is_closed() -> None:
    rig = Rig("closed")
    rig.sessions.connection_opened(PEER.peer_id, None, inbound=True)
    untrusted = Hello((cert_for(org_key(3), PEER),), frozenset(), ())
    reply = decode_reply(await rig.hello(untrusted))
    assert isinstance(reply, Refusal)
    assert reply.code == "untrusted_organization"
    assert rig.events == []
    assert rig.spawned == ["_await_hello", "_close_peer"]
    with pytest.raises(AdmissionRefused, match="untrusted_organization"):
        await rig.sessions.wait_admitted(PEER.peer_id, trio.current_time() + 1)


async def test_a_certificate_that_expires_while_connected_loses_access() -> None:
    clock = ManualClock()
    rig = Rig("members", clock)
    rig.sessions.connection_opened(PEER.peer_id, None, inbound=True)
    await rig.hello(GOOD)
    clock.advance(7200)
    with pytest.raises(AdmissionRefused, match="no longer admitted"):
        await rig.sessions.wait_admitted(PEER.peer_id, trio.current_time() + 1)
    p = rig.sessions.get(PEER.peer_id)
    assert p is not None
    assert not await rig.sessions.gate(p)
    assert rig.spawned.count("_close_peer") == 1


async def test_waiting_for_an_undecided_peer_times_out() -> None:
    rig = Rig("closed")
    rig.sessions.connection_opened(PEER.peer_id, None, inbound=True)
    with pytest.raises(Timeout):
        await rig.sessions.wait_admitted(PEER.peer_id, trio.current_time() + 0.05)
    p = rig.sessions.get(PEER.peer_id)
    assert p is not None
    assert not p.session.decided


class _BrokenConnection:
    """A connection whose streams cannot be opened: ``error`` is raised instead."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def new_stream(self) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (Timeout("admission with it: timed out"), Timeout),
        (NetworkError("connection reset by peer"), NetworkError),
    ],
)
async def test_an_admission_exchange_that_breaks_is_a_network_failure_not_a_refusal(
    error: Exception, raised: type[Exception]
) -> None:
    # Under load, the dialer's hello exchange can time out or lose its connection.
    # That says nothing against the peer: callers (the audit witness, sync) must see a
    # network failure to retry later, not a refusal (the witness raised bad_proof).
    rig = Rig("closed")
    refused: list[PeerId] = []
    rig.sessions._on_refused = refused.append
    broken = _BrokenConnection(error)
    rig.sessions.connection_opened(PEER.peer_id, broken, inbound=False)
    assert rig.spawned == ["_exchange_hello"]
    p = rig.sessions.get(PEER.peer_id)
    assert p is not None
    await rig.sessions._exchange_hello(p, broken)
    with pytest.raises(raised, match=r"admission exchange with .* broke") as caught:
        await rig.sessions.wait_admitted(PEER.peer_id, trio.current_time() + 1)
    assert not isinstance(caught.value, AdmissionRefused)
    assert refused == []  # not remembered as a refusal either
