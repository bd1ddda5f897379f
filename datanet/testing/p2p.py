"""Test helpers for datanet.p2p: organizations, node credentials, and *plain* py-libp2p hosts.

A plain host is py-libp2p's own ``BasicHost`` on a stock ``Swarm`` (no datanet
code at all), standing in for a go/js libp2p node: it speaks Noise (or, for the
negative tests, only plaintext or secio), Yamux, identify and ping, and may
serve ``/datanet/kad/1.0.0`` with a raw protobuf handler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import trio

import datanet.p2p  # noqa: F401 - installs the libp2p package without its heavy __init__
from datanet.p2p import Admission, AdmissionMode, Host, HostLimits, open_host
from datanet.testing.clock import NOW
from identity import KeyPair, Role, TrustStore, issue_certificate
from routing.wire import decode_message, encode_frame, encode_message

LOCAL = ["/ip4/127.0.0.1/tcp/0"]
FAST = HostLimits(hello_timeout=1.0, dial_timeout=2.0, request_timeout=3.0)


def org_key(n: int) -> KeyPair:
    return KeyPair.from_seed(bytes([0xA0 + n]) * 32)


def node_key(n: int) -> KeyPair:
    return KeyPair.from_seed(n.to_bytes(2, "big") * 16)


def cert_for(org: KeyPair, node: KeyPair, *, serial: int = 1, not_after: int = NOW + 3600) -> bytes:
    return issue_certificate(
        org, node.peer_id, [Role.PUBLISHER], not_before=NOW - 60, not_after=not_after, serial=serial
    )


def admission(
    mode: str,
    node: KeyPair | None,
    org: KeyPair | None,
    *,
    trusted: tuple[KeyPair, ...] = (),
    clock: Callable[[], int] = lambda: NOW,
    trust: TrustStore | None = None,
) -> Admission:
    """An admission policy for ``node``, with a certificate from ``org`` if given."""
    if trust is None:
        trust = TrustStore()
        for t in trusted:
            trust.trust(t.org_id)
    chain = (cert_for(org, node),) if org is not None and node is not None else ()
    return Admission(AdmissionMode(mode), trust, chain, clock)


def _plain_swarm(security: str, key: KeyPair) -> Any:
    from libp2p.crypto.x25519 import create_new_key_pair
    from libp2p.network.config import RetryConfig
    from libp2p.network.swarm import Swarm
    from libp2p.peer.id import ID
    from libp2p.peer.peerstore import PeerStore
    from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_ID
    from libp2p.security.noise.transport import Transport as Noise
    from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_ID
    from libp2p.stream_muxer.yamux.yamux import Yamux
    from libp2p.transport.tcp.tcp import TCP
    from libp2p.transport.upgrader import TransportUpgrader

    from datanet.p2p._libp2p import libp2p_key_pair

    kp = libp2p_key_pair(key)
    peer = ID.from_pubkey(kp.public_key)
    store = PeerStore()
    store.add_key_pair(peer, kp)
    sec: dict[Any, Any]
    if security == "noise":
        sec = {NOISE_ID: Noise(kp, noise_privkey=create_new_key_pair().private_key)}
    elif security == "plaintext":
        sec = {PLAINTEXT_PROTOCOL_ID: InsecureTransport(kp, peerstore=store)}
    elif security == "secio":
        import libp2p.security.secio.transport as secio

        sec = {secio.ID: secio.Transport(kp)}
    else:
        raise ValueError(security)
    muxers: dict[Any, Any] = {YAMUX_ID: Yamux}
    upgrader = TransportUpgrader(sec, muxers)
    return Swarm(peer, store, upgrader, transports=[TCP()], retry_config=RetryConfig(max_retries=0))


@asynccontextmanager
async def plain_host(
    key: KeyPair,
    *,
    security: str = "noise",
    kad: Callable[[Any], Awaitable[Any]] | None = None,
) -> AsyncIterator[Any]:
    """Run py-libp2p's BasicHost (no datanet code) listening on 127.0.0.1.

    ``kad(msg) -> msg | None``, if given, serves ``/datanet/kad/1.0.0`` with raw
    varint-framed protobuf, as a go/js node configured with that protocol id would.
    """
    from libp2p.host.basic_host import BasicHost
    from multiaddr import Multiaddr

    host = BasicHost(network=_plain_swarm(security, key))
    if kad is not None:
        handler = kad

        async def serve(stream: Any) -> None:
            from libp2p.utils.varint import read_varint_prefixed_bytes

            try:
                while True:
                    frame = await read_varint_prefixed_bytes(stream)
                    reply = await handler(decode_message(frame))
                    if reply is not None:
                        await stream.write(encode_frame(encode_message(reply)))
            except Exception:
                await stream.reset()

        host.set_stream_handler(cast(Any, "/datanet/kad/1.0.0"), serve)
    async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        yield host
        with trio.move_on_after(2):
            await host.close()


def plain_addrs(host: Any) -> list[str]:
    return [str(a) for a in host.get_addrs()]


async def plain_kad_request(host: Any, peer: Any, msg: Any, *, timeout: float = 3.0) -> Any:
    """Send one kad request from a plain host, py-libp2p's way (new stream, raw frames)."""
    from libp2p.peer.id import ID
    from libp2p.utils.varint import read_varint_prefixed_bytes

    with trio.fail_after(timeout):
        stream = await host.new_stream(ID(peer.to_bytes()), ["/datanet/kad/1.0.0"])
        await stream.write(encode_frame(encode_message(msg)))
        frame = await read_varint_prefixed_bytes(stream)
        await stream.close()
    return decode_message(frame)


async def plain_connect(host: Any, target: Any) -> None:
    """Connect a plain host to a datanet host."""
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from multiaddr import Multiaddr

    await host.connect(info_from_p2p_addr(Multiaddr(target.listen_addrs()[0])))


@asynccontextmanager
async def member_hosts(
    org: KeyPair, *, client_limits: HostLimits = FAST, server_limits: HostLimits = FAST
) -> AsyncIterator[tuple[Host, Host]]:
    """Two member hosts of ``org`` on 127.0.0.1 (node keys 1 and 2): the client
    knows the server's addresses; nothing is dialled yet."""
    a, b = node_key(1), node_key(2)
    async with (
        open_host(a, LOCAL, admission("members", a, org), limits=client_limits) as client,
        open_host(b, LOCAL, admission("members", b, org), limits=server_limits) as server,
    ):
        client.add_addrs(server.peer_id, server.listen_addrs())
        yield client, server
