"""Anti-entropy on the node: when and with whom to reconcile the ledger.

Gossip delivers new records within a second to nodes that are up; whatever it
missed (a node that was offline, a partition, a node that just joined) is
repaired by range-based set reconciliation (:mod:`routing.sync`, carried by
:class:`datanet.p2p.sync.SyncService`). :class:`AntiEntropy` decides when:

* right after the node joined: with one connected peer, then with
  ``join_peers - 1`` more at once (a new or restarted node is complete within
  seconds, and fetches each missing record once);
* then every ``interval`` seconds with one random connected peer, so two nodes
  that drifted apart converge without anyone noticing;
* on demand (``datanet catalog sync``).

A peer whose session fails because it sent records that do not verify
(:class:`~datanet.errors.PeerSentJunk`) is disconnected, so it cannot feed junk
again at once; any other failure (a busy peer refusing, a dropped stream) only
counts as failed.

Invariants:
* At most one session per peer at a time, and at most ``join_peers`` at once.
* A failed session is logged and counted, never raised out of the background task.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from datanet.errors import DatanetError, InvalidInput, PeerSentJunk
from datanet.node.ledger import Ledger
from datanet.p2p.sync import SyncResult, SyncService
from identity.keys import PeerId
from routing.gossip.router import ValidationResult
from routing.sync import SyncIndex

__all__ = ["AntiEntropy", "LedgerBackend"]

log = logging.getLogger("datanet.node.sync")

SYNC_INTERVAL = 60.0
JOIN_PEERS = 3


class LedgerBackend:
    """The ledger seen as a :class:`datanet.p2p.sync.SyncBackend`."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def sync_index(self) -> SyncIndex:
        return self._ledger.sync_index()

    def records_by_id(self, ids: Sequence[bytes]) -> list[bytes]:
        return self._ledger.records_by_id(ids)

    async def ingest(self, raws: Sequence[bytes], from_peer: PeerId) -> tuple[int, int]:
        results = [
            i.result for i in self._ledger.ingest_batch(raws, from_peer=from_peer.to_bytes())
        ]
        await trio.lowlevel.checkpoint()
        return results.count(ValidationResult.ACCEPT), results.count(ValidationResult.REJECT)


class AntiEntropy:
    """Schedules reconciliation sessions; see the module docstring.

    Args:
        service: the sync protocol service.
        peers: the currently connected peers (datanet peers that may serve sync).
        disconnect: cuts a peer off (after junk).
        interval: seconds between periodic sessions.
        join_peers: peers reconciled with at once after joining.
        rng: picks peers.
    """

    def __init__(
        self,
        service: SyncService,
        *,
        peers: Callable[[], Sequence[PeerId]],
        disconnect: Callable[[PeerId], Awaitable[None]],
        interval: float = SYNC_INTERVAL,
        join_peers: int = JOIN_PEERS,
        rng: random.Random | None = None,
    ) -> None:
        self._service = service
        self._peers = peers
        self._disconnect = disconnect
        self.interval = interval
        self.join_peers = join_peers
        self._rng = rng or random.Random()
        self._busy: set[PeerId] = set()
        self.last: dict[str, Any] | None = None
        self.counters = {"sessions": 0, "failed": 0, "received": 0, "sent": 0, "cut_off": 0}

    async def sync_with(self, peer: PeerId) -> SyncResult:
        """One session with ``peer`` (raises on failure; cuts the peer off after junk)."""
        if peer in self._busy:
            raise InvalidInput(f"a sync session with {peer} is already running")
        self._busy.add(peer)
        started = time.time()
        try:
            result = await self._service.sync_with(peer)
        except PeerSentJunk as exc:
            # Only junk cuts a peer off: a busy peer refusing a session, or one that
            # went away mid-session, is an honest peer and is just tried again later.
            self.counters["failed"] += 1
            self.counters["cut_off"] += 1
            log.warning("sync peer cut off", extra={"kv": {"peer": str(peer), "error": str(exc)}})
            await self._disconnect(peer)
            raise
        except DatanetError:
            self.counters["failed"] += 1
            raise
        finally:
            self._busy.discard(peer)
        self.counters["sessions"] += 1
        self.counters["received"] += result.accepted
        self.counters["sent"] += result.sent
        self.last = {"peer": str(peer), "at": started, **_result_json(result)}
        return result

    async def sync_some(self, count: int, peer: PeerId | None = None) -> list[dict[str, Any]]:
        """Reconcile with ``peer``, or with ``count`` random connected peers at once.

        Returns one JSON-safe summary per peer (failures say why).
        """
        if peer is not None:
            chosen = [peer]
        else:
            candidates = [p for p in self._peers() if p not in self._busy]
            chosen = self._rng.sample(candidates, min(count, len(candidates)))
        out: list[dict[str, Any]] = []

        async def one(p: PeerId) -> None:
            try:
                result = await self.sync_with(p)
            except DatanetError as exc:
                out.append({"peer": str(p), "ok": False, "error": str(exc), "code": exc.code})
            else:
                out.append({"peer": str(p), "ok": True, **_result_json(result)})

        async with trio.open_nursery() as nursery:
            for p in chosen:
                nursery.start_soon(one, p)
        return out

    async def run(self) -> None:
        """Sync with ``join_peers`` peers now, then one every ``interval`` (until cancelled)."""
        # One peer first: a new node lacks everything, and sessions run at once
        # would each fetch and verify the whole catalog; the others then only
        # repair what that peer itself lacked.
        results = await self.sync_some(1)
        if self.join_peers > 1:
            results += await self.sync_some(self.join_peers - 1)
        log.info("join sync", extra={"kv": {"sessions": len(results)}})
        while True:
            # Jitter keeps a network that started together from syncing in lockstep.
            await trio.sleep(self.interval * (0.75 + self._rng.random() / 2))
            await self.sync_some(1)

    def stats(self) -> dict[str, Any]:
        """Counters and the last session (JSON-safe)."""
        return {**self.counters, "interval_seconds": self.interval, "last": self.last}


def _result_json(result: SyncResult) -> dict[str, Any]:
    return {
        "rounds": result.rounds,
        "have": result.have,
        "need": result.need,
        "received": result.received,
        "accepted": result.accepted,
        "rejected": result.rejected,
        "sent": result.sent,
        "bytes_sent": result.bytes_sent,
        "bytes_received": result.bytes_received,
        "seconds": round(result.seconds, 4),
    }
