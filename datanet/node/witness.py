"""Witnessing on the node: other organizations check our audit log, we check theirs.

:class:`WitnessService` carries out the pure :class:`routing.witness.Witness`:

* our own signed heads (the audit trail's ``on_head``) are announced on
  ``/datanet/audit/1.0.0`` (:class:`~datanet.p2p.audit.AuditTransport`) to the
  peers that witness our log, as far as our routing table knows them (asked
  through ``announce_to``): at most one every :data:`HEAD_ANNOUNCE_INTERVAL`,
  and again soon after start and every :data:`HEAD_REPUBLISH`;
* heads announced to us are verified (:func:`verify_tree_head`: size,
  signature, certificate chain, trust); an invalid one is refused with the
  reason, a valid one is handed to the witness when it is of a log of another
  organization that this node is one of the witnesses of
  (:func:`routing.witness.is_witness`, asked through ``responsible``);
* ``FetchConsistency`` asks the log node for a consistency proof on
  ``/datanet/audit/1.0.0`` (:class:`~datanet.p2p.audit.AuditTransport`) and
  checks it with :func:`verify_consistency`;
* ``Accept`` keeps the head in the :class:`~datanet.store.witness.WitnessStore`,
  cosigns it (:func:`cosign_head`) and hands the cosignature to the log node;
* ``Alarm`` keeps the alarm with its evidence, logs a warning and counts it.

It also serves the protocol from the node's own audit trail: our latest head,
consistency proofs of our log, and witnesses' cosignatures of our heads (each
verified with :func:`verify_cosignature` before the trail keeps it).

Invariants:
* The witness state machine is touched only from trio tasks of this node;
  an announced head only queues work for :meth:`run`.
* A log node that cannot be reached is asked again later (no alarm); a log
  node that answers with a wrong or no proof raises ``bad_proof``.
* Work is bounded: at most :data:`MAX_QUEUE` actions wait, at most
  :data:`MAX_FETCHES` fetches, cosignature deliveries and announcements run at
  once.
* Nothing here raises out of the trail's callback or the run loop for a peer's
  bad input; every refusal names a reason.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import trio

from datanet.errors import DatanetError, NetworkError, NotFound, ScopeError, StorageError
from datanet.p2p import RemoteError
from datanet.p2p.audit import AuditTransport
from datanet.records.audit import (
    TreeHead,
    cosign_head,
    verify_consistency,
    verify_cosignature,
    verify_tree_head,
)
from datanet.store.audit import AuditLog
from datanet.store.witness import WitnessedHead, WitnessStore
from identity.certs import TrustStore
from identity.keys import KeyPair, OrgId, PeerId
from routing.witness import Accept, Alarm, FetchConsistency, SeenHead, Witness, WitnessAction

__all__ = [
    "HEAD_ANNOUNCE_INTERVAL",
    "HEAD_REPUBLISH",
    "MAX_FETCHES",
    "MAX_QUEUE",
    "REPUBLISH_FIRST",
    "AuditTrailLike",
    "WitnessService",
]

log = logging.getLogger("datanet.node.witness")

#: Actions waiting for the run loop at most (more are dropped and counted).
MAX_QUEUE = 1024
#: Fetches and cosignature deliveries in flight at once.
MAX_FETCHES = 16
#: How often our latest head is announced again (witnesses that changed hear it).
HEAD_REPUBLISH = 300.0
#: Our new heads are announced at most this often (the newest of the interval).
HEAD_ANNOUNCE_INTERVAL = 2.0
#: The first republish after start, once the routing table had time to fill.
REPUBLISH_FIRST = 3.0
#: Remote error codes that mean "the log node could not answer now", not "it cannot prove".
_TRANSIENT = frozenset({"timeout", "storage_error", "network_error", "not_found"})


class AuditTrailLike(Protocol):
    """What the witness service needs of the node's audit trail (``datanet.node.audit``)."""

    @property
    def log(self) -> AuditLog:
        """The node's audit log."""
        ...

    def head(self, *, fresh: bool = False) -> bytes:
        """The latest signed head (signing one if entries arrived since)."""
        ...

    def add_cosignature(self, raw: bytes) -> bool:
        """Keep a witness's verified cosignature of one of our heads."""
        ...

    def on_head(self, callback: Callable[[bytes], None]) -> None:
        """Call ``callback`` with every new signed head."""
        ...


AddrsOf = Callable[[PeerId], Awaitable[Sequence[str]]]
AnnounceTo = Callable[[], Sequence[PeerId]]


class WitnessService:
    """Witnesses other organizations' logs and serves ours; see the module docstring.

    Args:
        key: this node's key (it signs cosignatures).
        chain: this node's membership chain (no cosignatures without one).
        org: this node's organization (its own org's logs are not witnessed).
        trust: the trust store heads and cosignatures are verified against.
        store: last heads and alarms.
        transport: ``/datanet/audit/1.0.0``.
        trail: the node's audit trail, if it keeps one (else our log is not served).
        addrs_of: addresses to reach a peer (default: only when connected).
        announce_to: the peers our heads are announced to: those nearest to our
            log's witness key that the routing table knows (default: none).
        responsible: whether this node is one of the witnesses of a log node (its
            binary peer id) whose head was announced to it; default: of every log.
        clock: wall-clock Unix seconds.
    """

    def __init__(
        self,
        *,
        key: KeyPair,
        chain: Sequence[bytes],
        org: OrgId | None,
        trust: TrustStore,
        store: WitnessStore,
        transport: AuditTransport,
        trail: AuditTrailLike | None = None,
        addrs_of: AddrsOf | None = None,
        announce_to: AnnounceTo | None = None,
        responsible: Callable[[bytes], bool] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._chain = tuple(chain)
        self._org = org
        self._trust = trust
        self.store = store
        self._transport = transport
        self._announce_to = announce_to
        self._trail: AuditTrailLike | None = None
        self._addrs_of = addrs_of
        self._responsible = responsible
        self._clock = clock
        restored = [
            SeenHead(
                h.log_node, h.log_org, h.size, h.root, h.timestamp, h.raw, h.from_peer, h.checked_at
            )
            for h in store.heads()
        ]
        self.witness = Witness(
            key.peer_id.to_bytes(), str(org) if org is not None else "", logs=restored
        )
        self._queue: deque[WitnessAction] = deque()
        self._wake = trio.Event()
        self._limit = trio.CapacityLimiter(MAX_FETCHES)
        self._nursery: trio.Nursery | None = None
        self._started = False
        self._pending_head: bytes | None = None
        #: The head announced last, when, and whether any peer took it.
        self._announced: tuple[bytes, float, bool] | None = None
        self._head_ready = trio.Event()
        self.counters: dict[str, int] = {
            "heads_received": 0,
            "heads_not_witnessed": 0,
            "heads_rejected": 0,
            "heads_announced": 0,
            "announce_failed": 0,
            "alarms": 0,
            "accepted": 0,
            "cosigned": 0,
            "cosign_failed": 0,
            "cosignatures_received": 0,
            "fetch_failed": 0,
            "queue_full": 0,
        }
        if trail is not None:
            self.attach(trail)

    # -- wiring ----------------------------------------------------------------

    @property
    def trail(self) -> AuditTrailLike | None:
        """The audit trail whose log this node serves and announces, if attached."""
        return self._trail

    def attach(self, trail: AuditTrailLike) -> None:
        """Serve ``trail``'s log and announce its heads (once; the node's own trail)."""
        if self._trail is not None:
            raise ScopeError("the witness service already serves an audit trail")
        self._trail = trail
        trail.on_head(self._own_head)

    def start(self) -> None:
        """Serve ``/datanet/audit/1.0.0`` (before the node joins)."""
        if self._started:
            return
        self._started = True
        self._transport.serve(self._serve)

    async def run(self) -> None:
        """Carry out the witness's actions until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._republish)
            nursery.start_soon(self._publish_heads)
            while True:
                while self._queue:
                    self._do(self._queue.popleft(), nursery)
                self._enqueue(self.witness.tick(self._clock()))
                if self._queue:
                    continue
                deadline = self.witness.next_deadline()
                wait = 5.0 if deadline is None else max(0.0, min(5.0, deadline - self._clock()))
                with trio.move_on_after(wait):
                    await self._wake.wait()
                self._wake = trio.Event()

    # -- our own heads ---------------------------------------------------------

    def _own_head(self, raw: bytes) -> None:
        """A new head of ours: announce it, at most one every HEAD_ANNOUNCE_INTERVAL.

        An owner signs a head for every receipt it hands out; announcing each would
        make every witness verify and prove each one. The newest wins: it proves
        all the ones before it.
        """
        self._pending_head = raw
        self._head_ready.set()

    async def _publish_heads(self) -> None:
        while True:
            await self._head_ready.wait()
            self._head_ready = trio.Event()
            raw, self._pending_head = self._pending_head, None
            if raw is not None:
                await self.announce(raw)
            await trio.sleep(HEAD_ANNOUNCE_INTERVAL)

    async def announce(self, raw: bytes) -> int:
        """Hand the signed head ``raw`` to the peers that witness our log, at once.

        Each peer decides for itself whether it is one of our witnesses (its
        routing table knows our witness key's neighbourhood best); a head goes to
        a few more peers than witness a log, so that differences between the
        tables lose no witness. Returns how many peers took it (answered at all).
        """
        peers = list(self._announce_to()) if self._announce_to is not None else []
        reached = 0

        async def one(peer: PeerId) -> None:
            nonlocal reached
            async with self._limit:
                try:
                    await self._transport.announce(peer, raw, addrs=await self._addrs(peer))
                except DatanetError as exc:
                    self.counters["announce_failed"] += 1
                    log.debug(
                        "audit head not announced",
                        extra={"kv": {"peer": str(peer), "error": str(exc)[:200]}},
                    )
                else:
                    reached += 1

        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(one, peer)
        self._announced = (raw, self._clock(), reached > 0)
        self.counters["heads_announced"] += 1
        return reached

    def _announced_lately(self, raw: bytes) -> bool:
        """Whether ``raw`` reached a peer less than HEAD_REPUBLISH ago."""
        if self._announced is None:
            return False
        last, at, reached = self._announced
        return reached and last == raw and self._clock() - at < HEAD_REPUBLISH

    async def _republish(self) -> None:
        """Announce our latest head soon after start and every HEAD_REPUBLISH seconds.

        Not when that very head already reached a peer meanwhile: a node's first
        entries are signed at start, and every node of a joining network
        announcing its head twice doubled the witnessing work of a join. Again
        every HEAD_REPUBLISH, because the peers nearest to our witness key change
        as nodes join and leave.
        """
        await trio.sleep(REPUBLISH_FIRST)
        while True:
            trail = self._trail
            if trail is not None:
                try:
                    latest = trail.log.latest_head()
                    if (
                        latest is not None
                        and latest.head.size > 0
                        and not self._announced_lately(latest.raw)
                    ):
                        await self.announce(latest.raw)
                except DatanetError as exc:
                    log.warning(
                        "reading our latest audit head failed", extra={"kv": {"error": str(exc)}}
                    )
            await trio.sleep(HEAD_REPUBLISH)

    # -- heads from the network ------------------------------------------------

    def head_received(self, raw: bytes, from_peer: bytes, *, announced: bool = False) -> bool:
        """Verify a signed head from anywhere and let the witness judge it.

        An ``announced`` head of a log this node is not a witness of is only
        verified. Returns whether the witness took the head up.

        Raises:
            DatanetError: the head is malformed, badly signed, untrusted or from the future.
        """
        now = self._clock()
        verified = verify_tree_head(raw, self._trust, int(now))
        head = verified.head
        responsible = self._responsible
        if announced and responsible is not None and not responsible(head.node.to_bytes()):
            self.counters["heads_not_witnessed"] += 1
            return False
        self._enqueue(
            self.witness.head_seen(
                head.node.to_bytes(),
                str(verified.org),
                head.size,
                head.root,
                head.timestamp,
                raw_head=bytes(raw),
                from_peer=from_peer,
                now=now,
            )
        )
        return True

    async def check(self, peer: PeerId, *, addrs: Sequence[str] = ()) -> None:
        """Ask ``peer`` for its latest head now and witness it (announcements do this on their own).

        Raises:
            DatanetError: the peer could not be asked, or its head is not acceptable.
        """
        raw = await self._transport.head(peer, addrs=addrs)
        self.head_received(raw, peer.to_bytes())

    # -- carrying out actions --------------------------------------------------

    def _enqueue(self, actions: list[WitnessAction]) -> None:
        for action in actions:
            if len(self._queue) >= MAX_QUEUE and not isinstance(action, Alarm):
                self.counters["queue_full"] += 1
                if isinstance(action, FetchConsistency):  # let the witness retry it later
                    self._queue.extend(
                        self.witness.proof_failed(action.log_node, "busy", self._clock())
                    )
                continue
            self._queue.append(action)
        if actions:
            self._wake.set()

    def _do(self, action: WitnessAction, nursery: trio.Nursery) -> None:
        if isinstance(action, FetchConsistency):
            nursery.start_soon(self._fetch, action)
        elif isinstance(action, Accept):
            self._accept(action, nursery)
        else:
            self._alarm(action)

    async def _addrs(self, peer: PeerId) -> Sequence[str]:
        if self._addrs_of is None:
            return ()
        try:
            return await self._addrs_of(peer)
        except DatanetError:
            return ()

    async def _fetch(self, action: FetchConsistency) -> None:
        peer = PeerId.from_bytes(action.log_node)
        async with self._limit:
            try:
                proof = await self._transport.consistency(
                    peer, action.from_size, action.to_size, addrs=await self._addrs(peer)
                )
                verify_consistency(
                    action.from_size, action.to_size, action.from_root, action.to_root, proof
                )
            except RemoteError as exc:
                if exc.remote_code in _TRANSIENT:
                    self._failed(action, str(exc))
                else:  # the log node refused to prove it (a shrunk or rebuilt log)
                    self._result(action, False, f"the log node refused: {exc}")
            except NetworkError as exc:
                self._failed(action, str(exc))
            except DatanetError as exc:  # a malformed answer or a proof that does not hold
                self._result(action, False, str(exc))
            else:
                self._result(action, True, "")

    def _failed(self, action: FetchConsistency, why: str) -> None:
        self.counters["fetch_failed"] += 1
        log.info(
            "audit log node not reachable; will ask again",
            extra={"kv": {"log_node": _peer_text(action.log_node), "error": why[:200]}},
        )
        self._enqueue(self.witness.proof_failed(action.log_node, why, self._clock()))
        self._wake.set()

    def _result(self, action: FetchConsistency, ok: bool, why: str) -> None:
        self._enqueue(self.witness.proof_result(action.log_node, ok, why[:300], self._clock()))
        self._wake.set()

    def _accept(self, action: Accept, nursery: trio.Nursery) -> None:
        head = action.head
        now = self._clock()
        try:
            self.store.put_head(
                WitnessedHead(
                    head.log_node,
                    head.org,
                    head.size,
                    head.root,
                    head.ts,
                    head.raw,
                    head.from_peer,
                    now,
                )
            )
        except DatanetError as exc:
            log.warning("keeping a witnessed head failed", extra={"kv": {"error": str(exc)}})
            return
        self.counters["accepted"] += 1
        if self._chain:
            nursery.start_soon(self._cosign, head)

    async def _cosign(self, head: SeenHead) -> None:
        peer = PeerId.from_bytes(head.log_node)
        async with self._limit:
            try:
                tree = TreeHead(peer, head.size, head.root, head.ts)
                at = max(int(self._clock()), head.ts)
                cosig = cosign_head(tree, self._key, self._chain, at)
                kept = await self._transport.cosign(peer, cosig, addrs=await self._addrs(peer))
                if kept:
                    self.store.mark_cosigned(head.log_node, head.raw)
                    self.counters["cosigned"] += 1
                else:
                    self.counters["cosign_failed"] += 1
            except DatanetError as exc:
                self.counters["cosign_failed"] += 1
                log.info(
                    "cosignature not delivered",
                    extra={"kv": {"log_node": str(peer), "error": str(exc)[:200]}},
                )

    def _alarm(self, alarm: Alarm) -> None:
        self.counters["alarms"] += 1
        log.warning(
            "audit log alarm",
            extra={
                "kv": {
                    "kind": alarm.kind,
                    "log_node": _peer_text(alarm.log_node),
                    "log_org": alarm.org,
                    "detail": alarm.detail,
                }
            },
        )
        try:
            self.store.add_alarm(
                at=self._clock(),
                kind=alarm.kind,
                log_node=alarm.log_node,
                log_org=alarm.org,
                detail=alarm.detail,
                heads=alarm.heads,
            )
        except DatanetError as exc:
            log.exception("keeping an audit alarm failed", extra={"kv": {"error": str(exc)}})

    # -- serving our log ---------------------------------------------------------

    def _own_trail(self) -> AuditTrailLike:
        if self._trail is None:
            raise NotFound("this node keeps no audit log")
        return self._trail

    async def _serve(self, request: dict[str, Any], from_peer: bytes) -> Any:
        op = request["op"]
        if op == "announce":
            return {"ok": self._head_announced(request["head"], from_peer)}
        trail = self._own_trail()
        if op == "head":
            return {"head": trail.head()}
        if op == "consistency":
            return {"proof": trail.log.consistency_proof(request["from"], request["to"])}
        self.counters["cosignatures_received"] += 1
        verified = verify_cosignature(request["cosig"], self._trust, int(self._clock()))
        cosig = verified.cosignature
        if cosig.log != self._key.peer_id:
            raise ScopeError("the cosignature is of another node's log")
        if cosig.witness.to_bytes() != from_peer:
            raise ScopeError("a witness hands over only its own cosignatures")
        return {"ok": bool(trail.add_cosignature(verified.raw))}

    # -- what the node exposes ---------------------------------------------------

    def _head_announced(self, raw: bytes, from_peer: bytes) -> bool:
        """An announced head: verified, and witnessed if this node is a witness of its log.

        Raises:
            DatanetError: the head is refused (the announcer is told why).
        """
        self.counters["heads_received"] += 1
        try:
            return self.head_received(raw, from_peer, announced=True)
        except DatanetError as exc:
            self.counters["heads_rejected"] += 1
            log.info(
                "audit head refused",
                extra={"kv": {"peer": _peer_text(from_peer), "error": str(exc)[:200]}},
            )
            raise

    def alarms(self, limit: int = 100) -> list[dict[str, Any]]:
        """Alarms raised here, newest first (the API's ``audit_alarms`` shape).

        Raises:
            InvalidInput: ``limit`` is out of range.
            StorageError: the store failed.
        """
        return [a.to_json() for a in self.store.alarms(limit)]

    def witnessed(self) -> list[dict[str, Any]]:
        """The last head checked per log, most recently checked first (``audit_witnessed``).

        Raises:
            StorageError: the store failed.
        """
        return [h.to_json() for h in reversed(self.store.heads())]

    def stats(self) -> dict[str, Any]:
        """Counters (JSON-safe)."""
        try:
            alarms = self.store.alarm_count()
        except StorageError:
            alarms = -1
        return {
            **self.counters,
            "logs_followed": len(self.witness),
            "alarms_kept": alarms,
            "machine": dict(self.witness.counters),
        }


def _peer_text(raw: bytes) -> str:
    try:
        return str(PeerId.from_bytes(raw))
    except DatanetError:
        return raw.hex()[:80]
