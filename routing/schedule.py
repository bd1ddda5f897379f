"""When a node republishes, re-provides, refreshes and expires: a pure schedule.

The node's maintenance is a state machine like the lookups: the driver tells
the :class:`Schedule` which keys this node owns (values it published, keys it
provides), calls :meth:`Schedule.poll` with the current time whenever
:meth:`Schedule.next_deadline` has come, and carries out the actions it gets:

=====================  ===========================================================
action                 the driver
=====================  ===========================================================
:class:`Expire`        expires the record and provider stores (and whatever else it
                       keeps with a lifetime, e.g. the address book)
:class:`RefreshBuckets` starts a refresh lookup per stale bucket
                       (:meth:`routing.coordinator.Coordinator.refresh`)
:class:`Republish`     puts its own value under ``key`` to the k closest peers again
:class:`Reprovide`     announces itself as a provider of ``key`` to the k closest again
=====================  ===========================================================

The real node (trio) and the simulator (fake clock) drive the same schedule, so
the simulator shows that records survive churn among their replicas.

Invariants:
* One constant per interval, and this module is its only home.
* A tracked key is handed out at most once per interval: when :meth:`poll`
  emits it, its next turn is one interval later (whether or not the driver's
  put succeeds; a failed republish waits for the next turn).
* An untracked key is never handed out; tracking a key already tracked keeps
  its turn (a new sequence of a value does not delay nor hasten its republish).
* Nothing here reads a clock: time is the ``now`` passed in.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from enum import Enum

from identity.errors import InvalidInput

__all__ = [
    "MAINTENANCE_INTERVAL",
    "REFRESH_CHECK_INTERVAL",
    "REPROVIDE_INTERVAL",
    "REPUBLISH_INTERVAL",
    "Expire",
    "RefreshBuckets",
    "Reprovide",
    "Republish",
    "Schedule",
    "ScheduleAction",
]

REPUBLISH_INTERVAL = 3600.0
"""How often a node puts its own values to the k closest peers again.

Well inside the 48 h a replica keeps a value it was given
(:data:`routing.stores.RECORD_MAX_AGE`), and short enough that the value reaches
the peers that became closest since (replicas churn)."""

REPROVIDE_INTERVAL = 22 * 3600.0
"""How often a node announces itself again as a provider of its keys.

kad-dht: provider records live 48 h (:data:`routing.stores.PROVIDER_TTL`); 22 h
leaves room for one failed round."""

MAINTENANCE_INTERVAL = 30.0
"""How often the stores are expired (:class:`Expire`)."""

REFRESH_CHECK_INTERVAL = 30.0
"""How often stale buckets are looked for (:class:`RefreshBuckets`); a bucket is
stale after the routing table's own ``refresh_interval`` (10 min) without a lookup."""


@dataclass(frozen=True)
class Expire:
    """Action: drop what expired from the stores."""


@dataclass(frozen=True)
class RefreshBuckets:
    """Action: refresh the routing table's stale buckets."""


@dataclass(frozen=True)
class Republish:
    """Action: put this node's own value under ``key`` to the k closest peers."""

    key: bytes


@dataclass(frozen=True)
class Reprovide:
    """Action: announce this node as a provider of ``key`` to the k closest peers."""

    key: bytes


ScheduleAction = Expire | RefreshBuckets | Republish | Reprovide


class _Kind(Enum):
    EXPIRE = 0
    REFRESH = 1
    REPUBLISH = 2
    REPROVIDE = 3


_Task = tuple[_Kind, bytes]


class Schedule:
    """The maintenance timetable of one node (see the module docstring).

    Args:
        now: the current time; the first :class:`Expire` and :class:`RefreshBuckets`
            are due one interval later.
        republish_interval: see :data:`REPUBLISH_INTERVAL`.
        reprovide_interval: see :data:`REPROVIDE_INTERVAL`.
        maintenance_interval: see :data:`MAINTENANCE_INTERVAL`.
        refresh_check_interval: see :data:`REFRESH_CHECK_INTERVAL`.

    Raises:
        InvalidInput: an interval is not a positive finite number.
    """

    def __init__(
        self,
        now: float,
        *,
        republish_interval: float = REPUBLISH_INTERVAL,
        reprovide_interval: float = REPROVIDE_INTERVAL,
        maintenance_interval: float = MAINTENANCE_INTERVAL,
        refresh_check_interval: float = REFRESH_CHECK_INTERVAL,
    ) -> None:
        intervals = (
            republish_interval,
            reprovide_interval,
            maintenance_interval,
            refresh_check_interval,
        )
        if not all(0 < i < math.inf for i in intervals):
            raise InvalidInput("schedule intervals must be positive and finite")
        self._interval = {
            _Kind.EXPIRE: maintenance_interval,
            _Kind.REFRESH: refresh_check_interval,
            _Kind.REPUBLISH: republish_interval,
            _Kind.REPROVIDE: reprovide_interval,
        }
        self._due: dict[_Task, int] = {}  # task -> token of its live heap item
        self._heap: list[tuple[float, int, _Kind, bytes]] = []
        self._counter = 0
        self._set((_Kind.EXPIRE, b""), now + maintenance_interval)
        self._set((_Kind.REFRESH, b""), now + refresh_check_interval)

    # -- what this node owns

    def values(self) -> list[bytes]:
        """The keys whose values are republished."""
        return [key for kind, key in self._due if kind is _Kind.REPUBLISH]

    def provided(self) -> list[bytes]:
        """The keys this node re-provides."""
        return [key for kind, key in self._due if kind is _Kind.REPROVIDE]

    def add_value(self, key: bytes, now: float, *, republish_now: bool = False) -> None:
        """Republish ``key`` from now on, first one interval after ``now``.

        Args:
            key: the DHT key of a value this node published (the driver has just put
                it to the network, or is about to).
            now: the current time.
            republish_now: the first republish is due at once (e.g. a value restored
                at start-up: the network may have lost it while this node was down).
        """
        self._add((_Kind.REPUBLISH, key), now, republish_now)

    def remove_value(self, key: bytes) -> bool:
        """Stop republishing ``key``; returns whether it was tracked."""
        return self._due.pop((_Kind.REPUBLISH, key), None) is not None

    def add_provider(self, key: bytes, now: float, *, reprovide_now: bool = False) -> None:
        """Re-provide ``key`` from now on, first one interval after ``now``."""
        self._add((_Kind.REPROVIDE, key), now, reprovide_now)

    def remove_provider(self, key: bytes) -> bool:
        """Stop re-providing ``key``; returns whether it was tracked."""
        return self._due.pop((_Kind.REPROVIDE, key), None) is not None

    # -- the loop

    def next_deadline(self) -> float:
        """When :meth:`poll` has something to hand out next (at most an interval away)."""
        self._clean()
        return self._heap[0][0]

    def poll(self, now: float) -> list[ScheduleAction]:
        """Every action due at ``now``, soonest first; each comes back one interval later."""
        out: list[ScheduleAction] = []
        while True:
            self._clean()
            due, _, kind, key = self._heap[0]
            if due > now:
                return out
            self._set((kind, key), now + self._interval[kind])
            out.append(_action(kind, key))

    # -- internals

    def _add(self, task: _Task, now: float, at_once: bool) -> None:
        if not isinstance(task[1], bytes) or not task[1]:
            raise InvalidInput("a scheduled key is non-empty bytes")
        if task not in self._due:
            self._set(task, now if at_once else now + self._interval[task[0]])

    def _set(self, task: _Task, due: float) -> None:
        self._counter += 1
        self._due[task] = self._counter
        heapq.heappush(self._heap, (due, self._counter, *task))
        if len(self._heap) > 2 * len(self._due) + 64:
            self._heap = [i for i in self._heap if self._due.get((i[2], i[3])) == i[1]]
            heapq.heapify(self._heap)

    def _clean(self) -> None:
        """Drop heap items of untracked or rescheduled tasks (the two periodic ones never go)."""
        heap = self._heap
        while self._due.get((heap[0][2], heap[0][3])) != heap[0][1]:
            heapq.heappop(heap)


def _action(kind: _Kind, key: bytes) -> ScheduleAction:
    if kind is _Kind.EXPIRE:
        return Expire()
    if kind is _Kind.REFRESH:
        return RefreshBuckets()
    if kind is _Kind.REPUBLISH:
        return Republish(key)
    return Reprovide(key)
