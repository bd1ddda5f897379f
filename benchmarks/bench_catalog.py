"""Benchmark: catalog ingest rate and full-text search latency over 100,000 descriptors.

Builds ``--count`` distinct signed descriptors (varied synthetic titles,
descriptions, keywords and themes drawn from a seeded vocabulary; topic words
follow a Zipf distribution, and so do the query words), chunk by chunk so
memory stays flat. Signing is *not* timed. For each chunk, two timings are
taken on a real SQLite file (WAL, ``synchronous=FULL``, batches of ``--batch``
per transaction):

* ``ingest``: :meth:`Catalog.upsert_many` of the pre-built (bytes, descriptor) pairs;
* ``verify+ingest``: :func:`verify_descriptor` of every record (warm trust store),
  then the same upsert into a second catalog: what a node does with descriptors
  received from the network.

Then ``--queries`` searches (1-3 word queries, some with an org or keyword
filter, some empty; facet counts on, as the API's default) are timed for
p50/p99, plus warm resolves (:meth:`Catalog.get`) and two faceted sets:

* ``facet_query``: text plus one or two facet filters (theme, license, access,
  media type, org, keyword, temporal), or the filters alone, with facet counts;
* ``facet_counts``: the facet counts of a filter-only search with one broad
  filter (a license, theme or access mode: 5-50% of the catalog, counted over
  at most ``FACET_WINDOW`` matches) or of the whole catalog (stored counts).

Results go to ``benchmarks/results/catalog.json``.
Targets (brief): search p50 <= 10 ms (faceted searches too); ingest >= 5,000
verified descriptors/s; warm resolve p50 <= 1 ms.

Run: ``python benchmarks/bench_catalog.py`` (``--count 10000`` for a quick look).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _machine import REPO_ROOT, results_header

if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from datanet.records.descriptor import (
    AccessPolicy,
    Descriptor,
    Distribution,
    sign_descriptor,
    verify_descriptor,
)
from datanet.store.catalog import Catalog, SearchFilters
from datanet.testing.clock import NOW
from datanet.testing.records import certificate, descriptor
from identity.certs import TrustStore
from identity.keys import KeyPair

SEARCH_P50_TARGET_MS = 10.0
INGEST_TARGET = 5000
RESOLVE_P50_TARGET_MS = 1.0

TOPICS = [
    "weather",
    "temperature",
    "precipitation",
    "wind",
    "humidity",
    "pressure",
    "climate",
    "station",
    "observation",
    "air",
    "quality",
    "ozone",
    "particulate",
    "nitrogen",
    "emission",
    "traffic",
    "vehicle",
    "road",
    "bicycle",
    "parking",
    "transit",
    "bus",
    "railway",
    "timetable",
    "energy",
    "electricity",
    "grid",
    "solar",
    "consumption",
    "heating",
    "water",
    "river",
    "flood",
    "groundwater",
    "drought",
    "soil",
    "crop",
    "harvest",
    "forest",
    "biodiversity",
    "species",
    "population",
    "census",
    "household",
    "income",
    "employment",
    "education",
    "school",
    "hospital",
    "health",
    "mortality",
    "vaccination",
    "noise",
    "building",
    "permit",
    "land",
    "parcel",
    "cadastre",
    "address",
    "boundary",
    "election",
    "budget",
    "procurement",
    "tax",
    "trade",
    "export",
    "import",
    "tourism",
    "museum",
    "library",
    "archive",
    "satellite",
    "imagery",
    "elevation",
    "coastline",
    "ocean",
    "fisheries",
    "shipping",
    "port",
    "airport",
    "freight",
]
FILLER = [
    "hourly",
    "daily",
    "monthly",
    "annual",
    "aggregated",
    "raw",
    "validated",
    "provisional",
    "historical",
    "regional",
    "national",
    "municipal",
    "open",
    "restricted",
    "measured",
    "estimated",
    "modelled",
    "gridded",
    "series",
    "record",
    "table",
    "dataset",
    "survey",
    "register",
    "index",
    "statistics",
    "map",
    "layer",
]
THEMES = ("ENVI", "TRAN", "ENER", "AGRI", "HEAL", "SOCI", "ECON", "GOVE", "REGI", "TECH")
LICENSES = ("CC-BY-4.0", "CC-BY-4.0", "CC0-1.0", "ODbL-1.0", "CC-BY-SA-4.0", "proprietary")
MEDIA_TYPES = (
    "text/csv",
    "application/json",
    "application/parquet",
    "application/geo+json",
    "application/x-netcdf",
    "image/tiff",
)
ACCESS = ("open", "request", "closed")


# Zipf (s = 1) over the topic words: the commonest ("weather") is drawn 20% of the
# time and ends up in about half of all titles; the rarest in well under 1%.
_TOPIC_CUM = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(TOPICS))))


def _word(rng: random.Random) -> str:
    return rng.choices(TOPICS, cum_weights=_TOPIC_CUM)[0]


def make_descriptor(i: int, rng: random.Random, org: KeyPair, node: KeyPair) -> Descriptor:
    topic = [_word(rng) for _ in range(3)]
    title = f"{topic[0].capitalize()} {rng.choice(FILLER)} {topic[1]} {i}"
    words = [rng.choice(TOPICS) if rng.random() < 0.4 else rng.choice(FILLER) for _ in range(40)]
    keywords = tuple(dict.fromkeys([*topic, rng.choice(TOPICS), f"set-{i % 997}"]))
    start = NOW - 86400 * rng.randrange(3650)
    return descriptor(
        f"data/{topic[0]}-{i}",
        org=org,
        node=node,
        title=title,
        description=" ".join(words).capitalize() + ".",
        keywords=keywords,
        themes=(rng.choice(THEMES),),
        license=rng.choice(LICENSES),
        distributions=tuple(Distribution(m) for m in rng.sample(MEDIA_TYPES, 1 + (i % 3 == 0))),
        access_policy=AccessPolicy(mode=rng.choice(ACCESS)),  # type: ignore[arg-type]
        temporal=(start, start + 86400 * rng.randrange(1, 400)),
        issued=NOW - 86400 * 30,
        modified=NOW - rng.randrange(86400 * 30),
        sequence=1 + i,
        expires=NOW + 86400 * 300,
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=5000, help="descriptors signed at a time")
    parser.add_argument("--batch", type=int, default=1000, help="descriptors per transaction")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--orgs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "catalog.json"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    load_start = os.getloadavg()[0]

    orgs = [KeyPair.from_seed(bytes([7, o]) + bytes(30)) for o in range(args.orgs)]
    nodes = [KeyPair.from_seed(bytes([8, o]) + bytes(30)) for o in range(args.orgs)]
    chains = [
        [certificate(org, node, serial=o)]
        for o, (org, node) in enumerate(zip(orgs, nodes, strict=True))
    ]
    trust = TrustStore({o.org_id for o in orgs})

    tmp = Path(tempfile.mkdtemp(prefix="bench-catalog-"))
    catalog = Catalog(tmp / "catalog.sqlite")
    verified_catalog = Catalog(tmp / "verified.sqlite")
    sign_seconds = ingest_seconds = verify_ingest_seconds = 0.0
    sample_ids: list[str] = []
    sizes: list[int] = []
    done = 0
    while done < args.count:
        n = min(args.chunk, args.count - done)
        t0 = time.perf_counter()
        chunk = []
        for i in range(done, done + n):
            o = i % args.orgs
            desc = make_descriptor(i, rng, orgs[o], nodes[o])
            chunk.append((sign_descriptor(desc, nodes[o], chains[o]), desc))
        sign_seconds += time.perf_counter() - t0
        sizes += [len(raw) for raw, _ in chunk[:50]]
        sample_ids += [str(d.dataset_id) for _, d in chunk[:: max(1, n // 50)]]

        t0 = time.perf_counter()
        for b in range(0, n, args.batch):
            catalog.upsert_many(chunk[b : b + args.batch])
        ingest_seconds += time.perf_counter() - t0

        raws = [raw for raw, _ in chunk]
        t0 = time.perf_counter()
        for b in range(0, n, args.batch):
            batch = []
            for raw in raws[b : b + args.batch]:
                v = verify_descriptor(raw, trust, NOW)
                batch.append((v.raw, v.descriptor))
            verified_catalog.upsert_many(batch)
        verify_ingest_seconds += time.perf_counter() - t0
        done += n
        print(f"  {done:>7} descriptors", file=sys.stderr)
    verified_catalog.close()
    assert len(catalog) == args.count

    # searches
    kinds = {"words": [], "filtered": [], "empty": []}  # type: dict[str, list[float]]
    hits_per_query: list[int] = []
    org_ids = [str(o.org_id) for o in orgs]
    for q in range(args.queries):
        roll = q % 10
        words = " ".join(_word(rng) for _ in range(1 + q % 3))
        t0 = time.perf_counter()
        if roll < 7:
            page = catalog.search(words, limit=20)
            kind = "words"
        elif roll < 9:
            if roll == 7:
                by = SearchFilters(orgs=(rng.choice(org_ids),))
            else:
                by = SearchFilters(keywords=(_word(rng),))
            page = catalog.search(words, limit=20, filters=by)
            kind = "filtered"
        else:
            page = catalog.search("", limit=20)
            for _ in range(rng.randrange(3)):  # a later page, through the cursor
                page = catalog.search("", limit=20, cursor=page.next_cursor)
            kind = "empty"
        kinds[kind].append((time.perf_counter() - t0) * 1000)
        hits_per_query.append(len(page.hits))
    all_ms = [ms for values in kinds.values() for ms in values]

    # faceted searches
    def one_filter() -> dict[str, object]:
        pick = rng.randrange(7)
        if pick == 0:
            return {"themes": (rng.choice(THEMES),)}
        if pick == 1:
            return {"licenses": (rng.choice(LICENSES),)}
        if pick == 2:
            return {"access": (rng.choice(ACCESS),)}
        if pick == 3:
            return {"media_types": tuple(rng.sample(MEDIA_TYPES, 2))}
        if pick == 4:
            return {"orgs": (rng.choice(org_ids),)}
        if pick == 5:
            return {"keywords": (_word(rng),)}
        start = NOW - 86400 * rng.randrange(3650)
        return {"temporal_from": start, "temporal_to": start + 86400 * 30}

    facet_query_ms: list[float] = []
    facet_hits: list[int] = []
    for q in range(args.queries // 2):
        kw = one_filter()
        if q % 3 == 0:
            kw.update(one_filter())
        words = " ".join(_word(rng) for _ in range(1 + q % 2)) if q % 2 == 0 else ""
        by = SearchFilters(**kw)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        page = catalog.search(words, limit=20, filters=by)
        facet_query_ms.append((time.perf_counter() - t0) * 1000)
        facet_hits.append(page.total)
    broad = [
        *({"licenses": (lic,)} for lic in LICENSES[1:]),
        *({"themes": (t,)} for t in THEMES[:3]),
        *({"access": (a,)} for a in ACCESS),
        {},
    ]
    facet_counts_ms: list[float] = []
    for q in range(args.queries // 4):
        by = SearchFilters(**broad[q % len(broad)])  # type: ignore[arg-type]
        t0 = time.perf_counter()
        page = catalog.search("", limit=1, filters=by)
        facet_counts_ms.append((time.perf_counter() - t0) * 1000)
        assert page.facets["license"]

    resolve_ms = []
    for _ in range(5):
        for dataset_id in sample_ids:
            t0 = time.perf_counter()
            assert catalog.get(dataset_id) is not None
            resolve_ms.append((time.perf_counter() - t0) * 1000)
    catalog.close()
    db_bytes = sum(p.stat().st_size for p in tmp.glob("catalog.sqlite*"))

    ingest_rate = args.count / ingest_seconds
    verify_rate = args.count / verify_ingest_seconds
    p50 = statistics.median(all_ms)
    result = {
        **results_header(),
        "count": args.count,
        "orgs": args.orgs,
        "batch": args.batch,
        "queries": args.queries,
        "ingest_per_second": round(ingest_rate),
        "verify_and_ingest_per_second": round(verify_rate),
        "sign_per_second_untimed_setup": round(args.count / sign_seconds),
        "search_p50_ms": round(p50, 3),
        "search_p99_ms": round(percentile(all_ms, 0.99), 3),
        "search_by_kind_ms": {
            kind: {
                "n": len(v),
                "p50": round(statistics.median(v), 3),
                "p99": round(percentile(v, 0.99), 3),
            }
            for kind, v in kinds.items()
        },
        "mean_hits_per_query": round(statistics.mean(hits_per_query), 1),
        "facet_query_p50_ms": round(statistics.median(facet_query_ms), 3),
        "facet_query_p99_ms": round(percentile(facet_query_ms, 0.99), 3),
        "facet_query_median_matches": statistics.median(facet_hits),
        "facet_counts_p50_ms": round(statistics.median(facet_counts_ms), 3),
        "facet_counts_p99_ms": round(percentile(facet_counts_ms, 0.99), 3),
        "resolve_p50_ms": round(statistics.median(resolve_ms), 4),
        "resolve_p99_ms": round(percentile(resolve_ms, 0.99), 4),
        "median_descriptor_bytes": sorted(sizes)[len(sizes) // 2],
        # Other processes share this machine's two cores: a load above ~1 inflates figures.
        "load_average_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "database_bytes": db_bytes,
        "targets": {
            "search_p50_ms": SEARCH_P50_TARGET_MS,
            "facet_query_p50_ms": SEARCH_P50_TARGET_MS,
            "facet_counts_p50_ms": SEARCH_P50_TARGET_MS,
            "verify_and_ingest_per_second": INGEST_TARGET,
            "resolve_p50_ms": RESOLVE_P50_TARGET_MS,
        },
        "targets_met": {
            "search_p50_ms": p50 <= SEARCH_P50_TARGET_MS,
            "facet_query_p50_ms": statistics.median(facet_query_ms) <= SEARCH_P50_TARGET_MS,
            "facet_counts_p50_ms": statistics.median(facet_counts_ms) <= SEARCH_P50_TARGET_MS,
            "verify_and_ingest_per_second": verify_rate >= INGEST_TARGET,
            "resolve_p50_ms": statistics.median(resolve_ms) <= RESOLVE_P50_TARGET_MS,
        },
    }
    for path in tmp.iterdir():
        path.unlink()
    tmp.rmdir()
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine",)}, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
