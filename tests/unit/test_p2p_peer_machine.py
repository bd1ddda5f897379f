"""The per-peer admission state machine, driven without sockets (events in, actions out)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datanet.p2p import (
    ID_PROTOCOL,
    KAD_PROTOCOL,
    MODE_KAD_SERVER,
    Admission,
    AdmissionMode,
    Hello,
    HostLimits,
    KadServer,
    PeerConnected,
    PeerDisconnected,
)
from datanet.p2p.addrbook import AddressBook
from datanet.p2p.admission import Refusal
from datanet.p2p.peer import (
    TRANSITIONS,
    Action,
    Announce,
    AnswerHello,
    AnswerRefusal,
    AwaitHello,
    Close,
    PeerSession,
    PeerState,
    RunIdentify,
    SendHello,
    StreamKind,
)
from datanet.testing.clock import ManualClock
from datanet.testing.p2p import NOW, cert_for, node_key, org_key
from identity import TrustStore

ME, PEER, THIEF = node_key(1), node_key(2), node_key(5)
ORG, STRANGER = org_key(1), org_key(3)
ADDR = "/ip4/10.0.0.2/tcp/4001"
LIMITS = HostLimits(negotiating_per_peer=3, inbound_streams_per_peer=2)

GOOD = Hello((cert_for(ORG, PEER),), frozenset({MODE_KAD_SERVER}), (ADDR,))
GOOD_NO_KAD = Hello((cert_for(ORG, PEER),), frozenset(), (ADDR,))
UNTRUSTED = Hello((cert_for(STRANGER, PEER),), frozenset({MODE_KAD_SERVER}), (ADDR,))
STOLEN = Hello((cert_for(ORG, THIEF),), frozenset(), (ADDR,))  # names another node
NO_CHAIN = Hello((), frozenset({MODE_KAD_SERVER}), (ADDR,))


@dataclass
class Setup:
    session: PeerSession
    book: AddressBook
    clock: ManualClock = field(default_factory=ManualClock)


def setup(mode: str = "closed", *, inbound: bool = False) -> Setup:
    trust = TrustStore()
    trust.trust(ORG.org_id)
    clock = ManualClock()
    policy = Admission(AdmissionMode(mode), trust, (), clock)
    book = AddressBook(ME.peer_id, per_peer=LIMITS.max_peer_addrs)
    session = PeerSession(PEER.peer_id, policy, book, LIMITS, inbound=inbound)
    return Setup(session, book, clock)


def connected(org: bool = True, inbound: bool = False) -> Announce:
    return Announce(PeerConnected(PEER.peer_id, ORG.org_id if org else None, inbound, (ADDR,)))


# ------------------------------------------------------------------ dialer


def test_dialer_sends_hello_and_announces_an_admitted_kad_server() -> None:
    s = setup("closed")
    assert s.session.state is PeerState.CONNECTING
    assert s.session.connection_opened(inbound=False) == [SendHello()]
    assert s.session.state is PeerState.AWAITING_HELLO
    actions = s.session.reply_received(GOOD.encode(), observed="10.0.0.2")
    assert actions == [connected(), Announce(KadServer(PEER.peer_id, (ADDR,)))]
    assert s.session.admitted
    assert s.session.org == ORG.org_id
    assert s.book.transports(PEER.peer_id) == (ADDR,)


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (UNTRUSTED.encode(), "untrusted_organization"),
        (STOLEN.encode(), "wrong_scope"),
        (NO_CHAIN.encode(), None),
        (Refusal("bad_certificate", "no").encode(), "refused_by_peer"),
        (b"\xc1junk", "decode_error"),
    ],
)
def test_dialer_refuses_and_closes(reply: bytes, code: str | None) -> None:
    s = setup("closed")
    s.session.connection_opened(inbound=False)
    (action,) = s.session.reply_received(reply)
    assert isinstance(action, Close)
    assert not action.decision.admitted
    if code is not None:
        assert action.decision.code == code
    assert s.session.state is PeerState.REFUSED
    assert s.book.transports(PEER.peer_id) == ()  # a refused peer's addresses are not kept


def test_dialer_meets_a_plain_node() -> None:
    gated = setup("members")
    gated.session.connection_opened(inbound=False)
    (close,) = gated.session.no_hello_protocol()
    assert isinstance(close, Close)
    assert close.decision.code == "no_hello"

    s = setup("open")
    s.session.connection_opened(inbound=False)
    assert s.session.no_hello_protocol() == [
        Announce(PeerConnected(PEER.peer_id, None, False, ())),
        RunIdentify(),
    ]
    assert s.session.identify_received(["/ipfs/ping/1.0.0", KAD_PROTOCOL], [ADDR]) == [
        Announce(KadServer(PEER.peer_id, (ADDR,)))
    ]
    assert s.session.identify_received([KAD_PROTOCOL], [ADDR]) == []  # not asked again
    assert s.book.transports(PEER.peer_id) == (ADDR,)


def test_a_broken_exchange_refuses_even_in_open_networks() -> None:
    s = setup("open")
    s.session.connection_opened(inbound=False)
    (close,) = s.session.hello_failed("timeout", "admission with X: timed out")
    assert close == Close(close.decision)
    assert close.decision.code == "timeout"


# ---------------------------------------------------------------- listener


@pytest.mark.parametrize("mode", ["closed", "members", "open"])
def test_listener_waits_for_the_hello_and_identifies_the_peer(mode: str) -> None:
    # In every mode: a plain libp2p peer (no /datanet/id in identify) is decided on at
    # once, rather than after hello_timeout (issue 12, gap 3; the js interop test).
    s = setup(mode, inbound=True)
    assert s.session.connection_opened(inbound=True) == [AwaitHello(detect_plain=True)]


def test_listener_answers_then_announces() -> None:
    s = setup("closed", inbound=True)
    s.session.connection_opened(inbound=True)
    actions = s.session.hello_received(GOOD_NO_KAD.encode(), observed="10.0.0.2")
    assert actions == [AnswerHello(), connected(inbound=True)]
    assert s.session.hello_timed_out() == []  # decided: the timer has nothing to do


def test_listener_refuses_with_the_policys_reason() -> None:
    s = setup("closed", inbound=True)
    s.session.connection_opened(inbound=True)
    answer, close = s.session.hello_received(UNTRUSTED.encode())
    assert isinstance(answer, AnswerRefusal)
    assert answer.refusal.code == "untrusted_organization"
    assert isinstance(close, Close)
    assert close.decision.code == "untrusted_organization"

    s = setup("open", inbound=True)  # a malformed hello is refused whatever the mode
    answer, close = s.session.hello_received(b"\x93\x01\x02")
    assert isinstance(answer, AnswerRefusal)
    assert isinstance(close, Close)
    assert "malformed hello" in close.decision.reason


def test_unspecified_announced_addresses_become_the_observed_ip() -> None:
    s = setup("closed", inbound=True)
    hello = Hello(GOOD.chain, frozenset(), ("/ip4/0.0.0.0/tcp/4001",))
    actions = s.session.hello_received(hello.encode(), observed="192.0.2.7")
    assert actions[1] == Announce(
        PeerConnected(PEER.peer_id, ORG.org_id, True, ("/ip4/192.0.2.7/tcp/4001",))
    )


def test_listener_timeout() -> None:
    s = setup("members", inbound=True)
    s.session.connection_opened(inbound=True)
    (close,) = s.session.hello_timed_out()
    assert isinstance(close, Close)
    assert close.decision.code == "no_hello"

    s = setup("open", inbound=True)
    s.book.remember_announced(PEER.peer_id, [ADDR])
    s.session.connection_opened(inbound=True)
    assert s.session.hello_timed_out() == [
        Announce(PeerConnected(PEER.peer_id, None, True, (ADDR,))),
        RunIdentify(),
    ]


def test_open_listener_recognises_plain_peers_by_identify() -> None:
    s = setup("open", inbound=True)
    s.session.connection_opened(inbound=True)
    # a datanet node: wait for its hello
    assert s.session.identify_received([ID_PROTOCOL, KAD_PROTOCOL], [ADDR]) == []
    assert not s.session.decided
    # a plain node: admitted at once, and its identify answer is used
    assert s.session.identify_received([KAD_PROTOCOL], [ADDR]) == [
        Announce(PeerConnected(PEER.peer_id, None, True, ())),
        Announce(KadServer(PEER.peer_id, (ADDR,))),
    ]
    assert s.session.hello_timed_out() == []


@pytest.mark.parametrize("mode", ["closed", "members"])
def test_gated_listener_refuses_a_plain_peer_as_soon_as_identify_answers(mode: str) -> None:
    s = setup(mode, inbound=True)
    s.session.connection_opened(inbound=True)
    assert s.session.identify_received([ID_PROTOCOL, KAD_PROTOCOL], [ADDR]) == []
    assert not s.session.decided  # a datanet node: its hello decides
    actions = s.session.identify_received([KAD_PROTOCOL], [ADDR])
    assert [type(a) for a in actions] == [Close]
    assert s.session.decided
    assert not s.session.admitted


def test_a_late_identify_answer_after_the_hello_is_ignored() -> None:
    s = setup("open", inbound=True)
    s.session.connection_opened(inbound=True)
    s.session.hello_received(GOOD_NO_KAD.encode())
    assert s.session.identify_received([KAD_PROTOCOL], [ADDR]) == []
    assert not s.session.kad_server


# ------------------------------------------------------- decisions over time


def test_a_failed_second_exchange_does_not_undo_a_good_first_one() -> None:
    s = setup("closed")
    s.session.connection_opened(inbound=False)
    s.session.reply_received(GOOD_NO_KAD.encode())
    assert s.session.connection_opened(inbound=True) == []
    assert s.session.connection_opened(inbound=False) == [SendHello()]
    assert s.session.hello_failed("timeout", "slow") == []
    assert s.session.admitted
    # a second good exchange may add what the first did not say
    assert s.session.reply_received(GOOD.encode()) == [Announce(KadServer(PEER.peer_id, (ADDR,)))]


def test_refused_is_final_until_the_session_closes() -> None:
    s = setup("closed")
    s.session.connection_opened(inbound=False)
    (close,) = s.session.reply_received(UNTRUSTED.encode())
    assert s.session.reply_received(GOOD.encode()) == []
    assert s.session.hello_received(GOOD.encode()) == [AnswerHello()]  # answered, not admitted
    assert s.session.state is PeerState.REFUSED
    assert s.session.connection_opened(inbound=True) == [close]  # a newcomer is closed too
    assert s.session.connection_closed() == []  # never announced, so no PeerDisconnected
    assert s.session.state is PeerState.CLOSED
    assert s.session.connection_opened(inbound=False) == []


def test_expiry_or_revocation_while_connected_closes_the_peer() -> None:
    s = setup("closed")
    s.session.connection_opened(inbound=False)
    s.session.reply_received(GOOD.encode())
    assert s.session.recheck() == []
    s.clock.now = NOW + 7200  # past the certificate's not_after
    (close,) = s.session.recheck()
    assert isinstance(close, Close)
    assert close.decision.code == "certificate_expired"
    assert s.session.state is PeerState.REFUSED
    assert s.session.recheck() == []
    assert s.session.connection_closed() == [Announce(PeerDisconnected(PEER.peer_id))]
    assert s.session.connection_closed() == []


def test_open_networks_do_not_recheck() -> None:
    s = setup("open")
    s.session.connection_opened(inbound=False)
    s.session.reply_received(GOOD.encode())
    s.clock.now = NOW + 7200
    assert s.session.recheck() == []
    assert s.session.admitted


def test_stream_caps_per_peer() -> None:
    s = setup("closed", inbound=True)
    assert [s.session.stream_opened(StreamKind.DATANET) for _ in range(3)] == [True, True, False]
    assert [s.session.stream_opened(StreamKind.NEGOTIATING) for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    s.session.stream_closed(StreamKind.DATANET)
    assert s.session.streams(StreamKind.DATANET) == 1
    assert s.session.stream_opened(StreamKind.DATANET)
    s.session.connection_closed()
    s.session.stream_closed(StreamKind.NEGOTIATING)
    assert not s.session.stream_opened(StreamKind.NEGOTIATING)  # a closed session serves none


def test_the_transition_table_is_total() -> None:
    steps = {step for row in TRANSITIONS.values() for step in row}
    assert set(TRANSITIONS) == set(PeerState)
    for state, row in TRANSITIONS.items():
        assert set(row) == steps, state
    assert all(target is None for target in TRANSITIONS[PeerState.CLOSED].values())


# ------------------------------------------------------------- properties

HELLOS = [GOOD, GOOD_NO_KAD, UNTRUSTED, STOLEN, NO_CHAIN]
FRAMES = [h.encode() for h in HELLOS] + [b"\xc1", Refusal("nope", "no").encode()]
PROTOCOL_SETS = [[], [ID_PROTOCOL], [KAD_PROTOCOL], [ID_PROTOCOL, KAD_PROTOCOL], ["/x/1.0.0"]]

events = st.one_of(
    st.tuples(st.just("opened"), st.booleans()),
    st.tuples(st.just("hello"), st.sampled_from(FRAMES)),
    st.tuples(st.just("reply"), st.sampled_from(FRAMES)),
    st.tuples(st.just("no_hello_protocol"), st.none()),
    st.tuples(st.just("hello_failed"), st.none()),
    st.tuples(st.just("timed_out"), st.none()),
    st.tuples(st.just("identify"), st.sampled_from(PROTOCOL_SETS)),
    st.tuples(st.just("identify_failed"), st.none()),
    st.tuples(st.just("expire"), st.none()),
    st.tuples(st.just("recheck"), st.none()),
    st.tuples(st.just("stream"), st.sampled_from(list(StreamKind))),
    st.tuples(st.just("closed"), st.none()),
)


def feed(s: Setup, kind: str, arg: object) -> list[Action]:
    session = s.session
    if kind == "opened":
        return session.connection_opened(inbound=bool(arg))
    if kind == "hello":
        assert isinstance(arg, bytes)
        return session.hello_received(arg, observed="10.0.0.9")
    if kind == "reply":
        assert isinstance(arg, bytes)
        return session.reply_received(arg, observed="10.0.0.9")
    if kind == "identify":
        assert isinstance(arg, list)
        return session.identify_received(arg, [ADDR])
    if kind == "expire":
        s.clock.now = NOW + 7200
        return []
    if kind == "stream":
        assert isinstance(arg, StreamKind)
        if session.stream_opened(arg):
            session.stream_closed(arg)
        return []
    simple = {
        "no_hello_protocol": session.no_hello_protocol,
        "hello_failed": lambda: session.hello_failed("timeout", "slow"),
        "timed_out": session.hello_timed_out,
        "identify_failed": session.identify_failed,
        "recheck": session.recheck,
        "closed": session.connection_closed,
    }
    return simple[kind]()


@settings(max_examples=300, deadline=None)
@given(
    mode=st.sampled_from(["closed", "members", "open"]),
    inbound=st.booleans(),
    script=st.lists(events, max_size=25),
)
def test_any_event_sequence_keeps_the_announcement_invariants(
    mode: str, inbound: bool, script: list[tuple[str, object]]
) -> None:
    s = setup(mode, inbound=inbound)
    announced: list[object] = []
    ever_refused = False
    closed = False
    for kind, arg in script:
        before = s.session.state
        actions = feed(s, kind, arg)
        after = s.session.state
        events_now = [a.event for a in actions if isinstance(a, Announce)]
        if closed:  # a closed session does nothing (but a hello still gets its answer)
            assert all(isinstance(a, AnswerHello | AnswerRefusal) for a in actions)
        # answers come first, and only from a hello
        answers = [a for a in actions if isinstance(a, AnswerHello | AnswerRefusal)]
        assert len(answers) == (1 if kind == "hello" else 0)
        if answers:
            assert actions[0] is answers[0]
        for event in events_now:
            if isinstance(event, PeerConnected | KadServer):
                assert not ever_refused, "a refused peer is never announced"
                assert after is PeerState.ADMITTED
            announced.append(event)
        # Close exactly when the peer becomes refused (or a connection opens while it is)
        closes = [a for a in actions if isinstance(a, Close)]
        entering = after is PeerState.REFUSED and before is not PeerState.REFUSED
        reopened = kind == "opened" and before is PeerState.REFUSED
        assert len(closes) == (1 if entering or reopened else 0)
        if after is PeerState.REFUSED:
            ever_refused = True
        if ever_refused and not closed:
            assert after in (PeerState.REFUSED, PeerState.CLOSED)
        if after is PeerState.CLOSED:
            closed = True
        else:
            decision = s.session.decision
            assert s.session.admitted == (decision is not None and decision.admitted)
            assert s.session.decided == (decision is not None)
        for k in StreamKind:
            assert 0 <= s.session.streams(k) <= 3
    kinds = [type(e) for e in announced]
    assert kinds.count(PeerConnected) <= 1
    assert kinds.count(KadServer) <= 1
    assert kinds.count(PeerDisconnected) <= 1
    if KadServer in kinds:
        assert kinds.index(PeerConnected) < kinds.index(KadServer)
    if PeerDisconnected in kinds:
        assert PeerConnected in kinds
        assert kinds[-1] is PeerDisconnected
    if s.session.announced and s.session.state is PeerState.CLOSED:
        assert PeerDisconnected in kinds


def test_the_machine_imports_no_io() -> None:
    import ast
    from pathlib import Path

    import datanet.p2p.peer

    tree = ast.parse(Path(datanet.p2p.peer.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    pure = {
        "datanet.p2p.addrbook",
        "datanet.p2p.admission",
        "datanet.p2p.events",
        "datanet.p2p.limits",
    }
    assert {m for m in imported if m.startswith("datanet")} <= pure
    assert not {m for m in imported if m.split(".")[0] in ("trio", "libp2p", "socket")}
