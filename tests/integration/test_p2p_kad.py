"""/datanet/kad/1.0.0 with real hosts: long-lived streams, limits, junk, timeouts."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import replace

import pytest
import trio

from datanet.errors import (
    NetworkError,
    PeerUnreachable,
    RemoteProtocolError,
    Timeout,
    VerificationError,
)
from datanet.p2p import KAD_PROTOCOL, Host, HostLimits, ProtocolNotSupported
from datanet.p2p.streams import FramedStream
from datanet.testing.p2p import FAST, member_hosts, node_key, org_key
from routing.wire import Message, MessageType, Record, encode_frame, encode_message

ORG = org_key(1)
FIND = Message(type=MessageType.FIND_NODE, key=b"k")


def two_hosts(
    server_limits: HostLimits = FAST, client_limits: HostLimits = FAST
) -> AbstractAsyncContextManager[tuple[Host, Host]]:
    return member_hosts(ORG, client_limits=client_limits, server_limits=server_limits)


async def exchange(stream: FramedStream, data: bytes) -> bytes:
    await stream.write(data)
    return await stream.read_required(1000)


async def echo(msg: Message, from_peer: bytes) -> Message:
    return Message(type=msg.type, key=msg.key + b"/" + from_peer[-2:])


async def test_one_long_lived_stream_per_peer() -> None:
    async with two_hosts() as (client, server):
        server.kad.set_handler(echo)
        tail = client.peer_id.to_bytes()[-2:]
        for i in range(5):
            reply = await client.kad.request(server.peer_id, replace(FIND, key=b"%d" % i))
            assert reply.key == b"%d/" % i + tail
        assert client.kad.open_streams() == 1
        assert server.kad.streams_accepted == 1
        assert server.kad.requests_served == 5


async def test_concurrent_requests_share_the_stream_in_turn() -> None:
    async def slowish(msg: Message, from_peer: bytes) -> Message:
        await trio.sleep(0.01)
        return Message(type=msg.type, key=msg.key)

    async with two_hosts() as (client, server):
        server.kad.set_handler(slowish)
        answers: dict[int, bytes] = {}

        async def ask(i: int) -> None:
            answers[i] = (
                await client.kad.request(server.peer_id, replace(FIND, key=b"%d" % i))
            ).key

        async with trio.open_nursery() as nursery:
            for i in range(10):
                nursery.start_soon(ask, i)
        assert answers == {i: b"%d" % i for i in range(10)}
        assert server.kad.streams_accepted == 1


async def test_stream_closed_when_idle_is_reopened_transparently() -> None:
    async with two_hosts(server_limits=replace(FAST, kad_idle_timeout=0.2)) as (client, server):
        server.kad.set_handler(echo)
        await client.kad.request(server.peer_id, FIND)
        await trio.sleep(0.5)  # the server closed the idle stream meanwhile
        await client.kad.request(server.peer_id, FIND)
        assert server.kad.streams_accepted == 2
        assert server.kad.requests_served == 2


async def test_client_timeout_resets_the_stream_and_late_answers_are_never_read() -> None:
    delays = [0.5, 0.0]

    async def sometimes_slow(msg: Message, from_peer: bytes) -> Message:
        await trio.sleep(delays.pop(0))
        return Message(type=msg.type, key=msg.key)

    async with two_hosts() as (client, server):
        server.kad.set_handler(sometimes_slow)
        with pytest.raises(Timeout):
            await client.kad.request(server.peer_id, replace(FIND, key=b"first"), timeout=0.1)
        reply = await client.kad.request(server.peer_id, replace(FIND, key=b"second"))
        assert reply.key == b"second"


async def test_handler_timeout_resets_only_that_stream() -> None:
    async def stuck(msg: Message, from_peer: bytes) -> Message:
        if msg.key == b"stuck":
            await trio.sleep(10)
        return Message(type=msg.type, key=msg.key)

    async with two_hosts(server_limits=replace(FAST, handler_timeout=0.2)) as (client, server):
        server.kad.set_handler(stuck)
        with pytest.raises(NetworkError):
            await client.kad.request(server.peer_id, replace(FIND, key=b"stuck"))
        assert (await client.kad.request(server.peer_id, FIND)).key == b"k"


async def test_refused_request_resets_the_stream() -> None:
    async def refuse(msg: Message, from_peer: bytes) -> Message:
        raise VerificationError("forged record")

    async with two_hosts() as (client, server):
        server.kad.set_handler(refuse)
        with pytest.raises(NetworkError):
            await client.kad.request(server.peer_id, FIND)
        assert client.is_connected(server.peer_id)


async def test_wrong_response_type_is_a_protocol_error() -> None:
    async def confused(msg: Message, from_peer: bytes) -> Message:
        return Message(type=MessageType.PING)

    async with two_hosts() as (client, server):
        server.kad.set_handler(confused)
        with pytest.raises(RemoteProtocolError, match="got a PING"):
            await client.kad.request(server.peer_id, FIND)


async def test_messages_without_response() -> None:
    got: list[Message] = []

    async def providers(msg: Message, from_peer: bytes) -> Message | None:
        got.append(msg)
        return None if msg.type == MessageType.ADD_PROVIDER else Message(type=msg.type)

    async with two_hosts() as (client, server):
        server.kad.set_handler(providers)
        await client.kad.send(server.peer_id, Message(type=MessageType.ADD_PROVIDER, key=b"p"))
        ping = await client.kad.request(server.peer_id, Message(type=MessageType.PING))
        assert ping.type == MessageType.PING
        assert [m.type for m in got] == [MessageType.ADD_PROVIDER, MessageType.PING]


async def test_peer_without_kad_handler() -> None:
    async with two_hosts() as (client, server):
        with pytest.raises(ProtocolNotSupported):
            await client.kad.request(server.peer_id, FIND)


async def test_junk_and_oversized_frames_reset_only_their_stream() -> None:
    async with two_hosts() as (client, server):
        server.kad.set_handler(echo)
        await client.kad.request(server.peer_id, FIND)  # the long-lived stream is open

        junk = await client.open_stream(server.peer_id, KAD_PROTOCOL)
        await junk.write(encode_frame(b"\xff\xff\xff\xff"))
        with pytest.raises(NetworkError):
            await junk.read_required(1000)

        huge = Message(
            type=MessageType.PUT_VALUE,
            key=b"/dn/x",
            record=Record(key=b"/dn/x", value=b"v" * (1 << 20)),
        )
        payload = encode_message(huge, max_size=2 << 20, limits=_no_limits())
        big = await client.open_stream(server.peer_id, KAD_PROTOCOL)
        with pytest.raises(NetworkError):
            await exchange(big, encode_frame(payload, max_size=2 << 20))

        served = server.kad.requests_served
        assert (await client.kad.request(server.peer_id, FIND)).type == MessageType.FIND_NODE
        assert server.kad.requests_served == served + 1  # junk never reached the handler
        assert client.kad.open_streams() == 1


async def test_per_peer_inbound_stream_limit() -> None:
    release = trio.Event()

    async def hold(msg: Message, from_peer: bytes) -> Message:
        await release.wait()
        return Message(type=msg.type, key=msg.key)

    limits = replace(FAST, inbound_streams_per_peer=3)
    async with two_hosts(server_limits=limits) as (client, server):
        server.kad.set_handler(hold)
        await client.connect(server.peer_id)
        streams = [await client.open_stream(server.peer_id, KAD_PROTOCOL) for _ in range(3)]
        for s in streams:
            await s.write(encode_frame(encode_message(FIND)))
        with trio.fail_after(3):
            while server.kad.requests_served < 3:
                await trio.sleep(0.01)

        async def ask_a_fourth_time() -> None:
            fourth = await client.open_stream(server.peer_id, KAD_PROTOCOL)
            await exchange(fourth, encode_frame(encode_message(FIND)))

        # reset as soon as it was negotiated: the opening itself may already see that
        with pytest.raises(NetworkError):
            await ask_a_fourth_time()
        assert server.kad.requests_served == 3
        release.set()
        for s in streams[:3]:
            assert (await s.read_required(1000))[:2] == b"\x08\x04"


def _no_limits():  # type: ignore[no-untyped-def]
    from routing.wire import WireLimits

    return WireLimits(max_value_size=4 << 20)


async def test_unreachable_peers_leave_no_state_behind() -> None:
    async with two_hosts() as (client, server):
        ghost = node_key(99).peer_id
        with pytest.raises(PeerUnreachable):
            await client.kad.request(ghost, FIND, addrs=["/ip4/127.0.0.1/tcp/9"])
        with pytest.raises(PeerUnreachable):
            await client.kad.request(ghost, FIND)
        assert client.kad._channels == {}
        assert client.kad.open_streams() == 0
        assert server.kad.requests_served == 0
