"""Anti-entropy: range-based set reconciliation of two catalogs (sans-I/O).

Every node holds the whole network's catalog; gossip carries new records and
anti-entropy repairs what gossip missed. Two nodes compare their sets of
:class:`Item` (``timestamp``, ``id`` = sha256 of the record's signed bytes) and
find exactly the items one has and the other lacks, at a cost that grows with
the difference rather than with the catalog: range-based set reconciliation
(Aljoscha Meyer, "Range-Based Set Reconciliation"), in the manner of the public
Negentropy protocol but with datanet's own frames.

The items are ordered by ``(timestamp, id)``. A message is a list of contiguous
ranges ``[lower, upper)`` (each lower bound is the previous upper bound, the
first is the smallest bound; the space after the last range is skipped). For
each range a side says one of:

* ``SKIP`` - nothing to do here (the sets agree, or it is resolved);
* ``FINGERPRINT`` - a 16-byte digest of my items in the range; the receiver
  compares it with its own and, if they differ, lists its items when it holds
  few of them (the initiator at most :data:`IDLIST_THRESHOLD`, the responder at
  most :data:`RESPONDER_IDLIST_THRESHOLD`), else splits the range into
  ``min(16, isqrt(count))`` parts of equal counts with their fingerprints (a
  small range with one difference costs fewer bytes in few parts);
* ``IDLIST`` - my items in the range, by id: the initiator sends 16-byte id
  prefixes, the responder full ids (the initiator then knows both sides);
* ``IDDIFF`` - the responder's answer to an id list: its ids the initiator
  lacks (full) and the positions in the initiator's list it lacks itself (a
  responder holding more than :data:`IDDIFF_THRESHOLD` items there splits
  instead).

* ``DEFER`` - "my frame was full: send me again what you sent for this span"
  (the sender remembers the ranges of its last message that needed an answer).

Why prefix lists and diffs: a differing range of ``n`` items then costs the
initiator ``16 n`` bytes and the responder only the actual differences, where
full lists both ways would cost ``64 n``; the responder answers by index,
which is why the initiator remembers (for one round) the lists it sent.

Fingerprint (as Negentropy): ``sha256(sum of ids mod 2**256, little-endian, ||
varint(count))[:16]``. The sum is incremental, so :class:`SyncIndex` keeps it per
bucket of about 512 items and a range's fingerprint costs two partial buckets
plus a prefix sum over buckets, never a walk over every item.

Wire format of one message (all varints are unsigned LEB128, at most 10 bytes)::

    message  = version:u8 (= SYNC_VERSION) range*
    range    = bound mode:u8 payload
    bound    = ts_code:varint (0 = infinity, else 1 + ts - previous bound's ts)
               prefix_len:varint (<= 32) prefix:bytes
    SKIP        -
    FINGERPRINT fp:16 bytes
    IDLIST      count:varint width:u8 (16 or 32) ids:count*width bytes
    IDDIFF      count:varint ids:count*32 bytes  lacking:varint  index-deltas:varint*
    DEFER       -

Invariants:
* Pure: no clock, no randomness, no I/O; bytes in, bytes and id sets out.
* :meth:`Reconciler.reconcile` raises only :class:`~identity.errors.DecodeError`,
  :class:`~identity.errors.RecordTooLarge` or :class:`~identity.errors.InvalidInput`
  on any input bytes, and never returns a message longer than ``frame_size_limit``
  (answers that do not fit are deferred: the peer sends those ranges again, or,
  where that would defer a deferral, one fingerprint stands for them).
* Bounds in a message strictly increase; a message that goes backwards, lists
  more than :data:`MAX_IDLIST` ids in a range or answers a list we never sent is
  refused.
* When the initiator is done, ``have_ids`` and ``need_ids`` are exactly the
  symmetric difference of the two sets (if neither changed meanwhile; a set that
  changes during a reconciliation costs more rounds, never a wrong answer about
  the items both held throughout).
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from identity.errors import DecodeError, InvalidInput, RecordTooLarge

__all__ = [
    "BRANCHING",
    "FINGERPRINT_SIZE",
    "IDDIFF_THRESHOLD",
    "IDLIST_THRESHOLD",
    "ID_SIZE",
    "MAX_IDLIST",
    "MAX_TIMESTAMP",
    "MIN_FRAME_SIZE",
    "PREFIX_SIZE",
    "RESPONDER_IDLIST_THRESHOLD",
    "SYNC_VERSION",
    "Item",
    "Reconciler",
    "SyncIndex",
    "fingerprint",
]

ID_SIZE = 32
"""Bytes of an item id (sha256 of the record's signed bytes)."""
PREFIX_SIZE = 16
"""Bytes of an id the initiator sends in its id lists (collisions need 2**64 work)."""
FINGERPRINT_SIZE = 16
SYNC_VERSION = 0x01
"""First byte of every message; a peer speaking another version is refused."""
BRANCHING = 16
"""Most parts a range is split into when fingerprints differ."""
IDLIST_THRESHOLD = 32
"""The initiator lists (16-byte prefixes) a differing range of at most this many items."""
RESPONDER_IDLIST_THRESHOLD = 8
"""The responder lists (full ids) a differing range of at most this many items; it
splits bigger ones, so that the cheaper prefix lists and diffs do most of the work."""
IDDIFF_THRESHOLD = 2 * IDLIST_THRESHOLD
"""The responder answers an id list with a diff only if it holds at most this many items."""
MAX_IDLIST = 256
"""Most ids one range of a message may carry (a decoder bound)."""
MAX_TIMESTAMP = 2**64 - 2
"""Largest item timestamp; ``2**64 - 1`` is the infinite bound."""
MIN_FRAME_SIZE = 4096
"""Smallest acceptable ``frame_size_limit`` (one split, list or diff always fits)."""

_INF_TS = 2**64 - 1
_MOD = 2**256
_SKIP, _FINGERPRINT, _IDLIST, _IDDIFF, _DEFER = 0, 1, 2, 3, 4
_RESERVE = 128  # room kept for the closing fingerprint range when a frame fills up

Key = tuple[int, bytes]
"""An item or a bound as compared: ``(timestamp, id or id prefix)``."""
_MIN: Key = (0, b"")
_INF: Key = (_INF_TS, b"")


@dataclass(frozen=True, order=True)
class Item:
    """One record in the reconciled set: its timestamp and id (sha256 of its signed bytes)."""

    timestamp: int
    id: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.id, bytes) or len(self.id) != ID_SIZE:
            raise InvalidInput(f"an item id is {ID_SIZE} bytes")
        if (
            not isinstance(self.timestamp, int)
            or isinstance(self.timestamp, bool)
            or not 0 <= self.timestamp <= MAX_TIMESTAMP
        ):
            raise InvalidInput(f"an item timestamp is an integer in [0, {MAX_TIMESTAMP}]")


def fingerprint(id_sum: int, count: int) -> bytes:
    """The fingerprint of a range whose ids (little-endian integers) sum to ``id_sum``."""
    data = (id_sum % _MOD).to_bytes(32, "little") + _varint(count)
    return hashlib.sha256(data).digest()[:FINGERPRINT_SIZE]


# ----------------------------------------------------------------------------- index

_LOAD = 512  # target bucket size; a bucket splits at twice this


class SyncIndex:
    """Sorted set of Items with O(log n) insert/remove and range fingerprints.

    Items live in sorted buckets of up to ``2 * 512`` keys, each with the sum of
    its ids; a prefix sum over the buckets is rebuilt lazily after changes, so a
    batch of inserts costs one rebuild and a range fingerprint costs two partial
    buckets. Positions (``0 .. len``) address the items in order.
    """

    __slots__ = ("_buckets", "_cum_counts", "_cum_sums", "_len", "_maxes", "_sums", "_vals")

    def __init__(self, items: Iterable[Item] = ()) -> None:
        keys = sorted({(i.timestamp, i.id) for i in items})
        self._buckets: list[list[Key]] = [keys[i : i + _LOAD] for i in range(0, len(keys), _LOAD)]
        self._vals: list[list[int]] = [
            [int.from_bytes(k[1], "little") for k in b] for b in self._buckets
        ]
        self._sums = [sum(v) for v in self._vals]
        self._maxes = [b[-1] for b in self._buckets]
        self._len = len(keys)
        self._cum_counts: list[int] | None = None
        self._cum_sums: list[int] | None = None

    def __len__(self) -> int:
        return self._len

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, Item):
            return False
        key = (item.timestamp, item.id)
        b = bisect_left(self._maxes, key)
        if b == len(self._maxes):
            return False
        bucket = self._buckets[b]
        i = bisect_left(bucket, key)
        return i < len(bucket) and bucket[i] == key

    def __iter__(self) -> Iterator[Item]:
        for bucket in self._buckets:
            for ts, id_ in bucket:
                yield Item(ts, id_)

    def add(self, item: Item) -> bool:
        """Insert ``item``; False if it was already there."""
        key = (item.timestamp, item.id)
        value = int.from_bytes(item.id, "little")
        if not self._buckets:
            self._buckets.append([key])
            self._vals.append([value])
            self._sums.append(value)
            self._maxes.append(key)
            self._len = 1
            self._dirty()
            return True
        b = bisect_left(self._maxes, key)
        if b == len(self._maxes):
            b -= 1
        bucket = self._buckets[b]
        i = bisect_left(bucket, key)
        if i < len(bucket) and bucket[i] == key:
            return False
        bucket.insert(i, key)
        self._vals[b].insert(i, value)
        self._sums[b] += value
        self._maxes[b] = bucket[-1]
        self._len += 1
        if len(bucket) > 2 * _LOAD:
            vals = self._vals[b]
            self._buckets[b : b + 1] = [bucket[:_LOAD], bucket[_LOAD:]]
            self._vals[b : b + 1] = [vals[:_LOAD], vals[_LOAD:]]
            self._sums[b : b + 1] = [sum(vals[:_LOAD]), sum(vals[_LOAD:])]
            self._maxes[b : b + 1] = [bucket[_LOAD - 1], bucket[-1]]
        self._dirty()
        return True

    def remove(self, item: Item) -> bool:
        """Remove ``item``; False if it was not there."""
        key = (item.timestamp, item.id)
        b = bisect_left(self._maxes, key)
        if b == len(self._maxes):
            return False
        bucket = self._buckets[b]
        i = bisect_left(bucket, key)
        if i == len(bucket) or bucket[i] != key:
            return False
        del bucket[i]
        self._sums[b] -= self._vals[b].pop(i)
        self._len -= 1
        if bucket:
            self._maxes[b] = bucket[-1]
        else:
            del self._buckets[b], self._vals[b], self._sums[b], self._maxes[b]
        self._dirty()
        return True

    # -- positions and ranges (used by the Reconciler)

    def _dirty(self) -> None:
        self._cum_counts = None
        self._cum_sums = None

    def _prefix(self) -> tuple[list[int], list[int]]:
        if self._cum_counts is None or self._cum_sums is None:
            counts, sums = [0], [0]
            for bucket, s in zip(self._buckets, self._sums, strict=True):
                counts.append(counts[-1] + len(bucket))
                sums.append(sums[-1] + s)
            self._cum_counts, self._cum_sums = counts, sums
        return self._cum_counts, self._cum_sums

    def _locate(self, pos: int) -> tuple[int, int]:
        """(bucket, offset) of position ``pos`` (``len`` maps past the last bucket)."""
        counts, _ = self._prefix()
        if pos >= self._len:
            return len(self._buckets), 0
        b = bisect_right(counts, pos) - 1
        return b, pos - counts[b]

    def position(self, bound: Key) -> int:
        """How many items sort before ``bound``."""
        b = bisect_left(self._maxes, bound)
        if b == len(self._maxes):
            return self._len
        counts, _ = self._prefix()
        return counts[b] + bisect_left(self._buckets[b], bound)

    def key_at(self, pos: int) -> Key:
        """The ``(timestamp, id)`` at position ``pos`` (``0 <= pos < len``)."""
        b, o = self._locate(pos)
        return self._buckets[b][o]

    def keys(self, lo: int, hi: int) -> list[Key]:
        """The keys at positions ``lo .. hi - 1``."""
        out: list[Key] = []
        b, o = self._locate(lo)
        left = hi - lo
        while left > 0 and b < len(self._buckets):
            part = self._buckets[b][o : o + left]
            out += part
            left -= len(part)
            b, o = b + 1, 0
        return out

    def fingerprint(self, lo: int, hi: int) -> bytes:
        """The fingerprint of the items at positions ``lo .. hi - 1``."""
        if hi <= lo:
            return fingerprint(0, 0)
        _, sums = self._prefix()
        b1, o1 = self._locate(lo)
        b2, o2 = self._locate(hi)
        if b1 == b2:
            total = sum(self._vals[b1][o1:o2])
        else:
            total = sum(self._vals[b1][o1:]) + sums[b2] - sums[b1 + 1]
            if b2 < len(self._buckets):
                total += sum(self._vals[b2][:o2])
        return fingerprint(total, hi - lo)


# ----------------------------------------------------------------------------- codec


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varint(self) -> int:
        result = 0
        for shift in range(0, 70, 7):
            if self.pos >= len(self.data):
                raise DecodeError("sync message truncated inside a varint")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                if result > _INF_TS:
                    raise DecodeError("sync message varint above 2**64")
                return result
        raise DecodeError("sync message varint longer than 10 bytes")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DecodeError("sync message truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(chunk)

    def byte(self) -> int:
        return self.take(1)[0]


class _Writer:
    """One outgoing message: ranges appended in order, bounds delta-encoded."""

    __slots__ = ("buf", "last", "last_ts")

    def __init__(self) -> None:
        self.buf = bytearray([SYNC_VERSION])
        self.last: Key = _MIN
        self.last_ts = 0

    def encode(self, parts: list[tuple[Key, int, bytes]], lower: Key) -> tuple[bytes, int]:
        """Encode ``parts`` (upper, mode, payload) after a skip up to ``lower`` if needed."""
        out = bytearray()
        last_ts = self.last_ts
        if lower != self.last:
            parts = [(lower, _SKIP, b""), *parts]
        for (ts, prefix), mode, payload in parts:
            if ts == _INF_TS:
                out += b"\x00"
            else:
                out += _varint(1 + ts - last_ts)
                last_ts = ts
            out += _varint(len(prefix))
            out += prefix
            out.append(mode)
            out += payload
        return bytes(out), last_ts

    def commit(self, encoded: bytes, last_ts: int, upper: Key) -> None:
        self.buf += encoded
        self.last = upper
        self.last_ts = last_ts

    @property
    def empty(self) -> bool:
        return len(self.buf) == 1


_Range = tuple[Key, Key, int, object]  # lower, upper, mode, payload


def _decode(message: bytes, limit: int) -> list[_Range]:
    if not isinstance(message, bytes | bytearray | memoryview):
        raise DecodeError(f"a sync message is bytes, not {type(message).__name__}")
    if len(message) > limit:
        raise RecordTooLarge(f"sync message is {len(message)} bytes; the limit is {limit}")
    if not message:
        raise DecodeError("empty sync message")
    if message[0] != SYNC_VERSION:
        raise DecodeError(f"sync message version {message[0]} (this node speaks {SYNC_VERSION})")
    r = _Reader(bytes(message))
    r.pos = 1
    ranges: list[_Range] = []
    lower = _MIN
    last_ts = 0
    while r.pos < len(r.data):
        if lower == _INF:
            raise DecodeError("sync message has a range after the infinite bound")
        code = r.varint()
        if code == 0:
            ts = _INF_TS
        else:
            ts = last_ts + code - 1
            if ts > MAX_TIMESTAMP:
                raise DecodeError("sync bound timestamp out of range")
            last_ts = ts
        plen = r.varint()
        if plen > ID_SIZE:
            raise DecodeError(f"sync bound prefix of {plen} bytes")
        prefix = r.take(plen)
        if ts == _INF_TS and prefix:
            raise DecodeError("the infinite sync bound has no id prefix")
        upper = (ts, prefix)
        if upper <= lower:
            raise DecodeError("sync bounds do not increase")
        mode = r.byte()
        payload: object
        if mode == _SKIP:
            payload = None
        elif mode == _FINGERPRINT:
            payload = r.take(FINGERPRINT_SIZE)
        elif mode == _IDLIST:
            count = r.varint()
            if count > MAX_IDLIST:
                raise RecordTooLarge(f"sync id list of {count} ids (limit {MAX_IDLIST})")
            width = r.byte()
            if width not in (PREFIX_SIZE, ID_SIZE):
                raise DecodeError(f"sync id list of {width}-byte ids")
            blob = r.take(count * width)
            payload = (width, [blob[i : i + width] for i in range(0, len(blob), width)])
        elif mode == _DEFER:
            payload = None
        elif mode == _IDDIFF:
            count = r.varint()
            if count > MAX_IDLIST:
                raise RecordTooLarge(f"sync id diff of {count} ids (limit {MAX_IDLIST})")
            blob = r.take(count * ID_SIZE)
            extra = [blob[i : i + ID_SIZE] for i in range(0, len(blob), ID_SIZE)]
            lacking = r.varint()
            if lacking > MAX_IDLIST:
                raise RecordTooLarge(f"sync id diff of {lacking} indices (limit {MAX_IDLIST})")
            indices: list[int] = []
            at = -1
            for _ in range(lacking):
                at += 1 + r.varint()
                if at >= MAX_IDLIST:
                    raise DecodeError("sync id diff index out of range")
                indices.append(at)
            payload = (extra, indices)
        else:
            raise DecodeError(f"unknown sync range mode {mode}")
        ranges.append((lower, upper, mode, payload))
        lower = upper
    return ranges


def _between(a: Key, b: Key) -> Key:
    """The shortest bound ``x`` with ``a < x <= b`` (``a < b`` are item keys)."""
    if a[0] != b[0]:
        return (b[0], b"")
    ida, idb = a[1], b[1]
    n = 0
    while n < len(idb) and n < len(ida) and ida[n] == idb[n]:
        n += 1
    return (b[0], idb[: n + 1])


# ----------------------------------------------------------------------------- reconciler


class Reconciler:
    """One side of one reconciliation. The initiator calls initiate(); both sides call
    reconcile(msg) with each frame received, getting the frame to send back (None when
    done). The initiator learns have_ids (it has, peer lacks) and need_ids (peer has,
    it lacks).

    The responder always answers (a 1-byte message when it has nothing to say: the
    initiator then finishes); only the initiator's :meth:`reconcile` returns None.

    Args:
        index: the live set (read, never changed, by the reconciler).
        frame_size_limit: the largest message this side sends or accepts.
        max_rounds: the most messages this side accepts.

    Raises:
        InvalidInput: ``frame_size_limit`` below :data:`MIN_FRAME_SIZE` or
            ``max_rounds`` below 1.
    """

    def __init__(
        self, index: SyncIndex, *, frame_size_limit: int = 60_000, max_rounds: int = 32
    ) -> None:
        if frame_size_limit < MIN_FRAME_SIZE:
            raise InvalidInput(f"frame_size_limit must be at least {MIN_FRAME_SIZE}")
        if max_rounds < 1:
            raise InvalidInput("max_rounds must be at least 1")
        self._index = index
        self._limit = frame_size_limit
        self._max_rounds = max_rounds
        self._initiator: bool | None = None
        self._pending: dict[tuple[Key, Key], list[bytes]] = {}
        self._sent: list[tuple[Key, Key, int]] = []  # ranges of our last message to answer
        self._done = False
        self.have_ids: set[bytes] = set()
        """Ids this side holds and the peer lacks (known to the initiator)."""
        self.need_ids: set[bytes] = set()
        """Ids the peer holds and this side lacks (known to the initiator)."""
        self.rounds = 0
        """Messages received so far."""
        self.bytes_sent = 0
        self.bytes_received = 0

    @property
    def done(self) -> bool:
        """Initiator: the sets are reconciled. Responder: its last answer said nothing."""
        return self._done

    def initiate(self) -> bytes:
        """The first message: the whole set, split into fingerprinted ranges (or listed).

        Raises:
            InvalidInput: called twice, or after :meth:`reconcile`.
        """
        if self._initiator is not None:
            raise InvalidInput("initiate() starts a reconciliation and is called once")
        self._initiator = True
        out = _Writer()
        parts = self._mismatch(_MIN, _INF, 0, len(self._index))
        encoded, last_ts = out.encode(parts, _MIN)
        out.commit(encoded, last_ts, _INF)
        self._remember(_MIN, parts)
        message = bytes(out.buf)
        self.bytes_sent += len(message)
        return message

    def reconcile(self, message: bytes) -> bytes | None:
        """Process the peer's message; the answer to send, or None when done (initiator).

        Raises:
            RecordTooLarge: ``message`` is above the frame limit, or a range lists
                too many ids.
            DecodeError: the bytes are not a sync message of this version.
            InvalidInput: more than ``max_rounds`` messages, a message after the
                end, or an answer to an id list (or a deferral of ranges) this
                side never sent.
        """
        if self._done and self._initiator:
            raise InvalidInput("the reconciliation is already done")
        self.rounds += 1
        if self.rounds > self._max_rounds:
            raise InvalidInput(f"reconciliation needs more than {self._max_rounds} rounds")
        ranges = _decode(message, self._limit)
        self.bytes_received += len(message)
        if self._initiator is None:
            self._initiator = False
        initiator = self._initiator
        pending, self._pending = self._pending, {}
        sent, self._sent = self._sent, []
        out = _Writer()
        index = self._index
        deferred: tuple[Key, Key, bool] | None = None
        # the ranges that need an answer: a full frame defers from the first one
        # that does not fit up to the last of them
        answerable = [
            i
            for i, (_, _, mode, _) in enumerate(ranges)
            if mode in (_FINGERPRINT, _DEFER) or (mode == _IDLIST and not initiator)
        ]
        last_answerable = answerable[-1] if answerable else -1
        for at, (lower, upper, mode, payload) in enumerate(ranges):
            if mode == _SKIP:
                continue
            if deferred is not None:
                # The frame is full: only apply what needs no answer.
                if initiator and mode in (_IDLIST, _IDDIFF):
                    self._apply(lower, upper, mode, payload, pending)
                continue
            chunks: list[tuple[Key, Key, list[tuple[Key, int, bytes]]]] = []
            if mode == _FINGERPRINT:
                assert isinstance(payload, bytes)
                lo, hi = index.position(lower), index.position(upper)
                if index.fingerprint(lo, hi) != payload:
                    chunks.append((lower, upper, self._mismatch(lower, upper, lo, hi)))
            elif mode == _DEFER:
                chunks = self._resend(lower, upper, sent)
            elif initiator:
                self._apply(lower, upper, mode, payload, pending)
            elif mode == _IDLIST:
                chunks.append((lower, upper, self._answer_list(lower, upper, payload)))
            else:
                raise InvalidInput("an id diff is sent only to the initiator")
            for chunk_lower, chunk_upper, parts in chunks:
                encoded, last_ts = out.encode(parts, chunk_lower)
                if len(out.buf) + len(encoded) + _RESERVE > self._limit:
                    # The peer resends what it sent (a deferral), unless that would
                    # defer one of its own deferrals: then a fingerprint stands in.
                    nested = any(r[2] == _DEFER for r in ranges[at : last_answerable + 1])
                    deferred = (chunk_lower, ranges[last_answerable][1], nested)
                    break
                out.commit(encoded, last_ts, chunk_upper)
                self._remember(chunk_lower, parts)
        if deferred is not None:
            lower, upper, nested = deferred
            if nested:
                lo, hi = index.position(lower), index.position(upper)
                parts = [(upper, _FINGERPRINT, index.fingerprint(lo, hi))]
                self._remember(lower, parts)
            else:
                parts = [(upper, _DEFER, b"")]
            encoded, last_ts = out.encode(parts, lower)
            out.commit(encoded, last_ts, upper)
        if initiator and out.empty:
            self._done = True
            return None
        if not initiator:
            self._done = out.empty
        message_out = bytes(out.buf)
        assert len(message_out) <= self._limit
        self.bytes_sent += len(message_out)
        return message_out

    def _remember(self, lower: Key, parts: list[tuple[Key, int, bytes]]) -> None:
        """Keep the ranges of ``parts`` the peer must answer, in case it defers them."""
        for upper, mode, _ in parts:
            if mode == _FINGERPRINT or (mode == _IDLIST and self._initiator):
                self._sent.append((lower, upper, mode))
            lower = upper

    def _resend(
        self, lower: Key, upper: Key, sent: list[tuple[Key, Key, int]]
    ) -> list[tuple[Key, Key, list[tuple[Key, int, bytes]]]]:
        """Our answer to a deferral: the ranges we sent in ``[lower, upper)``, afresh."""
        first = bisect_left(sent, (lower,))
        if first == len(sent) or sent[first][0] != lower:
            raise InvalidInput("a deferral of ranges this side did not send")
        index = self._index
        chunks: list[tuple[Key, Key, list[tuple[Key, int, bytes]]]] = []
        for part_lower, part_upper, mode in sent[first:]:
            if part_upper > upper:
                break
            lo, hi = index.position(part_lower), index.position(part_upper)
            if mode == _FINGERPRINT:
                parts = [(part_upper, _FINGERPRINT, index.fingerprint(lo, hi))]
            else:
                parts = self._mismatch(part_lower, part_upper, lo, hi)
            chunks.append((part_lower, part_upper, parts))
        return chunks

    # -- the three answers

    def _mismatch(self, lower: Key, upper: Key, lo: int, hi: int) -> list[tuple[Key, int, bytes]]:
        """Our answer to a range whose fingerprints differ: list it or split it."""
        index = self._index
        count = hi - lo
        if count <= (IDLIST_THRESHOLD if self._initiator else RESPONDER_IDLIST_THRESHOLD):
            keys = index.keys(lo, hi)
            if self._initiator:
                self._pending[(lower, upper)] = [k[1] for k in keys]
                blob = b"".join(k[1][:PREFIX_SIZE] for k in keys)
                width = PREFIX_SIZE
            else:
                blob = b"".join(k[1] for k in keys)
                width = ID_SIZE
            return [(upper, _IDLIST, _varint(count) + bytes([width]) + blob)]
        parts: list[tuple[Key, int, bytes]] = []
        start = lo
        branches = max(2, min(BRANCHING, math.isqrt(count)))  # every part holds an item
        for j in range(1, branches + 1):
            end = hi if j == branches else lo + j * count // branches
            bound = upper if j == branches else _between(index.key_at(end - 1), index.key_at(end))
            parts.append((bound, _FINGERPRINT, index.fingerprint(start, end)))
            start = end
        return parts

    def _answer_list(self, lower: Key, upper: Key, payload: object) -> list[tuple[Key, int, bytes]]:
        """The responder's answer to the initiator's id list."""
        assert isinstance(payload, tuple)
        width, theirs = payload
        if width != PREFIX_SIZE:
            raise InvalidInput("the initiator lists id prefixes of 16 bytes")
        index = self._index
        lo, hi = index.position(lower), index.position(upper)
        if hi - lo > IDDIFF_THRESHOLD:
            return self._mismatch(lower, upper, lo, hi)
        mine = {k[1][:PREFIX_SIZE]: k[1] for k in index.keys(lo, hi)}
        their_set = set(theirs)
        extra = [full for prefix, full in mine.items() if prefix not in their_set]
        lacking = [i for i, prefix in enumerate(theirs) if prefix not in mine]
        payload_out = bytearray(_varint(len(extra)))
        payload_out += b"".join(extra)
        payload_out += _varint(len(lacking))
        at = -1
        for i in lacking:
            payload_out += _varint(i - at - 1)
            at = i
        return [(upper, _IDDIFF, bytes(payload_out))]

    def _apply(
        self,
        lower: Key,
        upper: Key,
        mode: int,
        payload: object,
        pending: dict[tuple[Key, Key], list[bytes]],
    ) -> None:
        """The initiator learns the difference in a range from a list or a diff."""
        assert isinstance(payload, tuple)
        if mode == _IDLIST:
            width, theirs = payload
            if width != ID_SIZE:
                raise InvalidInput("the responder lists full ids")
            index = self._index
            lo, hi = index.position(lower), index.position(upper)
            mine = {k[1] for k in index.keys(lo, hi)}
            their_set = set(theirs)
            self.have_ids.update(mine - their_set)
            self.need_ids.update(their_set - mine)
            return
        sent = pending.get((lower, upper))
        if sent is None:
            raise InvalidInput("an id diff for a range this side did not list")
        extra, lacking = payload
        for i in lacking:
            if i >= len(sent):
                raise InvalidInput("an id diff names a position past the list")
            self.have_ids.add(sent[i])
        self.need_ids.update(extra)
