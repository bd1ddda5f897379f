"""Unit tests of the kad-dht request server (routing/server.py), over the real codec."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from identity.errors import DecodeError, ScopeError, SignatureError, StaleRecord
from routing.server import K, handle_request
from routing.stores import ProviderStore, RateLimited, RecordStore
from routing.wire import (
    Message,
    MessageType,
    Peer,
    Record,
    decode_message,
    encode_message,
    expects_response,
)

ME = Peer(b"me", (b"/ip4/127.0.0.1/tcp/1",))
ALICE = b"alice"
TABLE = [Peer(b"n%02d" % i, (b"addr%d" % i,)) for i in range(30)] + [Peer(ALICE)]


class SeqValidator:
    def validate(self, key: bytes, value: bytes, now: int) -> None:
        if not key.startswith(b"/t/") or not value.partition(b":")[0].isdigit():
            raise SignatureError("bad value")

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        seqs = [int(v.partition(b":")[0]) for v in values]
        return seqs.index(max(seqs))


def closest(key: bytes, count: int) -> list[Peer]:
    # put the requester first, to check that it is filtered out
    return [Peer(ALICE), *TABLE[:30]][:count]


class Node:
    def __init__(self) -> None:
        self.records = RecordStore(SeqValidator(), writes_per_peer_per_minute=5)
        self.providers = ProviderStore()

    def ask(self, msg: Message, *, sender: bytes = ALICE, now: float = 0) -> Message | None:
        """Go through the wire both ways, as the driver would."""
        request = decode_message(encode_message(msg))
        reply = handle_request(
            request,
            from_peer=sender,
            now=now,
            closest=closest,
            records=self.records,
            providers=self.providers,
            self_peer=ME,
        )
        return None if reply is None else decode_message(encode_message(reply))


def test_ping() -> None:
    assert Node().ask(Message(MessageType.PING, cluster_level=2)) == Message(
        MessageType.PING, cluster_level=2
    )


def test_find_node_returns_k_closer_peers_without_the_requester() -> None:
    reply = Node().ask(Message(MessageType.FIND_NODE, b"target"))
    assert reply is not None
    assert reply.type is MessageType.FIND_NODE
    assert len(reply.closer_peers) == K
    assert ALICE not in {p.id for p in reply.closer_peers}
    assert reply.closer_peers[0] == TABLE[0]
    self_reply = Node().ask(Message(MessageType.FIND_NODE, ME.id))
    assert self_reply is not None
    assert self_reply.closer_peers == (ME,)


def test_put_echoes_only_when_stored_and_get_returns_it() -> None:
    node = Node()
    put = Message(MessageType.PUT_VALUE, b"/t/a", Record(b"/t/a", b"2:v"))
    assert node.ask(put) == put
    assert node.ask(put) == put  # identical re-store succeeds: republish depends on it
    got = node.ask(Message(MessageType.GET_VALUE, b"/t/a"))
    assert got is not None
    assert got.record == Record(b"/t/a", b"2:v")
    assert len(got.closer_peers) == K
    with pytest.raises(StaleRecord):
        node.ask(Message(MessageType.PUT_VALUE, b"/t/a", Record(b"/t/a", b"1:old")))
    with pytest.raises(SignatureError):
        node.ask(Message(MessageType.PUT_VALUE, b"/t/b", Record(b"/t/b", b"forged")))
    missing = node.ask(Message(MessageType.GET_VALUE, b"/t/b"))
    assert missing is not None
    assert missing.record is None


def test_a_find_node_that_carries_a_record_stores_it_and_echoes_it_only_when_stored() -> None:
    node = Node()
    ride = Message(MessageType.FIND_NODE, b"/t/a", Record(b"/t/a", b"2:v"))
    reply = node.ask(ride)
    assert reply is not None
    assert reply.type is MessageType.FIND_NODE
    assert reply.record == Record(b"/t/a", b"2:v")
    assert len(reply.closer_peers) == K  # the walk still gets its answer
    assert node.records.get(b"/t/a", now=0) == b"2:v"
    for refused in (Record(b"/t/a", b"1:old"), Record(b"/t/a", b"forged")):
        answer = node.ask(Message(MessageType.FIND_NODE, b"/t/a", refused))
        assert answer is not None
        assert answer.record is None  # not stored, so no ack
        assert len(answer.closer_peers) == K
    assert node.records.get(b"/t/a", now=0) == b"2:v"
    with pytest.raises(DecodeError):
        node.ask(Message(MessageType.FIND_NODE, b"/t/a", Record(b"/t/other", b"3:v")))
    plain = node.ask(Message(MessageType.FIND_NODE, b"/t/a"))
    assert plain is not None
    assert plain.record is None


def test_put_needs_a_matching_record() -> None:
    node = Node()
    with pytest.raises(DecodeError):
        node.ask(Message(MessageType.PUT_VALUE, b"/t/a"))
    with pytest.raises(DecodeError):
        node.ask(Message(MessageType.PUT_VALUE, b"/t/a", Record(b"/t/other", b"1:v")))
    with pytest.raises(DecodeError):
        node.ask(Message(MessageType.GET_VALUE))
    assert len(node.records) == 0


def test_put_rate_limited_per_peer() -> None:
    node = Node()
    for i in range(5):
        node.ask(Message(MessageType.PUT_VALUE, b"/t/%d" % i, Record(b"/t/%d" % i, b"1:v")))
    with pytest.raises(RateLimited):
        node.ask(Message(MessageType.PUT_VALUE, b"/t/9", Record(b"/t/9", b"1:v")))
    node.ask(Message(MessageType.PUT_VALUE, b"/t/9", Record(b"/t/9", b"1:v")), sender=b"bob")


def test_add_provider_only_for_the_sender_then_get_providers() -> None:
    node = Node()
    announce = Message(
        MessageType.ADD_PROVIDER,
        b"key",
        provider_peers=(Peer(b"mallory", (b"m",)), Peer(ALICE, (b"a1",))),
    )
    assert node.ask(announce) is None
    with pytest.raises(ScopeError):
        node.ask(Message(MessageType.ADD_PROVIDER, b"key", provider_peers=(Peer(b"bob"),)))
    reply = node.ask(Message(MessageType.GET_PROVIDERS, b"key"), sender=b"carol")
    assert reply is not None
    assert reply.provider_peers == (Peer(ALICE, (b"a1",)),)
    assert len(reply.closer_peers) == K


def test_a_find_node_that_carries_a_provider_entry_stores_it_and_echoes_it_only_when_stored() -> (
    None
):
    node = Node()
    node.providers = ProviderStore(adds_per_peer_per_minute=2)
    mine = Peer(ALICE, (b"a1",))
    ride = Message(MessageType.FIND_NODE, b"key", provider_peers=(Peer(b"mallory"), mine))
    reply = node.ask(ride)
    assert reply is not None
    assert reply.type is MessageType.FIND_NODE
    assert reply.provider_peers == (mine,)  # only the sender's own entry, echoed
    assert len(reply.closer_peers) == K  # the walk still gets its answer
    got = node.ask(Message(MessageType.GET_PROVIDERS, b"key"), sender=b"carol")
    assert got is not None
    assert got.provider_peers == (mine,)
    node.ask(ride)  # the rate limit's second add
    limited = node.ask(ride)  # the third within a minute: refused, so not echoed
    assert limited is not None
    assert limited.provider_peers == ()
    assert len(limited.closer_peers) == K
    with pytest.raises(ScopeError):
        node.ask(Message(MessageType.FIND_NODE, b"key", provider_peers=(Peer(b"bob"),)))
    plain = node.ask(Message(MessageType.FIND_NODE, b"key"))
    assert plain is not None
    assert plain.provider_peers == ()


def test_get_providers_of_unknown_key() -> None:
    reply = Node().ask(Message(MessageType.GET_PROVIDERS, b"nothing"))
    assert reply is not None
    assert reply.provider_peers == ()


def test_the_server_answers_exactly_the_types_that_expect_a_response() -> None:
    """The server and the drivers follow the same rule (routing.wire.expects_response)."""
    requests = {
        MessageType.PING: Message(MessageType.PING),
        MessageType.FIND_NODE: Message(MessageType.FIND_NODE, b"target"),
        MessageType.GET_VALUE: Message(MessageType.GET_VALUE, b"/t/a"),
        MessageType.PUT_VALUE: Message(MessageType.PUT_VALUE, b"/t/a", Record(b"/t/a", b"1:v")),
        MessageType.GET_PROVIDERS: Message(MessageType.GET_PROVIDERS, b"pk"),
        MessageType.ADD_PROVIDER: Message(
            MessageType.ADD_PROVIDER, b"pk", provider_peers=(Peer(ALICE, (b"a",)),)
        ),
    }
    assert set(requests) == set(MessageType)
    node = Node()
    for mtype, request in requests.items():
        assert (node.ask(request) is not None) == expects_response(mtype), mtype
