"""Unit tests of the catalog's facets, cursors, withdrawals and schema migration (real SQLite)."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from datanet.errors import InvalidInput, StorageError
from datanet.records.descriptor import AccessPolicy, Descriptor, Distribution
from datanet.records.search import MAX_FILTER_VALUES, FacetCount
from datanet.store import catalog as catalog_module
from datanet.store.catalog import (
    CATALOG_SCHEMA_VERSION,
    WITHDRAWAL_RETENTION,
    Catalog,
    SearchFilters,
    SearchPage,
    Withdrawal,
)
from datanet.testing.clock import DAY, NOW
from datanet.testing.records import ORG_A, ORG_B, descriptor, signed
from identity.keys import KeyPair

A = str(ORG_A.org_id)
B = str(ORG_B.org_id)


def desc(
    name: str,
    title: str,
    *,
    org: KeyPair = ORG_A,
    keywords: tuple[str, ...] = (),
    themes: tuple[str, ...] = (),
    license: str = "",  # noqa: A002 - the descriptor's field name
    media: tuple[str, ...] = (),
    access: str = "request",
    temporal: tuple[int, int] | None = None,
    sequence: int = 1,
    modified: int = NOW,
    expires: int = NOW + DAY,
    description: str = "",
) -> Descriptor:
    return descriptor(
        name,
        org=org,
        title=title,
        description=description,
        keywords=keywords,
        themes=themes,
        license=license,
        distributions=tuple(Distribution(m) for m in media),
        access_policy=AccessPolicy(mode=access),  # type: ignore[arg-type]
        temporal=temporal,
        issued=NOW - 10 * DAY,
        modified=modified,
        sequence=sequence,
        expires=expires,
    )


def raw(d: Descriptor) -> bytes:
    return b"raw:%s:%d" % (str(d.dataset_id).encode(), d.sequence)


def titles(page: SearchPage) -> list[str]:
    return [h.title for h in page.hits]


def counts(page: SearchPage, facet: str) -> dict[str, int]:
    return {f.value: f.count for f in page.facets[facet]}


def every_page(cat: Catalog, query: str = "", **kw: object) -> Iterator[SearchPage]:
    cursor = None
    while True:
        page = cat.search(query, cursor=cursor, **kw)  # type: ignore[arg-type]
        yield page
        cursor = page.next_cursor
        if cursor is None:
            return


@pytest.fixture
def cat(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog(tmp_path / "catalog.sqlite") as c:
        yield c


DATA = [
    desc(
        "w/stations",
        "Weather stations",
        keywords=("weather", "Temperature"),
        themes=("ENVI",),
        license="CC-BY-4.0",
        media=("text/csv", "application/json"),
        access="open",
        temporal=(NOW - 100 * DAY, NOW - 50 * DAY),
        modified=NOW - 30,
    ),
    desc(
        "w/air",
        "Air quality",
        keywords=("air", "weather"),
        themes=("ENVI", "HEAL"),
        license="cc-by-4.0",
        media=("text/csv",),
        access="request",
        temporal=(NOW - 60 * DAY, NOW - 10 * DAY),
        modified=NOW - 20,
    ),
    desc(
        "t/counts",
        "Traffic counts",
        keywords=("traffic",),
        themes=("TRAN",),
        license="ODbL-1.0",
        media=("application/parquet",),
        access="closed",
        modified=NOW - 10,
    ),
    desc(
        "c/menus",
        "Cafe menus",
        org=ORG_B,
        keywords=("food", "weather"),
        license="CC0-1.0",
        access="open",
        temporal=(NOW - 5 * DAY, NOW),
        modified=NOW,
    ),
]


def fill(cat: Catalog) -> None:
    assert cat.upsert_many((raw(d), d, 7) for d in DATA) == len(DATA)


# --- facets ---------------------------------------------------------------------------


def test_unfiltered_facet_counts_come_from_the_stored_counts(cat: Catalog) -> None:
    fill(cat)
    page = cat.search("")
    assert page.total == 4
    assert page.counted == 4
    assert counts(page, "org") == {A: 3, B: 1}
    assert page.facets["keyword"][0] == FacetCount("weather", 3)  # most frequent first
    assert counts(page, "keyword") == {
        "weather": 3,
        "temperature": 1,
        "air": 1,
        "traffic": 1,
        "food": 1,
    }
    assert counts(page, "theme") == {"envi": 2, "heal": 1, "tran": 1}
    assert counts(page, "license") == {"cc-by-4.0": 2, "odbl-1.0": 1, "cc0-1.0": 1}
    assert counts(page, "media_type") == {
        "text/csv": 2,
        "application/json": 1,
        "application/parquet": 1,
    }
    assert counts(page, "access") == {"open": 2, "request": 1, "closed": 1}
    # the same counts computed from the matches (a filter that keeps everything)
    everything = cat.search("", filters=SearchFilters(orgs=(A, B)))
    assert everything.facets == page.facets
    assert cat.search("", facets=False).facets == {}


def test_filters_or_within_a_facet_and_across_facets(cat: Catalog) -> None:
    fill(cat)

    def find(**kw: object) -> list[str]:
        return titles(cat.search("", filters=SearchFilters(**kw)))  # type: ignore[arg-type]

    assert find(orgs=(B,)) == ["Cafe menus"]
    assert find(keywords=("WEATHER",)) == ["Cafe menus", "Air quality", "Weather stations"]
    assert find(keywords=("air", "traffic")) == ["Traffic counts", "Air quality"]
    assert find(themes=("envi",)) == ["Air quality", "Weather stations"]
    assert find(licenses=("CC-BY-4.0",)) == ["Air quality", "Weather stations"]
    assert find(media_types=("Text/CSV",)) == ["Air quality", "Weather stations"]
    assert find(access=("open", "closed")) == ["Cafe menus", "Traffic counts", "Weather stations"]
    assert find(keywords=("weather",), access=("open",)) == ["Cafe menus", "Weather stations"]
    assert find(keywords=("weather",), access=("open",), orgs=(A,)) == ["Weather stations"]
    assert find(keywords=("nothing",)) == []
    # temporal overlap; no coverage never matches a temporal filter
    assert find(temporal_from=NOW - 20 * DAY) == ["Cafe menus", "Air quality"]
    assert find(temporal_to=NOW - 55 * DAY) == ["Air quality", "Weather stations"]
    assert find(temporal_from=NOW - 55 * DAY, temporal_to=NOW - 52 * DAY) == [
        "Air quality",
        "Weather stations",
    ]
    assert find(temporal_from=NOW + 1) == []
    page = cat.search("weather", filters=SearchFilters(access=("open",)))
    assert titles(page) == ["Weather stations", "Cafe menus"]
    assert counts(page, "org") == {A: 1, B: 1}
    assert counts(page, "keyword") == {"weather": 2, "temperature": 1, "food": 1}


def test_hits_carry_the_facet_fields(cat: Catalog) -> None:
    fill(cat)
    hit = cat.search("stations").hits[0]
    assert hit.license == "cc-by-4.0"
    assert hit.access == "open"
    assert hit.media_types == ("text/csv", "application/json")
    assert hit.themes == ("ENVI",)


def test_counts_follow_replacements_and_removals(cat: Catalog) -> None:
    fill(cat)
    newer = desc("t/counts", "Traffic counts v2", keywords=("traffic", "road"), sequence=2)
    assert cat.upsert(raw(newer), newer)
    page = cat.search("")
    assert counts(page, "keyword")["road"] == 1
    assert "tran" not in counts(page, "theme")
    assert "odbl-1.0" not in counts(page, "license")
    assert cat.remove(str(DATA[3].dataset_id))
    assert counts(cat.search(""), "org") == {A: 3}
    assert cat.search("").facets == cat.search("", filters=SearchFilters(orgs=(A,))).facets
    assert cat.integrity_check()


def test_expired_rows_are_not_counted_when_now_is_given(cat: Catalog) -> None:
    fill(cat)
    short = desc("s/short", "Short lived", keywords=("weather",), expires=NOW + 10)
    cat.upsert(raw(short), short)
    assert counts(cat.search(""), "keyword")["weather"] == 4
    page = cat.search("", now=NOW + 10)
    assert page.total == 4
    assert counts(page, "keyword")["weather"] == 3


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"access": ("public",)}, "access filter values are open, request, closed"),
        ({"keywords": ("",)}, "1 to 256 characters"),
        ({"themes": ("x" * 257,)}, "1 to 256 characters"),
        ({"licenses": ("a\nb",)}, "control character"),
        ({"orgs": tuple(f"o{i}" for i in range(MAX_FILTER_VALUES + 1))}, "at most 20 values"),
        ({"keywords": "weather"}, "a list of values"),
        ({"media_types": (3,)}, "are text"),
        ({"temporal_from": 5, "temporal_to": 4}, "lies after"),
        ({"temporal_from": "2024-01-01"}, "Unix seconds"),
        ({"temporal_to": True}, "Unix seconds"),
    ],
)
def test_bad_filter_values_are_rejected(filters: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        SearchFilters(**filters)  # type: ignore[arg-type]


def test_filters_normalize() -> None:
    f = SearchFilters(keywords=[" Weather ", "weather"], orgs=("did:key:zAbC",))  # type: ignore[arg-type]
    assert f.keywords == ("weather",)
    assert f.orgs == ("did:key:zAbC",)  # org ids are case-sensitive
    assert f == SearchFilters(keywords=("WEATHER",), orgs=("did:key:zAbC",))
    assert SearchFilters().empty
    assert not f.empty


def test_filter_values_never_reach_sql_or_match(cat: Catalog) -> None:
    fill(cat)
    evil = ("') OR 1=1 --", '"weather" OR *', "{title}: x", "NEAR(a b)")
    for name in ("orgs", "keywords", "themes", "licenses", "media_types"):
        page = cat.search("weather", filters=SearchFilters(**{name: evil}))  # type: ignore[arg-type]
        assert page.hits == []
        assert page.total == 0


# --- cursors --------------------------------------------------------------------------


def many(cat: Catalog, n: int, *, start: int = 0) -> None:
    items = []
    for i in range(start, start + n):
        d = desc(
            f"m/{i}",
            f"Flood record {i}",
            keywords=("flood", f"k{i % 3}"),
            description="flood " * (i % 4),
            # some equal timestamps, so the id breaks ties
            modified=NOW - (i // 3),
        )
        items.append((raw(d), d, None))
    cat.upsert_many(items)


@pytest.mark.parametrize("query", ["", "flood", "record"])
@pytest.mark.parametrize("limit", [1, 4, 7, 50])
def test_cursor_pages_yield_every_match_exactly_once(cat: Catalog, query: str, limit: int) -> None:
    many(cat, 40)
    whole = cat.search(query, limit=1000)
    assert whole.total == 40
    assert whole.next_cursor is None
    seen = [h.dataset_id for page in every_page(cat, query, limit=limit) for h in page.hits]
    assert seen == [h.dataset_id for h in whole.hits]  # same order, each once
    filtered = SearchFilters(keywords=("k1",))
    expected = [h.dataset_id for h in cat.search(query, limit=1000, filters=filtered).hits]
    assert len(expected) == 13
    pages = list(every_page(cat, query, limit=limit, filters=filtered))
    assert [h.dataset_id for p in pages for h in p.hits] == expected
    assert {p.total for p in pages} == {13}


@pytest.mark.parametrize("query", ["", "flood"])
def test_inserts_and_replacements_between_pages_repeat_no_hit(cat: Catalog, query: str) -> None:
    many(cat, 20)
    first = cat.search(query, limit=5)
    seen = [h.dataset_id for h in first.hits]
    many(cat, 10, start=100)  # new datasets, newer than everything
    for i in range(5):  # new versions of datasets already seen
        d = desc(f"m/{i}", f"Flood record {i} v2", keywords=("flood",), sequence=2)
        cat.upsert(raw(d), d)
    cursor = first.next_cursor
    while cursor is not None:
        page = cat.search(query, limit=5, cursor=cursor)
        seen += [h.dataset_id for h in page.hits]
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))


def test_cursor_bound_to_its_search(cat: Catalog) -> None:
    many(cat, 10)
    cursor = cat.search("flood", limit=2).next_cursor
    assert cursor is not None
    assert len(cursor) < 120
    assert cursor.replace("-", "").replace("_", "").isalnum()  # URL-safe
    with pytest.raises(InvalidInput, match="another search"):
        cat.search("flood record", limit=2, cursor=cursor)
    with pytest.raises(InvalidInput, match="another search"):
        cat.search("flood", limit=2, cursor=cursor, filters=SearchFilters(keywords=("k1",)))
    listing = cat.search("", limit=2).next_cursor
    assert listing is not None
    with pytest.raises(InvalidInput, match="another search"):
        cat.search("flood", cursor=listing)
    # the limit may change between pages
    assert cat.search("flood", limit=3, cursor=cursor).hits


def _tampered(cursor: str) -> str:
    data = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    data[5] ^= 1
    return base64.urlsafe_b64encode(bytes(data)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "make",
    [
        lambda c: "",
        lambda c: "x" * 300,
        lambda c: "not a cursor!",
        lambda c: "AAAA",
        lambda c: c[:-3],
        lambda c: c + "A",
        _tampered,
        lambda c: base64.urlsafe_b64encode(b'[2,"t",1,0,0.0,1,1]' + bytes(12)).decode(),
        lambda c: base64.urlsafe_b64encode(b"\xff" * 30).decode().rstrip("="),
    ],
)
def test_bad_cursors_are_invalid_input(cat: Catalog, make: object) -> None:
    many(cat, 10)
    cursor = cat.search("flood", limit=2).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidInput, match="invalid cursor"):
        cat.search("flood", limit=2, cursor=make(cursor))  # type: ignore[operator]


def test_cursors_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with Catalog(path) as c:
        many(c, 6)
        cursor = c.search("flood", limit=3).next_cursor
    with Catalog(path) as c:
        assert len(c.search("flood", limit=3, cursor=cursor).hits) == 3
    with Catalog(tmp_path / "other.sqlite") as other:
        many(other, 6)
        with pytest.raises(InvalidInput, match="another search"):
            other.search("flood", limit=3, cursor=cursor)


# --- withdrawals ----------------------------------------------------------------------


def test_deprecation_blocks_older_and_equal_sequences(cat: Catalog) -> None:
    d1 = desc("a/x", "Version one", sequence=1)
    d3 = desc("a/x", "Version three", sequence=3)
    d4 = desc("a/x", "Version four", sequence=4)
    dataset = str(d1.dataset_id)
    assert cat.upsert(raw(d1), d1)
    assert cat.withdraw(dataset, reason="deprecated", at=NOW, sequence=3, raw=b"tombstone")
    assert cat.get(dataset) is None
    assert cat.search("version").total == 0
    assert cat.withdrawal(dataset) == Withdrawal(dataset, "deprecated", NOW, 3, b"tombstone")
    assert cat.withdrawals() == [Withdrawal(dataset, "deprecated", NOW, 3, b"tombstone")]
    assert not cat.upsert(raw(d1), d1)
    assert not cat.upsert(raw(d3), d3)
    assert cat.upsert(raw(d4), d4)  # republished after the deprecation
    assert cat.get(dataset) == raw(d4)
    assert cat.withdrawal(dataset) is not None  # still blocks sequences up to 3
    # a deprecation below the held sequence leaves the descriptor; a lower one is not recorded
    assert not cat.withdraw(dataset, reason="deprecated", at=NOW + 1, sequence=2, raw=b"old")
    assert cat.withdrawal(dataset) == Withdrawal(dataset, "deprecated", NOW, 3, b"tombstone")
    assert cat.withdraw(dataset, reason="deprecated", at=NOW + 2, sequence=4, raw=b"newer")
    assert cat.withdrawal(dataset) == Withdrawal(dataset, "deprecated", NOW + 2, 4, b"newer")
    # expiry and revocation never replace a deprecation
    assert not cat.withdraw(dataset, reason="expired", at=NOW + 3)
    assert cat.withdrawal(dataset).reason == "deprecated"  # type: ignore[union-attr]
    assert cat.integrity_check()


def test_revocation_withdraws_by_serial_and_newer_comes_back(cat: Catalog) -> None:
    a1 = desc("a/one", "One")
    a2 = desc("a/two", "Two")
    b1 = desc("b/one", "Other org", org=ORG_B)
    cat.upsert(raw(a1), a1, serial=5)
    cat.upsert(raw(a2), a2, serial=6)
    cat.upsert(raw(b1), b1, serial=5)
    assert cat.remove_revoked(A, [5, 99], at=NOW) == [str(a1.dataset_id)]
    assert cat.remove_revoked(A, [], at=NOW) == []
    assert cat.get(str(a1.dataset_id)) is None
    assert cat.get(str(b1.dataset_id)) is not None  # another org's serial 5
    assert cat.withdrawal(str(a1.dataset_id)) == Withdrawal(
        str(a1.dataset_id), "revoked", NOW, 1, None
    )
    assert not cat.upsert(raw(a1), a1, serial=7)  # not newer than what was revoked
    again = desc("a/one", "One again", sequence=2)
    assert cat.upsert(raw(again), again, serial=7)
    assert cat.withdrawal(str(a1.dataset_id)) is None  # cleared
    assert cat.stats()["withdrawals"] == {"deprecated": 0, "revoked": 0, "expired": 0}


def test_expiry_is_recorded_then_forgotten(cat: Catalog) -> None:
    short = desc("a/short", "Short", expires=NOW + 10)
    cat.upsert(raw(short), short)
    assert cat.expire(NOW + 10) == 1
    w = cat.withdrawal(str(short.dataset_id))
    assert w == Withdrawal(str(short.dataset_id), "expired", NOW + 10, 1, None)
    assert cat.withdrawals() == []  # only deprecations are handed on
    assert cat.stats()["withdrawals"]["expired"] == 1
    assert cat.expire(NOW + 10 + WITHDRAWAL_RETENTION) == 0
    assert cat.withdrawal(str(short.dataset_id)) is not None  # not older than the retention yet
    cat.expire(NOW + 11 + WITHDRAWAL_RETENTION)
    assert cat.withdrawal(str(short.dataset_id)) is None


def test_withdraw_checks_its_reason(cat: Catalog) -> None:
    with pytest.raises(InvalidInput, match="deprecated, revoked, expired"):
        cat.withdraw("dn://x/y", reason="bored", at=NOW)
    with pytest.raises(InvalidInput, match="tombstone"):
        cat.withdraw("dn://x/y", reason="revoked", at=NOW, raw=b"x")
    assert not cat.withdraw("dn://x/y", reason="revoked", at=NOW)
    assert cat.withdrawal("dn://x/y") == Withdrawal("dn://x/y", "revoked", NOW, 0, None)


def test_entries_by_org_and_stats(cat: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_module, "_ENTRY_CHUNK", 2)
    fill(cat)
    entries = list(cat.entries())
    assert [(d, m) for d, m, _ in entries] == [(str(d.dataset_id), d.modified) for d in DATA]
    assert entries[0][2] == raw(DATA[0])
    assert cat.by_org(B) == [(str(DATA[3].dataset_id), raw(DATA[3]))]
    assert len(cat.by_org(A)) == 3
    stats = cat.stats()
    assert stats["descriptors"] == 4
    assert stats["orgs"] == 2
    assert stats["per_org"] == [{"org": A, "descriptors": 3}, {"org": B, "descriptors": 1}]
    assert stats["schema_version"] == CATALOG_SCHEMA_VERSION


# --- migration ------------------------------------------------------------------------


def _v1_catalog(path: Path, items: list[tuple[bytes, Descriptor]]) -> None:
    """A catalog file exactly as version 1 wrote it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE catalog_meta (name TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    conn.executescript(f"BEGIN;\n{catalog_module._V1}\nCOMMIT;")
    conn.execute("INSERT INTO catalog_meta VALUES ('catalog', 1)")
    for data, d in items:
        org = str(d.dataset_id.org)
        fields = (d.title, d.description, "\n".join(d.keywords), "\n".join(d.themes), org)
        rowid = conn.execute(
            "INSERT INTO catalog (dataset_id, sequence, modified, expires, title, description, "
            "keywords, themes, org, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (str(d.dataset_id), d.sequence, d.modified, d.expires, *fields, data),
        ).lastrowid
        conn.execute(
            "INSERT INTO catalog_fts (rowid, title, description, keywords, themes, org) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (rowid, *fields),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO catalog_keywords (keyword, id) VALUES (?, ?)",
            [(k.casefold(), rowid) for k in d.keywords],
        )
    conn.close()


def test_a_version_1_catalog_migrates_and_keeps_searching(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    real = [(signed(d), d) for d in DATA[:3]]  # signed: the migration decodes their facets
    fake = desc("x/unsigned", "Unsigned weather notes", keywords=("weather",), themes=("ENVI",))
    _v1_catalog(path, [*real, (b"not a descriptor", fake)])
    with Catalog(path) as cat:
        assert len(cat) == 4
        assert cat.integrity_check()
        found = titles(cat.search("weather"))
        assert sorted(found[:2]) == ["Unsigned weather notes", "Weather stations"]
        assert found[2] == "Air quality"  # "weather" only among its keywords
        assert cat.get(str(DATA[0].dataset_id)) == real[0][0]
        page = cat.search("")
        assert counts(page, "keyword")["weather"] == 3
        assert counts(page, "theme") == {"envi": 3, "heal": 1, "tran": 1}
        assert counts(page, "license") == {"cc-by-4.0": 2, "odbl-1.0": 1}
        assert counts(page, "access") == {"open": 1, "request": 1, "closed": 1}
        assert counts(page, "media_type")["text/csv"] == 2
        assert page.facets == cat.search("", filters=SearchFilters(orgs=(A,))).facets
        assert titles(cat.search("", filters=SearchFilters(temporal_to=NOW - 55 * DAY))) == [
            "Air quality",
            "Weather stations",
        ]
        # the signing certificate's serial was recovered (datanet.testing signs with serial 7)
        revoked = cat.remove_revoked(A, [7], at=NOW)
        assert sorted(revoked) == sorted(str(d.dataset_id) for _, d in real)
        assert len(cat) == 1
    with Catalog(path) as cat:  # opening again migrates nothing more
        assert len(cat) == 1
        assert cat.stats()["withdrawals"]["revoked"] == 3


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    with Catalog(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("UPDATE catalog_meta SET version = 99 WHERE name = 'catalog'")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="upgrade datanet"):
        Catalog(path)
