"""Property tests of the pure witness (routing/witness.py) against real Merkle trees.

Logs are lists of leaf hashes; heads carry the RFC 9162 root of a prefix; a
fetch is answered with the consistency proof of the history the head being
checked comes from (the most a dishonest log node could do) and checked with
``verify_consistency``, as the node does.
"""

from __future__ import annotations

import hashlib
import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from datanet.errors import DatanetError
from datanet.records.audit import consistency_proof, merkle_root, verify_consistency
from routing.witness import Accept, Alarm, FetchConsistency, Witness, WitnessAction

LOG = b"L" * 34
ME = b"W" * 34


def leaves(tag: bytes, n: int) -> list[bytes]:
    return [hashlib.sha256(tag + i.to_bytes(4, "big")).digest() for i in range(n)]


class History:
    """One history of the log: its leaves; heads are prefixes."""

    def __init__(self, leaves: list[bytes], name: str) -> None:
        self.leaves = leaves
        self.name = name

    def head(self, size: int, ts: int) -> tuple[int, bytes, int, bytes]:
        root = merkle_root(self.leaves[:size])
        raw = f"{self.name}:{size}:{ts}".encode()
        return size, root, ts, raw


class Harness:
    def __init__(self, witness: Witness, histories: dict[bytes, History]) -> None:
        self.witness = witness
        self.histories = histories  # raw head -> the history it is from
        self.alarms: list[Alarm] = []
        self.accepted: list[Accept] = []
        self.fetches: list[FetchConsistency] = []

    def feed(self, actions: list[WitnessAction]) -> None:
        for a in actions:
            if isinstance(a, Alarm):
                self.alarms.append(a)
            elif isinstance(a, Accept):
                self.accepted.append(a)
            else:
                self.fetches.append(a)

    def see(self, history: History, size: int, ts: int, now: float = 0.0) -> None:
        size, root, ts, raw = history.head(size, ts)
        self.histories[raw] = history
        self.feed(
            self.witness.head_seen(
                LOG, "org-b", size, root, ts, raw_head=raw, from_peer=LOG, now=now
            )
        )

    def answer(self, fetch: FetchConsistency, now: float = 0.0) -> None:
        history = self.histories[fetch.head.raw]
        try:
            proof = consistency_proof(history.leaves, fetch.from_size, fetch.to_size)
            verify_consistency(
                fetch.from_size, fetch.to_size, fetch.from_root, fetch.to_root, proof
            )
        except DatanetError as exc:
            self.feed(self.witness.proof_result(LOG, False, str(exc), now))
        else:
            self.feed(self.witness.proof_result(LOG, True, "", now))

    def drain(self, now: float = 0.0) -> None:
        while self.fetches:
            self.answer(self.fetches.pop(0), now)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 40),
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=15),
    seed=st.integers(0, 2**32),
)
def test_honest_log_never_alarms_in_any_order_or_interleaving(
    n: int, sizes: list[int], seed: int
) -> None:
    rng = random.Random(seed)
    honest = History(leaves(b"a", n), "A")
    heads = sorted({min(s, n) for s in sizes})
    # timestamps grow with size (a log signs larger heads later); delivery order is random
    timed = [(s, 1000 + 2 * i) for i, s in enumerate(heads)]
    rng.shuffle(timed)
    h = Harness(Witness(ME, "org-a"), {})
    for size, ts in timed:
        h.see(honest, size, ts)
        while h.fetches and rng.random() < 0.5:  # answers come back at random times
            h.answer(h.fetches.pop(0))
    h.drain()
    assert not h.alarms
    last = h.witness.last(LOG)
    assert last is not None
    assert last.root == merkle_root(honest.leaves[: last.size])
    # every accepted head is of the honest history, and the newest proven one is kept
    assert all(h.histories[a.head.raw] is honest for a in h.accepted)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(2, 40),
    data=st.data(),
    seed=st.integers(0, 2**32),
)
def test_a_rewrite_is_detected_whatever_the_order(n: int, data: st.DataObject, seed: int) -> None:
    rng = random.Random(seed)
    i = data.draw(st.integers(0, n - 1), label="rewritten index")
    extra = data.draw(st.integers(0, 10), label="entries after the rewrite")
    honest = History(leaves(b"a", n), "A")
    forged = [
        *honest.leaves[:i],
        hashlib.sha256(b"forged").digest(),
        *leaves(b"b", n - i - 1 + extra),
    ]
    rewritten = History(forged, "B")
    a_sizes = data.draw(st.lists(st.integers(0, n), min_size=0, max_size=6), label="honest heads")
    b_sizes = data.draw(
        st.lists(st.integers(0, len(forged)), min_size=0, max_size=6), label="forged heads"
    )
    # at least one head of each history covers the rewritten entry
    a_sizes.append(data.draw(st.integers(i + 1, n)))
    b_sizes.append(data.draw(st.integers(i + 1, len(forged))))
    heads = [(honest, s) for s in a_sizes] + [(rewritten, s) for s in b_sizes]
    rng.shuffle(heads)
    h = Harness(Witness(ME, "org-a"), {})
    ts = {id(honest): 1000, id(rewritten): 1000}
    for history, size in heads:
        ts[id(history)] += 1
        h.see(history, size, ts[id(history)] + (size if history is honest else 0))
        h.drain()  # each head is checked before the next one arrives
    assert h.alarms, "a rewritten log went unnoticed"
    assert {a.kind for a in h.alarms} <= {"fork", "shrink", "bad_proof"}
    # never accepted as consistent across the two histories past the rewritten entry
    sides = {h.histories[a.head.raw].name for a in h.accepted if a.head.size > i}
    assert len(sides) <= 1


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(2, 30),
    data=st.data(),
    seed=st.integers(0, 2**32),
)
def test_no_forked_head_is_ever_accepted_past_a_proven_one(
    n: int, data: st.DataObject, seed: int
) -> None:
    """With answers delayed arbitrarily (heads wait, the newest wins), safety still holds."""
    rng = random.Random(seed)
    i = data.draw(st.integers(0, n - 1))
    honest = History(leaves(b"a", n), "A")
    rewritten = History(honest.leaves[:i] + leaves(b"b", n - i), "B")
    heads = [(rng.choice([honest, rewritten]), rng.randint(0, n)) for _ in range(12)]
    h = Harness(Witness(ME, "org-a"), {})
    for k, (history, size) in enumerate(heads):
        h.see(history, size, 1000 + k)
        while h.fetches and rng.random() < 0.4:
            h.answer(h.fetches.pop(0))
    h.drain()
    chain = [a.head for a in h.accepted]
    for earlier, later in itertools.pairwise(chain):
        hist = h.histories[later.raw]
        assert merkle_root(hist.leaves[: earlier.size]) == earlier.root


@settings(max_examples=50, deadline=None)
@given(logs=st.integers(1, 60), cap=st.integers(1, 20))
def test_memory_is_bounded(logs: int, cap: int) -> None:
    w = Witness(ME, "org-a", max_logs=cap)
    for k in range(logs):
        node = k.to_bytes(34, "big")
        for size in (1, 2, 3):
            w.head_seen(
                node, "org-b", size, bytes(32), size, raw_head=b"x", from_peer=node, now=0.0
            )
    assert len(w) <= cap
