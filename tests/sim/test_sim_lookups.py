"""Simulated networks running the production coordinator, lookups, table and server.

Sizes are kept small so the whole file runs in seconds; the 10,000-node runs are
in ``benchmarks/bench_sim.py``.
"""

from __future__ import annotations

import math
import statistics

import pytest

from routing.coordinator import CoordinatorConfig
from routing.lookup import ClosestPeers
from routing.sim import Behavior, LinkModel, Simulation
from routing.wire import MessageType


def build(n: int, seed: int, **kw: object) -> Simulation:
    sim = Simulation(n, seed=seed, **kw)  # type: ignore[arg-type]
    sim.fill_tables()
    return sim


def target_of(sim: Simulation, i: int) -> bytes:
    return b"/sim/target/%d" % i


def test_find_node_converges_to_the_true_closest() -> None:
    sim = build(300, seed=1)
    for i in range(20):
        src = sim.nodes[i]
        target = target_of(sim, i)
        result = sim.find_node(src, target)
        truth = [p for p in sim.true_closest(target, 21) if p != src.peer.id][:20]
        assert [p.id for p in result.closest] == truth


def mean_rounds(n: int, lookups: int, seed: int) -> tuple[float, float]:
    sim = build(n, seed=seed)
    rounds = [
        sim.find_node(sim.nodes[i % n], target_of(sim, i)).stats.rounds for i in range(lookups)
    ]
    return statistics.mean(rounds), statistics.median(rounds)


def test_rounds_grow_logarithmically_with_network_size() -> None:
    sizes = (30, 300, 3000)
    measured = [mean_rounds(n, 40, seed=n) for n in sizes]
    means = [m for m, _ in measured]
    assert means[0] < means[1] < means[2]
    for n, (_, median) in zip(sizes, measured, strict=True):
        assert median <= math.ceil(math.log2(n) / 3) + 1
    # log growth, not linear: 100x the nodes costs well under 3x the rounds
    assert means[2] < 3 * means[0]


def test_values_and_providers_survive_thirty_percent_vanishing() -> None:
    sim = build(500, seed=3)
    keys = [b"/sim/v/%d" % i for i in range(20)]
    values = {}
    for i, key in enumerate(keys):
        values[key] = sim.validator.make_value(key, 1, b"payload-%d" % i)
        put = sim.publish(sim.nodes[i], key, values[key])
        assert len(put.acked) == 20
    prov_keys = [b"/sim/p/%d" % i for i in range(10)]
    for i, key in enumerate(prov_keys):
        assert len(sim.provide(sim.nodes[100 + i], key).acked) == 20
    askers = sim.nodes[400:440]
    gone = sim.vanish(0.3, keep=askers)
    assert len(gone) == 150
    timeouts = 0
    for i, key in enumerate(keys):
        result = sim.get_value(askers[i], key)
        assert result.best == values[key]
        timeouts += result.stats.timeouts
    assert timeouts > 0  # the lookups did run into vanished nodes
    for i, key in enumerate(prov_keys):
        found = sim.get_providers(askers[20 + i], key, count=1)
        assert [p.id for p in found.providers] == [sim.nodes[100 + i].peer.id]


def test_forging_liars_cannot_make_get_value_return_their_records() -> None:
    sim = build(300, seed=4)
    key = b"/sim/forged"
    genuine = sim.validator.make_value(key, 3, b"genuine")
    sim.publish(sim.nodes[0], key, genuine)
    liars = set(sim.true_closest(key, 12))
    for pid in liars:
        sim.node(pid).behavior = Behavior.FORGE
    asker = next(n for n in sim.nodes if n.peer.id not in liars and n is not sim.nodes[0])
    result = sim.get_value(asker, key)
    assert result.best == genuine
    assert liars <= {p.id for p in result.outdated}
    assert not liars & {p.id for p in result.holders}


def test_stale_liars_cannot_hide_a_newer_value() -> None:
    sim = build(300, seed=5)
    key = b"/sim/stale"
    v1 = sim.validator.make_value(key, 1, b"first")
    v2 = sim.validator.make_value(key, 2, b"second")
    publisher = sim.nodes[0]
    sim.publish(publisher, key, v1)
    closest = sim.true_closest(key, 20)
    liars = set(closest[:15])
    for pid in liars:
        sim.node(pid).behavior = Behavior.STALE
    sim.node(publisher.peer.id).coordinator.records.put(key, v2, now=sim.loop.now, from_peer=None)
    put = sim.run(publisher, lambda c, now: c.put_value(key, v2, now)).result
    assert len(put.acked) == 20  # the liars claim to have stored it  # type: ignore[union-attr]
    asker = sim.nodes[-1]
    result = sim.get_value(asker, key)
    assert result.best == v2
    assert liars - {publisher.peer.id} <= {p.id for p in result.outdated}


def test_lookups_finish_despite_message_loss() -> None:
    sim = build(300, seed=6, link=LinkModel(loss=0.1))
    for i in range(10):
        result = sim.find_node(sim.nodes[i], target_of(sim, i))
        assert len(result.closest) == 20
        assert result.stats.finished_at - result.stats.started_at < 60
    assert sim.network.requests_lost > 0


def test_timed_out_peers_are_skipped_and_evicted_from_the_table() -> None:
    config = CoordinatorConfig(request_timeout=1.0, ping_timeout=1.0, max_failures=1)
    sim = build(400, seed=7, config=config)
    asker = sim.nodes[0]
    gone = {n.peer.id for n in sim.vanish(0.3, keep=[asker])}
    table = asker.coordinator.table
    before = sum(1 for p in table.peers() if p.id in gone)
    timeouts = 0
    for i in range(15):
        result = sim.find_node(asker, target_of(sim, i))
        assert not gone & {p.id for p in result.closest}
        timeouts += result.stats.timeouts
        assert result.stats.finished_at - result.stats.started_at <= 20 * config.request_timeout
    after = sum(1 for p in table.peers() if p.id in gone)
    assert timeouts > 0
    assert after < before


def test_simulation_is_deterministic_by_seed() -> None:
    def run(seed: int) -> list[tuple[int, int, float, tuple[bytes, ...]]]:
        sim = build(200, seed=seed, link=LinkModel(loss=0.05))
        sim.vanish(0.1, keep=sim.nodes[:5])
        out = []
        for i in range(5):
            r = sim.find_node(sim.nodes[i], target_of(sim, i))
            out.append(
                (
                    r.stats.requests,
                    r.stats.rounds,
                    r.stats.finished_at,
                    tuple(p.id for p in r.closest),
                )
            )
        return out

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_concurrent_lookups_from_many_nodes() -> None:
    sim = build(300, seed=8)
    ops = [
        (sim.nodes[i], lambda c, now, i=i: c.find_node(target_of(sim, i), now)) for i in range(30)
    ]
    results = sim.run_many(ops)
    assert len(results) == 30
    for r in results:
        assert isinstance(r.result, ClosestPeers)
        assert len(r.result.closest) == 20
    assert sim.network.sent_by_type[MessageType.FIND_NODE] >= 30 * 20


@pytest.mark.parametrize("n", [1, 2])
def test_tiny_networks(n: int) -> None:
    sim = build(n, seed=9)
    result = sim.find_node(sim.nodes[0], b"x")
    assert len(result.closest) == n - 1


def test_network_built_by_real_bootstraps_routes_lookups() -> None:
    sim = Simulation(120, seed=10)
    sim.join_all()
    sizes = [len(n.coordinator.table) for n in sim.nodes]
    assert min(sizes) >= 20
    assert all(not n.coordinator.running() for n in sim.nodes)
    overlap = []
    for i in range(10):
        src = sim.nodes[-1 - i]
        target = target_of(sim, i)
        truth = set([p for p in sim.true_closest(target, 21) if p != src.peer.id][:20])
        got = {p.id for p in sim.find_node(src, target).closest}
        overlap.append(len(truth & got) / 20)
    assert statistics.mean(overlap) >= 0.95
