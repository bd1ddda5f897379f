"""Inputs the fuzzers found that broke a decoder's contract, kept so they stay fixed."""

from __future__ import annotations

from datanet.p2p.protocols import parse_identify
from tests.fuzz.targets import TARGETS, run_one


def test_identify_skips_protocol_ids_that_are_not_utf8() -> None:
    # found by fuzz_identify: protobuf's upb backend hands a non-UTF-8 proto2
    # string back as bytes, so parse_identify returned bytes among the str ids
    frame = b"\x1a\x0f/ipfs/k\x801ip\n\xdf\xdf\xff\x1a\x0f/ipfs/kad/1.0.0"
    parsed = parse_identify(frame, 8)
    assert parsed is not None
    protocols, _addrs = parsed
    assert protocols == ["/ipfs/kad/1.0.0"]
    run_one(TARGETS["identify"], frame)
