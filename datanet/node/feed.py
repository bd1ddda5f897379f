"""The catalog change feed: what `datanet watch` and ``catalog/watch`` stream.

The node publishes one :class:`CatalogEvent` per change of its catalog (a dataset
it did not hold, a higher sequence of one it held, a dataset withdrawn because it
was deprecated, its certificate revoked or it expired). :class:`CatalogFeed` hands
each event to every subscriber whose query :func:`matches` it, through a bounded
buffer per subscriber.

Why not trio memory channels: a slow watcher must never slow down ingest nor make
it fail, and must learn that it missed events. So each subscriber has a bounded
queue; :meth:`CatalogFeed.publish` never blocks and never raises; a subscriber whose
queue is full loses the event and, once it has room again (or when its queue runs
dry, or the feed closes), receives one ``overflow`` marker (:data:`OVERFLOW`) in the
place of the events it lost, carrying their count in ``lost``.

Invariants:
* Bounded: at most ``max_subscribers`` subscribers, each holding at most ``buffer``
  queued events (the overflow marker takes one of those slots); queries at most
  :data:`MAX_QUERY_LENGTH` characters and :data:`MAX_QUERY_TOKENS` word tokens.
* Order: a subscriber sees the events it matched in publish order; an overflow
  marker sits exactly where the lost events would have been.
* No global time: an event's ``at`` is set by whoever builds it (the node reads
  the clock once per change); the feed reads no clock.
* Leaving the ``subscribe`` block unsubscribes, whatever ends it (cancellation
  included).
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

import trio

from datanet.errors import InvalidInput

__all__ = [
    "EVENT_KINDS",
    "MAX_QUERY_LENGTH",
    "MAX_QUERY_TOKENS",
    "OVERFLOW",
    "WITHDRAW_REASONS",
    "CatalogEvent",
    "CatalogFeed",
    "Subscription",
    "event_for",
    "matches",
    "tokens",
]

EVENT_KINDS = ("new", "updated", "withdrawn")
OVERFLOW = "overflow"
"""The kind of the marker a subscriber receives in place of events it lost."""
WITHDRAW_REASONS = ("deprecated", "revoked", "expired")
MAX_QUERY_LENGTH = 512
"""The same bound as the catalog's search queries."""
MAX_QUERY_TOKENS = 16

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class CatalogEvent:
    """One change of the node's catalog.

    Attributes:
        kind: ``new``, ``updated``, ``withdrawn`` (or ``overflow`` for the marker).
        dataset_id: ``dn://…`` text ("" on the overflow marker).
        sequence: the descriptor's sequence (withdrawn: the withdrawal's).
        org: the publishing organization's ``did:key``.
        title, keywords, themes, description: the descriptor's text (withdrawn: of
            the copy held before, if any).
        reason: withdrawn only: ``deprecated``, ``revoked`` or ``expired``.
        at: when this node learned it (Unix seconds).
        lost: overflow marker only: how many events this subscriber missed.

    Raises:
        InvalidInput: an unknown ``kind`` or ``reason``.
    """

    kind: str
    dataset_id: str
    sequence: int
    org: str
    title: str = ""
    keywords: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    description: str = ""
    reason: str | None = None
    at: float = 0.0
    lost: int = 0

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS and self.kind != OVERFLOW:
            raise InvalidInput(f"unknown catalog event kind {self.kind[:40]!r}")
        if self.reason is not None and self.reason not in WITHDRAW_REASONS:
            raise InvalidInput(f"unknown withdrawal reason {self.reason[:40]!r}")

    @classmethod
    def overflow(cls, lost: int, at: float) -> CatalogEvent:
        """The marker that stands for ``lost`` events a subscriber missed."""
        return cls(OVERFLOW, "", 0, "", at=at, lost=lost)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe rendering; the overflow marker is ``{kind, lost, at}`` only."""
        if self.kind == OVERFLOW:
            return {"kind": OVERFLOW, "lost": self.lost, "at": self.at}
        return {
            "kind": self.kind,
            "dataset_id": self.dataset_id,
            "sequence": self.sequence,
            "org": self.org,
            "title": self.title,
            "keywords": list(self.keywords),
            "themes": list(self.themes),
            "description": self.description,
            "reason": self.reason,
            "at": self.at,
        }


class _DescriptorText(Protocol):
    """What :func:`event_for` reads (``datanet.records.descriptor.Descriptor`` fits)."""

    @property
    def dataset_id(self) -> Any: ...
    @property
    def sequence(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def keywords(self) -> tuple[str, ...]: ...
    @property
    def themes(self) -> tuple[str, ...]: ...


def event_for(
    kind: str,
    descriptor: _DescriptorText,
    *,
    at: float,
    reason: str | None = None,
    sequence: int | None = None,
) -> CatalogEvent:
    """The event for ``descriptor`` (``sequence`` overrides its own, e.g. a withdrawal's).

    Raises:
        InvalidInput: an unknown ``kind`` or ``reason``.
    """
    dataset_id = descriptor.dataset_id
    return CatalogEvent(
        kind=kind,
        dataset_id=str(dataset_id),
        sequence=descriptor.sequence if sequence is None else sequence,
        org=str(dataset_id.org),
        title=descriptor.title,
        keywords=tuple(descriptor.keywords),
        themes=tuple(descriptor.themes),
        description=descriptor.description,
        reason=reason,
        at=at,
    )


# --- matching -----------------------------------------------------------------------


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def tokens(text: str) -> list[str]:
    """The word tokens of ``text`` as the catalog sees them: ``\\w+``, case- and accent-folded."""
    return _WORD.findall(_fold(text))


def _check_query(query: str) -> tuple[str, ...]:
    if not isinstance(query, str):
        raise InvalidInput("a watch query is text")
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidInput(f"a watch query is at most {MAX_QUERY_LENGTH} characters")
    return tuple(tokens(query)[:MAX_QUERY_TOKENS])


def _event_words(event: CatalogEvent) -> frozenset[str]:
    parts: Iterable[str] = (event.title, event.description, *event.keywords, *event.themes)
    return frozenset(w for part in parts for w in tokens(part))


def _all_prefixes(wanted: tuple[str, ...], words: frozenset[str]) -> bool:
    return all(any(w.startswith(q) for w in words) for q in wanted)


def matches(query: str, event: CatalogEvent) -> bool:
    """Whether ``event`` is one a watcher of ``query`` wants.

    Every word token of ``query`` must occur as the prefix of a word of the event's
    title, description, keywords or themes (``"clim temp"`` matches "Climate
    temperatures"); ``""`` (no word at all) matches every event. A withdrawn event is
    matched the same way against the text it carries (that of the copy held before),
    so one without text matches only ``""``. The overflow marker always matches.
    No stemming: ``"climates"`` does not match "climate".

    Raises:
        InvalidInput: ``query`` is longer than :data:`MAX_QUERY_LENGTH` characters.
    """
    wanted = _check_query(query)
    if not wanted or event.kind == OVERFLOW:
        return True
    return _all_prefixes(wanted, _event_words(event))


# --- the feed -----------------------------------------------------------------------


class Subscription:
    """One subscriber: an async context manager, and the async iterator of its events.

    Obtained from :meth:`CatalogFeed.subscribe`; ``async with`` registers it (and may
    raise :class:`InvalidInput`), leaving the block unregisters it. Iteration ends
    when the feed is closed and the queue is drained.
    """

    def __init__(self, feed: CatalogFeed, wanted: tuple[str, ...], buffer: int) -> None:
        self._feed = feed
        self.wanted = wanted
        self._buffer = buffer
        self._queue: deque[CatalogEvent] = deque()
        self._lost = 0
        self._lost_at = 0.0
        self._wakeup = trio.Event()
        self._active = False
        self._ended = False

    # -- the feed's side -----------------------------------------------------------
    def _offer(self, event: CatalogEvent) -> None:
        """Queue ``event``, or count it lost; never blocks."""
        if self._lost:
            if len(self._queue) >= self._buffer:
                self._count_lost(event)
                return
            lost = self._lost
            if self._queue and self._queue[-1].kind == OVERFLOW:  # no two markers in a row
                lost += self._queue.pop().lost
            self._queue.append(CatalogEvent.overflow(lost, self._lost_at))
            self._lost = 0
        if len(self._queue) >= self._buffer:
            self._count_lost(event)
            return
        self._queue.append(event)
        self._wakeup.set()

    def _count_lost(self, event: CatalogEvent) -> None:
        self._lost += 1
        self._lost_at = event.at
        self._wakeup.set()

    def _end(self) -> None:
        self._ended = True
        self._wakeup.set()

    # -- the subscriber's side -----------------------------------------------------
    async def __aenter__(self) -> Self:
        self._feed._register(self)
        self._active = True
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._active = False
        self._ended = True
        self._feed._unregister(self)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> CatalogEvent:
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._lost:
                marker = CatalogEvent.overflow(self._lost, self._lost_at)
                self._lost = 0
                return marker
            if self._ended or not self._active:
                raise StopAsyncIteration
            self._wakeup = trio.Event()
            await self._wakeup.wait()

    @property
    def queued(self) -> int:
        """Events waiting to be read."""
        return len(self._queue)


class CatalogFeed:
    """Fan-out of catalog events to bounded subscribers.

    Args:
        buffer: events each subscriber may have queued before it starts losing them.
        max_subscribers: subscribers at once; one more is refused.

    Raises:
        ValueError: a bound below 1.
    """

    def __init__(self, *, buffer: int = 256, max_subscribers: int = 64) -> None:
        if buffer < 1 or max_subscribers < 1:
            raise ValueError("the feed's buffer and subscriber limit are at least 1")
        self.buffer = buffer
        self.max_subscribers = max_subscribers
        self._subs: list[Subscription] = []
        self._closed = False
        self.published = 0

    @property
    def subscribers(self) -> int:
        """How many subscribers are registered now."""
        return len(self._subs)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def subscribe(self, query: str = "") -> Subscription:
        """A subscription to the events that :func:`matches` ``query``.

        Use as ``async with feed.subscribe(q) as events: async for event in events``.

        Raises:
            InvalidInput: ``query`` is too long (at once), or ``max_subscribers``
                subscribers are registered already (on entering the block).
        """
        return Subscription(self, _check_query(query), self.buffer)

    def publish(self, event: CatalogEvent) -> None:
        """Hand ``event`` to every matching subscriber; never blocks, never raises."""
        if self._closed:
            return
        self.published += 1
        words: frozenset[str] | None = None
        for sub in self._subs:
            if sub.wanted:
                if words is None:
                    words = _event_words(event)
                if not _all_prefixes(sub.wanted, words):
                    continue
            sub._offer(event)

    def close(self) -> None:
        """End every subscription once drained (the node stops); later publishes are dropped."""
        self._closed = True
        for sub in self._subs:
            sub._end()

    def _register(self, sub: Subscription) -> None:
        if len(self._subs) >= self.max_subscribers:
            raise InvalidInput(
                f"too many catalog watchers ({self.max_subscribers}); close one and retry"
            )
        if self._closed:
            sub._end()
        self._subs.append(sub)

    def _unregister(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
