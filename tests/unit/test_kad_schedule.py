"""Unit tests of the maintenance schedule (routing/schedule.py) on an injected clock."""

from __future__ import annotations

import pytest

from datanet.testing.clock import NOW
from identity.errors import InvalidInput
from routing.schedule import (
    MAINTENANCE_INTERVAL,
    REFRESH_CHECK_INTERVAL,
    REPROVIDE_INTERVAL,
    REPUBLISH_INTERVAL,
    Expire,
    RefreshBuckets,
    Reprovide,
    Republish,
    Schedule,
)
from routing.stores import PROVIDER_TTL, RECORD_MAX_AGE
from routing.wire import MessageType, expects_response

T0 = float(NOW)


def test_intervals_fit_inside_the_lifetimes_they_renew() -> None:
    assert REPUBLISH_INTERVAL == 3600
    assert REPROVIDE_INTERVAL == 22 * 3600
    assert 2 * REPROVIDE_INTERVAL < PROVIDER_TTL + REPROVIDE_INTERVAL  # one failed round fits
    assert REPROVIDE_INTERVAL < PROVIDER_TTL / 2
    assert REPUBLISH_INTERVAL < RECORD_MAX_AGE / 2


def test_periodic_housekeeping() -> None:
    s = Schedule(T0)
    assert s.poll(T0) == []
    assert s.next_deadline() == T0 + min(MAINTENANCE_INTERVAL, REFRESH_CHECK_INTERVAL)
    assert set(map(type, s.poll(T0 + 30))) == {Expire, RefreshBuckets}
    assert s.poll(T0 + 31) == []
    assert s.next_deadline() == T0 + 60
    # a late poll hands each action out once, not once per missed interval
    assert sorted(type(a).__name__ for a in s.poll(T0 + 1000)) == ["Expire", "RefreshBuckets"]
    assert s.next_deadline() == T0 + 1030


def test_republish_one_interval_after_adding_then_every_interval() -> None:
    s = Schedule(T0, maintenance_interval=1e9, refresh_check_interval=1e9)
    s.add_value(b"/dn/a", T0)
    s.add_value(b"/dn/b", T0 + 10)
    assert s.values() == [b"/dn/a", b"/dn/b"]
    assert s.next_deadline() == T0 + REPUBLISH_INTERVAL
    assert s.poll(T0 + REPUBLISH_INTERVAL - 1) == []
    assert s.poll(T0 + REPUBLISH_INTERVAL) == [Republish(b"/dn/a")]
    assert s.poll(T0 + REPUBLISH_INTERVAL + 10) == [Republish(b"/dn/b")]
    assert s.next_deadline() == T0 + 2 * REPUBLISH_INTERVAL
    assert s.poll(T0 + 2 * REPUBLISH_INTERVAL + 10) == [Republish(b"/dn/a"), Republish(b"/dn/b")]


def test_adding_again_keeps_the_turn_and_removing_stops_it() -> None:
    s = Schedule(T0, maintenance_interval=1e9, refresh_check_interval=1e9)
    s.add_value(b"/dn/a", T0)
    s.add_value(b"/dn/a", T0 + 1000)  # a new sequence: same turn
    assert s.next_deadline() == T0 + REPUBLISH_INTERVAL
    assert s.remove_value(b"/dn/a")
    assert not s.remove_value(b"/dn/a")
    assert s.poll(T0 + 10 * REPUBLISH_INTERVAL) == []
    assert s.values() == []
    s.add_value(b"/dn/a", T0, republish_now=True)
    assert s.poll(T0) == [Republish(b"/dn/a")]


def test_reprovide_on_its_own_interval() -> None:
    s = Schedule(T0, maintenance_interval=1e9, refresh_check_interval=1e9)
    s.add_provider(b"\x12\x20pk", T0)
    s.add_value(b"/dn/a", T0)
    assert s.provided() == [b"\x12\x20pk"]
    actions = [a for h in range(1, 23) for a in s.poll(T0 + h * 3600)]
    assert actions.count(Republish(b"/dn/a")) == 22
    assert actions.count(Reprovide(b"\x12\x20pk")) == 1
    assert s.remove_provider(b"\x12\x20pk")
    assert Reprovide(b"\x12\x20pk") not in s.poll(T0 + 100 * 3600)
    s.add_provider(b"\x12\x20pk", T0, reprovide_now=True)
    assert Reprovide(b"\x12\x20pk") in s.poll(T0 + 100 * 3600)


def test_bad_input() -> None:
    with pytest.raises(InvalidInput):
        Schedule(T0, republish_interval=0)
    with pytest.raises(InvalidInput):
        Schedule(T0, reprovide_interval=float("inf"))
    with pytest.raises(InvalidInput):
        Schedule(T0).add_value(b"", T0)


def test_only_add_provider_has_no_response() -> None:
    assert [t for t in MessageType if not expects_response(t)] == [MessageType.ADD_PROVIDER]
