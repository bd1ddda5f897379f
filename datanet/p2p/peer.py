"""One connected peer's admission and identify, as a sans-I/O state machine.

The host keeps one :class:`PeerSession` per connected peer, from its first
connection to its last. The host feeds it what happened (a connection opened,
a hello arrived, identify answered, a stream opened, the last connection
closed) and carries out the :data:`Action` s it returns (send a hello, wait for
one, announce an event, run identify, close the peer). The session never does
I/O, never reads a clock except through the admission policy, and never
touches trio, so it is tested by feeding it events (as h11 is).

States (:class:`PeerState`; the table is :data:`TRANSITIONS`)::

    connecting      ─opened─▶  awaiting-hello
    connecting or
    awaiting-hello  ─admit──▶  admitted   (a later refusal is ignored)
                    ─refuse─▶  refused
    admitted        ─revoke─▶  refused    (certificate expired or revoked)
    refused                               (final: later decisions are ignored)
    any state       ─last connection closed─▶ closed (terminal: every event ignored)

* The **dialer** of a connection sends the hello (:class:`SendHello`) and
  reports the listener's reply (:meth:`PeerSession.reply_received`), that the
  peer has no ``/datanet/id`` (:meth:`~PeerSession.no_hello_protocol`: a plain
  libp2p node) or that the exchange failed (:meth:`~PeerSession.hello_failed`).
* The **listener** waits for the hello (:class:`AwaitHello`), answers it
  (:meth:`~PeerSession.hello_received` returns :class:`AnswerHello` or
  :class:`AnswerRefusal` first) and decides without one after ``hello_timeout``
  (:meth:`~PeerSession.hello_timed_out`). In ``open`` networks it identifies
  the dialer meanwhile: a peer whose identify lacks ``/datanet/id`` is a plain
  node and is admitted at once.
* Every decision comes from the admission policy (:meth:`Admission.decide`),
  except that a broken exchange or a peer's refusal refuses the peer.
* A plain admitted peer is identified (:class:`RunIdentify`) to learn whether
  it serves the DHT.

Invariants (property-tested in ``tests/unit/test_p2p_peer_machine.py``):
* ``PeerConnected`` is announced at most once per session, only when the peer
  is admitted, and never after it was refused; ``KadServer`` at most once and
  only after ``PeerConnected``; ``PeerDisconnected`` at most once, only after
  ``PeerConnected``, and last.
* ``refused`` is final until the session closes: a failed second exchange
  does not undo a good first one, and a refused peer is never admitted by a
  later one. Entering ``refused`` (or a connection opening in it) closes the peer.
* Until the session closes, ``state is ADMITTED`` exactly when the current
  decision admits the peer.
* Concurrent inbound streams are counted per peer and capped
  (``negotiating_per_peer``, ``inbound_streams_per_peer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from datanet.p2p.addrbook import AddressBook
from datanet.p2p.admission import (
    ID_PROTOCOL,
    MODE_KAD_SERVER,
    Decision,
    Hello,
    Refusal,
    decode_reply,
)
from datanet.p2p.events import (
    KAD_PROTOCOL,
    KadServer,
    PeerConnected,
    PeerDisconnected,
    PeerEvent,
)
from datanet.p2p.limits import HostLimits
from identity.errors import DecodeError
from identity.keys import OrgId, PeerId

__all__ = [
    "TRANSITIONS",
    "Action",
    "AdmissionPolicy",
    "Announce",
    "AnswerHello",
    "AnswerRefusal",
    "AwaitHello",
    "Close",
    "PeerSession",
    "PeerState",
    "RunIdentify",
    "SendHello",
    "StreamKind",
]


class AdmissionPolicy(Protocol):
    """What a session consults: :class:`~datanet.p2p.admission.Admission`."""

    @property
    def gated(self) -> bool:
        """Whether peers must be admitted before they use datanet protocols."""
        ...

    def decide(self, peer: PeerId, hello: Hello | None) -> Decision:
        """Admit or refuse ``peer`` given its hello (None: it sent none)."""
        ...


class PeerState(Enum):
    """Where a peer's admission stands."""

    CONNECTING = "connecting"
    """Known from an inbound stream; its connection event has not arrived yet."""
    AWAITING_HELLO = "awaiting-hello"
    """Connected; the admission exchange is under way."""
    ADMITTED = "admitted"
    """May use datanet protocols (and has been announced)."""
    REFUSED = "refused"
    """Not admitted, or no longer; its connections are being closed."""
    CLOSED = "closed"
    """Its last connection closed; the session is over."""


class _Step(Enum):
    """What an event amounts to, as far as the state table is concerned."""

    OPENED = "opened"
    ADMIT = "admit"
    REFUSE = "refuse"
    REVOKE = "revoke"
    CLOSE = "close"


_S, _E = PeerState, _Step
TRANSITIONS: dict[PeerState, dict[_Step, PeerState | None]] = {
    _S.CONNECTING: {
        _E.OPENED: _S.AWAITING_HELLO,
        _E.ADMIT: _S.ADMITTED,
        _E.REFUSE: _S.REFUSED,
        _E.REVOKE: None,
        _E.CLOSE: _S.CLOSED,
    },
    _S.AWAITING_HELLO: {
        _E.OPENED: _S.AWAITING_HELLO,
        _E.ADMIT: _S.ADMITTED,
        _E.REFUSE: _S.REFUSED,
        _E.REVOKE: None,
        _E.CLOSE: _S.CLOSED,
    },
    _S.ADMITTED: {
        _E.OPENED: _S.ADMITTED,
        _E.ADMIT: _S.ADMITTED,
        _E.REFUSE: None,  # a failed second exchange does not undo a good first one
        _E.REVOKE: _S.REFUSED,
        _E.CLOSE: _S.CLOSED,
    },
    _S.REFUSED: {
        _E.OPENED: _S.REFUSED,
        _E.ADMIT: None,
        _E.REFUSE: None,
        _E.REVOKE: None,
        _E.CLOSE: _S.CLOSED,
    },
    _S.CLOSED: dict.fromkeys(_Step),
}
"""``TRANSITIONS[state][step]``: the next state, or None when the event is ignored."""


# ----------------------------------------------------------------- actions


@dataclass(frozen=True)
class SendHello:
    """Dialer: open ``/datanet/id`` on the new connection, send our hello, read the reply."""


@dataclass(frozen=True)
class AwaitHello:
    """Listener: wait ``hello_timeout`` for the dialer's hello, then call ``hello_timed_out``.

    Attributes:
        detect_plain: identify the peer meanwhile and report it with
            ``identify_received``: a plain libp2p peer sends no hello, and lists no
            ``/datanet/id``; it is decided on at once (a stranger in ``open``
            networks, refused in gated ones) instead of after ``hello_timeout``.
    """

    detect_plain: bool


@dataclass(frozen=True)
class AnswerHello:
    """Listener: reply to the dialer's hello with our own, then close the stream."""


@dataclass(frozen=True)
class AnswerRefusal:
    """Listener: reply to the dialer's hello with this refusal, then close the stream."""

    refusal: Refusal


@dataclass(frozen=True)
class Announce:
    """Tell the host's subscribers about the peer."""

    event: PeerEvent


@dataclass(frozen=True)
class RunIdentify:
    """Ask an admitted plain peer for its protocols and addresses; report the answer."""


@dataclass(frozen=True)
class Close:
    """Close every connection to the peer: it was refused (``decision`` says why)."""

    decision: Decision


Action = SendHello | AwaitHello | AnswerHello | AnswerRefusal | Announce | RunIdentify | Close


class StreamKind(Enum):
    """The per-peer stream counters."""

    NEGOTIATING = "negotiating"
    """Inbound streams negotiating a protocol, or using identify or ping."""
    DATANET = "datanet"
    """Inbound streams of gated protocols (kad, ``/datanet/<name>/…``)."""


# ----------------------------------------------------------------- the machine


class PeerSession:
    """Admission and identify of one connected peer (see the module docstring).

    Args:
        peer: the remote peer.
        policy: the network's admission policy.
        book: the host's address book; the session records what the peer
            announces about itself there and reads it for ``PeerConnected``.
        limits: the host's limits (per-peer stream caps).
        inbound: whether the peer's first connection was dialled by it.

    Attributes:
        state: the current :class:`PeerState`.
        decision: the current admission decision (None until decided).
        hello: the last hello the peer sent that was decided on.
        announced: whether ``PeerConnected`` was announced.
        kad_server: whether ``KadServer`` was announced.
    """

    def __init__(
        self,
        peer: PeerId,
        policy: AdmissionPolicy,
        book: AddressBook,
        limits: HostLimits,
        *,
        inbound: bool,
    ) -> None:
        self.peer = peer
        self.inbound = inbound
        self.state = PeerState.CONNECTING
        self.decision: Decision | None = None
        self.hello: Hello | None = None
        self.announced = False
        self.kad_server = False
        self._policy = policy
        self._book = book
        self._caps = {
            StreamKind.NEGOTIATING: limits.negotiating_per_peer,
            StreamKind.DATANET: limits.inbound_streams_per_peer,
        }
        self._streams = dict.fromkeys(StreamKind, 0)
        self._identify_started = False
        self._identify_pending = False

    def __repr__(self) -> str:
        return f"PeerSession({self.peer}, {self.state.value})"

    # ------------------------------------------------------------ queries

    @property
    def decided(self) -> bool:
        """Whether an admission decision was made (waiters may look at it)."""
        return self.decision is not None

    @property
    def admitted(self) -> bool:
        """Whether the peer may use datanet protocols now."""
        return self.state is PeerState.ADMITTED

    @property
    def org(self) -> OrgId | None:
        """The organization of the peer's verified certificate, or None."""
        if self.decision is None or self.decision.cert is None:
            return None
        return self.decision.cert.org

    def streams(self, kind: StreamKind) -> int:
        """How many inbound streams of ``kind`` are open."""
        return self._streams[kind]

    # ------------------------------------------------------------ events

    def connection_opened(self, *, inbound: bool) -> list[Action]:
        """A connection to the peer is up (``inbound``: the peer dialled it)."""
        before = self.state
        if self._move(_Step.OPENED) is None:
            return []
        if before is PeerState.REFUSED:
            assert self.decision is not None
            return [Close(self.decision)]
        if not inbound:
            return [SendHello()]
        if before is PeerState.ADMITTED:
            return []  # the peer dialled again; it is already decided
        return [AwaitHello(detect_plain=True)]

    def hello_received(self, frame: bytes, *, observed: str | None = None) -> list[Action]:
        """Listener: the dialer's hello arrived (untrusted bytes).

        Returns the answer to send first (:class:`AnswerHello` or
        :class:`AnswerRefusal`, decided afresh by the policy), then the
        consequences for the session.

        Args:
            frame: the hello as received.
            observed: the IP we see the peer at (replaces ``0.0.0.0`` it announces).
        """
        hello: Hello | None
        try:
            hello = Hello.decode(frame)
        except DecodeError as exc:
            hello = None
            decision = Decision(False, None, exc.code, f"malformed hello: {exc}")
        else:
            decision = self._policy.decide(self.peer, hello)
        answer: Action = (
            AnswerHello()
            if decision.admitted
            else AnswerRefusal(Refusal(decision.code, decision.reason))
        )
        return [answer, *self._settle(decision, hello, observed)]

    def reply_received(self, frame: bytes, *, observed: str | None = None) -> list[Action]:
        """Dialer: the listener answered our hello (untrusted bytes)."""
        try:
            reply = decode_reply(frame)
        except DecodeError as exc:
            return self.hello_failed(exc.code, str(exc))
        if isinstance(reply, Refusal):
            reason = f"{reply.code}: {reply.message}"
            return self._settle(Decision(False, None, "refused_by_peer", reason), None)
        return self._settle(self._policy.decide(self.peer, reply), reply, observed)

    def no_hello_protocol(self) -> list[Action]:
        """Dialer: the peer does not speak ``/datanet/id`` (a plain libp2p node)."""
        return self._settle(self._policy.decide(self.peer, None), None)

    def hello_failed(self, code: str, reason: str, *, transient: bool = False) -> list[Action]:
        """Dialer: the admission exchange broke (``transient``: timeout, reset; else junk)."""
        return self._settle(Decision(False, None, code, reason, transient=transient), None)

    def hello_timed_out(self) -> list[Action]:
        """Listener: ``hello_timeout`` passed since the connection opened."""
        if self.decision is not None:
            return []
        return self._settle(self._policy.decide(self.peer, None), None)

    def identify_received(self, protocols: list[str], addrs: list[str]) -> list[Action]:
        """The peer answered identify (for :class:`AwaitHello` or :class:`RunIdentify`).

        While undecided, a peer without ``/datanet/id`` is a plain node and is
        decided on without a hello; a datanet node is left to send its hello.
        """
        actions: list[Action] = []
        if self.state in (PeerState.CONNECTING, PeerState.AWAITING_HELLO):
            if ID_PROTOCOL in protocols:
                return []
            self._identify_started = True  # this answer is the plain peer's identify
            actions = self._settle(self._policy.decide(self.peer, None), None)
        elif self._identify_pending:
            self._identify_pending = False
        else:
            return []  # a late answer to a detection the hello made moot
        if self.state is not PeerState.ADMITTED:
            return actions
        known = self._book.remember_announced(self.peer, addrs)
        if KAD_PROTOCOL in protocols and not self.kad_server:
            self.kad_server = True
            actions.append(Announce(KadServer(self.peer, known)))
        return actions

    def identify_failed(self) -> list[Action]:
        """Identify of the peer failed; nothing more is learnt about it."""
        self._identify_pending = False
        return []

    def recheck(self) -> list[Action]:
        """Before serving the peer again: is its certificate still valid (gated networks)?

        Verification is cached, so this is cheap; a certificate that expired or
        was revoked while connected refuses the peer now.
        """
        if self.state is not PeerState.ADMITTED or not self._policy.gated or self.hello is None:
            return []
        again = self._policy.decide(self.peer, self.hello)
        if again.admitted:
            return []
        self._move(_Step.REVOKE)
        self.decision = again
        return [Close(again)]

    def connection_closed(self) -> list[Action]:
        """The peer's last connection closed: the session is over."""
        if self._move(_Step.CLOSE) is None:
            return []
        return [Announce(PeerDisconnected(self.peer))] if self.announced else []

    def stream_opened(self, kind: StreamKind) -> bool:
        """An inbound stream of ``kind`` wants serving; False: over the cap, reset it."""
        if self.state is PeerState.CLOSED or self._streams[kind] >= self._caps[kind]:
            return False
        self._streams[kind] += 1
        return True

    def stream_closed(self, kind: StreamKind) -> None:
        """An inbound stream counted by :meth:`stream_opened` is done."""
        self._streams[kind] = max(0, self._streams[kind] - 1)

    # ------------------------------------------------------------ internals

    def _move(self, step: _Step) -> PeerState | None:
        target = TRANSITIONS[self.state][step]
        if target is not None:
            self.state = target
        return target

    def _settle(
        self, decision: Decision, hello: Hello | None, observed: str | None = None
    ) -> list[Action]:
        """Record a fresh admission decision and say what follows from it."""
        if self._move(_Step.ADMIT if decision.admitted else _Step.REFUSE) is None:
            return []
        self.decision = decision
        if hello is not None:
            self.hello = hello
        if not decision.admitted:
            return [Close(decision)]
        actions: list[Action] = []
        addrs: tuple[str, ...] = ()
        if hello is not None:
            addrs = self._book.remember_announced(self.peer, hello.addrs, observed)
        if not self.announced:
            self.announced = True
            org = decision.cert.org if decision.cert is not None else None
            shown = addrs or self._book.transports(self.peer)
            actions.append(Announce(PeerConnected(self.peer, org, self.inbound, shown)))
        if hello is not None and MODE_KAD_SERVER in hello.modes and not self.kad_server:
            self.kad_server = True
            actions.append(Announce(KadServer(self.peer, addrs)))
        elif hello is None and not self._identify_started:
            self._identify_started = True
            self._identify_pending = True
            actions.append(RunIdentify())
        return actions
