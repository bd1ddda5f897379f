"""The datanet libp2p host: connections, dialing, admission sessions, stream gating.

Build one with :func:`open_host` (an async context manager) or start
:func:`serve_host` in a nursery. The host wraps py-libp2p's swarm (TCP, Noise,
Yamux) and implements the rest itself: multistream-select (:mod:`.streams`),
identify and ping (:mod:`.protocols`), admission on ``/datanet/id/1.0.0``
(one :class:`~.peer.PeerSession` state machine per peer, driven by
:mod:`.sessions`), inbound stream gating (:mod:`.inbound`), dialing
(:mod:`.dialer`) and the address book (:mod:`.addrbook`).

**The service surface.** Protocols built on the host (``host.kad``, the
request/response protocols of :mod:`.rpc`, later gossip and access requests)
use only :class:`~.service.ServiceHost`:

* ``set_stream_handler(protocol, handler, gated=True)`` - serve a protocol;
  gated handlers see admitted peers only, within the per-peer stream limits;
* ``await open_stream(peer, protocol, timeout=, addrs=)`` - a negotiated
  :class:`~.streams.FramedStream` to an admitted peer (dialled if needed);
* ``add_peer_listener(fn)`` / ``remove_peer_listener(fn)`` - synchronous
  callbacks for every :data:`~.events.PeerEvent` (``subscribe()`` gives a
  bounded channel instead, for tasks);
* ``start_soon(fn, *args)`` - a background task in the host's nursery; ``limits``,
  ``peer_id``, ``add_addrs``, ``is_connected``.

Why not py-libp2p's ``BasicHost``: importing it costs about 20 MB (mDNS, UPnP,
AutoTLS, bootstrap), its negotiation reads lines without a size limit, and its
``dial_peer`` path waits 250 ms per dial and blocks failed peers for 60 s.

Invariants:
* Nothing returned or raised here is a py-libp2p type: peers are
  :class:`~identity.keys.PeerId` (accepted as bytes too), addresses are strings,
  errors are :mod:`datanet.errors`.
* In ``closed`` and ``members`` networks a peer uses datanet protocols only
  after it passed admission; a peer that fails it is disconnected.
* A peer has one :class:`~.peer.PeerSession` from its first connection to its
  last; only the session decides admission and what is announced.
* Every inbound stream is bounded: negotiation time, per-peer concurrent streams,
  frame sizes, idle and handler time; a misbehaving one is reset alone.
* Only Ed25519 peers are accepted (datanet names peers by Ed25519 keys).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from datanet.errors import DatanetError, InvalidInput, NetworkError
from datanet.p2p import _libp2p as lp
from datanet.p2p import protocols, rpc
from datanet.p2p._errors import translate
from datanet.p2p.addrbook import AddressBook
from datanet.p2p.addrs import as_peer, parse_addr
from datanet.p2p.admission import ID_PROTOCOL, MODE_KAD_SERVER, Admission, Hello
from datanet.p2p.dialer import Dialer
from datanet.p2p.events import PeerEvent, PeerEvents, PeerListener
from datanet.p2p.gater import InboundGuard
from datanet.p2p.inbound import InboundStreams
from datanet.p2p.kad import KAD_PROTOCOL, KadService
from datanet.p2p.limits import HostLimits
from datanet.p2p.protocols import IDENTIFY_PROTOCOL, PING_PROTOCOL
from datanet.p2p.service import StreamHandler
from datanet.p2p.sessions import PeerSessions
from datanet.p2p.streams import FramedStream, RequestHandler, check_protocol_id, multistream_select
from identity.errors import DecodeError
from identity.keys import KeyPair, OrgId, PeerId

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = [
    "IDENTIFY_PROTOCOL",
    "PING_PROTOCOL",
    "Host",
    "HostLimits",
    "as_peer",
    "open_host",
    "serve_host",
]

_RESERVED = frozenset({ID_PROTOCOL, IDENTIFY_PROTOCOL, PING_PROTOCOL})

log = logging.getLogger("datanet.p2p")


class Host:
    """A running datanet libp2p host. Create it with :func:`open_host`.

    Attributes:
        peer_id: this node's peer id.
        admission: the network's admission policy and this node's chain.
        limits: limits and timeouts.
        kad: the ``/datanet/kad/1.0.0`` client and server (:class:`~.kad.KadService`).
    """

    def __init__(
        self,
        key: KeyPair,
        admission: Admission,
        *,
        limits: HostLimits,
        announce: Sequence[str] = (),
    ) -> None:
        self.peer_id: PeerId = key.peer_id
        self.admission = admission
        self.limits = limits
        self._announce = tuple(parse_addr(a) for a in announce)
        self._guard = InboundGuard(
            limits,
            gated=admission.gated,
            admitted=lambda peer: (
                (p := self._sessions.get(peer)) is not None and p.session.admitted
            ),
            member=lambda peer: (
                (p := self._sessions.get(peer)) is not None
                and p.session.admitted
                and p.session.hello is not None
            ),
            members=lambda: [
                (self._swarm.get_connections(lp.to_libp2p_id(peer)), self._book.transports(peer))
                for peer, p in self._sessions.items()
                if p.session.admitted
            ],
        )
        self._swarm = lp.build_swarm(
            key,
            max_connections=limits.max_connections,
            dial_timeout=limits.dial_timeout,
            upgrade_timeout=limits.dial_timeout,
            handshake_timeout=limits.handshake_timeout,
            hooks=self._guard,
        )
        self._public_key_bytes: bytes = bytes(lp.libp2p_key_pair(key).public_key.serialize())
        self._book = AddressBook(self.peer_id, per_peer=limits.max_peer_addrs)
        self._events = PeerEvents()
        self._conns: weakref.WeakSet[Any] = weakref.WeakSet()
        self._nursery: trio.Nursery | None = None
        self._closed = False
        self._dialer = Dialer(self._swarm, self._book, limits.dial_timeout, self._is_connected)
        self._sessions = PeerSessions(
            admission=admission,
            limits=limits,
            book=self._book,
            events=self._events,
            own_hello=self._own_hello,
            open_stream=self._open_stream,
            close_peer=self._close_peer,
            start_soon=self.start_soon,
            on_refused=self._guard.recently_refused.add,
        )
        self._inbound = InboundStreams(
            limits, self._sessions, lambda peer: not self._closed and self._is_connected(peer)
        )
        self._inbound.register(ID_PROTOCOL, self._sessions.serve_id, gated=False)
        self._inbound.register(IDENTIFY_PROTOCOL, self._serve_identify, gated=False)
        self._inbound.register(PING_PROTOCOL, self._serve_ping, gated=False)
        self.kad = KadService(self)
        self._swarm.set_stream_handler(self._inbound.accept)
        self._swarm.register_notifee(lp.Notifee(self._on_connected, self._on_disconnected))

    # ------------------------------------------------------------------ info

    def listen_addrs(self) -> list[str]:
        """Full multiaddrs (``…/p2p/<peer id>``) peers can dial: the announce
        addresses if configured, else the bound listen addresses."""
        return [f"{a}/p2p/{self.peer_id}" for a in self._transport_addrs()]

    def _transport_addrs(self) -> list[str]:
        if self._announce:
            return [a.transport for a in self._announce]
        out: list[str] = []
        for listener in list(self._swarm.listeners.values()):
            for maddr in listener.get_addrs():
                try:
                    out.append(parse_addr(str(maddr)).transport)
                except InvalidInput:
                    continue
        return out

    def connected_peers(self) -> list[PeerId]:
        """Peers with an open connection that passed admission."""
        return [
            peer
            for peer, p in self._sessions.items()
            if p.session.announced and self._is_connected(peer)
        ]

    def is_connected(self, peer: PeerId | bytes) -> bool:
        """Whether ``peer`` has an open connection (admitted or not yet decided)."""
        return self._is_connected(as_peer(peer))

    def _is_connected(self, peer: PeerId) -> bool:
        return any(not c.is_closed for c in self._swarm.get_connections(lp.to_libp2p_id(peer)))

    def refused_connections(self) -> Mapping[str, int]:
        """Inbound connections refused or closed so far, by reason (:data:`.gater.REASONS`)."""
        return self._guard.gater.refused()

    def peer_states(self) -> dict[str, int]:
        """Peers with a session by admission state (:meth:`.PeerSessions.state_counts`)."""
        return self._sessions.state_counts()

    def inbound_from(self, ip: str) -> int:
        """Inbound connections the host holds from ``ip`` that are not (yet) a member's."""
        return self._guard.gater.connections(ip)

    def peer_addrs(self, peer: PeerId | bytes) -> list[str]:
        """Known transport addresses of ``peer`` (no ``/p2p/``), most recent first."""
        return list(self._book.transports(as_peer(peer)))

    def peer_org(self, peer: PeerId | bytes) -> OrgId | None:
        """The organization of a connected peer's verified certificate, or None."""
        p = self._sessions.get(as_peer(peer))
        return None if p is None else p.session.org

    def add_addrs(self, peer: PeerId | bytes, addrs: Sequence[str]) -> None:
        """Remember addresses for ``peer`` (newest first, at most ``max_peer_addrs``).

        Raises:
            InvalidInput: an address is malformed or names another peer.
        """
        peer = as_peer(peer)
        parsed = [parse_addr(a) for a in addrs]
        for a in parsed:
            if a.peer is not None and a.peer != peer:
                raise InvalidInput(f"address {a} belongs to another peer than {peer}")
        self._book.remember(peer, parsed)

    # ------------------------------------------------------ service surface

    def set_stream_handler(
        self, protocol: str, handler: StreamHandler, *, gated: bool = True
    ) -> None:
        """Serve ``protocol`` with ``async handler(stream, peer)`` (replacing any before).

        Args:
            protocol: the protocol id (``/…``, at most 256 characters).
            handler: gets each inbound stream, negotiated; it owns the stream.
            gated: reach the handler only from admitted peers, counted against
                ``inbound_streams_per_peer`` (every datanet protocol is gated).
                Ungated handlers count as negotiating streams.

        Raises:
            InvalidInput: a malformed protocol id, or one the host serves itself.
        """
        if protocol in _RESERVED:
            raise InvalidInput(f"{protocol} is served by the host itself")
        self._inbound.register(protocol, handler, gated=gated)

    async def open_stream(
        self,
        peer: PeerId | bytes,
        protocol: str,
        *,
        timeout: float | None = None,
        addrs: Sequence[str] = (),
    ) -> FramedStream:
        """Open a framed stream on ``protocol`` to an admitted peer, dialling it if needed.

        The caller owns the stream: bound every read with a deadline and
        ``close()`` or ``reset()`` it.

        Args:
            peer: the peer.
            protocol: the protocol to negotiate.
            timeout: for dialling, admission and negotiation together
                (default ``limits.request_timeout``).
            addrs: addresses to dial if not connected (remembered; known ones too).

        Raises:
            PeerUnreachable, AdmissionRefused, Timeout, ProtocolNotSupported,
            RemoteProtocolError, NetworkError, InvalidInput.
        """
        peer = as_peer(peer)
        if addrs:
            self.add_addrs(peer, addrs)
        deadline = trio.current_time() + (timeout or self.limits.request_timeout)
        await self._ensure_admitted(peer, deadline)
        with translate(f"open {protocol} stream to {peer}"), trio.fail_at(deadline):
            return await self._open_stream(peer, protocol)

    def subscribe(self, buffer: int = 1024) -> trio.MemoryReceiveChannel[PeerEvent]:
        """A channel of :data:`~.events.PeerEvent` s from now on.

        The host never waits for a subscriber: when ``buffer`` events are pending,
        new ones are dropped (and logged). Close the channel to unsubscribe.
        """
        return self._events.subscribe(buffer)

    def add_peer_listener(self, listener: PeerListener) -> None:
        """Call ``listener(event)`` synchronously for every peer event from now on.

        Unlike :meth:`subscribe` nothing is ever dropped, so the listener must be
        quick and must not raise (an exception is logged and ignored).
        """
        self._events.add_listener(listener)

    def remove_peer_listener(self, listener: PeerListener) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        self._events.remove_listener(listener)

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the host's nursery; ignored once the host is closing.

        The task is cancelled when the host stops; it must handle its own errors.
        """
        if self._nursery is not None and not self._closed:
            self._nursery.start_soon(fn, *args)

    # ----------------------------------------------------------- connecting

    async def connect(
        self, peer: PeerId | bytes, addrs: Sequence[str] = (), *, timeout: float | None = None
    ) -> None:
        """Make sure ``peer`` is connected and admitted; dial it if needed.

        Args:
            peer: the peer to connect to.
            addrs: addresses to try (remembered for later); known ones are tried too.
            timeout: overall time limit (default: dial plus admission timeouts).

        Raises:
            PeerUnreachable: no address could be dialled.
            AdmissionRefused: the peer failed admission, or refused ours.
            Timeout: the admission exchange did not finish in time.
            InvalidInput: ``peer`` is ourselves or an address is malformed.
        """
        peer = as_peer(peer)
        if peer == self.peer_id:
            raise InvalidInput("a host cannot connect to itself")
        self.add_addrs(peer, addrs)
        if timeout is None:
            timeout = self.limits.dial_timeout + self.limits.hello_timeout
        await self._ensure_admitted(peer, trio.current_time() + timeout)

    async def disconnect(self, peer: PeerId | bytes) -> None:
        """Close every connection to ``peer`` (no error if there is none)."""
        await self._close_peer(as_peer(peer))

    async def _close_peer(self, peer: PeerId) -> None:
        for conn in self._swarm.get_connections(lp.to_libp2p_id(peer)):
            await self._close_conn(conn)

    async def _ensure_admitted(self, peer: PeerId, deadline: float) -> None:
        """Connect (if needed) and wait for the admission decision, until ``deadline``."""
        if peer == self.peer_id:
            raise InvalidInput("a host cannot talk to itself over the network")
        if not self._is_connected(peer):
            await self._dialer.dial(peer, deadline)
        await self._sessions.wait_admitted(peer, deadline)

    # ----------------------------------------------------- connection events

    def _on_connected(self, conn: Any) -> None:
        self._conns.add(conn)
        try:
            peer = lp.peer_id_from_libp2p(conn.muxed_conn.peer_id)
        except DecodeError:
            log.debug("refusing a non-Ed25519 peer %s", conn.muxed_conn.peer_id)
            self.start_soon(conn.close)
            return
        inbound = getattr(conn.direction, "name", "") != "OUTBOUND"
        if inbound and self.admission.gated and peer in self._guard.recently_refused:
            return  # the swarm closes it at once (recently_refused): no new session
        self._sessions.connection_opened(peer, conn, inbound=inbound)

    def _on_disconnected(self, conn: Any) -> None:
        try:
            peer = lp.peer_id_from_libp2p(conn.muxed_conn.peer_id)
        except DecodeError:
            return
        if not self._is_connected(peer):
            self._sessions.last_connection_closed(peer)

    def _own_hello(self) -> Hello:
        modes = frozenset({MODE_KAD_SERVER}) if self.kad.serving else frozenset()
        return Hello(self.admission.chain, modes, tuple(self._transport_addrs()))

    async def _serve_identify(self, stream: FramedStream, peer: PeerId) -> None:
        try:
            remote = stream.remote_address()
        except DatanetError:
            remote = None
        message = protocols.identify_message(
            self._public_key_bytes, self._transport_addrs(), self._inbound.protocols(), remote
        )
        await protocols.serve_identify(stream, message, self.limits.negotiate_timeout)

    async def _serve_ping(self, stream: FramedStream, peer: PeerId) -> None:
        await protocols.serve_ping(stream, self.limits.kad_idle_timeout)

    # ----------------------------------------------------- outbound streams

    async def _open_stream(self, peer: PeerId, protocol: str) -> FramedStream:
        """Open a stream to a connected peer and negotiate ``protocol``.

        Raises:
            ProtocolNotSupported, RemoteProtocolError, PeerUnreachable, NetworkError.
        """
        with translate(f"open {protocol} stream to {peer}"):
            raw = await self._swarm.new_stream(lp.to_libp2p_id(peer))
        stream = FramedStream(raw, f"{protocol} stream to {peer}")
        try:
            await multistream_select(stream, protocol)
        except BaseException:
            with trio.CancelScope(shield=True):
                await stream.reset()
            raise
        return stream

    async def ping(self, peer: PeerId | bytes, *, timeout: float | None = None) -> float:
        """Round-trip time to ``peer`` in seconds, over libp2p ping.

        Dials the peer if needed (known addresses only).

        Raises:
            PeerUnreachable, AdmissionRefused, Timeout, RemoteProtocolError, NetworkError.
        """
        peer = as_peer(peer)
        deadline = trio.current_time() + (timeout or self.limits.request_timeout)
        await self._ensure_admitted(peer, deadline)
        with translate(f"ping {peer}"), trio.fail_at(deadline):
            stream = await self._open_stream(peer, PING_PROTOCOL)
            try:
                return await protocols.ping(stream)
            finally:
                await stream.close()

    # ------------------------------------------------ request/response API

    def set_protocol_handler(
        self,
        protocol_id: str,
        handler: RequestHandler,
        max_size: int = 64 * 1024,
        *,
        timeout: float | None = None,
    ) -> None:
        """Serve a datanet request/response protocol (see :mod:`.rpc`).

        Each inbound stream carries one MessagePack request of at most
        ``max_size`` bytes; ``await handler(request, from_peer_id_bytes)`` returns
        the response (any MessagePack value). A :class:`DatanetError` raised by
        the handler is sent back to the requester, who gets a :class:`RemoteError`.
        Only admitted peers reach the handler.

        Args:
            protocol_id: ``/datanet/<name>/<x.y.z>``.
            handler: the async handler.
            max_size: largest request and response, in bytes.
            timeout: time to receive the request and, separately, to answer it
                (default ``limits.handler_timeout``).

        Raises:
            InvalidInput: bad protocol id or a reserved one.
        """
        check_protocol_id(protocol_id)
        if protocol_id in (ID_PROTOCOL, KAD_PROTOCOL):
            raise InvalidInput(f"{protocol_id} is reserved")
        limit = timeout or self.limits.handler_timeout
        serve = rpc.request_stream_handler(handler, max_size, limit)
        self.set_stream_handler(protocol_id, serve, gated=True)

    async def request(
        self,
        peer: PeerId | bytes,
        protocol_id: str,
        obj: Any,
        *,
        timeout: float | None = None,
        max_size: int = 64 * 1024,
        addrs: Sequence[str] = (),
    ) -> Any:
        """Send one request on a datanet protocol and return the peer's response.

        Raises:
            RemoteError: the peer's handler refused the request.
            ProtocolNotSupported: the peer does not serve ``protocol_id``.
            PeerUnreachable, AdmissionRefused, Timeout, RemoteProtocolError,
            NetworkError, InvalidInput.
        """
        return await rpc.request(
            self, peer, protocol_id, obj, timeout=timeout, max_size=max_size, addrs=addrs
        )

    # ------------------------------------------------------------ lifecycle

    async def _shutdown(self) -> None:
        """Close every connection (concurrently) and the listeners."""
        self._closed = True
        self._events.close_subscribers()
        await lp.close_listeners(self._swarm)  # first: redials would keep us busy
        closing: weakref.WeakSet[Any] = weakref.WeakSet()
        with trio.move_on_after(3):
            async with trio.open_nursery() as nursery:
                # Until swarm.close() stops the listeners, peers can still dial
                # in (a routing table refreshing, a peer redialling when it saw
                # us go), and dials of our own may still complete. Nobody admits
                # those connections any more, so close each newcomer too, rather
                # than wait for the peer to hang up. Connections the peer closed
                # may still be closing in the swarm's own tasks, which
                # swarm.close() cancels: let them finish first.
                while conns := self._swarm.get_connections():
                    for conn in conns:
                        if conn not in closing:
                            closing.add(conn)
                            nursery.start_soon(self._close_conn, conn)
                    await trio.sleep(0.02)
        with trio.move_on_after(2):
            try:
                with translate("close swarm"):
                    await self._swarm.close()
            except NetworkError as exc:
                log.debug("closing the swarm: %s", exc)
        # Last resort: a close that py-libp2p left half done leaks its socket.
        for conn in list(self._conns):
            session = getattr(getattr(conn, "muxed_conn", None), "secured_conn", None)
            if session is not None:
                await self._close_conn(session)

    async def _close_conn(self, conn: Any) -> None:
        """Close a connection (or secure session), shielded but bounded.

        A close that py-libp2p starts must finish: cancelled half-way, it leaves
        the connection registered in the swarm and its socket open.
        """
        with trio.move_on_after(2) as scope:
            scope.shield = True
            try:
                with translate("close connection"):
                    await conn.close()
            except DatanetError as exc:
                log.debug("closing a connection: %s", exc)


async def serve_host(
    key: KeyPair,
    listen: Sequence[str],
    admission: Admission,
    *,
    limits: HostLimits | None = None,
    announce: Sequence[str] = (),
    task_status: TaskStatus[Host] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a host until cancelled; ``await nursery.start(serve_host, …)`` returns it ready.

    Raises:
        InvalidInput: a listen or announce address is malformed.
        NetworkError: none of the listen addresses could be bound.
    """
    listen_addrs = [parse_addr(a, allow_port_zero=True) for a in listen]
    host = Host(key, admission, limits=limits or HostLimits(), announce=announce)
    # The swarm runs under a shielded scope: when the host is cancelled, the
    # swarm must keep running until _shutdown has closed every connection,
    # or py-libp2p's half-cancelled closes leak sockets.
    swarm_scope = trio.CancelScope(shield=True)

    async def run_swarm(task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with swarm_scope, translate("run the libp2p swarm"):
            async with lp.background_trio_service(host._swarm):
                task_status.started()
                await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        host._nursery = nursery
        try:
            await nursery.start(run_swarm)
            with translate("listen"):
                ok = await host._swarm.listen(*[lp.Multiaddr(a.transport) for a in listen_addrs])
            if listen_addrs and not ok:
                raise NetworkError("cannot listen on " + ", ".join(str(a) for a in listen_addrs))
            task_status.started(host)
            await trio.sleep_forever()
        finally:
            try:
                with trio.CancelScope(shield=True):
                    await host._shutdown()
            finally:
                # Even if the shutdown failed, the swarm must not outlive the host.
                swarm_scope.shield = False
                swarm_scope.cancel()
                nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_host(
    key: KeyPair,
    listen: Sequence[str],
    admission: Admission,
    *,
    limits: HostLimits | None = None,
    announce: Sequence[str] = (),
) -> AsyncIterator[Host]:
    """Run a host for the duration of an ``async with`` block.

    Args:
        key: the node's Ed25519 key (its peer id).
        listen: multiaddrs to listen on, e.g. ``["/ip4/127.0.0.1/tcp/0"]``.
        admission: the network's admission mode, trust store and our chain.
        limits: limits and timeouts.
        announce: addresses to advertise instead of the bound listen addresses.

    Raises:
        InvalidInput: a listen or announce address is malformed.
        NetworkError: none of the listen addresses could be bound.
    """
    async with trio.open_nursery() as nursery:
        host: Host = await nursery.start(
            lambda task_status: serve_host(
                key, listen, admission, limits=limits, announce=announce, task_status=task_status
            )
        )
        try:
            yield host
        finally:
            nursery.cancel_scope.cancel()
