"""A local network of several organizations: layout, daemon processes, samples, the tour.

Used by ``datanet devnet`` (``cli/devnet.py``), the end-to-end tests and the
benchmarks. Four layers, each usable alone:

* **Layout** - :func:`provision` lays out one data directory per node under a
  base directory: each organization gets a root key (``orgs/``), each node a
  key, a membership certificate of its organization (publisher, requester, and
  gateway for the first node of each org), a trust store that trusts every
  devnet organization, and a config that listens on 127.0.0.1 and bootstraps
  from the first node(s). A manifest (``devnet.json``) records the layout so that
  :func:`load_devnet` can restart the same network later.
* **Processes** - :class:`DaemonSet` starts ``datanet node start`` daemons as
  child processes (output to ``<node>/daemon.log``), waits until each API
  answers, and stops them all (SIGTERM, then SIGKILL after a timeout).
* **Samples** - :data:`SAMPLE_DATASETS`, realistic DCAT-style descriptors that
  :func:`publish_samples` signs with a node's key and publishes through that
  node's HTTP API.
* **Tour** - :func:`run_tour`: publish → resolve from another org's node →
  update → resolve again from the network → search, all through the API.

Invariants:
* Only loopback addresses are ever configured.
* Ports are fixed at provisioning time so that bootstrap addresses are known
  before any node starts; :func:`find_free_ports` picks distinct ones.
* Every daemon a :class:`DaemonSet` started is stopped when the set is closed,
  whatever the reason (normal end, error, signal): SIGTERM, a bounded wait, then
  SIGKILL, and every child is reaped. On Linux a daemon also receives SIGTERM if
  the devnet process itself dies (``PR_SET_PDEATHSIG``), so no daemon outlives it.
* Daemons run in their own process group: a Ctrl-C at the terminal reaches the
  devnet process only, which then stops the daemons in order.
* Nothing here talks to a daemon except through :class:`datanet.client.Client`
  (the HTTP API); nothing here imports py-libp2p or trio.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Self

from datanet.client import Client, NodeStatus, Resolved
from datanet.errors import DatanetError, InvalidInput, NotFound
from datanet.node.config import API_URL_FILE, PID_FILE, TOKEN_FILE, Config, save_config
from datanet.node.home import Home
from datanet.records.descriptor import AccessPolicy, Descriptor, Distribution, sign_descriptor
from datanet.records.ids import DatasetId
from identity.certs import Role
from identity.keys import KeyPair, OrgId, PeerId
from identity.keystore import atomic_write

__all__ = [
    "CERT_DAYS",
    "MANIFEST_FILE",
    "ORG_NAMES",
    "SAMPLE_DATASETS",
    "TOUR_DATASET",
    "TOUR_SEARCH",
    "TOUR_UPDATED_TITLE",
    "DaemonProcess",
    "DaemonSet",
    "DaemonStartError",
    "Devnet",
    "DevnetError",
    "DevnetNode",
    "DevnetOrg",
    "PublishedSample",
    "SampleDataset",
    "StopSignals",
    "TourFailed",
    "TourStep",
    "build_descriptor",
    "child_env",
    "cli_display_command",
    "daemon_argv",
    "daemon_pid",
    "find_free_ports",
    "is_devnet",
    "load_devnet",
    "next_sequence",
    "provision",
    "publish_samples",
    "renew_certificates",
    "run_tour",
    "samples_for",
    "sign_for_node",
    "start_network",
]

ORG_NAMES = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell")
MANIFEST_FILE = "devnet.json"
MANIFEST_VERSION = 1
#: Validity of the membership certificates a devnet issues (renewed on restart).
CERT_DAYS = 30
#: Validity of the sample and tour descriptors.
DESCRIPTOR_DAYS = 30
#: A certificate or descriptor with less than this left is renewed on restart.
RENEW_MARGIN = 86400
DAEMON_LOG = "daemon.log"
_MAX_MANIFEST = 1024 * 1024
_DAY = 86400


class DevnetError(DatanetError):
    """Raised when a devnet cannot be laid out, loaded or run."""

    code = "devnet_error"


class DaemonStartError(DevnetError):
    """Raised when a node's daemon exits or does not answer in time; names its log file."""

    code = "daemon_start_failed"


class TourFailed(DevnetError):
    """Raised when a step of the tour fails; the message names the step."""

    code = "tour_failed"


# --- layout -------------------------------------------------------------------------


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
    _, cert = admin.issue_certificate(
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
        key = admin.create_org(name)
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
            data = fh.read(_MAX_MANIFEST + 1)
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
        key = admin.load_org(name)
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


# --- daemon processes ---------------------------------------------------------------


def daemon_argv(home: Path) -> list[str]:
    """The command that runs one node's daemon in the foreground (this very Python)."""
    return [sys.executable, "-m", "cli.main", "--data-dir", str(home), "node", "start"]


def child_env(base: os._Environ[str] | dict[str, str] | None = None) -> dict[str, str]:
    """The environment for daemon and CLI child processes.

    Settings that would point a child at another data directory, daemon or
    passphrase are removed; the source tree is put on ``PYTHONPATH`` so that
    ``python -m cli.main`` works even where datanet is not installed.
    """
    env = dict(os.environ if base is None else base)
    for name in ("DATANET_HOME", "DATANET_API_URL", "DATANET_API_TOKEN", "DATANET_PASSPHRASE"):
        env.pop(name, None)
    root = str(Path(__file__).resolve().parents[1])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    return env


def cli_display_command() -> str:
    """How a user types the ``datanet`` command that belongs to this Python.

    ``datanet`` when that is on ``PATH`` and is ours; else the console script
    next to this interpreter (e.g. ``.venv/bin/datanet``); else ``python -m cli.main``.
    """
    script = Path(sys.executable).parent / "datanet"
    if script.exists():
        found = _which("datanet")
        if found is not None and found.resolve() == script.resolve():
            return "datanet"
        with contextlib.suppress(ValueError):
            return str(script.relative_to(Path.cwd()))
        return str(script)
    return f"{sys.executable} -m cli.main"


def _which(name: str) -> Path | None:
    import shutil  # noqa: PLC0415 - only for display

    found = shutil.which(name)
    return Path(found) if found else None


def daemon_pid(home: Path) -> int | None:
    """The pid of the daemon running on ``home``, or None when none holds its pid lock."""
    path = home / PID_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when we die (Linux only).

    ``prctl`` is looked up here, in the parent, so the child runs nothing but
    two system calls between fork and exec.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # we died between fork and prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _tail(path: Path, lines: int = 8, max_bytes: int = 8192) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class DaemonProcess:
    """One daemon child process and what the devnet knows about it.

    ``stopped`` tells whether :meth:`DaemonSet.stop` found it running and stopped it
    (``returncode`` 0 means a clean exit; negative values are signals).
    """

    node: DevnetNode
    proc: subprocess.Popen[bytes]
    started: float
    status: NodeStatus | None = None
    ready_after: float | None = None
    returncode: int | None = None
    stopped: bool = False

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the process still runs (reaps it when it has exited)."""
        return self.proc.poll() is None

    def failure(self, reason: str) -> DaemonStartError:
        """A start error for this node, naming its log file and quoting its end."""
        tail = _tail(self.node.log_path)
        quoted = "\n".join(f"    {line}" for line in tail.splitlines())
        return DaemonStartError(
            f"{self.node.name} ({self.node.org.name}) {reason}; see {self.node.log_path}"
            + (f"\n  last lines of its log:\n{quoted}" if quoted else "")
        )


class DaemonSet:
    """The daemons a devnet runs; closing the set stops every one of them.

    Use as a context manager: whatever ends the block (return, exception,
    KeyboardInterrupt), every daemon started through :meth:`spawn` is sent
    SIGTERM, waited for up to ``stop_timeout`` seconds, then SIGKILLed and reaped.

    Args:
        stop_timeout: seconds to wait for clean exits before SIGKILL.
        force: polled while stopping; when it returns True the remaining
            daemons are SIGKILLed at once (e.g. a second Ctrl-C).
    """

    def __init__(
        self, *, stop_timeout: float = 15.0, force: Callable[[], bool] | None = None
    ) -> None:
        self.daemons: list[DaemonProcess] = []
        self.stop_timeout = stop_timeout
        self._force = force or (lambda: False)
        self._preexec = _die_with_parent()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def spawn(self, node: DevnetNode) -> DaemonProcess:
        """Start ``node``'s daemon; its stdout and stderr are appended to its ``daemon.log``.

        Stale runtime files of a daemon that was killed (``api.url``, ``api.token``)
        are removed first so that readiness is judged on the new daemon only.

        Raises:
            DaemonStartError: a daemon already runs on that data directory, or the
                process cannot be started.
        """
        running = daemon_pid(node.home)
        if running is not None:
            raise DaemonStartError(
                f"a daemon (pid {running}) already runs on {node.home}; stop it first "
                f"(datanet --data-dir {node.home} node stop)"
            )
        for name in (API_URL_FILE, TOKEN_FILE):
            (node.home / name).unlink(missing_ok=True)
        try:
            log: IO[bytes] = node.log_path.open("ab")
        except OSError as exc:
            raise DaemonStartError(f"cannot open {node.log_path}: {exc.strerror}") from None
        with log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            log.write(f"--- datanet devnet: starting {node.name} at {stamp} ---\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                    daemon_argv(node.home),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=child_env(),
                    process_group=0,
                    preexec_fn=self._preexec,  # noqa: PLW1509 - no other thread runs here
                )
            except OSError as exc:
                raise DaemonStartError(f"cannot start {node.name}: {exc.strerror}") from None
        daemon = DaemonProcess(node, proc, time.monotonic())
        self.daemons.append(daemon)
        return daemon

    def wait_ready(
        self,
        daemons: Sequence[DaemonProcess],
        *,
        timeout: float,
        on_ready: Callable[[DaemonProcess], None] | None = None,
        tick: Callable[[], None] | None = None,
        poll: float = 0.1,
    ) -> None:
        """Wait until every daemon's API answers ``node/status`` with its own pid.

        Raises:
            DaemonStartError: a daemon exited, or did not answer within ``timeout``
                seconds; the message names the node and its log file.
        """
        deadline = time.monotonic() + timeout
        pending = list(daemons)
        while pending:
            for daemon in list(pending):
                if not daemon.alive():
                    daemon.returncode = daemon.proc.returncode
                    raise daemon.failure(f"exited with status {daemon.proc.returncode}")
                status = _probe(daemon.node.home)
                if status is None:
                    continue
                if status.pid != daemon.pid:
                    raise daemon.failure(f"is answered by another process (pid {status.pid})")
                daemon.status = status
                daemon.ready_after = time.monotonic() - daemon.started
                pending.remove(daemon)
                if on_ready is not None:
                    on_ready(daemon)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise pending[0].failure(f"did not answer within {timeout:g} s")
            time.sleep(poll)
            if tick is not None:
                tick()

    def check_alive(self) -> list[DaemonProcess]:
        """The daemons that exited since they were started (each reported once)."""
        dead = []
        for daemon in self.daemons:
            if daemon.returncode is None and not daemon.alive():
                daemon.returncode = daemon.proc.returncode
                dead.append(daemon)
        return dead

    def stop(self) -> None:
        """Stop every daemon: SIGTERM, wait up to ``stop_timeout``, then SIGKILL; reap all."""
        live = [d for d in self.daemons if d.alive()]
        for daemon in live:
            daemon.stopped = True
            with contextlib.suppress(ProcessLookupError):
                daemon.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while live and time.monotonic() < deadline and not self._force():
            live = [d for d in live if d.alive()]
            if live:
                time.sleep(0.05)
        for daemon in live:
            if daemon.alive():
                with contextlib.suppress(ProcessLookupError):
                    daemon.proc.kill()
        for daemon in self.daemons:
            daemon.returncode = daemon.proc.wait()


def _probe(home: Path) -> NodeStatus | None:
    """The daemon's status if its API answers now, else None."""
    try:
        with Client(home, timeout=2.0) as client:
            return client.status()
    except DatanetError:
        return None


def start_network(
    devnet: Devnet,
    daemons: DaemonSet,
    *,
    timeout: float,
    on_spawn: Callable[[DaemonProcess], None] | None = None,
    on_ready: Callable[[DaemonProcess], None] | None = None,
    tick: Callable[[], None] | None = None,
    waiting: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> list[DaemonProcess]:
    """Start every node of ``devnet``: the bootstrap nodes first, then all others at once.

    Args:
        devnet: the network to start.
        daemons: the set that owns (and will stop) the processes.
        timeout: seconds each phase may take until every API answers.
        on_spawn: called as each process starts.
        on_ready: called as each API answers.
        tick: called between polls (e.g. to redraw a progress display).
        waiting: a context entered around each wait (e.g. to let signals
            interrupt the wait, but not the spawning).

    Raises:
        DaemonStartError: a node failed to start; the caller's ``DaemonSet``
            stops the others.
    """
    started: list[DaemonProcess] = []
    first = devnet.nodes[: devnet.bootstrap_count]
    rest = devnet.nodes[devnet.bootstrap_count :]
    for phase in (first, rest):
        batch = []
        for node in phase:
            daemon = daemons.spawn(node)
            batch.append(daemon)
            if on_spawn is not None:
                on_spawn(daemon)
        with waiting():
            daemons.wait_ready(batch, timeout=timeout, on_ready=on_ready, tick=tick)
        started += batch
    return started


class StopSignals:
    """SIGINT and SIGTERM as stop requests, for a process that supervises children.

    Outside :meth:`interruptible` blocks a signal is only recorded (so it never
    interrupts the spawning of a child half-way); inside one, the first signal
    raises :class:`KeyboardInterrupt`. :attr:`forced` becomes true with the second
    signal, which :class:`DaemonSet` uses to SIGKILL instead of waiting. The
    previous handlers are restored on exit. Only works in the main thread.
    """

    def __init__(self) -> None:
        self.count = 0
        self.last: int | None = None
        self._depth = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Self:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._old[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for signum, old in self._old.items():
            signal.signal(signum, old)
        self._old.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.last = signum
        if self._depth and self.count == 1:
            raise KeyboardInterrupt

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.count > 0

    @property
    def forced(self) -> bool:
        """Whether a second signal asked to stop at once."""
        return self.count > 1

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Inside this block a stop request raises :class:`KeyboardInterrupt`."""
        if self.requested:
            raise KeyboardInterrupt
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def wait(self, poll: float = 0.2, tick: Callable[[], None] | None = None) -> None:
        """Block until a stop is requested, calling ``tick`` every ``poll`` seconds."""
        while not self.requested:
            time.sleep(poll)
            if tick is not None:
                tick()


# --- sample datasets ----------------------------------------------------------------

_THEME = "http://publications.europa.eu/resource/authority/data-theme/"
_CC_BY = "https://creativecommons.org/licenses/by/4.0/"
_CC0 = "https://creativecommons.org/publicdomain/zero/1.0/"
_ODBL = "https://opendatacommons.org/licenses/odbl/1-0/"


@dataclass(frozen=True)
class SampleDataset:
    """A realistic dataset description, turned into a descriptor per organization.

    ``{org}`` in distribution URLs, the description and the spatial coverage is
    replaced by the organization's name. The temporal coverage runs from
    ``since`` to the publication day.
    """

    name: str
    title: str
    description: str
    keywords: tuple[str, ...]
    themes: tuple[str, ...]
    license: str
    schema: str
    distributions: tuple[tuple[str, str, str, int | None], ...]
    since: int
    spatial: str
    access: AccessPolicy


SAMPLE_DATASETS: tuple[SampleDataset, ...] = (
    SampleDataset(
        name="weather/stations",
        title="Weather station observations (hourly)",
        description="Temperature, humidity, pressure, precipitation and wind from the "
        "automatic weather stations operated by {org}, quality-controlled every hour.",
        keywords=("weather", "temperature", "precipitation", "wind", "stations"),
        themes=(_THEME + "ENVI",),
        license=_CC_BY,
        schema="https://schemas.{org}.example/weather/station-observation/1.2.json",
        distributions=(
            (
                "text/csv",
                "Hourly observations (CSV)",
                "https://data.{org}.example/weather.csv",
                48_200_000,
            ),
            (
                "application/json",
                "Latest observations (JSON API)",
                "https://api.{org}.example/weather/latest",
                None,
            ),
        ),
        since=1420070400,  # 2015-01-01
        spatial="13.08,52.33,13.76,52.68",
        access=AccessPolicy(mode="open"),
    ),
    SampleDataset(
        name="air-quality/pm",
        title="Air quality: PM2.5, PM10 and NO2 at street level",
        description="Particulate matter (PM2.5, PM10) and nitrogen dioxide measured every "
        "15 minutes by {org}'s roadside sensors; raw and validated series.",
        keywords=("air quality", "pm2.5", "pm10", "no2", "pollution"),
        themes=(_THEME + "ENVI", _THEME + "HEAL"),
        license=_CC_BY,
        schema="https://schemas.{org}.example/air/measurement/2.0.json",
        distributions=(
            (
                "text/csv",
                "15-minute series (CSV)",
                "https://data.{org}.example/air/pm.csv",
                12_500_000,
            ),
            (
                "application/geo+json",
                "Sensor locations",
                "https://data.{org}.example/air/sensors.geojson",
                84_000,
            ),
        ),
        since=1577836800,  # 2020-01-01
        spatial="POINT(13.404954 52.520008)",
        access=AccessPolicy(mode="open"),
    ),
    SampleDataset(
        name="traffic/counts",
        title="Traffic counts by road segment (15-minute)",
        description="Vehicle counts and average speeds from induction loops and cameras on "
        "the main road network managed by {org}.",
        keywords=("traffic", "mobility", "vehicles", "counts", "roads"),
        themes=(_THEME + "TRAN",),
        license=_ODBL,
        schema="https://schemas.{org}.example/traffic/count/1.0.json",
        distributions=(
            ("text/csv", "Counts per segment (CSV)", "request", 310_000_000),
            (
                "application/vnd.apache.parquet",
                "Counts per segment (Parquet)",
                "request",
                95_000_000,
            ),
        ),
        since=1514764800,  # 2018-01-01
        spatial="Metropolitan road network of {org}",
        access=AccessPolicy(
            mode="request", purposes=("urban-planning", "research"), max_validity_days=180
        ),
    ),
    SampleDataset(
        name="health/hospital-beds",
        title="Hospital bed capacity (daily)",
        description="Available and occupied beds by ward type (general, intensive care, "
        "paediatric) in the hospitals of {org}, reported daily at 08:00.",
        keywords=("health", "hospital", "beds", "capacity", "icu"),
        themes=(_THEME + "HEAL",),
        license="Restricted: public-health use only",
        schema="https://schemas.{org}.example/health/bed-capacity/1.1.json",
        distributions=(("text/csv", "Daily bed capacity (CSV)", "request", 2_400_000),),
        since=1577836800,  # 2020-01-01
        spatial="Hospital catchment area of {org}",
        access=AccessPolicy(
            mode="request", purposes=("public-health", "emergency-planning"), max_validity_days=90
        ),
    ),
    SampleDataset(
        name="energy/grid-load",
        title="Electricity grid load and generation mix (5-minute)",
        description="Total load, renewable share and cross-border flows on the distribution "
        "grid of {org}.",
        keywords=("energy", "electricity", "grid", "load", "renewables"),
        themes=(_THEME + "ENER",),
        license=_CC_BY,
        schema="https://schemas.{org}.example/energy/grid-load/1.0.json",
        distributions=(
            (
                "text/csv",
                "5-minute load (CSV)",
                "https://data.{org}.example/energy/load.csv",
                64_000_000,
            ),
        ),
        since=1609459200,  # 2021-01-01
        spatial="5.87,47.27,15.04,55.06",
        access=AccessPolicy(mode="open"),
    ),
    SampleDataset(
        name="transport/bus-positions",
        title="Real-time bus positions (GTFS-Realtime)",
        description="Vehicle positions and trip updates of {org}'s bus fleet, refreshed "
        "every 10 seconds, with the matching static GTFS timetable.",
        keywords=("public transport", "bus", "gtfs", "real-time", "vehicles"),
        themes=(_THEME + "TRAN",),
        license=_CC_BY,
        schema="https://gtfs.org/realtime/reference/",
        distributions=(
            (
                "application/x-protobuf",
                "Vehicle positions feed",
                "https://rt.{org}.example/gtfs-rt",
                None,
            ),
            (
                "application/zip",
                "Static GTFS timetable",
                "https://data.{org}.example/gtfs.zip",
                18_000_000,
            ),
        ),
        since=1640995200,  # 2022-01-01
        spatial="Bus network of {org}",
        access=AccessPolicy(mode="open"),
    ),
    SampleDataset(
        name="water/quality",
        title="Drinking water quality samples",
        description="Laboratory results (microbiology, nitrate, lead, hardness) of drinking "
        "water samples taken across {org}'s supply zones.",
        keywords=("water", "drinking water", "quality", "laboratory", "samples"),
        themes=(_THEME + "ENVI", _THEME + "HEAL"),
        license=_CC0,
        schema="https://schemas.{org}.example/water/sample-result/1.0.json",
        distributions=(
            (
                "text/csv",
                "Sample results (CSV)",
                "https://data.{org}.example/water/quality.csv",
                5_600_000,
            ),
        ),
        since=1420070400,  # 2015-01-01
        spatial="Water supply zones of {org}",
        access=AccessPolicy(mode="open"),
    ),
    SampleDataset(
        name="population/census-tracts",
        title="Population by census tract, age and sex",
        description="Resident population per census tract, in five-year age bands, from "
        "the population register of {org}.",
        keywords=("population", "census", "demographics", "age"),
        themes=(_THEME + "SOCI", _THEME + "REGI"),
        license=_CC0,
        schema="https://schemas.{org}.example/population/tract/1.0.json",
        distributions=(
            (
                "text/csv",
                "Population table (CSV)",
                "https://data.{org}.example/population.csv",
                3_100_000,
            ),
            (
                "application/geo+json",
                "Census tract boundaries",
                "https://data.{org}.example/tracts.geojson",
                41_000_000,
            ),
        ),
        since=1262304000,  # 2010-01-01
        spatial="Census tracts of {org}",
        access=AccessPolicy(mode="open"),
    ),
    SampleDataset(
        name="mobility/bike-share",
        title="Bike-share station availability",
        description="Bikes and docks available at every station of {org}'s bike-share "
        "scheme, as a GBFS feed and a daily archive.",
        keywords=("bike share", "cycling", "mobility", "gbfs"),
        themes=(_THEME + "TRAN",),
        license=_CC_BY,
        schema="https://github.com/MobilityData/gbfs/blob/master/gbfs.md",
        distributions=(
            ("application/json", "GBFS feed", "https://gbfs.{org}.example/gbfs.json", None),
        ),
        since=1640995200,  # 2022-01-01
        spatial="Service area of {org}'s bike share",
        access=AccessPolicy(mode="open"),
    ),
    SampleDataset(
        name="agriculture/soil-moisture",
        title="Soil moisture at 10, 30 and 60 cm (daily)",
        description="Volumetric soil moisture from {org}'s agricultural monitoring network, "
        "for irrigation planning and drought early warning.",
        keywords=("agriculture", "soil", "moisture", "drought"),
        themes=(_THEME + "AGRI", _THEME + "ENVI"),
        license=_CC_BY,
        schema="https://schemas.{org}.example/agri/soil-moisture/1.0.json",
        distributions=(("text/csv", "Daily means (CSV)", "request", 7_800_000),),
        since=1546300800,  # 2019-01-01
        spatial="Agricultural monitoring sites of {org}",
        access=AccessPolicy(mode="request", purposes=("research", "agriculture")),
    ),
    SampleDataset(
        name="economy/business-register",
        title="Register of businesses and their activity codes",
        description="Registered businesses with NACE activity codes, legal form and "
        "registration date, as kept by {org}; personal data removed.",
        keywords=("economy", "businesses", "register", "nace"),
        themes=(_THEME + "ECON",),
        license="Licence on request",
        schema="https://schemas.{org}.example/economy/business/3.0.json",
        distributions=(("application/json", "Register extract (JSON)", "request", 220_000_000),),
        since=1325376000,  # 2012-01-01
        spatial="Jurisdiction of {org}",
        access=AccessPolicy(
            mode="request", purposes=("statistics", "research"), max_validity_days=365
        ),
    ),
    SampleDataset(
        name="education/school-enrolment",
        title="School enrolment by school and grade",
        description="Pupils enrolled per school, grade and school year in the district of {org}.",
        keywords=("education", "schools", "enrolment", "pupils"),
        themes=(_THEME + "EDUC",),
        license=_CC_BY,
        schema="https://schemas.{org}.example/education/enrolment/1.0.json",
        distributions=(
            (
                "text/csv",
                "Enrolment table (CSV)",
                "https://data.{org}.example/schools.csv",
                900_000,
            ),
        ),
        since=1483228800,  # 2017-01-01
        spatial="School district of {org}",
        access=AccessPolicy(mode="open"),
    ),
)

#: The dataset the tour publishes, then updates (first and second title).
TOUR_DATASET = SampleDataset(
    name="water/river-levels",
    title="River levels (hourly)",
    description="Water levels at {org}'s river gauges, measured every hour.",
    keywords=("river", "water level", "hydrology", "gauges"),
    themes=(_THEME + "ENVI",),
    license=_CC_BY,
    schema="https://schemas.{org}.example/hydro/level/1.0.json",
    distributions=(
        (
            "text/csv",
            "Hourly levels (CSV)",
            "https://data.{org}.example/river-levels.csv",
            3_200_000,
        ),
    ),
    since=1609459200,  # 2021-01-01
    spatial="River basin of {org}",
    access=AccessPolicy(mode="open"),
)
TOUR_UPDATED_TITLE = "River levels and flood warnings (hourly)"
TOUR_SEARCH = "river"


def samples_for(org_index: int, per_org: int) -> list[SampleDataset]:
    """The samples organization ``org_index`` publishes: ``per_org`` of them, rotating."""
    count = len(SAMPLE_DATASETS)
    return [SAMPLE_DATASETS[(org_index * per_org + j) % count] for j in range(min(per_org, count))]


def build_descriptor(
    sample: SampleDataset,
    org: DevnetOrg,
    node: PeerId,
    *,
    sequence: int,
    now: int,
    title: str | None = None,
) -> Descriptor:
    """The descriptor of ``sample`` for ``org``, published by ``node`` at ``now``.

    Raises:
        InvalidInput, RecordTooLarge: a field breaks the descriptor's limits.
    """
    today = now - now % _DAY
    return Descriptor(
        dataset_id=DatasetId(org.org_id, sample.name),
        title=title or sample.title,
        description=sample.description.format(org=org.name),
        keywords=sample.keywords,
        themes=sample.themes,
        publisher_node=node,
        license=sample.license,
        version=f"{sequence}.0",
        issued=min(sample.since, now),
        modified=now,
        schema=sample.schema.format(org=org.name),
        distributions=tuple(
            Distribution(media_type, dist_title, access.format(org=org.name), size)
            for media_type, dist_title, access, size in sample.distributions
        ),
        temporal=(sample.since, max(sample.since, today)),
        spatial=sample.spatial.format(org=org.name),
        access_policy=sample.access,
        sequence=sequence,
        expires=now + DESCRIPTOR_DAYS * _DAY,
    )


def sign_for_node(node: DevnetNode, desc: Descriptor, now: int) -> bytes:
    """Sign ``desc`` with ``node``'s key and its publisher certificate of the dataset's org.

    Raises:
        NotFound: the node holds no valid publisher certificate of that org.
        DatanetError: the descriptor cannot be signed (see ``sign_descriptor``).
    """
    home = Home(node.home)
    chain = home.membership_chain(now, org=desc.dataset_id.org, role=Role.PUBLISHER)
    return sign_descriptor(desc, node.key, chain)


def next_sequence(client: Client, dataset_id: DatasetId) -> tuple[int, Resolved | None]:
    """The sequence number to publish ``dataset_id`` with next, and what is held now."""
    try:
        held = client.resolve(dataset_id)
    except NotFound:
        return 1, None
    return held.sequence + 1, held


@dataclass(frozen=True)
class PublishedSample:
    """A sample dataset after :func:`publish_samples`.

    ``replicas`` is None when a valid copy was already published (a restarted
    devnet keeps its datasets) and nothing was sent.
    """

    dataset_id: str
    title: str
    org: str
    node: DevnetNode
    sequence: int
    replicas: int | None
    ms: float


def publish_samples(
    devnet: Devnet,
    *,
    now: int,
    per_org: int = 3,
    on_published: Callable[[PublishedSample], None] | None = None,
    timeout: float = 30.0,
) -> list[PublishedSample]:
    """Publish ``per_org`` sample datasets per organization through its first node's API.

    A dataset its node already holds, valid for more than a day, is kept as it is.

    Raises:
        DatanetError: signing or publishing failed (the API's own error).
    """
    out = []
    for index, org in enumerate(devnet.orgs):
        node = devnet.publisher_of(org)
        with Client(node.home, timeout=timeout) as client:
            for sample in samples_for(index, per_org):
                started = time.perf_counter()
                dataset_id = DatasetId(org.org_id, sample.name)
                sequence, held = next_sequence(client, dataset_id)
                if held is not None and _valid_until(held) > now + RENEW_MARGIN:
                    result = PublishedSample(
                        str(dataset_id),
                        str(held.descriptor.get("title", "")),
                        org.name,
                        node,
                        held.sequence,
                        None,
                        _ms(started),
                    )
                else:
                    desc = build_descriptor(sample, org, node.peer_id, sequence=sequence, now=now)
                    published = client.publish(sign_for_node(node, desc, now))
                    result = PublishedSample(
                        published.dataset_id,
                        desc.title,
                        org.name,
                        node,
                        published.sequence,
                        published.replicas,
                        _ms(started),
                    )
                out.append(result)
                if on_published is not None:
                    on_published(result)
    return out


def _valid_until(found: Resolved) -> int:
    expires = found.descriptor.get("expires")
    limit = expires if isinstance(expires, int) else 0
    return min(limit, found.certificate.not_after)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


# --- the tour -----------------------------------------------------------------------


@dataclass(frozen=True)
class TourStep:
    """One narrated step of the tour: what was done, on which node, how long it took."""

    number: int
    action: str
    node: DevnetNode
    text: str
    ms: float
    detail: dict[str, Any] = field(default_factory=dict)


def run_tour(
    devnet: Devnet,
    *,
    now: int,
    on_step: Callable[[TourStep], None] | None = None,
    timeout: float = 30.0,
) -> list[TourStep]:
    """Publish → resolve from another org's node → update → resolve from the network → search.

    Every step goes through a node's HTTP API. The first organization publishes
    :data:`TOUR_DATASET` from its first node; the first node of another
    organization resolves it, sees the update after asking the network again
    (``refresh``), and finds it by full-text search.

    Raises:
        InvalidInput: the devnet has a single organization.
        TourFailed: a step failed or showed the wrong result; names the step.
    """
    org = devnet.orgs[0]
    publisher = devnet.publisher_of(org)
    reader = devnet.outsider(org)
    steps: list[TourStep] = []
    dataset_id = DatasetId(org.org_id, TOUR_DATASET.name)

    def record(action: str, node: DevnetNode, text: str, started: float, **detail: Any) -> None:
        step = TourStep(len(steps) + 1, action, node, text, _ms(started), detail)
        steps.append(step)
        if on_step is not None:
            on_step(step)

    def step_failed(action: str, exc: BaseException | str) -> TourFailed:
        return TourFailed(f"tour step {len(steps) + 1} ({action}) failed: {exc}")

    with (
        Client(publisher.home, timeout=timeout) as pub,
        Client(reader.home, timeout=timeout) as read,
    ):
        # 1. publish
        started = time.perf_counter()
        try:
            sequence, _ = next_sequence(pub, dataset_id)
            desc = build_descriptor(
                TOUR_DATASET, org, publisher.peer_id, sequence=sequence, now=now
            )
            published = pub.publish(sign_for_node(publisher, desc, now))
        except DatanetError as exc:
            raise step_failed("publish", exc) from exc
        record(
            "publish",
            publisher,
            f'{org.name} publishes {dataset_id} "{desc.title}" (sequence {published.sequence}) '
            f"from {publisher.name}; stored on {published.replicas} peer(s)",
            started,
            dataset_id=str(dataset_id),
            sequence=published.sequence,
            replicas=published.replicas,
        )

        # 2. resolve from another organization's node
        started = time.perf_counter()
        try:
            found = read.resolve(dataset_id)
        except DatanetError as exc:
            raise step_failed("resolve", exc) from exc
        if found.sequence != sequence:
            raise step_failed("resolve", f"got sequence {found.sequence}, expected {sequence}")
        record(
            "resolve",
            reader,
            f'{reader.name} of {reader.org.name} resolves it: "{found.descriptor.get("title")}" '
            f"(sequence {found.sequence}), signed by {found.certificate.org_name}'s node "
            f"{_short(found.certificate.node)}",
            started,
            sequence=found.sequence,
            title=found.descriptor.get("title"),
            signed_by=found.certificate.node,
        )

        # 3. update: a higher sequence and a new title
        started = time.perf_counter()
        sequence += 1
        try:
            desc = build_descriptor(
                TOUR_DATASET,
                org,
                publisher.peer_id,
                sequence=sequence,
                now=now,
                title=TOUR_UPDATED_TITLE,
            )
            updated = pub.publish(sign_for_node(publisher, desc, now))
        except DatanetError as exc:
            raise step_failed("update", exc) from exc
        record(
            "update",
            publisher,
            f"{org.name} publishes sequence {updated.sequence} with the new title "
            f'"{TOUR_UPDATED_TITLE}"; stored on {updated.replicas} peer(s)',
            started,
            sequence=updated.sequence,
            replicas=updated.replicas,
        )

        # 4. resolve again, asking the network
        started = time.perf_counter()
        try:
            again = read.resolve(dataset_id, refresh=True)
        except DatanetError as exc:
            raise step_failed("resolve", exc) from exc
        title = again.descriptor.get("title")
        if again.sequence != sequence or title != TOUR_UPDATED_TITLE:
            raise step_failed(
                "resolve", f"got sequence {again.sequence} {title!r}, expected the update"
            )
        record(
            "resolve",
            reader,
            f"{reader.name} asks the network again (refresh) and gets the new version: "
            f'"{title}" (sequence {again.sequence})',
            started,
            sequence=again.sequence,
            title=title,
            refresh=True,
        )

        # 5. search
        started = time.perf_counter()
        try:
            hits = read.search(TOUR_SEARCH)
        except DatanetError as exc:
            raise step_failed("search", exc) from exc
        ours = [h for h in hits if h.dataset_id == str(dataset_id)]
        if not ours:
            raise step_failed("search", f"no hit for {dataset_id} among {len(hits)}")
        record(
            "search",
            reader,
            f"{reader.name} searches its catalog for {TOUR_SEARCH!r}: {len(hits)} hit(s), "
            f'including "{ours[0].title}"',
            started,
            query=TOUR_SEARCH,
            hits=[h.dataset_id for h in hits],
        )
    return steps


def _short(peer: str) -> str:
    return f"{peer[:12]}…{peer[-4:]}" if len(peer) > 20 else peer
