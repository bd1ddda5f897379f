"""Access-request routing: where a request goes next, decided from what a hop knows (sans-I/O).

An access request travels from the requesting node to a node of the dataset's
owner organization that can decide it, one request/response stream per hop:
requester -> its own gateway (when its org gates egress) -> the owner org's
gateway -> the node that published the descriptor. Each hop verifies the request
and the trace entries so far (the node does that, with the records layer), then
asks :func:`next_step` what to do with a :class:`Situation`:

* :class:`Decide` - this node is the owner: evaluate the access policy;
* :class:`Forward` - open a stream to the first candidate that answers (see
  :class:`Failover`), append this node's signed trace entry, relay the answer;
* :class:`Refuse` - answer with a machine-readable ``code`` and a message that
  says what the user can do.

The rules are an ordered table (:data:`RULES`, documented in
``docs/access-routing.md``): the first rule that applies gives the step.
:class:`ReplayGuard` remembers request ids until their deadline so a replayed
request is refused at the first hop that sees it twice.

Invariants:
* Pure: no clock, no randomness, no I/O; ``now`` is passed in.
* A :class:`Forward` never names this node, a node already in the trace, or the
  requester; it is only returned when the trace after this hop still fits
  :data:`MAX_HOPS`, and its candidates keep the org record's order, each once.
* Every refusal code is one of :data:`REFUSAL_CODES`; messages are single-line,
  printable and at most :data:`MAX_MESSAGE` characters.
* :class:`ReplayGuard` holds at most ``capacity`` ids and never one whose
  deadline has passed when it is asked.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from identity.errors import InvalidInput
from identity.keys import OrgId, PeerId

__all__ = [
    "MAX_GATEWAYS",
    "MAX_HOPS",
    "MAX_MESSAGE",
    "REFUSAL_CODES",
    "RULES",
    "Decide",
    "Failover",
    "Forward",
    "Hop",
    "Leg",
    "OrgRoute",
    "Refuse",
    "ReplayGuard",
    "Rule",
    "Situation",
    "Step",
    "next_step",
]

MAX_HOPS = 8
"""The most trace entries a request may carry; a hop that already sees this many refuses."""
MAX_GATEWAYS = 16
"""The most gateways an org record lists (``docs/records.md``)."""
MAX_MESSAGE = 256
"""The longest refusal or failover message, in characters."""
MAX_REQUEST_ID = 64
"""The longest request id :class:`ReplayGuard` accepts, in bytes (ids are 32-byte hashes)."""
_MAX_WHY = 120

Leg = Literal["egress", "ingress", "internal", "direct"]

REFUSAL_CODES: tuple[str, ...] = (
    "expired",
    "hop_limit",
    "loop_detected",
    "wrong_sender",
    "egress_required",
    "not_a_gateway",
    "no_route",
)
"""Every code a :class:`Refuse` carries (the node maps them to ``datanet.errors``)."""


@dataclass(frozen=True)
class OrgRoute:
    """What an organization's signed org record says about routing.

    Attributes:
        org: the organization.
        gateways: its gateway nodes, in the record's order (empty when it has none).
        egress: its own nodes must send requests out through its gateways.
    """

    org: OrgId
    gateways: tuple[PeerId, ...] = ()
    egress: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.org, OrgId):
            raise InvalidInput("OrgRoute.org must be an OrgId")
        if not isinstance(self.gateways, tuple) or not all(
            isinstance(g, PeerId) for g in self.gateways
        ):
            raise InvalidInput("OrgRoute.gateways must be a tuple of PeerId")
        if len(self.gateways) > MAX_GATEWAYS:
            raise InvalidInput(f"an org record lists at most {MAX_GATEWAYS} gateways")


@dataclass(frozen=True)
class Hop:
    """A verified hop: the requester, or the signer of a trace entry, with its org."""

    node: PeerId
    org: OrgId


@dataclass(frozen=True)
class Situation:
    """Everything one node knows when it must route a request.

    Attributes:
        me: this node and its org.
        i_am_gateway: this node's certificate has the gateway role.
        i_can_decide: this node holds the publisher role of the dataset's org and
            holds the dataset's descriptor.
        requester: the requesting node and its org (verified from the request).
        requester_route: the requester org's route (its org record).
        target_org: the dataset's org.
        target_route: the dataset org's route (its org record).
        publisher: the node that published the descriptor, if known.
        trace: the verified trace entries so far, in order, without this node.
        from_peer: who sent the request to this node; None when this node is the
            requester originating it.
        deadline: the request's deadline (Unix seconds).
        now: the current time (Unix seconds).

    Raises:
        InvalidInput: the routes do not belong to the orgs they stand for, or a
            node that can decide is not of the dataset's org (a caller bug).
    """

    me: Hop
    i_am_gateway: bool
    i_can_decide: bool
    requester: Hop
    requester_route: OrgRoute
    target_org: OrgId
    target_route: OrgRoute
    publisher: PeerId | None
    trace: tuple[Hop, ...]
    from_peer: PeerId | None
    deadline: int
    now: int

    def __post_init__(self) -> None:
        if self.requester_route.org != self.requester.org:
            raise InvalidInput("requester_route must be the route of the requester's org")
        if self.target_route.org != self.target_org:
            raise InvalidInput("target_route must be the route of the target org")
        if self.i_can_decide and self.me.org != self.target_org:
            raise InvalidInput("only a node of the dataset's org can decide")
        if not isinstance(self.trace, tuple):
            raise InvalidInput("Situation.trace must be a tuple of Hop")


@dataclass(frozen=True)
class Decide:
    """This node is the owner: evaluate the access policy and answer."""


@dataclass(frozen=True)
class Forward:
    """Send the request on to the first of ``candidates`` that answers.

    Attributes:
        candidates: where to send it, in the order to try them (never empty).
        leg: which part of the route this is: ``egress`` (to the requester org's
            gateway), ``ingress`` (to the owner org's gateway), ``internal``
            (inside the owner org, to the publisher), ``direct`` (to the
            publisher of an org without gateways).
    """

    candidates: tuple[PeerId, ...]
    leg: Leg


@dataclass(frozen=True)
class Refuse:
    """Answer the request with a refusal.

    Attributes:
        code: one of :data:`REFUSAL_CODES`.
        message: for people: what went wrong and what to do about it.
    """

    code: str
    message: str


Step = Decide | Forward | Refuse
RuleFn = Callable[[Situation], Step | None]


@dataclass(frozen=True)
class Rule:
    """One row of the routing table: when it applies, and what it answers."""

    name: str
    when: str
    step: str
    apply: RuleFn


# -- helpers --------------------------------------------------------------------------


def _clean(text: str, limit: int = MAX_MESSAGE) -> str:
    """One printable line of at most ``limit`` characters."""
    line = "".join(ch if ch.isprintable() else " " for ch in text)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _refuse(code: str, message: str) -> Refuse:
    assert code in REFUSAL_CODES
    return Refuse(code, _clean(message))


def _short(peer: PeerId) -> str:
    text = str(peer)
    return text[:16] + "…"


def _short_org(org: OrgId) -> str:
    text = str(org)
    return text[:24] + "…"


def _originating(s: Situation) -> bool:
    return s.from_peer is None


def _previous(s: Situation) -> Hop:
    """The hop that handed the request to this node."""
    return s.trace[-1] if s.trace else s.requester


def _excluded(s: Situation) -> set[PeerId]:
    return {s.me.node, s.requester.node, *(h.node for h in s.trace)}


def _candidates(s: Situation, peers: Sequence[PeerId]) -> tuple[PeerId, ...]:
    """``peers`` without this node, the requester, trace nodes and repeats, in order."""
    excluded = _excluded(s)
    out: list[PeerId] = []
    for p in peers:
        if p not in excluded and p not in out:
            out.append(p)
    return tuple(out)


def _egress_exempt(s: Situation) -> bool:
    """The requester may leave its org without a gateway hop: it is a listed gateway itself.

    Membership in the org record is what every hop can check, so it is what
    counts, on both sides (the certificate's gateway role alone is not enough:
    the owner could not tell).
    """
    return s.requester.node in s.requester_route.gateways


def _passed_egress(s: Situation) -> bool:
    """The request left the requester's org through one of its listed gateways."""
    gateways = s.requester_route.gateways
    return _egress_exempt(s) or any(
        h.org == s.requester.org and h.node in gateways for h in s.trace
    )


# -- the rules, in order ----------------------------------------------------------------


def _expired(s: Situation) -> Step | None:
    if s.now >= s.deadline:
        return _refuse(
            "expired",
            f"the request's deadline passed {s.now - s.deadline} s ago; "
            "send a new request (it gets a fresh deadline)",
        )
    return None


def _hop_limit(s: Situation) -> Step | None:
    if len(s.trace) >= MAX_HOPS:
        return _refuse(
            "hop_limit",
            f"the request already crossed {len(s.trace)} hops, the limit is {MAX_HOPS}; "
            "the route loops or is too long: "
            "ask the operators to check their org records' gateways",
        )
    return None


def _loop(s: Situation) -> Step | None:
    if any(h.node == s.me.node for h in s.trace):
        return _refuse(
            "loop_detected",
            f"the request came back to node {_short(s.me.node)}, which it already passed; "
            "ask the operators to check their org records' gateways",
        )
    if s.me.node == s.requester.node and not _originating(s):
        return _refuse(
            "loop_detected",
            "the request came back to the node that sent it; "
            "ask the operators to check their org records' gateways",
        )
    return None


def _wrong_sender(s: Situation) -> Step | None:
    if _originating(s):
        if s.me != s.requester or s.trace:
            return _refuse(
                "wrong_sender",
                "only the requesting node itself may originate a request, with an empty trace; "
                "sign the request with this node's own key",
            )
        return None
    expected = _previous(s).node
    if s.from_peer != expected:
        return _refuse(
            "wrong_sender",
            f"the request arrived from {_short(s.from_peer) if s.from_peer else 'nobody'} "
            f"but its last hop is {_short(expected)}; the sending node must append its own "
            "trace entry (upgrade or fix that node)",
        )
    return None


def _egress_required(s: Situation) -> Step | None:
    route = s.requester_route
    if route.egress and s.me.org != s.requester.org and not _passed_egress(s):
        return _refuse(
            "egress_required",
            f"org {_short_org(s.requester.org)} requires its requests to leave through its "
            "gateways, and this one did not pass any; send it again through your org's "
            "gateway (check your org record's gateways)",
        )
    return None


def _not_a_gateway(s: Situation) -> Step | None:
    if (
        not _originating(s)
        and _previous(s).org != s.me.org
        and not s.i_can_decide
        and not s.i_am_gateway
    ):
        return _refuse(
            "not_a_gateway",
            f"node {_short(s.me.node)} is not a gateway of its org and cannot decide this "
            "request, so it takes none from other orgs; send it to one of the owner org's "
            "gateways (its org record lists them)",
        )
    return None


def _decide(s: Situation) -> Step | None:
    return Decide() if s.i_can_decide else None


def _egress(s: Situation) -> Step | None:
    route = s.requester_route
    if _originating(s) and s.me.org != s.target_org and route.egress and not _egress_exempt(s):
        candidates = _candidates(s, route.gateways)
        if not candidates:
            return _refuse(
                "no_route",
                "your org record requires egress through gateways but lists none; "
                "ask your org's operator to add a gateway to the org record",
            )
        return Forward(candidates, "egress")
    return None


def _ingress(s: Situation) -> Step | None:
    if s.me.org == s.target_org:
        return None
    if s.target_route.gateways:
        candidates = _candidates(s, s.target_route.gateways)
        if candidates:
            return Forward(candidates, "ingress")
        return _refuse(
            "no_route",
            f"every gateway of the owner org {_short_org(s.target_org)} was already on "
            "this request's route; ask that org's operator to check its org record",
        )
    if s.publisher is not None:
        candidates = _candidates(s, (s.publisher,))
        if candidates:
            return Forward(candidates, "direct")
    return _refuse(
        "no_route",
        f"the owner org {_short_org(s.target_org)} lists no gateways and the publishing node "
        "of the dataset is not known here; search the catalog again, or ask the owner "
        "org to publish an org record with gateways",
    )


def _internal(s: Situation) -> Step | None:
    # Reached only inside the target org (the ingress rule answered everything else).
    if s.publisher is not None:
        candidates = _candidates(s, (s.publisher,))
        if candidates:
            return Forward(candidates, "internal")
    return _refuse(
        "no_route",
        "no node of the owner org holds the descriptor with the publisher role here: "
        "the publishing node is unknown or is this node; the owner's operator should "
        "publish the dataset again from a node with the publisher role",
    )


RULES: tuple[Rule, ...] = (
    Rule("expired", "now >= deadline", "Refuse expired", _expired),
    Rule("hop_limit", f"len(trace) >= MAX_HOPS ({MAX_HOPS})", "Refuse hop_limit", _hop_limit),
    Rule(
        "loop",
        "me in trace, or me is the requester and the request came from a peer",
        "Refuse loop_detected",
        _loop,
    ),
    Rule(
        "sender",
        "from_peer != last trace hop (the requester when the trace is empty); "
        "or originating while not the requester or with a trace",
        "Refuse wrong_sender",
        _wrong_sender,
    ),
    Rule(
        "egress enforcement",
        "the requester's org gates egress, my org is another, and neither the requester "
        "nor a trace hop of its org is one of its listed gateways",
        "Refuse egress_required",
        _egress_required,
    ),
    Rule(
        "gateway only",
        "received from another org, not a gateway, cannot decide",
        "Refuse not_a_gateway",
        _not_a_gateway,
    ),
    Rule("owner", "i_can_decide", "Decide", _decide),
    Rule(
        "egress",
        "originating, target org is another, my org gates egress, I am not one of its "
        "listed gateways",
        "Forward(my org's gateways, egress); none left: Refuse no_route",
        _egress,
    ),
    Rule(
        "ingress",
        "target org is another than mine",
        "Forward(target gateways, ingress); no gateways: Forward((publisher,), direct); "
        "neither: Refuse no_route",
        _ingress,
    ),
    Rule(
        "internal",
        "inside the target org, cannot decide",
        "Forward((publisher,), internal); publisher unknown or me: Refuse no_route",
        _internal,
    ),
)
"""The routing table, in order: the first rule whose ``apply`` answers gives the step."""


def next_step(s: Situation) -> Step:
    """What this node does with a request: decide it, forward it, or refuse it.

    Args:
        s: what this node knows (verified request and trace, routes, time).

    Returns:
        The step of the first rule of :data:`RULES` that applies.
    """
    for rule in RULES:
        step = rule.apply(s)
        if step is not None:
            if isinstance(step, Forward):
                assert step.candidates
                assert len(s.trace) + 1 <= MAX_HOPS
            return step
    raise AssertionError("the last routing rule always answers")  # pragma: no cover


# -- replays ------------------------------------------------------------------------


class ReplayGuard:
    """Remembers request ids until their deadline, within a bounded memory.

    Args:
        capacity: the most ids held at once.

    Expired ids are dropped lazily (a heap ordered by deadline); when the guard is
    full of live ids, the one with the earliest deadline is evicted: it is the
    one whose replay would be refused soonest anyway as expired.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise InvalidInput("ReplayGuard capacity must be a positive integer")
        self.capacity = capacity
        self._deadlines: dict[bytes, int] = {}
        self._heap: list[tuple[int, bytes]] = []

    def __len__(self) -> int:
        return len(self._deadlines)

    def _pop(self) -> None:
        _, rid = heapq.heappop(self._heap)
        del self._deadlines[rid]

    def _expire(self, now: int) -> None:
        while self._heap and self._heap[0][0] <= now:
            self._pop()

    def check_and_remember(self, request_id: bytes, deadline: int, now: int) -> bool:
        """Whether this is the first time ``request_id`` is seen; remember it if so.

        Args:
            request_id: the request's id (its hash).
            deadline: the request's deadline: the id is remembered until then.
            now: the current time.

        Returns:
            True the first time (the id is remembered until ``deadline`` unless it
            has already passed); False for a replay of an id still remembered.

        Raises:
            InvalidInput: ``request_id`` is not 1 to :data:`MAX_REQUEST_ID` bytes.
        """
        if not isinstance(request_id, bytes) or not 1 <= len(request_id) <= MAX_REQUEST_ID:
            raise InvalidInput(f"a request id is 1 to {MAX_REQUEST_ID} bytes")
        self._expire(now)
        if request_id in self._deadlines:
            return False
        if deadline <= now:
            return True  # already expired: refused as such, nothing to remember
        while len(self._deadlines) >= self.capacity:
            self._pop()
        self._deadlines[request_id] = deadline
        heapq.heappush(self._heap, (deadline, request_id))
        return True


# -- failover ------------------------------------------------------------------------


class Failover:
    """Tries the candidates of a :class:`Forward` in order and says which hop failed and why.

    Args:
        candidates: the peers to try, in order (repeats are tried once).
        org: the org they belong to (for the message).
        leg: the leg of the route (for the message).
    """

    def __init__(self, candidates: Sequence[PeerId], org: OrgId, leg: str) -> None:
        self._candidates: list[PeerId] = []
        for p in candidates:
            if p not in self._candidates:
                self._candidates.append(p)
        self.org = org
        self.leg = _clean(str(leg), 16)
        self._next = 0
        self._failures: dict[PeerId, str] = {}

    def next(self) -> PeerId | None:
        """The next candidate to try; None when every one was tried."""
        if self._next >= len(self._candidates):
            return None
        peer = self._candidates[self._next]
        self._next += 1
        return peer

    def failed(self, peer: PeerId, why: str) -> None:
        """Record that ``peer`` did not answer, and why (shortened to one line).

        Raises:
            InvalidInput: ``peer`` is not one of the candidates.
        """
        if peer not in self._candidates:
            raise InvalidInput(f"{_short(peer)} is not one of this hop's candidates")
        self._failures[peer] = _clean(str(why), _MAX_WHY)

    @property
    def exhausted(self) -> bool:
        """Every candidate was tried."""
        return self._next >= len(self._candidates)

    def error_message(self) -> str:
        """Which hops failed and why, for the requester.

        Example: ``no gateway of org did:key:… answered (ingress): 12D3…: connection
        refused; 12D3…: timed out``.
        """
        who = "gateway" if self.leg in ("egress", "ingress") else "node"
        head = f"no {who} of org {self.org} answered ({self.leg})"
        if not self._candidates:
            return head + ": it has none to try"
        parts = [
            f"{_short(p)}: {self._failures[p]}" for p in self._candidates if p in self._failures
        ]
        untried = len(self._candidates) - self._next
        if untried:
            parts.append(f"{untried} not tried")
        return _clean(f"{head}: {'; '.join(parts) or 'no answer'}", 4 * MAX_MESSAGE)
