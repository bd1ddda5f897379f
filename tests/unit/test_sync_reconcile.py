"""Range-based set reconciliation (routing/sync.py): the index, the exchange, junk frames."""

from __future__ import annotations

import hashlib
import random

import pytest

from identity.errors import DecodeError, InvalidInput, RecordTooLarge
from routing.sync import (
    ID_SIZE,
    MAX_TIMESTAMP,
    MIN_FRAME_SIZE,
    SYNC_VERSION,
    Item,
    Reconciler,
    SyncIndex,
    fingerprint,
)

T0 = 1_750_000_000


def item(n: int, ts: int | None = None) -> Item:
    """A deterministic item; timestamps spread over a day unless given."""
    digest = hashlib.sha256(n.to_bytes(8, "big")).digest()
    return Item(T0 + (n * 7919) % 86400 if ts is None else ts, digest)


def run(
    a: SyncIndex, b: SyncIndex, *, limit: int = 60_000, max_rounds: int = 32
) -> tuple[Reconciler, Reconciler, int]:
    """Reconcile ``a`` (initiator) with ``b``; returns both sides and the largest frame."""
    ra = Reconciler(a, frame_size_limit=limit, max_rounds=max_rounds)
    rb = Reconciler(b, frame_size_limit=limit, max_rounds=max_rounds)
    message: bytes | None = ra.initiate()
    largest = 0
    while message is not None:
        largest = max(largest, len(message))
        reply = rb.reconcile(message)
        assert reply is not None
        largest = max(largest, len(reply))
        message = ra.reconcile(reply)
    assert ra.done
    return ra, rb, largest


def ids(items: list[Item]) -> set[bytes]:
    return {i.id for i in items}


# ------------------------------------------------------------------ items and index


def test_items_are_checked() -> None:
    with pytest.raises(InvalidInput):
        Item(T0, b"short")
    with pytest.raises(InvalidInput):
        Item(-1, bytes(32))
    with pytest.raises(InvalidInput):
        Item(MAX_TIMESTAMP + 1, bytes(32))
    with pytest.raises(InvalidInput):
        Item(True, bytes(32))  # type: ignore[arg-type]
    assert Item(1, bytes(32)) < Item(1, b"\x01" + bytes(31)) < Item(2, bytes(32))


def test_index_add_remove_contains_and_order() -> None:
    items = [item(n) for n in range(3000)]
    index = SyncIndex(items[:1000])
    assert len(index) == 1000
    for it in items[1000:]:
        assert index.add(it)
    assert not index.add(items[5])
    assert len(index) == 3000
    assert list(index) == sorted(items)
    for it in items[::2]:
        assert index.remove(it)
    assert not index.remove(items[0])
    assert items[0] not in index
    assert items[1] in index
    assert "not an item" not in index
    assert len(index) == 1500
    assert list(index) == sorted(items[1::2])
    for it in items[1::2]:
        index.remove(it)
    assert len(index) == 0
    assert list(index) == []
    assert index.add(items[0])
    assert list(index) == [items[0]]


def test_range_fingerprints_match_a_plain_sum() -> None:
    rng = random.Random(3)
    items = sorted(item(n) for n in range(5000))
    index = SyncIndex(items)
    for _ in range(200):
        lo = rng.randrange(len(items) + 1)
        hi = rng.randrange(lo, len(items) + 1)
        total = sum(int.from_bytes(i.id, "little") for i in items[lo:hi])
        assert index.fingerprint(lo, hi) == fingerprint(total, hi - lo)
    for it in items[100:2000]:
        index.remove(it)
    rest = items[:100] + items[2000:]
    total = sum(int.from_bytes(i.id, "little") for i in rest)
    assert index.fingerprint(0, len(rest)) == fingerprint(total, len(rest))
    assert index.position((items[2000].timestamp, items[2000].id)) == 100
    assert index.key_at(100) == (items[2000].timestamp, items[2000].id)


# ------------------------------------------------------------------ reconciliation


def test_equal_sets_take_one_round_trip() -> None:
    items = [item(n) for n in range(20_000)]
    ra, rb, _ = run(SyncIndex(items), SyncIndex(items))
    assert ra.rounds == 1
    assert ra.have_ids == ra.need_ids == set()
    assert rb.done


@pytest.mark.parametrize(
    ("common", "only_a", "only_b"),
    [(0, 0, 0), (0, 5, 0), (0, 0, 5), (10, 3, 4), (5000, 50, 50), (20_000, 1, 0), (3000, 0, 3000)],
)
def test_reconciliation_finds_exactly_the_difference(common: int, only_a: int, only_b: int) -> None:
    base = [item(n) for n in range(common)]
    a_only = [item(10**6 + n) for n in range(only_a)]
    b_only = [item(2 * 10**6 + n) for n in range(only_b)]
    ra, _, largest = run(SyncIndex(base + a_only), SyncIndex(base + b_only))
    assert ra.have_ids == ids(a_only)
    assert ra.need_ids == ids(b_only)
    assert largest <= 60_000


def test_items_sharing_a_timestamp_are_told_apart_by_id_prefix() -> None:
    base = [item(n, ts=T0) for n in range(2000)]
    extra = [item(10**6 + n, ts=T0) for n in range(40)]
    ra, _, _ = run(SyncIndex(base + extra[:20]), SyncIndex(base + extra[20:]))
    assert ra.have_ids == ids(extra[:20])
    assert ra.need_ids == ids(extra[20:])


def test_a_new_node_learns_everything_within_the_frame_limit() -> None:
    full = [item(n) for n in range(5000)]
    ra, _, largest = run(SyncIndex(), SyncIndex(full), limit=MIN_FRAME_SIZE, max_rounds=400)
    assert ra.need_ids == ids(full)
    assert largest <= MIN_FRAME_SIZE


def test_a_new_node_catches_up_within_the_default_rounds() -> None:
    full = [item(n) for n in range(20_000)]
    ra, _, largest = run(SyncIndex(), SyncIndex(full))  # 60,000-byte frames, 32 rounds
    assert ra.need_ids == ids(full)
    assert largest <= 60_000
    assert ra.rounds > 5  # 640 KB of ids: deferred over several frames


def test_small_frames_defer_ranges_to_later_rounds() -> None:
    base = [item(n) for n in range(30_000)]
    a_only = [item(10**6 + n) for n in range(600)]
    b_only = [item(2 * 10**6 + n) for n in range(600)]
    ra, _, largest = run(
        SyncIndex(base + a_only), SyncIndex(base + b_only), limit=8192, max_rounds=200
    )
    assert largest <= 8192
    assert ra.rounds > 3
    assert ra.have_ids == ids(a_only)
    assert ra.need_ids == ids(b_only)


def test_a_set_that_grows_during_reconciliation_still_converges() -> None:
    base = [item(n) for n in range(5000)]
    a_only = [item(10**6 + n) for n in range(30)]
    late = [item(3 * 10**6 + n) for n in range(30)]
    a, b = SyncIndex(base + a_only), SyncIndex(base)
    ra, rb = Reconciler(a), Reconciler(b)
    message = ra.initiate()
    reply = rb.reconcile(message)
    for it in late:  # gossip delivers these to both sides meanwhile
        a.add(it)
        b.add(it)
    next_message = ra.reconcile(reply)
    while next_message is not None:
        next_message = ra.reconcile(rb.reconcile(next_message) or b"")
    assert ra.have_ids == ids(a_only)
    assert ra.need_ids == set()


def test_rounds_beyond_the_limit_are_refused() -> None:
    base = [item(n) for n in range(30_000)]
    extra = [item(10**6 + n) for n in range(300)]
    with pytest.raises(InvalidInput, match="rounds"):
        run(SyncIndex(base), SyncIndex(base + extra), max_rounds=2)


# ------------------------------------------------------------------ junk


def responder_with_items() -> Reconciler:
    return Reconciler(SyncIndex([item(n) for n in range(500)]), frame_size_limit=MIN_FRAME_SIZE)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"", DecodeError),
        (bytes([SYNC_VERSION + 1]), DecodeError),
        (bytes([SYNC_VERSION]) + b"\x05", DecodeError),  # truncated bound
        (bytes([SYNC_VERSION]) + b"\x05\x00\x07", DecodeError),  # unknown mode
        (bytes([SYNC_VERSION]) + b"\x05\x00\x01" + b"x" * 5, DecodeError),  # short fingerprint
        (bytes([SYNC_VERSION]) + b"\x05\x00\x00\x01\x00\x00", DecodeError),  # bound repeats
        (bytes([SYNC_VERSION]) + b"\x00\x00\x00\x05\x00\x00", DecodeError),  # after infinity
        (bytes([SYNC_VERSION]) + b"\x00\x01a\x00", DecodeError),  # infinity with a prefix
        (bytes([SYNC_VERSION]) + b"\x05\x21" + b"a" * 33 + b"\x00", DecodeError),  # prefix > 32
        (bytes([SYNC_VERSION]) + b"\xff" * 11, DecodeError),  # varint too long
        (bytes([SYNC_VERSION]) + b"\x00\x00\x02\x01\x05" + b"a" * 5, DecodeError),  # width 5
        (bytes([SYNC_VERSION]) + b"\x00\x00\x02\xff\x07\x10", RecordTooLarge),  # 1023 ids
        (bytes([SYNC_VERSION]) + b"\x00" * (MIN_FRAME_SIZE + 1), RecordTooLarge),
        # an id diff goes only to the initiator
        (bytes([SYNC_VERSION]) + b"\x00\x00\x03\x00\x00", InvalidInput),
        # a deferral of ranges this side never sent
        (bytes([SYNC_VERSION]) + b"\x00\x00\x04", InvalidInput),
        # the initiator lists 16-byte prefixes
        (bytes([SYNC_VERSION]) + b"\x00\x00\x02\x01\x20" + b"a" * 32, InvalidInput),
    ],
)
def test_junk_messages_raise_documented_errors(message: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        responder_with_items().reconcile(message)


def test_an_initiator_refuses_answers_it_never_asked_for() -> None:
    ra = Reconciler(SyncIndex([item(n) for n in range(10)]))
    ra.initiate()  # lists its 10 items over the whole range
    with pytest.raises(InvalidInput, match="did not list"):  # a diff for another range
        ra.reconcile(bytes([SYNC_VERSION]) + b"\x05\x00\x03\x00\x00")
    ra = Reconciler(SyncIndex([item(n) for n in range(10)]))
    ra.initiate()
    with pytest.raises(InvalidInput, match="past the list"):
        ra.reconcile(bytes([SYNC_VERSION]) + b"\x00\x00\x03\x00\x01\x0f")
    ra = Reconciler(SyncIndex([item(n) for n in range(10)]))
    ra.initiate()
    with pytest.raises(InvalidInput, match="full ids"):
        ra.reconcile(bytes([SYNC_VERSION]) + b"\x00\x00\x02\x01\x10" + b"a" * 16)
    with pytest.raises(InvalidInput):
        ra.initiate()


def test_the_initiator_is_done_once_and_for_all() -> None:
    items = [item(n) for n in range(100)]
    ra, _, _ = run(SyncIndex(items), SyncIndex(items))
    with pytest.raises(InvalidInput, match="done"):
        ra.reconcile(bytes([SYNC_VERSION]))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(InvalidInput):
        Reconciler(SyncIndex(), frame_size_limit=MIN_FRAME_SIZE - 1)
    with pytest.raises(InvalidInput):
        Reconciler(SyncIndex(), max_rounds=0)
    assert ID_SIZE == 32
