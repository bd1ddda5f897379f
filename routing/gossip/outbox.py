"""Per-peer outgoing queues of a GossipSub router, cut into RPCs within the wire limits.

The router queues what each peer should get (subscriptions, messages, control)
while it handles events; :meth:`Outbox.flush` turns each peer's queue into as
few :class:`~routing.gossip.wire.RPC` frames as the
:class:`~routing.gossip.wire.GossipWireLimits` allow.

Invariants:
* Every RPC returned encodes within the limits, provided each queued IHAVE and
  IWANT carries at most the per-RPC id limit and each message's data at most
  ``max_message_size`` (the router guarantees both).
* Queue order is kept: peers in first-queued order, items in queued order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from routing.gossip.wire import (
    RPC,
    GossipWireLimits,
    Graft,
    IHave,
    IWant,
    Prune,
    PubMessage,
    SubOpts,
)

__all__ = ["Outbox"]

T = TypeVar("T", IHave, IWant)

_MSG_OVERHEAD = 16
_ID_OVERHEAD = 3
_ENTRY_OVERHEAD = 8


@dataclass
class _Queue:
    subs: list[SubOpts] = field(default_factory=list)
    msgs: list[PubMessage] = field(default_factory=list)
    ihave: list[IHave] = field(default_factory=list)
    iwant: list[IWant] = field(default_factory=list)
    graft: list[Graft] = field(default_factory=list)
    prune: list[Prune] = field(default_factory=list)


def _take_ids(
    items: list[T], start: int, max_entries: int, max_ids: int
) -> tuple[list[T], int, int]:
    """Take entries from ``start`` while within both bounds: (taken, new start, id bytes)."""
    taken: list[T] = []
    ids = 0
    size = 0
    i = start
    while i < len(items) and len(taken) < max_entries:
        n = len(items[i].message_ids)
        if taken and ids + n > max_ids:
            break
        taken.append(items[i])
        ids += n
        size += sum(len(m) + _ID_OVERHEAD for m in items[i].message_ids) + _ENTRY_OVERHEAD
        size += len(getattr(items[i], "topic", "").encode("utf-8"))
        i += 1
    return taken, i, size


class Outbox:
    """What each peer is due to receive (see the module docstring)."""

    def __init__(self, limits: GossipWireLimits) -> None:
        """Start empty."""
        self.limits = limits
        self._queues: dict[bytes, _Queue] = {}

    def __bool__(self) -> bool:
        """Whether anything is queued."""
        return bool(self._queues)

    def _q(self, peer: bytes) -> _Queue:
        q = self._queues.get(peer)
        if q is None:
            q = self._queues[peer] = _Queue()
        return q

    def sub(self, peer: bytes, item: SubOpts) -> None:
        """Queue a subscription change for ``peer``."""
        self._q(peer).subs.append(item)

    def msg(self, peer: bytes, item: PubMessage) -> None:
        """Queue a full message for ``peer``."""
        self._q(peer).msgs.append(item)

    def ihave(self, peer: bytes, item: IHave) -> None:
        """Queue an IHAVE for ``peer``."""
        self._q(peer).ihave.append(item)

    def iwant(self, peer: bytes, item: IWant) -> None:
        """Queue an IWANT for ``peer``."""
        self._q(peer).iwant.append(item)

    def graft(self, peer: bytes, item: Graft) -> None:
        """Queue a GRAFT for ``peer``."""
        self._q(peer).graft.append(item)

    def prune(self, peer: bytes, item: Prune) -> None:
        """Queue a PRUNE for ``peer``."""
        self._q(peer).prune.append(item)

    def drop(self, peer: bytes) -> None:
        """Forget everything queued for ``peer`` (it disconnected)."""
        self._queues.pop(peer, None)

    def flush(self) -> list[tuple[bytes, RPC]]:
        """Return every queued item as (peer, RPC) pairs and empty the queues."""
        out: list[tuple[bytes, RPC]] = []
        for peer, q in self._queues.items():
            out.extend((peer, rpc) for rpc in self._split(q))
        self._queues.clear()
        return out

    def _split(self, q: _Queue) -> list[RPC]:
        lim = self.limits
        rpcs: list[RPC] = []
        i_sub = i_msg = i_ih = i_iw = i_gr = i_pr = 0
        while (
            i_sub < len(q.subs)
            or i_msg < len(q.msgs)
            or i_ih < len(q.ihave)
            or i_iw < len(q.iwant)
            or i_gr < len(q.graft)
            or i_pr < len(q.prune)
        ):
            subs = q.subs[i_sub : i_sub + lim.max_subscriptions]
            i_sub += len(subs)
            grafts = q.graft[i_gr : i_gr + lim.max_control]
            i_gr += len(grafts)
            prunes = q.prune[i_pr : i_pr + lim.max_control]
            i_pr += len(prunes)
            ihave, i_ih, ih_size = _take_ids(q.ihave, i_ih, lim.max_control, lim.max_ihave_ids)
            iwant, i_iw, iw_size = _take_ids(q.iwant, i_iw, lim.max_control, lim.max_iwant_ids)
            used = ih_size + iw_size + 1024
            used += sum(len(s.topic.encode("utf-8")) + _ENTRY_OVERHEAD for s in subs)
            used += sum(len(g.topic.encode("utf-8")) + _ENTRY_OVERHEAD for g in grafts)
            used += sum(
                len(p.topic.encode("utf-8"))
                + 16
                + sum(
                    len(x.peer_id) + len(x.signed_peer_record or b"") + 2 * _ENTRY_OVERHEAD
                    for x in p.peers
                )
                for p in prunes
            )
            budget = lim.max_rpc_size - used
            msgs: list[PubMessage] = []
            while i_msg < len(q.msgs) and len(msgs) < lim.max_messages:
                m = q.msgs[i_msg]
                cost = len(m.data) + len(m.topic.encode("utf-8")) + _MSG_OVERHEAD
                if msgs and cost > budget:
                    break
                msgs.append(m)
                budget -= cost
                i_msg += 1
            rpcs.append(
                RPC(
                    subscriptions=tuple(subs),
                    publish=tuple(msgs),
                    ihave=tuple(ihave),
                    iwant=tuple(iwant),
                    graft=tuple(grafts),
                    prune=tuple(prunes),
                )
            )
        return rpcs
