"""A deterministic simulator that runs the production Kademlia code on a fake network.

Fake clock (:mod:`routing.sim.loop`), fake network with per-link latency, loss
and silently vanishing nodes (:mod:`routing.sim.network`), simulated nodes with
liar behaviours around the real coordinator (:mod:`routing.sim.node`), a cheap
stand-in validator (:mod:`routing.sim.validator`) and scenario helpers
(:mod:`routing.sim.scenario`). Shared by ``tests/sim`` and ``benchmarks/bench_sim.py``.
"""

from routing.sim.loop import EventLoop
from routing.sim.network import LinkModel, SimNetwork
from routing.sim.node import Behavior, SimNode
from routing.sim.scenario import SIM_CONFIG, SIM_EPOCH, Simulation, random_peer_id
from routing.sim.validator import SimValidator

__all__ = [
    "SIM_CONFIG",
    "SIM_EPOCH",
    "Behavior",
    "EventLoop",
    "LinkModel",
    "SimNetwork",
    "SimNode",
    "SimValidator",
    "Simulation",
    "random_peer_id",
]
