"""The one gateway to py-libp2p: import only what datanet uses, and patch it here.

py-libp2p 0.8.1's package ``__init__`` eagerly imports every transport, QUIC,
AutoTLS/ACME, mDNS, UPnP, relays and bitswap (about 83 MB of resident memory).
datanet needs the swarm, TCP, Noise, Yamux and a few protobufs, so this module
registers the ``libp2p`` package object *without executing its* ``__init__`` and
then imports those submodules one by one (about 37 MB on top of trio).

Invariants:
* Every other module of :mod:`datanet.p2p` takes its py-libp2p names from here;
  nothing outside :mod:`datanet.p2p` imports libp2p (import-linter checks it).
* If ``libp2p`` was already imported in full by someone else, it is used as is;
  the submodules are the same objects either way.
* The swarm built by :func:`build_swarm` speaks Noise only (never plaintext or
  secio), Yamux only, TCP only; it never dials on its own (py-libp2p's
  auto-connector is disabled) and never blocks a peer after a failed dial (its
  60 s negative cache is disabled). See ``docs/p2p.md`` for each workaround.
* Yamux returns receive credit the way go-yamux does, in batches of half a
  window, not with one WINDOW_UPDATE frame per read: py-libp2p 0.8.1 defaults to
  the latter (``PY_YAMUX_RELEASE_ON_READ=1``), which doubles the frames of every
  small message (a gossip RPC, a kad answer) at ~0.3 ms of CPU per frame. An
  operator's own ``PY_YAMUX_RELEASE_ON_READ`` setting is left alone. Even so,
  py-libp2p 0.8.1 sends a WINDOW_UPDATE after most small reads (its "partial
  slack" branch credits any consumed bytes at once), one extra frame for every
  second request on a kad stream; :func:`_batched_window_update` defers those
  to the half-window batch, as go-yamux does (decision 0011).
* Yamux writes a frame without formatting a DEBUG line nobody reads and without
  a second scheduler round after the socket write (:func:`_lean_write_frame`);
  with the yamux logger at DEBUG, py-libp2p's own method runs unchanged.
* A TCP connection's reads are served from a 64 KiB read-ahead buffer
  (:func:`_read_ahead`), one socket receive for many Noise messages instead of
  two receives per message. These three are patches of py-libp2p's classes,
  process-wide (decision 0011). Yamux and TCP reads and writes take a free
  lock without a scheduler round (:func:`_took`).
* A Yamux connection keeps bookkeeping only for its open streams (and for
  closed ones until their unread data is drained or swept): py-libp2p 0.8.1's
  ``read_stream`` re-creates the wake-up event of a stream that was closed
  while a reader waited, an entry nothing ever removes until the connection
  closes (one ``trio.Event`` per such stream: the soak's long-lived
  connections grew by thousands an hour). :class:`_DatanetYamux` drops it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

os.environ.setdefault("PY_YAMUX_RELEASE_ON_READ", "0")


def _install_package_without_init() -> None:
    if "libp2p" in sys.modules:
        return
    spec = importlib.util.find_spec("libp2p")
    if spec is None or spec.submodule_search_locations is None:  # pragma: no cover
        raise ImportError("py-libp2p is not installed")
    # module_from_spec sets __path__, __spec__ and __file__ but runs no code, so
    # `import libp2p.network.swarm` finds the submodules without the package init.
    sys.modules["libp2p"] = importlib.util.module_from_spec(spec)


_install_package_without_init()

# Order matters: libp2p.abc and libp2p.transport import each other; entering
# through the transport package is the order the package init itself uses.
# swarm_connection and connection_shutdown are imported lazily by py-libp2p;
# they are imported here so that _logging can fix their loggers.
import libp2p.transport  # noqa: E402, F401
import trio  # noqa: E402
from libp2p.abc import INotifee  # noqa: E402
from libp2p.crypto.ed25519 import Ed25519PrivateKey  # noqa: E402
from libp2p.crypto.keys import KeyPair as Libp2pKeyPair  # noqa: E402
from libp2p.crypto.x25519 import create_new_key_pair as _new_x25519  # noqa: E402
from libp2p.custom_types import TProtocol  # noqa: E402
from libp2p.exceptions import BaseLibp2pError, ParseError  # noqa: E402
from libp2p.identity.identify.pb.identify_pb2 import Identify  # noqa: E402
from libp2p.io.exceptions import (  # noqa: E402
    ConnectionClosedError,
    IncompleteReadError,
    IOException,
)
from libp2p.io.trio import TrioTCPStream  # noqa: E402
from libp2p.io.utils import read_exactly  # noqa: E402
from libp2p.network.auto_connector import AutoConnector  # noqa: E402
from libp2p.network.config import ConnectionConfig, RetryConfig  # noqa: E402
from libp2p.network.connection import swarm_connection  # noqa: E402, F401 - for _logging
from libp2p.network.connection.raw_connection import RawConnection  # noqa: E402
from libp2p.network.exceptions import SwarmException  # noqa: E402
from libp2p.network.stream.exceptions import StreamEOF, StreamReset  # noqa: E402
from libp2p.network.swarm import Swarm, _NegativePeerCache  # noqa: E402
from libp2p.peer.id import ID  # noqa: E402
from libp2p.peer.peerstore import PeerStore  # noqa: E402
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID  # noqa: E402
from libp2p.security.noise.transport import Transport as NoiseTransport  # noqa: E402
from libp2p.stream_muxer.exceptions import MuxedConnError, MuxedStreamError  # noqa: E402
from libp2p.stream_muxer.muxer_multistream import MuxerMultistream  # noqa: E402
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID  # noqa: E402
from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream  # noqa: E402
from libp2p.tools.anyio_service import background_trio_service  # noqa: E402
from libp2p.transport.exceptions import OpenConnectionError, UpgradeFailure  # noqa: E402
from libp2p.transport.tcp.tcp import TCP  # noqa: E402
from libp2p.transport.upgrader import TransportUpgrader  # noqa: E402
from libp2p.utils import connection_shutdown  # noqa: E402, F401 - for _logging
from multiaddr import Multiaddr  # noqa: E402

from datanet.p2p import _logging  # noqa: E402
from datanet.p2p import gater as _gater  # noqa: E402
from datanet.p2p.readahead import READ_AHEAD, ReadAhead  # noqa: E402
from identity.keys import KeyPair, PeerId  # noqa: E402

__all__ = [
    "ID",
    "BaseLibp2pError",
    "INotifee",
    "IOException",
    "Identify",
    "IncompleteReadError",
    "Multiaddr",
    "MuxedConnError",
    "MuxedStreamError",
    "Notifee",
    "OpenConnectionError",
    "ParseError",
    "StreamEOF",
    "StreamReset",
    "Swarm",
    "SwarmException",
    "UpgradeFailure",
    "background_trio_service",
    "build_swarm",
    "close_listeners",
    "libp2p_key_pair",
    "peer_id_from_libp2p",
    "to_libp2p_id",
]

_logging.install()


def libp2p_key_pair(key: KeyPair) -> Libp2pKeyPair:
    """Convert datanet's Ed25519 key into py-libp2p's key pair (same seed, same peer id)."""
    private = Ed25519PrivateKey.from_bytes(key.seed())
    return Libp2pKeyPair(private, private.get_public_key())


def to_libp2p_id(peer: PeerId) -> ID:
    """The py-libp2p ``ID`` of a datanet peer id."""
    return ID(peer.to_bytes())


def peer_id_from_libp2p(peer: ID) -> PeerId:
    """The datanet peer id of a py-libp2p ``ID``.

    Raises:
        DecodeError: the peer's key is not Ed25519 (datanet names only Ed25519 peers).
    """
    return PeerId.from_bytes(peer.to_bytes())


class _NeverBlockCache(_NegativePeerCache):
    """py-libp2p blocks every dial to a peer for 60 s after one failed dial.

    A datanet node decides itself when to give up on a peer (the routing table's
    ping-before-evict), and a peer that restarts must be reachable at once.
    """

    def mark_failed(self, peer_id: str) -> None:
        return None

    def is_blocked(self, peer_id: str) -> bool:
        return False


class _IdleAutoConnector(AutoConnector):
    """py-libp2p's auto-connector dials random peerstore peers up to a watermark.

    Who to connect to is the routing layer's decision, so it never starts.
    """

    async def start(self) -> None:
        return None


_log = logging.getLogger("datanet.p2p")
_yamux_log = logging.getLogger("libp2p.stream_muxer.yamux.yamux")
_yamux_module = sys.modules["libp2p.stream_muxer.yamux.yamux"]
_original_window_update = YamuxStream._auto_tune_and_send_window_update


async def _batched_window_update(self: YamuxStream, *, bytes_read: int = 0) -> None:
    """Credit consumed bytes back to the sender in half-window batches (go-yamux).

    py-libp2p 0.8.1 sends a WINDOW_UPDATE whenever a read leaves *any* credit
    to return ("partial slack"), so a stream of small messages costs one extra
    frame (a Noise message, a socket write, a wake-up on both sides) for about
    every second message. Here a read that leaves less than the batch threshold
    to return, with fewer than that many bytes pending, only records the bytes;
    every other case is py-libp2p's own method. The sender's window never runs
    dry: credit is returned once half of it is consumed, as go-yamux does.
    """
    if bytes_read > 0 and not _yamux_module._yamux_release_on_read():
        buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
        delta = self.target_recv_window - (self.recv_window + buffered)
        threshold = self._grow_threshold()
        if delta < threshold and self._pending_recv_release + bytes_read < threshold:
            # no await between the check and the update: atomic under trio
            self._pending_recv_release += bytes_read
            return
    await _original_window_update(self, bytes_read=bytes_read)


YamuxStream._auto_tune_and_send_window_update = _batched_window_update  # type: ignore[method-assign]

#: Seconds between two Yamux RTT pings on a connection (py-libp2p 0.8.1: 30). Every
#: connection pings on its own, so a node with 60 connections sent 2 pings a second
#: and answered as many; at 100 nodes on one machine that was 2-3 % of all CPU. The
#: RTT only tunes receive windows, and the first measurement (0.5 s after the
#: connection opened) is kept.
YAMUX_RTT_INTERVAL = 600
setattr(_yamux_module, "RTT_MEASURE_INTERVAL", YAMUX_RTT_INTERVAL)  # noqa: B010 - untyped module global

#: Seconds between two sweeps of a Yamux connection's closed streams (py-libp2p
#: 0.8.1: 30). Each connection runs its own sweeper; at 200 nodes on one machine
#: (about 20,000 connection ends) their wake-ups alone were about 700 timer
#: expiries a second. A swept stream has been closed for 60 s at least anyway.
YAMUX_SWEEP_INTERVAL = 300.0
setattr(_yamux_module, "_STALE_STREAM_SWEEP_INTERVAL", YAMUX_SWEEP_INTERVAL)  # noqa: B010


_original_write_frame = Yamux._write_frame


def _took(lock: trio.Lock) -> bool:
    """Take ``lock`` if it is free, without the scheduler round ``acquire()`` costs.

    trio's ``Lock.acquire()`` yields to the scheduler even when the lock is free;
    ``acquire_nowait()`` is fair too (it refuses while others wait). Every caller
    does socket I/O next, which yields anyway. False: ``await lock.acquire()``.
    """
    try:
        lock.acquire_nowait()
    except trio.WouldBlock:
        return False
    return True


async def _lean_write_frame(self: Yamux, data: bytes) -> None:
    """Write one yamux frame under the connection's write lock, formatting nothing.

    py-libp2p 0.8.1's ``_write_frame`` unpacks every frame's header and formats
    a DEBUG message (an f-string, built whether or not DEBUG is on), takes its
    write lock through a scheduler round even when the lock is free, then adds a
    scheduler checkpoint after the write although the socket write already
    yields. With the yamux logger at DEBUG, its own method runs unchanged.
    """
    if _yamux_log.isEnabledFor(logging.DEBUG):
        await _original_write_frame(self, data)
        return
    lock = self._write_lock
    if not _took(lock):
        await lock.acquire()
    try:
        await self.secured_conn.write(data)
    finally:
        lock.release()


async def _read_ahead(self: TrioTCPStream, n: int | None = None) -> bytes:
    """``TrioTCPStream.read`` with a read-ahead buffer: one receive, many small reads.

    py-libp2p 0.8.1 reads each Noise message with two receives (its 2-byte length,
    then its body), each through the read lock and a scheduler round. Here one
    receive of up to 64 KiB fills a :class:`~datanet.p2p.readahead.ReadAhead` and
    the reads after it are served from memory. Errors map as py-libp2p's own
    method maps them (a broken socket raises, a locally closed one reads b"").
    """
    if n == 0:
        return b""
    buf: ReadAhead | None = self.__dict__.get("_datanet_read_ahead")
    if buf is None:
        buf = self._datanet_read_ahead = ReadAhead()  # type: ignore[attr-defined]
    if not len(buf):
        lock = self.read_lock
        if not _took(lock):
            await lock.acquire()
        try:
            if not len(buf):  # another reader may have filled it while we waited
                try:
                    data = await self.stream.receive_some(READ_AHEAD)
                except trio.BrokenResourceError as error:
                    raise ConnectionClosedError(
                        f"TCP connection reset by remote peer: {error}", transport="tcp"
                    ) from error
                except trio.ClosedResourceError:
                    return b""
                if not data:
                    return b""
                buf.put(data)
        finally:
            lock.release()
    return buf.take(n)


async def _lean_tcp_write(self: TrioTCPStream, data: bytes) -> None:
    """``TrioTCPStream.write`` without a scheduler round to take a free write lock.

    trio's ``Lock.acquire()`` yields even when the lock is free; the socket send
    yields anyway. Errors map as py-libp2p's own method maps them.
    """
    lock = self.write_lock
    if not _took(lock):
        await lock.acquire()
    try:
        await self.stream.send_all(data)
    except trio.BrokenResourceError as error:
        raise ConnectionClosedError(
            f"TCP connection reset by remote peer: {error}", transport="tcp"
        ) from error
    except trio.ClosedResourceError:
        return  # closed here: py-libp2p ignores the write too
    finally:
        lock.release()


TrioTCPStream.read = _read_ahead  # type: ignore[method-assign]
TrioTCPStream.write = _lean_tcp_write  # type: ignore[method-assign]


# py-libp2p builds its Yamux class by name (MuxerMultistream.new_conn ignores the
# class handed to the upgrader), so a subclass would never run: patch the class.
Yamux._write_frame = _lean_write_frame  # type: ignore[method-assign]


class Notifee(INotifee):
    """Forwards py-libp2p's connection events to two callbacks; never blocks the swarm."""

    def __init__(
        self, connected: Callable[[Any], None], disconnected: Callable[[Any], None]
    ) -> None:
        self._connected = connected
        self._disconnected = disconnected

    async def connected(self, network: Any, conn: Any) -> None:
        self._connected(conn)

    async def disconnected(self, network: Any, conn: Any) -> None:
        self._disconnected(conn)

    async def opened_stream(self, network: Any, stream: Any) -> None:
        return None

    async def closed_stream(self, network: Any, stream: Any) -> None:
        return None

    async def listen(self, network: Any, multiaddr: Any) -> None:
        return None

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        return None


async def close_listeners(swarm: Swarm) -> None:
    """Stop accepting connections, bounded and shielded.

    py-libp2p's ``swarm.close()`` closes the connections before the listeners,
    so peers that redial at once (every plain libp2p node does) keep a shutdown
    busy for seconds; the host calls this first.
    """
    with trio.move_on_after(2) as scope:
        scope.shield = True
        for listener in list(swarm.listeners.values()):
            try:
                await listener.close()
            except Exception as exc:  # noqa: BLE001 - a listener that fails to close is gone
                _log.debug("closing a listener: %s", exc)


def _remote_ip(stream: Any) -> str:
    try:
        address = stream.get_remote_address()
    except Exception:  # noqa: BLE001 - a socket already gone has no address
        address = None
    if not address:
        return "?"
    host = str(address[0])
    return host[7:] if host.startswith("::ffff:") and "." in host else host


async def _close_quietly(closer: Any) -> None:
    with trio.move_on_after(2) as scope:
        scope.shield = True
        try:
            await closer.close()
        except Exception as exc:  # noqa: BLE001 - closing a broken connection may fail
            _log.debug("closing a refused connection: %s", exc)


class _DatanetYamux(Yamux):
    """py-libp2p's Yamux without the leak of a closed stream's wake-up event.

    ``Yamux.read_stream`` waits on ``stream_events[id]`` and then stores a fresh
    event under ``id``; if the stream was finalized meanwhile (reset by the
    peer, or closed both ways), that fresh entry belongs to no stream, and the
    stale-stream sweeper, which walks ``streams`` only, never sees it. Stream
    ids are never reused on a connection, so once a read ends and the stream is
    gone its event can go too.
    """

    async def _read_data_body(self, length: int) -> bytes:
        """A DATA frame's body; without a deadline when Noise already decrypted it.

        py-libp2p 0.8.1 bounds every body read with ``trio.fail_after`` (and reads
        its environment for the bound), one cancel scope per frame. A frame's
        header and body arrive in one Noise message, so the body is nearly
        always in the session's buffer already: that read cannot wait.
        """
        conn = self.secured_conn
        buffered = getattr(conn, "high_watermark", 0) - getattr(conn, "low_watermark", 0)
        if buffered >= length:
            return await read_exactly(conn, length)
        return await super()._read_data_body(length)

    async def read_stream(self, stream_id: int, n: int = -1) -> bytes:
        try:
            return await super().read_stream(stream_id, n)
        finally:
            if stream_id not in self.streams:
                self.stream_events.pop(stream_id, None)


class _DatanetMuxerMultistream(MuxerMultistream):
    """Hands out :class:`_DatanetYamux` connections.

    py-libp2p 0.8.1's ``MuxerMultistream.new_conn`` builds a plain ``Yamux``
    whenever Yamux is negotiated, whatever class the upgrader was given, so the
    connection's class is switched here (the subclass adds no state).
    """

    async def new_conn(self, conn: Any, peer_id: ID) -> Any:
        muxed = await super().new_conn(conn, peer_id)
        if type(muxed) is Yamux:
            muxed.__class__ = _DatanetYamux
        return muxed


class _DatanetSwarm(Swarm):
    """py-libp2p's swarm without the auto-connector (and, see build_swarm, the dial block).

    Inbound connections go through :meth:`_handle_inbound_connection` below,
    not py-libp2p's: its inbound limiter has no per-address limit, counts
    connections still handshaking against the same slots as members, and keeps
    a slot taken until the swarm stops (the handler waits for the swarm, not
    for the connection), so a node that accepted ``max_connections`` inbound
    connections in its life accepts none any more.
    """

    datanet_hooks: _gater.InboundGuard | None = None

    async def _handle_inbound_connection(self, read_write_closer: Any, maddr: Any) -> None:
        hooks = self.datanet_hooks
        if hooks is None:  # pragma: no cover - the host always sets them
            await super()._handle_inbound_connection(read_write_closer, maddr)
            return
        gater = hooks.gater
        ip = _remote_ip(read_write_closer)
        if gater.accept(ip) is not None:
            await _close_quietly(read_write_closer)
            return
        pending = counted = True
        try:
            try:
                muxed: Any = await self.upgrade_inbound_raw_conn(
                    RawConnection(read_write_closer, False), maddr
                )
            except Exception as exc:  # noqa: BLE001 - any failed handshake closes the socket
                message = str(exc)
                if "timeout" in message:
                    gater.count(_gater.HANDSHAKE_TIMEOUT)
                elif "Maximum connections" in message or "max_connections" in message:
                    gater.count(_gater.MAX_CONNECTIONS)
                else:
                    gater.count(_gater.HANDSHAKE_FAILED)
                await _close_quietly(read_write_closer)
                return
            gater.established(ip)
            pending = False
            if await self._watch_inbound(muxed, hooks):
                gater.admitted(ip)  # a member's connection: no longer held against its address
                counted = False
            # Hold the slot until the connection closes. One wait, no polling: a
            # 5 s poll here was ~1,000 timer expiries a second at 100 nodes.
            await muxed.event_closed.wait()
        finally:
            gater.closed(ip, pending=pending, counted=counted)

    async def _watch_inbound(self, muxed: Any, hooks: _gater.InboundGuard) -> bool:
        """Close the connection if its peer is refused, was refused recently, or
        is not admitted in time; True once its peer completed datanet's hello
        and is admitted (the connection no longer counts against its address)."""
        peer = bytes(muxed.peer_id.to_bytes())
        reason = hooks.check_new(peer)
        if reason is None:
            deadline = trio.current_time() + hooks.admission_deadline
            delay = 0.02
            while not muxed.event_closed.is_set():
                if hooks.member(peer):
                    return True
                if trio.current_time() >= deadline:
                    if not hooks.admitted(peer):
                        reason = _gater.ADMISSION_REFUSED
                    break
                with trio.move_on_after(delay):
                    await muxed.event_closed.wait()
                delay = min(delay * 2, 0.25)
        if reason is not None and not muxed.event_closed.is_set():
            hooks.gater.count(reason)
            await self._close_muxed(muxed)
        return False

    async def _close_muxed(self, muxed: Any) -> None:
        for conn in list(self.connections.get(muxed.peer_id, [])):
            if conn.muxed_conn is muxed:
                await _close_quietly(conn)
                return
        await _close_quietly(muxed)

    def _init_connection_management(self) -> None:
        super()._init_connection_management()
        self.auto_connector = _IdleAutoConnector(
            swarm=self, auto_connect_interval=self.connection_config.auto_connect_interval
        )

    def _schedule_auto_connect(self) -> None:
        return None


def build_swarm(
    key: KeyPair,
    *,
    max_connections: int,
    dial_timeout: float,
    upgrade_timeout: float,
    handshake_timeout: float | None = None,
    hooks: _gater.InboundGuard | None = None,
) -> Swarm:
    """Build a swarm over TCP with Noise and Yamux only, identity from ``key``.

    ``dial_peer`` is not used by datanet (the host dials addresses itself, see
    :mod:`datanet.p2p.host`), but the settings below keep it sane if py-libp2p
    calls it internally: no retries with backoff (the caller retries), one
    connection per peer (a success cancels the 250 ms happy-eyeballs wait).
    """
    kp = libp2p_key_pair(key)
    peer = ID.from_pubkey(kp.public_key)
    peerstore = PeerStore()
    peerstore.add_key_pair(peer, kp)
    upgrader = TransportUpgrader(
        secure_transports_by_protocol={
            NOISE_PROTOCOL_ID: NoiseTransport(kp, noise_privkey=_new_x25519().private_key)
        },
        muxer_transports_by_protocol={TProtocol(YAMUX_PROTOCOL_ID): _DatanetYamux},
        negotiate_timeout=max(1, int(upgrade_timeout)),
    )
    upgrader.muxer_multistream = _DatanetMuxerMultistream(
        {TProtocol(YAMUX_PROTOCOL_ID): _DatanetYamux},
        negotiate_timeout=max(1, int(upgrade_timeout)),
    )
    config = ConnectionConfig(
        max_connections=max_connections,
        min_connections=0,
        low_watermark=0,
        high_watermark=max_connections,
        max_connections_per_peer=1,
        dial_timeout=dial_timeout,
        inbound_upgrade_timeout=handshake_timeout or upgrade_timeout,
        outbound_upgrade_timeout=upgrade_timeout,
        outbound_stream_protocol_negotiation_timeout=upgrade_timeout,
        inbound_stream_protocol_negotiation_timeout=upgrade_timeout,
    )
    swarm = _DatanetSwarm(
        peer,
        peerstore,
        upgrader,
        transports=[TCP()],
        retry_config=RetryConfig(max_retries=0),
        connection_config=config,
    )
    swarm._negative_peer_cache = _NeverBlockCache()
    swarm.datanet_hooks = hooks
    return swarm
