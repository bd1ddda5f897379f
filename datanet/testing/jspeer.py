"""A stock js-libp2p peer in a child process, for interoperability tests.

The peer is ``tests/interop/js/peer.mjs``: js-libp2p with ``/datanet/kad/1.0.0``,
a structural validator and highest-sequence selector for the ``dn`` namespace,
and GossipSub with datanet's StrictNoSign policy. Its exact npm packages are in
the lockfile next to it. :func:`install_js_peer` installs them with ``npm ci``
into a cache directory named by the lockfile's hash (reused when present);
:func:`open_js_peer` runs the peer and :class:`JsPeer` drives it.

Protocol (one JSON object per line, UTF-8): the peer first prints ``{"ready": true,
"peer": <peer id>, "addrs": [...]}``; then each command ``{"id": n, "cmd": <name>,
...}`` on its stdin is answered by one line ``{"id": n, "ok": true, ...}`` or
``{"id": n, "ok": false, "error": <text>}`` on its stdout. Bytes travel as hex.

Invariants:
* The peer listens on 127.0.0.1 only, and is killed when the context exits.
* A command that gets no answer within its timeout raises ``trio.TooSlowError``;
  a command the peer answers with ``ok: false`` raises :class:`JsPeerError`.
* Answer lines are bounded (:data:`MAX_LINE`); the peer's stderr is kept (bounded)
  for failure messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from datanet.errors import DatanetError

__all__ = [
    "MAX_LINE",
    "GossipMessage",
    "JsPeer",
    "JsPeerError",
    "install_js_peer",
    "js_peer_missing",
    "open_js_peer",
]

MAX_LINE = 4 << 20
"""Longest answer line read from the peer (bytes travel as hex, so 2 MiB of data)."""

_STDERR_KEPT = 64 * 1024


class JsPeerError(DatanetError):
    """The js peer could not be installed or started, or refused a command."""

    code = "js_peer"


def js_peer_missing() -> str | None:
    """Why the js peer cannot run here (no ``node`` or ``npm`` on PATH), or None."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"js-libp2p interop needs `{tool}` on PATH (Node.js 20 or newer, with npm)"
    return None


def install_js_peer(
    source: Path, cache_root: Path | None = None, *, scripts: Sequence[Path] = ()
) -> Path:
    """Install the peer's locked npm packages once; returns the directory to run it from.

    ``source`` holds ``peer.mjs`` (and ``dnrecord.mjs``, the ``dn`` record
    validator it imports), ``package.json`` and ``package-lock.json``
    (``tests/interop/js`` in the repository). ``scripts`` are more scripts that run
    on the same packages (``benchmarks/js/peernet.mjs``): each is copied in next to
    ``peer.mjs`` under its own name, so one installation serves both.

    The directory is ``cache_root/<sha256 of package-lock.json, 16 hex>/`` (default
    ``~/.cache/datanet/interop``, or ``$XDG_CACHE_HOME/datanet/interop``); an
    installation that finished there before is reused. The scripts are copied in at
    every call, so edits to them need no reinstall.

    Raises:
        JsPeerError: ``npm ci`` failed (its output is in the message).
    """
    lock = (source / "package-lock.json").read_bytes()
    if cache_root is None:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache_root = Path(base) / "datanet" / "interop"
    target = cache_root / hashlib.sha256(lock).hexdigest()[:16]
    done = target / ".installed"
    if not done.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise JsPeerError("npm is not on PATH: cannot install the js peer's packages")
        staging = cache_root / f".{target.name}.{os.getpid()}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(source / name, staging / name)
        result = subprocess.run(  # noqa: S603 - fixed argv
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=staging,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise JsPeerError(f"npm ci failed ({result.returncode}): {result.stderr[-4000:]}")
        (staging / ".installed").write_text("ok\n")
        try:
            staging.rename(target)  # atomic: a concurrent installer that won keeps its copy
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    for module in sorted(source.glob("*.mjs")):  # peer.mjs and the modules it imports
        shutil.copyfile(module, target / module.name)
    for script in scripts:
        shutil.copyfile(script, target / script.name)
    return target


@dataclass(frozen=True)
class GossipMessage:
    """A gossip message the js peer received."""

    topic: str
    data: bytes
    source: str


class JsPeer:
    """The parent side of the pipe to one running js peer (see the module docstring)."""

    def __init__(self, process: trio.Process, peer_id: str, addrs: list[str]) -> None:
        self._process = process
        self.peer_id = peer_id
        """The js peer's libp2p peer id (``12D3KooW…``)."""
        self.addrs = addrs
        """Its listen multiaddrs, each ending in ``/p2p/<peer id>``."""
        self._ids = itertools.count(1)
        self._waiting: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._lock = trio.Lock()
        self.stderr = bytearray()

    async def call(self, cmd: str, *, timeout: float = 60.0, **args: Any) -> dict[str, Any]:
        """Run ``cmd`` on the peer and return its answer.

        Raises:
            JsPeerError: the peer answered ``ok: false`` or is gone.
            trio.TooSlowError: no answer within ``timeout`` seconds.
        """
        ident = next(self._ids)
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._waiting[ident] = send
        line = json.dumps({"id": ident, "cmd": cmd, **args}).encode() + b"\n"
        try:
            with trio.fail_after(timeout):
                assert self._process.stdin is not None
                async with self._lock:
                    await self._process.stdin.send_all(line)
                answer = await receive.receive()
        finally:
            self._waiting.pop(ident, None)
        if not answer.get("ok"):
            raise JsPeerError(f"js peer {cmd}: {answer.get('error')}")
        return answer

    async def _read(self, first: trio.Event, ready: list[dict[str, Any]]) -> None:
        assert self._process.stdout is not None
        buffer = bytearray()
        async for chunk in self._process.stdout:
            buffer += chunk
            while b"\n" in buffer:
                line, _, rest = bytes(buffer).partition(b"\n")
                buffer = bytearray(rest)
                message = json.loads(line)
                if not first.is_set():
                    ready.append(message)
                    first.set()
                    continue
                waiter = self._waiting.get(message.get("id"))
                if waiter is not None:
                    waiter.send_nowait(message)
            if len(buffer) > MAX_LINE:
                raise JsPeerError("js peer answer line too long")
        for waiter in self._waiting.values():
            waiter.send_nowait({"ok": False, "error": "the js peer exited"})
        first.set()

    async def _drain_stderr(self) -> None:
        assert self._process.stderr is not None
        async for chunk in self._process.stderr:
            self.stderr += chunk
            del self.stderr[:-_STDERR_KEPT]

    # The commands, typed.

    async def dial(self, addr: str, *, timeout: float = 30.0) -> str:
        """Connect to ``addr`` (with ``/p2p/<id>``); returns the remote peer id."""
        return str((await self.call("dial", addr=addr, timeout=timeout))["peer"])

    async def connections(self) -> list[str]:
        """Peer ids the js peer holds an open connection to."""
        return list((await self.call("connections"))["peers"])

    async def protocols(self, peer: str) -> list[str]:
        """The protocols ``peer`` announced by identify, as the js peer store holds them."""
        return list((await self.call("protocols", peer=peer))["protocols"])

    async def routing_table(self) -> list[str]:
        """Peer ids in the js peer's kad routing table."""
        return list((await self.call("routing"))["peers"])

    async def put(self, key: bytes, value: bytes) -> tuple[list[str], list[str]]:
        """A DHT put of ``value`` under ``key``; returns (peers that echoed it, errors)."""
        answer = await self.call("put", key=key.hex(), value=value.hex())
        return list(answer["acked"]), list(answer["errors"])

    async def get(self, key: bytes) -> tuple[list[tuple[str, bytes]], bytes | None]:
        """A DHT get of ``key``: (every value a remote peer answered with, and who sent
        it; the DHT's pick, possibly the js peer's own copy, or None)."""
        answer = await self.call("get", key=key.hex())
        values = [(v["from"], bytes.fromhex(v["value"])) for v in answer["values"]]
        return values, None if answer["best"] is None else bytes.fromhex(answer["best"])

    async def provide(self, multihash: bytes) -> None:
        """Announce the js peer as a provider of ``multihash`` (a raw-codec CID of it)."""
        await self.call("provide", multihash=multihash.hex())

    async def find_providers(self, multihash: bytes) -> list[str]:
        """Peer ids of the providers of ``multihash`` the DHT finds."""
        return list((await self.call("findprovs", multihash=multihash.hex()))["providers"])

    async def subscribe(self, topic: str) -> None:
        """Join the gossipsub ``topic``."""
        await self.call("subscribe", topic=topic)

    async def subscribers(self, topic: str) -> list[str]:
        """Peers the js peer knows to be subscribed to ``topic``."""
        return list((await self.call("subscribers", topic=topic))["peers"])

    async def publish(self, topic: str, data: bytes) -> list[str]:
        """Publish ``data`` on ``topic``; returns the peers it was sent to."""
        return list((await self.call("publish", topic=topic, data=data.hex()))["recipients"])

    async def received(self, topic: str) -> list[GossipMessage]:
        """Every gossip message received on ``topic`` so far."""
        answer = await self.call("received", topic=topic)
        return [
            GossipMessage(m["topic"], bytes.fromhex(m["data"]), m["from"])
            for m in answer["messages"]
        ]


@contextlib.asynccontextmanager
async def open_js_peer(directory: Path, *, start_timeout: float = 60.0) -> AsyncIterator[JsPeer]:
    """Run the js peer installed in ``directory`` (see :func:`install_js_peer`).

    Raises:
        JsPeerError: the peer exited or printed no ready line within ``start_timeout``.
    """
    node = shutil.which("node")
    if node is None:
        raise JsPeerError("node is not on PATH")
    process = await trio.lowlevel.open_process(
        [node, str(directory / "peer.mjs")],
        cwd=directory,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        async with trio.open_nursery() as nursery:
            peer = JsPeer(process, "", [])
            first, ready = trio.Event(), list[dict[str, Any]]()
            nursery.start_soon(peer._read, first, ready)
            nursery.start_soon(peer._drain_stderr)
            with trio.move_on_after(start_timeout):
                await first.wait()
            if not ready or not ready[0].get("ready"):
                said = bytes(peer.stderr[-4000:]).decode(errors="replace")
                raise JsPeerError(f"the js peer did not start: {said}")
            peer.peer_id = str(ready[0]["peer"])
            peer.addrs = [str(a) for a in ready[0]["addrs"]]
            try:
                yield peer
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await process.wait()
