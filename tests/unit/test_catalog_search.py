"""Unit tests of the FTS5 catalog (datanet/catalog.py) on real SQLite files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datanet.errors import InvalidInput
from datanet.node.paths import DB_FILENAME
from datanet.records.descriptor import Descriptor, verify_descriptor
from datanet.store.catalog import MAX_QUERY_LENGTH, Catalog, match_expression
from datanet.store.db import SCHEMA_VERSION, Storage
from datanet.testing.clock import NOW
from datanet.testing.records import ORG_A, ORG_B, descriptor
from datanet.testing.records import signed as sign
from identity.certs import TrustStore
from identity.keys import KeyPair


def desc(
    name: str,
    title: str,
    *,
    org: KeyPair = ORG_A,
    description: str = "",
    keywords: tuple[str, ...] = (),
    themes: tuple[str, ...] = (),
    sequence: int = 1,
    modified: int = NOW,
    expires: int = NOW + 86400,
) -> Descriptor:
    return descriptor(
        name,
        org=org,
        title=title,
        description=description,
        keywords=keywords,
        themes=themes,
        issued=NOW - 1000,
        modified=modified,
        sequence=sequence,
        expires=expires,
    )


def raw(d: Descriptor) -> bytes:
    return b"raw:%s:%d" % (str(d.dataset_id).encode(), d.sequence)


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    c = Catalog(tmp_path / "catalog.sqlite")
    yield c  # type: ignore[misc]
    c.close()


def fill(cat: Catalog) -> None:
    items = [
        desc(
            "weather/stations",
            "Weather stations",
            description="Hourly observations.",
            keywords=("weather", "Temperature"),
            modified=NOW - 30,
        ),
        desc(
            "air/quality",
            "Air quality",
            description="Measured at weather stations.",
            keywords=("air",),
            modified=NOW - 20,
        ),
        desc(
            "traffic/counts",
            "Traffic counts",
            description="Vehicles per hour.",
            keywords=("traffic",),
            themes=("TRAN",),
            modified=NOW - 10,
        ),
        desc(
            "cafe/menus",
            "Café menus",
            org=ORG_B,
            description="Crème brûlée prices.",
            keywords=("food",),
            modified=NOW,
        ),
    ]
    assert cat.upsert_many((raw(d), d) for d in items) == 4


def test_upsert_get_and_sequence_rule(cat: Catalog) -> None:
    d1 = desc("a/b", "First")
    assert cat.upsert(raw(d1), d1)
    assert cat.get(str(d1.dataset_id)) == raw(d1)
    assert cat.get(d1.dataset_id) == raw(d1)  # type: ignore[arg-type]
    d0 = desc("a/b", "Older", sequence=0)
    assert not cat.upsert(raw(d0), d0)
    assert not cat.upsert(b"other bytes", d1)  # an equal sequence never replaces
    d2 = desc("a/b", "Second", sequence=2)
    assert cat.upsert(raw(d2), d2)
    assert cat.get(str(d1.dataset_id)) == raw(d2)
    assert cat.sequence_of(str(d1.dataset_id)) == 2
    assert cat.get("dn://nothing/here") is None
    assert len(cat) == 1
    # the replaced text is no longer searchable; the new one is
    assert cat.search("first") == []
    assert [h.title for h in cat.search("second")] == ["Second"]
    assert cat.integrity_check()


def test_search_ranks_title_over_description_and_stems(cat: Catalog) -> None:
    fill(cat)
    hits = cat.search("weather station")
    assert [h.title for h in hits] == ["Weather stations", "Air quality"]
    assert hits[0].score < hits[1].score  # bm25: lower is better
    assert hits[0].keywords == ("weather", "Temperature")
    assert hits[0].org == str(ORG_A.org_id)
    assert [h.title for h in cat.search("TEMPERATURES")] == ["Weather stations"]
    assert [h.title for h in cat.search("creme brulee")] == ["Café menus"]  # accents folded
    assert [h.title for h in cat.search("tran")] == ["Traffic counts"]  # themes indexed
    assert cat.search("weather nothingmatches") == []  # every word must match


def test_empty_query_lists_newest_with_paging_and_filters(cat: Catalog) -> None:
    fill(cat)
    assert [h.title for h in cat.search("")] == [
        "Café menus",
        "Traffic counts",
        "Air quality",
        "Weather stations",
    ]
    assert [h.title for h in cat.search("  ", limit=2, offset=1)] == [
        "Traffic counts",
        "Air quality",
    ]
    assert [h.title for h in cat.search("", org=str(ORG_B.org_id))] == ["Café menus"]
    assert [h.title for h in cat.search("", keyword="temperature")] == ["Weather stations"]
    assert [h.title for h in cat.search("weather", keyword="air")] == ["Air quality"]
    assert cat.search("weather", org=str(ORG_B.org_id)) == []
    assert [h.title for h in cat.search("weather", limit=1, offset=1)] == ["Air quality"]


@pytest.mark.parametrize(
    "query",
    [
        '"',
        "'",
        "AND",
        "weather AND",
        "OR OR",
        "NOT",
        "NEAR(weather stations)",
        "title:weather",
        "weather*",
        "*",
        "-weather",
        "^weather",
        "(",
        ")(",
        "{title}: x",
        "a:b:c",
        "\x00",
        'weather" OR "air',
        "🙂 weather",
        "\\",
        "weather + stations",
    ],
)
def test_fts_syntax_cannot_be_injected(cat: Catalog, query: str) -> None:
    fill(cat)
    hits = cat.search(query)
    if "weather" in query.lower():
        assert all("weather" in (h.title + h.description).lower() for h in hits)


def test_match_expression_quotes_every_token() -> None:
    assert match_expression('climate AND "x" OR title:y*') == '"climate" "AND" "x" "OR" "title" "y"'
    assert match_expression("  ") == ""
    assert match_expression("w " * 40).count('"w"') == 16
    with pytest.raises(InvalidInput):
        match_expression("x" * (MAX_QUERY_LENGTH + 1))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.text(max_size=60))
def test_any_text_is_a_valid_query(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    with Catalog(tmp_path_factory.mktemp("c") / "c.sqlite") as c:
        d = desc("a/b", "Weather stations")
        c.upsert(raw(d), d)
        c.search(text)


def test_limits_are_checked(cat: Catalog) -> None:
    with pytest.raises(InvalidInput):
        cat.search("x", limit=0)
    with pytest.raises(InvalidInput):
        cat.search("x", limit=1001)
    with pytest.raises(InvalidInput):
        cat.search("x", offset=-1)


def test_expiry_and_removal(cat: Catalog) -> None:
    short = desc("a/short", "Short lived", expires=NOW + 10)
    long = desc("a/long", "Long lived", expires=NOW + 1000)
    cat.upsert_many([(raw(short), short), (raw(long), long)])
    assert cat.get(str(short.dataset_id), now=NOW + 10) is None
    assert cat.get(str(short.dataset_id), now=NOW + 9) == raw(short)
    assert [h.title for h in cat.search("lived", now=NOW + 10)] == ["Long lived"]
    assert cat.expire(NOW + 10) == 1
    assert [h.title for h in cat.search("lived")] == ["Long lived"]
    assert cat.remove(str(long.dataset_id))
    assert not cat.remove(str(long.dataset_id))
    assert cat.search("") == []
    assert cat.integrity_check()


def test_persists_and_shares_the_node_database(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    trust = TrustStore()
    trust.trust(ORG_A.org_id)
    signed = sign(desc("real/one", "Signed dataset"))
    verified = verify_descriptor(signed, trust, NOW)
    with Storage(path) as db, Catalog(path) as cat:
        assert cat.upsert(verified.raw, verified.descriptor)
        db.upsert_peer(b"p", [b"a"], now=1)
        assert db.schema_version == SCHEMA_VERSION
    with Catalog(path) as cat:
        got = cat.get(f"dn://{ORG_A.org_id}/real/one")
        assert got == signed
        assert verify_descriptor(got, trust, NOW).descriptor.title == "Signed dataset"
        assert cat.integrity_check()


def test_title_matches_come_before_description_matches(cat: Catalog) -> None:
    old_title = desc("a/old", "Flood risk map", modified=NOW - 1000)
    cat.upsert(raw(old_title), old_title)
    for i in range(5):
        d = desc(f"a/new{i}", f"Dataset {i}", description="mentions flood once", modified=NOW)
        cat.upsert(raw(d), d)
    hits = cat.search("flood", limit=3)
    assert hits[0].title == "Flood risk map"
    assert len(hits) == 3
    page = cat.search("flood", limit=3, offset=3)
    assert len(page) == 3
    assert {h.dataset_id for h in hits}.isdisjoint({h.dataset_id for h in page})


def test_common_words_rank_only_the_most_recent_window(
    cat: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("datanet.store.catalog.SEARCH_WINDOW", 3)
    for i in range(6):
        d = desc(f"a/d{i}", f"Common word {i}", keywords=("tagged",) if i == 0 else ())
        cat.upsert(raw(d), d)
    assert [h.title for h in cat.search("common", limit=3)] == [
        f"Common word {i}" for i in (5, 4, 3)
    ]
    assert len(cat.search("common", limit=6)) == 6  # a page larger than the window widens it
    # filters narrow the match before the window is applied: the oldest is still found
    assert [h.title for h in cat.search("common", keyword="TAGGED")] == ["Common word 0"]
    assert [h.title for h in cat.search("common", limit=3, org=str(ORG_A.org_id))] == [
        f"Common word {i}" for i in (5, 4, 3)
    ]
