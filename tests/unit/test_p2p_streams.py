"""FramedStream, multistream-select and request/response over in-memory streams."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from datanet.errors import InvalidInput, NetworkError, RecordTooLarge, RemoteProtocolError
from datanet.p2p import FrameTooLarge, ProtocolNotSupported, RemoteError, StreamClosedByPeer
from datanet.p2p.streams import (
    FramedStream,
    check_protocol_id,
    multistream_accept,
    multistream_select,
    read_request,
    send_request,
    write_error,
    write_response,
)
from datanet.testing.streams import MemoryRawStream, raw_pair
from identity.encoding import pack
from identity.errors import ScopeError
from routing.wire import encode_frame


def pair() -> tuple[FramedStream, FramedStream, MemoryRawStream, MemoryRawStream]:
    ra, rb = raw_pair()
    return FramedStream(ra, "a"), FramedStream(rb, "b"), ra, rb


class ScriptedRaw:
    """A RawStream that returns pre-set chunks, then EOF."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.reads = 0

    async def read(self, n: int | None = None) -> bytes:
        self.reads += 1
        return self.chunks.pop(0) if self.chunks else b""

    async def write(self, data: bytes) -> None:
        return None

    async def close(self) -> None:
        return None

    async def reset(self) -> None:
        return None


async def test_frames_split_across_chunks_and_pipelined() -> None:
    data = encode_frame(b"hello") + encode_frame(b"") + encode_frame(b"x" * 300)
    raw = ScriptedRaw([data[:1], data[1:4], data[4:9], data[9:]])
    s = FramedStream(raw, "t")
    assert await s.read_frame(1000) == b"hello"
    assert await s.read_frame(1000) == b""
    assert await s.read_frame(1000) == b"x" * 300
    assert await s.read_frame(1000) is None


async def test_oversized_frame_refused_from_its_prefix_alone() -> None:
    # Only the 3-byte prefix of a 1 MiB frame arrives: refused without waiting.
    raw = ScriptedRaw([encode_frame(b"a" * (1 << 20), max_size=1 << 21)[:3]])
    s = FramedStream(raw, "t")
    with pytest.raises(FrameTooLarge):
        await s.read_frame(96 * 1024)
    assert raw.reads == 1


async def test_limits_are_per_read() -> None:
    raw = ScriptedRaw([encode_frame(b"short") + encode_frame(b"y" * 5000)])
    s = FramedStream(raw, "t")
    assert await s.read_frame(10) == b"short"
    assert await s.read_frame(8000) == b"y" * 5000


async def test_truncated_frame_and_bad_prefix() -> None:
    with pytest.raises(RemoteProtocolError):
        await FramedStream(ScriptedRaw([encode_frame(b"abcdef")[:4]]), "t").read_frame(100)
    with pytest.raises(RemoteProtocolError):
        await FramedStream(ScriptedRaw([b"\x80" * 11]), "t").read_frame(1 << 62)
    with pytest.raises(StreamClosedByPeer):
        await FramedStream(ScriptedRaw([]), "t").read_required(100)


async def test_read_exactly() -> None:
    s = FramedStream(ScriptedRaw([b"ab", b"cdef"]), "t")
    assert await s.read_exactly(3) == b"abc"
    assert await s.read_exactly(3) == b"def"
    assert await s.read_exactly(3) is None
    with pytest.raises(RemoteProtocolError):
        await FramedStream(ScriptedRaw([b"ab"]), "t").read_exactly(3)


async def test_write_frame_refuses_oversized_payload() -> None:
    a, _, _, _ = pair()
    with pytest.raises(RecordTooLarge):
        await a.write_frame(b"z" * 11, max_size=10)


async def test_multistream_select_in_one_write_and_accept() -> None:
    a, b, ra, _ = pair()
    async with trio.open_nursery() as nursery:
        result: list[str] = []

        async def responder() -> None:
            result.append(await multistream_accept(b, {"/datanet/kad/1.0.0"}.__contains__))

        nursery.start_soon(responder)
        await multistream_select(a, "/datanet/kad/1.0.0")
    assert result == ["/datanet/kad/1.0.0"]
    assert len(ra.chunks) == 1  # header and protocol id went out together


async def test_multistream_na_and_too_many_proposals() -> None:
    a, b, _, _ = pair()
    async with trio.open_nursery() as nursery:

        async def refuse_all() -> None:
            with pytest.raises(RemoteProtocolError):
                await multistream_accept(b, lambda p: False, max_attempts=1)

        nursery.start_soon(refuse_all)
        with pytest.raises(ProtocolNotSupported):
            await multistream_select(a, "/datanet/x/1.0.0")
    a, b, _, _ = pair()
    async with trio.open_nursery() as nursery:

        async def initiator() -> None:
            await a.write(encode_frame(b"/multistream/1.0.0\n"))
            for _ in range(3):
                await a.write(encode_frame(b"/nope/1.0.0\n"))

        nursery.start_soon(initiator)
        with pytest.raises(RemoteProtocolError):
            await multistream_accept(b, lambda p: False, max_attempts=3)


async def test_multistream_rejects_long_lines_and_wrong_header() -> None:
    a, b, _, _ = pair()
    await a.write(encode_frame(b"/multistream/1.0.0\n") + encode_frame(b"x" * 2000 + b"\n"))
    with pytest.raises(FrameTooLarge):
        await multistream_accept(b, lambda p: True)
    a, b, _, _ = pair()
    await a.write(encode_frame(b"/multistream/2.0.0\n"))
    with pytest.raises(RemoteProtocolError):
        await multistream_accept(b, lambda p: True)


async def test_request_response_roundtrip_and_errors() -> None:
    a, b, _, _ = pair()
    async with trio.open_nursery() as nursery:

        async def server() -> None:
            request = await read_request(b, 1024)
            await write_response(b, {"got": request}, 1024)

        nursery.start_soon(server)
        assert await send_request(a, [1, "two", b"3"], 1024) == {"got": [1, "two", b"3"]}

    a, b, _, _ = pair()
    async with trio.open_nursery() as nursery:

        async def refusing() -> None:
            await read_request(b, 1024)
            await write_error(b, ScopeError("not yours"))

        nursery.start_soon(refusing)
        with pytest.raises(RemoteError) as info:
            await send_request(a, "hi", 1024)
    assert info.value.remote_code == "wrong_scope"


async def test_junk_requests_and_responses() -> None:
    a, b, _, _ = pair()
    await a.write(encode_frame(b"\xc1"))  # never-used MessagePack byte
    with pytest.raises(RemoteProtocolError):
        await read_request(b, 1024)
    a, b, _, _ = pair()
    await b.write(encode_frame(pack({"weird": 1})))
    with pytest.raises(RemoteProtocolError):
        await send_request(a, "hi", 1024)
    a, _, _, _ = pair()
    with pytest.raises(InvalidInput):
        await send_request(a, object(), 1024)


async def test_broken_stream_is_a_network_error() -> None:
    a, _b, ra, rb = pair()
    await rb.receive.aclose()
    await rb.send.aclose()
    with pytest.raises(NetworkError):
        await a.write(b"x" * 10)
    await a.reset()  # never raises
    assert ra.was_reset


@pytest.mark.parametrize(
    "pid",
    ["/datanet/access/1.0.0", "/datanet/catalog-sync/2.10.0"],
)
def test_protocol_ids_accepted(pid: str) -> None:
    assert check_protocol_id(pid) == pid


@pytest.mark.parametrize(
    "pid", ["/ipfs/kad/1.0.0", "/datanet/Access/1.0.0", "/datanet/a/1.0", "/datanet//1.0.0", ""]
)
def test_protocol_ids_refused(pid: str) -> None:
    with pytest.raises(InvalidInput):
        check_protocol_id(pid)
