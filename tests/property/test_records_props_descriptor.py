"""Property tests: descriptors round-trip everywhere; corrupted or random input is
always refused with a DatanetError and nothing else."""

from __future__ import annotations

import contextlib
import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datanet.errors import DatanetError, InvalidInput
from datanet.records.dcat import to_dcat_jsonld
from datanet.records.descriptor import (
    DESCRIPTOR_TAG,
    MAX_DESCRIPTOR_SIZE,
    AccessPolicy,
    Descriptor,
    Distribution,
    decode_descriptor_unverified,
    sign_descriptor,
    verify_descriptor,
)
from datanet.records.descriptor_file import descriptor_from_toml, descriptor_to_toml
from datanet.records.ids import DatasetId
from datanet.records.purposes import PURPOSES
from datanet.records.validators import default_validator
from datanet.testing.clock import NOW
from identity.certs import Role, TrustStore, issue_certificate
from identity.encoding import pack, unpack
from identity.envelope import seal
from identity.keys import KeyPair

ORG = KeyPair.from_seed(b"o" * 32)
ORG2 = KeyPair.from_seed(b"q" * 32)
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

# -- strategies for valid descriptors -----------------------------------------------

_printable = st.characters(blacklist_categories=("Cc", "Cs"))


def line(max_size: int, *, min_size: int = 0) -> st.SearchStrategy[str]:
    text = st.text(alphabet=_printable, min_size=min_size, max_size=max_size)
    return text.filter(lambda s: s.strip()) if min_size else text


multiline = st.text(alphabet=st.one_of(_printable, st.sampled_from("\n\t")), max_size=400)
names = st.lists(
    st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12),
    min_size=1,
    max_size=4,
).map("/".join)
u63 = st.integers(0, 2**63 - 1)
distributions = st.builds(
    Distribution,
    media_type=line(40, min_size=1),
    title=line(40),
    access=st.one_of(st.just("request"), line(60, min_size=1)),
    byte_size=st.one_of(st.none(), u63),
)
policies = st.builds(
    AccessPolicy,
    mode=st.sampled_from(["open", "request", "closed"]),
    allowed_orgs=st.lists(st.sampled_from([ORG.org_id, ORG2.org_id]), max_size=3).map(tuple),
    # the wire carries any text; authoring files take vocabulary ids only
    purposes=st.lists(
        st.one_of(st.sampled_from(sorted(PURPOSES)), line(20, min_size=1)), max_size=4
    ).map(tuple),
    max_validity_days=st.integers(1, 3650),
)


@st.composite
def descriptors(draw: st.DrawFn) -> Descriptor:
    issued = draw(st.integers(NOW - 10**8, NOW))
    modified = draw(st.integers(issued, NOW))
    temporal = draw(
        st.one_of(
            st.none(),
            st.tuples(st.integers(-(2**40), 2**40), st.integers(0, 2**40)).map(
                lambda t: (t[0], t[0] + t[1])
            ),
        )
    )
    return Descriptor(
        dataset_id=DatasetId(ORG.org_id, draw(names)),
        title=draw(line(80, min_size=1)),
        description=draw(multiline),
        keywords=tuple(draw(st.lists(line(20, min_size=1), max_size=6))),
        themes=tuple(draw(st.lists(line(60, min_size=1), max_size=3))),
        publisher_node=NODE.peer_id,
        license=draw(line(40)),
        version=draw(line(10)),
        issued=issued,
        modified=modified,
        schema=draw(line(60)),
        distributions=tuple(draw(st.lists(distributions, max_size=3))),
        temporal=temporal,
        spatial=draw(st.one_of(st.none(), line(60, min_size=1))),
        access_policy=draw(policies),
        sequence=draw(u63),
        expires=draw(st.integers(NOW + 1, NOW + 10**7)),
    )


@SETTINGS
@given(descriptors())
def test_round_trips(desc: Descriptor) -> None:
    data = sign_descriptor(desc, NODE, [CERT])
    assert len(data) <= MAX_DESCRIPTOR_SIZE
    verified = verify_descriptor(data, TRUST, NOW)
    assert verified.descriptor == desc
    assert verified.raw == data
    assert Descriptor.from_json(json.loads(json.dumps(desc.to_json()))) == desc
    text = descriptor_to_toml(desc)
    if all(p in PURPOSES for p in desc.access_policy.purposes):
        assert descriptor_from_toml(text, publisher_node=NODE.peer_id, now=0) == desc
    else:  # a free-text purpose is refused when authoring, naming the field
        with pytest.raises(InvalidInput, match=r"access_policy\.purposes"):
            descriptor_from_toml(text, publisher_node=NODE.peer_id, now=0)
    json.dumps(to_dcat_jsonld(desc))
    default_validator(TRUST).validate(desc.dataset_id.dht_key(), data, NOW)


# -- corruption ------------------------------------------------------------------------

_REFERENCE = sign_descriptor(
    Descriptor(
        dataset_id=DatasetId(ORG.org_id, "weather/stations"),
        title="Weather stations",
        description="Hourly observations.",
        keywords=("weather",),
        publisher_node=NODE.peer_id,
        issued=NOW - 100,
        modified=NOW - 50,
        distributions=(Distribution("text/csv", "Full", "request", 10),),
        temporal=(0, 100),
        spatial="Berlin",
        access_policy=AccessPolicy("request", (ORG2.org_id,), ("research",), 30),
        sequence=4,
        expires=NOW + 1000,
    ),
    NODE,
    [CERT],
)


def _refused(data: bytes) -> None:
    try:
        verify_descriptor(data, TRUST, NOW)
    except DatanetError:
        return
    raise AssertionError("corrupted descriptor was accepted")


def test_flipping_any_single_bit_of_any_byte_is_refused() -> None:
    data = _REFERENCE
    for position in range(len(data)):
        for bit in (0x01, 0x80):
            corrupted = bytearray(data)
            corrupted[position] ^= bit
            _refused(bytes(corrupted))


@SETTINGS
@given(st.data())
def test_flipping_any_byte_is_refused(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(_REFERENCE) - 1))
    mask = data.draw(st.integers(1, 255))
    corrupted = bytearray(_REFERENCE)
    corrupted[position] ^= mask
    _refused(bytes(corrupted))


@SETTINGS
@given(st.data())
def test_truncation_and_extension_are_refused(data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(_REFERENCE) - 1))
    _refused(_REFERENCE[:cut])
    _refused(_REFERENCE + data.draw(st.binary(min_size=1, max_size=20)))


# -- random input ----------------------------------------------------------------------

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


def _only_datanet_errors(data: bytes) -> None:
    for call in (
        lambda: verify_descriptor(data, TRUST, NOW),
        lambda: decode_descriptor_unverified(data),
        lambda: default_validator(TRUST).validate(b"/dn/x/y", data, NOW),
    ):
        with contextlib.suppress(DatanetError):
            call()


@SETTINGS
@given(st.binary(max_size=MAX_DESCRIPTOR_SIZE + 64))
def test_random_bytes_raise_only_datanet_errors(data: bytes) -> None:
    _only_datanet_errors(data)


@SETTINGS
@given(msgpack_values)
def test_random_msgpack_raises_only_datanet_errors(value: Any) -> None:
    _only_datanet_errors(pack(value))
    # and as the body of a correctly signed envelope, so decoding goes past the signature
    _only_datanet_errors(seal(NODE, DESCRIPTOR_TAG, pack(value), [CERT]).encode())
    _only_datanet_errors(pack([1, DESCRIPTOR_TAG, pack(value), NODE.public_key, b"s" * 64, []]))


_BODY = unpack(decode_descriptor_unverified(_REFERENCE).encode_body(), max_size=MAX_DESCRIPTOR_SIZE)


@SETTINGS
@given(st.sampled_from(sorted(_BODY)), msgpack_values)
def test_one_random_field_in_a_signed_body_raises_only_datanet_errors(
    name: str, value: Any
) -> None:
    body = dict(_BODY, **{name: value})
    _only_datanet_errors(seal(NODE, DESCRIPTOR_TAG, pack(body), [CERT]).encode())


@SETTINGS
@given(st.dictionaries(st.text(max_size=20), msgpack_values, max_size=20))
def test_random_json_raises_only_invalid_input(obj: dict[str, Any]) -> None:
    base = decode_descriptor_unverified(_REFERENCE).to_json()
    for candidate in (obj, {**base, **obj}):
        with contextlib.suppress(DatanetError):
            Descriptor.from_json(candidate)


_JSON = decode_descriptor_unverified(_REFERENCE).to_json()


@SETTINGS
@given(st.sampled_from(sorted(_JSON)), msgpack_values)
def test_one_random_json_field_raises_only_datanet_errors(name: str, value: Any) -> None:
    with contextlib.suppress(DatanetError):
        Descriptor.from_json({**_JSON, name: value})


_TOML = descriptor_to_toml(decode_descriptor_unverified(_REFERENCE))


@SETTINGS
@given(st.text(max_size=200), st.integers(0, len(_TOML)))
def test_random_toml_raises_only_datanet_errors(text: str, position: int) -> None:
    for candidate in (text, _TOML[:position] + text + _TOML[position:]):
        with contextlib.suppress(DatanetError):
            descriptor_from_toml(candidate, publisher_node=NODE.peer_id, now=NOW)
