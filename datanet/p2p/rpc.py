"""Request/response protocols on ``/datanet/<name>/<x.y.z>``, as a host service.

One MessagePack request and one response per stream, each varint-framed (the
codec is in :mod:`.streams`). ``host.set_protocol_handler`` and
``host.request`` are built from these two functions, which use only the
:class:`~.service.ServiceHost` surface.

Invariants:
* The handler is reached only by admitted peers (the protocol is gated) and
  gets at most ``max_size`` bytes of request.
* Receiving the request and running the handler are each bounded by the
  protocol's timeout; a handler that overruns answers ``RemoteError("timeout")``.
* A :class:`~datanet.errors.DatanetError` raised by the handler reaches the
  requester as :class:`~._errors.RemoteError` with its code; nothing else does.
* An outbound request that fails or is cancelled resets its stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio

from datanet.errors import DatanetError, Timeout
from datanet.p2p._errors import translate
from datanet.p2p.addrs import as_peer
from datanet.p2p.service import ServiceHost, StreamHandler
from datanet.p2p.streams import (
    FramedStream,
    RequestHandler,
    check_protocol_id,
    read_request,
    send_request,
    write_error,
    write_response,
)
from identity.keys import PeerId

__all__ = ["request", "request_stream_handler"]


def request_stream_handler(handler: RequestHandler, max_size: int, timeout: float) -> StreamHandler:
    """The stream handler that serves one request/response protocol with ``handler``.

    Args:
        handler: ``async handler(request, from_peer_id_bytes) -> response``.
        max_size: largest request and response, in bytes.
        timeout: time to receive the request and, separately, to answer it.
    """

    async def serve(stream: FramedStream, peer: PeerId) -> None:
        with translate(stream.what), trio.fail_after(timeout):
            request = await read_request(stream, max_size)
        try:
            with trio.fail_after(timeout):
                response = await handler(request, peer.to_bytes())
        except trio.TooSlowError:
            await write_error(stream, Timeout("the handler did not answer in time"))
            return
        except DatanetError as exc:
            await write_error(stream, exc)
            return
        with translate(stream.what), trio.fail_after(timeout):
            await write_response(stream, response, max_size)

    return serve


async def request(
    host: ServiceHost,
    peer: PeerId | bytes,
    protocol_id: str,
    obj: Any,
    *,
    timeout: float | None = None,
    max_size: int = 64 * 1024,
    addrs: Sequence[str] = (),
) -> Any:
    """Send one request on a datanet protocol and return the peer's response.

    Raises:
        RemoteError: the peer's handler refused the request.
        ProtocolNotSupported: the peer does not serve ``protocol_id``.
        PeerUnreachable, AdmissionRefused, Timeout, RemoteProtocolError,
        NetworkError, InvalidInput.
    """
    check_protocol_id(protocol_id)
    peer = as_peer(peer)
    limit = timeout or host.limits.request_timeout
    deadline = trio.current_time() + limit
    stream = await host.open_stream(peer, protocol_id, timeout=limit, addrs=addrs)
    with translate(f"{protocol_id} request to {peer}"), trio.fail_at(deadline):
        try:
            return await send_request(stream, obj, max_size)
        except BaseException:
            with trio.CancelScope(shield=True):
                await stream.reset()
            raise
        finally:
            await stream.close()
