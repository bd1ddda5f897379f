"""KadService.request_counts on two real hosts: what datanet_dht_requests_total reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest
import trio

from datanet.errors import NetworkError, VerificationError
from datanet.p2p import Host, HostLimits, open_host
from datanet.testing.p2p import FAST, LOCAL, admission, node_key, org_key
from routing.wire import Message, MessageType

ORG = org_key(1)
FIND = Message(type=MessageType.FIND_NODE, key=b"k")


@asynccontextmanager
async def two_hosts(server_limits: HostLimits = FAST) -> AsyncIterator[tuple[Host, Host]]:
    a, b = node_key(1), node_key(2)
    async with (
        open_host(a, LOCAL, admission("members", a, ORG), limits=FAST) as client,
        open_host(b, LOCAL, admission("members", b, ORG), limits=server_limits) as server,
    ):
        client.add_addrs(server.peer_id, server.listen_addrs())
        yield client, server


async def test_requests_are_counted_by_direction_type_and_outcome() -> None:
    async def handler(msg: Message, from_peer: bytes) -> Message:
        if msg.key == b"stuck":
            await trio.sleep(10)
        if msg.key == b"forged":
            raise VerificationError("forged record")
        return Message(type=msg.type, key=msg.key)

    async with two_hosts(server_limits=replace(FAST, handler_timeout=0.2)) as (client, server):
        server.kad.set_handler(handler)
        for _ in range(3):
            await client.kad.request(server.peer_id, FIND)
        get = Message(type=MessageType.GET_VALUE, key=b"/dn/x")
        await client.kad.request(server.peer_id, get)
        with pytest.raises(NetworkError):
            await client.kad.request(server.peer_id, replace(FIND, key=b"stuck"))
        with pytest.raises(NetworkError):
            await client.kad.request(server.peer_id, replace(FIND, key=b"forged"))

        served = server.kad.request_counts
        assert served["in", "find_node", "ok"] == 3
        assert served["in", "get_value", "ok"] == 1
        # The stuck request went out on the reused stream; its reset looks like a stale
        # stream to the client, which retries once on a fresh one: two timeouts served.
        assert served["in", "find_node", "timeout"] == 2
        assert served["in", "find_node", VerificationError.code] == 1
        sent = client.kad.request_counts
        assert sent["out", "find_node", "ok"] == 3
        assert sent["out", "get_value", "ok"] == 1
        # a reset stream (stuck, then refused) is counted under the error's code
        assert sent["out", "find_node", "stream_closed"] == 2, sent
        assert sum(sent.values()) == 6, sent
        assert not any(k[0] == "out" for k in served), served
