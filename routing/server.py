"""The server side of one kad-dht request: a pure function from request to response.

The driver decodes a frame from an inbound ``/datanet/kad/1.0.0`` stream, calls
:func:`handle_request` with the sender's peer id and the current time, and acts
on the result:

* a :class:`~routing.wire.Message` - encode it and send it back on the stream;
* ``None`` - the protocol sends no response (``ADD_PROVIDER``, see
  :func:`routing.wire.expects_response`); keep reading;
* a raised :class:`~identity.errors.DatanetError` - the request was refused
  (invalid, stale, oversized or expired record, rate limit, malformed request).
  Nothing was stored. The driver resets the stream, which is how the kad-dht
  protocol says "not stored": a ``PUT_VALUE`` is acknowledged only by the echo
  of the record, and only when the record was stored.

Invariants:
* Responses never list the requesting peer among the closer peers.
* ``PUT_VALUE`` is echoed only after :meth:`RecordStore.put` returned, i.e. after
  the record is held (and, with a persistence sink, committed). Re-storing the
  identical record is a success (republish).
* A ``FIND_NODE`` that carries a record (datanet's write-with-the-walk, see
  :mod:`routing.lookup`) also stores it as a ``PUT_VALUE`` would, and its answer
  echoes the record only if it was stored; a record refused by the store is
  simply not echoed (the walk still gets its closer peers). A record whose key
  differs from the message key is refused like a malformed ``PUT_VALUE``.
* A ``FIND_NODE`` that carries provider entries (an announcement's walk) stores
  the one naming the sender as an ``ADD_PROVIDER`` would, and echoes it in
  ``provider_peers`` only if it was stored (a quota refuses it silently).
* ``ADD_PROVIDER`` stores only provider entries naming the sender itself; the
  ``source`` (remote address, admission) the adapter passes decides whether the
  stranger quotas of :class:`~routing.stores.ProviderStore` apply.
* Peer ids are compared as the binary multihash bytes carried on the wire;
  ``from_peer`` must be in that form.
"""

from __future__ import annotations

from collections.abc import Callable

from identity.errors import DatanetError, DecodeError, ScopeError
from routing.stores import ProviderSource, ProviderStore, RecordStore
from routing.wire import Message, MessageType, Peer, Record

__all__ = ["ClosestPeers", "K", "handle_request"]

K = 20
"""Kademlia replication parameter: how many closer peers a response carries."""

ClosestPeers = Callable[[bytes, int], list[Peer]]
"""``closest(key, count)``: the routing table's ``count`` peers closest to the DHT
``key`` (raw key bytes as carried on the wire; the table hashes them), never the
local node itself."""


def _closer(closest: ClosestPeers, key: bytes, from_peer: bytes, k: int) -> tuple[Peer, ...]:
    # Ask for one more than needed: the requester itself is filtered out.
    return tuple(p for p in closest(key, k + 1) if p.id != from_peer)[:k]


def _own_entry(provider_peers: tuple[Peer, ...], from_peer: bytes) -> Peer:
    """The provider entry naming the sender itself (a peer announces only itself).

    Raises:
        ScopeError: no entry names the sender.
    """
    for peer in provider_peers:
        if peer.id == from_peer:
            return peer
    raise ScopeError("a provider announcement must name the sender itself")


def handle_request(
    msg: Message,
    *,
    from_peer: bytes,
    now: float,
    closest: ClosestPeers,
    records: RecordStore,
    providers: ProviderStore,
    k: int = K,
    self_peer: Peer | None = None,
    source: ProviderSource | None = None,
) -> Message | None:
    """Answer one kad-dht request.

    Args:
        msg: the decoded request.
        from_peer: the authenticated peer id (binary) of the sender.
        now: the current time in seconds.
        closest: the routing table's closest-peers query.
        records: this node's record store.
        providers: this node's provider store.
        k: how many closer peers (and providers) to return at most.
        self_peer: this node, returned when a ``FIND_NODE`` asks for it by id.
        source: the sender's address and admission, if the adapter knows them
            (``None``: treated as a member, e.g. in the simulator).

    Returns:
        The response to send, or ``None`` when the protocol sends none.

    Raises:
        DecodeError: the request lacks what its type needs (key, record) or the
            record's key differs from the message key.
        ScopeError: an ``ADD_PROVIDER`` announces only peers other than the sender.
        DatanetError: whatever the stores refuse (invalid, stale, expired, too
            large, rate limited, store full, storage failure); nothing was stored.
    """
    mtype = msg.type
    level = msg.cluster_level
    if mtype is MessageType.PING:
        return Message(MessageType.PING, cluster_level=level)
    if not msg.key:
        raise DecodeError(f"{mtype.name} needs a key")
    key = msg.key

    if mtype is MessageType.FIND_NODE:
        if self_peer is not None and key == self_peer.id:
            found: tuple[Peer, ...] = (self_peer,)
        else:
            found = _closer(closest, key, from_peer, k)
        stored = None
        if msg.record is not None:
            if msg.record.key != key:
                raise DecodeError("FIND_NODE record key differs from the message key")
            try:
                records.put(key, msg.record.value, now=now, from_peer=from_peer)
                stored = msg.record
            except DatanetError:
                pass  # not stored, so not echoed: the writer counts no ack
        provided: tuple[Peer, ...] = ()
        if msg.provider_peers:
            own = _own_entry(msg.provider_peers, from_peer)
            try:
                providers.add(key, own, now=now, from_peer=from_peer, source=source)
                provided = (own,)
            except DatanetError:
                pass  # not stored (a quota), so not echoed
        return Message(
            MessageType.FIND_NODE,
            key,
            record=stored,
            closer_peers=found,
            provider_peers=provided,
            cluster_level=level,
        )

    if mtype is MessageType.GET_VALUE:
        value = records.get(key, now=now)
        record = None if value is None else Record(key, value)
        return Message(
            MessageType.GET_VALUE,
            key,
            record=record,
            closer_peers=_closer(closest, key, from_peer, k),
            cluster_level=level,
        )

    if mtype is MessageType.PUT_VALUE:
        if msg.record is None:
            raise DecodeError("PUT_VALUE carries no record")
        if msg.record.key != key:
            raise DecodeError("PUT_VALUE record key differs from the message key")
        records.put(key, msg.record.value, now=now, from_peer=from_peer)
        return Message(MessageType.PUT_VALUE, key, record=msg.record, cluster_level=level)

    if mtype is MessageType.ADD_PROVIDER:
        providers.add(
            key,
            _own_entry(msg.provider_peers, from_peer),
            now=now,
            from_peer=from_peer,
            source=source,
        )
        return None

    # GET_PROVIDERS: the only type left (MessageType is closed).
    return Message(
        MessageType.GET_PROVIDERS,
        key,
        closer_peers=_closer(closest, key, from_peer, k),
        provider_peers=tuple(providers.get(key, now=now, limit=k)),
        cluster_level=level,
    )
