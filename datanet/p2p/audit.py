"""The audit protocol, ``/datanet/audit/1.0.0``: log nodes announce heads, witnesses ask for proofs.

One MessagePack request and one response per stream (:mod:`.rpc`)::

    {"op": "announce", "head": <signed tree head>}  -> {"ok": <witnessed here?>}
    {"op": "head"}                                  -> {"head": <signed tree head>}
    {"op": "consistency", "from": int, "to": int}   -> {"proof": [<32-byte hash>…]}
    {"op": "cosign", "cosig": <signed cosignature>} -> {"ok": true}

This module only carries the frames within their bounds and times and checks
their shape; what they mean (verifying heads, proofs and cosignatures) is
:mod:`datanet.node.witness`'s business.

Invariants:
* A frame is at most :data:`MAX_AUDIT_FRAME` bytes both ways; a request is
  answered within :data:`AUDIT_TIMEOUT` seconds or refused.
* Answers of the wrong shape raise :class:`~datanet.errors.DecodeError` here,
  so the caller only ever sees well-formed values.
* The service uses only the host's :class:`~.service.ServiceHost` surface.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from datanet.errors import DecodeError
from datanet.p2p import rpc
from datanet.p2p.service import ServiceHost
from identity.keys import PeerId

__all__ = [
    "AUDIT_PROTOCOL",
    "AUDIT_TIMEOUT",
    "MAX_AUDIT_FRAME",
    "AuditTransport",
]

AUDIT_PROTOCOL = "/datanet/audit/1.0.0"
#: A signed head or cosignature (6 KiB), or a proof (128 hashes), and the framing.
MAX_AUDIT_FRAME = 16 * 1024
AUDIT_TIMEOUT = 10.0
_MAX_HASHES = 128
_MAX_ENVELOPE = 6 * 1024

AuditHandler = Callable[[dict[str, Any], bytes], Awaitable[Any]]
"""``handler(request, from_peer_bytes) -> response``: the request is a checked map."""


def _check_request(request: Any) -> dict[str, Any]:
    if not isinstance(request, dict):
        raise DecodeError("an audit request is a map")
    op = request.get("op")
    if op == "head":
        return {"op": "head"}
    if op == "consistency":
        first, last = request.get("from"), request.get("to")
        if not all(type(v) is int and 0 <= v < 2**63 for v in (first, last)):
            raise DecodeError("a consistency request names two sizes")
        return {"op": "consistency", "from": first, "to": last}
    if op == "announce":
        head = request.get("head")
        if not isinstance(head, bytes) or len(head) > _MAX_ENVELOPE:
            raise DecodeError(f"an announced head is bytes of at most {_MAX_ENVELOPE}")
        return {"op": "announce", "head": head}
    if op == "cosign":
        cosig = request.get("cosig")
        if not isinstance(cosig, bytes) or len(cosig) > _MAX_ENVELOPE:
            raise DecodeError(f"a cosignature is bytes of at most {_MAX_ENVELOPE}")
        return {"op": "cosign", "cosig": cosig}
    raise DecodeError(f"unknown audit op {str(op)[:40]!r}")


class AuditTransport:
    """Client and server of ``/datanet/audit/1.0.0`` on one host."""

    def __init__(self, host: ServiceHost, *, timeout: float = AUDIT_TIMEOUT) -> None:
        self._host = host
        self.timeout = timeout

    def serve(self, handler: AuditHandler) -> None:
        """Answer inbound requests with ``handler(request, from_peer_bytes)``."""

        async def checked(request: Any, peer: bytes) -> Any:
            return await handler(_check_request(request), peer)

        serve = rpc.request_stream_handler(checked, MAX_AUDIT_FRAME, self.timeout)
        self._host.set_stream_handler(AUDIT_PROTOCOL, serve, gated=True)

    async def _ask(self, peer: PeerId, request: dict[str, Any], addrs: Sequence[str]) -> Any:
        answer = await rpc.request(
            self._host,
            peer,
            AUDIT_PROTOCOL,
            request,
            timeout=self.timeout,
            max_size=MAX_AUDIT_FRAME,
            addrs=addrs,
        )
        if not isinstance(answer, dict):
            raise DecodeError("an audit answer is a map")
        return answer

    async def head(self, peer: PeerId, *, addrs: Sequence[str] = ()) -> bytes:
        """``peer``'s latest signed tree head (unverified bytes).

        Raises:
            DecodeError: the answer is malformed.
            RemoteError, PeerUnreachable, Timeout, ProtocolNotSupported, NetworkError.
        """
        answer = await self._ask(peer, {"op": "head"}, addrs)
        head = answer.get("head")
        if not isinstance(head, bytes) or len(head) > _MAX_ENVELOPE:
            raise DecodeError("the answer carries no signed head")
        return head

    async def consistency(
        self, peer: PeerId, first: int, last: int, *, addrs: Sequence[str] = ()
    ) -> list[bytes]:
        """The consistency proof between ``peer``'s trees of ``first`` and ``last`` entries.

        Raises:
            DecodeError: the answer is malformed.
            RemoteError, PeerUnreachable, Timeout, ProtocolNotSupported, NetworkError.
        """
        answer = await self._ask(peer, {"op": "consistency", "from": first, "to": last}, addrs)
        proof = answer.get("proof")
        if (
            not isinstance(proof, list)
            or len(proof) > _MAX_HASHES
            or not all(isinstance(h, bytes) and len(h) == 32 for h in proof)
        ):
            raise DecodeError("the answer carries no proof (a list of 32-byte hashes)")
        return proof

    async def cosign(self, peer: PeerId, cosig: bytes, *, addrs: Sequence[str] = ()) -> bool:
        """Hand ``peer`` our cosignature of one of its heads; whether it kept it.

        Raises:
            DecodeError: the answer is malformed.
            RemoteError, PeerUnreachable, Timeout, ProtocolNotSupported, NetworkError.
        """
        answer = await self._ask(peer, {"op": "cosign", "cosig": cosig}, addrs)
        ok = answer.get("ok")
        if not isinstance(ok, bool):
            raise DecodeError("the answer does not say whether the cosignature was kept")
        return ok

    async def announce(self, peer: PeerId, head: bytes, *, addrs: Sequence[str] = ()) -> bool:
        """Hand ``peer`` one of our signed heads; whether it witnesses our log.

        Raises:
            DecodeError: the answer is malformed.
            RemoteError (the head was refused), PeerUnreachable, Timeout,
            ProtocolNotSupported, NetworkError.
        """
        answer = await self._ask(peer, {"op": "announce", "head": head}, addrs)
        ok = answer.get("ok")
        if not isinstance(ok, bool):
            raise DecodeError("the answer does not say whether the head is witnessed")
        return ok
