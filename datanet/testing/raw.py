"""Raw kad frames sent past a node's own client: what a misbehaving peer would send.

Tests and the localnet runner's ``put_raw`` use these to send oversized, forged
and junk kad messages to real nodes.

Invariants:
* :func:`send_raw_kad` raises only :class:`~datanet.errors.DatanetError`
  (its deadline included), so a flood loop can suppress exactly that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from datanet.errors import DatanetError

if TYPE_CHECKING:
    from datanet.p2p import Host
    from identity.keys import PeerId

__all__ = ["MAX_RAW_FRAME", "put_value_payload", "send_raw_kad"]

#: Largest frame ``put_raw`` sends (it exists to send oversized ones).
MAX_RAW_FRAME = 2 * 1024 * 1024
_RAW_TIMEOUT = 5.0


def put_value_payload(key: bytes, value: bytes) -> bytes:
    """A kad PUT_VALUE message of ``key`` and ``value``, encoded past the usual limits.

    Raises:
        RecordTooLarge: the message exceeds :data:`MAX_RAW_FRAME`.
    """
    from routing.wire import Message, MessageType, Record, WireLimits, encode_message  # noqa: PLC0415

    limits = WireLimits(max_key_size=max(512, len(key)), max_value_size=MAX_RAW_FRAME)
    msg = Message(MessageType.PUT_VALUE, key, record=Record(key, value))
    return encode_message(msg, max_size=MAX_RAW_FRAME, limits=limits)


async def send_raw_kad(
    host: Host,
    peer: PeerId,
    frames: Sequence[bytes],
    *,
    addrs: Sequence[str] = (),
    timeout: float = _RAW_TIMEOUT,
    want: int = 1,
) -> tuple[list[bytes], str | None]:
    """Write ``frames`` (raw payloads, each length-prefixed) on a fresh kad stream to ``peer``.

    This deliberately bypasses the kad client's encoding limits: it is how tests
    send what a misbehaving peer would (oversized, forged, junk messages).

    Args:
        host: our host.
        peer: the receiver.
        frames: payloads to send, one frame each.
        addrs: addresses to dial if not connected.
        timeout: for the whole exchange.
        want: how many response frames to wait for at most.

    Returns:
        The response payloads read, and why the exchange stopped early (the
        stream was reset or closed, a timeout), or None if it completed.

    Raises:
        PeerUnreachable, AdmissionRefused, Timeout, ProtocolNotSupported: no
            kad stream could be opened to ``peer``.
    """
    import trio  # noqa: PLC0415 - only the runner side needs trio

    from datanet.p2p import KAD_PROTOCOL  # noqa: PLC0415

    deadline = trio.current_time() + timeout
    # open_stream turns its own deadline into Timeout, so this helper raises
    # only DatanetError, as its callers expect (trio.TooSlowError escaped here
    # once and failed flood tests on a busy machine).
    stream = await host.open_stream(peer, KAD_PROTOCOL, timeout=timeout, addrs=addrs)
    responses: list[bytes] = []
    stopped: str | None = None
    try:
        with trio.move_on_at(deadline) as scope:
            for frame in frames:
                await stream.write_frame(frame, MAX_RAW_FRAME)
            while len(responses) < want:
                got = await stream.read_frame(MAX_RAW_FRAME)
                if got is None:
                    stopped = "the peer closed the stream"
                    break
                responses.append(got)
        if scope.cancelled_caught:
            stopped = "timed out"
    except DatanetError as exc:
        stopped = f"{exc.code}: {exc}"
    finally:
        with trio.CancelScope(shield=True):
            await stream.reset()
    return responses, stopped
