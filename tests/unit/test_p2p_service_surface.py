"""Services use only the host's service surface: checked in the source, and by running
the kad service on a fake host made of in-memory streams."""

from __future__ import annotations

import ast
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import datanet.p2p
from datanet.errors import InvalidInput
from datanet.p2p import (
    KAD_PROTOCOL,
    Admission,
    AdmissionMode,
    Host,
    HostLimits,
    KadService,
    PeerConnected,
    PeerDisconnected,
    PeerEvent,
    PeerListener,
    ServiceHost,
    StreamHandler,
)
from datanet.p2p.streams import FramedStream
from datanet.testing.streams import framed_pair
from identity import KeyPair, TrustStore
from identity.keys import PeerId
from routing.wire import Message, MessageType

P2P = Path(datanet.p2p.__file__).parent
SERVICES = ["kad.py", "rpc.py", "sync.py", "gossip.py"]
HOST_SIDE = ["host.py", "sessions.py", "inbound.py", "peer.py"]


def private_uses(path: Path, owner: Callable[[ast.expr], bool]) -> list[str]:
    """``x._name`` accesses in ``path`` whose ``x`` satisfies ``owner``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and owner(node.value)
        ):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def is_host(expr: ast.expr) -> bool:
    if isinstance(expr, ast.Name):
        return expr.id == "host"
    return isinstance(expr, ast.Attribute) and expr.attr == "_host"


def is_kad(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Attribute) and expr.attr == "kad"


@pytest.mark.parametrize("name", SERVICES)
def test_services_never_touch_private_host_members(name: str) -> None:
    assert private_uses(P2P / name, is_host) == []


@pytest.mark.parametrize("name", HOST_SIDE)
def test_the_host_never_touches_private_service_members(name: str) -> None:
    assert private_uses(P2P / name, is_kad) == []


def test_no_module_of_the_adapter_is_too_long() -> None:
    for path in P2P.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 620, path.name


def test_the_host_implements_the_service_surface() -> None:
    policy = Admission(AdmissionMode.OPEN, TrustStore())
    host: ServiceHost = Host(KeyPair.from_seed(b"h" * 32), policy, limits=HostLimits())
    for name in ("/datanet/id/1.0.0", "/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"):
        with pytest.raises(InvalidInput):
            host.set_stream_handler(name, serve_nothing)
    with pytest.raises(InvalidInput):
        host.set_stream_handler("no-slash", serve_nothing)


async def serve_nothing(stream: FramedStream, peer: PeerId) -> None:
    await stream.reset()


# ------------------------------------------------------------ a fake host


class FakeHost:
    """A ServiceHost whose streams are in-memory pipes to other fake hosts."""

    def __init__(self, seed: bytes, nursery: trio.Nursery, world: dict[PeerId, FakeHost]) -> None:
        self.peer_id = KeyPair.from_seed(seed * 32).peer_id
        self.limits = HostLimits()
        self.handlers: dict[str, tuple[StreamHandler, bool]] = {}
        self.listeners: list[PeerListener] = []
        self.opened = 0
        self._nursery = nursery
        self._world = world
        world[self.peer_id] = self

    def set_stream_handler(
        self, protocol: str, handler: StreamHandler, *, gated: bool = True
    ) -> None:
        self.handlers[protocol] = (handler, gated)

    async def open_stream(
        self,
        peer: PeerId | bytes,
        protocol: str,
        *,
        timeout: float | None = None,
        addrs: Sequence[str] = (),
    ) -> FramedStream:
        assert isinstance(peer, PeerId)
        assert timeout is not None
        assert timeout > 0
        handler, _ = self._world[peer].handlers[protocol]
        ours, theirs = framed_pair(f"{protocol} to {peer}", "in")
        self._nursery.start_soon(handler, theirs, self.peer_id)
        self.opened += 1
        return ours

    def add_peer_listener(self, listener: PeerListener) -> None:
        self.listeners.append(listener)

    def remove_peer_listener(self, listener: PeerListener) -> None:
        self.listeners.remove(listener)

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self._nursery.start_soon(fn, *args)

    def add_addrs(self, peer: PeerId | bytes, addrs: Sequence[str]) -> None:
        return None

    def is_connected(self, peer: PeerId | bytes) -> bool:
        return True

    def emit(self, event: PeerEvent) -> None:
        for listener in self.listeners:
            listener(event)


async def test_the_kad_service_runs_on_any_service_host() -> None:
    async def serve(msg: Message, from_peer: bytes) -> Message:
        return Message(type=msg.type, key=b"seen:" + msg.key)

    world: dict[PeerId, FakeHost] = {}
    async with trio.open_nursery() as nursery:
        client, server = FakeHost(b"c", nursery, world), FakeHost(b"s", nursery, world)
        client_kad, server_kad = KadService(client), KadService(server)
        server_kad.set_handler(serve)
        assert server.handlers[KAD_PROTOCOL][1] is True  # registered gated
        assert len(client.listeners) == 1

        find = Message(type=MessageType.FIND_NODE, key=b"k")
        for _ in range(3):
            assert (await client_kad.request(server.peer_id, find)).key == b"seen:k"
        assert client.opened == 1  # one long-lived stream per peer
        assert client_kad.open_streams() == 1
        assert server_kad.requests_served == 3

        client.emit(PeerConnected(server.peer_id, None, False))
        assert client_kad.open_streams() == 1
        client.emit(PeerDisconnected(server.peer_id))  # the stream is dead: forget it
        assert client_kad.open_streams() == 0
        assert (await client_kad.request(server.peer_id, find)).key == b"seen:k"
        assert client.opened == 2
        nursery.cancel_scope.cancel()
