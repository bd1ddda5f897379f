"""A discrete-event loop on a fake clock: the simulator's only notion of time.

Invariants:
* ``now`` never goes backwards; events run in (time, scheduling order) order, so
  a run is fully determined by what was scheduled (no wall clock, no threads).
* An event scheduled in the past runs at the current time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from identity.errors import InvalidInput

__all__ = ["EventLoop"]


class EventLoop:
    """A heap of callbacks ordered by fake time."""

    def __init__(self, start: float = 0.0) -> None:
        """Start the clock at ``start`` seconds (any epoch)."""
        self.now = start
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self.events_run = 0

    def __len__(self) -> int:
        """Events still scheduled."""
        return len(self._heap)

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` at fake time ``when`` (or now, if that is in the past)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(when, self.now), self._seq, callback))

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` ``delay`` seconds from now."""
        self.call_at(self.now + delay, callback)

    def step(self) -> bool:
        """Run the next event; False if there is none."""
        if not self._heap:
            return False
        when, _, callback = heapq.heappop(self._heap)
        self.now = when
        self.events_run += 1
        callback()
        return True

    def run(self, *, until: float | None = None) -> None:
        """Run events until none is left, or until the next one is after ``until``."""
        heap = self._heap
        while heap and (until is None or heap[0][0] <= until):
            self.step()
        if until is not None and until > self.now:
            self.now = until

    def run_until(self, done: Callable[[], bool], *, max_time: float) -> bool:
        """Run events until ``done()`` holds; give up once fake time passes ``max_time``.

        Returns:
            Whether ``done()`` became true.

        Raises:
            InvalidInput: ``max_time`` lies in the past.
        """
        if max_time < self.now:
            raise InvalidInput("max_time lies in the past")
        heap = self._heap
        while not done():
            if not heap or heap[0][0] > max_time:
                return False
            self.step()
        return True
