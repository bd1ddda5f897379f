"""Linux network namespaces for topology tests: organizations that cannot see each other.

:class:`Topology` builds, for each organization ``X``, an *internal* namespace
(``X-int``, where its ordinary nodes run) and a *gateway* namespace (``X-gw``),
joined by a veth pair on ``10.<i>.0.0/24`` (internal side ``.2``, gateway side
``.1``); every gateway namespace is also joined to one *backbone* namespace
(``bb``) whose bridge carries ``10.99.0.0/24`` (gateway ``i`` is
``10.99.0.<10+i>``, the bridge itself ``10.99.0.1``). Gateways do not forward IP
packets, and no namespace has a default route, so an internal node can reach
its own gateway and nothing else; gateways reach each other over the backbone.

:func:`start_topology_network` lays out real node data directories on that
topology (with :func:`datanet.devnet.provision`, the devnet's own provisioning),
starts one daemon process per node inside its namespace (``ip netns exec NS
python -m cli.main --data-dir HOME node start``), and publishes an org record
per organization (its gateway, ``egress=True``). Each :class:`TopoNode` runs
the real CLI inside its namespace with :meth:`TopoNode.cli`.

Needs root and ``ip`` (iproute2); :func:`netns_available` says why not.
Addresses used are only those of the namespaces made here (``10.<i>.0.0/24``
and ``10.99.0.0/24`` exist nowhere else).

Invariants:
* Every name carries the run's prefix ``dn<pid % 100000>``; namespaces with that
  prefix left by a crashed earlier run are removed when a topology starts.
* Veth pairs and the bridge are created directly inside the namespaces, never
  in the host's, so deleting the namespaces removes every interface.
* Leaving a :class:`Topology` (normally, by an exception, by KeyboardInterrupt,
  or at interpreter exit as a fallback) kills every process in its namespaces,
  reaps every child started through it, and deletes the namespaces; doing it
  twice is harmless.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self

from datanet.devnet import ORG_NAMES, DevnetNode, DevnetOrg, child_env, load_devnet, provision
from datanet.node.authority import Authorities
from datanet.node.config import Config, save_config
from datanet.node.home import Home
from identity.keys import PeerId
from identity.orgs import Gateway

__all__ = [
    "BACKBONE_NET",
    "TopoNode",
    "Topology",
    "TopologyError",
    "TopologyNetwork",
    "netns_available",
    "run_prefix",
    "start_topology_network",
]

BACKBONE_NET = "10.99.0"
#: At most this many organizations (their subnets are 10.1 … 10.50).
MAX_ORGS = 50
_ORG_NAME = re.compile(r"[a-z][a-z0-9]{0,15}")
_IP_TIMEOUT = 20.0
_P2P_PORT = 4001
_API_PORT = 5001
_READY_LINE = "daemon_ready"


class TopologyError(RuntimeError):
    """A namespace command failed; the message quotes the command and its output."""


def run_prefix() -> str:
    """This process's prefix for namespace names: ``dn<pid % 100000>``."""
    return f"dn{os.getpid() % 100000}"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *args]
    result = subprocess.run(  # noqa: S603 - fixed argv
        argv, capture_output=True, text=True, timeout=_IP_TIMEOUT, check=False
    )
    if check and result.returncode != 0:
        raise TopologyError(f"`{' '.join(argv)}` failed: {result.stderr.strip()[:400]}")
    return result


def netns_available() -> str | None:
    """None when network namespaces can be made here, else the reason they cannot."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (run the tests as root)"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    probe = f"{run_prefix()}-probe"
    try:
        _ip("netns", "del", probe, check=False)
        result = _ip("netns", "add", probe, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`ip netns add` cannot run: {exc}"
    if result.returncode != 0:
        return f"`ip netns add` failed: {result.stderr.strip()[:200]}"
    _ip("netns", "del", probe, check=False)
    return None


def _namespaces() -> list[str]:
    result = _ip("netns", "list", check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def _kill_namespace(ns: str) -> None:
    """SIGKILL every process in ``ns`` and wait (briefly) until none is left."""
    deadline = time.monotonic() + 5.0
    while True:
        pids = [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split() if p.isdigit()]
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _remove_namespace(ns: str) -> None:
    _kill_namespace(ns)
    _ip("netns", "del", ns, check=False)


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn``: the child gets SIGTERM when this process dies (Linux)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class Topology:
    """Namespaces for ``orgs`` (see the module docstring); a context manager.

    Args:
        orgs: organization names (``[a-z][a-z0-9]*``, at most 16 characters, at
            most :data:`MAX_ORGS`), each given subnet ``10.<position + 1>.0.0/24``.

    Raises:
        TopologyError: a namespace or link could not be made (everything made
            so far is removed again).
        ValueError: a bad or repeated organization name.
    """

    def __init__(self, orgs: Sequence[str]) -> None:
        names = list(orgs)
        if not names or len(names) > MAX_ORGS:
            raise ValueError(f"a topology has 1 to {MAX_ORGS} organizations")
        for name in names:
            if not _ORG_NAME.fullmatch(name):
                raise ValueError(f"bad organization name {name!r} (a-z 0-9, at most 16)")
        if len(set(names)) != len(names):
            raise ValueError("organization names must be distinct")
        self.orgs: tuple[str, ...] = tuple(names)
        self.prefix = run_prefix()
        self.backbone = f"{self.prefix}-bb"
        self._made: list[str] = []
        self._procs: list[subprocess.Popen[Any]] = []
        self._closed = True
        self._preexec = _die_with_parent()

    # -- names and addresses ------------------------------------------------------

    def _index(self, org: str) -> int:
        try:
            return self.orgs.index(org) + 1
        except ValueError:
            raise ValueError(f"{org!r} is not an organization of this topology") from None

    def ns(self, org: str, part: Literal["int", "gw"]) -> str:
        """The full name of ``org``'s internal (``int``) or gateway (``gw``) namespace."""
        self._index(org)
        if part not in ("int", "gw"):
            raise ValueError("part is 'int' or 'gw'")
        return f"{self.prefix}-{org}-{part}"

    def internal_ip(self, org: str) -> str:
        """The address of ``org``'s internal namespace (``10.<i>.0.2``)."""
        return f"10.{self._index(org)}.0.2"

    def gateway_ips(self, org: str) -> tuple[str, str]:
        """``org``'s gateway addresses: (internal side ``10.<i>.0.1``, backbone side)."""
        i = self._index(org)
        return f"10.{i}.0.1", f"{BACKBONE_NET}.{10 + i}"

    def namespaces(self) -> list[str]:
        """Every namespace of this topology (backbone first)."""
        out = [self.backbone]
        for org in self.orgs:
            out += [self.ns(org, "int"), self.ns(org, "gw")]
        return out

    # -- life cycle ---------------------------------------------------------------

    def __enter__(self) -> Self:
        self._closed = False
        atexit.register(self.close)
        try:
            self._remove_stale()
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _remove_stale(self) -> None:
        for ns in _namespaces():
            if ns.startswith(f"{self.prefix}-"):
                _remove_namespace(ns)

    def _add(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")

    def _veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        _ip("link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b)
        _ip("-n", ns_a, "link", "set", if_a, "up")
        _ip("-n", ns_b, "link", "set", if_b, "up")

    def _build(self) -> None:
        bb = self.backbone
        self._add(bb)
        _ip("-n", bb, "link", "add", "br0", "type", "bridge")
        _ip("-n", bb, "addr", "add", f"{BACKBONE_NET}.1/24", "dev", "br0")
        _ip("-n", bb, "link", "set", "br0", "up")
        for org in self.orgs:
            i = self._index(org)
            internal, gateway = self.ns(org, "int"), self.ns(org, "gw")
            self._add(internal)
            self._add(gateway)
            # The gateway must never route between its two sides.
            self._sysctl(gateway, "net/ipv4/ip_forward", "0")
            self._veth(internal, "gw0", gateway, "int0")
            _ip("-n", internal, "addr", "add", f"{self.internal_ip(org)}/24", "dev", "gw0")
            gw_int, gw_bb = self.gateway_ips(org)
            _ip("-n", gateway, "addr", "add", f"{gw_int}/24", "dev", "int0")
            self._veth(gateway, "bb0", bb, f"gw{i}")
            _ip("-n", gateway, "addr", "add", f"{gw_bb}/24", "dev", "bb0")
            _ip("-n", bb, "link", "set", f"gw{i}", "master", "br0")

    def _sysctl(self, ns: str, key: str, value: str) -> None:
        result = self.run(ns, ["sh", "-c", f"echo {value} > /proc/sys/{key}"], timeout=_IP_TIMEOUT)
        if result.returncode != 0:
            raise TopologyError(f"cannot set {key} in {ns}: {result.stderr.strip()[:200]}")

    def close(self) -> None:
        """Kill every process in the namespaces, reap our children, delete the namespaces.

        Idempotent; also registered with :mod:`atexit` while the topology is open.
        """
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for ns in reversed(self.namespaces()):
            if ns in self._made or ns in _namespaces():
                _remove_namespace(ns)
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self._procs.clear()
        self._made.clear()

    # -- running commands ---------------------------------------------------------

    def _argv(self, ns: str, argv: Sequence[str]) -> list[str]:
        if ns not in self.namespaces():
            raise ValueError(f"{ns!r} is not a namespace of this topology")
        return ["ip", "netns", "exec", ns, *argv]

    def popen(self, ns: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside namespace ``ns``, in its own process group.

        The process gets SIGTERM if this process dies, and SIGKILL when the
        topology closes.
        """
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc: subprocess.Popen[Any] = subprocess.Popen(  # noqa: S603 - the caller's argv
            self._argv(ns, argv),
            process_group=0,
            preexec_fn=self._preexec,  # noqa: PLW1509 - no other thread forks here
            **kw,
        )
        self._procs.append(proc)
        return proc

    def run(
        self, ns: str, argv: Sequence[str], timeout: float, **kw: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` inside ``ns`` to completion (captured text output by default).

        Raises:
            subprocess.TimeoutExpired: it ran longer than ``timeout`` (it is killed).
        """
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(  # noqa: S603 - the caller's argv
            self._argv(ns, argv), timeout=timeout, check=False, **kw
        )


# --- real daemons on a topology --------------------------------------------------------


@dataclass
class TopoNode:
    """One node of a :class:`TopologyNetwork`: its files, namespace, identity and daemon.

    ``addrs`` are the multiaddrs it listens on (without ``/p2p/``); ``role`` is
    ``"gateway"`` or ``"internal"``; ``devnet`` is the provisioned devnet node
    (keys, org) for signing records as this node.
    """

    name: str
    org: str
    role: Literal["gateway", "internal"]
    namespace: str
    addrs: tuple[str, ...]
    devnet: DevnetNode
    topology: Topology
    proc: subprocess.Popen[Any] | None = field(default=None, repr=False)

    @property
    def home(self) -> Path:
        """The node's data directory."""
        return Path(self.devnet.home)

    @property
    def peer_id(self) -> PeerId:
        """The node's :class:`~identity.keys.PeerId`."""
        return self.devnet.peer_id

    @property
    def log_path(self) -> Path:
        """Where the daemon's output goes."""
        return self.home / "daemon.log"

    def dial_addr(self, addr: str | None = None) -> str:
        """``addr`` (default: the first) with ``/p2p/<peer id>``, for bootstrapping."""
        return f"{addr or self.addrs[0]}/p2p/{self.peer_id}"

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``datanet --data-dir HOME ARGS`` inside this node's namespace."""
        argv = [sys.executable, "-m", "cli.main", "--data-dir", str(self.home), *args]
        result: subprocess.CompletedProcess[str] = self.topology.run(
            self.namespace, argv, timeout=timeout, env=child_env()
        )
        return result

    @property
    def running(self) -> bool:
        """Whether the daemon process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start the daemon in the node's namespace and wait until it logs ``daemon_ready``.

        Raises:
            TopologyError: it is already running, exited, or was not ready in time
                (the message quotes the end of its log).
        """
        if self.running:
            raise TopologyError(f"{self.name} is already running")
        _start_all([self], timeout)

    def _wait_ready(self, offset: int, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        needle = f"pid={self.proc.pid}"
        while True:
            text = self._log_since(offset)
            if any(_READY_LINE in line and needle in line for line in text.splitlines()):
                return
            if self.proc.poll() is not None:
                raise TopologyError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self._log_since(offset)}"
                )
            if time.monotonic() > deadline:
                raise TopologyError(f"{self.name} not ready in {timeout:g} s:\n{text[-2000:]}")
            time.sleep(0.1)

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(offset)
                return fh.read(1 << 20).decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the daemon, wait up to ``timeout``, then SIGKILL; reap it."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.proc = None


@dataclass
class TopologyNetwork:
    """Real daemons on a :class:`Topology`; close it (or use ``with``) to tear everything down.

    Attributes:
        topology: the namespaces.
        base: the directory holding every node's data directory and ``orgs/``.
        admin_home: the data directory whose ``orgs/`` holds the org root keys
            (unencrypted), for :class:`datanet.node.authority.Authorities`.
        orgs: the provisioned organizations by name (``DevnetOrg``: name, id, key).
        nodes: gateways first (one per org, in org order), then internal nodes.
        org_records: each org's published org record (envelope bytes) by name.
    """

    topology: Topology
    base: Path
    admin_home: Path
    orgs: dict[str, DevnetOrg]
    nodes: list[TopoNode]
    org_records: dict[str, bytes] = field(default_factory=dict)

    def gateway(self, org: str) -> TopoNode:
        """``org``'s gateway node."""
        return next(n for n in self.nodes if n.org == org and n.role == "gateway")

    def internal(self, org: str, index: int = 0) -> TopoNode:
        """``org``'s ``index``-th internal node."""
        return [n for n in self.nodes if n.org == org and n.role == "internal"][index]

    def close(self) -> None:
        """Stop every daemon, then remove the namespaces."""
        try:
            for node in self.nodes:
                with contextlib.suppress(Exception):
                    node.stop(timeout=5.0)
        finally:
            self.topology.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def sign_org_record(self, org: str, *, egress: bool = True, days: int = 30) -> bytes:
        """Sign ``org``'s next org record naming its gateway at both of its addresses."""
        gw = self.gateway(org)
        _, raw = Authorities(Home(self.admin_home)).sign_org_record(
            org,
            self.orgs[org].key,
            [Gateway(gw.peer_id, gw.addrs)],
            egress=egress,
            now=int(time.time()),
            days=days,
        )
        return raw

    def publish_org_record(self, org: str, raw: bytes, via: TopoNode | None = None) -> None:
        """Publish org record bytes through ``via`` (default: the org's gateway) with the CLI.

        Raises:
            TopologyError: ``datanet publish`` failed.
        """
        node = via or self.gateway(org)
        path = self.base / f"{org}.orgrec"
        path.write_bytes(raw)
        result = node.cli("publish", str(path))
        if result.returncode != 0:
            raise TopologyError(f"publishing {org}'s org record failed: {result.stderr}")
        self.org_records[org] = raw


def _configure(node: TopoNode, bootstrap: Sequence[str], api_port: int) -> None:
    config = (
        Config.defaults()
        .with_value("network.listen", list(node.addrs))
        .with_value("network.bootstrap", list(bootstrap))
        .with_value("network.admission", "members")
        .with_value("api.address", f"127.0.0.1:{api_port}")
    )
    save_config(Home(node.home).config_path, config)


def start_topology_network(
    tmp_path: Path, orgs: int = 3, internal_per_org: int = 1, *, timeout: float = 90.0
) -> TopologyNetwork:
    """Provision ``orgs`` organizations on a fresh :class:`Topology` and start their daemons.

    Each org has one gateway (in ``X-gw``, listening on its internal and its
    backbone address, bootstrapping from the other gateways over the backbone)
    and ``internal_per_org`` internal nodes (in ``X-int``, bootstrapping from
    their gateway's internal address). Every node trusts every org and admits
    members only. Once all daemons are ready, each org's record (its gateway,
    ``egress=True``) is signed and published through its gateway.

    The caller closes the returned network (``with start_topology_network(...) as
    net:``); if starting fails, everything started so far is torn down first.

    Raises:
        TopologyError: a namespace, a daemon or a publish failed.
        ValueError: bad counts.
    """
    if not 1 <= orgs <= len(ORG_NAMES) or not 1 <= internal_per_org <= 8:
        raise ValueError(f"1..{len(ORG_NAMES)} orgs and 1..8 internal nodes per org")
    count = orgs * (1 + internal_per_org)
    base = tmp_path / "topo"
    # Node i belongs to org i % orgs; nodes 0..orgs-1 get the gateway role.
    provision(
        base,
        orgs=orgs,
        nodes=count,
        ports=[_P2P_PORT + i for i in range(count)],
        api_ports=[_API_PORT + i for i in range(count)],
    )
    devnet = load_devnet(base)
    names = [o.name for o in devnet.orgs]
    topology = Topology(names)
    topology.__enter__()
    net = TopologyNetwork(topology, base, base / "orgs", {o.name: o for o in devnet.orgs}, nodes=[])
    try:
        for d in devnet.nodes:
            org = d.org.name
            port = _P2P_PORT + d.index
            if d.index < orgs:
                ips: tuple[str, ...] = topology.gateway_ips(org)
                role: Literal["gateway", "internal"] = "gateway"
                ns = topology.ns(org, "gw")
            else:
                ips, role, ns = (topology.internal_ip(org),), "internal", topology.ns(org, "int")
            addrs = tuple(f"/ip4/{ip}/tcp/{port}" for ip in ips)
            net.nodes.append(TopoNode(d.name, org, role, ns, addrs, d, topology))
        gateways = [n for n in net.nodes if n.role == "gateway"]
        for node in net.nodes:
            if node.role == "gateway":
                bootstrap = [g.dial_addr(g.addrs[1]) for g in gateways if g is not node]
            else:
                gw = net.gateway(node.org)
                bootstrap = [gw.dial_addr(gw.addrs[0])]
            _configure(node, bootstrap, _API_PORT + node.devnet.index)
        _start_all(gateways, timeout)
        _start_all([n for n in net.nodes if n.role == "internal"], timeout)
        for org in names:
            net.publish_org_record(org, net.sign_org_record(org, egress=True))
    except BaseException:
        net.close()
        raise
    return net


def _start_all(nodes: Sequence[TopoNode], timeout: float) -> None:
    """Start several daemons at once, then wait for each (start-up overlaps)."""
    offsets = []
    for node in nodes:
        for stale in ("api.url", "api.token"):
            (node.home / stale).unlink(missing_ok=True)
        offsets.append(node.log_path.stat().st_size if node.log_path.exists() else 0)
        log: IO[bytes]
        with node.log_path.open("ab") as log:
            node.proc = node.topology.popen(
                node.namespace,
                [sys.executable, "-m", "cli.main", "--data-dir", str(node.home), "node", "start"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(),
            )
    for node, offset in zip(nodes, offsets, strict=True):
        node._wait_ready(offset, timeout)
