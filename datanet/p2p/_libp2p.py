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
  operator's own ``PY_YAMUX_RELEASE_ON_READ`` setting is left alone.
"""

from __future__ import annotations

import importlib.util
import os
import sys

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
from libp2p.abc import INotifee  # noqa: E402
from libp2p.crypto.ed25519 import Ed25519PrivateKey  # noqa: E402
from libp2p.crypto.keys import KeyPair as Libp2pKeyPair  # noqa: E402
from libp2p.crypto.x25519 import create_new_key_pair as _new_x25519  # noqa: E402
from libp2p.custom_types import TProtocol  # noqa: E402
from libp2p.exceptions import BaseLibp2pError, ParseError  # noqa: E402
from libp2p.identity.identify.pb.identify_pb2 import Identify  # noqa: E402
from libp2p.io.exceptions import IncompleteReadError, IOException  # noqa: E402
from libp2p.network.auto_connector import AutoConnector  # noqa: E402
from libp2p.network.config import ConnectionConfig, RetryConfig  # noqa: E402
from libp2p.network.connection import swarm_connection  # noqa: E402, F401 - for _logging
from libp2p.network.exceptions import SwarmException  # noqa: E402
from libp2p.network.stream.exceptions import StreamEOF, StreamReset  # noqa: E402
from libp2p.network.swarm import Swarm, _NegativePeerCache  # noqa: E402
from libp2p.peer.id import ID  # noqa: E402
from libp2p.peer.peerstore import PeerStore  # noqa: E402
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID  # noqa: E402
from libp2p.security.noise.transport import Transport as NoiseTransport  # noqa: E402
from libp2p.stream_muxer.exceptions import MuxedConnError, MuxedStreamError  # noqa: E402
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID  # noqa: E402
from libp2p.stream_muxer.yamux.yamux import Yamux  # noqa: E402
from libp2p.tools.anyio_service import background_trio_service  # noqa: E402
from libp2p.transport.exceptions import OpenConnectionError, UpgradeFailure  # noqa: E402
from libp2p.transport.tcp.tcp import TCP  # noqa: E402
from libp2p.transport.upgrader import TransportUpgrader  # noqa: E402
from libp2p.utils import connection_shutdown  # noqa: E402, F401 - for _logging
from multiaddr import Multiaddr  # noqa: E402

from datanet.p2p import _logging  # noqa: E402
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
    "OpenConnectionError",
    "ParseError",
    "StreamEOF",
    "StreamReset",
    "Swarm",
    "SwarmException",
    "UpgradeFailure",
    "background_trio_service",
    "build_swarm",
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


class _DatanetSwarm(Swarm):
    """py-libp2p's swarm without the auto-connector (and, see build_swarm, the dial block)."""

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
        muxer_transports_by_protocol={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        negotiate_timeout=max(1, int(upgrade_timeout)),
    )
    config = ConnectionConfig(
        max_connections=max_connections,
        min_connections=0,
        low_watermark=0,
        high_watermark=max_connections,
        max_connections_per_peer=1,
        dial_timeout=dial_timeout,
        inbound_upgrade_timeout=upgrade_timeout,
        outbound_upgrade_timeout=upgrade_timeout,
        outbound_stream_protocol_negotiation_timeout=upgrade_timeout,
        inbound_stream_protocol_negotiation_timeout=upgrade_timeout,
    )
    swarm: Swarm = _DatanetSwarm(
        peer,
        peerstore,
        upgrader,
        transports=[TCP()],
        retry_config=RetryConfig(max_retries=0),
        connection_config=config,
    )
    swarm._negative_peer_cache = _NeverBlockCache()
    return swarm
