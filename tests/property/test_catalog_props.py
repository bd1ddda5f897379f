"""Property tests of catalog search: filters, facets and cursors against a brute-force reference."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from datanet.records.descriptor import AccessPolicy, Descriptor, Distribution
from datanet.records.search import FACETS, MAX_FACET_VALUES
from datanet.store.catalog import Catalog, SearchFilters, SearchPage
from datanet.testing.clock import DAY, NOW
from datanet.testing.records import ORG_A, ORG_B, descriptor

ORGS = (ORG_A, ORG_B)
KEYWORDS = ("Weather", "air", "rain", "soil")
THEMES = ("ENVI", "tran")
LICENSES = ("", "CC-BY-4.0", "ODbL")
MEDIA = ("text/csv", "application/JSON")
ACCESS = ("open", "request", "closed")
WORDS = ("flood", "river", "map")


@st.composite
def descriptors(draw: st.DrawFn, index: int) -> Descriptor:
    start = draw(st.integers(0, 10))
    temporal = draw(st.none() | st.just((start * DAY, (start + draw(st.integers(0, 5))) * DAY)))
    return descriptor(
        f"d/{index}",
        org=draw(st.sampled_from(ORGS)),
        title=" ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))),
        description=" ".join(draw(st.lists(st.sampled_from(WORDS), max_size=3))),
        keywords=tuple(draw(st.lists(st.sampled_from(KEYWORDS), max_size=3, unique=True))),
        themes=tuple(draw(st.lists(st.sampled_from(THEMES), max_size=2, unique=True))),
        license=draw(st.sampled_from(LICENSES)),
        distributions=tuple(
            Distribution(m) for m in draw(st.lists(st.sampled_from(MEDIA), max_size=2))
        ),
        access_policy=AccessPolicy(mode=draw(st.sampled_from(ACCESS))),  # type: ignore[arg-type]
        temporal=temporal,
        issued=NOW - DAY,
        modified=NOW - draw(st.integers(0, 5)),  # ties are common: the id breaks them
        expires=NOW + DAY,
    )


@st.composite
def catalogs(draw: st.DrawFn) -> list[Descriptor]:
    n = draw(st.integers(0, 14))
    return [draw(descriptors(i)) for i in range(n)]


def subset(values: tuple[str, ...]) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(values), max_size=2, unique=True).map(tuple)


@st.composite
def filters(draw: st.DrawFn) -> SearchFilters:
    """At most two filters at a time, so that most searches still match something."""
    used = draw(st.sets(st.sampled_from(["facets", "facets2", "from", "to"]), max_size=2))
    choices = {
        "orgs": tuple(str(o.org_id) for o in ORGS),
        "keywords": KEYWORDS,
        "themes": THEMES,
        "licenses": LICENSES[1:],
        "media_types": MEDIA,
        "access": ACCESS,
    }
    kw: dict[str, object] = {}
    for slot in ("facets", "facets2"):
        if slot in used:
            name = draw(st.sampled_from(sorted(choices)))
            kw[name] = draw(subset(choices[name]))
    bounds = sorted(draw(st.lists(st.integers(0, 16), min_size=2, max_size=2)))
    if "from" in used:
        kw["temporal_from"] = bounds[0] * DAY
    if "to" in used:
        kw["temporal_to"] = bounds[1] * DAY + DAY // 2
    return SearchFilters(**kw)  # type: ignore[arg-type]


def facet_values(d: Descriptor) -> dict[str, set[str]]:
    return {
        "org": {str(d.dataset_id.org)},
        "keyword": {k.casefold() for k in d.keywords},
        "theme": {t.casefold() for t in d.themes},
        "license": {d.license.casefold()} - {""},
        "media_type": {x.media_type.casefold() for x in d.distributions},
        "access": {d.access_policy.mode},
    }


def keeps(f: SearchFilters, d: Descriptor) -> bool:
    values = facet_values(d)
    if any(not set(wanted) & values[facet] for facet, wanted in f.by_facet().items()):
        return False
    if f.temporal_from is not None or f.temporal_to is not None:
        if d.temporal is None:
            return False
        if f.temporal_from is not None and d.temporal[1] < f.temporal_from:
            return False
        if f.temporal_to is not None and d.temporal[0] > f.temporal_to:
            return False
    return True


def reference_counts(matches: list[Descriptor]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter[str]] = {name: Counter() for name in FACETS}
    for d in matches:
        for name, values in facet_values(d).items():
            out[name].update(values)
    return {name: dict(c) for name, c in out.items()}


def all_pages(cat: Catalog, query: str, f: SearchFilters, limit: int) -> list[SearchPage]:
    pages, cursor = [], None
    while True:
        page = cat.search(query, filters=f, limit=limit, cursor=cursor)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 100


@settings(max_examples=80, deadline=None, derandomize=True)
@given(catalogs(), filters(), st.sampled_from(["", "flood", "river map"]), st.integers(1, 5))
def test_search_matches_a_brute_force_reference(
    items: list[Descriptor], f: SearchFilters, query: str, limit: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp, Catalog(Path(tmp) / "c.sqlite") as cat:
        cat.upsert_many((b"raw%d" % i, d, None) for i, d in enumerate(items))
        words = query.split()
        expected = [
            d
            for d in items
            if keeps(f, d) and all(w in f"{d.title} {d.description}".split() for w in words)
        ]
        pages = all_pages(cat, query, f, limit)
        seen = [h.dataset_id for p in pages for h in p.hits]
        # every match exactly once, across pages
        assert sorted(seen) == sorted(str(d.dataset_id) for d in expected)
        assert all(len(p.hits) <= limit for p in pages)
        assert {p.total for p in pages} == {len(expected)}
        if not query:  # the listing order: newest modified first, then last ingested
            order = sorted(range(len(items)), key=lambda i: (-items[i].modified, -i))
            assert seen == [str(items[i].dataset_id) for i in order if items[i] in expected]
        # facet counts over all matches, top values first
        want = reference_counts(expected)
        page = pages[0]
        assert page.counted == len(expected)
        for name in FACETS:
            got = [(c.value, c.count) for c in page.facets[name]]
            ranked = sorted(want[name].items(), key=lambda i: (-i[1], i[0]))
            assert got == ranked[:MAX_FACET_VALUES]
