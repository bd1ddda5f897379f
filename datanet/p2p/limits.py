"""The limits and timeouts of a host (:class:`HostLimits`).

Every inbound stream, outbound request and dial is bounded by one of these; the
defaults are documented in ``docs/p2p.md`` and are part of datanet's behaviour.

Invariants:
* Counts are at least 1 and timeouts positive (checked on construction).
* Frozen: a running host's limits never change.
"""

from __future__ import annotations

from dataclasses import dataclass

from datanet.errors import InvalidInput

__all__ = ["HostLimits"]


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
        handshake_timeout: time an inbound connection has to finish its
            security and muxer handshake (Noise, Yamux) before it is closed.
        max_pending_handshakes: inbound connections handshaking at once, all
            addresses together.
        reserved_handshakes: of those, slots only member addresses may use
            (the address of an admitted peer, or one in the address book).
        pending_per_address: inbound connections handshaking at once from one
            IP address that is not a member address.
        connections_per_address: inbound connections from one IP address
            that are not (yet) a member's: a connection stops counting once its
            peer completed datanet's hello and is admitted.
        refused_ttl: the next connections of a peer refused on its hello (no
            or a bad certificate, not a member, revoked; never a timeout)
            within this time are closed at once, without a new admission exchange.
        max_refused: refused peers remembered (the oldest are forgotten).
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
    handshake_timeout: float = 3.0
    max_pending_handshakes: int = 64
    reserved_handshakes: int = 16
    pending_per_address: int = 8
    connections_per_address: int = 64
    refused_ttl: float = 30.0
    max_refused: int = 1024

    def __post_init__(self) -> None:
        for name in (
            "max_connections",
            "inbound_streams_per_peer",
            "negotiating_per_peer",
            "max_pending_handshakes",
            "pending_per_address",
            "connections_per_address",
            "max_refused",
        ):
            if getattr(self, name) < 1:
                raise InvalidInput(f"HostLimits.{name} must be at least 1")
        for name in (
            "request_timeout",
            "dial_timeout",
            "hello_timeout",
            "negotiate_timeout",
            "handler_timeout",
            "kad_idle_timeout",
            "handshake_timeout",
            "refused_ttl",
        ):
            if not getattr(self, name) > 0:
                raise InvalidInput(f"HostLimits.{name} must be positive")
        if not 0 <= self.reserved_handshakes < self.max_pending_handshakes:
            raise InvalidInput(
                "HostLimits.reserved_handshakes must be at least 0 and below max_pending_handshakes"
            )
