"""Unit tests of the access-request routing rules (routing/access.py): every rule and
refusal, the candidate filter, the replay guard and the failover messages."""

from __future__ import annotations

import dataclasses

import pytest

from identity.errors import InvalidInput
from identity.keys import OrgId, PeerId
from routing.access import (
    MAX_HOPS,
    MAX_MESSAGE,
    REFUSAL_CODES,
    RULES,
    Decide,
    Failover,
    Forward,
    Hop,
    OrgRoute,
    Refuse,
    ReplayGuard,
    Situation,
    next_step,
)

NOW = 1_800_000_000


def peer(i: int) -> PeerId:
    return PeerId(bytes([i]) * 32)


def org(i: int) -> OrgId:
    return OrgId(bytes([200 + i]) * 32)


ORG_R, ORG_T, ORG_X = org(1), org(2), org(3)
REQ = Hop(peer(1), ORG_R)
R_GW1, R_GW2 = Hop(peer(2), ORG_R), Hop(peer(3), ORG_R)
T_GW1, T_GW2 = Hop(peer(10), ORG_T), Hop(peer(11), ORG_T)
PUB = Hop(peer(12), ORG_T)
T_OTHER = Hop(peer(13), ORG_T)


def situation(**changes: object) -> Situation:
    base = Situation(
        me=REQ,
        i_am_gateway=False,
        i_can_decide=False,
        requester=REQ,
        requester_route=OrgRoute(ORG_R, (R_GW1.node, R_GW2.node), egress=True),
        target_org=ORG_T,
        target_route=OrgRoute(ORG_T, (T_GW1.node, T_GW2.node), egress=False),
        publisher=PUB.node,
        trace=(),
        from_peer=None,
        deadline=NOW + 60,
        now=NOW,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def at(me: Hop, trace: tuple[Hop, ...], **changes: object) -> Situation:
    """The situation of ``me`` receiving the request after ``trace``."""
    requester = changes.get("requester", REQ)
    assert isinstance(requester, Hop)
    sender = trace[-1].node if trace else requester.node
    return situation(me=me, trace=trace, from_peer=sender, **changes)


def refused(step: object, code: str) -> Refuse:
    assert isinstance(step, Refuse), step
    assert step.code == code, step
    assert step.message.isprintable()
    assert len(step.message) <= MAX_MESSAGE
    return step


# -- the happy route ---------------------------------------------------------------


def test_full_route_requester_egress_ingress_internal_decide() -> None:
    assert next_step(situation()) == Forward((R_GW1.node, R_GW2.node), "egress")
    assert next_step(at(R_GW1, (), i_am_gateway=True)) == Forward(
        (T_GW1.node, T_GW2.node), "ingress"
    )
    assert next_step(at(T_GW1, (R_GW1,), i_am_gateway=True)) == Forward((PUB.node,), "internal")
    assert next_step(at(PUB, (R_GW1, T_GW1), i_can_decide=True)) == Decide()


def test_without_egress_the_requester_goes_to_the_target_gateways() -> None:
    route = OrgRoute(ORG_R, (R_GW1.node,), egress=False)
    step = next_step(situation(requester_route=route))
    assert step == Forward((T_GW1.node, T_GW2.node), "ingress")


def test_direct_to_publisher_when_target_has_no_gateways() -> None:
    step = next_step(
        situation(requester_route=OrgRoute(ORG_R), target_route=OrgRoute(ORG_T), publisher=PUB.node)
    )
    assert step == Forward((PUB.node,), "direct")
    # and the publisher, not a gateway, takes it from another org because it decides
    assert next_step(at(PUB, (), i_can_decide=True, requester_route=OrgRoute(ORG_R))) == Decide()


def test_a_listed_gateway_requester_leaves_directly() -> None:
    me = R_GW1
    step = next_step(situation(me=me, requester=me, i_am_gateway=True))
    assert step == Forward((T_GW1.node, T_GW2.node), "ingress")
    # and the owner accepts it without a gateway hop: the requester is a listed gateway
    assert next_step(at(PUB, (), requester=me, i_can_decide=True)) == Decide()


def test_a_gateway_role_alone_does_not_exempt_from_egress() -> None:
    # the org record is what the owner can check: an unlisted node goes through the listed ones
    step = next_step(situation(i_am_gateway=True))
    assert step == Forward((R_GW1.node, R_GW2.node), "egress")


def test_request_inside_one_org_goes_to_the_publisher() -> None:
    me = Hop(peer(14), ORG_T)
    route = OrgRoute(ORG_T, (T_GW1.node,), egress=True)
    s = situation(me=me, requester=me, requester_route=route, target_route=route)
    assert next_step(s) == Forward((PUB.node,), "internal")  # no egress inside the org


def test_owner_decides_even_as_the_requester() -> None:
    route = OrgRoute(ORG_T, (T_GW1.node,), egress=True)
    s = situation(me=PUB, requester=PUB, requester_route=route, target_route=route)
    assert next_step(dataclasses.replace(s, i_can_decide=True)) == Decide()


def test_candidates_drop_me_trace_nodes_and_the_requester_keeping_order() -> None:
    gws = (REQ.node, T_GW2.node, R_GW1.node, T_GW1.node, T_GW2.node)
    s = at(R_GW1, (), i_am_gateway=True, target_route=OrgRoute(ORG_T, gws))
    assert next_step(s) == Forward((T_GW2.node, T_GW1.node), "ingress")


def test_a_requester_listed_as_gateway_is_exempt_from_egress() -> None:
    route = OrgRoute(ORG_R, (R_GW1.node, REQ.node), egress=True)
    step = next_step(situation(requester_route=route))
    assert isinstance(step, Forward)  # the requester is listed: it leaves directly
    assert step.leg == "ingress"


# -- refusals ------------------------------------------------------------------------


def test_expired() -> None:
    refused(next_step(situation(deadline=NOW)), "expired")
    refused(next_step(situation(deadline=NOW - 5)), "expired")
    assert not isinstance(next_step(situation(deadline=NOW + 1)), Refuse)


def test_expired_comes_before_deciding() -> None:
    refused(next_step(at(PUB, (R_GW1, T_GW1), i_can_decide=True, deadline=NOW)), "expired")


def test_hop_limit_names_the_limit() -> None:
    trace = tuple(Hop(peer(100 + i), ORG_X) for i in range(MAX_HOPS))
    step = refused(next_step(at(PUB, trace, i_can_decide=True)), "hop_limit")
    assert str(MAX_HOPS) in step.message
    shorter = trace[:-1]
    refused(next_step(at(PUB, shorter, i_can_decide=True)), "egress_required")
    ok_route = OrgRoute(ORG_R)
    assert next_step(at(PUB, shorter, i_can_decide=True, requester_route=ok_route)) == Decide()


def test_loop_me_in_trace() -> None:
    refused(next_step(at(T_GW1, (R_GW1, T_GW1, T_GW2), i_am_gateway=True)), "loop_detected")


def test_loop_back_to_the_requester() -> None:
    refused(next_step(at(REQ, (R_GW1,))), "loop_detected")


def test_wrong_sender() -> None:
    s = situation(me=T_GW1, trace=(R_GW1,), from_peer=R_GW2.node, i_am_gateway=True)
    step = refused(next_step(s), "wrong_sender")
    assert "trace entry" in step.message
    # empty trace: the sender must be the requester
    refused(next_step(situation(me=R_GW1, from_peer=R_GW2.node, i_am_gateway=True)), "wrong_sender")


def test_originating_must_be_the_requester_with_an_empty_trace() -> None:
    refused(next_step(situation(me=R_GW1, i_am_gateway=True)), "wrong_sender")
    refused(next_step(situation(trace=(R_GW1,))), "wrong_sender")


def test_egress_without_gateways_is_no_route() -> None:
    route = OrgRoute(ORG_R, (), egress=True)
    step = refused(next_step(situation(requester_route=route)), "no_route")
    assert "requires egress through gateways but lists none" in step.message


def test_egress_required_at_the_owner_and_at_the_first_foreign_hop() -> None:
    # the requester skipped its gateways and went straight to the target's gateway
    refused(next_step(at(T_GW1, (), i_am_gateway=True)), "egress_required")
    refused(next_step(at(PUB, (T_GW1,), i_can_decide=True)), "egress_required")
    # a hop of another org named like a gateway does not count: it must be of the requester's org
    fake = Hop(R_GW1.node, ORG_X)
    refused(next_step(at(T_GW1, (fake,), i_am_gateway=True)), "egress_required")
    # a hop of the requester's org that is not listed does not count
    unlisted = Hop(peer(5), ORG_R)
    refused(next_step(at(T_GW1, (unlisted,), i_am_gateway=True)), "egress_required")


def test_egress_not_enforced_inside_the_requester_org() -> None:
    assert next_step(at(R_GW1, (), i_am_gateway=True)) == Forward(
        (T_GW1.node, T_GW2.node), "ingress"
    )


def test_not_a_gateway_refuses_other_orgs() -> None:
    step = refused(next_step(at(T_OTHER, (R_GW1,))), "not_a_gateway")
    assert "gateway" in step.message
    # the same node takes it from its own org's gateway and forwards it internally
    assert next_step(at(T_OTHER, (R_GW1, T_GW1))) == Forward((PUB.node,), "internal")


def test_ingress_without_gateways_nor_publisher_is_no_route() -> None:
    s = situation(requester_route=OrgRoute(ORG_R), target_route=OrgRoute(ORG_T), publisher=None)
    step = refused(next_step(s), "no_route")
    assert "lists no gateways" in step.message


def test_ingress_with_every_gateway_already_on_the_route_is_no_route() -> None:
    s = at(R_GW1, (), i_am_gateway=True, target_route=OrgRoute(ORG_T, (REQ.node, R_GW1.node)))
    refused(next_step(s), "no_route")


def test_internal_without_publisher_or_publisher_is_me() -> None:
    step = refused(next_step(at(T_GW1, (R_GW1,), i_am_gateway=True, publisher=None)), "no_route")
    assert "no node of the owner org holds the descriptor" in step.message
    refused(next_step(at(PUB, (R_GW1, T_GW1))), "no_route")  # publisher lost its role
    # the publisher already on the route: never sent back to it
    refused(next_step(at(T_GW1, (R_GW1, PUB), i_am_gateway=True)), "no_route")


def test_every_refusal_code_is_reachable_and_listed() -> None:
    assert set(REFUSAL_CODES) == {
        "expired",
        "hop_limit",
        "loop_detected",
        "wrong_sender",
        "egress_required",
        "not_a_gateway",
        "no_route",
    }
    assert [r.name for r in RULES][:4] == ["expired", "hop_limit", "loop", "sender"]


def test_situation_refuses_mismatched_routes() -> None:
    with pytest.raises(InvalidInput):
        situation(requester_route=OrgRoute(ORG_T))
    with pytest.raises(InvalidInput):
        situation(target_route=OrgRoute(ORG_R))
    with pytest.raises(InvalidInput):
        situation(i_can_decide=True)  # the requester's node is not of the target org
    with pytest.raises(InvalidInput):
        OrgRoute(ORG_R, tuple(peer(i) for i in range(17)))


# -- the replay guard ------------------------------------------------------------------


def test_replay_guard_first_time_then_replay() -> None:
    g = ReplayGuard()
    assert g.check_and_remember(b"a" * 32, NOW + 10, NOW)
    assert not g.check_and_remember(b"a" * 32, NOW + 10, NOW + 5)
    assert len(g) == 1


def test_replay_guard_forgets_after_the_deadline() -> None:
    g = ReplayGuard()
    assert g.check_and_remember(b"a", NOW + 10, NOW)
    assert g.check_and_remember(b"b", NOW + 20, NOW)
    assert not g.check_and_remember(b"a", NOW + 10, NOW + 9)
    assert g.check_and_remember(b"c", NOW + 30, NOW + 10)  # a is dropped lazily here
    assert len(g) == 2
    assert g.check_and_remember(b"a", NOW + 40, NOW + 10)


def test_replay_guard_does_not_remember_an_expired_request() -> None:
    g = ReplayGuard()
    assert g.check_and_remember(b"a", NOW, NOW)
    assert len(g) == 0


def test_replay_guard_is_bounded_and_evicts_the_earliest_deadline() -> None:
    g = ReplayGuard(capacity=3)
    for i, d in enumerate((50, 10, 30)):
        assert g.check_and_remember(bytes([i]), NOW + d, NOW)
    assert g.check_and_remember(b"new", NOW + 40, NOW)
    assert len(g) == 3
    assert g.check_and_remember(bytes([1]), NOW + 10, NOW)  # deadline 10 was evicted
    assert not g.check_and_remember(bytes([0]), NOW + 50, NOW)
    assert not g.check_and_remember(b"new", NOW + 40, NOW)


def test_replay_guard_bounds_its_input() -> None:
    with pytest.raises(InvalidInput):
        ReplayGuard(0)
    g = ReplayGuard()
    with pytest.raises(InvalidInput):
        g.check_and_remember(b"", NOW + 1, NOW)
    with pytest.raises(InvalidInput):
        g.check_and_remember(b"x" * 65, NOW + 1, NOW)


# -- failover -------------------------------------------------------------------------


def test_failover_tries_in_order_and_names_each_failure() -> None:
    f = Failover([T_GW1.node, T_GW2.node, T_GW1.node], ORG_T, "ingress")
    assert f.next() == T_GW1.node
    f.failed(T_GW1.node, "connection refused")
    assert f.next() == T_GW2.node
    f.failed(T_GW2.node, "timed\nout")
    assert f.next() is None
    assert f.exhausted
    msg = f.error_message()
    assert msg.startswith(f"no gateway of org {ORG_T} answered (ingress): ")
    assert str(T_GW1.node)[:16] in msg
    assert "connection refused" in msg
    assert "timed out" in msg
    assert msg.index("connection refused") < msg.index("timed out")
    assert msg.isprintable()


def test_failover_message_for_the_internal_leg_and_untried() -> None:
    f = Failover([PUB.node, T_OTHER.node], ORG_T, "internal")
    assert f.next() == PUB.node
    f.failed(PUB.node, "x" * 500)
    msg = f.error_message()
    assert msg.startswith(f"no node of org {ORG_T} answered (internal)")
    assert "1 not tried" in msg
    assert len(msg) < 400


def test_failover_with_no_candidates_and_unknown_peer() -> None:
    f = Failover([], ORG_T, "ingress")
    assert f.next() is None
    assert "none to try" in f.error_message()
    with pytest.raises(InvalidInput):
        f.failed(PUB.node, "?")
