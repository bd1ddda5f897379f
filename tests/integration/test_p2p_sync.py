"""Catalog anti-entropy between two real hosts on 127.0.0.1 (/datanet/catalog-sync/1.0.0)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
import trio

from datanet.errors import NetworkError, PeerSentJunk, Timeout
from datanet.p2p import SYNC_PROTOCOL, SyncLimits, SyncService, open_host
from datanet.p2p.streams import FramedStream
from datanet.testing.clock import NOW
from datanet.testing.p2p import FAST, LOCAL, admission, node_key, org_key
from identity.keys import PeerId
from routing.sync import Item, SyncIndex

ORG = org_key(1)


def record(n: int, *, good: bool = True) -> bytes:
    """A stand-in for a signed record: the backend accepts the ``good`` ones."""
    return b"%s:%d:%d:" % (b"good" if good else b"junk", NOW - n, n) + b"x" * 200


class MemoryBackend:
    """An in-memory record store: accepts records that start with ``good:``."""

    def __init__(self, raws: Sequence[bytes] = ()) -> None:
        self.records: dict[bytes, bytes] = {}
        self.index = SyncIndex()
        self.ingested_from: set[PeerId] = set()
        for raw in raws:
            self._store(raw)

    def _store(self, raw: bytes) -> None:
        digest = hashlib.sha256(raw).digest()
        self.records[digest] = raw
        self.index.add(Item(int(raw.split(b":")[1]), digest))

    def sync_index(self) -> SyncIndex:
        return self.index

    def records_by_id(self, ids: Sequence[bytes]) -> list[bytes]:
        return [self.records[i] for i in ids if i in self.records]

    async def ingest(self, raws: Sequence[bytes], from_peer: PeerId) -> tuple[int, int]:
        self.ingested_from.add(from_peer)
        accepted = rejected = 0
        for raw in raws:
            if raw.startswith(b"good:"):
                self._store(raw)
                accepted += 1
            else:
                rejected += 1
        return accepted, rejected


def hosts(n: int) -> list[tuple[object, object]]:
    return [(node_key(i), admission("members", node_key(i), ORG)) for i in range(1, n + 1)]


async def test_two_hosts_end_with_the_union() -> None:
    (ka, pa), (kb, pb) = hosts(2)
    common = [record(n) for n in range(3000)]
    only_a = [record(10_000 + n) for n in range(700)]  # more than one batch each way
    only_b = [record(20_000 + n) for n in range(400)]
    a_store, b_store = MemoryBackend(common + only_a), MemoryBackend(common + only_b)
    limits = SyncLimits(records_per_batch=64, frame=64 * 1024)
    async with (
        open_host(ka, LOCAL, pa, limits=FAST) as a,
        open_host(kb, LOCAL, pb, limits=FAST) as b,
    ):
        a_sync = SyncService(a, a_store, limits=limits)
        b_sync = SyncService(b, b_store, limits=limits)
        with trio.fail_after(30):
            result = await a_sync.sync_with(b.peer_id, addrs=b.listen_addrs())
        assert result.peer == b.peer_id
        assert (result.have, result.need) == (700, 400)
        assert (result.received, result.accepted, result.rejected) == (400, 400, 0)
        assert result.sent == 700
        assert result.rounds >= 1
        assert result.bytes_sent > 700 * 200
        assert result.bytes_received > 400 * 200
        union = set(a_store.records)
        assert union == set(b_store.records)
        assert len(union) == 4100
        assert list(a_store.index) == list(b_store.index)
        assert b_store.ingested_from == {a.peer_id}
        assert a_sync.stats()["records_fetched"] == 400
        assert a_sync.stats()["records_pushed"] == 700
        assert b_sync.stats()["sessions_in"] == 1
        assert b_sync.stats()["records_received_by_push"] == 700

        # A second session finds nothing to do, in one round trip.
        with trio.fail_after(10):
            again = await b_sync.sync_with(a.peer_id)
        assert (again.rounds, again.have, again.need, again.sent, again.received) == (1, 0, 0, 0, 0)


async def test_junk_records_are_rejected_and_the_session_stops() -> None:
    (ka, pa), (kb, pb) = hosts(2)
    common = [record(n) for n in range(500)]
    junk = [record(30_000 + n, good=False) for n in range(50)]
    a_store, b_store = MemoryBackend(common), MemoryBackend(common + junk)
    limits = SyncLimits(records_per_batch=8, max_rejected=4)
    async with (
        open_host(ka, LOCAL, pa, limits=FAST) as a,
        open_host(kb, LOCAL, pb, limits=FAST) as b,
    ):
        a_sync = SyncService(a, a_store, limits=limits)
        b_sync = SyncService(b, b_store, limits=limits)
        # A fetches B's junk: its backend rejects it, and A ends the session.
        with trio.fail_after(10), pytest.raises(PeerSentJunk, match="invalid records"):
            await a_sync.sync_with(b.peer_id, addrs=b.listen_addrs())
        assert a_sync.stats()["records_rejected"] == 8
        assert a_sync.stats()["records_fetched"] == 8  # stopped after the first batch
        assert set(a_store.records) == {hashlib.sha256(r).digest() for r in common}

        # B pushes its junk to A: A's handler resets the stream after the bound.
        with trio.fail_after(10), pytest.raises(NetworkError):
            await b_sync.sync_with(a.peer_id)
        assert a_sync.stats()["sessions_in_failed"] == 1
        assert b_sync.stats()["records_pushed"] == 8
        assert set(a_store.records) == {hashlib.sha256(r).digest() for r in common}


async def test_junk_frames_and_silent_peers() -> None:
    (ka, pa), (kb, pb) = hosts(2)
    store = MemoryBackend([record(n) for n in range(100)])
    async with (
        open_host(ka, LOCAL, pa, limits=FAST) as a,
        open_host(kb, LOCAL, pb, limits=FAST) as b,
    ):
        served = SyncService(b, MemoryBackend([record(n) for n in range(90)]))
        # junk reconciliation bytes: the responder resets the stream
        stream = await a.open_stream(b.peer_id, SYNC_PROTOCOL, addrs=b.listen_addrs())
        await stream.write_frame(b"\x92\x00\xc4\x03abc", 64)
        with trio.fail_after(5), pytest.raises(NetworkError):
            await stream.read_required(1024)
        # not MessagePack at all
        stream = await a.open_stream(b.peer_id, SYNC_PROTOCOL)
        await stream.write_frame(b"\xc1\xc1", 64)
        with trio.fail_after(5), pytest.raises(NetworkError):
            await stream.read_required(1024)
        with trio.fail_after(5):
            while served.stats()["sessions_in_failed"] < 2:
                await trio.sleep(0.01)

        # one session per peer at a time: a second one is reset at once
        first = await a.open_stream(b.peer_id, SYNC_PROTOCOL)
        with trio.fail_after(5):
            while served.stats()["sessions_in"] < 3:
                await trio.sleep(0.01)
        client = SyncService(a, store)
        with trio.fail_after(5), pytest.raises(NetworkError):
            await client.sync_with(b.peer_id)
        assert served.stats()["sessions_in_refused"] == 1
        await first.reset()

        # a peer that never answers: the initiator times out
        async def silent(stream: FramedStream, peer: PeerId) -> None:
            await trio.sleep_forever()

        b.set_stream_handler(SYNC_PROTOCOL, silent)
        client = SyncService(a, store, limits=SyncLimits(idle_timeout=0.3, total_timeout=5))
        assert client.stats()["sessions_out_failed"] == 0
        with trio.fail_after(10), pytest.raises(Timeout):
            await client.sync_with(b.peer_id)
        assert client.stats()["sessions_out_failed"] == 1
        assert client.stats()["sessions_out"] == 1
