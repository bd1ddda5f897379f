"""The devnet's layout: organizations, node data directories, certificates, the manifest.

:func:`provision` lays out one data directory per node under a base directory:
each organization gets a root key (``orgs/``), each node a key, a membership
certificate of its organization (publisher, requester, and gateway for the
first node of each org), a trust store that trusts every devnet organization,
and a config that listens on 127.0.0.1 and bootstraps from the first node(s).
A manifest (``devnet.json``) records the layout so that :func:`load_devnet` can
restart the same network later. :func:`sign_org_records` signs each org's org
record (its gateway node at its loopback address, ``egress`` off) with the next
sequence; the daemons publish them once they are up.

Invariants:
* Only loopback addresses are ever configured.
* Ports are fixed at provisioning time so that bootstrap addresses are known
  before any node starts; :func:`find_free_ports` picks distinct ones.
* A manifest is only accepted when it matches the keys on disk.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datanet.errors import DatanetError, InvalidInput, NotFound
from datanet.node.authority import Authorities
from datanet.node.config import Config, save_config
from datanet.node.home import Home
from identity.certs import Role
from identity.keys import KeyPair, OrgId, PeerId
from identity.keystore import atomic_write, read_at_most
from identity.orgs import Gateway

__all__ = [
    "CERT_DAYS",
    "DAEMON_LOG",
    "MANIFEST_FILE",
    "ORG_NAMES",
    "ORG_RECORD_DAYS",
    "RENEW_MARGIN",
    "Devnet",
    "DevnetError",
    "DevnetNode",
    "DevnetOrg",
    "find_free_ports",
    "is_devnet",
    "load_devnet",
    "provision",
    "renew_certificates",
    "sign_org_records",
]

ORG_NAMES = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell")
MANIFEST_FILE = "devnet.json"
MANIFEST_VERSION = 1
#: Validity of the membership certificates a devnet issues (renewed on restart).
CERT_DAYS = 30
#: A certificate or descriptor with less than this left is renewed on restart.
RENEW_MARGIN = 86400
#: Validity of the org records a devnet signs (signed anew at every start).
ORG_RECORD_DAYS = 30
DAEMON_LOG = "daemon.log"
_MAX_MANIFEST = 1024 * 1024


class DevnetError(DatanetError):
    """Raised when a devnet cannot be laid out, loaded or run."""

    code = "devnet_error"


@dataclass(frozen=True)
class DevnetOrg:
    """One provisioned organization."""

    name: str
    org_id: OrgId
    key: KeyPair


@dataclass(frozen=True)
class DevnetNode:
    """One provisioned node: its data directory, key, org and listen addresses."""

    index: int
    home: Path
    key: KeyPair
    org: DevnetOrg
    port: int
    api_port: int = 0

    @property
    def peer_id(self) -> PeerId:
        """The node's peer id."""
        return self.key.peer_id

    @property
    def addr(self) -> str:
        """Its full multiaddr on loopback."""
        return f"/ip4/127.0.0.1/tcp/{self.port}/p2p/{self.peer_id}"

    @property
    def listen_addr(self) -> str:
        """Its listen multiaddr on loopback (without ``/p2p/``)."""
        return f"/ip4/127.0.0.1/tcp/{self.port}"

    @property
    def name(self) -> str:
        """``node<index>``, also the name of its data directory."""
        return f"node{self.index}"

    @property
    def log_path(self) -> Path:
        """Where the devnet sends this node's daemon output."""
        return self.home / DAEMON_LOG


@dataclass(frozen=True)
class Devnet:
    """A provisioned network: its base directory, organizations and nodes.

    Nodes are spread round-robin over the organizations (node ``i`` belongs to
    org ``i % len(orgs)``); the first ``bootstrap_count`` nodes are everyone's
    bootstrap peers and start first.
    """

    base: Path
    orgs: tuple[DevnetOrg, ...]
    nodes: tuple[DevnetNode, ...]
    bootstrap_count: int = 1

    def nodes_of(self, org: DevnetOrg) -> list[DevnetNode]:
        """The nodes of ``org``, in index order."""
        return [n for n in self.nodes if n.org.org_id == org.org_id]

    def publisher_of(self, org: DevnetOrg) -> DevnetNode:
        """The node that publishes ``org``'s datasets: its first node."""
        return self.nodes_of(org)[0]

    def gateway_of(self, org: DevnetOrg) -> DevnetNode:
        """``org``'s gateway: its first node (the only one with the gateway role)."""
        return self.nodes_of(org)[0]

    def outsider(self, org: DevnetOrg, *, last: bool = False) -> DevnetNode:
        """A node of another organization than ``org`` (the first, or the last one).

        Raises:
            InvalidInput: the devnet has a single organization.
        """
        others = [n for n in self.nodes if n.org.org_id != org.org_id]
        if not others:
            raise InvalidInput("this needs a devnet of at least two organizations")
        return others[-1] if last else others[0]


def find_free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _roles(index: int, orgs: int) -> list[Role]:
    roles = [Role.PUBLISHER, Role.REQUESTER]
    if index < orgs:
        roles.append(Role.GATEWAY)
    return roles


def _issue(admin: Home, node: DevnetNode, orgs: int, now: int) -> None:
    _, cert = Authorities(admin).issue_certificate(
        node.org.name, node.org.key, node.peer_id, _roles(node.index, orgs), now=now, days=CERT_DAYS
    )
    Home(node.home).install_certificate(cert, now)


def provision(
    base: Path,
    *,
    orgs: int = 3,
    nodes: int = 6,
    admission: str = "members",
    ports: Sequence[int] | None = None,
    bootstrap_count: int = 1,
    api_ports: Sequence[int] | None = None,
    now: int | None = None,
) -> tuple[list[DevnetOrg], list[DevnetNode]]:
    """Create ``orgs`` organizations and ``nodes`` node data directories under ``base``.

    Nodes are spread round-robin over the organizations. The first
    ``bootstrap_count`` nodes are every node's bootstrap peers. The layout is
    recorded in ``base/devnet.json`` (see :func:`load_devnet`).

    Raises:
        InvalidInput: fewer nodes than organizations, or too many organizations.
    """
    if not 1 <= orgs <= len(ORG_NAMES):
        raise InvalidInput(f"a devnet has 1 to {len(ORG_NAMES)} organizations")
    if nodes < orgs:
        raise InvalidInput("a devnet needs at least one node per organization")
    if not 1 <= bootstrap_count <= nodes:
        raise InvalidInput("bootstrap_count must be between 1 and the number of nodes")
    now = int(time.time()) if now is None else now
    base.mkdir(parents=True, exist_ok=True)
    if ports is None and api_ports is None:
        free = find_free_ports(2 * nodes)  # one call: the two lists never overlap
        ports, api_ports = free[:nodes], free[nodes:]
    ports = list(ports) if ports is not None else find_free_ports(nodes)
    api_ports = list(api_ports) if api_ports is not None else find_free_ports(nodes)
    if len(ports) != nodes or len(api_ports) != nodes:
        raise InvalidInput("give one p2p port and one API port per node")

    admin = Home(base / "orgs")
    admin.init()
    org_list = []
    for i in range(orgs):
        name = ORG_NAMES[i]
        key = Authorities(admin).create_org(name)
        org_list.append(DevnetOrg(name, key.org_id, key))

    node_list: list[DevnetNode] = []
    for i in range(nodes):
        org = org_list[i % orgs]
        home = Home(base / f"node{i}")
        key = home.init()
        node = DevnetNode(i, home.path, key, org, ports[i], api_ports[i])
        _issue(admin, node, orgs, now)
        for other in org_list:
            home.trust(other.org_id, other.name)
        node_list.append(node)

    bootstrap = [n.addr for n in node_list[:bootstrap_count]]
    for node in node_list:
        config = (
            Config.defaults()
            .with_value("network.listen", [f"/ip4/127.0.0.1/tcp/{node.port}"])
            .with_value("network.bootstrap", [a for a in bootstrap if a != node.addr])
            .with_value("network.admission", admission)
            .with_value("api.address", f"127.0.0.1:{node.api_port}")
        )
        save_config(Home(node.home).config_path, config)
    _write_manifest(Devnet(base, tuple(org_list), tuple(node_list), bootstrap_count), now)
    return org_list, node_list


def _write_manifest(devnet: Devnet, now: int) -> None:
    doc = {
        "version": MANIFEST_VERSION,
        "created": now,
        "bootstrap_count": devnet.bootstrap_count,
        "orgs": [{"name": o.name, "org_id": str(o.org_id)} for o in devnet.orgs],
        "nodes": [
            {
                "index": n.index,
                "dir": n.home.name,
                "org": n.org.name,
                "peer_id": str(n.peer_id),
                "port": n.port,
                "api_port": n.api_port,
            }
            for n in devnet.nodes
        ],
    }
    data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    atomic_write(devnet.base / MANIFEST_FILE, data, mode=0o644)


def is_devnet(base: Path) -> bool:
    """Whether ``base`` holds a provisioned devnet (its manifest)."""
    return (base / MANIFEST_FILE).is_file()


def _field(doc: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DevnetError(f"{where}: {name!r} is missing or not a {kind.__name__}")
    return value


def load_devnet(base: Path) -> Devnet:
    """Load the devnet provisioned in ``base`` (its manifest, org keys and node keys).

    Raises:
        NotFound: ``base`` holds no devnet manifest.
        DevnetError: the manifest is damaged or does not match the keys on disk.
        DatanetError: a key file cannot be read (keystore errors).
    """
    path = base / MANIFEST_FILE
    where = str(path)
    try:
        with path.open("rb") as fh:
            data = read_at_most(fh, _MAX_MANIFEST)
    except FileNotFoundError:
        raise NotFound(f"{base} holds no devnet (no {MANIFEST_FILE})") from None
    except OSError as exc:
        raise DevnetError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > _MAX_MANIFEST:
        raise DevnetError(f"{where} is too large to be a devnet manifest")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise DevnetError(f"{where} is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("version") != MANIFEST_VERSION:
        raise DevnetError(f"{where} is not a version {MANIFEST_VERSION} devnet manifest")
    admin = Home(base / "orgs")
    orgs: dict[str, DevnetOrg] = {}
    for item in _field(doc, "orgs", list, where):
        if not isinstance(item, dict):
            raise DevnetError(f"{where}: each org must be an object")
        name = _field(item, "name", str, where)
        key = Authorities(admin).load_org(name)
        if str(key.org_id) != _field(item, "org_id", str, where):
            raise DevnetError(f"{where}: the key of org {name!r} does not match its org id")
        orgs[name] = DevnetOrg(name, key.org_id, key)
    nodes: list[DevnetNode] = []
    for item in _field(doc, "nodes", list, where):
        if not isinstance(item, dict):
            raise DevnetError(f"{where}: each node must be an object")
        org = orgs.get(_field(item, "org", str, where))
        directory = _field(item, "dir", str, where)
        if org is None or Path(directory).name != directory or directory in ("", ".", ".."):
            raise DevnetError(f"{where}: node {directory!r} names an unknown org or a bad dir")
        home = Home(base / directory)
        key = home.load_node_key()
        if str(key.peer_id) != _field(item, "peer_id", str, where):
            raise DevnetError(f"{where}: the key in {home.path} is not node {directory}'s")
        index = _field(item, "index", int, where)
        if index != len(nodes):
            raise DevnetError(f"{where}: nodes must be listed in index order")
        nodes.append(
            DevnetNode(
                index,
                home.path,
                key,
                org,
                _field(item, "port", int, where),
                _field(item, "api_port", int, where),
            )
        )
    if not orgs or len(nodes) < len(orgs):
        raise DevnetError(f"{where}: a devnet needs organizations and one node per org at least")
    bootstrap_count = _field(doc, "bootstrap_count", int, where)
    if not 1 <= bootstrap_count <= len(nodes):
        raise DevnetError(f"{where}: bootstrap_count is out of range")
    return Devnet(base, tuple(orgs.values()), tuple(nodes), bootstrap_count)


def renew_certificates(devnet: Devnet, now: int) -> list[DevnetNode]:
    """Issue fresh certificates to the nodes whose certificate ends within a day.

    A devnet's certificates are short-lived (:data:`CERT_DAYS`); restarting an
    old devnet renews them so that its nodes can publish again.

    Returns:
        The nodes that got a new certificate.
    """
    admin = Home(devnet.base / "orgs")
    renewed = []
    for node in devnet.nodes:
        try:
            Home(node.home).membership_chain(
                now + RENEW_MARGIN, org=node.org.org_id, role=Role.PUBLISHER
            )
        except NotFound:
            _issue(admin, node, len(devnet.orgs), now)
            renewed.append(node)
    return renewed


def sign_org_records(devnet: Devnet, now: int) -> dict[str, bytes]:
    """Sign every org's next org record: its gateway node at its loopback address.

    ``egress`` is off (a devnet's nodes may send requests straight to other
    orgs). Sequences come from the org's issuing state, so they only increase
    across restarts; each record is also kept in the devnet's admin data directory
    (``<base>/orgs/orgs/<name>.org``).

    Returns:
        The signed records (envelope bytes) by org name.
    """
    authorities = Authorities(Home(devnet.base / "orgs"))
    out = {}
    for org in devnet.orgs:
        gw = devnet.gateway_of(org)
        _, raw = authorities.sign_org_record(
            org.name,
            org.key,
            [Gateway(gw.peer_id, (gw.listen_addr,))],
            egress=False,
            now=now,
            days=ORG_RECORD_DAYS,
        )
        out[org.name] = raw
    return out
