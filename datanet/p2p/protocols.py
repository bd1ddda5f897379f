"""The libp2p base protocols every host serves: identify and ping.

``/ipfs/id/1.0.0`` (identify) answers with one varint-delimited protobuf
``Identify`` message (agent, public key, listen addresses, the protocols we
serve, the address we see the peer at; no signed peer record) and closes the
stream. ``/ipfs/ping/1.0.0`` echoes 32-byte payloads until the peer closes.
Neither is gated by admission: plain libp2p nodes use them to learn about us,
and we use identify to learn whether a plain peer serves the DHT.

Invariants:
* Everything read from a peer is bounded: the identify message
  (:data:`MAX_IDENTIFY`), its protocol list (:data:`MAX_IDENTIFY_PROTOCOLS`
  entries of at most 256 characters), its addresses (the caller's limit) and
  the time of each exchange (the caller's deadline).
* :func:`parse_identify` takes untrusted bytes and never raises.
* Only this module knows the identify and ping wire formats.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from contextlib import suppress

import trio

from datanet.errors import InvalidInput, RemoteProtocolError
from datanet.p2p import _libp2p as lp
from datanet.p2p._errors import translate
from datanet.p2p.addrs import addr_from_bytes, addr_to_bytes
from datanet.p2p.streams import FramedStream
from identity.errors import DecodeError

__all__ = [
    "AGENT_VERSION",
    "IDENTIFY_PROTOCOL",
    "MAX_IDENTIFY",
    "MAX_IDENTIFY_PROTOCOLS",
    "PING_PROTOCOL",
    "PING_SIZE",
    "identify_message",
    "parse_identify",
    "ping",
    "serve_identify",
    "serve_ping",
]

IDENTIFY_PROTOCOL = "/ipfs/id/1.0.0"
PING_PROTOCOL = "/ipfs/ping/1.0.0"
AGENT_VERSION = "datanet/0.1.0"
PING_SIZE = 32
MAX_IDENTIFY = 64 * 1024
MAX_IDENTIFY_PROTOCOLS = 256
_MAX_PROTOCOL_LEN = 256


def identify_message(
    public_key: bytes,
    listen_addrs: Sequence[str],
    protocols: Sequence[str],
    remote: tuple[str, int] | None,
) -> bytes:
    """Our identify answer.

    Args:
        public_key: our libp2p-serialized public key.
        listen_addrs: transport multiaddrs we listen on (or announce).
        protocols: the protocol ids we serve.
        remote: the peer's IP and port as we see them (its ``observed_addr``).
    """
    msg = lp.Identify(
        protocol_version="ipfs/0.1.0",
        agent_version=AGENT_VERSION,
        public_key=public_key,
        listen_addrs=[addr_to_bytes(a) for a in listen_addrs],
        protocols=sorted(protocols),
    )
    if remote is not None:
        family = "ip6" if ":" in remote[0] else "ip4"
        with suppress(InvalidInput):
            msg.observed_addr = addr_to_bytes(f"/{family}/{remote[0]}/tcp/{remote[1]}")
    return bytes(msg.SerializeToString())


def parse_identify(frame: bytes, max_addrs: int) -> tuple[list[str], list[str]] | None:
    """A peer's identify answer as ``(protocols, listen addresses)``; None if malformed.

    At most :data:`MAX_IDENTIFY_PROTOCOLS` protocols (each cut to 256
    characters) and ``max_addrs`` addresses are kept; undecodable addresses and
    protocol ids that are not UTF-8 are skipped.
    """
    msg = lp.Identify()
    try:
        msg.ParseFromString(frame)
    except Exception:  # noqa: BLE001 - protobuf raises its own DecodeError and others
        return None
    # A protocol id that is not UTF-8 comes back as bytes from protobuf's upb backend
    # (identify is proto2, which does not check strings): skip it like a bad address.
    protocols = [
        p[:_MAX_PROTOCOL_LEN]
        for p in list(msg.protocols)[:MAX_IDENTIFY_PROTOCOLS]
        if isinstance(p, str)
    ]
    addrs: list[str] = []
    for raw in list(msg.listen_addrs)[:max_addrs]:
        try:
            addrs.append(addr_from_bytes(bytes(raw)))
        except DecodeError:
            continue
    return protocols, addrs


async def serve_identify(stream: FramedStream, message: bytes, timeout: float) -> None:
    """Send our identify ``message`` and close the stream (within ``timeout``)."""
    with translate(stream.what), trio.fail_after(timeout):
        await stream.write_frame(message, MAX_IDENTIFY)
        await stream.close()


async def serve_ping(stream: FramedStream, idle_timeout: float) -> None:
    """libp2p ping: echo 32-byte payloads until the peer closes or is idle too long."""
    while True:
        with trio.move_on_after(idle_timeout) as idle:
            payload = await stream.read_exactly(PING_SIZE)
        if idle.cancelled_caught or payload is None:
            await stream.close()
            return
        await stream.write(payload)


async def ping(stream: FramedStream) -> float:
    """One ping on a negotiated ``/ipfs/ping/1.0.0`` stream; the round trip in seconds.

    The caller bounds the time and closes the stream.

    Raises:
        RemoteProtocolError: the peer echoed something else.
        StreamClosedByPeer, NetworkError: the stream broke.
    """
    payload = secrets.token_bytes(PING_SIZE)
    start = trio.current_time()
    await stream.write(payload)
    echo = await stream.read_exactly(PING_SIZE)
    rtt = trio.current_time() - start
    if echo != payload:
        raise RemoteProtocolError(f"{stream.what}: wrong echo")
    return rtt
