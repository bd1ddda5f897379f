"""Property tests of range-based set reconciliation: exactly the symmetric difference,
within the round and frame limits, and only documented errors on any bytes."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from identity.errors import InvalidInput
from routing.sync import MIN_FRAME_SIZE, SYNC_VERSION, Item, Reconciler, SyncIndex

T0 = 1_750_000_000


def make(n: int, spread: int) -> Item:
    """Item ``n``; a small ``spread`` makes many items share a timestamp."""
    return Item(T0 + n % spread, hashlib.sha256(n.to_bytes(8, "big")).digest())


# Each element of the universe lands in A only, B only, or both.
memberships = st.lists(st.sampled_from(["a", "b", "ab", "ab", "ab"]), max_size=1500)


@settings(max_examples=60, deadline=None)
@given(
    memberships,
    st.sampled_from([1, 3, 100, 86_400]),
    st.sampled_from([MIN_FRAME_SIZE, 8192, 60_000]),
    st.booleans(),
)
def test_reconciliation_yields_exactly_the_symmetric_difference(
    where: list[str], spread: int, limit: int, swap: bool
) -> None:
    a = [make(n, spread) for n, w in enumerate(where) if "a" in w]
    b = [make(n, spread) for n, w in enumerate(where) if "b" in w]
    if swap:
        a, b = b, a
    max_rounds = 32
    ra = Reconciler(SyncIndex(a), frame_size_limit=limit, max_rounds=max_rounds)
    rb = Reconciler(SyncIndex(b), frame_size_limit=limit, max_rounds=max_rounds)
    message: bytes | None = ra.initiate()
    while message is not None:
        assert len(message) <= limit
        reply = rb.reconcile(message)
        assert reply is not None
        assert len(reply) <= limit
        message = ra.reconcile(reply)
    assert ra.done
    assert ra.rounds <= max_rounds
    assert ra.have_ids == {i.id for i in a} - {i.id for i in b}
    assert ra.need_ids == {i.id for i in b} - {i.id for i in a}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_any_bytes_raise_only_documented_errors(junk: bytes, versioned: bool) -> None:
    index = SyncIndex(make(n, 50) for n in range(200))
    message = bytes([SYNC_VERSION]) + junk if versioned else junk
    for initiator in (False, True):
        side = Reconciler(index, frame_size_limit=MIN_FRAME_SIZE)
        if initiator:
            side.initiate()
        try:
            answer = side.reconcile(message)
        except InvalidInput:  # DecodeError and RecordTooLarge are InvalidInput too
            continue
        assert answer is None or len(answer) <= MIN_FRAME_SIZE


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 400)), max_size=300),
)
def test_index_fingerprints_follow_inserts_and_removals(ops: list[tuple[bool, int]]) -> None:
    index = SyncIndex()
    model: set[Item] = set()
    for add, n in ops:
        it = make(n, 7)
        if add:
            assert index.add(it) == (it not in model)
            model.add(it)
        else:
            assert index.remove(it) == (it in model)
            model.discard(it)
    assert list(index) == sorted(model)
    assert len(index) == len(model)
    other = SyncIndex(model)
    assert index.fingerprint(0, len(index)) == other.fingerprint(0, len(other))
