"""Framing, multistream-select and request/response on one libp2p stream.

Every datanet protocol, and multistream-select itself, sends unsigned-varint
length-prefixed frames. :class:`FramedStream` reads them with a size limit *per
read* (the negotiation lines are at most 1 KiB, a kad message at most 96 KiB, a
datanet request what its protocol declares) because a peer may pipeline its
first request right behind the protocol id, as go-libp2p's lazy negotiation does.

Invariants:
* A frame longer than the limit of the read in progress is refused as soon as its
  length prefix is known, before the payload is buffered (:class:`FrameTooLarge`).
* The stream never buffers more than one read limit plus one read chunk.
* Every method raises only :class:`~datanet.errors.DatanetError` subclasses; the
  caller bounds time with ``trio.fail_after`` inside :func:`translate`.
* Request/response protocols (``/datanet/<name>/<version>``) carry exactly one
  MessagePack request and one response per stream; the response is
  ``{"ok": value}`` or ``{"err": code, "msg": text}``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from datanet.errors import DatanetError, InvalidInput, RemoteProtocolError
from datanet.p2p._errors import (
    FrameTooLarge,
    ProtocolNotSupported,
    RemoteError,
    StreamClosedByPeer,
    translate,
)
from datanet.p2p._libp2p import StreamEOF
from identity.encoding import pack, unpack
from identity.errors import DecodeError
from routing.wire import encode_frame

__all__ = [
    "MAX_NEGOTIATION_LINE",
    "MULTISTREAM_ID",
    "FramedStream",
    "RawStream",
    "RequestHandler",
    "check_protocol_id",
    "multistream_accept",
    "multistream_select",
    "read_request",
    "send_request",
    "write_error",
    "write_response",
]

MULTISTREAM_ID = "/multistream/1.0.0"
MAX_NEGOTIATION_LINE = 1024
_NA = "na"
_READ_CHUNK = 64 * 1024
_MAX_VARINT = 10
_PROTOCOL_RE = re.compile(r"^/datanet/[a-z0-9][a-z0-9_-]{0,31}/[0-9]+\.[0-9]+\.[0-9]+$")

RequestHandler = Callable[[Any, bytes], Awaitable[Any]]
"""``async handler(request, from_peer_id_bytes) -> response`` for a datanet protocol."""


def check_protocol_id(protocol_id: str) -> str:
    """Check that ``protocol_id`` is a datanet protocol id, ``/datanet/<name>/<x.y.z>``.

    Raises:
        InvalidInput: it is not.
    """
    if not isinstance(protocol_id, str) or not _PROTOCOL_RE.match(protocol_id):
        raise InvalidInput(
            f"not a datanet protocol id (/datanet/<name>/<x.y.z>): {str(protocol_id)[:80]!r}"
        )
    return protocol_id


class RawStream(Protocol):
    """What :class:`FramedStream` needs of a libp2p stream."""

    async def read(self, n: int | None = None) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...

    async def reset(self) -> None: ...


class FramedStream:
    """A libp2p stream that reads and writes varint length-prefixed frames.

    Args:
        raw: the py-libp2p stream.
        what: a description used in error messages ("kad stream to 12D3…").
    """

    __slots__ = ("_buf", "_eof", "_raw", "what")

    def __init__(self, raw: RawStream, what: str) -> None:
        self._raw = raw
        self._buf = bytearray()
        self._eof = False
        self.what = what

    async def _fill(self) -> bool:
        """Read one more chunk into the buffer; False at end of stream."""
        if self._eof:
            return False
        with translate(self.what):
            try:
                data = await self._raw.read(_READ_CHUNK)
            except StreamEOF:
                # The normal end of a stream; py-libp2p raises where trio returns b"".
                data = b""
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _parse_prefix(self, max_size: int) -> tuple[int, int] | None:
        result = 0
        for i in range(_MAX_VARINT):
            if i >= len(self._buf):
                return None
            byte = self._buf[i]
            result |= (byte & 0x7F) << (7 * i)
            if result > max_size:
                raise FrameTooLarge(
                    f"{self.what}: the peer sent a frame of more than {max_size} bytes"
                )
            if byte < 0x80:
                return result, i + 1
        raise RemoteProtocolError(f"{self.what}: frame length prefix longer than 10 bytes")

    async def read_frame(self, max_size: int) -> bytes | None:
        """Read one frame of at most ``max_size`` bytes.

        Returns:
            The payload, or None if the stream ended cleanly between frames.

        Raises:
            FrameTooLarge: the frame announces more than ``max_size`` bytes.
            RemoteProtocolError: the length prefix is malformed, or the stream
                ended inside a frame.
            NetworkError: the stream broke (reset, connection lost).
        """
        while True:
            parsed = self._parse_prefix(max_size)
            if parsed is not None:
                length, start = parsed
                if len(self._buf) - start >= length:
                    frame = bytes(self._buf[start : start + length])
                    del self._buf[: start + length]
                    return frame
            if not await self._fill():
                if self._buf:
                    raise RemoteProtocolError(f"{self.what}: the stream ended inside a frame")
                return None

    async def read_exactly(self, n: int) -> bytes | None:
        """Read exactly ``n`` raw bytes (no framing), as libp2p ping needs.

        Returns:
            The bytes, or None if the stream ended cleanly before the first byte.

        Raises:
            RemoteProtocolError: the stream ended after some but not all bytes.
            NetworkError: the stream broke.
        """
        while len(self._buf) < n:
            if not await self._fill():
                if self._buf:
                    raise RemoteProtocolError(f"{self.what}: the stream ended mid-message")
                return None
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def remote_address(self) -> tuple[str, int] | None:
        """The peer's (host, port) on the underlying connection, if known."""
        getter = getattr(self._raw, "get_remote_address", None)
        if getter is None:
            return None
        with translate(self.what):
            address = getter()
        if (
            isinstance(address, tuple)
            and len(address) == 2
            and isinstance(address[0], str)
            and isinstance(address[1], int)
        ):
            return (address[0], address[1])
        return None

    async def read_required(self, max_size: int) -> bytes:
        """Like :meth:`read_frame`, but the end of the stream is an error.

        Raises:
            StreamClosedByPeer: the stream ended before a frame arrived.
            (and everything :meth:`read_frame` raises)
        """
        frame = await self.read_frame(max_size)
        if frame is None:
            raise StreamClosedByPeer(f"{self.what}: the peer closed the stream")
        return frame

    async def write(self, data: bytes) -> None:
        """Write raw bytes (already framed).

        Raises:
            NetworkError: the stream broke.
        """
        with translate(self.what):
            await self._raw.write(data)

    async def write_frame(self, payload: bytes, max_size: int) -> None:
        """Write one length-prefixed frame.

        Raises:
            RecordTooLarge: ``payload`` is longer than ``max_size`` (our own bug or
                an oversized record handed to us).
            NetworkError: the stream broke.
        """
        await self.write(encode_frame(payload, max_size=max_size))

    async def close(self) -> None:
        """Close our side of the stream (half-close); never raises."""
        try:
            with translate(self.what):
                await self._raw.close()
        except DatanetError:
            await self.reset()

    async def reset(self) -> None:
        """Abort the stream in both directions; never raises."""
        try:
            with translate(self.what):
                await self._raw.reset()
        except DatanetError:
            return


def _line(text: str) -> bytes:
    return encode_frame((text + "\n").encode(), max_size=MAX_NEGOTIATION_LINE)


async def _read_line(stream: FramedStream) -> str:
    frame = await stream.read_required(MAX_NEGOTIATION_LINE)
    if not frame.endswith(b"\n"):
        raise RemoteProtocolError(f"{stream.what}: multistream line without newline")
    try:
        return frame[:-1].decode()
    except UnicodeDecodeError:
        raise RemoteProtocolError(f"{stream.what}: multistream line is not UTF-8") from None


async def multistream_select(stream: FramedStream, protocol: str) -> None:
    """Negotiate ``protocol`` as the initiator, in one round trip.

    The header and the protocol id are written together (as go-multistream does);
    py-libp2p's own client waits for the header first, costing a round trip.

    Raises:
        ProtocolNotSupported: the peer answered ``na``.
        RemoteProtocolError: the peer answered something else.
        NetworkError: the stream broke.
    """
    await stream.write(_line(MULTISTREAM_ID) + _line(protocol))
    header = await _read_line(stream)
    if header != MULTISTREAM_ID:
        raise RemoteProtocolError(f"{stream.what}: not a multistream-select peer: {header!r}")
    answer = await _read_line(stream)
    if answer == _NA:
        raise ProtocolNotSupported(f"{stream.what}: the peer does not speak {protocol}")
    if answer != protocol:
        raise RemoteProtocolError(f"{stream.what}: asked for {protocol}, got {answer[:80]!r}")


async def multistream_accept(
    stream: FramedStream, supported: Callable[[str], bool], *, max_attempts: int = 8
) -> str:
    """Negotiate a protocol as the responder.

    Args:
        stream: the inbound stream.
        supported: whether we have a handler for a protocol id.
        max_attempts: protocol ids the peer may propose before we give up.

    Returns:
        The agreed protocol id.

    Raises:
        RemoteProtocolError: bad header, too many proposals, or a malformed line.
        NetworkError: the stream broke.
    """
    await stream.write(_line(MULTISTREAM_ID))
    header = await _read_line(stream)
    if header != MULTISTREAM_ID:
        raise RemoteProtocolError(f"{stream.what}: not a multistream-select peer: {header!r}")
    for _ in range(max_attempts):
        proposal = await _read_line(stream)
        if proposal and supported(proposal):
            await stream.write(_line(proposal))
            return proposal
        await stream.write(_line(_NA))
    raise RemoteProtocolError(f"{stream.what}: no supported protocol in {max_attempts} proposals")


async def read_request(stream: FramedStream, max_size: int) -> Any:
    """Read one MessagePack request of at most ``max_size`` bytes.

    Raises:
        RemoteProtocolError: oversized, not MessagePack, or the stream ended early.
        NetworkError: the stream broke.
    """
    frame = await stream.read_required(max_size)
    try:
        return unpack(frame, max_size=max_size, max_items=max_size)
    except DecodeError as exc:
        raise RemoteProtocolError(f"{stream.what}: {exc}") from None


async def write_response(stream: FramedStream, value: Any, max_size: int) -> None:
    """Write a success response and close the stream.

    Raises:
        RecordTooLarge: the encoded response is above ``max_size``.
        InvalidInput: ``value`` cannot be encoded as MessagePack.
        NetworkError: the stream broke.
    """
    try:
        payload = pack({"ok": value})
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"response cannot be encoded: {exc}") from None
    await stream.write_frame(payload, max_size)
    await stream.close()


async def write_error(stream: FramedStream, error: DatanetError) -> None:
    """Tell the requester that the handler refused its request, then close."""
    payload = pack({"err": error.code, "msg": str(error)[:512]})
    await stream.write_frame(payload, max_size=1024)
    await stream.close()


async def send_request(stream: FramedStream, value: Any, max_size: int) -> Any:
    """Write one request, read its response (one exchange per stream).

    Raises:
        RemoteError: the peer's handler answered with an error.
        RemoteProtocolError: the response is malformed or oversized.
        InvalidInput: ``value`` cannot be encoded as MessagePack.
        NetworkError: the stream broke.
    """
    try:
        payload = pack(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"request cannot be encoded: {exc}") from None
    await stream.write_frame(payload, max_size)
    reply = await read_request(stream, max_size + 16)
    if isinstance(reply, dict) and set(reply) == {"ok"}:
        return reply["ok"]
    if (
        isinstance(reply, dict)
        and set(reply) == {"err", "msg"}
        and isinstance(reply["err"], str)
        and isinstance(reply["msg"], str)
    ):
        raise RemoteError(reply["err"][:64], f"{stream.what}: the peer refused: {reply['msg']}")
    raise RemoteProtocolError(f"{stream.what}: malformed response")
