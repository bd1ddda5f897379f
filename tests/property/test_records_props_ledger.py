"""Property tests: ledger records and deprecations round-trip; arbitrary, corrupted or
random input is always refused with a DatanetError and nothing else."""

from __future__ import annotations

import contextlib
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datanet.errors import DatanetError
from datanet.records.deprecation import (
    DEPRECATION_TAG,
    MAX_DEPRECATION_SIZE,
    Deprecation,
    decode_deprecation_unverified,
    sign_deprecation,
)
from datanet.records.descriptor import DESCRIPTOR_TAG, MAX_LIFETIME
from datanet.records.ids import DatasetId
from datanet.records.ledger import (
    MAX_LEDGER_RECORD,
    RecordKind,
    record_id,
    record_kind,
    verify_ledger_record,
)
from datanet.records.validators import default_validator
from datanet.testing.clock import DAY, NOW
from datanet.testing.records import descriptor, signed
from identity.certs import REVOCATION_TAG, Role, TrustStore, issue_certificate, issue_revocation
from identity.encoding import pack, unpack
from identity.envelope import seal
from identity.keys import KeyPair
from identity.orgs import ORG_RECORD_TAG, Gateway, issue_org_record

ORG = KeyPair.from_seed(b"o" * 32)
NODE = KeyPair.from_seed(b"n" * 32)
CERT = issue_certificate(
    ORG, NODE.peer_id, [Role.PUBLISHER], not_before=NOW - 10, not_after=NOW + 10**8, serial=1
)
TRUST = TrustStore({ORG.org_id})

SETTINGS = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_printable = st.characters(blacklist_categories=("Cc", "Cs"))
names = st.lists(
    st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12),
    min_size=1,
    max_size=4,
).map("/".join)


@st.composite
def deprecations(draw: st.DrawFn) -> Deprecation:
    withdrawn_at = draw(st.integers(NOW - 10**8, NOW + 300))
    return Deprecation(
        dataset_id=DatasetId(ORG.org_id, draw(names)),
        sequence=draw(st.integers(0, 2**63 - 1)),
        withdrawn_at=withdrawn_at,
        expires=draw(st.integers(max(withdrawn_at, NOW) + 1, NOW + MAX_LIFETIME)),
        node=NODE.peer_id,
        reason=draw(st.text(alphabet=_printable, max_size=256)),
    )


@SETTINGS
@given(deprecations())
def test_deprecations_round_trip_through_the_ledger(dep: Deprecation) -> None:
    data = sign_deprecation(dep, NODE, [CERT])
    assert len(data) <= MAX_DEPRECATION_SIZE
    assert record_kind(data) is RecordKind.DEPRECATION
    rec = verify_ledger_record(data, TRUST, NOW)
    assert rec.dataset_id == dep.dataset_id
    assert (rec.key, rec.sequence, rec.timestamp, rec.org, rec.raw, rec.serial) == (
        dep.dataset_id.dht_key(),
        dep.sequence,
        dep.withdrawn_at,
        ORG.org_id,
        data,
        1,
    )
    assert rec.expires == dep.expires
    assert record_id(data) == record_id(rec.raw)
    default_validator(TRUST).validate(rec.key, data, NOW)


# -- reference records of every kind and their corruption -----------------------------------

_REFERENCES = {
    RecordKind.DESCRIPTOR: signed(
        descriptor("weather/stations", org=ORG, node=NODE, lifetime=DAY), key=NODE, chain=[CERT]
    ),
    RecordKind.DEPRECATION: sign_deprecation(
        Deprecation(
            dataset_id=DatasetId(ORG.org_id, "weather/stations"),
            sequence=9,
            withdrawn_at=NOW - 5,
            expires=NOW + DAY,
            node=NODE.peer_id,
            reason="replaced by weather/v2",
        ),
        NODE,
        [CERT],
    ),
    RecordKind.REVOCATION: issue_revocation(ORG, [3, 5, 2**40], sequence=2, issued_at=NOW - 5),
    RecordKind.ORG: issue_org_record(
        ORG,
        name="acme",
        gateways=(Gateway(NODE.peer_id, ("/ip4/127.0.0.1/tcp/4001",)),),
        sequence=4,
        expires=NOW + DAY,
    ),
}


def test_references_verify() -> None:
    for kind, data in _REFERENCES.items():
        assert verify_ledger_record(data, TRUST, NOW).kind is kind


def _refused(data: bytes) -> None:
    try:
        verify_ledger_record(data, TRUST, NOW)
    except DatanetError:
        return
    raise AssertionError("corrupted record was accepted")


def test_flipping_any_bit_of_a_deprecation_is_refused() -> None:
    data = _REFERENCES[RecordKind.DEPRECATION]
    for position in range(len(data)):
        for bit in (0x01, 0x80):
            corrupted = bytearray(data)
            corrupted[position] ^= bit
            _refused(bytes(corrupted))
            with contextlib.suppress(DatanetError):
                decode_deprecation_unverified(bytes(corrupted))


@SETTINGS
@given(st.sampled_from(sorted(_REFERENCES)), st.data())
def test_flipping_any_byte_of_any_kind_is_refused(kind: RecordKind, data: st.DataObject) -> None:
    reference = _REFERENCES[kind]
    position = data.draw(st.integers(0, len(reference) - 1))
    corrupted = bytearray(reference)
    corrupted[position] ^= data.draw(st.integers(1, 255))
    _refused(bytes(corrupted))


@SETTINGS
@given(st.sampled_from(sorted(_REFERENCES)), st.data())
def test_truncation_and_extension_are_refused(kind: RecordKind, data: st.DataObject) -> None:
    reference = _REFERENCES[kind]
    _refused(reference[: data.draw(st.integers(0, len(reference) - 1))])
    _refused(reference + data.draw(st.binary(min_size=1, max_size=20)))


# -- arbitrary input ------------------------------------------------------------------------

msgpack_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False),
        st.text(max_size=20),
        st.binary(max_size=40),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=5), children, max_size=5),
    ),
    max_leaves=20,
)
_TAGS = [DESCRIPTOR_TAG, DEPRECATION_TAG, REVOCATION_TAG, ORG_RECORD_TAG]
_VALIDATOR = default_validator(TRUST)


def _only_datanet_errors(data: bytes) -> None:
    for call in (
        lambda: record_kind(data),
        lambda: verify_ledger_record(data, TRUST, NOW),
        lambda: decode_deprecation_unverified(data),
        lambda: _VALIDATOR.validate(DatasetId(ORG.org_id, "x").dht_key(), data, NOW),
        lambda: _VALIDATOR.select(DatasetId(ORG.org_id, "x").dht_key(), [data]),
    ):
        with contextlib.suppress(DatanetError):
            call()


@SETTINGS
@given(st.binary(max_size=MAX_DEPRECATION_SIZE + 64))
def test_random_bytes_raise_only_datanet_errors(data: bytes) -> None:
    _only_datanet_errors(data)


def test_oversized_bytes_raise_only_datanet_errors() -> None:
    for size in (MAX_LEDGER_RECORD, MAX_LEDGER_RECORD + 1, 4 * MAX_LEDGER_RECORD):
        _only_datanet_errors(b"\x92" + b"\x00" * size)
        for tag in _TAGS:
            _only_datanet_errors(pack([1, tag, b"x" * size, NODE.public_key, b"s" * 64, []]))


@SETTINGS
@given(msgpack_values)
def test_random_msgpack_raises_only_datanet_errors(value: Any) -> None:
    _only_datanet_errors(pack(value))


@SETTINGS
@given(st.sampled_from(_TAGS), msgpack_values, st.booleans())
def test_random_bodies_under_every_tag_raise_only_datanet_errors(
    tag: str, value: Any, with_chain: bool
) -> None:
    chain = [CERT] if with_chain else []
    # correctly signed by the node and by the org, so decoding goes past the signature
    _only_datanet_errors(seal(NODE, tag, pack(value), chain).encode())
    _only_datanet_errors(seal(ORG, tag, pack(value), chain).encode())
    _only_datanet_errors(pack([1, tag, pack(value), NODE.public_key, b"s" * 64, chain]))


def _body_of(kind: RecordKind) -> dict[str, Any]:
    envelope = unpack(_REFERENCES[kind], max_size=MAX_LEDGER_RECORD)
    body: dict[str, Any] = unpack(envelope[2], max_size=MAX_LEDGER_RECORD)
    return body


_BODIES = {kind: _body_of(kind) for kind in _REFERENCES}
_SIGNER = {
    RecordKind.DESCRIPTOR: (NODE, [CERT]),
    RecordKind.DEPRECATION: (NODE, [CERT]),
    RecordKind.REVOCATION: (ORG, []),
    RecordKind.ORG: (ORG, []),
}


@SETTINGS
@given(st.sampled_from(sorted(_REFERENCES)), st.data(), msgpack_values)
def test_one_random_field_in_a_signed_body_raises_only_datanet_errors(
    kind: RecordKind, data: st.DataObject, value: Any
) -> None:
    body = _BODIES[kind]
    name = data.draw(st.sampled_from(sorted(body)))
    tag = unpack(_REFERENCES[kind], max_size=MAX_LEDGER_RECORD)[1]
    key, chain = _SIGNER[kind]
    _only_datanet_errors(seal(key, tag, pack(dict(body, **{name: value})), chain).encode())
