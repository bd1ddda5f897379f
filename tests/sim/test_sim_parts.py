"""The simulator's own parts: event loop, link model, stand-in validator."""

from __future__ import annotations

import random

import pytest

from identity.errors import DecodeError, InvalidInput, SignatureError
from routing.sim import EventLoop, LinkModel, SimNetwork, SimValidator
from routing.wire import Peer


def test_event_loop_runs_in_time_then_scheduling_order() -> None:
    loop = EventLoop(100.0)
    seen: list[tuple[float, str]] = []
    loop.call_at(102, lambda: seen.append((loop.now, "b")))
    loop.call_at(101, lambda: seen.append((loop.now, "a")))
    loop.call_at(102, lambda: seen.append((loop.now, "c")))
    loop.call_at(50, lambda: seen.append((loop.now, "past")))
    loop.run()
    assert seen == [(100, "past"), (101, "a"), (102, "b"), (102, "c")]
    assert loop.events_run == 4


def test_event_loop_run_until_and_time_limit() -> None:
    loop = EventLoop()
    hits: list[int] = []
    for t in range(10):
        loop.call_at(t, lambda t=t: hits.append(t))
    assert loop.run_until(lambda: len(hits) == 3, max_time=100)
    assert loop.now == 2
    assert not loop.run_until(lambda: False, max_time=5)
    assert hits == [0, 1, 2, 3, 4, 5]
    loop.run(until=7.5)
    assert loop.now == 7.5
    assert hits[-1] == 7
    with pytest.raises(InvalidInput):
        loop.run_until(lambda: True, max_time=1)


def test_link_model_validation_and_latency_bounds() -> None:
    with pytest.raises(InvalidInput):
        LinkModel(loss=1.0)
    with pytest.raises(InvalidInput):
        LinkModel(access_min=0.5, access_max=0.1)
    net = SimNetwork(EventLoop(), random.Random(1), LinkModel(0.01, 0.02, jitter=0.5))

    class Stub:
        def __init__(self, pid: bytes) -> None:
            self.peer = Peer(pid)

    a, b = Stub(b"a"), Stub(b"b")
    net.attach(a)  # type: ignore[arg-type]
    net.attach(b)  # type: ignore[arg-type]
    delays = [net.delay(b"a", b"b") for _ in range(200)]
    assert all(0.02 <= d <= 0.04 * 1.5 for d in delays)
    assert len(set(delays)) > 1


def test_sim_validator_accepts_genuine_and_rejects_forged_and_malformed() -> None:
    v = SimValidator(b"k")
    good = v.make_value(b"/k", 4, b"pay:load")
    v.validate(b"/k", good, 0)
    assert v.parse(good)[:2] == (4, b"pay:load")
    with pytest.raises(SignatureError):
        v.validate(b"/other", good, 0)  # bound to its key
    with pytest.raises(SignatureError):
        v.validate(b"/k", good.replace(b"4:", b"5:", 1), 0)
    with pytest.raises(SignatureError):
        SimValidator(b"other secret").validate(b"/k", good, 0)
    for junk in (b"", b"x", b"1:nomac", b"-1:a:b", b"9" * 30 + b":a:b"):
        with pytest.raises(DecodeError):
            v.validate(b"/k", junk, 0)


def test_sim_validator_select_is_stable_highest_seq() -> None:
    v = SimValidator(b"k")
    a1, b1 = v.make_value(b"/k", 1, b"a"), v.make_value(b"/k", 1, b"b")
    c3 = v.make_value(b"/k", 3, b"c")
    assert v.select(b"/k", [a1, b1]) == 0
    assert v.select(b"/k", [b1, a1]) == 0
    assert v.select(b"/k", [a1, c3, b1]) == 1
    with pytest.raises(DecodeError):
        v.select(b"/k", [])
