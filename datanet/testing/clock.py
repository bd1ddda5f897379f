"""Fixed instants and a manual clock, so that tests and benchmarks agree on "now".

datanet's pure code never reads the time: ``now`` is passed in (Unix seconds),
or a ``clock`` callable is. Tests pass :data:`NOW`, or a :class:`ManualClock`
where the code under test asks a clock, and move it on explicitly.

Invariants:
* :data:`NOW` never changes: records signed in one test run verify in the next.
* A :class:`ManualClock` moves only when told, and never backwards.
"""

from __future__ import annotations

__all__ = ["DAY", "HOUR", "NOW", "ManualClock"]

#: 2025-06-15T15:06:40Z: the "now" of datanet's tests and benchmarks.
NOW = 1_750_000_000
HOUR = 3600
DAY = 86400


class ManualClock:
    """A clock that stands still until told to move; call it for the current time.

    Pass it wherever datanet takes ``clock: Callable[[], int]``.

    Args:
        now: the time it starts at (Unix seconds).
    """

    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: int) -> int:
        """Move the clock ``seconds`` on and return the new time.

        Raises:
            ValueError: ``seconds`` is negative (time never runs backwards here).
        """
        if seconds < 0:
            raise ValueError("a ManualClock never runs backwards")
        self.now += seconds
        return self.now

    def __repr__(self) -> str:
        return f"ManualClock(now={self.now})"
