"""Org records: signed by the org root key, bounded, expiring."""

from __future__ import annotations

import pytest

from datanet.testing.clock import NOW
from identity.encoding import pack
from identity.envelope import seal
from identity.errors import (
    DatanetError,
    DecodeError,
    ExpiredRecord,
    InvalidInput,
    RecordTooLarge,
    ScopeError,
    SignatureError,
)
from identity.keys import KeyPair
from identity.orgs import (
    MAX_ORG_RECORD_SIZE,
    ORG_RECORD_TAG,
    Gateway,
    OrgRecord,
    decode_org_record,
    issue_org_record,
    parse_org_record,
)

ORG = KeyPair.from_seed(b"o" * 32)
OTHER = KeyPair.from_seed(b"x" * 32)
GW1 = KeyPair.from_seed(b"g" * 32).peer_id
GW2 = KeyPair.from_seed(b"h" * 32).peer_id
GATEWAYS = (
    Gateway(GW1, ("/ip4/127.0.0.1/tcp/4001", "/ip6/::1/tcp/4001")),
    Gateway(GW2, ()),
)


def issue(**kw: object) -> bytes:
    args: dict[str, object] = {
        "name": "ACME Research",
        "gateways": GATEWAYS,
        "sequence": 3,
        "expires": NOW + 100,
    }
    args.update(kw)
    return issue_org_record(ORG, **args)  # type: ignore[arg-type]


def test_round_trip() -> None:
    record = parse_org_record(issue(), NOW)
    assert record == OrgRecord(ORG.org_id, "ACME Research", GATEWAYS, 3, NOW + 100)


def test_expired() -> None:
    data = issue()
    parse_org_record(data, NOW + 99)
    with pytest.raises(ExpiredRecord):
        parse_org_record(data, NOW + 100)
    assert decode_org_record(data).expires == NOW + 100


def test_signed_by_another_key_is_refused() -> None:
    body = OrgRecord(ORG.org_id, "ACME", (), 1, NOW + 5).encode_body()
    forged = seal(OTHER, ORG_RECORD_TAG, body).encode()
    with pytest.raises(ScopeError):
        parse_org_record(forged, NOW)


def test_tampering_is_detected() -> None:
    data = issue()
    with pytest.raises(SignatureError):
        parse_org_record(data.replace(b"ACME", b"ACNE"), NOW)


def test_chain_is_not_allowed() -> None:
    body = OrgRecord(ORG.org_id, "ACME", (), 1, NOW + 5).encode_body()
    with pytest.raises(DecodeError, match="no certificate chain"):
        parse_org_record(seal(ORG, ORG_RECORD_TAG, body, [b"x"]).encode(), NOW)


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"name": "n" * 129}, RecordTooLarge),
        ({"name": "tab\there"}, InvalidInput),
        ({"gateways": (Gateway(GW1),) * 17}, RecordTooLarge),
        ({"sequence": -1}, InvalidInput),
        ({"expires": True}, InvalidInput),
    ],
)
def test_limits(kw: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        issue(**kw)


@pytest.mark.parametrize(
    ("addrs", "error"),
    [
        (("/ip4/1.2.3.4/tcp/1",) * 9, RecordTooLarge),
        (("/" + "a" * 256,), RecordTooLarge),
        (("127.0.0.1:4001",), InvalidInput),
        (("/ip4/1.2.3.4 /tcp/1",), InvalidInput),
        (("/ip4/\u00e9",), InvalidInput),
        ((5,), InvalidInput),
    ],
)
def test_gateway_limits(addrs: tuple[object, ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        Gateway(GW1, addrs)  # type: ignore[arg-type]


def test_largest_record_fits() -> None:
    gateways = tuple(
        Gateway(KeyPair.from_seed(bytes([i]) * 32).peer_id, ("/dns4/" + "a" * 200 + "/tcp/1",) * 2)
        for i in range(16)
    )
    data = issue(gateways=gateways, name="n" * 128)
    assert len(data) <= MAX_ORG_RECORD_SIZE
    assert parse_org_record(data, NOW).gateways == gateways


@pytest.mark.parametrize(
    "body",
    [
        pack({"v": 2}),
        pack({"v": True, "org": b"x"}),
        pack({"v": 1, "org": b"short", "name": "", "gw": [], "seq": 1, "exp": 2}),
        pack({"v": 1, "org": ORG.public_key, "name": "", "gw": [[b"x"]], "seq": 1, "exp": 2}),
        pack(
            {
                "v": 1,
                "org": ORG.public_key,
                "name": "",
                "gw": [[GW1.public_key, ["x"]]],
                "seq": 1,
                "exp": 2,
            }
        ),
        pack({"v": 1, "org": ORG.public_key, "name": "", "gw": [], "seq": "1", "exp": 2}),
        pack([1, 2, 3]),
        b"\xc1",
    ],
)
def test_malformed_bodies_give_decode_errors(body: bytes) -> None:
    data = seal(ORG, ORG_RECORD_TAG, body).encode()
    with pytest.raises(DecodeError):
        parse_org_record(data, NOW)


def test_garbage_gives_datanet_errors() -> None:
    for data in [b"", b"\x00", b"\x96" + b"\x01" * 6, b"\xff" * (MAX_ORG_RECORD_SIZE + 1)]:
        with pytest.raises(DatanetError):
            parse_org_record(data, NOW)
