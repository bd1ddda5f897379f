"""Dataset identifiers: grammar, round trip, DHT keys, aliases, clear errors."""

from __future__ import annotations

import pytest

from datanet.errors import DatanetError, DecodeError, InvalidInput
from datanet.records.ids import DatasetId, UnknownAlias, check_alias, resolve_alias
from identity.keys import KeyPair

ORG = KeyPair.from_seed(bytes(range(32))).org_id
OTHER = KeyPair.from_seed(bytes(range(1, 33))).org_id
PREFIX = f"dn://{ORG}/"


@pytest.mark.parametrize(
    "name",
    ["a", "weather", "weather/stations", "x.y_z-1", "0", "a/b/c/d/e/f/g/h", "v1.2/data.csv"],
)
def test_valid_ids_round_trip(name: str) -> None:
    text = PREFIX + name
    dataset_id = DatasetId.parse(text)
    assert dataset_id.org == ORG
    assert dataset_id.name == name
    assert str(dataset_id) == text
    assert DatasetId(ORG, name) == dataset_id
    assert dataset_id.dht_key() == b"/dn/" + str(ORG).encode() + b"/" + name.encode()
    assert DatasetId.from_dht_key(dataset_id.dht_key()) == dataset_id


def test_longest_name_is_accepted() -> None:
    name = "/".join(["a" * 24] * 8)
    assert len(name) == 199
    assert DatasetId.parse(PREFIX + name).name == name


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (f"http://{ORG}/x", "starts with 'dn://'"),
        (f"DN://{ORG}/x", "starts with 'dn://'"),
        ("dn:///x", "names no organization"),
        (f"dn://{ORG}", "no name after the organization"),
        (PREFIX, "name is empty"),
        (PREFIX + "Weather", "lower-case only"),
        (PREFIX + "a/../b", "'..'"),
        (PREFIX + "a..b", "'..'"),
        (PREFIX + "a/", "may not end with '/'"),
        (PREFIX + "/a", "may not start with '/'"),
        (PREFIX + "a//b", "'//'"),
        (PREFIX + "/".join("abcdefghi"), "9 segments; the limit is 8"),
        (PREFIX + "a" * 65, "the limit is 64"),
        (PREFIX + "/".join(["a" * 60] * 4), "the limit is 200"),
        (PREFIX + ".hidden", "must start with a-z or 0-9"),
        (PREFIX + "-x", "must start with a-z or 0-9"),
        (PREFIX + "a b", "only a-z, 0-9"),
        (PREFIX + "caf\u00e9", "only a-z, 0-9"),
        (PREFIX + "a%2fb", "only a-z, 0-9"),
        ("dn://did:key:zNotAKey/x", "not an Ed25519 did:key"),
        ("dn://did:key:z0OIl/x", "not base58btc"),
        ("dn://did:web:example.org/x", "not an organization id"),
        ("dn://" + "x" * 600, "the limit is 512"),
    ],
)
def test_bad_ids_give_a_clear_error(text: str, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        DatasetId.parse(text)
    assert fragment in str(info.value)


def test_alias_must_be_resolved_explicitly() -> None:
    with pytest.raises(DecodeError, match="resolve_alias"):
        DatasetId.parse("dn://acme/weather")


@pytest.mark.parametrize("bad", [None, 42, b"dn://x/y"])
def test_non_text_is_refused(bad: object) -> None:
    with pytest.raises(DecodeError):
        DatasetId.parse(bad)  # type: ignore[arg-type]


def test_constructor_checks_the_grammar() -> None:
    with pytest.raises(DecodeError, match="lower-case"):
        DatasetId(ORG, "Upper")
    with pytest.raises(InvalidInput):
        DatasetId("did:key:z6Mk", "x")  # type: ignore[arg-type]


def test_ids_compare_and_hash_by_value() -> None:
    a = DatasetId.parse(PREFIX + "x")
    assert a == DatasetId(ORG, "x")
    assert a != DatasetId(OTHER, "x")
    assert len({a, DatasetId(ORG, "x"), DatasetId(ORG, "y")}) == 2


def test_resolve_alias() -> None:
    aliases = {"acme": ORG, "other-org": OTHER}
    assert resolve_alias("dn://acme/weather", aliases) == DatasetId(ORG, "weather")
    assert resolve_alias("dn://other-org/a/b", aliases) == DatasetId(OTHER, "a/b")
    # a did needs no alias
    assert resolve_alias(f"dn://{OTHER}/z", {}) == DatasetId(OTHER, "z")
    with pytest.raises(UnknownAlias, match="'nobody'"):
        resolve_alias("dn://nobody/weather", aliases)
    with pytest.raises(InvalidInput, match="alias"):
        resolve_alias("dn://Acme/weather", aliases)
    with pytest.raises(DecodeError, match="lower-case"):
        resolve_alias("dn://acme/Weather", aliases)
    assert check_alias("a-b_c") == "a-b_c"


def test_from_dht_key_rejects_other_keys() -> None:
    for key in [b"/dn-org/x", b"/dn/\xff", b"/dn/" + str(ORG).encode() + b"/A"]:
        with pytest.raises(DatanetError):
            DatasetId.from_dht_key(key)
