"""Kademlia streams on ``/datanet/kad/1.0.0``: the kad-dht wire, datanet's protocol id.

Messages are the libp2p kad-dht protobuf ``Message`` (codec in
:mod:`routing.wire`), each in an unsigned-varint length-prefixed frame. As the
kad-dht specification allows, a stream carries many request/response pairs in
sequence, so the client keeps **one long-lived stream per peer** and reuses it.

Client (:meth:`KadService.request`): one stream per peer, used by one request at
a time (a lock per stream); a stream that fails is reset and, if it was an old
stream the peer may have closed while idle, the request is retried once on a
fresh one. A timed-out or cancelled request resets its stream, since a late
response would otherwise be read as the answer to the next request.

Server: ``await handler(msg, from_peer_id_bytes)`` is called for every request.
It is **async** and returns the response, or ``None`` to send nothing (the
specification's ``ADD_PROVIDER`` has no response). Raising a
:class:`~datanet.errors.DatanetError` refuses the request: the stream is reset,
as go-libp2p does for invalid records.

Invariants:
* Frames above ``HostLimits.kad_max_message`` are refused before they are
  buffered; undecodable frames reset that stream only.
* An inbound stream idle for ``kad_idle_timeout`` is closed; a handler that
  takes longer than ``handler_timeout`` resets its stream.
* At most ``inbound_streams_per_peer`` inbound datanet streams per peer are
  served at once (enforced by the host), and only for admitted peers.
* :attr:`KadService.request_counts` counts every request by direction (``in``,
  ``out``), message type (``find_node``…) and outcome (``ok``, ``timeout``, or the
  error's stable ``code``): bounded labels only, never peer ids (read by the
  node's metrics).
* :meth:`KadService.source_of` tells the handler who is asking (remote IP of the
  peer's latest inbound kad stream, admitted with a membership certificate or
  not); it is known only while the peer is connected, so its memory is bounded
  by the connections.
* The service uses only the host's service surface (:class:`~.service.ServiceHost`):
  it registers its handler, opens streams, and drops a peer's stream when it
  hears :class:`~.events.PeerDisconnected`.
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import trio

from datanet.errors import (
    DatanetError,
    InvalidInput,
    NetworkError,
    RemoteProtocolError,
    Timeout,
)
from datanet.p2p._errors import StreamClosedByPeer, translate
from datanet.p2p.addrs import as_peer
from datanet.p2p.events import KAD_PROTOCOL, PeerConnected, PeerDisconnected, PeerEvent
from datanet.p2p.streams import FramedStream
from identity.errors import DecodeError
from identity.keys import PeerId
from routing.stores import ProviderSource
from routing.wire import Message, MessageType, decode_message, encode_message

if TYPE_CHECKING:
    from datanet.p2p.service import ServiceHost

__all__ = ["KAD_PROTOCOL", "KadHandler", "KadService"]

KadHandler = Callable[[Message, bytes], Awaitable[Message | None]]
"""``async handler(request, from_peer_id_bytes) -> response | None``."""

log = logging.getLogger("datanet.p2p.kad")


def _remaining(deadline: float) -> float:
    """Time left until ``deadline`` (a positive number, so never "the default")."""
    return max(deadline - trio.current_time(), 1e-6)


class _Held:
    """``async with _Held(lock)``: like ``async with lock``, without a scheduler round when free.

    trio's ``Lock.acquire`` yields even when the lock is free; ``acquire_nowait``
    is as fair (it refuses while others wait). The request's write is its checkpoint.
    """

    __slots__ = ("_lock",)

    def __init__(self, lock: trio.Lock) -> None:
        self._lock = lock

    async def __aenter__(self) -> None:
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


class _Channel:
    """The long-lived outbound stream to one peer and the lock that serialises it."""

    __slots__ = ("lock", "stream")

    def __init__(self) -> None:
        self.lock = trio.Lock()
        self.stream: FramedStream | None = None


class KadService:
    """Client and server of ``/datanet/kad/1.0.0`` on one host (``host.kad``)."""

    def __init__(self, host: ServiceHost) -> None:
        self._host = host
        self._handler: KadHandler | None = None
        self._channels: dict[PeerId, _Channel] = {}
        self._members: set[PeerId] = set()
        self._addresses: dict[PeerId, str] = {}
        host.add_peer_listener(self._on_peer_event)
        self.streams_accepted = 0
        """Inbound kad streams served so far (one per peer when clients reuse streams)."""
        self.requests_served = 0
        """Inbound kad requests handed to the handler so far."""
        self.request_counts: Counter[tuple[str, str, str]] = Counter()
        """Requests so far by ``(direction, type, outcome)``: ``("out", "get_value", "ok")``."""

    @property
    def serving(self) -> bool:
        """Whether a handler is set (the host then announces ``kad-server``)."""
        return self._handler is not None

    def set_handler(self, handler: KadHandler) -> None:
        """Serve kad requests with ``handler``.

        Set it before connecting to peers: the ``kad-server`` mode is announced
        in the admission exchange, which happens once per connection.

        Raises:
            InvalidInput: ``handler`` is not an async function.
        """
        if not inspect.iscoroutinefunction(handler) and not inspect.iscoroutinefunction(
            type(handler).__call__
        ):
            raise InvalidInput("the kad handler must be an async function")
        self._handler = handler
        self._host.set_stream_handler(KAD_PROTOCOL, self._serve, gated=True)

    # ----------------------------------------------------------------- server

    def source_of(self, peer: PeerId | bytes) -> ProviderSource:
        """Who ``peer`` is for the stores' quotas: its remote IP and whether it is a member.

        A member is a peer admitted with a verified membership certificate; any
        other connected peer (open mode, plain libp2p) is a stranger.
        """
        pid = peer if isinstance(peer, PeerId) else PeerId.from_bytes(peer)
        return ProviderSource(
            peer=pid.to_bytes(),
            address=self._addresses.get(pid),
            member=pid in self._members,
        )

    async def _serve(self, stream: FramedStream, peer: PeerId) -> None:
        handler = self._handler
        if handler is None:  # pragma: no cover - registered only with a handler
            await stream.reset()
            return
        limits = self._host.limits
        from_peer = peer.to_bytes()
        remote = stream.remote_address()
        if remote is not None and self._host.is_connected(peer):
            self._addresses[peer] = remote[0]
        self.streams_accepted += 1
        while True:
            with trio.move_on_after(limits.kad_idle_timeout) as idle:
                frame = await stream.read_frame(limits.kad_max_message)
            if idle.cancelled_caught or frame is None:
                await stream.close()
                return
            try:
                request = decode_message(frame, max_size=limits.kad_max_message)
            except DecodeError as exc:
                raise RemoteProtocolError(
                    f"{stream.what}: undecodable kad message: {exc}"
                ) from None
            self.requests_served += 1
            kind = request.type.name.lower()
            try:
                with trio.move_on_after(limits.handler_timeout) as slow:
                    response = await handler(request, from_peer)
            except DatanetError as exc:
                self.request_counts["in", kind, exc.code] += 1
                raise
            if slow.cancelled_caught:
                self.request_counts["in", kind, "timeout"] += 1
                log.warning("kad handler took over %ss for %s", limits.handler_timeout, peer)
                await stream.reset()
                return
            self.request_counts["in", kind, "ok"] += 1
            if response is not None:
                payload = encode_message(response, max_size=limits.kad_max_message)
                with translate(stream.what), trio.fail_after(limits.request_timeout):
                    await stream.write_frame(payload, limits.kad_max_message)

    # ----------------------------------------------------------------- client

    async def request(
        self,
        peer: PeerId | bytes,
        msg: Message,
        *,
        timeout: float | None = None,
        addrs: Sequence[str] = (),
    ) -> Message:
        """Send a kad request and return the response (of the same type).

        Args:
            peer: the peer (its :class:`PeerId` or binary id).
            msg: the request.
            timeout: for the whole exchange, dialling included (default
                ``limits.request_timeout``).
            addrs: addresses to dial if not connected (known ones are tried too).

        Raises:
            PeerUnreachable: the peer could not be dialled.
            AdmissionRefused: the peer failed admission or refused us.
            Timeout: no response in time.
            ProtocolNotSupported: the peer does not serve ``/datanet/kad/1.0.0``.
            RemoteProtocolError: junk, an oversized or wrongly-typed response.
            NetworkError: the stream or connection broke (after one retry).
            InvalidInput, RecordTooLarge: ``msg`` cannot be encoded.
        """
        response = await self._counted(peer, msg, timeout, addrs, want_response=True)
        assert response is not None
        return response

    async def send(
        self,
        peer: PeerId | bytes,
        msg: Message,
        *,
        timeout: float | None = None,
        addrs: Sequence[str] = (),
    ) -> None:
        """Send a kad message that has no response (``ADD_PROVIDER``).

        Raises:
            The same errors as :meth:`request`.
        """
        await self._counted(peer, msg, timeout, addrs, want_response=False)

    async def _counted(
        self,
        peer: PeerId | bytes,
        msg: Message,
        timeout: float | None,
        addrs: Sequence[str],
        *,
        want_response: bool,
    ) -> Message | None:
        """:meth:`_exchange`, counted in :attr:`request_counts` by outcome."""
        kind = msg.type.name.lower()
        try:
            response = await self._exchange(peer, msg, timeout, addrs, want_response=want_response)
        except DatanetError as exc:
            self.request_counts["out", kind, exc.code] += 1
            raise
        self.request_counts["out", kind, "ok"] += 1
        return response

    async def _exchange(
        self,
        peer_in: PeerId | bytes,
        msg: Message,
        timeout: float | None,
        addrs: Sequence[str],
        *,
        want_response: bool,
    ) -> Message | None:
        host = self._host
        peer = as_peer(peer_in)
        limits = host.limits
        payload = encode_message(msg, max_size=limits.kad_max_message)
        if addrs:
            host.add_addrs(peer, addrs)
        deadline = trio.current_time() + (timeout or limits.request_timeout)
        channel = self._channels.setdefault(peer, _Channel())
        what = f"kad {msg.type.name} to {peer}"
        try:
            with translate(what), trio.fail_at(deadline):
                async with _Held(channel.lock):
                    for attempt in (1, 2):
                        reused = channel.stream is not None
                        if channel.stream is None:
                            channel.stream = await host.open_stream(
                                peer, KAD_PROTOCOL, timeout=_remaining(deadline)
                            )
                            # the peer may have disconnected while we waited for the lock
                            self._channels.setdefault(peer, channel)
                        stream = channel.stream
                        try:
                            return await self._one(stream, payload, msg.type, want_response)
                        except (StreamClosedByPeer, NetworkError) as exc:
                            self._drop(channel, stream)
                            if isinstance(exc, Timeout | RemoteProtocolError):
                                raise
                            if not reused or attempt == 2:
                                raise
                            log.debug("%s: stale stream (%s); retrying on a new one", what, exc)
                        except BaseException:
                            self._drop(channel, stream)
                            raise
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            # Unreachable peers must not pile up channels (no disconnect event comes).
            if (
                channel.stream is None
                and not channel.lock.locked()
                and self._channels.get(peer) is channel
            ):
                del self._channels[peer]

    async def _one(
        self, stream: FramedStream, payload: bytes, mtype: MessageType, want_response: bool
    ) -> Message | None:
        limits = self._host.limits
        await stream.write_frame(payload, limits.kad_max_message)
        if not want_response:
            return None
        frame = await stream.read_frame(limits.kad_max_message)
        if frame is None:
            raise StreamClosedByPeer(f"{stream.what}: the peer closed the stream")
        try:
            response = decode_message(frame, max_size=limits.kad_max_message)
        except DecodeError as exc:
            raise RemoteProtocolError(f"{stream.what}: undecodable response: {exc}") from None
        if response.type != mtype:
            raise RemoteProtocolError(
                f"{stream.what}: asked {mtype.name}, got a {response.type.name} response"
            )
        return response

    def _drop(self, channel: _Channel, stream: FramedStream) -> None:
        """Forget a stream whose state is unknown and reset it in the background."""
        if channel.stream is stream:
            channel.stream = None
        self._host.start_soon(stream.reset)

    def _on_peer_event(self, event: PeerEvent) -> None:
        """Remember who is a member; a peer that disconnected leaves a dead stream: forget it."""
        if isinstance(event, PeerConnected):
            if event.org is not None:
                self._members.add(event.peer)
            else:
                self._members.discard(event.peer)
            return
        if not isinstance(event, PeerDisconnected):
            return
        self._members.discard(event.peer)
        self._addresses.pop(event.peer, None)
        channel = self._channels.pop(event.peer, None)
        if channel is not None and channel.stream is not None and not channel.lock.locked():
            self._drop(channel, channel.stream)

    def open_streams(self) -> int:
        """How many long-lived outbound kad streams are open (for stats and tests)."""
        return sum(1 for c in self._channels.values() if c.stream is not None)
