"""A long-lived connection's Yamux bookkeeping stays bounded by its open streams (issue 12, soak).

py-libp2p 0.8.1's ``Yamux.read_stream`` stored a fresh wake-up event for a
stream that was reset while its reader waited; nothing removed it before the
connection closed. In the soak, every node's connections to its peers live for
hours, so these events (each a ``trio.Event`` with its set of waiters) piled up
at the rate of reset streams: the flood's idle kad streams alone left about 50 a
second on a victim. ``datanet.p2p._libp2p._DatanetYamux`` drops them; this test
failed on main before it (hundreds of orphan events after 300 streams).
"""

from __future__ import annotations

from pathlib import Path

import trio

from datanet.errors import DatanetError
from datanet.p2p import _libp2p as lp
from datanet.testing.network import in_process_network
from datanet.testing.raw import send_raw_kad

STREAMS = 300
#: Orphans tolerated: a read that ends in the very instant this test looks.
SLACK = 5


def _muxers(host: object, peer: object) -> list[object]:
    swarm = host._swarm  # type: ignore[attr-defined]  # the adapter's own swarm
    return [c.muxed_conn for c in swarm.get_connections(lp.to_libp2p_id(peer))]


def _orphans(muxer: object) -> int:
    """Wake-up events of streams the connection no longer has."""
    events = muxer.stream_events  # type: ignore[attr-defined]
    streams = muxer.streams  # type: ignore[attr-defined]
    return sum(1 for sid in list(events) if sid not in streams)


async def test_reset_streams_leave_no_events_behind(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 3) as (_, nodes):
        victim, peer = nodes[0], nodes[1]
        opened = 0

        async def idle_stream() -> None:
            # a kad stream that sends nothing: the victim's handler waits for a
            # frame, then the stream is reset under it (as the soak's flood does)
            nonlocal opened
            try:
                await send_raw_kad(peer.host, victim.peer_id, [], timeout=0.2)
            except DatanetError:
                return
            opened += 1

        for _ in range(STREAMS // 10):
            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(idle_stream)
        assert opened >= STREAMS // 2, opened  # the streams really were opened

        muxers = _muxers(victim.host, peer.peer_id)
        assert muxers, "the peer's connection closed: nothing was measured"
        # the readers of the reset streams finish shortly after the resets
        with trio.move_on_after(10):
            while sum(_orphans(m) for m in muxers) > SLACK:
                await trio.sleep(0.1)
        orphans = sum(_orphans(m) for m in muxers)
        assert orphans <= SLACK, f"{orphans} orphan stream events after {opened} reset streams"
        for muxer in muxers:
            events = len(muxer.stream_events)  # type: ignore[attr-defined]
            assert events <= len(muxer.streams) + SLACK  # type: ignore[attr-defined]
