"""The collector's settings while a node runs; freed heap memory goes back to the OS
(glibc's malloc_trim), periodically, until stopped."""

from __future__ import annotations

import gc

import pytest
import trio
import trio.testing

from datanet.node import heap
from datanet.node.heap import GC_THRESHOLDS, collector_tuned, settle_heap


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(heap._TRIM is None, reason="needs glibc's malloc_trim")
def test_freed_blocks_below_a_live_one_go_back_to_the_os() -> None:
    # 80 MB of 4 KB blocks, freed, under one block still alive: glibc keeps them
    # (only the top of the heap is returned on its own), as a long-running node's
    # heap does; the soak's "malloc free" rose from 13 to 37 MB this way.
    blobs = [bytearray(b"x" * 4000) for _ in range(20_000)]
    alive = bytearray(b"y" * 4000)
    del blobs
    kept = rss_mb()
    assert heap.trim_heap()
    assert rss_mb() < kept - 40, (kept, rss_mb())
    assert alive[0] == ord("y")


async def test_trims_every_interval_until_stopped(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []
    monkeypatch.setattr(heap, "_TRIM", lambda pad: calls.append(trio.current_time()))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(heap.trim_until, stop, 60.0)
        await trio.sleep(185)
        stop.set()
    assert len(calls) == 3
    assert trio.current_time() < 186  # it returned at once when stopped


@pytest.mark.skipif(heap._MALLINFO2 is None, reason="needs glibc's mallinfo2")
def test_native_memory_sees_live_malloc_blocks() -> None:
    before = heap.native_memory()["malloc_in_use_mb"]
    blobs = [bytearray(b"x" * 4000) for _ in range(5_000)]  # ~20 MB through malloc
    after = heap.native_memory()["malloc_in_use_mb"]
    assert before is not None
    assert after is not None
    assert after - before > 15, (before, after)
    assert len(blobs) == 5_000


def test_collector_tuned_raises_the_young_threshold_and_restores_it() -> None:
    before = gc.get_threshold()
    with collector_tuned((12_345, 7, 9)):
        assert gc.get_threshold() == (12_345, 7, 9)
        inside: list[tuple[int, int, int]] = []

        def fail_while_tuned() -> None:
            with collector_tuned():
                inside.append(gc.get_threshold())
                raise RuntimeError("restored on the way out too")

        with pytest.raises(RuntimeError):
            fail_while_tuned()
        assert inside == [GC_THRESHOLDS]
        assert gc.get_threshold() == (12_345, 7, 9)
    assert gc.get_threshold() == before


def test_settle_heap_freezes_what_is_alive() -> None:
    try:
        frozen = settle_heap()
        assert frozen == gc.get_freeze_count() > 0
        kept = [object() for _ in range(10)]  # after the freeze: seen by the collector
        assert any(o is kept for o in gc.get_objects())
        assert all(o is not gc for o in gc.get_objects())  # a module: frozen
    finally:
        gc.unfreeze()
