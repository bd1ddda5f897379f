"""Catalog anti-entropy on ``/datanet/catalog-sync/1.0.0``: reconcile, fetch, push.

One session is one stream, opened by the initiator (:meth:`SyncService.sync_with`):

1. **reconcile** - ``[0, message]`` frames both ways, driven by
   :class:`routing.sync.Reconciler` over the backend's live :class:`SyncIndex`,
   until the initiator knows ``have_ids`` (it has, the peer lacks) and
   ``need_ids`` (the peer has, it lacks);
2. **fetch** - ``[1, [id, …]]`` asks for at most ``records_per_batch`` records;
   the answer ``[2, [raw, …], consumed]`` carries the ones the responder holds,
   within one frame (``consumed``: how many of the asked ids it dealt with; the
   initiator asks again for the rest). Every record must hash (sha256) to an id
   that was asked for; the backend's ``ingest`` validates it;
3. **push** - ``[3, [raw, …]]`` sends our records the peer lacks, answered by
   ``[4, accepted, rejected]`` once the peer's backend has ingested them;
4. ``[5]`` ends the session; both sides close.

Every frame is a varint length-prefixed MessagePack array (:class:`FramedStream`).

Invariants:
* Frames are at most ``limits.frame`` bytes both ways; reconciliation takes at
  most ``limits.rounds`` round trips; a session moves at most
  ``limits.max_records_per_session`` records each way and lasts at most
  ``limits.total_timeout`` (each read at most ``limits.idle_timeout``).
* At most ``limits.max_concurrent_inbound`` inbound sessions run at once (one
  per peer); extra streams are reset at once.
* A junk frame, an out-of-order frame, a record nobody asked for, or more than
  ``limits.max_rejected`` records rejected by the backend ends the session: the
  inbound side resets the stream, the initiator resets it and raises
  :class:`~datanet.errors.RemoteProtocolError` (so the node can cut the peer off).
* The service uses only the host's service surface (:class:`~.service.ServiceHost`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import trio

from datanet.errors import DatanetError, InvalidInput, PeerSentJunk, RemoteProtocolError
from datanet.p2p._errors import translate
from datanet.p2p.addrs import as_peer
from datanet.p2p.streams import FramedStream
from identity.encoding import pack, unpack
from identity.errors import DecodeError
from identity.keys import PeerId
from routing.sync import ID_SIZE, MIN_FRAME_SIZE, Reconciler, SyncIndex

if TYPE_CHECKING:
    from datanet.p2p.service import ServiceHost

__all__ = ["SYNC_PROTOCOL", "SyncBackend", "SyncLimits", "SyncResult", "SyncService"]

SYNC_PROTOCOL = "/datanet/catalog-sync/1.0.0"

log = logging.getLogger("datanet.p2p.sync")

_REC, _GET, _RECORDS, _PUT, _ACK, _END = 0, 1, 2, 3, 4, 5
_ENVELOPE = 64  # MessagePack overhead around a reconciliation message or a record list


class SyncBackend(Protocol):
    """What the sync service needs of the node: its set, its records, its ingest."""

    def sync_index(self) -> SyncIndex:
        """The live set (read while reconciling)."""
        ...

    def records_by_id(self, ids: Sequence[bytes]) -> list[bytes]:
        """Raw signed bytes of the ids we hold (missing ones skipped)."""
        ...

    async def ingest(self, raws: Sequence[bytes], from_peer: PeerId) -> tuple[int, int]:
        """Validate and store records from ``from_peer``: (accepted, rejected)."""
        ...


@dataclass(frozen=True)
class SyncLimits:
    """Bounds of sync sessions (bytes, counts, seconds).

    Attributes:
        frame: largest frame either way (MessagePack payload).
        rounds: most reconciliation round trips.
        records_per_batch: most records asked for or pushed in one frame.
        total_timeout: a whole session, dialling included.
        idle_timeout: waiting for any one frame.
        max_concurrent_inbound: inbound sessions served at once (one per peer).
        max_records_per_session: records fetched, and records pushed, per session.
        max_rejected: records the backend may reject in one session before it
            is ended as junk (expired or superseded records are legitimate).
    """

    frame: int = 256 * 1024
    rounds: int = 32
    records_per_batch: int = 256
    total_timeout: float = 60.0
    idle_timeout: float = 10.0
    max_concurrent_inbound: int = 4
    max_records_per_session: int = 200_000
    max_rejected: int = 16

    def __post_init__(self) -> None:
        if self.frame < 2 * MIN_FRAME_SIZE:
            raise InvalidInput(f"SyncLimits.frame must be at least {2 * MIN_FRAME_SIZE}")
        for name in ("rounds", "records_per_batch", "max_concurrent_inbound"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"SyncLimits.{name} must be at least 1")
        for name in ("max_records_per_session", "max_rejected"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"SyncLimits.{name} must not be negative")
        for name in ("total_timeout", "idle_timeout"):
            if not getattr(self, name) > 0:
                raise InvalidInput(f"SyncLimits.{name} must be positive")


@dataclass(frozen=True)
class SyncResult:
    """What one session did (counts of records and bytes, as seen by the initiator).

    Attributes:
        peer: the peer.
        rounds: reconciliation round trips.
        have: records we held that the peer lacked.
        need: records the peer held that we lacked.
        received: records fetched from the peer.
        accepted, rejected: what our backend said of them.
        sent: records pushed to the peer.
        bytes_sent, bytes_received: every frame payload, records included.
        seconds: the session's duration.
    """

    peer: PeerId
    rounds: int
    have: int
    need: int
    received: int
    accepted: int
    rejected: int
    sent: int
    bytes_sent: int
    bytes_received: int
    seconds: float


class _Session:
    """One stream's frames with their limits, timeouts and byte counts."""

    __slots__ = ("bytes_in", "bytes_out", "limits", "stream")

    def __init__(self, stream: FramedStream, limits: SyncLimits) -> None:
        self.stream = stream
        self.limits = limits
        self.bytes_in = 0
        self.bytes_out = 0

    async def send(self, obj: list[Any]) -> None:
        payload = pack(obj)
        with translate(self.stream.what), trio.fail_after(self.limits.idle_timeout):
            await self.stream.write_frame(payload, self.limits.frame)
        self.bytes_out += len(payload)

    async def receive(self, *, end_ok: bool = False) -> list[Any] | None:
        limits = self.limits
        with translate(self.stream.what), trio.fail_after(limits.idle_timeout):
            frame = await self.stream.read_frame(limits.frame)
        if frame is None:
            if end_ok:
                return None
            raise RemoteProtocolError(f"{self.stream.what}: the peer ended the session early")
        self.bytes_in += len(frame)
        try:
            obj = unpack(frame, max_size=limits.frame, max_items=limits.records_per_batch + 4)
        except DecodeError as exc:
            raise RemoteProtocolError(f"{self.stream.what}: undecodable frame: {exc}") from None
        if not isinstance(obj, list) or not obj or not isinstance(obj[0], int):
            raise RemoteProtocolError(f"{self.stream.what}: a frame is [kind, …]")
        return obj


def _bytes_list(value: Any, *, width: int | None, what: str) -> list[bytes]:
    if not isinstance(value, list) or not all(isinstance(v, bytes) for v in value):
        raise RemoteProtocolError(f"{what}: expected a list of byte strings")
    if width is not None and any(len(v) != width for v in value):
        raise RemoteProtocolError(f"{what}: ids are {width} bytes")
    return value


def _fit(raws: Sequence[bytes], budget: int) -> int:
    """How many of ``raws`` (in order) fit in a frame of ``budget`` bytes."""
    used = _ENVELOPE
    for n, raw in enumerate(raws):
        used += len(raw) + 5
        if used > budget:
            return n
    return len(raws)


class SyncService:
    """Client and server of ``/datanet/catalog-sync/1.0.0`` on one host.

    Args:
        host: the host's service surface; the (gated) handler is registered here.
        backend: the node's set, records and ingest.
        limits: the session bounds.
    """

    def __init__(
        self, host: ServiceHost, backend: SyncBackend, *, limits: SyncLimits = SyncLimits()
    ) -> None:
        self._host = host
        self._backend = backend
        self.limits = limits
        self._inbound: set[PeerId] = set()
        self._stats: dict[str, int] = dict.fromkeys(
            (
                "sessions_out",
                "sessions_out_failed",
                "sessions_in",
                "sessions_in_failed",
                "sessions_in_refused",
                "records_fetched",
                "records_pushed",
                "records_served",
                "records_received_by_push",
                "records_rejected",
                "bytes_sent",
                "bytes_received",
            ),
            0,
        )
        host.set_stream_handler(SYNC_PROTOCOL, self._serve, gated=True)

    def stats(self) -> dict[str, int]:
        """Counters since the service started (a copy)."""
        return dict(self._stats)

    def _reconciler(self) -> Reconciler:
        return Reconciler(
            self._backend.sync_index(),
            frame_size_limit=self.limits.frame - _ENVELOPE,
            max_rounds=self.limits.rounds,
        )

    # ------------------------------------------------------------------ client

    async def sync_with(self, peer: PeerId | bytes, *, addrs: Sequence[str] = ()) -> SyncResult:
        """Reconcile with ``peer``, fetch what we lack, push what it lacks.

        Raises:
            RemoteProtocolError: the peer broke the protocol, sent records we did
                not ask for, or more than ``limits.max_rejected`` invalid ones.
            Timeout: the session overran ``limits.total_timeout`` or a frame
                ``limits.idle_timeout``.
            PeerUnreachable, AdmissionRefused, ProtocolNotSupported, NetworkError.
        """
        peer = as_peer(peer)
        limits = self.limits
        started = trio.current_time()
        self._stats["sessions_out"] += 1
        what = f"sync with {peer}"
        session: _Session | None = None
        try:
            with translate(what), trio.fail_after(limits.total_timeout):
                stream = await self._host.open_stream(
                    peer, SYNC_PROTOCOL, timeout=limits.total_timeout, addrs=addrs
                )
                session = _Session(stream, limits)
                try:
                    result = await self._initiate(session, peer, started)
                except BaseException:
                    with trio.CancelScope(shield=True):
                        await stream.reset()
                    raise
                await stream.close()
                return result
        except DatanetError:
            self._stats["sessions_out_failed"] += 1
            raise
        finally:
            if session is not None:
                self._stats["bytes_sent"] += session.bytes_out
                self._stats["bytes_received"] += session.bytes_in

    async def _initiate(self, session: _Session, peer: PeerId, started: float) -> SyncResult:
        limits = self.limits
        what = session.stream.what
        reconciler = self._reconciler()
        message: bytes | None = reconciler.initiate()
        while message is not None:
            await session.send([_REC, message])
            reply = await session.receive()
            assert reply is not None
            if reply[0] != _REC or len(reply) != 2 or not isinstance(reply[1], bytes):
                raise RemoteProtocolError(f"{what}: expected a reconciliation frame")
            try:
                message = reconciler.reconcile(reply[1])
            except DatanetError as exc:
                raise RemoteProtocolError(f"{what}: {exc}") from None
        need = sorted(reconciler.need_ids)[: limits.max_records_per_session]
        have = sorted(reconciler.have_ids)[: limits.max_records_per_session]
        received, accepted, rejected = await self._fetch(session, peer, need)
        sent = await self._push(session, have)
        await session.send([_END])
        return SyncResult(
            peer=peer,
            rounds=reconciler.rounds,
            have=len(reconciler.have_ids),
            need=len(reconciler.need_ids),
            received=received,
            accepted=accepted,
            rejected=rejected,
            sent=sent,
            bytes_sent=session.bytes_out,
            bytes_received=session.bytes_in,
            seconds=trio.current_time() - started,
        )

    async def _fetch(
        self, session: _Session, peer: PeerId, need: list[bytes]
    ) -> tuple[int, int, int]:
        limits = self.limits
        what = session.stream.what
        received = accepted = rejected = 0
        at = 0
        while at < len(need):
            asked = need[at : at + limits.records_per_batch]
            await session.send([_GET, asked])
            reply = await session.receive()
            assert reply is not None
            if reply[0] != _RECORDS or len(reply) != 3 or not isinstance(reply[2], int):
                raise RemoteProtocolError(f"{what}: expected records")
            raws = _bytes_list(reply[1], width=None, what=what)
            consumed = reply[2]
            if not 1 <= consumed <= len(asked) or len(raws) > consumed:
                raise RemoteProtocolError(f"{what}: a records frame answers 1..{len(asked)} ids")
            wanted = set(asked[:consumed])
            for raw in raws:
                digest = hashlib.sha256(raw).digest()
                if digest not in wanted:
                    raise RemoteProtocolError(f"{what}: the peer sent a record we did not ask for")
                wanted.discard(digest)
            at += consumed
            received += len(raws)
            if raws:
                ok, bad = await self._backend.ingest(raws, peer)
                accepted += ok
                rejected += bad
                self._stats["records_fetched"] += len(raws)
                self._stats["records_rejected"] += bad
                if rejected > limits.max_rejected:
                    raise PeerSentJunk(
                        f"{what}: the peer sent {rejected} invalid records; session ended"
                    )
        return received, accepted, rejected

    async def _push(self, session: _Session, have: list[bytes]) -> int:
        limits = self.limits
        what = session.stream.what
        sent = 0
        at = 0
        while at < len(have):
            raws = self._backend.records_by_id(have[at : at + limits.records_per_batch])
            at += limits.records_per_batch
            while raws:
                n = _fit(raws, limits.frame)
                if n == 0:  # a record larger than a frame: never sent
                    raws = raws[1:]
                    continue
                batch, raws = raws[:n], raws[n:]
                await session.send([_PUT, batch])
                self._stats["records_pushed"] += len(batch)
                reply = await session.receive()
                assert reply is not None
                if (
                    reply[0] != _ACK
                    or len(reply) != 3
                    or not all(isinstance(v, int) and v >= 0 for v in reply[1:])
                ):
                    raise RemoteProtocolError(f"{what}: expected an acknowledgement")
                sent += len(batch)
        return sent

    # ------------------------------------------------------------------ server

    async def _serve(self, stream: FramedStream, peer: PeerId) -> None:
        limits = self.limits
        if len(self._inbound) >= limits.max_concurrent_inbound or peer in self._inbound:
            self._stats["sessions_in_refused"] += 1
            await stream.reset()
            return
        self._inbound.add(peer)
        self._stats["sessions_in"] += 1
        session = _Session(stream, limits)
        try:
            with trio.fail_after(limits.total_timeout):
                await self._respond(session, peer)
        except (DatanetError, trio.TooSlowError) as exc:
            self._stats["sessions_in_failed"] += 1
            log.info("sync session from %s ended: %s", peer, exc)
            await stream.reset()
            return
        finally:
            self._inbound.discard(peer)
            self._stats["bytes_sent"] += session.bytes_out
            self._stats["bytes_received"] += session.bytes_in
        await stream.close()

    async def _respond(self, session: _Session, peer: PeerId) -> None:
        limits = self.limits
        what = session.stream.what
        reconciler = self._reconciler()
        served = pushed = rejected = 0
        while True:
            frame = await session.receive(end_ok=True)
            if frame is None or frame[0] == _END:
                return
            kind = frame[0]
            if kind == _REC and len(frame) == 2 and isinstance(frame[1], bytes):
                try:
                    answer = reconciler.reconcile(frame[1])
                except DatanetError as exc:
                    raise RemoteProtocolError(f"{what}: {exc}") from None
                assert answer is not None  # the responder always answers
                await session.send([_REC, answer])
            elif kind == _GET and len(frame) == 2:
                ids = _bytes_list(frame[1], width=ID_SIZE, what=what)
                if not ids or len(ids) > limits.records_per_batch:
                    raise RemoteProtocolError(f"{what}: ask for 1..{limits.records_per_batch} ids")
                if served + len(ids) > limits.max_records_per_session:
                    raise RemoteProtocolError(f"{what}: too many records in one session")
                consumed, raws = self._records_for(ids)
                served += consumed
                self._stats["records_served"] += len(raws)
                await session.send([_RECORDS, raws, consumed])
            elif kind == _PUT and len(frame) == 2:
                raws = _bytes_list(frame[1], width=None, what=what)
                if not raws:
                    raise RemoteProtocolError(f"{what}: an empty push")
                pushed += len(raws)
                if pushed > limits.max_records_per_session:
                    raise RemoteProtocolError(f"{what}: too many records in one session")
                ok, bad = await self._backend.ingest(raws, peer)
                rejected += bad
                self._stats["records_received_by_push"] += len(raws)
                self._stats["records_rejected"] += bad
                if rejected > limits.max_rejected:
                    raise RemoteProtocolError(
                        f"{what}: the peer pushed {rejected} invalid records; session ended"
                    )
                await session.send([_ACK, ok, bad])
            else:
                raise RemoteProtocolError(f"{what}: unexpected frame kind {kind}")

    def _records_for(self, ids: list[bytes]) -> tuple[int, list[bytes]]:
        """The records of ``ids`` that fit in one frame: (ids dealt with, records)."""
        budget = self.limits.frame
        used = _ENVELOPE
        held = {hashlib.sha256(raw).digest(): raw for raw in self._backend.records_by_id(ids)}
        raws: list[bytes] = []
        consumed = 0
        for id_ in ids:
            raw = held.get(id_)
            if raw is not None and used + len(raw) + 5 > budget:
                if consumed == 0:  # larger than any frame: skip it
                    consumed = 1
                break
            if raw is not None:
                used += len(raw) + 5
                raws.append(raw)
            consumed += 1
        return consumed, raws
