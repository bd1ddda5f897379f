"""datanet.p2p: the libp2p adapter, the only part of datanet that talks to py-libp2p.

Start a host with :func:`open_host` (or :func:`serve_host` in a nursery), then use
``host.connect``, ``host.kad.request``, ``host.request``, ``host.ping`` and
``host.subscribe``. Protocol services (kad, request/response, gossip, catalog sync,
later access requests) use only the host's service surface, :class:`ServiceHost`.
Peers are :class:`~identity.keys.PeerId` (bytes accepted), addresses are
multiaddr strings, errors are :mod:`datanet.errors` plus the few
adapter-specific subclasses exported here. See ``docs/p2p.md``.
"""

from datanet.p2p._errors import (
    AdmissionRefused,
    FrameTooLarge,
    ProtocolNotSupported,
    RemoteError,
    StreamClosedByPeer,
)
from datanet.p2p.access import ACCESS_PROTOCOL, AccessTransport
from datanet.p2p.addrs import (
    TcpAddr,
    addr_from_bytes,
    addr_to_bytes,
    as_peer,
    dialable,
    parse_addr,
    parse_peer_addr,
)
from datanet.p2p.admission import (
    ID_PROTOCOL,
    MODE_KAD_SERVER,
    Admission,
    AdmissionMode,
    Decision,
    Hello,
)
from datanet.p2p.audit import AUDIT_PROTOCOL, AuditTransport
from datanet.p2p.events import (
    KadServer,
    PeerConnected,
    PeerDisconnected,
    PeerEvent,
    PeerListener,
)
from datanet.p2p.gossip import MESHSUB_PROTOCOL, GossipLimits, GossipTransport
from datanet.p2p.host import Host, open_host, serve_host
from datanet.p2p.kad import KAD_PROTOCOL, KadHandler, KadService
from datanet.p2p.limits import HostLimits
from datanet.p2p.protocols import IDENTIFY_PROTOCOL, PING_PROTOCOL
from datanet.p2p.service import ServiceHost, StreamHandler
from datanet.p2p.streams import FramedStream, RequestHandler, check_protocol_id
from datanet.p2p.sync import SYNC_PROTOCOL, SyncBackend, SyncLimits, SyncResult, SyncService

__all__ = [
    "ACCESS_PROTOCOL",
    "AUDIT_PROTOCOL",
    "IDENTIFY_PROTOCOL",
    "ID_PROTOCOL",
    "KAD_PROTOCOL",
    "MESHSUB_PROTOCOL",
    "MODE_KAD_SERVER",
    "PING_PROTOCOL",
    "SYNC_PROTOCOL",
    "AccessTransport",
    "Admission",
    "AdmissionMode",
    "AdmissionRefused",
    "AuditTransport",
    "Decision",
    "FrameTooLarge",
    "FramedStream",
    "GossipLimits",
    "GossipTransport",
    "Hello",
    "Host",
    "HostLimits",
    "KadHandler",
    "KadServer",
    "KadService",
    "PeerConnected",
    "PeerDisconnected",
    "PeerEvent",
    "PeerListener",
    "ProtocolNotSupported",
    "RemoteError",
    "RequestHandler",
    "ServiceHost",
    "StreamClosedByPeer",
    "StreamHandler",
    "SyncBackend",
    "SyncLimits",
    "SyncResult",
    "SyncService",
    "TcpAddr",
    "addr_from_bytes",
    "addr_to_bytes",
    "as_peer",
    "check_protocol_id",
    "dialable",
    "open_host",
    "parse_addr",
    "parse_peer_addr",
    "serve_host",
]
