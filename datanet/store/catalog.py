"""The searchable catalog of every live dataset descriptor (SQLite FTS5), and why others left.

Every descriptor this node has verified or whose signature its record store
checked on the way in (its own, replicas other nodes put here, ones resolved
through the DHT, and later every live descriptor of the network through gossip
and catalog sync) is kept here with its exact signed bytes, for warm resolves
(:meth:`Catalog.get`), full-text and faceted search (:meth:`Catalog.search`) and
catalog sync (:meth:`Catalog.entries`). The node driver feeds it from one
function (``Node._index``).

Descriptors leave the catalog by a **withdrawal** that is remembered with its
reason (``WITHDRAWAL_REASONS``), so a resolve can say why a dataset is gone:
``deprecated`` (its publisher withdrew it; the signed tombstone is kept for
anti-entropy and blocks every sequence up to its own), ``revoked`` (the signing
certificate was revoked) and ``expired``. Revocation and expiry records are
pruned ``WITHDRAWAL_RETENTION`` seconds later; deprecations are kept.

Search: title, description, keywords and themes are indexed by an FTS5 table
(``porter unicode61`` tokenizer: case- and accent-insensitive, English stemming)
and ranked with bm25, weighting title 10, keywords 5, themes 3, description 1,
matches in title/keywords/themes before description-only ones. Each search
ranks at most ``SEARCH_WINDOW`` matches per tier (the most recently ingested),
so its cost is bounded whatever the catalog size. Facet filters (organization,
keyword, theme, license, media type, access mode, temporal coverage;
:class:`~datanet.records.search.SearchFilters`) and facet counts (top
``MAX_FACET_VALUES`` per facet) come with every search; pages are linked by an
opaque keyset cursor, never an offset.

Durability: descriptors are committed with ``synchronous=NORMAL`` (they survive
a crash of the process; a power cut can lose the newest, never corrupt the
file), everything else with ``FULL``. The catalog is an index the node can
rebuild: its own descriptors are indexed again from the durable record store
at every start, and the others come back by catalog sync and gossip. An fsync
per descriptor was about 7 % of all CPU samples of a 100-node network while it
published (every node commits every descriptor), with the event loop of the
node's process waiting on the disk each time.

Invariants:
* Only the highest ``sequence`` per dataset is held: :meth:`Catalog.upsert`
  ignores an equal or lower one, and one at or below a withdrawal's sequence.
  The caller verifies before inserting; the catalog stores the exact bytes it
  was given and never re-encodes them.
* User text never reaches ``MATCH`` as syntax nor SQL: query words are split
  into word tokens, each quoted as an FTS5 string, and bound as a parameter;
  filter values are bound parameters. No input can raise an FTS5 syntax error.
* ``catalog_facet_values.n`` holds, in the same transaction as every change,
  the count of live descriptors per facet value (the unfiltered facet counts).
  A facet value keeps its ``vid`` for the life of the file (its row is never
  deleted), so the in-memory ``vid`` cache cannot go stale but by a rollback,
  which clears it.
* A cursor is bound to its query and filters by a keyed MAC (the key lives in
  ``catalog_meta``): a cursor from another search, altered or garbled is an
  :class:`~datanet.errors.InvalidInput`, never a crash. Pages of one cursor
  chain only see descriptors ingested before its first page (a snapshot by
  ingest id), so later inserts and replacements never repeat a hit.
* The catalog versions its schema in its own ``catalog_meta`` table, so it can
  share a database file with :class:`datanet.store.db.Storage` (which uses
  ``PRAGMA user_version``) or live in a file of its own. Version 2 (facets,
  withdrawals) migrates a version-1 file in place: the new columns are filled
  by decoding each held descriptor once, on the first open.
* ``sqlite3`` errors leave as :class:`~datanet.errors.StorageError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
from collections import Counter
from collections.abc import Collection, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from datanet.errors import DatanetError, InvalidInput, StorageError
from datanet.records.descriptor import open_descriptor
from datanet.records.ids import SCHEME
from datanet.records.search import FACETS, MAX_FACET_VALUES, FacetCount, SearchFilters
from datanet.store.db import connect, migrate, storage_errors, transaction
from identity.certs import parse_certificate

__all__ = [
    "CATALOG_SCHEMA_VERSION",
    "FACET_WINDOW",
    "MAX_CURSOR_LENGTH",
    "MAX_QUERY_LENGTH",
    "MAX_QUERY_TOKENS",
    "SEARCH_WINDOW",
    "WITHDRAWAL_REASONS",
    "WITHDRAWAL_RETENTION",
    "Catalog",
    "CatalogDescriptor",
    "DatasetIdLike",
    "FacetCount",
    "Hit",
    "SearchFilters",
    "SearchPage",
    "Withdrawal",
    "match_expression",
]

MAX_QUERY_LENGTH = 512
MAX_QUERY_TOKENS = 16
MAX_PAGE = 1000
SEARCH_WINDOW = 1000
"""At most this many matches of a text query are ranked per tier (the most recently ingested)."""
FACET_WINDOW = 500
"""Facets are counted over at most this many matches (the newest): counting joins
every match with its facet rows, ~4 us a match, so a count over 2,000 matches cost
a 100,000-descriptor search more than the search itself."""
MAX_CURSOR_LENGTH = 256
WITHDRAWAL_REASONS: tuple[str, ...] = ("deprecated", "revoked", "expired")
WITHDRAWAL_RETENTION = 30 * 86400
"""Revocation and expiry records are forgotten this long after they were made."""
_SNIPPET = 240
_ORG_CACHE = 4096
_CURSOR_VERSION = 1
_MAC_BYTES = 12
_IN_CHUNK = 500
_ENTRY_CHUNK = 1000
_RANKINGS_KEPT = 16
_VID_CACHE = 65_536

_V1 = """
CREATE TABLE catalog (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- FTS rowid; ingest order
    dataset_id  TEXT NOT NULL UNIQUE,
    sequence    INTEGER NOT NULL,
    modified    INTEGER NOT NULL,
    expires     INTEGER NOT NULL,
    title       TEXT NOT NULL,
    description TEXT NOT NULL,
    keywords    TEXT NOT NULL,             -- newline-separated, as published
    themes      TEXT NOT NULL,             -- newline-separated, as published
    org         TEXT NOT NULL,             -- did:key of the publishing org
    raw         BLOB NOT NULL              -- the exact signed descriptor bytes
);
CREATE INDEX catalog_by_modified ON catalog (modified DESC);
CREATE INDEX catalog_by_org ON catalog (org, modified DESC);
CREATE INDEX catalog_by_expiry ON catalog (expires);
CREATE TABLE catalog_keywords (
    keyword     TEXT NOT NULL,             -- case-folded
    id          INTEGER NOT NULL,
    PRIMARY KEY (keyword, id)
) WITHOUT ROWID;
CREATE INDEX catalog_keywords_by_id ON catalog_keywords (id);
CREATE VIRTUAL TABLE catalog_fts USING fts5 (
    title, description, keywords, themes, org,
    content = 'catalog', content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
INSERT INTO catalog_fts (catalog_fts, rank) VALUES ('rank', 'bm25(10.0, 1.0, 5.0, 3.0, 0.0)');
"""

_V2 = """
-- The small columns every filter, sort and count reads, apart from the wide rows
-- (signed bytes, description) that only a page of hits needs.
CREATE TABLE catalog_items (
    id          INTEGER PRIMARY KEY,       -- catalog.id
    modified    INTEGER NOT NULL,
    expires     INTEGER NOT NULL,
    org         TEXT NOT NULL,
    license     TEXT NOT NULL DEFAULT '',  -- case-folded
    access      TEXT NOT NULL DEFAULT '',  -- open | request | closed
    media_types TEXT NOT NULL DEFAULT '',  -- newline-separated, case-folded
    temporal_start INTEGER,
    temporal_end   INTEGER,
    serial      INTEGER                    -- the signing certificate's serial
);
INSERT INTO catalog_items (id, modified, expires, org)
    SELECT id, modified, expires, org FROM catalog;
CREATE INDEX catalog_items_by_modified ON catalog_items (modified DESC);
CREATE INDEX catalog_items_by_org ON catalog_items (org, modified DESC);
CREATE INDEX catalog_items_by_license ON catalog_items (license, modified DESC);
CREATE INDEX catalog_items_by_access ON catalog_items (access, modified DESC);
CREATE INDEX catalog_items_by_expiry ON catalog_items (expires);
CREATE INDEX catalog_items_by_serial ON catalog_items (org, serial);
DROP INDEX catalog_by_modified;
DROP INDEX catalog_by_org;
DROP INDEX catalog_by_expiry;
CREATE TABLE catalog_facet_values (
    vid         INTEGER PRIMARY KEY,
    facet       TEXT NOT NULL,             -- o org, l license, a access, k, t theme, m media
    value       TEXT NOT NULL,             -- case-folded (but org)
    n           INTEGER NOT NULL DEFAULT 0,  -- live descriptors carrying it
    UNIQUE (facet, value)
);
CREATE INDEX catalog_facet_values_by_n ON catalog_facet_values (facet, n DESC);
CREATE TABLE catalog_facets (
    vid         INTEGER NOT NULL,          -- catalog_facet_values.vid
    id          INTEGER NOT NULL,          -- catalog.id
    PRIMARY KEY (vid, id)
) WITHOUT ROWID;
CREATE INDEX catalog_facets_by_id ON catalog_facets (id);
INSERT INTO catalog_facet_values (facet, value) SELECT DISTINCT 'k', keyword FROM catalog_keywords;
INSERT OR IGNORE INTO catalog_facet_values (facet, value) SELECT DISTINCT 'o', org FROM catalog;
INSERT INTO catalog_facets (vid, id) SELECT v.vid, k.id FROM catalog_keywords AS k
    JOIN catalog_facet_values AS v ON v.facet = 'k' AND v.value = k.keyword;
INSERT INTO catalog_facets (vid, id) SELECT v.vid, c.id FROM catalog AS c
    JOIN catalog_facet_values AS v ON v.facet = 'o' AND v.value = c.org;
DROP TABLE catalog_keywords;
CREATE TABLE catalog_withdrawals (
    dataset_id  TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,             -- deprecated | revoked | expired
    at          INTEGER NOT NULL,
    sequence    INTEGER NOT NULL,
    raw         BLOB                       -- the signed tombstone of a deprecation
);
CREATE INDEX catalog_withdrawals_by_at ON catalog_withdrawals (reason, at);
INSERT OR REPLACE INTO catalog_meta VALUES ('backfill', 2);
"""

_MIGRATIONS: tuple[str, ...] = (_V1, _V2)
CATALOG_SCHEMA_VERSION = len(_MIGRATIONS)

_WORD = re.compile(r"\w+", re.UNICODE)
_FTS_COLUMNS = "title, description, keywords, themes, org"
_HIT_COLUMNS = (
    "c.id, c.dataset_id, c.title, c.org, c.sequence, c.modified, c.keywords, "
    f"substr(c.description, 1, {_SNIPPET}), i.license, i.access, i.media_types, c.themes"
)
# facet name -> code in catalog_facet_values, and back
_CODE = {"org": "o", "keyword": "k", "theme": "t", "license": "l", "media_type": "m", "access": "a"}
_NAME = {code: name for name, code in _CODE.items()}
_COLUMN_FACETS = {"org": "i.org", "license": "i.license", "access": "i.access"}


class DatasetIdLike(Protocol):
    """``datanet.records.ids.DatasetId``: ``str()`` is ``dn://<str(org)>/<name>``."""

    @property
    def org(self) -> Hashable: ...
    @property
    def name(self) -> str: ...


class DistributionLike(Protocol):
    """The part of ``datanet.records.descriptor.Distribution`` the catalog reads."""

    @property
    def media_type(self) -> str: ...


class AccessPolicyLike(Protocol):
    """The part of ``datanet.records.policy.AccessPolicy`` the catalog reads."""

    @property
    def mode(self) -> str: ...


class CatalogDescriptor(Protocol):
    """What the catalog reads from a descriptor (``datanet.records.descriptor.Descriptor`` fits)."""

    @property
    def dataset_id(self) -> DatasetIdLike: ...
    @property
    def title(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def keywords(self) -> tuple[str, ...]: ...
    @property
    def themes(self) -> tuple[str, ...]: ...
    @property
    def license(self) -> str: ...
    @property
    def distributions(self) -> Sequence[DistributionLike]: ...
    @property
    def temporal(self) -> tuple[int, int] | None: ...
    @property
    def access_policy(self) -> AccessPolicyLike: ...
    @property
    def sequence(self) -> int: ...
    @property
    def modified(self) -> int: ...
    @property
    def expires(self) -> int: ...


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        dataset_id: ``dn://<org>/<name>``.
        title: the descriptor's title.
        org: the publishing organization's ``did:key``.
        sequence: the version held.
        modified: when the publisher last modified it (Unix seconds).
        keywords: as published.
        description: the first characters of the description.
        score: bm25 relevance within its tier (lower is better); 0.0 for an empty query.
        license: the license, case-folded ("" if none).
        access: the access mode (``open``, ``request``, ``closed``).
        media_types: the distributions' media types, case-folded.
        themes: as published.
    """

    dataset_id: str
    title: str
    org: str
    sequence: int
    modified: int
    keywords: tuple[str, ...]
    description: str
    score: float
    license: str = ""
    access: str = ""
    media_types: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchPage:
    """One page of a search.

    Attributes:
        hits: this page, best first.
        total: how many descriptors match (for a text query: within the ranked window).
        facets: for each of ``FACETS``, the top ``MAX_FACET_VALUES`` values with their
            counts over the matches (empty when facets were not asked for).
        next_cursor: pass it back for the next page; ``None`` on the last page.
        counted: how many of the ``total`` matches the facet counts cover: all of
            them unless the search matched more than ``FACET_WINDOW`` (then the
            newest ``FACET_WINDOW``; with no query and no filter, the counts are
            always exact).
    """

    hits: list[Hit]
    total: int
    facets: dict[str, list[FacetCount]]
    next_cursor: str | None
    counted: int = 0


@dataclass(frozen=True)
class Withdrawal:
    """Why a dataset left the catalog.

    Attributes:
        dataset_id: ``dn://<org>/<name>``.
        reason: one of ``WITHDRAWAL_REASONS``.
        at: when it was withdrawn (Unix seconds, the caller's clock).
        sequence: the withdrawn sequence (a deprecation blocks every sequence up to it).
        raw: the signed tombstone of a deprecation (for anti-entropy), else ``None``.
    """

    dataset_id: str
    reason: str
    at: int
    sequence: int
    raw: bytes | None = None


@dataclass(frozen=True)
class _Cursor:
    kind: str  # "e": empty query, key (modified, id); "t": text, key (tier, score, modified, id)
    snapshot: int
    key: tuple[Any, ...]


@dataclass(slots=True)
class _Row:
    """One match of a text query, with its sort key."""

    tier: int
    score: float
    modified: int
    id: int

    def key(self) -> tuple[int, float, int, int]:
        return (self.tier, self.score, -self.modified, -self.id)


@dataclass
class _Query:
    """A search's SQL pieces: exact filter clauses and FTS narrowing."""

    where: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)
    narrow: list[str] = field(default_factory=list)

    def clause(self) -> str:
        return "".join(f" AND {w}" for w in self.where)


def match_expression(query: str) -> str:
    """Turn user text into a safe FTS5 query: every word token quoted, all required.

    ``'climate AND "x" OR title:y*'`` becomes ``'"climate" "and" "x" "or" "title" "y"'``
    (FTS5 keywords are matched only unquoted and upper-case, so quoting makes
    every token a plain term). Returns ``""`` when the text has no word.

    Raises:
        InvalidInput: the text is longer than ``MAX_QUERY_LENGTH`` characters.
    """
    if not isinstance(query, str):
        raise InvalidInput("a search query is text")
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidInput(f"a search query is at most {MAX_QUERY_LENGTH} characters")
    tokens = _WORD.findall(query)[:MAX_QUERY_TOKENS]
    return " ".join(f'"{t}"' for t in tokens)


def _phrase(text: str, *, last_only: bool = False) -> str | None:
    """An FTS5 phrase of the word tokens of ``text`` (never FTS syntax); None without a word."""
    tokens = _WORD.findall(text)[:MAX_QUERY_TOKENS]
    if last_only:
        tokens = tokens[-1:]
    return '"' + " ".join(tokens) + '"' if tokens else None


def _lines(values: Iterable[str]) -> str:
    return "\n".join(values)


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split("\n")) if text else ()


def _folded(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v.casefold() for v in values if v))


def _row_facets(
    org: str, lic: str, access: str, *, keywords: str, themes: str, media_types: str
) -> list[tuple[str, str]]:
    """The (code, value) facet pairs of one catalog row, from its columns."""
    pairs = [("o", org)]
    if lic:
        pairs.append(("l", lic))
    if access:
        pairs.append(("a", access))
    pairs += [("k", v) for v in _folded(_split(keywords))]
    pairs += [("t", v) for v in _folded(_split(themes))]
    pairs += [("m", v) for v in _split(media_types)]
    return pairs


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _bad_cursor(why: str) -> InvalidInput:
    return InvalidInput(f"invalid cursor: {why}; search again without a cursor")


class Catalog:
    """The searchable store of verified descriptors, and the record of withdrawn ones.

    Args:
        path: the database file (its own file, or the node's ``datanet.sqlite``).

    Raises:
        StorageError: the file cannot be opened or migrated.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._org_texts: dict[Hashable, str] = {}
        self._vids: dict[tuple[str, str], int] = {}  # (facet code, value) -> vid
        # Rankings of recent text searches by (query and filters, snapshot, window), oldest first.
        self._rankings: dict[tuple[bytes, int, int], dict[int, list[_Row]]] = {}
        # A 16 MiB page cache keeps the FTS and index pages of a 100k catalog hot:
        # ingest is ~1.5x faster than with SQLite's default 2 MiB.
        self._conn = connect(self.path, cache_kib=16 * 1024)
        try:
            with storage_errors("catalog schema setup failed"):
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS catalog_meta "
                    "(name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
                )
            migrate(
                self._conn,
                _MIGRATIONS,
                get_version="SELECT COALESCE("
                "(SELECT version FROM catalog_meta WHERE name = 'catalog'), 0)",
                set_version="INSERT OR REPLACE INTO catalog_meta VALUES ('catalog', {version})",
            )
            with transaction(self._conn) as conn:
                if conn.execute("SELECT 1 FROM catalog_meta WHERE name = 'backfill'").fetchone():
                    self._backfill(conn)
                conn.execute(
                    "INSERT OR IGNORE INTO catalog_meta VALUES ('cursor_key', ?)",
                    (secrets.randbits(62),),
                )
                key = conn.execute(
                    "SELECT version FROM catalog_meta WHERE name = 'cursor_key'"
                ).fetchone()[0]
            self._cursor_key = hashlib.blake2b(str(key).encode(), digest_size=32).digest()
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with storage_errors("closing the catalog failed"):
            self._conn.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        with storage_errors("catalog read failed"):
            return int(self._conn.execute("SELECT count(*) FROM catalog").fetchone()[0])

    # -- migration

    def _backfill(self, conn: sqlite3.Connection) -> None:
        """Fill the version-2 columns and facet tables of rows a version-1 catalog held."""
        last = 0
        while True:
            rows = conn.execute(
                "SELECT id, raw, themes FROM catalog WHERE id > ? ORDER BY id LIMIT ?",
                (last, _ENTRY_CHUNK),
            ).fetchall()
            if not rows:
                break
            for rowid, raw, themes in rows:
                last = rowid
                lic = access = media = ""
                temporal: tuple[int, int] | None = None
                serial: int | None = None
                try:
                    desc, env = open_descriptor(bytes(raw))
                    lic = desc.license.casefold()
                    access = desc.access_policy.mode
                    media = _lines(_folded(d.media_type for d in desc.distributions))
                    temporal = desc.temporal
                    if env.chain:
                        serial = parse_certificate(env.chain[0]).serial
                except DatanetError:
                    pass  # kept searchable by its text; no facets beyond org, keywords, themes
                conn.execute(
                    "UPDATE catalog_items SET license = ?, access = ?, media_types = ?, "
                    "temporal_start = ?, temporal_end = ?, serial = ? WHERE id = ?",
                    (
                        lic,
                        access,
                        media,
                        None if temporal is None else temporal[0],
                        None if temporal is None else temporal[1],
                        serial,
                        rowid,
                    ),
                )
                pairs = [("t", v) for v in _folded(_split(themes))]
                pairs += [("m", v) for v in _split(media)]
                pairs += [(code, v) for code, v in (("l", lic), ("a", access)) if v]
                conn.executemany(
                    "INSERT OR IGNORE INTO catalog_facets (vid, id) VALUES (?, ?)",
                    [(self._vid(conn, code, v), rowid) for code, v in pairs],
                )
        conn.execute(
            "UPDATE catalog_facet_values SET n = "
            "(SELECT count(*) FROM catalog_facets AS f WHERE f.vid = catalog_facet_values.vid)"
        )
        conn.execute("DELETE FROM catalog_meta WHERE name = 'backfill'")

    # -- writing

    def upsert(
        self, raw: bytes, descriptor: CatalogDescriptor, *, serial: int | None = None
    ) -> bool:
        """Hold ``raw`` (the verified descriptor's signed bytes) unless it is not new.

        Args:
            raw: the exact envelope bytes that were verified.
            descriptor: the decoded descriptor of ``raw``.
            serial: the serial of the certificate that signed it (for :meth:`remove_revoked`).

        Returns:
            Whether it was stored. False: an equal or higher sequence is held, a
            deprecation covers its sequence, or it is not newer than the
            descriptor a revocation or expiry withdrew. A stored descriptor
            clears a revocation or expiry record of its dataset.

        Raises:
            StorageError: nothing was written.
        """
        return self.upsert_many([(raw, descriptor, serial)]) == 1

    def upsert_many(
        self,
        items: Iterable[
            tuple[bytes, CatalogDescriptor, int | None] | tuple[bytes, CatalogDescriptor]
        ],
    ) -> int:
        """:meth:`upsert` several ``(raw, descriptor, serial)`` in one transaction (bulk ingest).

        ``(raw, descriptor)`` pairs are taken too (no serial).

        Returns:
            How many were stored.

        Raises:
            StorageError: nothing was written.
        """
        stored = 0
        deltas: Counter[int] = Counter()
        try:
            # Not fsynced (see the module's "Durability"): the catalog is an index
            # the node rebuilds, and every node commits every descriptor gossiped.
            with transaction(self._conn, durable=False) as conn:
                for item in items:
                    serial = item[2] if len(item) > 2 else None
                    stored += self._upsert_one(conn, item[0], item[1], serial, deltas)
                self._apply_counts(conn, deltas)
        except BaseException:
            self._vids.clear()  # values added in the rolled-back transaction are gone
            raise
        return stored

    def _vid(self, conn: sqlite3.Connection, code: str, value: str) -> int:
        """The id of a facet value, created (with ``n = 0``) if new."""
        key = (code, value)
        vid = self._vids.get(key)
        if vid is None:
            row = conn.execute(
                "SELECT vid FROM catalog_facet_values WHERE facet = ? AND value = ?", key
            ).fetchone()
            if row is None:
                cursor = conn.execute(
                    "INSERT INTO catalog_facet_values (facet, value) VALUES (?, ?)", key
                )
                vid = int(cursor.lastrowid or 0)
            else:
                vid = int(row[0])
            if len(self._vids) >= _VID_CACHE:
                self._vids.clear()
            self._vids[key] = vid
        return vid

    def _org_text(self, org: Hashable) -> str:
        # did:key text costs a base58 encoding (~20 us); ingest sees few distinct orgs.
        text = self._org_texts.get(org)
        if text is None:
            if len(self._org_texts) >= _ORG_CACHE:
                self._org_texts.clear()
            text = self._org_texts[org] = str(org)
        return text

    def _upsert_one(
        self,
        conn: sqlite3.Connection,
        raw: bytes,
        desc: CatalogDescriptor,
        serial: int | None,
        deltas: Counter[int],
    ) -> int:
        org = self._org_text(desc.dataset_id.org)
        dataset_id = f"{SCHEME}{org}/{desc.dataset_id.name}"
        withdrawn = conn.execute(
            "SELECT reason, sequence FROM catalog_withdrawals WHERE dataset_id = ?", (dataset_id,)
        ).fetchone()
        if withdrawn is not None and desc.sequence <= withdrawn[1]:
            return 0
        row = conn.execute(
            "SELECT sequence FROM catalog WHERE dataset_id = ?", (dataset_id,)
        ).fetchone()
        if row is not None:
            if row[0] >= desc.sequence:
                return 0
            self._remove_where(conn, "c.dataset_id = ?", (dataset_id,), deltas)
        if withdrawn is not None and withdrawn[0] != "deprecated":
            conn.execute("DELETE FROM catalog_withdrawals WHERE dataset_id = ?", (dataset_id,))
        # A new row id for every version: id order is ingest order (see `search`).
        fields = (
            desc.title,
            desc.description,
            _lines(desc.keywords),
            _lines(desc.themes),
            org,
        )
        lic = desc.license.casefold()
        access = str(desc.access_policy.mode)
        media = _folded(d.media_type for d in desc.distributions)
        temporal = desc.temporal
        rowid = conn.execute(
            "INSERT INTO catalog (dataset_id, sequence, modified, expires, title, description, "
            "keywords, themes, org, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (dataset_id, desc.sequence, desc.modified, desc.expires, *fields, bytes(raw)),
        ).lastrowid
        conn.execute(
            "INSERT INTO catalog_items (id, modified, expires, org, license, access, "
            "media_types, temporal_start, temporal_end, serial) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rowid,
                desc.modified,
                desc.expires,
                org,
                lic,
                access,
                _lines(media),
                None if temporal is None else temporal[0],
                None if temporal is None else temporal[1],
                serial,
            ),
        )
        conn.execute(
            "INSERT INTO catalog_fts (rowid, title, description, keywords, themes, org) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (rowid, *fields),
        )
        pairs = _row_facets(
            org, lic, access, keywords=fields[2], themes=fields[3], media_types=_lines(media)
        )
        vids = [self._vid(conn, code, value) for code, value in pairs]
        conn.executemany(
            "INSERT OR IGNORE INTO catalog_facets (vid, id) VALUES (?, ?)",
            [(vid, rowid) for vid in vids],
        )
        deltas.update(vids)
        return 1

    @staticmethod
    def _apply_counts(conn: sqlite3.Connection, deltas: Counter[int]) -> None:
        conn.executemany(
            "UPDATE catalog_facet_values SET n = n + ? WHERE vid = ?",
            [(n, vid) for vid, n in deltas.items() if n],
        )

    def remove(self, dataset_id: str) -> bool:
        """Forget a dataset without recording a withdrawal; returns whether it was held.

        Raises:
            StorageError: nothing was written.
        """
        deltas: Counter[int] = Counter()
        with transaction(self._conn) as conn:
            removed = self._remove_where(conn, "c.dataset_id = ?", (str(dataset_id),), deltas)
            self._apply_counts(conn, deltas)
        return bool(removed)

    def withdraw(
        self,
        dataset_id: str,
        *,
        reason: str,
        at: int,
        sequence: int = 0,
        raw: bytes | None = None,
    ) -> bool:
        """Record that ``dataset_id`` left the catalog, and why; remove its live descriptor.

        Args:
            dataset_id: ``dn://<org>/<name>`` (or a ``DatasetId``).
            reason: one of ``WITHDRAWAL_REASONS``.
            at: when (Unix seconds).
            sequence: for ``deprecated``, the tombstone's sequence: the live descriptor
                goes only if its sequence is at most this, and every upsert at or
                below it is refused from now on. A deprecation is only replaced by
                one with a higher sequence.
            raw: for ``deprecated``, the signed tombstone (kept for anti-entropy).

        Returns:
            Whether a live descriptor was removed. ``revoked`` and ``expired`` always
            remove it, and never replace a recorded deprecation.

        Raises:
            InvalidInput: an unknown reason, or ``raw`` given for another reason.
            StorageError: nothing was written.
        """
        if reason not in WITHDRAWAL_REASONS:
            raise InvalidInput(
                f"a withdrawal reason is one of {', '.join(WITHDRAWAL_REASONS)}; got {reason!r}"
            )
        if raw is not None and reason != "deprecated":
            raise InvalidInput("only a deprecation carries a signed tombstone")
        dataset_id = str(dataset_id)
        deltas: Counter[int] = Counter()
        with transaction(self._conn) as conn:
            if reason == "deprecated":
                removed = self._remove_where(
                    conn, "c.dataset_id = ? AND c.sequence <= ?", (dataset_id, sequence), deltas
                )
            else:
                removed = self._remove_where(conn, "c.dataset_id = ?", (dataset_id,), deltas)
            if reason != "deprecated":
                sequence = max((seq for _, seq in removed), default=sequence)
            self._record(conn, [(dataset_id, sequence)], reason, at, raw)
            self._apply_counts(conn, deltas)
        return bool(removed)

    @staticmethod
    def _record(
        conn: sqlite3.Connection,
        items: Sequence[tuple[str, int]],
        reason: str,
        at: int,
        raw: bytes | None = None,
    ) -> None:
        """Record withdrawals; a deprecation yields only to a higher one."""
        if reason == "deprecated":
            guard = "WHERE excluded.sequence > catalog_withdrawals.sequence"
        else:
            guard = "WHERE catalog_withdrawals.reason != 'deprecated'"
        conn.executemany(
            "INSERT INTO catalog_withdrawals (dataset_id, reason, at, sequence, raw) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (dataset_id) DO UPDATE SET "
            "reason = excluded.reason, at = excluded.at, sequence = excluded.sequence, "
            f"raw = excluded.raw {guard}",
            [(d, reason, at, seq, None if raw is None else bytes(raw)) for d, seq in items],
        )

    def withdrawal(self, dataset_id: str) -> Withdrawal | None:
        """Why ``dataset_id`` was withdrawn, if it was.

        A deprecation stays recorded even when a newer descriptor was published
        after it (check :meth:`get` first).

        Raises:
            StorageError: the read failed.
        """
        with storage_errors("catalog read failed"):
            row = self._conn.execute(
                "SELECT dataset_id, reason, at, sequence, raw FROM catalog_withdrawals "
                "WHERE dataset_id = ?",
                (str(dataset_id),),
            ).fetchone()
        return None if row is None else _withdrawal(row)

    def withdrawals(self) -> list[Withdrawal]:
        """Every recorded deprecation with its signed tombstone (what catalog sync hands on).

        Raises:
            StorageError: the read failed.
        """
        with storage_errors("catalog read failed"):
            rows = self._conn.execute(
                "SELECT dataset_id, reason, at, sequence, raw FROM catalog_withdrawals "
                "WHERE reason = 'deprecated' AND raw IS NOT NULL ORDER BY dataset_id"
            ).fetchall()
        return [_withdrawal(r) for r in rows]

    def remove_revoked(self, org: str, serials: Collection[int], *, at: int) -> list[str]:
        """Withdraw (``revoked``) every descriptor of ``org`` signed under one of ``serials``.

        Returns:
            The dataset ids withdrawn.

        Raises:
            StorageError: nothing was written.
        """
        wanted = sorted({int(s) for s in serials})
        deltas: Counter[int] = Counter()
        removed: list[tuple[str, int]] = []
        with transaction(self._conn) as conn:
            for i in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[i : i + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                removed += self._remove_where(
                    conn, f"i.org = ? AND i.serial IN ({marks})", (str(org), *chunk), deltas
                )
            self._record(conn, removed, "revoked", at)
            self._apply_counts(conn, deltas)
        return [d for d, _ in removed]

    def expire(self, now: int) -> int:
        """Withdraw (reason ``expired``) every descriptor whose ``expires`` is at or before ``now``.

        Also forgets revocation and expiry records older than ``WITHDRAWAL_RETENTION``.

        Returns:
            How many descriptors expired.

        Raises:
            StorageError: nothing was written.
        """
        return len(self.expire_ids(now))

    def expire_ids(self, now: int) -> list[str]:
        """:meth:`expire`, returning the ids of the datasets that expired.

        Raises:
            StorageError: nothing was written.
        """
        deltas: Counter[int] = Counter()
        with transaction(self._conn) as conn:
            removed = self._remove_where(conn, "i.expires <= ?", (now,), deltas)
            self._record(conn, removed, "expired", now)
            conn.execute(
                "DELETE FROM catalog_withdrawals WHERE reason IN ('revoked', 'expired') AND at < ?",
                (now - WITHDRAWAL_RETENTION,),
            )
            self._apply_counts(conn, deltas)
        return [dataset_id for dataset_id, _ in removed]

    @staticmethod
    def _remove_where(
        conn: sqlite3.Connection,
        where: str,
        params: tuple[object, ...],
        deltas: Counter[int],
    ) -> list[tuple[str, int]]:
        """Delete the rows ``where`` selects; returns their (dataset id, sequence)."""
        rows = conn.execute(
            "SELECT c.id, c.title, c.description, c.keywords, c.themes, c.org, "  # noqa: S608 - fixed clauses
            "c.dataset_id, c.sequence "
            f"FROM catalog AS c JOIN catalog_items AS i ON i.id = c.id WHERE {where}",
            params,
        ).fetchall()
        for rowid, title, description, keywords, themes, org, *_ in rows:
            conn.execute(
                "INSERT INTO catalog_fts (catalog_fts, rowid, title, description, keywords, "
                "themes, org) VALUES ('delete', ?, ?, ?, ?, ?, ?)",
                (rowid, title, description, keywords, themes, org),
            )
            vids = conn.execute("SELECT vid FROM catalog_facets WHERE id = ?", (rowid,))
            deltas.subtract(int(v[0]) for v in vids.fetchall())
            conn.execute("DELETE FROM catalog_facets WHERE id = ?", (rowid,))
            conn.execute("DELETE FROM catalog_items WHERE id = ?", (rowid,))
            conn.execute("DELETE FROM catalog WHERE id = ?", (rowid,))
        return [(str(r[-2]), int(r[-1])) for r in rows]

    # -- reading

    def get(self, dataset_id: str, *, now: int | None = None) -> bytes | None:
        """The signed bytes held for ``dataset_id`` (warm resolve), if any.

        Args:
            dataset_id: ``dn://<org>/<name>`` (or a ``DatasetId``).
            now: if given, an expired descriptor counts as absent.

        Raises:
            StorageError: the read failed.
        """
        with storage_errors("catalog read failed"):
            row = self._conn.execute(
                "SELECT raw, expires FROM catalog WHERE dataset_id = ?", (str(dataset_id),)
            ).fetchone()
        if row is None or (now is not None and row[1] <= now):
            return None
        return bytes(row[0])

    def sequence_of(self, dataset_id: str) -> int | None:
        """The sequence held for ``dataset_id`` (to skip verifying what is not newer)."""
        with storage_errors("catalog read failed"):
            row = self._conn.execute(
                "SELECT sequence FROM catalog WHERE dataset_id = ?", (str(dataset_id),)
            ).fetchone()
        return None if row is None else int(row[0])

    def entries(self) -> Iterator[tuple[str, int, bytes]]:
        """``(dataset_id, modified, raw)`` of every live descriptor, in ingest order.

        Read in chunks, so memory stays flat; a descriptor replaced while the
        iteration runs may be seen in its new version.

        Raises:
            StorageError: a read failed.
        """
        last = 0
        while True:
            with storage_errors("catalog read failed"):
                rows = self._conn.execute(
                    "SELECT id, dataset_id, modified, raw FROM catalog WHERE id > ? "
                    "ORDER BY id LIMIT ?",
                    (last, _ENTRY_CHUNK),
                ).fetchall()
            if not rows:
                return
            for rowid, dataset_id, modified, raw in rows:
                last = rowid
                yield str(dataset_id), int(modified), bytes(raw)

    def by_org(self, org: str) -> list[tuple[str, bytes]]:
        """``(dataset_id, raw)`` of every live descriptor of ``org`` (``did:key`` text).

        Raises:
            StorageError: the read failed.
        """
        with storage_errors("catalog read failed"):
            rows = self._conn.execute(
                "SELECT dataset_id, raw FROM catalog WHERE org = ? ORDER BY dataset_id",
                (str(org),),
            ).fetchall()
        return [(str(d), bytes(r)) for d, r in rows]

    def stats(self, *, top: int = 20) -> dict[str, Any]:
        """A JSON-safe summary: descriptors, organizations, withdrawals by reason, top orgs.

        Raises:
            StorageError: the read failed.
        """
        with storage_errors("catalog read failed"):
            conn = self._conn
            orgs = conn.execute(
                "SELECT count(*) FROM catalog_facet_values WHERE facet = 'o' AND n > 0"
            ).fetchone()[0]
            per_org = conn.execute(
                "SELECT value, n FROM catalog_facet_values WHERE facet = 'o' AND n > 0 "
                "ORDER BY n DESC, value LIMIT ?",
                (top,),
            ).fetchall()
            by_reason = dict(
                conn.execute(
                    "SELECT reason, count(*) FROM catalog_withdrawals GROUP BY reason"
                ).fetchall()
            )
        return {
            "descriptors": len(self),
            "orgs": int(orgs),
            "withdrawals": {r: int(by_reason.get(r, 0)) for r in WITHDRAWAL_REASONS},
            "per_org": [{"org": str(o), "descriptors": int(n)} for o, n in per_org],
            "schema_version": CATALOG_SCHEMA_VERSION,
        }

    # -- search

    def search(
        self,
        query: str = "",
        *,
        filters: SearchFilters = SearchFilters(),  # noqa: B008 - frozen, immutable
        limit: int = 20,
        cursor: str | None = None,
        facets: bool = True,
        now: int | None = None,
    ) -> SearchPage:
        """Full-text and faceted search; an empty query lists the newest descriptors.

        Ranking, in two tiers: descriptors where every word occurs in the title,
        keywords or themes come first, then those that need the description;
        within a tier, bm25 (title 10, keywords 5, themes 3, description 1), then
        newest ``modified``. To keep every search fast whatever the catalog size,
        each tier ranks at most ``SEARCH_WINDOW`` matches: when a very common word
        matches more, the most recently ingested ones are ranked and the rest are
        left out; more words, or an org, keyword or theme filter (applied before
        the window), narrow the match. License, media-type, access and temporal
        filters apply within the window. ``total`` and the facet counts of a text
        query count the matches within the window.

        Args:
            query: free text; every word must match (stemmed, case- and
                accent-insensitive).
            filters: facet and temporal filters.
            limit: results per page (1-1000).
            cursor: ``next_cursor`` of the previous page of this same search.
            facets: whether to count facet values.
            now: if given, expired descriptors are left out.

        Returns:
            The page: hits best first (newest ``modified`` first for an empty
            query), the total, facet counts, and the cursor of the next page.

        Raises:
            InvalidInput: the query is too long, the limit is out of range, the
                filters are not a ``SearchFilters``, or the cursor is not one of
                this search's.
            StorageError: the read failed.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be 1-{MAX_PAGE}")
        if not isinstance(filters, SearchFilters):
            raise InvalidInput("filters must be a SearchFilters")
        terms = match_expression(query)
        binding = json.dumps([terms, filters.key()], separators=(",", ":")).encode()
        kind = "t" if terms else "e"
        current = self._max_id()
        cur = None if cursor is None else self._decode_cursor(cursor, binding, kind)
        snapshot = current if cur is None else cur.snapshot
        q = self._query(filters, now, snapshot)
        if terms:
            return self._search_text(
                terms, q, limit=limit, cur=cur, facets=facets, snapshot=snapshot, binding=binding
            )
        return self._search_listing(
            q,
            limit=limit,
            cur=cur,
            facets=facets,
            snapshot=snapshot,
            binding=binding,
            unfiltered=filters.empty and snapshot == current,
            now=now,
        )

    def _max_id(self) -> int:
        with storage_errors("catalog read failed"):
            return int(self._conn.execute("SELECT COALESCE(max(id), 0) FROM catalog").fetchone()[0])

    @staticmethod
    def _query(filters: SearchFilters, now: int | None, snapshot: int) -> _Query:
        q = _Query()
        for facet, values in filters.by_facet().items():
            marks = ",".join("?" * len(values))
            column = _COLUMN_FACETS.get(facet)
            if column is not None:
                q.where.append(f"{column} IN ({marks})")
            else:
                q.where.append(
                    "i.id IN (SELECT f.id FROM catalog_facet_values AS v "  # noqa: S608 - fixed codes
                    "JOIN catalog_facets AS f ON f.vid = v.vid "
                    f"WHERE v.facet = '{_CODE[facet]}' AND v.value IN ({marks}))"
                )
            q.params += values
            fts_column = {"org": "org", "keyword": "keywords", "theme": "themes"}.get(facet)
            if fts_column is not None:
                # Only the key part of "did:key:z6Mk…" is distinctive: every org shares "did key".
                phrases = [_phrase(v, last_only=facet == "org") for v in values]
                if all(p is not None for p in phrases):
                    q.narrow.append(f"{{{fts_column}}} : ({' OR '.join(map(str, phrases))})")
        if filters.temporal_from is not None:
            q.where.append("i.temporal_end >= ?")
            q.params.append(filters.temporal_from)
        if filters.temporal_to is not None:
            q.where.append("i.temporal_start <= ?")
            q.params.append(filters.temporal_to)
        if now is not None:
            q.where.append("i.expires > ?")
            q.params.append(now)
        # "+": never let the snapshot bound steer the planner to a scan of the table.
        q.where.append("+i.id <= ?")
        q.params.append(snapshot)
        return q

    def _search_listing(
        self,
        q: _Query,
        *,
        limit: int,
        cur: _Cursor | None,
        facets: bool,
        snapshot: int,
        binding: bytes,
        unfiltered: bool,
        now: int | None,
    ) -> SearchPage:
        after, after_params = "", []
        if cur is not None:
            modified, rowid = cur.key
            after = " AND i.modified <= ? AND (i.modified < ? OR i.id < ?)"
            after_params = [modified, modified, rowid]
        clause = q.clause()
        order = " ORDER BY i.modified DESC, i.id DESC"
        with storage_errors("catalog search failed"):
            conn = self._conn
            rows = conn.execute(
                f"SELECT i.id, i.modified FROM catalog_items AS i WHERE 1{clause}{after}{order} "  # noqa: S608 - no user text in SQL
                "LIMIT ?",
                [*q.params, *after_params, limit + 1],
            ).fetchall()
            stale = 0
            if unfiltered and now is not None:
                stale = conn.execute(
                    "SELECT count(*) FROM catalog_items WHERE expires <= ?", (now,)
                ).fetchone()[0]
            if unfiltered and not stale:
                total = int(
                    conn.execute(
                        "SELECT COALESCE(sum(n), 0) FROM catalog_facet_values WHERE facet = 'o'"
                    ).fetchone()[0]
                )
            else:
                total = int(
                    conn.execute(
                        f"SELECT count(*) FROM catalog_items AS i WHERE 1{clause}",  # noqa: S608
                        q.params,
                    ).fetchone()[0]
                )
        counted = 0
        counts: dict[str, list[FacetCount]] = {}
        if facets:
            if unfiltered and not stale:
                counts, counted = self._stored_counts(), total
            else:
                counts = self._count_facets(
                    f"SELECT i.id AS id FROM catalog_items AS i WHERE 1{clause}{order} "  # noqa: S608
                    f"LIMIT {FACET_WINDOW}",
                    q.params,
                )
                counted = min(total, FACET_WINDOW)
        hits = self._hits_by_id([_Row(0, 0.0, int(r[1]), int(r[0])) for r in rows[:limit]])
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = self._encode_cursor("e", snapshot, (int(last[1]), int(last[0])), binding)
        return SearchPage(hits, total, counts, next_cursor, counted)

    def _search_text(
        self,
        terms: str,
        q: _Query,
        *,
        limit: int,
        cur: _Cursor | None,
        facets: bool,
        snapshot: int,
        binding: bytes,
    ) -> SearchPage:
        strong = f"{{title keywords themes}} : ({terms})"
        tiers = [
            " AND ".join([f"({strong})", *q.narrow]),
            f"({' AND '.join([f'({terms})', *q.narrow])}) NOT ({strong})",
        ]
        window = max(SEARCH_WINDOW, limit)
        start_tier = 0 if cur is None else int(cur.key[0])
        cursor_key = None if cur is None else (cur.key[0], cur.key[1], -cur.key[2], -cur.key[3])
        clause = q.clause()
        matched: list[int] = []
        after: list[_Row] = []
        more = False
        # Each tier is ranked once per cursor chain (then kept in `_rankings`), so bm25
        # scores that drift as other descriptors come and go never reorder, and so
        # never repeat, hits already shown.
        cache_key = (binding, snapshot, window)
        rankings = self._rankings.pop(cache_key, {})
        for tier, expr in enumerate(tiers):
            wanted = tier >= start_tier and len(after) <= limit
            ranked = rankings.get(tier) if wanted else None
            score = "rank" if wanted and ranked is None else "0.0"
            sql = (
                f"SELECT s.rowid, s.r, i.modified FROM (SELECT rowid, {score} AS r "  # noqa: S608 - no user text in SQL
                "FROM catalog_fts "
                "WHERE catalog_fts MATCH ? AND rowid <= ? ORDER BY rowid DESC LIMIT ?) AS s "
                f"JOIN catalog_items AS i ON i.id = s.rowid WHERE 1{clause}"
            )
            with storage_errors("catalog search failed"):
                rows = self._conn.execute(sql, [expr, snapshot, window, *q.params]).fetchall()
            ids = [int(r[0]) for r in rows]
            matched += ids
            if wanted:
                if ranked is None:
                    ranked = rankings[tier] = sorted(
                        (_Row(tier, float(r[1]), int(r[2]), int(r[0])) for r in rows),
                        key=_Row.key,
                    )
                present = set(ids)
                after += [
                    r
                    for r in ranked
                    if r.id in present and (cursor_key is None or r.key() > cursor_key)
                ]
            elif tier >= start_tier and rows:
                more = True
        self._rankings[cache_key] = rankings
        while len(self._rankings) > _RANKINGS_KEPT:
            self._rankings.pop(next(iter(self._rankings)))
        page = after[:limit]
        more = more or len(after) > limit
        hits = self._hits_by_id(page)
        counts = (
            self._count_facets(
                "SELECT value AS id FROM json_each(?)", [json.dumps(matched[:FACET_WINDOW])]
            )
            if facets
            else {}
        )
        next_cursor = None
        if more and page:
            last = page[-1]
            next_cursor = self._encode_cursor(
                "t", snapshot, (last.tier, last.score, last.modified, last.id), binding
            )
        counted = min(len(matched), FACET_WINDOW) if facets else 0
        return SearchPage(hits, len(matched), counts, next_cursor, counted)

    def _hits_by_id(self, page: list[_Row]) -> list[Hit]:
        if not page:
            return []
        with storage_errors("catalog search failed"):
            rows = self._conn.execute(
                f"SELECT {_HIT_COLUMNS} FROM catalog AS c JOIN catalog_items AS i ON i.id = c.id "  # noqa: S608 - fixed columns
                "WHERE c.id IN (SELECT value FROM json_each(?))",
                (json.dumps([r.id for r in page]),),
            ).fetchall()
        by_id = {int(r[0]): r for r in rows}
        return [_hit(by_id[r.id], r.score) for r in page if r.id in by_id]

    def _stored_counts(self) -> dict[str, list[FacetCount]]:
        out: dict[str, list[FacetCount]] = {}
        with storage_errors("catalog search failed"):
            for name in FACETS:
                rows = self._conn.execute(
                    "SELECT value, n FROM catalog_facet_values WHERE facet = ? AND n > 0 "
                    "ORDER BY n DESC, value LIMIT ?",
                    (_CODE[name], MAX_FACET_VALUES),
                ).fetchall()
                out[name] = [FacetCount(str(v), int(n)) for v, n in rows]
        return out

    def _count_facets(self, ids_sql: str, params: Sequence[object]) -> dict[str, list[FacetCount]]:
        """Top facet values over the rows whose ids ``ids_sql`` selects."""
        sql = (
            "SELECT v.facet, v.value, g.n FROM (SELECT f.vid AS vid, count(*) AS n "  # noqa: S608 - no user text in SQL
            f"FROM ({ids_sql}) AS m JOIN catalog_facets AS f ON f.id = m.id GROUP BY f.vid) AS g "
            "JOIN catalog_facet_values AS v ON v.vid = g.vid"
        )
        with storage_errors("catalog search failed"):
            rows = self._conn.execute(sql, list(params)).fetchall()
        grouped: dict[str, list[FacetCount]] = {name: [] for name in FACETS}
        for code, value, n in rows:
            grouped[_NAME[code]].append(FacetCount(str(value), int(n)))
        return {
            name: sorted(values, key=lambda f: (-f.count, f.value))[:MAX_FACET_VALUES]
            for name, values in grouped.items()
        }

    # -- cursors

    def _mac(self, body: bytes, binding: bytes) -> bytes:
        return hashlib.blake2b(
            body + b"\0" + binding, key=self._cursor_key, digest_size=_MAC_BYTES
        ).digest()

    def _encode_cursor(self, kind: str, snapshot: int, key: tuple[Any, ...], binding: bytes) -> str:
        body = json.dumps([_CURSOR_VERSION, kind, snapshot, *key], separators=(",", ":")).encode()
        return _b64(body + self._mac(body, binding))

    def _decode_cursor(self, cursor: str, binding: bytes, kind: str) -> _Cursor:
        if not isinstance(cursor, str) or not 1 <= len(cursor) <= MAX_CURSOR_LENGTH:
            raise _bad_cursor(f"a cursor is 1 to {MAX_CURSOR_LENGTH} characters")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", cursor):
            raise _bad_cursor("a cursor is URL-safe base64 text")
        try:
            data = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise _bad_cursor("it is not URL-safe base64") from None
        body, mac = data[:-_MAC_BYTES], data[-_MAC_BYTES:]
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _bad_cursor("it is garbled") from None
        if not isinstance(doc, list) or not doc or doc[0] != _CURSOR_VERSION:
            raise _bad_cursor("it is from another version of datanet")
        if not hmac.compare_digest(mac, self._mac(body, binding)):
            raise _bad_cursor(
                "it belongs to another search (other words or filters) or was altered"
            )
        ints = (int,)
        shape = (
            (str, *ints, *ints, *ints)
            if kind == "e"
            else (str, *ints, *ints, float | int, *ints, *ints)
        )
        if (
            len(doc) != len(shape) + 1
            or doc[1] != kind
            or any(
                isinstance(v, bool) or not isinstance(v, t)
                for v, t in zip(doc[1:], shape, strict=True)
            )
        ):
            raise _bad_cursor("it is garbled")
        return _Cursor(kind, int(doc[2]), tuple(doc[3:]))

    def integrity_check(self) -> bool:
        """Check both the SQLite file and the FTS index against its content table."""
        try:
            with storage_errors("catalog integrity check failed"):
                self._conn.execute(
                    "INSERT INTO catalog_fts (catalog_fts, rank) VALUES ('integrity-check', 1)"
                )
                ok = self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        except StorageError:
            return False
        return bool(ok)


def _hit(r: Sequence[Any], score: float) -> Hit:
    return Hit(
        dataset_id=r[1],
        title=r[2],
        org=r[3],
        sequence=int(r[4]),
        modified=int(r[5]),
        keywords=_split(r[6]),
        description=r[7],
        score=score,
        license=r[8],
        access=r[9],
        media_types=_split(r[10]),
        themes=_split(r[11]),
    )


def _withdrawal(row: Sequence[Any]) -> Withdrawal:
    return Withdrawal(
        dataset_id=str(row[0]),
        reason=str(row[1]),
        at=int(row[2]),
        sequence=int(row[3]),
        raw=None if row[4] is None else bytes(row[4]),
    )
