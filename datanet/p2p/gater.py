"""Who may hold an inbound connection: per-address limits, refusal memory, counters.

A connection flood from one address must never stop a member from joining
(issue 12). py-libp2p 0.8.1 lets every connection that has not finished its
security handshake share the node's inbound slots with no per-address limit,
and it keeps an inbound slot taken until the swarm stops, even after the
connection closed. The swarm built by :mod:`._libp2p` asks a
:class:`ConnectionGater` instead, modelled on go-libp2p's resource manager and
connection gater:

* at most ``pending_per_address`` connections of one IP address handshake at
  once, and ``max_pending_handshakes`` of all addresses, of which
  ``reserved_handshakes`` only member addresses may use;
* at most ``connections_per_address`` connections of one IP address that are
  not (yet) a member's: once the peer completed datanet's hello and is
  admitted, its connection no longer counts (so a hundred honest nodes on one
  machine never hit the limit);
* a handshake has ``handshake_timeout`` (the swarm enforces it);
* a peer refused within ``refused_ttl`` is closed at once on its next
  connection (:class:`RecentlyRefused`).

Every refused or closed connection is counted by reason (:data:`REASONS`).

Invariants:
* Pure bookkeeping: no I/O, no trio; clocks are injected.
* Counters never go negative and every per-address table holds only addresses
  with a live connection (memory is bounded by the live connections).
* :class:`RecentlyRefused` holds at most ``capacity`` peers and forgets each
  after ``ttl`` seconds.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Final

from datanet.p2p.limits import HostLimits
from identity.errors import DecodeError
from identity.keys import PeerId

__all__ = [
    "ADMISSION_REFUSED",
    "HANDSHAKE_FAILED",
    "HANDSHAKE_TIMEOUT",
    "MAX_CONNECTIONS",
    "NOT_ED25519",
    "PENDING_HANDSHAKES",
    "PER_ADDRESS_LIMIT",
    "REASONS",
    "RECENTLY_REFUSED",
    "ConnectionGater",
    "InboundGuard",
    "Members",
    "RecentlyRefused",
]

PER_ADDRESS_LIMIT: Final = "per_address_limit"
"""The address already holds ``connections_per_address`` connections."""
PENDING_HANDSHAKES: Final = "pending_handshakes"
"""Too many handshakes pending, from this address or all together."""
HANDSHAKE_TIMEOUT: Final = "handshake_timeout"
"""The security and muxer handshake did not finish in ``handshake_timeout``."""
HANDSHAKE_FAILED: Final = "handshake_failed"
"""The handshake broke (garbage, no common protocol, the peer hung up)."""
MAX_CONNECTIONS: Final = "max_connections"
"""The node holds ``max_connections`` connections already."""
ADMISSION_REFUSED: Final = "admission_refused"
"""The peer was refused admission, or did not finish it within ``hello_timeout``."""
RECENTLY_REFUSED: Final = "recently_refused"
"""The peer was refused less than ``refused_ttl`` ago."""
NOT_ED25519: Final = "not_ed25519"
"""The peer's key is not Ed25519 (datanet names only Ed25519 peers)."""

REASONS: Final = (
    PER_ADDRESS_LIMIT,
    PENDING_HANDSHAKES,
    HANDSHAKE_TIMEOUT,
    HANDSHAKE_FAILED,
    MAX_CONNECTIONS,
    ADMISSION_REFUSED,
    RECENTLY_REFUSED,
    NOT_ED25519,
)


class ConnectionGater:
    """Per-address bookkeeping of inbound connections (see the module).

    Args:
        limits: the host's limits.
        is_member: whether an IP address belongs to a member (an admitted peer
            is connected from it, or the address book knows it).
    """

    def __init__(self, limits: HostLimits, is_member: Callable[[str], bool]) -> None:
        self._limits = limits
        self._is_member = is_member
        self._pending: Counter[str] = Counter()
        self._conns: Counter[str] = Counter()
        self._total_pending = 0
        self._refused: Counter[str] = Counter()

    def accept(self, ip: str) -> str | None:
        """A connection from ``ip`` arrived: None to start its handshake, else why not.

        An accepted connection counts as pending and as a connection of ``ip``
        until :meth:`established` and :meth:`closed` are called.
        """
        limits = self._limits
        reason: str | None = None
        if self._conns[ip] >= limits.connections_per_address:
            reason = PER_ADDRESS_LIMIT
        else:
            member = self._is_member(ip)
            cap = limits.max_pending_handshakes - (0 if member else limits.reserved_handshakes)
            if self._total_pending >= cap or (
                not member and self._pending[ip] >= limits.pending_per_address
            ):
                reason = PENDING_HANDSHAKES
        if reason is not None:
            self.count(reason)
            self._forget(ip)
            return reason
        self._pending[ip] += 1
        self._conns[ip] += 1
        self._total_pending += 1
        return None

    def established(self, ip: str) -> None:
        """The handshake of a connection from ``ip`` finished."""
        if self._pending[ip] > 0:
            self._pending[ip] -= 1
            self._total_pending -= 1
        self._forget(ip)

    def admitted(self, ip: str) -> None:
        """An established connection from ``ip`` belongs to a member now: it no
        longer counts against ``connections_per_address``."""
        if self._conns[ip] > 0:
            self._conns[ip] -= 1
        self._forget(ip)

    def closed(self, ip: str, *, pending: bool, counted: bool = True) -> None:
        """A connection from ``ip`` accepted earlier is gone.

        Args:
            pending: it closed before its handshake finished.
            counted: it still counted against the address (not :meth:`admitted`).
        """
        if pending:
            self.established(ip)
        if counted:
            self.admitted(ip)
        else:
            self._forget(ip)

    def count(self, reason: str) -> None:
        """Count a connection refused or closed for ``reason``."""
        self._refused[reason] += 1

    def pending(self, ip: str | None = None) -> int:
        """Handshakes pending from ``ip``, or from all addresses."""
        return self._total_pending if ip is None else self._pending[ip]

    def connections(self, ip: str) -> int:
        """Connections accepted from ``ip`` and not (yet) a member's."""
        return self._conns[ip]

    def refused(self) -> Mapping[str, int]:
        """Connections refused or closed so far, by reason (only reasons that occurred)."""
        return dict(self._refused)

    def _forget(self, ip: str) -> None:
        if self._pending[ip] <= 0:
            del self._pending[ip]
        if self._conns[ip] <= 0:
            del self._conns[ip]


class RecentlyRefused:
    """Peers refused recently: bounded, expiring, oldest forgotten first.

    Args:
        ttl: seconds a refusal is remembered.
        capacity: peers remembered at most.
        clock: monotonic seconds (injected for tests).
    """

    def __init__(
        self, ttl: float, capacity: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._capacity = capacity
        self._clock = clock
        self._until: OrderedDict[Hashable, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._until)

    def add(self, peer: Hashable) -> None:
        """Remember that ``peer`` was refused now."""
        self._until.pop(peer, None)
        self._until[peer] = self._clock() + self._ttl
        while len(self._until) > self._capacity:
            self._until.popitem(last=False)

    def __contains__(self, peer: object) -> bool:
        now = self._clock()
        while self._until:
            oldest, until = next(iter(self._until.items()))
            if until > now:
                break
            del self._until[oldest]
        return peer in self._until


def connection_ip(conn: Any) -> str | None:
    """The remote IP of a py-libp2p swarm connection (IPv4-mapped unwrapped), if known."""
    try:
        address = conn.muxed_conn.secured_conn.get_remote_address()
    except Exception:  # noqa: BLE001 - a connection being torn down has no address
        return None
    if not address:
        return None
    host = str(address[0])
    return host[7:] if host.startswith("::ffff:") and "." in host else host


class Members:
    """The IP addresses of members: an admitted peer is connected from it, or its
    address book entry names it. ``ip in members`` is asked for every inbound
    connection, so the set is recomputed at most once per ``refresh`` seconds.

    Args:
        admitted: the swarm connections and known transport addresses of every
            admitted peer.
        clock: seconds (monotonic).
        refresh: seconds between recomputations.
    """

    def __init__(
        self,
        admitted: Callable[[], Iterable[tuple[Sequence[Any], Sequence[str]]]],
        clock: Callable[[], float],
        refresh: float = 1.0,
    ) -> None:
        self._admitted = admitted
        self._clock = clock
        self._refresh = refresh
        self._ips: frozenset[str] = frozenset()
        self._at: float | None = None

    def __contains__(self, ip: object) -> bool:
        now = self._clock()
        if self._at is None or now - self._at >= self._refresh:
            ips: set[str] = set()
            for conns, transports in self._admitted():
                ips.update(a for a in map(connection_ip, conns) if a is not None)
                ips.update(t.split("/")[2] for t in transports if t.count("/") >= 2)
            self._ips = frozenset(ips)
            self._at = now
        return ip in self._ips


class InboundGuard:
    """Everything py-libp2p's swarm asks the host about an inbound connection.

    Args:
        limits: the host's limits.
        gated: whether the network gates its protocols (closed, members).
        admitted: whether a peer is admitted now.
        member: whether a peer completed datanet's hello and is admitted now
            (its connections no longer count against its address).
        members: the swarm connections and known addresses of the admitted peers.
        clock: seconds (monotonic), for :class:`Members`.

    Attributes:
        gater: per-address limits and counters.
        recently_refused: the peers refused within ``refused_ttl``.
        handshake_timeout: time for the security and muxer handshake.
        admission_deadline: time after the handshake by which the peer must be
            admitted, or its connection is closed.
    """

    def __init__(
        self,
        limits: HostLimits,
        *,
        gated: bool,
        admitted: Callable[[PeerId], bool],
        member: Callable[[PeerId], bool],
        members: Callable[[], Iterable[tuple[Sequence[Any], Sequence[str]]]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gated = gated
        self._admitted = admitted
        self._member = member
        self.recently_refused = RecentlyRefused(limits.refused_ttl, limits.max_refused)
        self.gater = ConnectionGater(limits, Members(members, clock).__contains__)
        self.handshake_timeout = limits.handshake_timeout
        self.admission_deadline = limits.hello_timeout * 1.5

    def check_new(self, peer_bytes: bytes) -> str | None:
        """A fresh inbound connection of ``peer_bytes``: why to close it at once, or None."""
        try:
            peer = PeerId.from_bytes(peer_bytes)
        except DecodeError:
            return NOT_ED25519
        if self._gated and peer in self.recently_refused:
            return RECENTLY_REFUSED
        return None

    def admitted(self, peer_bytes: bytes) -> bool:
        """Whether the peer of ``peer_bytes`` is admitted now."""
        try:
            return self._admitted(PeerId.from_bytes(peer_bytes))
        except DecodeError:
            return False

    def member(self, peer_bytes: bytes) -> bool:
        """Whether the peer of ``peer_bytes`` completed datanet's hello and is admitted now."""
        try:
            return self._member(PeerId.from_bytes(peer_bytes))
        except DecodeError:
            return False
