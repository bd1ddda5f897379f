"""Property tests of who witnesses a log (routing.witness.is_witness).

Every node decides on its own from the peers it knows; these check that the
decisions add up: with full knowledge exactly ``count`` nodes witness a log (all
of them in a smaller network), knowing more peers than the nearest never
changes the answer, and a node never witnesses its own log.
"""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from routing.keyspace import key_of
from routing.witness import WITNESSES_PER_LOG, is_witness, witness_key

ids = st.binary(min_size=34, max_size=34)
networks = st.lists(ids, min_size=1, max_size=60, unique=True)


@settings(max_examples=200, deadline=None)
@given(nodes=networks, count=st.integers(1, 12))
def test_with_full_knowledge_exactly_count_nodes_witness_each_log(
    nodes: list[bytes], count: int
) -> None:
    log = nodes[0]
    witnesses = [n for n in nodes if is_witness(n, nodes, log, count)]
    assert log not in witnesses
    assert len(witnesses) == min(count, len(nodes) - 1)
    target = key_of(witness_key(log))
    others = [n for n in nodes if n != log]
    assert set(witnesses) == set(heapq.nsmallest(count, others, key=lambda n: key_of(n) ^ target))


@settings(max_examples=200, deadline=None)
@given(nodes=networks, extra=st.integers(0, 40), data=st.data())
def test_knowing_the_nearest_peers_is_enough(
    nodes: list[bytes], extra: int, data: st.DataObject
) -> None:
    # What a routing table answers: the count peers it knows nearest to the key, plus
    # any others; the answer must be the one full knowledge gives.
    log, me = nodes[0], nodes[-1]
    target = key_of(witness_key(log))
    others = [n for n in nodes if n not in (me, log)]
    nearest = heapq.nsmallest(WITNESSES_PER_LOG, others, key=lambda n: key_of(n) ^ target)
    rest = [n for n in others if n not in nearest]
    known = (
        nearest + data.draw(st.lists(st.sampled_from(rest), max_size=extra)) if rest else nearest
    )
    assert is_witness(me, known, log) == is_witness(me, nodes, log)


def test_a_node_that_knows_few_peers_witnesses_every_log() -> None:
    me = b"\x01" * 34
    logs = [bytes([i]) * 34 for i in range(2, 40)]
    assert all(is_witness(me, logs[:3], log) for log in logs)
    assert not is_witness(me, logs, me)
