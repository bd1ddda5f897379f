"""OrgRecord.egress: written by every new record, read as False when absent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datanet.records.ledger import RecordKind, verify_ledger_record
from datanet.testing.clock import NOW
from identity.encoding import pack, unpack_map
from identity.envelope import open_envelope, seal
from identity.errors import DecodeError, InvalidInput
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
GW = Gateway(KeyPair.from_seed(b"g" * 32).peer_id, ("/ip4/10.99.0.11/tcp/4001",))


def _old_style(body: dict[str, object]) -> bytes:
    return seal(ORG, ORG_RECORD_TAG, pack(body)).encode()


def _body(**extra: object) -> dict[str, object]:
    return {
        "v": 1,
        "org": ORG.org_id.public_key,
        "name": "acme",
        "gw": [[GW.peer.public_key, list(GW.addrs)]],
        "seq": 3,
        "exp": NOW + 3600,
        **extra,
    }


@pytest.mark.parametrize("egress", [True, False])
def test_egress_round_trips_and_is_always_written(egress: bool) -> None:
    raw = issue_org_record(
        ORG, name="acme", gateways=[GW], sequence=1, expires=NOW + 60, egress=egress
    )
    assert parse_org_record(raw, NOW).egress is egress
    body = unpack_map(open_envelope(raw, tag=ORG_RECORD_TAG, max_size=8192).body, max_size=8192)
    assert body["egress"] is egress


def test_default_is_false() -> None:
    raw = issue_org_record(ORG, name="acme", gateways=[GW], sequence=1, expires=NOW + 60)
    assert decode_org_record(raw).egress is False
    assert OrgRecord(ORG.org_id, "acme", (GW,), 1, NOW + 60).egress is False


def test_a_record_signed_before_the_field_existed_still_verifies_as_false() -> None:
    raw = _old_style(_body())
    record = parse_org_record(raw, NOW)
    assert record.egress is False
    assert record.gateways == (GW,)
    ledger = verify_ledger_record(raw, None, NOW)
    assert ledger.kind is RecordKind.ORG
    assert isinstance(ledger.value, OrgRecord)
    assert ledger.value.egress is False


@pytest.mark.parametrize("bad", [1, 0, "yes", None, [True]])
def test_a_non_boolean_egress_is_refused(bad: object) -> None:
    with pytest.raises(DecodeError, match="egress"):
        decode_org_record(_old_style(_body(egress=bad)))


def test_the_constructor_refuses_a_non_boolean() -> None:
    with pytest.raises(InvalidInput, match="egress"):
        OrgRecord(ORG.org_id, "acme", (GW,), 1, NOW + 60, egress=1)  # type: ignore[arg-type]


def test_egress_is_signed() -> None:
    raw = issue_org_record(
        ORG, name="acme", gateways=[GW], sequence=1, expires=NOW + 60, egress=True
    )
    flipped = raw.replace(b"\xa6egress\xc3", b"\xa6egress\xc2")
    assert flipped != raw
    with pytest.raises(Exception, match="signature"):
        decode_org_record(flipped)


@given(egress=st.booleans(), seq=st.integers(0, 2**63 - 1), name=st.text(max_size=128))
def test_encode_decode_is_identity(egress: bool, seq: int, name: str) -> None:
    try:
        record = OrgRecord(ORG.org_id, name, (GW,), seq, 2**40, egress)
    except InvalidInput:
        return  # unprintable names are refused, not the subject here
    assert OrgRecord.decode_body(record.encode_body()) == record
    assert len(record.encode_body()) < MAX_ORG_RECORD_SIZE
