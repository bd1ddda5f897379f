"""Multiaddrs as datanet uses them: TCP over IPv4, IPv6 or DNS, optionally ``/p2p/<id>``.

Addresses cross the adapter's API as text (``/ip4/127.0.0.1/tcp/4001/p2p/12D3…``)
and travel in kad messages as binary multiaddrs. Both directions are checked here,
because the addresses come from peers.

Invariants:
* :func:`parse_addr` accepts exactly ``/(ip4|ip6|dns|dns4|dns6)/<host>/tcp/<port>``
  with an optional ``/p2p/<Ed25519 peer id>``; anything else is refused.
* :func:`addr_from_bytes` accepts only binary multiaddrs that re-encode to the
  same bytes (py-multiaddr silently accepts truncated input).
* Nothing here resolves DNS or touches the network.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from datanet.p2p._libp2p import Multiaddr
from identity.errors import DatanetError, DecodeError, InvalidInput
from identity.keys import PeerId

__all__ = [
    "MAX_ADDR_LEN",
    "TcpAddr",
    "addr_from_bytes",
    "addr_to_bytes",
    "as_peer",
    "dialable",
    "parse_addr",
    "parse_peer_addr",
]

MAX_ADDR_LEN = 256
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$"
)


@dataclass(frozen=True)
class TcpAddr:
    """A parsed datanet multiaddr."""

    family: str
    host: str
    port: int
    peer: PeerId | None = None

    @property
    def transport(self) -> str:
        """The address without ``/p2p/…``: ``/ip4/127.0.0.1/tcp/4001``."""
        return f"/{self.family}/{self.host}/tcp/{self.port}"

    def __str__(self) -> str:
        return self.transport if self.peer is None else f"{self.transport}/p2p/{self.peer}"


def _check_host(family: str, host: str, text: str) -> str:
    if family in ("dns", "dns4", "dns6"):
        if not _HOSTNAME_RE.match(host):
            raise InvalidInput(f"bad host name in {text[:80]!r}")
        return host
    try:
        if family == "ip4":
            return str(ipaddress.IPv4Address(host))
        if family == "ip6":
            return str(ipaddress.IPv6Address(host))
    except ValueError as exc:
        raise InvalidInput(f"bad address {text[:80]!r}: {exc}") from None
    raise InvalidInput(f"unsupported protocol {family!r} in {text[:80]!r}")


def parse_addr(text: str, *, allow_port_zero: bool = False) -> TcpAddr:
    """Parse and check a multiaddr string.

    Args:
        text: e.g. ``/ip4/10.0.0.5/tcp/4001/p2p/12D3KooW…``.
        allow_port_zero: accept ``tcp/0`` (listen addresses: "any free port").

    Raises:
        InvalidInput: not a TCP multiaddr datanet can dial.
    """
    if not isinstance(text, str) or len(text) > MAX_ADDR_LEN:
        raise InvalidInput(f"not a multiaddr: {str(text)[:80]!r}")
    parts = text.split("/")
    if len(parts) not in (5, 7) or parts[0] != "" or parts[3] != "tcp":
        raise InvalidInput(
            f"expected /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>[/p2p/<id>], got {text[:80]!r}"
        )
    family, host, port_text = parts[1], parts[2], parts[4]
    host = _check_host(family, host, text)
    if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
        raise InvalidInput(f"bad TCP port in {text[:80]!r}")
    port = int(port_text)
    if port == 0 and not allow_port_zero:
        raise InvalidInput(f"TCP port 0 cannot be dialled: {text[:80]!r}")
    peer = None
    if len(parts) == 7:
        if parts[5] != "p2p":
            raise InvalidInput(f"expected /p2p/<peer id> at the end of {text[:80]!r}")
        try:
            peer = PeerId.parse(parts[6])
        except DecodeError as exc:
            raise InvalidInput(f"bad peer id in {text[:80]!r}: {exc}") from None
    return TcpAddr(family, host, port, peer)


def addr_to_bytes(text: str) -> bytes:
    """The binary multiaddr of a checked address string (as kad messages carry it).

    Raises:
        InvalidInput: not a TCP multiaddr datanet can dial.
    """
    return bytes(Multiaddr(str(parse_addr(text))).to_bytes())


def addr_from_bytes(data: bytes) -> str:
    """Decode a binary multiaddr received from a peer into a checked string.

    Raises:
        DecodeError: malformed, not TCP, or not an address datanet can dial.
    """
    if not isinstance(data, bytes) or not data or len(data) > MAX_ADDR_LEN:
        raise DecodeError("not a binary multiaddr")
    try:
        text = str(Multiaddr(data))
        same = bytes(Multiaddr(text).to_bytes()) == data
    except Exception:  # noqa: BLE001 - py-multiaddr raises TypeError/ValueError/IndexError/its own
        raise DecodeError("not a binary multiaddr") from None
    if not same:
        raise DecodeError("truncated or non-canonical binary multiaddr")
    try:
        return str(parse_addr(text))
    except InvalidInput as exc:
        raise DecodeError(str(exc)) from None


def as_peer(peer: PeerId | bytes) -> PeerId:
    """Accept a :class:`PeerId` or its binary form (as every host method does).

    Raises:
        DecodeError: the bytes are not an Ed25519 peer id.
        InvalidInput: ``peer`` is neither.
    """
    if isinstance(peer, PeerId):
        return peer
    if isinstance(peer, bytes | bytearray):
        return PeerId.from_bytes(bytes(peer))
    raise InvalidInput(f"expected a PeerId or peer id bytes, got {type(peer).__name__}")


def parse_peer_addr(text: str) -> tuple[PeerId, str]:
    """``/ip4/…/tcp/…/p2p/<id>`` -> (peer id, transport address), as bootstrap lists hold them.

    Raises:
        InvalidInput: not a datanet multiaddr, or no ``/p2p/<peer id>`` at its end.
    """
    addr = parse_addr(text)
    if addr.peer is None:
        raise InvalidInput(f"expected an address ending in /p2p/<peer id>, got {text[:80]!r}")
    return addr.peer, addr.transport


def dialable(addrs: Sequence[bytes], limit: int = 8) -> list[str]:
    """The first ``limit`` well-formed addresses of ``addrs`` (binary multiaddrs from peers).

    Peers announce whatever they like; a malformed address is skipped, never raised.
    """
    out: list[str] = []
    for raw in addrs:
        try:
            out.append(addr_from_bytes(raw))
        except DatanetError:
            continue
        if len(out) >= limit:
            break
    return out
