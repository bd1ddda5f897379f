"""Unit tests of the FTS5 catalog (datanet/store/catalog.py) on real SQLite files: text search.

Facets, cursors, withdrawals and the v1 -> v2 migration: ``test_catalog_facets.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datanet.errors import InvalidInput
from datanet.node.paths import DB_FILENAME
from datanet.records.descriptor import Descriptor, verify_descriptor
from datanet.store.catalog import (
    MAX_QUERY_LENGTH,
    Catalog,
    SearchFilters,
    SearchPage,
    match_expression,
)
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


def titles(page: SearchPage) -> list[str]:
    return [h.title for h in page.hits]


def pages(cat: Catalog, query: str, *, limit: int, **kw: object) -> list[list[str]]:
    """Every page of a search, following the cursors."""
    out, cursor = [], None
    while True:
        page = cat.search(query, limit=limit, cursor=cursor, **kw)  # type: ignore[arg-type]
        out.append(titles(page))
        cursor = page.next_cursor
        if cursor is None:
            return out


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
    assert cat.search("first").hits == []
    assert titles(cat.search("second")) == ["Second"]
    assert cat.integrity_check()


def test_search_ranks_title_over_description_and_stems(cat: Catalog) -> None:
    fill(cat)
    hits = cat.search("weather station").hits
    assert [h.title for h in hits] == ["Weather stations", "Air quality"]
    assert hits[0].score < hits[1].score  # bm25: lower is better
    assert hits[0].keywords == ("weather", "Temperature")
    assert hits[0].org == str(ORG_A.org_id)
    assert titles(cat.search("TEMPERATURES")) == ["Weather stations"]
    assert titles(cat.search("creme brulee")) == ["Café menus"]  # accents folded
    assert titles(cat.search("tran")) == ["Traffic counts"]  # themes indexed
    assert cat.search("weather nothingmatches").hits == []  # every word must match


def test_empty_query_lists_newest_with_paging_and_filters(cat: Catalog) -> None:
    fill(cat)
    assert titles(cat.search("")) == [
        "Café menus",
        "Traffic counts",
        "Air quality",
        "Weather stations",
    ]
    assert pages(cat, "  ", limit=3) == [
        ["Café menus", "Traffic counts", "Air quality"],
        ["Weather stations"],
    ]
    assert titles(cat.search("", filters=SearchFilters(orgs=(str(ORG_B.org_id),)))) == [
        "Café menus"
    ]
    by_keyword = cat.search("", filters=SearchFilters(keywords=("temperature",)))
    assert titles(by_keyword) == ["Weather stations"]
    assert titles(cat.search("weather", filters=SearchFilters(keywords=("air",)))) == [
        "Air quality"
    ]
    assert cat.search("weather", filters=SearchFilters(orgs=(str(ORG_B.org_id),))).hits == []
    assert pages(cat, "weather", limit=1) == [["Weather stations"], ["Air quality"]]


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
    hits = cat.search(query).hits
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
        cat.search("x", filters={"orgs": ()})  # type: ignore[arg-type]


def test_expiry_and_removal(cat: Catalog) -> None:
    short = desc("a/short", "Short lived", expires=NOW + 10)
    long = desc("a/long", "Long lived", expires=NOW + 1000)
    cat.upsert_many([(raw(short), short), (raw(long), long)])
    assert cat.get(str(short.dataset_id), now=NOW + 10) is None
    assert cat.get(str(short.dataset_id), now=NOW + 9) == raw(short)
    assert titles(cat.search("lived", now=NOW + 10)) == ["Long lived"]
    assert titles(cat.search("", now=NOW + 10)) == ["Long lived"]
    assert cat.search("", now=NOW + 10).total == 1
    assert cat.expire(NOW + 10) == 1
    assert titles(cat.search("lived")) == ["Long lived"]
    assert cat.remove(str(long.dataset_id))
    assert not cat.remove(str(long.dataset_id))
    assert cat.search("").hits == []
    assert cat.search("").total == 0
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
    first = cat.search("flood", limit=3)
    hits = first.hits
    assert hits[0].title == "Flood risk map"
    assert len(hits) == 3
    assert first.total == 6
    page = cat.search("flood", limit=3, cursor=first.next_cursor).hits
    assert len(page) == 3
    assert {h.dataset_id for h in hits}.isdisjoint({h.dataset_id for h in page})


def test_common_words_rank_only_the_most_recent_window(
    cat: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("datanet.store.catalog.SEARCH_WINDOW", 3)
    for i in range(6):
        d = desc(f"a/d{i}", f"Common word {i}", keywords=("tagged",) if i == 0 else ())
        cat.upsert(raw(d), d)
    first = cat.search("common", limit=3)
    assert titles(first) == [f"Common word {i}" for i in (5, 4, 3)]
    assert first.total == 3
    assert first.next_cursor is None
    assert len(cat.search("common", limit=6).hits) == 6  # a page larger than the window widens it
    # filters narrow the match before the window is applied: the oldest is still found
    tagged = SearchFilters(keywords=("TAGGED",))
    assert titles(cat.search("common", filters=tagged)) == ["Common word 0"]
    by_org = SearchFilters(orgs=(str(ORG_A.org_id),))
    assert titles(cat.search("common", limit=3, filters=by_org)) == [
        f"Common word {i}" for i in (5, 4, 3)
    ]


def test_a_descriptor_is_committed_without_an_fsync_and_a_withdrawal_with_one(
    cat: Catalog,
) -> None:
    # Every node commits every descriptor of the network: an fsync each, in the
    # event loop's thread, was ~7 % of a 100-node network's CPU samples while it
    # published. The catalog is rebuilt from the record store and catalog sync;
    # why a dataset left (a withdrawal) stays durable.
    statements: list[str] = []
    cat._conn.set_trace_callback(statements.append)
    d = desc("fsync", "No fsync")
    assert cat.upsert(raw(d), d)
    assert statements[0] == "PRAGMA synchronous=NORMAL"
    assert "COMMIT" in statements
    statements.clear()
    cat.withdraw(str(d.dataset_id), reason="expired", at=NOW)
    assert statements[0] == "PRAGMA synchronous=FULL"
    cat._conn.set_trace_callback(None)
