"""The process's heap: the garbage collector's settings, and freed memory given back.

The collector. CPython collects its youngest generation every 700 container
allocations by default; a node allocates that many for a handful of frames, so
on a busy 100-node network the collections cost about 15 % of the CPU
(``benchmarks/results/net.json``, ``worker_gc``), most of it tracing objects
that were about to die anyway. :func:`collector_tuned` raises the young
threshold to ``GC_THRESHOLDS[0]`` (garbage without cycles never waits for the
collector: reference counting frees it at once), and :func:`settle_heap`
moves what the node built while starting out of the collector's sight
(``gc.freeze()``), so a full collection traces only what came later.

Freed memory.
glibc keeps memory that ``free`` returned inside its heap for reuse, and only
gives back what lies at the very top of it. A long-running node frees records,
frames and buffers in every order, so freed pages pile up in the middle: in the
30-minute soak, live memory (Python objects and ``malloc``'s in-use bytes)
levelled off while the freed-but-kept part kept rising (13 -> 37 MB over 4
worker processes), and RSS with it. ``malloc_trim(0)`` hands those pages back
(``madvise``), and costs a few milliseconds.

Invariants:
* Only on glibc (``malloc_trim`` found); elsewhere :func:`trim_heap` is a no-op
  that says so. It never raises.
* One call per process per interval, whatever the number of nodes it hosts.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable, Iterator
from typing import Any

import trio

__all__ = [
    "GC_THRESHOLDS",
    "TRIM_INTERVAL",
    "collector_tuned",
    "native_memory",
    "settle_heap",
    "trim_heap",
    "trim_until",
]

log = logging.getLogger("datanet.node.heap")

#: Seconds between two trims.
TRIM_INTERVAL = 60.0

#: ``gc.set_threshold`` while a node runs: a young collection every 20,000
#: container allocations (CPython: 700); the older generations keep CPython's ratios.
GC_THRESHOLDS = (20_000, 10, 10)


@contextlib.contextmanager
def collector_tuned(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> Iterator[None]:
    """Run the block with the collector's thresholds at ``thresholds``; restore them after."""
    before = gc.get_threshold()
    gc.set_threshold(*thresholds)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def settle_heap() -> int:
    """Collect, then freeze every object alive now (once a node has started).

    What a node builds while starting (modules, routing tables, connections)
    lives as long as it does; frozen, it is never traced again. Returns how
    many objects are frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


_MB = 1024 * 1024


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc 2.33+): every field a ``size_t``."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _native_library(name: str) -> ctypes.CDLL | None:
    found = ctypes.util.find_library(name)
    if found is None:
        return None
    try:
        return ctypes.CDLL(found)
    except OSError:
        return None


_LIBC = _native_library("c")
_TRIM: Callable[[int], Any] | None = getattr(_LIBC, "malloc_trim", None)
_MALLINFO2 = getattr(_LIBC, "mallinfo2", None)
if _MALLINFO2 is not None:
    _MALLINFO2.restype = _MallInfo2
_LIBSQLITE = _native_library("sqlite3")
_SQLITE_MEMORY_USED = getattr(_LIBSQLITE, "sqlite3_memory_used", None)
if _SQLITE_MEMORY_USED is not None:
    _SQLITE_MEMORY_USED.restype = ctypes.c_int64


def native_memory() -> dict[str, float | None]:
    """Where this process's native memory is, in MB (``None`` where the library is missing).

    ``malloc_in_use_mb`` and ``malloc_free_mb`` are glibc's heap (every arena: what
    live ``malloc`` blocks hold, and what is freed but kept; a trim returns the
    kept pages, which glibc still counts here), ``malloc_mmap_mb`` its large
    blocks; ``sqlite_mb`` is what SQLite holds of that heap (page caches,
    statements).
    """
    out: dict[str, float | None] = dict.fromkeys(
        ("malloc_in_use_mb", "malloc_free_mb", "malloc_mmap_mb", "sqlite_mb")
    )
    if _MALLINFO2 is not None:
        info = _MALLINFO2()
        out["malloc_in_use_mb"] = round(info.uordblks / _MB, 2)
        out["malloc_free_mb"] = round(info.fordblks / _MB, 2)
        out["malloc_mmap_mb"] = round(info.hblkhd / _MB, 2)
    if _SQLITE_MEMORY_USED is not None:
        out["sqlite_mb"] = round(_SQLITE_MEMORY_USED() / _MB, 2)
    return out


def trim_heap() -> bool:
    """Return the heap's free pages to the OS now; False where the C library cannot."""
    if _TRIM is None:
        return False
    try:
        _TRIM(0)
    except OSError as exc:  # pragma: no cover - malloc_trim does not fail on glibc
        log.debug("malloc_trim failed", extra={"kv": {"error": str(exc)}})
        return False
    return True


async def trim_until(stop: trio.Event, interval: float = TRIM_INTERVAL) -> None:
    """Trim the heap every ``interval`` seconds until ``stop`` is set (at once off glibc)."""
    if _TRIM is None:
        return
    while not stop.is_set():
        with trio.move_on_after(interval):
            await stop.wait()
        if not stop.is_set():
            trim_heap()
