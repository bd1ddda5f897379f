"""Simulator tests: the production GossipSub router on a fake network of 500 nodes."""

from __future__ import annotations

import random

import pytest

from routing.sim.gossip import GossipBehavior, GossipSimulation, MessageReport

N = 500


def run(
    *, vanish: float = 0.0, adversary: GossipBehavior | None = None, n: int = N, wire: bool = False
) -> tuple[GossipSimulation, list[MessageReport]]:
    behaviors = {}
    if adversary is not None:
        behaviors = dict.fromkeys(random.Random(9).sample(range(n), n // 20), adversary)
    sim = GossipSimulation(n, seed=3, behaviors=behaviors, wire=wire)
    sim.run_for(2.0)  # meshes form
    if vanish:
        sim.vanish(vanish)
    live = sim.honest_live()
    for k in range(5):
        sim.publish(sim.rng.choice(live), b"descriptor-%d" % k + bytes(100))
        sim.run_for(0.1)
    assert sim.run_until_delivered(sim.loop.now + 30.0)
    sim.run_for(4.0)  # let duplicates and promises settle
    return sim, sim.reports()


def test_all_honest_reach_everyone_in_few_hops() -> None:
    sim, reports = run()
    for r in reports:
        assert r.coverage == 1.0
        assert r.reach99 is not None
        assert r.reach99 < 1.0  # fake time: well within the one second
        assert r.hops_median <= 5
        assert r.copies >= r.receivers
    stats = sim.router_stats(sim.honest_live())
    assert stats["rejected"] == 0
    assert stats["graylisted_rpcs"] == 0


def test_thirty_percent_vanished_without_notice() -> None:
    sim, reports = run(vanish=0.3)
    assert len(sim.honest_live()) == N - round(0.3 * N)
    for r in reports:
        assert r.coverage == 1.0


def test_junk_forwarders_are_rejected_and_graylisted() -> None:
    sim, reports = run(adversary=GossipBehavior.JUNK)
    for r in reports:
        assert r.coverage == 1.0
    assert sim.junk_sent_by_honest == 0  # junk is never forwarded by honest nodes
    honest = sim.honest_live()
    stats = sim.router_stats(honest)
    assert stats["rejected"] > 0
    assert stats["graylisted_rpcs"] > 0
    junk_nodes = {sim.ids[i] for i in sim.behaviors}
    for i in honest:
        assert not (sim.routers[i].mesh("/datanet/sim/descriptors") & junk_nodes)


def test_withholders_do_not_stop_delivery() -> None:
    _, reports = run(adversary=GossipBehavior.WITHHOLD)
    for r in reports:
        assert r.coverage == 1.0


def test_through_the_wire_codec() -> None:
    sim, reports = run(n=100, wire=True)
    assert all(r.coverage == 1.0 for r in reports)
    assert sim.rpcs_sent > 0


def test_runs_are_deterministic() -> None:
    _, first = run(n=100)
    _, second = run(n=100)
    assert first == second


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="need n"):
        GossipSimulation(1, seed=1)


@pytest.mark.parametrize("vanish", [0.0, 0.3])
def test_the_nodes_own_parameters_reach_everyone(vanish: float) -> None:
    """The smaller mesh the node runs (``CATALOG_GOSSIP``) still reaches every live node."""
    from datanet.node.gossip import CATALOG_GOSSIP

    sim = GossipSimulation(N, seed=5, config=CATALOG_GOSSIP)
    sim.run_for(3.0)
    if vanish:
        sim.vanish(vanish)
    live = sim.honest_live()
    for k in range(5):
        sim.publish(sim.rng.choice(live), b"descriptor-%d" % k + bytes(100))
        sim.run_for(0.2)
    assert sim.run_until_delivered(sim.loop.now + 30.0)
    for r in sim.reports():
        assert r.coverage == 1.0
        assert r.reach99 is not None
        assert r.reach99 < 1.0
