"""Records survive replica churn and their TTL because the schedule republishes them.

The simulator runs the production maintenance schedule (routing/schedule.py) on
the fake clock. Every 20 minutes, more than half of the nodes holding a value
vanish without notice. Without republishing the value is gone after about an
hour; with the hourly republish the publisher puts it on the k closest live
nodes again each hour, and a reader still finds it after two hours.

Bucket refresh is switched off to keep the run short (with it, 200 nodes cost
about 100,000 FIND_NODEs per simulated half hour). Without it nobody evicts the
vanished nodes from the routing tables, so after a few hours of churn aimed at
one key every answer near that key names only dead peers; two rounds stay
clear of that.
"""

from __future__ import annotations

from routing.schedule import REPROVIDE_INTERVAL, REPUBLISH_INTERVAL
from routing.sim import SimNode, Simulation
from routing.stores import PROVIDER_TTL

KEY = b"/sim/survivor"
CHURN_EVERY = 20 * 60.0


def holders(sim: Simulation, keep: list[SimNode]) -> list[SimNode]:
    now = sim.loop.now
    return [
        n
        for n in sim.alive()
        if n not in keep and n.coordinator.records.get(KEY, now=now) is not None
    ]


def churn_for(sim: Simulation, publisher: SimNode, reader: SimNode, hours: float) -> list[int]:
    """Vanish more than half of the holders every CHURN_EVERY; returns the holder counts seen."""
    keep = [publisher, reader]
    counts = []
    sim.run_for(CHURN_EVERY / 2)  # churn strikes between republishes, never at the same instant
    for _ in range(int(hours * 3600 / CHURN_EVERY)):
        current = holders(sim, keep)
        counts.append(len(current))
        for node in current[: len(current) // 2 + 1]:
            node.vanish()
        sim.run_for(CHURN_EVERY)
    return counts


def run(*, republish: bool) -> tuple[bytes | None, list[int]]:
    sim = Simulation(200, seed=11)
    sim.fill_tables()
    interval = REPUBLISH_INTERVAL if republish else 1e12
    sim.start_maintenance(republish_interval=interval, refresh_check_interval=1e12)
    publisher, reader = sim.nodes[0], sim.nodes[1]
    value = sim.validator.make_value(KEY, 1, b"still here")
    assert len(sim.publish(publisher, KEY, value).acked) == 20
    counts = churn_for(sim, publisher, reader, hours=2)
    return sim.get_value(reader, KEY).best, counts


def test_republish_keeps_a_value_alive_through_replica_churn() -> None:
    best, counts = run(republish=True)
    assert best is not None
    assert best.split(b":")[:2] == [b"1", b"still here"]
    # the hourly republish restored the replica set after each round of churn
    assert counts[0] == 20
    assert counts[3] >= 15


def test_without_republish_the_same_churn_loses_the_value() -> None:
    best, counts = run(republish=False)
    assert best is None
    assert counts[-1] == 0
    assert counts[0] == 20


def test_reprovide_keeps_a_provider_record_past_its_ttl() -> None:
    for reprovide, expected in ((True, 1), (False, 0)):
        sim = Simulation(100, seed=5)
        sim.fill_tables()
        sim.start_maintenance(
            reprovide_interval=REPROVIDE_INTERVAL if reprovide else 1e12,
            refresh_check_interval=1e12,
            maintenance_interval=3600,  # expire hourly: enough here, and cheap
        )
        provider, reader = sim.nodes[0], sim.nodes[1]
        key = b"\x12\x20" + bytes(32)
        assert len(sim.provide(provider, key).acked) == 20
        sim.run_for(PROVIDER_TTL + 3600)  # past the TTL of the first announcement
        found = sim.get_providers(reader, key).providers
        assert [p.id for p in found] == [provider.peer.id] * expected
