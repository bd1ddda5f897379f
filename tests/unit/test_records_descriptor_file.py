"""Descriptor files (TOML): template, defaults, round trip, errors that name the field."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from datanet.errors import DecodeError, InvalidInput, RecordTooLarge
from datanet.records.descriptor import AccessPolicy, Descriptor, Distribution
from datanet.records.descriptor_file import (
    DEFAULT_LIFETIME,
    descriptor_from_toml,
    descriptor_template,
    descriptor_to_toml,
)
from datanet.records.ids import DatasetId
from datanet.testing.clock import NOW
from identity.keys import KeyPair

ORG = KeyPair.from_seed(b"o" * 32).org_id
ORG2 = KeyPair.from_seed(b"p" * 32).org_id
NODE = KeyPair.from_seed(b"n" * 32).peer_id
DID = DatasetId(ORG, "census/2020")


def full() -> Descriptor:
    return Descriptor(
        dataset_id=DID,
        title='Census "2020" – households',
        description='Line one\n\tindented "quoted" \\ backslash\nlast line',
        keywords=("census", "households"),
        themes=("http://publications.europa.eu/resource/authority/data-theme/SOCI", "society"),
        publisher_node=NODE,
        license="https://creativecommons.org/licenses/by/4.0/",
        version="2020.1",
        issued=NOW - 100,
        modified=NOW - 7,
        schema="https://example.org/census.schema.json",
        distributions=(
            Distribution("text/csv", "Households", "request", 98765),
            Distribution("application/parquet"),
        ),
        temporal=(1577836800, 1609459199),  # 2020-01-01 .. 2020-12-31T23:59:59Z
        spatial="Berlin",
        access_policy=AccessPolicy(
            "open", (ORG2,), ("research-and-development", "provide-official-statistics"), 30
        ),
        sequence=12,
        expires=NOW + 1000,
    )


def test_template_parses_with_defaults() -> None:
    text = descriptor_template(DID)
    assert str(DID) in text
    desc = descriptor_from_toml(text, publisher_node=NODE, now=NOW)
    assert desc.dataset_id == DID
    assert desc.publisher_node == NODE
    assert desc.issued == desc.modified == NOW
    assert desc.sequence == NOW
    assert desc.expires == NOW + DEFAULT_LIFETIME
    assert desc.access_policy == AccessPolicy()
    assert desc.distributions == (Distribution("text/csv", "Full table", "request"),)


def test_template_with_now_fixes_issued() -> None:
    text = descriptor_template(DID, now=NOW - 3600)
    desc = descriptor_from_toml(text, publisher_node=NODE, now=NOW)
    assert desc.issued == NOW - 3600
    assert desc.modified == NOW


def test_round_trip_full() -> None:
    desc = full()
    text = descriptor_to_toml(desc)
    tomllib.loads(text)  # valid TOML
    assert "publisher_node" not in text
    assert descriptor_from_toml(text, publisher_node=NODE, now=0) == desc


def test_round_trip_minimal() -> None:
    desc = Descriptor(
        dataset_id=DID,
        title="t",
        publisher_node=NODE,
        issued=0,
        modified=0,
        sequence=0,
        expires=1,
    )
    assert descriptor_from_toml(descriptor_to_toml(desc), publisher_node=NODE, now=NOW) == desc


def test_round_trip_times_beyond_datetime() -> None:
    desc = Descriptor(
        dataset_id=DID,
        title="t",
        publisher_node=NODE,
        issued=0,
        modified=0,
        sequence=2**63 - 1,
        expires=2**62,
        temporal=(-(2**62), 2**62),
    )
    assert descriptor_from_toml(descriptor_to_toml(desc), publisher_node=NODE, now=NOW) == desc


def test_time_forms() -> None:
    text = f"""
dataset_id = "{DID}"
title = "t"
issued = 2024-01-01
modified = 2024-01-02T00:00:00+02:00
expires = {NOW + 99}
[temporal]
start = 2020-01-01T00:00:00.9Z
end = 2020-12-31
"""
    desc = descriptor_from_toml(text, publisher_node=NODE, now=NOW)
    assert desc.issued == int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
    assert desc.modified == int(datetime(2024, 1, 1, 22, tzinfo=UTC).timestamp())
    assert desc.expires == NOW + 99
    assert desc.temporal == (1577836800, 1609372800)


@pytest.mark.parametrize(
    ("body", "error", "fragment"),
    [
        ('title = "t"', InvalidInput, "missing field 'dataset_id'"),
        ('dataset_id = "{did}"', InvalidInput, "missing field 'title'"),
        (
            'dataset_id = "{did}"\ntitle = "t"\ntitel = "x"',
            InvalidInput,
            "unknown field(s) in the top level: titel",
        ),
        ('dataset_id = "dn://acme/x"\ntitle = "t"', InvalidInput, "dataset_id: "),
        ('dataset_id = "{did}"\ntitle = 5', InvalidInput, "title must be a string"),
        (
            'dataset_id = "{did}"\ntitle = "t"\nkeywords = "a"',
            InvalidInput,
            "keywords must be a list of strings",
        ),
        (
            'dataset_id = "{did}"\ntitle = "t"\nkeywords = [1]',
            InvalidInput,
            "keywords must be a list of strings",
        ),
        (
            'dataset_id = "{did}"\ntitle = "t"\nissued = 2024-01-01T00:00:00',
            InvalidInput,
            "issued needs a time zone",
        ),
        (
            'dataset_id = "{did}"\ntitle = "t"\nissued = 12:00:00',
            InvalidInput,
            "issued must be a date",
        ),
        ('dataset_id = "{did}"\ntitle = "t"\nissued = true', InvalidInput, "issued must be a date"),
        (
            'dataset_id = "{did}"\ntitle = "t"\nsequence = "1"',
            InvalidInput,
            "sequence must be an integer",
        ),
        (
            'dataset_id = "{did}"\ntitle = "t"\n[temporal]\nstart = 2020-01-01',
            InvalidInput,
            "temporal needs both start and end",
        ),
        (
            'dataset_id = "{did}"\ntitle = "t"\n[access_policy]\nmode = "maybe"',
            InvalidInput,
            "mode must be one of",
        ),
        (
            'dataset_id = "{did}"\ntitle = "t"\n[access_policy]\nowner = "x"',
            InvalidInput,
            "unknown field(s) in access_policy: owner",
        ),
        (
            'dataset_id = "{did}"\ntitle = "t"\n[access_policy]\nallowed_orgs = ["nope"]',
            InvalidInput,
            "access_policy.allowed_orgs[0]",
        ),
        (
            'dataset_id = "{did}"\ntitle = "t"\n[[distributions]]\ntitle = "x"',
            InvalidInput,
            "distributions[0] needs a media_type",
        ),
        (
            'dataset_id = "{did}"\ntitle = "t"\n[[distributions]]\nmedia_type = "a/b"\nsize = 1',
            InvalidInput,
            "unknown field(s) in distributions[0]: size",
        ),
        (
            'dataset_id = "{did}"\ntitle = "t"\n'
            '[[distributions]]\nmedia_type = "a/b"\nbyte_size = 1.5',
            InvalidInput,
            "distributions[0].byte_size must be an integer",
        ),
        (
            'dataset_id = "{did}"\ntitle = "{long}"',
            RecordTooLarge,
            "descriptor file: title is 300 characters",
        ),
        (
            'dataset_id = "{did}"\ntitle = "t"\nexpires = 2000-01-01',
            InvalidInput,
            "expires must lie after modified",
        ),
        ('dataset_id = "{did}"\ntitle = "t', DecodeError, "not valid TOML"),
    ],
)
def test_errors_name_the_field(body: str, error: type[Exception], fragment: str) -> None:
    text = body.replace("{did}", str(DID)).replace("{long}", "x" * 300)
    with pytest.raises(error) as info:
        descriptor_from_toml(text, publisher_node=NODE, now=NOW)
    assert fragment in str(info.value)
    assert str(info.value).startswith("descriptor file")


def test_huge_file_is_refused() -> None:
    with pytest.raises(InvalidInput, match="larger than"):
        descriptor_from_toml("#" * (300 * 1024), publisher_node=NODE, now=NOW)


def test_the_documented_example_parses() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "records.md").read_text("utf-8")
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    desc = descriptor_from_toml(example, publisher_node=NODE, now=NOW)
    assert desc.dataset_id.name == "weather/stations"
    assert len(desc.distributions) == 2
    assert desc.temporal == (1546300800, 1703980800)
    assert desc.sequence == NOW
