"""KadService.request_counts on two real hosts: what datanet_dht_requests_total reads."""

from __future__ import annotations

from dataclasses import replace

import pytest
import trio

from datanet.errors import NetworkError, VerificationError
from datanet.testing.p2p import FAST, member_hosts, org_key
from routing.wire import Message, MessageType

ORG = org_key(1)
FIND = Message(type=MessageType.FIND_NODE, key=b"k")


async def test_requests_are_counted_by_direction_type_and_outcome() -> None:
    async def handler(msg: Message, from_peer: bytes) -> Message:
        if msg.key == b"stuck":
            await trio.sleep(10)
        if msg.key == b"forged":
            raise VerificationError("forged record")
        return Message(type=msg.type, key=msg.key)

    slow = replace(FAST, handler_timeout=0.2)
    async with member_hosts(ORG, server_limits=slow) as (client, server):
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
