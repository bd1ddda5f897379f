"""The I/O half of admission: one :class:`~.peer.PeerSession` per connected peer.

:class:`PeerSessions` feeds each peer's state machine what happens on the
network and carries out the actions it returns: the admission exchange on
``/datanet/id/1.0.0`` (as dialer and as listener), the hello timeout, identify
of plain peers, announcing events and closing refused peers. The host calls it
on connection events and inbound ``/datanet/id`` streams, and asks it whether a
peer may use a gated protocol.

Invariants:
* Every session event goes through :meth:`PeerSessions._apply`, which also
  wakes the tasks waiting for the peer's decision; the machine alone decides.
* A session is dropped when the peer's last connection closes; tasks still
  holding it only feed a closed machine, which ignores them.
* Every exchange is bounded (``hello_timeout``, ``request_timeout`` for
  identify) and runs in the host's nursery, never in py-libp2p's notifee.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from datanet.errors import DatanetError, NetworkError, PeerUnreachable, Timeout
from datanet.p2p._errors import AdmissionRefused, ProtocolNotSupported, translate
from datanet.p2p.addrbook import AddressBook
from datanet.p2p.admission import ID_PROTOCOL, MAX_HELLO_SIZE, Admission, Hello
from datanet.p2p.events import PeerEvents
from datanet.p2p.limits import HostLimits
from datanet.p2p.peer import (
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
)
from datanet.p2p.protocols import IDENTIFY_PROTOCOL, MAX_IDENTIFY, parse_identify
from datanet.p2p.streams import FramedStream, multistream_select
from identity.keys import PeerId

__all__ = ["Peer", "PeerSessions", "remote_host"]

log = logging.getLogger("datanet.p2p")

Spawn = Callable[..., None]
"""``start_soon(fn, *args)`` in the host's nursery."""


@dataclass(eq=False)
class Peer:
    """A peer's session and the trio event its waiters block on until it is decided."""

    session: PeerSession
    decided: trio.Event = field(default_factory=trio.Event)
    hello_started: bool = False
    """Whether the peer opened ``/datanet/id`` (it began admission)."""


def remote_host(stream: FramedStream) -> str | None:
    """The IP a stream's peer connects from (IPv4-mapped IPv6 unwrapped), if known."""
    try:
        address = stream.remote_address()
    except DatanetError:
        return None
    if address is None:
        return None
    host = address[0]
    return host[7:] if host.startswith("::ffff:") and "." in host else host


class PeerSessions:
    """The admission sessions of a host's connected peers (see the module).

    Args:
        admission: the network's admission policy.
        limits: the host's limits.
        book: the host's address book (sessions record announced addresses).
        events: where announcements go.
        own_hello: builds our hello (it depends on the services and listen addresses).
        open_stream: opens a negotiated stream to a connected peer (for identify).
        close_peer: closes every connection to a peer.
        start_soon: runs a task in the host's nursery.
        on_refused: called with each peer refused on its hello (to refuse its
            next connection at once); not for timeouts nor for the peer's own refusals.
    """

    def __init__(
        self,
        *,
        admission: Admission,
        limits: HostLimits,
        book: AddressBook,
        events: PeerEvents,
        own_hello: Callable[[], Hello],
        open_stream: Callable[[PeerId, str], Awaitable[FramedStream]],
        close_peer: Callable[[PeerId], Awaitable[None]],
        start_soon: Spawn,
        on_refused: Callable[[PeerId], None] = lambda peer: None,
    ) -> None:
        self._admission = admission
        self._limits = limits
        self._book = book
        self._events = events
        self._own_hello = own_hello
        self._open_stream = open_stream
        self._close_peer = close_peer
        self._start_soon = start_soon
        self._on_refused = on_refused
        self._peers: dict[PeerId, Peer] = {}

    def get(self, peer: PeerId) -> Peer | None:
        """The current session of ``peer``, if it is connected."""
        return self._peers.get(peer)

    def items(self) -> list[tuple[PeerId, Peer]]:
        """Every current session."""
        return list(self._peers.items())

    def state_counts(self) -> dict[str, int]:
        """Peers with a session by admission state (``connecting``, ``awaiting_hello``,
        ``admitted``, ``refused``): what the ``datanet_peers`` metric shows."""
        counts: dict[str, int] = {}
        for p in self._peers.values():
            state = p.session.state.value.replace("-", "_")
            counts[state] = counts.get(state, 0) + 1
        return counts

    def for_peer(self, peer: PeerId, *, inbound: bool) -> Peer:
        """The current session of ``peer``, started if there is none."""
        p = self._peers.get(peer)
        if p is None:
            session = PeerSession(peer, self._admission, self._book, self._limits, inbound=inbound)
            p = self._peers[peer] = Peer(session)
        return p

    # ----------------------------------------------------- host notifications

    def connection_opened(self, peer: PeerId, conn: Any, *, inbound: bool) -> None:
        """A connection to ``peer`` is up (py-libp2p's swarm connection ``conn``)."""
        p = self.for_peer(peer, inbound=inbound)
        self._apply(p, p.session.connection_opened(inbound=inbound), conn)

    def last_connection_closed(self, peer: PeerId) -> None:
        """``peer`` has no connection left: end its session."""
        p = self._peers.pop(peer, None)
        if p is not None:
            self._apply(p, p.session.connection_closed())

    async def wait_admitted(self, peer: PeerId, deadline: float) -> None:
        """Wait until the connected ``peer`` is decided on; raise unless it is admitted.

        Raises:
            PeerUnreachable: its connection is already gone.
            Timeout: no decision by ``deadline``, or the exchange timed out.
            NetworkError: the exchange broke (a reset connection): nothing is known
                against the peer, unlike a refusal.
            AdmissionRefused: refused, or no longer admitted (re-checked now).
        """
        p = self._peers.get(peer)
        if p is None:  # the connection closed as soon as it opened
            raise PeerUnreachable(f"the connection to {peer} closed right away")
        with trio.move_on_at(deadline):
            await p.decided.wait()
        decision = p.session.decision
        if decision is None:
            raise Timeout(f"admission exchange with {peer} did not finish in time")
        if not decision.admitted and decision.transient:
            broke = Timeout if decision.code == Timeout.code else NetworkError
            why = f"{decision.code}: {decision.reason}"
            raise broke(f"admission exchange with {peer} broke ({why})")
        if not decision.admitted:
            raise AdmissionRefused(f"peer {peer} not admitted ({decision.code}): {decision.reason}")
        if p.session.state is PeerState.CLOSED:  # it left while we waited
            raise PeerUnreachable(f"the connection to {peer} closed")
        self._apply(p, p.session.recheck())
        decision = p.session.decision
        if not p.session.admitted and decision is not None:
            raise AdmissionRefused(
                f"peer {peer} no longer admitted ({decision.code}): {decision.reason}"
            )

    async def gate(self, p: Peer) -> bool:
        """Whether the peer may use a gated protocol now (waits for its decision)."""
        if not self._admission.gated:
            return True
        with trio.move_on_after(self._limits.hello_timeout):
            await p.decided.wait()
        self._apply(p, p.session.recheck())
        return p.session.admitted

    def may_negotiate(self, p: Peer) -> bool:
        """Whether to agree to a gated protocol in multistream-select.

        In gated networks a refused peer, and a peer that dialled us and has
        not begun admission (a plain libp2p node: it never will), get ``na`` at
        once instead of waiting ``hello_timeout`` for a decision. A datanet
        peer opens gated streams only after its own side admitted us, which
        happens after our side received its hello.
        """
        if not self._admission.gated:
            return True
        session = p.session
        if session.decided:
            return session.admitted
        return not session.inbound or p.hello_started

    async def serve_id(self, stream: FramedStream, peer: PeerId) -> None:
        """Listener side of the admission exchange: answer the hello, then act on it."""
        p = self._peers.get(peer)
        if p is None:  # its last connection closed while the stream was negotiated
            await stream.reset()
            return
        p.hello_started = True
        actions: list[Action] = []
        try:
            with translate(stream.what), trio.fail_after(self._limits.hello_timeout):
                frame = await stream.read_required(MAX_HELLO_SIZE)
                answer, *actions = p.session.hello_received(frame, observed=remote_host(stream))
                if isinstance(answer, AnswerRefusal):
                    await stream.write_frame(answer.refusal.encode(), MAX_HELLO_SIZE)
                else:
                    assert isinstance(answer, AnswerHello)
                    await stream.write_frame(self._own_hello().encode(), MAX_HELLO_SIZE)
                await stream.close()
        finally:
            # The session has decided; its consequences hold even if the answer was lost.
            self._apply(p, actions)

    # ---------------------------------------------------------------- actions

    def _apply(self, p: Peer, actions: Sequence[Action], conn: Any = None) -> None:
        """Carry out what ``p``'s session asked for (answers are sent by ``serve_id``)."""
        peer = p.session.peer
        for action in actions:
            if isinstance(action, Announce):
                self._events.emit(action.event)
            elif isinstance(action, Close):
                reason = action.decision.reason or action.decision.code
                log.info("peer %s refused: %s", peer, reason)
                if action.decision.code != "refused_by_peer" and p.session.hello is not None:
                    # Only a definitive refusal, decided on its hello (no or a
                    # bad certificate, not a member, revoked), is remembered:
                    # never a timeout, so that a slow member is not locked out.
                    self._on_refused(peer)
                self._start_soon(self._close_peer, peer)
            elif isinstance(action, SendHello):
                self._start_soon(self._exchange_hello, p, conn)
            elif isinstance(action, AwaitHello):
                self._start_soon(self._await_hello, p, action.detect_plain)
            elif isinstance(action, RunIdentify):
                self._start_soon(self._identify, p)
            else:  # pragma: no cover - answers only come from hello_received
                raise TypeError(f"unexpected action {action!r}")
        if p.session.decided:
            p.decided.set()

    async def _exchange_hello(self, p: Peer, conn: Any) -> None:
        """Dialer side of the admission exchange, on the connection we opened."""
        peer = p.session.peer
        observed: str | None = None
        try:
            with translate(f"admission with {peer}"), trio.fail_after(self._limits.hello_timeout):
                raw = await conn.new_stream()
                stream = FramedStream(raw, f"/datanet/id stream to {peer}")
                try:
                    observed = remote_host(stream)
                    await multistream_select(stream, ID_PROTOCOL)
                    await stream.write_frame(self._own_hello().encode(), MAX_HELLO_SIZE)
                    reply = await stream.read_required(MAX_HELLO_SIZE)
                finally:
                    await stream.close()
        except ProtocolNotSupported:  # a plain libp2p node
            self._apply(p, p.session.no_hello_protocol())
        except DatanetError as exc:
            log.debug("admission exchange with %s failed: %s", peer, exc)
            transient = isinstance(exc, NetworkError)
            self._apply(p, p.session.hello_failed(exc.code, str(exc), transient=transient))
        else:
            self._apply(p, p.session.reply_received(reply, observed=observed))

    async def _await_hello(self, p: Peer, detect_plain: bool) -> None:
        """Listener side: wait for the dialer's hello; identify it meanwhile if asked."""
        if p.decided.is_set():
            return
        async with trio.open_nursery() as nursery:
            if detect_plain:
                nursery.start_soon(self._identify, p)
            with trio.move_on_after(self._limits.hello_timeout):
                await p.decided.wait()
            nursery.cancel_scope.cancel()
        self._apply(p, p.session.hello_timed_out())

    async def _identify(self, p: Peer) -> None:
        """Ask the peer for its protocols and listen addresses; tell its session."""
        peer = p.session.peer
        try:
            with translate(f"identify {peer}"), trio.fail_after(self._limits.request_timeout):
                stream = await self._open_stream(peer, IDENTIFY_PROTOCOL)
                try:
                    frame = await stream.read_required(MAX_IDENTIFY)
                finally:
                    await stream.close()
        except DatanetError as exc:
            log.debug("identify %s failed: %s", peer, exc)
            self._apply(p, p.session.identify_failed())
            return
        parsed = parse_identify(frame, self._limits.max_peer_addrs)
        if parsed is None:
            log.debug("identify %s: malformed message", peer)
            self._apply(p, p.session.identify_failed())
            return
        self._apply(p, p.session.identify_received(*parsed))
