"""Witnessing other organizations' audit logs: a pure state machine (sans-I/O).

A node of one organization keeps, for every log node of *other*
organizations, the last signed tree head it checked. When a newer head
arrives (gossip, or a direct answer) it asks the log node for a consistency
proof from the last checked head to the new one; a proof that holds makes the
new head the last one (the caller stores it and cosigns it), anything else is
an alarm:

* ``shrink``: a head with fewer entries than the last one checked, signed later
  than it (an older head arriving late is checked by a proof instead: it must
  be a prefix of the last one);
* ``fork``: a head of the same size as the last one, with another root;
* ``bad_proof``: the log node could not prove the new head extends the last;
* ``bad_head``: the log node's heads changed organization.

The first head seen of a log is accepted as it is (trust on first use; the
caller records it). A log that raised an alarm is *reported, not trusted*:
later heads are still checked against the last head that was proven, each
inconsistency raises again (the same tree signed again with a newer time is
the same inconsistency and raises once), and nothing is ever accepted that was
not proven to extend that head, so a forked history is never taken for the
real one.

Inputs: :meth:`Witness.head_seen` (a head whose signature and certificate the
caller verified), :meth:`Witness.proof_result` (the proof was fetched and
checked), :meth:`Witness.proof_failed` (the log node could not be asked: retry
later, no alarm) and :meth:`Witness.tick` (retries fall due). Outputs:
:class:`FetchConsistency`, :class:`Accept` and :class:`Alarm` actions.

Who witnesses a log is decided by :func:`is_witness`: the
``WITNESSES_PER_LOG`` nodes nearest to the log's witness key (:func:`witness_key`)
in the DHT's key space, as far as a node's routing table knows. Every node of a
network witnessing every log would cost each log node one proof request and one
cosignature per head *per node*: at 100 nodes, a publish drew about 90 of each
onto the publisher within a second.

Invariants:
* Pure: no clock, no randomness, no I/O; ``now`` is passed in (Unix seconds).
* At most one consistency fetch per log is outstanding; heads that arrive
  meanwhile wait, one per log (the largest wins; same size: the newest).
* Memory is bounded: at most ``max_logs`` logs are followed (the least
  recently heard of without a fetch outstanding is forgotten first), and each
  holds at most three heads (last, being checked, waiting).
* Only a head proven consistent with the last accepted head (or the very first
  head of a log) is ever accepted.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TypeAlias

from routing.keyspace import key_of

__all__ = [
    "ALARM_KINDS",
    "RETRY_FIRST",
    "RETRY_MAX",
    "WITNESSES_PER_LOG",
    "Accept",
    "Alarm",
    "AlarmKind",
    "FetchConsistency",
    "SeenHead",
    "Witness",
    "WitnessAction",
    "is_witness",
    "witness_key",
]

AlarmKind: TypeAlias = Literal["shrink", "fork", "bad_proof", "bad_head"]
ALARM_KINDS: tuple[AlarmKind, ...] = ("shrink", "fork", "bad_proof", "bad_head")
#: First delay before asking an unreachable log node again; it doubles up to RETRY_MAX.
RETRY_FIRST = 5.0
RETRY_MAX = 300.0
#: Longest ``detail`` text of an alarm.
MAX_DETAIL = 400
#: How many nodes witness each log: those nearest to its witness key. Of them, the
#: nodes of the log's own organization do not witness it, so a log of one of 8
#: organizations has about 7 witnesses.
WITNESSES_PER_LOG = 8
_WITNESS_KEY_PREFIX = b"/dn/witness/"


def witness_key(log_node: bytes) -> bytes:
    """The DHT key whose nearest nodes witness ``log_node``'s log (its binary peer id).

    A hash of the peer id, not the id itself: the witnesses of a log are then not
    its own DHT neighbours, which it chose by choosing its key.
    """
    return hashlib.sha256(_WITNESS_KEY_PREFIX + log_node).digest()


def is_witness(
    self_id: bytes, known: Iterable[bytes], log_node: bytes, count: int = WITNESSES_PER_LOG
) -> bool:
    """Whether ``self_id`` is one of the ``count`` nodes nearest to ``log_node``'s witness key.

    Args:
        self_id: this node's binary peer id.
        known: peer ids this node knows, at least the ``count`` it knows nearest to
            the witness key (its routing table's answer); ``self_id`` and
            ``log_node`` among them are ignored.
        log_node: the log node's binary peer id (it never witnesses itself).
        count: witnesses per log.

    A node's routing table knows its own neighbourhood best, which is where this
    question is decided: when the key is far from the node, even the peers it
    knows there are nearer than it. A node that knows fewer than ``count`` peers
    witnesses every log, as every node of a small network does.
    """
    if self_id == log_node:
        return False
    target = key_of(witness_key(log_node))
    mine = key_of(self_id) ^ target
    nearer = {p for p in known if p not in (self_id, log_node) and key_of(p) ^ target < mine}
    return len(nearer) < count


@dataclass(frozen=True)
class SeenHead:
    """A verified tree head as the witness keeps it.

    Attributes:
        log_node: the log node's binary peer id.
        org: its organization (as text).
        size, root, ts: the head's fields.
        raw: the signed envelope bytes (evidence; ship these).
        from_peer: who sent it (binary peer id).
        seen_at: when it arrived.
    """

    log_node: bytes
    org: str
    size: int
    root: bytes
    ts: int
    raw: bytes
    from_peer: bytes
    seen_at: float

    def same_tree(self, other: SeenHead) -> bool:
        """Whether both heads name the same tree (size and root)."""
        return self.size == other.size and self.root == other.root


@dataclass(frozen=True)
class FetchConsistency:
    """Action: ask ``log_node`` for the consistency proof ``from_size -> to_size``.

    Check it with ``verify_consistency(from_size, to_size, from_root, to_root,
    proof)``, then call :meth:`Witness.proof_result` (or
    :meth:`Witness.proof_failed` if the node could not be asked). ``head`` is the
    head being checked: usually the new, larger one (``to``); for an older head
    that arrived late it is the smaller one (``from``), and the last accepted
    head stays.
    """

    log_node: bytes
    from_size: int
    from_root: bytes
    to_size: int
    to_root: bytes
    head: SeenHead


@dataclass(frozen=True)
class Accept:
    """Action: ``head`` is now the last checked head of ``log_node``: store it, cosign it.

    ``first`` is True for a log's first head (trust on first use, nothing proven).
    """

    log_node: bytes
    head: SeenHead
    first: bool = False


@dataclass(frozen=True)
class Alarm:
    """Action: ``log_node``'s log is inconsistent; keep ``heads`` (raw envelopes) as evidence."""

    kind: AlarmKind
    log_node: bytes
    org: str
    detail: str
    heads: tuple[bytes, ...]


WitnessAction: TypeAlias = FetchConsistency | Accept | Alarm


class _Log:
    """What the witness holds about one log."""

    __slots__ = (
        "alarmed",
        "alarms",
        "behind",
        "failures",
        "last",
        "pending",
        "retry_at",
        "waiting",
    )

    def __init__(self, last: SeenHead) -> None:
        self.last = last
        self.pending: SeenHead | None = None  # being checked (one fetch outstanding)
        self.behind = False  # the pending head is older than ``last`` (a late arrival)
        self.waiting: SeenHead | None = None  # arrived meanwhile (or a fetch to retry)
        self.retry_at = 0.0
        self.failures = 0
        self.alarms = 0
        self.alarmed: tuple[int, bytes] | None = None  # the tree of the last alarm


def _newer(a: SeenHead, b: SeenHead | None) -> bool:
    """Whether ``a`` should replace ``b`` as the waiting head (larger, then newer)."""
    return b is None or (a.size, a.ts) > (b.size, b.ts)


def _clip(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)[:MAX_DETAIL]


class Witness:
    """Follows other organizations' logs; see the module docstring.

    Args:
        me: this node's binary peer id (its own log is not witnessed here).
        my_org: this node's organization (logs of the same org are not witnessed).
        max_logs: the most logs followed at once.
        logs: last heads to start from (from the caller's store), oldest first.
    """

    def __init__(
        self,
        me: bytes,
        my_org: str,
        *,
        max_logs: int = 10_000,
        logs: tuple[SeenHead, ...] | list[SeenHead] = (),
    ) -> None:
        if max_logs < 1:
            raise ValueError("max_logs must be at least 1")
        self.me = me
        self.my_org = my_org
        self.max_logs = max_logs
        self._logs: OrderedDict[bytes, _Log] = OrderedDict()
        self.counters: dict[str, int] = {
            "heads_seen": 0,
            "accepted": 0,
            "fetches": 0,
            "fetch_failures": 0,
            "alarms": 0,
            "evicted": 0,
            "ignored_own_org": 0,
        }
        for head in logs:
            self._logs[head.log_node] = _Log(head)
            self._bound()

    # -- reading -----------------------------------------------------------

    def __len__(self) -> int:
        return len(self._logs)

    def last(self, log_node: bytes) -> SeenHead | None:
        """The last accepted head of ``log_node``, or None."""
        st = self._logs.get(log_node)
        return None if st is None else st.last

    def reported(self, log_node: bytes) -> bool:
        """Whether ``log_node``'s log has raised an alarm here."""
        st = self._logs.get(log_node)
        return st is not None and st.alarms > 0

    def pending(self, log_node: bytes) -> SeenHead | None:
        """The head being checked for ``log_node`` (a fetch is outstanding), or None."""
        st = self._logs.get(log_node)
        return None if st is None else st.pending

    def witnesses(self, org: str, log_node: bytes) -> bool:
        """Whether a head of ``log_node`` (of ``org``) is this witness's business."""
        return log_node != self.me and org != self.my_org

    # -- inputs ------------------------------------------------------------

    def head_seen(
        self,
        log_node: bytes,
        org: str,
        size: int,
        root: bytes,
        ts: int,
        *,
        raw_head: bytes,
        from_peer: bytes,
        now: float,
    ) -> list[WitnessAction]:
        """A verified head of ``log_node`` arrived; returns what to do."""
        if not self.witnesses(org, log_node):
            self.counters["ignored_own_org"] += 1
            return []
        self.counters["heads_seen"] += 1
        head = SeenHead(log_node, org, size, root, ts, bytes(raw_head), from_peer, now)
        st = self._logs.get(log_node)
        if st is None:
            self._logs[log_node] = _Log(head)
            self._bound()
            self.counters["accepted"] += 1
            return [Accept(log_node, head, first=True)]
        self._logs.move_to_end(log_node)
        if head.org != st.last.org:
            return [
                self._alarm(
                    st,
                    "bad_head",
                    head,
                    f"the log's heads were signed for organization {st.last.org[:80]}, "
                    f"now for {head.org[:80]}",
                )
            ]
        if st.alarmed == (head.size, head.root):
            return []  # the same tree signed again: already reported
        immediate = self._compare(st, head)
        if immediate is not None:
            return immediate
        if st.pending is not None or now < st.retry_at:
            if (st.pending is None or not head.same_tree(st.pending)) and _newer(head, st.waiting):
                st.waiting = head
            return []
        return [self._fetch(st, head)]

    def proof_result(self, log_node: bytes, ok: bool, why: str, now: float) -> list[WitnessAction]:
        """The outstanding fetch's proof was checked: ``ok`` or not (``why``)."""
        st = self._logs.get(log_node)
        if st is None or st.pending is None:
            return []
        head, st.pending = st.pending, None
        st.failures = 0
        st.retry_at = 0.0
        out: list[WitnessAction] = []
        if ok and st.behind:
            pass  # a late, older head that is a prefix of the last one: nothing new
        elif ok:
            st.last = head
            self.counters["accepted"] += 1
            out.append(Accept(log_node, head))
        else:
            out.append(
                self._alarm(
                    st,
                    "bad_proof",
                    head,
                    f"no proof that the heads of {head.size} and {st.last.size} entries "
                    f"are of one append-only log: {why}",
                )
            )
        out.extend(self._next(st, now))
        return out

    def proof_failed(self, log_node: bytes, why: str, now: float) -> list[WitnessAction]:
        """The log node could not be asked (unreachable, timeout): retry later, no alarm."""
        del why  # the caller logs it
        st = self._logs.get(log_node)
        if st is None or st.pending is None:
            return []
        self.counters["fetch_failures"] += 1
        head, st.pending = st.pending, None
        if _newer(head, st.waiting):
            st.waiting = head
        st.failures += 1
        st.retry_at = now + min(RETRY_MAX, RETRY_FIRST * 2 ** min(st.failures - 1, 16))
        return []

    def tick(self, now: float) -> list[WitnessAction]:
        """Fetches whose retry fell due."""
        out: list[WitnessAction] = []
        for st in self._logs.values():
            if st.pending is None and st.waiting is not None and now >= st.retry_at:
                out.extend(self._next(st, now))
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do, or None."""
        due = [
            st.retry_at
            for st in self._logs.values()
            if st.pending is None and st.waiting is not None
        ]
        return min(due) if due else None

    # -- internals ---------------------------------------------------------

    def _compare(self, st: _Log, head: SeenHead) -> list[WitnessAction] | None:
        """What ``head`` means against the last accepted head, unless a proof is needed."""
        last = st.last
        if head.size < last.size and head.ts > last.ts:
            return [
                self._alarm(
                    st,
                    "shrink",
                    head,
                    f"the log shrank from {last.size} to {head.size} entries",
                )
            ]
        if head.size == last.size:
            if head.root != last.root:
                return [
                    self._alarm(
                        st,
                        "fork",
                        head,
                        f"two different roots for the same size {head.size}",
                    )
                ]
            if head.ts > last.ts:  # the same tree signed again later: nothing to prove
                st.last = head
                self.counters["accepted"] += 1
                return [Accept(head.log_node, head)]
            return []
        if st.pending is not None and head.size == st.pending.size:
            if head.root != st.pending.root:
                return [
                    self._alarm(
                        st,
                        "fork",
                        head,
                        f"two different roots for the same size {head.size}",
                        other=st.pending,
                    )
                ]
            return []
        return None

    def _fetch(self, st: _Log, head: SeenHead) -> FetchConsistency:
        st.pending = head
        self.counters["fetches"] += 1
        last = st.last
        st.behind = head.size < last.size
        if st.behind:  # prove the late head is a prefix of the last one
            return FetchConsistency(head.log_node, head.size, head.root, last.size, last.root, head)
        return FetchConsistency(head.log_node, last.size, last.root, head.size, head.root, head)

    def _next(self, st: _Log, now: float) -> list[WitnessAction]:
        """Check the waiting head, if any."""
        if st.waiting is None or now < st.retry_at:
            return []
        head, st.waiting = st.waiting, None
        immediate = self._compare(st, head)
        if immediate is not None:
            return immediate
        return [self._fetch(st, head)]

    def _alarm(
        self,
        st: _Log,
        kind: AlarmKind,
        head: SeenHead,
        detail: str,
        other: SeenHead | None = None,
    ) -> Alarm:
        st.alarms += 1
        st.alarmed = (head.size, head.root)
        self.counters["alarms"] += 1
        evidence = (other or st.last).raw
        return Alarm(kind, head.log_node, head.org, _clip(detail), (evidence, head.raw))

    def _bound(self) -> None:
        while len(self._logs) > self.max_logs:
            victim = next((k for k, st in self._logs.items() if st.pending is None), None)
            if victim is None:  # every log has a fetch outstanding: drop the oldest anyway
                victim = next(iter(self._logs))
            del self._logs[victim]
            self.counters["evicted"] += 1
