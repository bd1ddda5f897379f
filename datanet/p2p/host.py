"""The datanet libp2p host: connections, admission, protocols, events.

Build one with :func:`open_host` (an async context manager) or start
:func:`serve_host` in a nursery. The host wraps py-libp2p's swarm (TCP, Noise,
Yamux) and implements the rest itself: multistream-select, identify, ping,
admission on ``/datanet/id/1.0.0``, the kad stream service (:mod:`.kad`) and
request/response protocols on ``/datanet/<name>/<version>``.

Why not py-libp2p's ``BasicHost``: importing it costs about 20 MB (mDNS, UPnP,
AutoTLS, bootstrap), its negotiation reads lines without a size limit, and its
``dial_peer`` path waits 250 ms per dial and blocks failed peers for 60 s.

Invariants:
* Nothing returned or raised here is a py-libp2p type: peers are
  :class:`~identity.keys.PeerId` (accepted as bytes too), addresses are strings,
  errors are :mod:`datanet.errors`.
* In ``closed`` and ``members`` networks a peer uses datanet protocols only
  after it passed admission; a peer that fails it is disconnected.
* Every inbound stream is bounded: negotiation time, per-peer concurrent
  streams, frame sizes, idle and handler time. A misbehaving stream is reset
  without affecting others.
* Only Ed25519 peers are accepted (datanet names peers by Ed25519 keys).
"""

from __future__ import annotations

import logging
import secrets
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from datanet.errors import (
    DatanetError,
    InvalidInput,
    NetworkError,
    PeerUnreachable,
    RemoteProtocolError,
    Timeout,
)
from datanet.p2p import _libp2p as lp
from datanet.p2p._errors import AdmissionRefused, ProtocolNotSupported, translate
from datanet.p2p.addrs import TcpAddr, addr_from_bytes, addr_to_bytes, parse_addr
from datanet.p2p.admission import (
    ID_PROTOCOL,
    MAX_HELLO_SIZE,
    MODE_KAD_SERVER,
    Admission,
    Decision,
    Hello,
    Refusal,
    decode_reply,
)
from datanet.p2p.events import KadServer, PeerConnected, PeerDisconnected, PeerEvent
from datanet.p2p.streams import (
    FramedStream,
    RequestHandler,
    check_protocol_id,
    multistream_accept,
    multistream_select,
    read_request,
    send_request,
    write_error,
    write_response,
)
from identity.errors import DecodeError
from identity.keys import KeyPair, OrgId, PeerId

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = [
    "IDENTIFY_PROTOCOL",
    "PING_PROTOCOL",
    "Host",
    "HostLimits",
    "open_host",
    "serve_host",
]

IDENTIFY_PROTOCOL = "/ipfs/id/1.0.0"
PING_PROTOCOL = "/ipfs/ping/1.0.0"
AGENT_VERSION = "datanet/0.1.0"
_PING_SIZE = 32
_MAX_IDENTIFY = 64 * 1024
_MAX_IDENTIFY_PROTOCOLS = 256
_ADDR_BOOK_PEERS = 20_000

log = logging.getLogger("datanet.p2p")

StreamHandler = Callable[[FramedStream, PeerId], Awaitable[None]]


@dataclass(frozen=True)
class HostLimits:
    """Limits and timeouts of a host (seconds, bytes, counts).

    Attributes:
        max_connections: simultaneous connections, all peers together.
        inbound_streams_per_peer: concurrent inbound streams of datanet
            protocols (kad and ``/datanet/<name>/…``) one peer may hold open.
        negotiating_per_peer: concurrent inbound streams of one peer that are
            still negotiating or use identify/ping.
        request_timeout: default time for one outbound request (kad or datanet).
        dial_timeout: time for one dial attempt (TCP, Noise, Yamux).
        hello_timeout: time for the admission exchange after connecting.
        negotiate_timeout: time for multistream-select on an inbound stream.
        handler_timeout: time a local handler may take to answer one request.
        kad_idle_timeout: an inbound kad stream with no request this long is closed.
        kad_max_message: largest kad message (frame payload) accepted or sent.
        max_peer_addrs: addresses remembered per peer.
    """

    max_connections: int = 256
    inbound_streams_per_peer: int = 8
    negotiating_per_peer: int = 16
    request_timeout: float = 5.0
    dial_timeout: float = 5.0
    hello_timeout: float = 5.0
    negotiate_timeout: float = 5.0
    handler_timeout: float = 10.0
    kad_idle_timeout: float = 60.0
    kad_max_message: int = 96 * 1024
    max_peer_addrs: int = 8

    def __post_init__(self) -> None:
        for name in ("max_connections", "inbound_streams_per_peer", "negotiating_per_peer"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"HostLimits.{name} must be at least 1")
        for name in (
            "request_timeout",
            "dial_timeout",
            "hello_timeout",
            "negotiate_timeout",
            "handler_timeout",
            "kad_idle_timeout",
        ):
            if not getattr(self, name) > 0:
                raise InvalidInput(f"HostLimits.{name} must be positive")


@dataclass
class _Registered:
    handler: StreamHandler
    gated: bool


@dataclass
class _PeerState:
    """What we know about a connected peer (dropped when its last connection closes)."""

    inbound: bool
    decided: trio.Event = field(default_factory=trio.Event)
    decision: Decision | None = None
    hello: Hello | None = None
    announced: bool = False
    kad_server: bool = False
    negotiating: int = 0
    datanet_streams: int = 0
    identify_started: bool = False


def as_peer(peer: PeerId | bytes) -> PeerId:
    """Accept a :class:`PeerId` or its binary form.

    Raises:
        DecodeError: the bytes are not an Ed25519 peer id.
    """
    if isinstance(peer, PeerId):
        return peer
    if isinstance(peer, bytes | bytearray):
        return PeerId.from_bytes(bytes(peer))
    raise InvalidInput(f"expected a PeerId or peer id bytes, got {type(peer).__name__}")


def _remote_host(stream: FramedStream) -> str | None:
    try:
        address = stream.remote_address()
    except DatanetError:
        return None
    if address is None:
        return None
    host = address[0]
    return host[7:] if host.startswith("::ffff:") and "." in host else host


class _Notifee(lp.INotifee):
    """Forwards py-libp2p's connection events to the host; never blocks the swarm."""

    def __init__(self, host: Host) -> None:
        self._host = host

    async def connected(self, network: Any, conn: Any) -> None:
        self._host._on_connected(conn)

    async def disconnected(self, network: Any, conn: Any) -> None:
        self._host._on_disconnected(conn)

    async def opened_stream(self, network: Any, stream: Any) -> None:
        return None

    async def closed_stream(self, network: Any, stream: Any) -> None:
        return None

    async def listen(self, network: Any, multiaddr: Any) -> None:
        return None

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        return None


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
        from datanet.p2p.kad import KadService  # noqa: PLC0415 - kad imports this module

        self.peer_id: PeerId = key.peer_id
        self.admission = admission
        self.limits = limits
        self._announce = tuple(parse_addr(a) for a in announce)
        self._swarm = lp.build_swarm(
            key,
            max_connections=limits.max_connections,
            dial_timeout=limits.dial_timeout,
            upgrade_timeout=limits.dial_timeout,
        )
        self._public_key_bytes: bytes = bytes(lp.libp2p_key_pair(key).public_key.serialize())
        self._handlers: dict[str, _Registered] = {}
        self._peers: dict[PeerId, _PeerState] = {}
        self._addr_book: OrderedDict[PeerId, list[TcpAddr]] = OrderedDict()
        self._dialing: dict[PeerId, trio.Event] = {}
        self._subscribers: list[trio.MemorySendChannel[PeerEvent]] = []
        self._conns: weakref.WeakSet[Any] = weakref.WeakSet()
        self._nursery: trio.Nursery | None = None
        self._closed = False
        self.kad = KadService(self)
        self._register(ID_PROTOCOL, self._serve_id, gated=False)
        self._register(IDENTIFY_PROTOCOL, self._serve_identify, gated=False)
        self._register(PING_PROTOCOL, self._serve_ping, gated=False)
        self._swarm.set_stream_handler(self._on_stream)
        self._swarm.register_notifee(_Notifee(self))

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
        return [p for p, s in self._peers.items() if s.announced and self._is_connected(p)]

    def is_connected(self, peer: PeerId | bytes) -> bool:
        """Whether ``peer`` has an open connection (admitted or not yet decided)."""
        return self._is_connected(as_peer(peer))

    def _is_connected(self, peer: PeerId) -> bool:
        return any(not c.is_closed for c in self._swarm.get_connections(lp.to_libp2p_id(peer)))

    def peer_addrs(self, peer: PeerId | bytes) -> list[str]:
        """Known transport addresses of ``peer`` (no ``/p2p/``), most recent first."""
        return [a.transport for a in self._addr_book.get(as_peer(peer), [])]

    def peer_org(self, peer: PeerId | bytes) -> OrgId | None:
        """The organization of a connected peer's verified certificate, or None."""
        state = self._peers.get(as_peer(peer))
        if state is None or state.decision is None or state.decision.cert is None:
            return None
        return state.decision.cert.org

    # --------------------------------------------------------------- events

    def subscribe(self, buffer: int = 1024) -> trio.MemoryReceiveChannel[PeerEvent]:
        """A channel of :data:`~.events.PeerEvent` s from now on.

        The host never waits for a subscriber: when ``buffer`` events are pending,
        new ones are dropped (and logged). Close the channel to unsubscribe.
        """
        send, receive = trio.open_memory_channel[PeerEvent](buffer)
        self._subscribers.append(send)
        return receive

    def _emit(self, event: PeerEvent) -> None:
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                log.warning("a peer-event subscriber is full; dropped %r", event)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(channel)

    # ------------------------------------------------------------ addresses

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
        self._remember(peer, parsed)

    def _remember(self, peer: PeerId, addrs: Sequence[TcpAddr]) -> None:
        if not addrs or peer == self.peer_id:
            return
        known = self._addr_book.pop(peer, [])
        fresh = [TcpAddr(a.family, a.host, a.port) for a in addrs]
        merged = list(dict.fromkeys(fresh + known))[: self.limits.max_peer_addrs]
        self._addr_book[peer] = merged
        while len(self._addr_book) > _ADDR_BOOK_PEERS:
            self._addr_book.popitem(last=False)

    def _remember_announced(
        self, peer: PeerId, addrs: Sequence[str], observed: str | None = None
    ) -> tuple[str, ...]:
        """Remember the listen addresses a peer announced; returns the usable ones.

        A peer listening on ``0.0.0.0`` (or ``::``) announces that address; it is
        replaced by the IP we see the peer at, which is reachable from here.
        """
        good: list[TcpAddr] = []
        for text in addrs[: self.limits.max_peer_addrs]:
            try:
                parsed = parse_addr(text)
            except InvalidInput:
                continue
            if parsed.peer is not None and parsed.peer != peer:
                continue
            if parsed.host in ("0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
                family = "ip6" if observed is not None and ":" in observed else "ip4"
                if observed is None or family != parsed.family:
                    continue
                parsed = TcpAddr(family, observed, parsed.port)
            good.append(parsed)
        self._remember(peer, good)
        return tuple(a.transport for a in good)

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

    async def _ensure_admitted(self, peer: PeerId, deadline: float) -> _PeerState:
        """Connect (if needed) and wait for the admission decision, until ``deadline``."""
        if peer == self.peer_id:
            raise InvalidInput("a host cannot talk to itself over the network")
        if not self._is_connected(peer):
            await self._dial(peer, deadline)
        state = self._peers.get(peer)
        if state is None:  # the connection closed as soon as it opened
            raise PeerUnreachable(f"the connection to {peer} closed right away")
        with trio.move_on_at(deadline):
            await state.decided.wait()
        if state.decision is None:
            raise Timeout(f"admission exchange with {peer} did not finish in time")
        if not state.decision.admitted:
            raise AdmissionRefused(
                f"peer {peer} not admitted ({state.decision.code}): {state.decision.reason}"
            )
        if self.admission.gated and state.hello is not None:
            again = self.admission.decide(peer, state.hello)
            if not again.admitted:
                self._spawn(self._refuse, peer, again)
                raise AdmissionRefused(
                    f"peer {peer} no longer admitted ({again.code}): {again.reason}"
                )
        return state

    async def _dial(self, peer: PeerId, deadline: float) -> None:
        pending = self._dialing.get(peer)
        if pending is not None:
            with trio.move_on_at(deadline):
                await pending.wait()
            if self._is_connected(peer):
                return
            raise PeerUnreachable(f"dial to {peer} (joined in progress) failed")
        addrs = list(self._addr_book.get(peer, []))
        if not addrs:
            raise PeerUnreachable(f"no known address for {peer}")
        done = trio.Event()
        self._dialing[peer] = done
        failures: list[str] = []
        try:
            for addr in addrs:
                remaining = deadline - trio.current_time()
                if remaining <= 0:
                    failures.append("out of time")
                    break
                try:
                    # py-libp2p's dial_peer adds a 250 ms happy-eyeballs wait to
                    # every dial and blocks the peer for 60 s after a failure;
                    # dial_addr does one attempt on one address and neither.
                    with (
                        translate(f"dial {peer} at {addr.transport}"),
                        trio.fail_after(min(remaining, self.limits.dial_timeout)),
                    ):
                        await self._swarm.dial_addr(
                            lp.Multiaddr(addr.transport), lp.to_libp2p_id(peer)
                        )
                    self._remember(peer, [addr])
                    return
                except DatanetError as exc:
                    failures.append(str(exc))
            raise PeerUnreachable(f"cannot reach {peer}: " + "; ".join(failures)[:500])
        finally:
            done.set()
            self._dialing.pop(peer, None)

    # ------------------------------------------------------ connection events

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        if self._nursery is not None and not self._closed:
            self._nursery.start_soon(fn, *args)

    def _state_for(self, peer: PeerId, *, inbound: bool) -> _PeerState:
        state = self._peers.get(peer)
        if state is None:
            state = _PeerState(inbound=inbound)
            self._peers[peer] = state
        return state

    def _on_connected(self, conn: Any) -> None:
        self._conns.add(conn)
        try:
            peer = lp.peer_id_from_libp2p(conn.muxed_conn.peer_id)
        except DecodeError:
            log.debug("refusing a non-Ed25519 peer %s", conn.muxed_conn.peer_id)
            self._spawn(conn.close)
            return
        outbound = getattr(conn.direction, "name", "") == "OUTBOUND"
        state = self._state_for(peer, inbound=not outbound)
        if outbound:
            self._spawn(self._admit_as_dialer, conn, peer, state)
        else:
            self._spawn(self._admit_as_listener, peer, state)

    def _on_disconnected(self, conn: Any) -> None:
        try:
            peer = lp.peer_id_from_libp2p(conn.muxed_conn.peer_id)
        except DecodeError:
            return
        if self._is_connected(peer):
            return
        state = self._peers.pop(peer, None)
        self.kad._forget(peer)
        if state is not None and state.announced:
            self._emit(PeerDisconnected(peer))

    def _own_hello(self) -> Hello:
        modes = frozenset({MODE_KAD_SERVER}) if self.kad.serving else frozenset()
        return Hello(self.admission.chain, modes, tuple(self._transport_addrs()))

    async def _admit_as_dialer(self, conn: Any, peer: PeerId, state: _PeerState) -> None:
        """Run the admission exchange on a connection we opened."""
        hello: Hello | None = None
        observed: str | None = None
        try:
            with translate(f"admission with {peer}"), trio.fail_after(self.limits.hello_timeout):
                raw = await conn.new_stream()
                stream = FramedStream(raw, f"/datanet/id stream to {peer}")
                try:
                    observed = _remote_host(stream)
                    await multistream_select(stream, ID_PROTOCOL)
                    await stream.write_frame(self._own_hello().encode(), MAX_HELLO_SIZE)
                    reply = decode_reply(await stream.read_required(MAX_HELLO_SIZE))
                finally:
                    await stream.close()
        except ProtocolNotSupported:
            hello = None  # a plain libp2p node
        except DatanetError as exc:
            log.debug("admission exchange with %s failed: %s", peer, exc)
            self._decide(peer, state, Decision(False, None, exc.code, str(exc)), None)
            return
        else:
            if isinstance(reply, Refusal):
                refused = Decision(False, None, "refused_by_peer", f"{reply.code}: {reply.message}")
                self._decide(peer, state, refused, None)
                return
            hello = reply
        self._decide(peer, state, self.admission.decide(peer, hello), hello, observed)

    async def _admit_as_listener(self, peer: PeerId, state: _PeerState) -> None:
        """Wait for the dialer's hello; in open networks, identify plain peers early."""
        if state.decided.is_set():
            return
        async with trio.open_nursery() as nursery:
            if not self.admission.gated:
                nursery.start_soon(self._detect_plain_peer, peer, state)
            with trio.move_on_after(self.limits.hello_timeout):
                await state.decided.wait()
            nursery.cancel_scope.cancel()
        if not state.decided.is_set():
            self._decide(peer, state, self.admission.decide(peer, None), None)

    async def _detect_plain_peer(self, peer: PeerId, state: _PeerState) -> None:
        protocols, addrs = await self._identify(peer)
        if protocols is None or ID_PROTOCOL in protocols or state.decided.is_set():
            return
        state.identify_started = True  # this identify answer serves _kad_from_identify
        self._decide(peer, state, self.admission.decide(peer, None), None)
        self._kad_from_identify(peer, state, protocols, addrs)

    def _decide(
        self,
        peer: PeerId,
        state: _PeerState,
        decision: Decision,
        hello: Hello | None,
        observed: str | None = None,
    ) -> None:
        """Record an admission decision and act on it (announce or disconnect)."""
        if self._peers.get(peer) is not state:
            return  # the connection is gone
        if state.decision is not None and state.decision.admitted and not decision.admitted:
            return  # a failed second exchange does not undo a good first one
        state.decision = decision
        if hello is not None:
            state.hello = hello
        state.decided.set()
        if not decision.admitted:
            log.info("peer %s refused: %s", peer, decision.reason or decision.code)
            self._spawn(self._close_peer, peer)
            return
        addrs: tuple[str, ...] = ()
        if hello is not None:
            addrs = self._remember_announced(peer, hello.addrs, observed)
        if not state.announced:
            state.announced = True
            org = decision.cert.org if decision.cert is not None else None
            self._emit(
                PeerConnected(peer, org, state.inbound, addrs or tuple(self.peer_addrs(peer)))
            )
        if hello is not None and MODE_KAD_SERVER in hello.modes and not state.kad_server:
            state.kad_server = True
            self._emit(KadServer(peer, addrs))
        elif hello is None and not state.identify_started:
            state.identify_started = True
            self._spawn(self._identify_plain, peer, state)

    async def _refuse(self, peer: PeerId, decision: Decision) -> None:
        state = self._peers.get(peer)
        if state is not None:
            state.decision = decision
        await self._close_peer(peer)

    async def _identify_plain(self, peer: PeerId, state: _PeerState) -> None:
        protocols, addrs = await self._identify(peer)
        if protocols is not None:
            self._kad_from_identify(peer, state, protocols, addrs)

    def _kad_from_identify(
        self, peer: PeerId, state: _PeerState, protocols: list[str], addrs: list[str]
    ) -> None:
        from datanet.p2p.kad import KAD_PROTOCOL  # noqa: PLC0415

        if self._peers.get(peer) is not state:
            return
        known = self._remember_announced(peer, addrs)
        if KAD_PROTOCOL in protocols and not state.kad_server and state.announced:
            state.kad_server = True
            self._emit(KadServer(peer, known))

    # ------------------------------------------------------ inbound streams

    def _register(self, protocol: str, handler: StreamHandler, *, gated: bool) -> None:
        self._handlers[protocol] = _Registered(handler, gated)

    async def _on_stream(self, raw: Any) -> None:
        """Entry point of every inbound stream (py-libp2p's swarm stream handler)."""
        try:
            peer = lp.peer_id_from_libp2p(raw.muxed_conn.peer_id)
        except DecodeError:
            await FramedStream(raw, "stream").reset()
            return
        if self._closed or not self._is_connected(peer):
            await FramedStream(raw, "stream").reset()
            return
        state = self._state_for(peer, inbound=True)
        stream = FramedStream(raw, f"inbound stream from {peer}")
        try:
            if state.negotiating >= self.limits.negotiating_per_peer:
                log.debug("too many negotiating streams from %s; reset", peer)
                await stream.reset()
                return
            state.negotiating += 1
            try:
                with translate(f"negotiation with {peer}"):
                    with trio.fail_after(self.limits.negotiate_timeout):
                        protocol = await multistream_accept(stream, self._handlers.__contains__)
                entry = self._handlers[protocol]
                stream.what = f"{protocol} stream from {peer}"
                if not entry.gated:
                    await entry.handler(stream, peer)
                    return
            finally:
                state.negotiating -= 1
            if state.datanet_streams >= self.limits.inbound_streams_per_peer:
                log.debug("peer %s exceeds %s concurrent streams; reset", peer, protocol)
                await stream.reset()
                return
            state.datanet_streams += 1
            try:
                if not await self._gate(peer, state):
                    await stream.reset()
                    return
                await entry.handler(stream, peer)
            finally:
                state.datanet_streams -= 1
        except DatanetError as exc:
            log.debug("%s: %s; reset", stream.what, exc)
            await stream.reset()
        except Exception:
            log.exception("%s: handler failed; reset", stream.what)
            await stream.reset()

    async def _gate(self, peer: PeerId, state: _PeerState) -> bool:
        """Whether ``peer`` may use a datanet protocol now."""
        if not self.admission.gated:
            return True
        with trio.move_on_after(self.limits.hello_timeout):
            await state.decided.wait()
        if state.decision is None or not state.decision.admitted or state.hello is None:
            return False
        again = self.admission.decide(peer, state.hello)
        if not again.admitted:
            log.info("peer %s no longer admitted: %s", peer, again.reason)
            self._spawn(self._refuse, peer, again)
            return False
        return True

    async def _serve_id(self, stream: FramedStream, peer: PeerId) -> None:
        """Listener side of the admission exchange."""
        state = self._state_for(peer, inbound=True)
        with translate(stream.what), trio.fail_after(self.limits.hello_timeout):
            frame = await stream.read_required(MAX_HELLO_SIZE)
            try:
                hello: Hello | None = Hello.decode(frame)
            except DecodeError as exc:
                hello = None
                decision = Decision(False, None, exc.code, f"malformed hello: {exc}")
            else:
                decision = self.admission.decide(peer, hello)
            if decision.admitted:
                await stream.write_frame(self._own_hello().encode(), MAX_HELLO_SIZE)
            else:
                refusal = Refusal(decision.code, decision.reason)
                await stream.write_frame(refusal.encode(), MAX_HELLO_SIZE)
            await stream.close()
        self._decide(peer, state, decision, hello, _remote_host(stream))

    async def _serve_ping(self, stream: FramedStream, peer: PeerId) -> None:
        """libp2p ping: echo 32-byte payloads until the peer closes (idle: 60 s)."""
        while True:
            with trio.move_on_after(self.limits.kad_idle_timeout) as idle:
                payload = await stream.read_exactly(_PING_SIZE)
            if idle.cancelled_caught or payload is None:
                await stream.close()
                return
            await stream.write(payload)

    def _identify_message(self, remote: tuple[str, int] | None) -> bytes:
        msg = lp.Identify(
            protocol_version="ipfs/0.1.0",
            agent_version=AGENT_VERSION,
            public_key=self._public_key_bytes,
            listen_addrs=[addr_to_bytes(a) for a in self._transport_addrs()],
            protocols=sorted(self._handlers),
        )
        if remote is not None:
            family = "ip6" if ":" in remote[0] else "ip4"
            with suppress(InvalidInput):
                msg.observed_addr = addr_to_bytes(f"/{family}/{remote[0]}/tcp/{remote[1]}")
        return bytes(msg.SerializeToString())

    async def _serve_identify(self, stream: FramedStream, peer: PeerId) -> None:
        remote = None
        try:
            remote = stream.remote_address()
        except DatanetError:
            remote = None
        with translate(stream.what), trio.fail_after(self.limits.negotiate_timeout):
            await stream.write_frame(self._identify_message(remote), _MAX_IDENTIFY)
            await stream.close()

    async def _identify(self, peer: PeerId) -> tuple[list[str] | None, list[str]]:
        """Ask ``peer`` for its protocols and listen addresses (None on failure)."""
        try:
            with translate(f"identify {peer}"), trio.fail_after(self.limits.request_timeout):
                stream = await self._open_stream(peer, IDENTIFY_PROTOCOL)
                try:
                    frame = await stream.read_required(_MAX_IDENTIFY)
                finally:
                    await stream.close()
        except DatanetError as exc:
            log.debug("identify %s failed: %s", peer, exc)
            return None, []
        msg = lp.Identify()
        try:
            msg.ParseFromString(frame)
        except Exception:  # noqa: BLE001 - protobuf raises its own DecodeError and others
            log.debug("identify %s: malformed message", peer)
            return None, []
        protocols = [p[:256] for p in list(msg.protocols)[:_MAX_IDENTIFY_PROTOCOLS]]
        addrs: list[str] = []
        for raw in list(msg.listen_addrs)[: self.limits.max_peer_addrs]:
            try:
                addrs.append(addr_from_bytes(bytes(raw)))
            except DecodeError:
                continue
        return protocols, addrs

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

    async def open_stream(
        self,
        peer: PeerId | bytes,
        protocol: str,
        *,
        timeout: float | None = None,
        addrs: Sequence[str] = (),
    ) -> FramedStream:
        """Open a raw framed stream to an admitted peer (diagnostics, adversarial tests).

        The caller owns the stream: bound every read with a deadline and
        ``close()`` or ``reset()`` it. Normal traffic uses :attr:`kad` and
        :meth:`request`, which apply the limits themselves.

        Raises:
            PeerUnreachable, AdmissionRefused, Timeout, ProtocolNotSupported,
            RemoteProtocolError, NetworkError.
        """
        peer = as_peer(peer)
        if addrs:
            self.add_addrs(peer, addrs)
        deadline = trio.current_time() + (timeout or self.limits.request_timeout)
        await self._ensure_admitted(peer, deadline)
        with translate(f"open {protocol} stream to {peer}"), trio.fail_at(deadline):
            return await self._open_stream(peer, protocol)

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
                payload = secrets.token_bytes(_PING_SIZE)
                start = trio.current_time()
                await stream.write(payload)
                echo = await stream.read_exactly(_PING_SIZE)
                rtt = trio.current_time() - start
            finally:
                await stream.close()
        if echo != payload:
            raise RemoteProtocolError(f"ping {peer}: wrong echo")
        return rtt

    # ------------------------------------------------ request/response API

    def set_protocol_handler(
        self,
        protocol_id: str,
        handler: RequestHandler,
        max_size: int = 64 * 1024,
        *,
        timeout: float | None = None,
    ) -> None:
        """Serve a datanet request/response protocol.

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
        if protocol_id in (ID_PROTOCOL, "/datanet/kad/1.0.0"):
            raise InvalidInput(f"{protocol_id} is reserved")
        limit = timeout or self.limits.handler_timeout

        async def serve(stream: FramedStream, peer: PeerId) -> None:
            with translate(stream.what), trio.fail_after(limit):
                request = await read_request(stream, max_size)
            try:
                with trio.fail_after(limit):
                    response = await handler(request, peer.to_bytes())
            except trio.TooSlowError:
                await write_error(stream, Timeout("the handler did not answer in time"))
                return
            except DatanetError as exc:
                await write_error(stream, exc)
                return
            with translate(stream.what), trio.fail_after(limit):
                await write_response(stream, response, max_size)

        self._register(protocol_id, serve, gated=True)

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
        check_protocol_id(protocol_id)
        peer = as_peer(peer)
        if addrs:
            self.add_addrs(peer, addrs)
        deadline = trio.current_time() + (timeout or self.limits.request_timeout)
        await self._ensure_admitted(peer, deadline)
        with translate(f"{protocol_id} request to {peer}"), trio.fail_at(deadline):
            stream = await self._open_stream(peer, protocol_id)
            try:
                return await send_request(stream, obj, max_size)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await stream.reset()
                raise
            finally:
                await stream.close()

    # ------------------------------------------------------------ lifecycle

    async def _shutdown(self) -> None:
        """Close every connection (concurrently) and the listeners."""
        self._closed = True
        for channel in self._subscribers:
            channel.close()
        self._subscribers.clear()
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
