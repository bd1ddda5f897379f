"""Request/response protocols on /datanet/<name>/<version>, and junk floods."""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio

from datanet.errors import InvalidInput, NetworkError, ScopeError
from datanet.p2p import (
    AdmissionRefused,
    KadServer,
    PeerConnected,
    PeerDisconnected,
    ProtocolNotSupported,
    RemoteError,
    open_host,
)
from datanet.p2p._libp2p import to_libp2p_id
from datanet.p2p.streams import MULTISTREAM_ID, FramedStream
from datanet.testing.p2p import FAST, LOCAL, admission, node_key, org_key
from identity.keys import PeerId
from routing.wire import Message, MessageType, encode_frame

ORG = org_key(1)
ECHO = "/datanet/echo/1.0.0"


async def serve_kad(msg: Message, from_peer: bytes) -> Message:
    return Message(type=msg.type, key=msg.key)


def keys_and_policies(n: int) -> list[tuple[Any, Any]]:
    return [(node_key(i), admission("members", node_key(i), ORG)) for i in range(1, n + 1)]


async def test_request_response_roundtrip_errors_and_limits() -> None:
    (ka, pa), (kb, pb) = keys_and_policies(2)
    async with (
        open_host(ka, LOCAL, pa, limits=FAST) as a,
        open_host(kb, LOCAL, pb, limits=FAST) as b,
    ):
        seen: list[bytes] = []

        async def echo(request: Any, from_peer: bytes) -> Any:
            seen.append(from_peer)
            if request == "refuse":
                raise ScopeError("not for you")
            if request == "slow":
                await trio.sleep(5)
            return {"echo": request}

        b.set_protocol_handler(ECHO, echo, max_size=1024, timeout=0.3)
        assert await a.request(b.peer_id, ECHO, [1, b"2"], addrs=b.listen_addrs()) == {
            "echo": [1, b"2"]
        }
        assert seen == [a.peer_id.to_bytes()]

        with pytest.raises(RemoteError) as refused:
            await a.request(b.peer_id, ECHO, "refuse")
        assert refused.value.remote_code == "wrong_scope"
        with pytest.raises(RemoteError) as slow:
            await a.request(b.peer_id, ECHO, "slow")
        assert slow.value.remote_code == "timeout"
        with pytest.raises(NetworkError):  # over the server's 1 KiB limit: reset
            await a.request(b.peer_id, ECHO, b"x" * 4000, max_size=8000)
        with pytest.raises(ProtocolNotSupported):
            await a.request(b.peer_id, "/datanet/other/1.0.0", 1)
        with pytest.raises(InvalidInput):
            b.set_protocol_handler("/datanet/kad/1.0.0", echo)
        with pytest.raises(InvalidInput):
            await a.request(b.peer_id, "/ipfs/id/1.0.0", 1)


async def test_a_peer_flooding_junk_streams_does_not_stall_others() -> None:
    (ka, pa), (kb, pb), (kc, pc) = keys_and_policies(3)

    async def serve(msg: Message, from_peer: bytes) -> Message:
        return Message(type=msg.type, key=msg.key)

    async with (
        open_host(ka, LOCAL, pa, limits=FAST) as server,
        open_host(kb, LOCAL, pb, limits=FAST) as flooder,
        open_host(kc, LOCAL, pc, limits=FAST) as honest,
    ):
        server.kad.set_handler(serve)
        await flooder.connect(server.peer_id, server.listen_addrs())
        await honest.connect(server.peer_id, server.listen_addrs())
        junk_streams = 0
        refused = 0

        async def flood() -> None:
            nonlocal junk_streams, refused
            for i in range(60):
                try:
                    raw = await flooder._swarm.new_stream(to_libp2p_id(server.peer_id))
                    junk = [encode_frame(MULTISTREAM_ID.encode() + b"\n"), b"\xff" * 64]
                    await raw.write(junk[i % 2])
                    junk_streams += 1
                except Exception:
                    refused += 1

        latencies: list[float] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood)
            for i in range(20):
                start = time.perf_counter()
                reply = await honest.kad.request(
                    server.peer_id, Message(type=MessageType.FIND_NODE, key=b"%d" % i)
                )
                latencies.append(time.perf_counter() - start)
                assert reply.key == b"%d" % i
        assert max(latencies) < 0.5, latencies
        assert junk_streams + refused == 60
        assert server.kad.requests_served == 20


async def test_a_service_on_the_public_surface() -> None:
    """What gossip or access requests will do: a gated stream protocol and a peer listener."""
    (ka, pa), (kb, pb) = keys_and_policies(2)
    kc = node_key(3)
    pc = admission("members", kc, None)  # no certificate: never admitted
    async with (
        open_host(ka, LOCAL, pa, limits=FAST) as a,
        open_host(kb, LOCAL, pb, limits=FAST) as b,
        open_host(kc, LOCAL, pc, limits=FAST) as c,
    ):
        seen: list[object] = []
        b.add_peer_listener(seen.append)
        served: list[bytes] = []

        async def echo_frames(stream: FramedStream, peer: PeerId) -> None:
            served.append(peer.to_bytes())
            while (frame := await stream.read_frame(64)) is not None:
                await stream.write_frame(frame, 64)
            await stream.close()

        b.set_stream_handler("/datanet/echo-stream/1.0.0", echo_frames)
        a.kad.set_handler(serve_kad)
        b.kad.set_handler(serve_kad)
        stream = await a.open_stream(
            b.peer_id, "/datanet/echo-stream/1.0.0", addrs=b.listen_addrs()
        )
        with trio.fail_after(3):
            for word in (b"one", b"two"):
                await stream.write_frame(word, 64)
                assert await stream.read_frame(64) == word
            await stream.close()
        assert served == [a.peer_id.to_bytes()]
        await b.kad.request(a.peer_id, Message(type=MessageType.FIND_NODE, key=b"k"))
        assert b.kad.open_streams() == 1

        with pytest.raises(AdmissionRefused):
            await c.open_stream(b.peer_id, "/datanet/echo-stream/1.0.0", addrs=b.listen_addrs())
        assert served == [a.peer_id.to_bytes()]

        await b.disconnect(a.peer_id)
        with trio.fail_after(3):
            while PeerDisconnected(a.peer_id) not in seen:
                await trio.sleep(0.01)
        assert [type(e) for e in seen] == [PeerConnected, KadServer, PeerDisconnected]
        assert b.kad.open_streams() == 0  # the kad service heard it too
