"""Property tests of access-request routing: what a Forward may name, the hop bound,
a network model where repeated steps reach the owner through the right gateways, and
the replay guard against a reference model."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from identity.keys import OrgId, PeerId
from routing.access import (
    MAX_HOPS,
    MAX_MESSAGE,
    REFUSAL_CODES,
    Decide,
    Forward,
    Hop,
    OrgRoute,
    Refuse,
    ReplayGuard,
    Situation,
    next_step,
)

NOW = 1_800_000_000
PEERS = [PeerId(bytes([i + 1]) * 32) for i in range(12)]
ORGS = [OrgId(bytes([100 + i]) * 32) for i in range(3)]

peers = st.sampled_from(PEERS)
orgs = st.sampled_from(ORGS)
hops = st.builds(Hop, peers, orgs)


@st.composite
def situations(draw: st.DrawFn) -> Situation:
    """Arbitrary situations over a small pool of nodes, so that collisions are frequent."""
    requester = draw(hops)
    target_org = draw(orgs)
    i_can_decide = draw(st.booleans())
    me = draw(st.builds(Hop, peers, st.just(target_org))) if i_can_decide else draw(hops)
    if draw(st.booleans()):
        me = requester if not i_can_decide or requester.org == target_org else me
    trace = tuple(draw(st.lists(hops, max_size=MAX_HOPS + 2)))
    originating = draw(st.booleans())
    if originating:
        from_peer = None
    elif draw(st.integers(0, 4)) == 0:
        from_peer = draw(peers)  # anybody
    else:
        from_peer = trace[-1].node if trace else requester.node

    def route(org: OrgId) -> OrgRoute:
        return OrgRoute(org, tuple(draw(st.lists(peers, max_size=4))), draw(st.booleans()))

    return Situation(
        me=me,
        i_am_gateway=draw(st.booleans()),
        i_can_decide=i_can_decide,
        requester=requester,
        requester_route=route(requester.org),
        target_org=target_org,
        target_route=route(target_org),
        publisher=draw(st.none() | peers),
        trace=trace,
        from_peer=from_peer,
        deadline=NOW + draw(st.integers(-5, 5)),
        now=NOW,
    )


@settings(max_examples=2000, deadline=None)
@given(situations())
def test_steps_are_well_formed(s: Situation) -> None:
    step = next_step(s)
    if isinstance(step, Forward):
        excluded = {s.me.node, s.requester.node, *(h.node for h in s.trace)}
        assert step.candidates
        assert not excluded & set(step.candidates)
        assert len(set(step.candidates)) == len(step.candidates)
        assert len(s.trace) + 1 <= MAX_HOPS
        assert s.now < s.deadline
        assert not s.i_can_decide
    elif isinstance(step, Decide):
        assert s.i_can_decide
        assert s.now < s.deadline
        assert len(s.trace) < MAX_HOPS
        assert s.me.node not in {h.node for h in s.trace}
    else:
        assert isinstance(step, Refuse)
        assert step.code in REFUSAL_CODES
        assert step.message.isprintable()
        assert 0 < len(step.message) <= MAX_MESSAGE


@settings(max_examples=500, deadline=None)
@given(situations())
def test_forward_candidates_keep_the_routes_order(s: Situation) -> None:
    step = next_step(s)
    if isinstance(step, Forward) and step.leg in ("egress", "ingress"):
        route = s.requester_route if step.leg == "egress" else s.target_route
        listed = list(route.gateways)
        positions = [listed.index(c) for c in step.candidates]
        assert positions == sorted(positions)


# -- a network model ---------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    routes: dict[OrgId, OrgRoute]
    members: dict[OrgId, tuple[PeerId, ...]]
    requester: Hop
    publisher: Hop

    def org_of(self, node: PeerId) -> OrgId:
        return next(o for o, ns in self.members.items() if node in ns)

    def is_gateway(self, node: PeerId) -> bool:
        return node in self.routes[self.org_of(node)].gateways


@st.composite
def models(draw: st.DrawFn) -> Model:
    n_orgs = draw(st.integers(1, 4))
    orgs_ = ORGS[:n_orgs] if n_orgs <= len(ORGS) else [*ORGS, OrgId(b"\x77" * 32)]
    next_peer = iter(PeerId(i.to_bytes(2, "big") * 16) for i in range(1, 1000))
    members: dict[OrgId, tuple[PeerId, ...]] = {}
    routes: dict[OrgId, OrgRoute] = {}
    for o in orgs_:
        nodes = tuple(next(next_peer) for _ in range(draw(st.integers(1, 5))))
        n_gw = draw(st.integers(0, min(3, len(nodes))))
        gateways = tuple(draw(st.permutations(nodes))[:n_gw])
        members[o] = nodes
        routes[o] = OrgRoute(o, gateways, draw(st.booleans()))
    r_org = draw(st.sampled_from(orgs_))
    t_org = draw(st.sampled_from(orgs_))
    requester = Hop(draw(st.sampled_from(members[r_org])), r_org)
    publisher = Hop(draw(st.sampled_from(members[t_org])), t_org)
    return Model(routes, members, requester, publisher)


def route_exists(m: Model) -> bool:
    r, t = m.requester.org, m.publisher.org
    route = m.routes[r]
    needs_egress = r != t and route.egress and m.requester.node not in route.gateways
    return not (needs_egress and not route.gateways)


@settings(max_examples=1500, deadline=None)
@given(models(), st.data())
def test_network_model_reaches_the_owner_through_the_gateways(
    m: Model, data: st.DataObject
) -> None:
    me = m.requester
    trace: tuple[Hop, ...] = ()
    from_peer: PeerId | None = None
    path = [me]
    for _ in range(MAX_HOPS + 2):
        s = Situation(
            me=me,
            i_am_gateway=m.is_gateway(me.node),
            i_can_decide=me == m.publisher,
            requester=m.requester,
            requester_route=m.routes[m.requester.org],
            target_org=m.publisher.org,
            target_route=m.routes[m.publisher.org],
            publisher=m.publisher.node,
            trace=trace,
            from_peer=from_peer,
            deadline=NOW + 60,
            now=NOW,
        )
        step = next_step(s)
        if not isinstance(step, Forward):
            break
        chosen = data.draw(st.sampled_from(step.candidates), label="next hop")
        if from_peer is not None:  # the requester signs the request, not a trace entry
            trace = (*trace, me)
        from_peer = me.node
        me = Hop(chosen, m.org_of(chosen))
        path.append(me)
    else:
        raise AssertionError(f"no answer within {MAX_HOPS + 2} steps: {path}")

    if not route_exists(m):
        assert isinstance(step, Refuse)
        assert step.code == "no_route"
        return
    assert step == Decide(), (step, path)
    assert me == m.publisher
    assert len(trace) <= MAX_HOPS
    nodes = [h.node for h in path]
    assert len(set(nodes)) == len(nodes), "a node was visited twice"
    r, t = m.requester.org, m.publisher.org
    if r != t:
        r_route, t_route = m.routes[r], m.routes[t]
        if r_route.egress:
            assert any(h.org == r and h.node in r_route.gateways for h in path)
        if t_route.gateways:
            assert any(h.org == t and h.node in t_route.gateways for h in path)
        # and the path never wanders through a third org
        assert {h.org for h in path} <= {r, t}


# -- the replay guard --------------------------------------------------------------------

ops = st.lists(st.tuples(st.integers(0, 30), st.integers(-2, 40), st.integers(0, 3)), max_size=300)


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(1, 12))
def test_replay_guard_matches_a_reference_and_stays_bounded(
    steps: list[tuple[int, int, int]], capacity: int
) -> None:
    guard = ReplayGuard(capacity)
    unbounded = ReplayGuard(10_000)
    ref: dict[bytes, int] = {}
    accepted: dict[bytes, int] = {}  # what the bounded guard let through, until its deadline
    now = NOW
    for rid_n, ttl, advance in steps:
        now += advance
        rid = bytes([rid_n])
        deadline = now + ttl
        ref = {k: d for k, d in ref.items() if d > now}
        expected = rid not in ref
        if expected and deadline > now:
            ref[rid] = deadline
        assert unbounded.check_and_remember(rid, deadline, now) is expected
        first = guard.check_and_remember(rid, deadline, now)
        assert len(guard) <= capacity
        if not first:
            # A replay is only ever reported for an id the guard let through, before
            # that acceptance's deadline. (An id it had to forget for room and then
            # saw again counts as let through again, with the new deadline.)
            assert accepted.get(rid, now) > now
        elif deadline > now:
            accepted[rid] = deadline
