"""The local, searchable catalog of verified dataset descriptors (SQLite FTS5).

Every descriptor this node has verified or whose signature its record store
checked on the way in (its own, replicas other nodes put here, ones resolved
through the DHT) is kept here with its exact signed bytes, for warm resolves
(:meth:`Catalog.get`) and full-text search (:meth:`Catalog.search`). The node
driver feeds it from one function (``Node._index``) for everything it accepts:
whatever its record store takes in, and replicas fetched by a lookup. Gossip and
catalog sync do not exist yet (their homes are reserved: ``routing/gossip/``,
``routing/sync.py``); they will feed the catalog through that same function.

Search: title, description, keywords and themes are indexed by an FTS5 table
(``porter unicode61`` tokenizer: case- and accent-insensitive, English stemming)
and ranked with bm25, weighting title 10, keywords 5, themes 3, description 1,
matches in title/keywords/themes before description-only ones. Each search
ranks at most ``SEARCH_WINDOW`` matches per tier (the most recently ingested),
so its cost is bounded whatever the catalog size (see :meth:`Catalog.search`).

Invariants:
* Only the highest ``sequence`` per dataset is held: :meth:`Catalog.upsert`
  ignores an equal or lower one. The caller verifies before inserting; the
  catalog stores the exact bytes it was given and never re-encodes them.
* User query text never reaches ``MATCH`` as syntax: it is split into word
  tokens, each quoted as an FTS5 string, and bound as a parameter. No input
  can raise an FTS5 syntax error or select columns/operators.
* The catalog versions its schema in its own ``catalog_meta`` table, so it can
  share a database file with :class:`datanet.store.db.Storage` (which uses
  ``PRAGMA user_version``) or live in a file of its own.
* ``sqlite3`` errors leave as :class:`~datanet.errors.StorageError`.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from datanet.errors import InvalidInput, StorageError
from datanet.records.ids import SCHEME
from datanet.store.db import connect, migrate, storage_errors, transaction

__all__ = [
    "CATALOG_SCHEMA_VERSION",
    "MAX_QUERY_LENGTH",
    "MAX_QUERY_TOKENS",
    "SEARCH_WINDOW",
    "Catalog",
    "CatalogDescriptor",
    "DatasetIdLike",
    "Hit",
    "match_expression",
]

MAX_QUERY_LENGTH = 512
MAX_QUERY_TOKENS = 16
MAX_PAGE = 1000
MAX_OFFSET = 10_000
SEARCH_WINDOW = 1000
"""At most this many matches of a text query are ranked (the most recently ingested)."""
_SNIPPET = 240
_ORG_CACHE = 4096

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

_MIGRATIONS: tuple[str, ...] = (_V1,)
CATALOG_SCHEMA_VERSION = len(_MIGRATIONS)

_WORD = re.compile(r"\w+", re.UNICODE)
_FTS_COLUMNS = "title, description, keywords, themes, org"
_HIT_COLUMNS = (
    "c.dataset_id, c.title, c.org, c.sequence, c.modified, c.keywords, "
    f"substr(c.description, 1, {_SNIPPET})"
)


class DatasetIdLike(Protocol):
    """``datanet.records.ids.DatasetId``: ``str()`` is ``dn://<str(org)>/<name>``."""

    @property
    def org(self) -> Hashable: ...
    @property
    def name(self) -> str: ...


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
    """

    dataset_id: str
    title: str
    org: str
    sequence: int
    modified: int
    keywords: tuple[str, ...]
    description: str
    score: float


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


def _phrase(text: str, what: str, *, last_only: bool = False) -> str:
    """An FTS5 phrase of the word tokens of ``text`` (never FTS syntax)."""
    tokens = _WORD.findall(text)[:MAX_QUERY_TOKENS]
    if last_only:
        tokens = tokens[-1:]
    if not tokens:
        raise InvalidInput(f"the {what} filter needs at least one letter or digit")
    return '"' + " ".join(tokens) + '"'


def _lines(values: Iterable[str]) -> str:
    return "\n".join(values)


class Catalog:
    """The searchable store of verified descriptors.

    Args:
        path: the database file (its own file, or the node's ``datanet.sqlite``).

    Raises:
        StorageError: the file cannot be opened or migrated.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._org_texts: dict[Hashable, str] = {}
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

    # -- writing

    def upsert(self, raw: bytes, descriptor: CatalogDescriptor) -> bool:
        """Hold ``raw`` (the verified descriptor's signed bytes) unless a version as new is held.

        Args:
            raw: the exact envelope bytes that were verified.
            descriptor: the decoded descriptor of ``raw``.

        Returns:
            Whether it was stored (False: an equal or higher sequence is held).

        Raises:
            StorageError: nothing was written.
        """
        return self.upsert_many([(raw, descriptor)]) == 1

    def upsert_many(self, items: Iterable[tuple[bytes, CatalogDescriptor]]) -> int:
        """:meth:`upsert` several descriptors in one transaction (bulk ingest).

        Returns:
            How many were stored.

        Raises:
            StorageError: nothing was written.
        """
        stored = 0
        with transaction(self._conn) as conn:
            for raw, desc in items:
                stored += self._upsert_one(conn, raw, desc)
        return stored

    def _org_text(self, org: Hashable) -> str:
        # did:key text costs a base58 encoding (~20 us); ingest sees few distinct orgs.
        text = self._org_texts.get(org)
        if text is None:
            if len(self._org_texts) >= _ORG_CACHE:
                self._org_texts.clear()
            text = self._org_texts[org] = str(org)
        return text

    def _upsert_one(self, conn: sqlite3.Connection, raw: bytes, desc: CatalogDescriptor) -> int:
        org = self._org_text(desc.dataset_id.org)
        dataset_id = f"{SCHEME}{org}/{desc.dataset_id.name}"
        row = conn.execute(
            "SELECT sequence FROM catalog WHERE dataset_id = ?", (dataset_id,)
        ).fetchone()
        if row is not None:
            if row[0] >= desc.sequence:
                return 0
            self._remove_where(conn, "dataset_id = ?", (dataset_id,))
        # A new row id for every version: id order is ingest order (see `search`).
        fields = (
            desc.title,
            desc.description,
            _lines(desc.keywords),
            _lines(desc.themes),
            org,
        )
        rowid = conn.execute(
            "INSERT INTO catalog (dataset_id, sequence, modified, expires, title, description, "
            "keywords, themes, org, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (dataset_id, desc.sequence, desc.modified, desc.expires, *fields, bytes(raw)),
        ).lastrowid
        conn.execute(
            "INSERT INTO catalog_fts (rowid, title, description, keywords, themes, org) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (rowid, *fields),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO catalog_keywords (keyword, id) VALUES (?, ?)",
            [(k.casefold(), rowid) for k in desc.keywords],
        )
        return 1

    def remove(self, dataset_id: str) -> bool:
        """Forget a dataset; returns whether it was held.

        Raises:
            StorageError: nothing was written.
        """
        with transaction(self._conn) as conn:
            return self._remove_where(conn, "dataset_id = ?", (str(dataset_id),)) > 0

    def expire(self, now: int) -> int:
        """Drop every descriptor whose ``expires`` is at or before ``now``; returns how many.

        Raises:
            StorageError: nothing was written.
        """
        with transaction(self._conn) as conn:
            return self._remove_where(conn, "expires <= ?", (now,))

    @staticmethod
    def _remove_where(conn: sqlite3.Connection, where: str, params: tuple[object, ...]) -> int:
        rows = conn.execute(
            f"SELECT id, {_FTS_COLUMNS} FROM catalog WHERE {where}",  # noqa: S608 - fixed clauses
            params,
        ).fetchall()
        for rowid, *text in rows:
            conn.execute(
                "INSERT INTO catalog_fts (catalog_fts, rowid, title, description, keywords, "
                "themes, org) VALUES ('delete', ?, ?, ?, ?, ?, ?)",
                (rowid, *text),
            )
            conn.execute("DELETE FROM catalog_keywords WHERE id = ?", (rowid,))
            conn.execute("DELETE FROM catalog WHERE id = ?", (rowid,))
        return len(rows)

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

    def search(
        self,
        query: str,
        *,
        limit: int = 20,
        offset: int = 0,
        org: str | None = None,
        keyword: str | None = None,
        now: int | None = None,
    ) -> list[Hit]:
        """Full-text search; an empty query lists the newest descriptors.

        Ranking, in two tiers: descriptors where every word occurs in the title,
        keywords or themes come first, then those that need the description;
        within a tier, bm25 (title 10, keywords 5, themes 3, description 1).
        To keep every search fast whatever the catalog size, each tier ranks at
        most ``SEARCH_WINDOW`` matches: when a very common word matches more,
        the most recently ingested ones are ranked and the rest are left out;
        more words or a filter narrow the match.

        Args:
            query: free text; every word must match (stemmed, case- and
                accent-insensitive).
            limit: results per page (1-1000).
            offset: results to skip (paging, at most 10,000).
            org: only descriptors of this organization (``did:key`` text).
            keyword: only descriptors carrying this keyword (case-insensitive, exact).
            now: if given, expired descriptors are left out.

        Returns:
            Hits, best first (newest ``modified`` first for an empty query).

        Raises:
            InvalidInput: the query is too long, limit/offset are out of range, or
                a filter has no letter or digit.
            StorageError: the read failed.
        """
        if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= MAX_OFFSET:
            raise InvalidInput(f"limit must be 1-{MAX_PAGE} and offset 0-{MAX_OFFSET}")
        terms = match_expression(query)
        narrow: list[str] = []  # FTS column filters that pre-select what the exact filters keep
        filters: list[str] = []
        params: list[object] = []
        if org is not None:
            # Only the key part of "did:key:z6Mk…" is distinctive: every org shares "did key".
            narrow.append(f"{{org}} : {_phrase(str(org), 'org', last_only=True)}")
            filters.append("c.org = ?")
            params.append(str(org))
        if keyword is not None:
            narrow.append(f"{{keywords}} : {_phrase(keyword, 'keyword')}")
            filters.append("c.id IN (SELECT id FROM catalog_keywords WHERE keyword = ?)")
            params.append(keyword.casefold())
        if now is not None:
            filters.append("c.expires > ?")
            params.append(now)
        where = "".join(f" AND {f}" for f in filters)
        wanted = offset + limit
        if not terms:
            sql = (
                f"SELECT {_HIT_COLUMNS}, 0.0 FROM catalog AS c WHERE 1{where} "  # noqa: S608
                "ORDER BY c.modified DESC, c.id DESC LIMIT ? OFFSET ?"
            )
            return self._hits(sql, [*params, limit, offset])
        sql = (
            f"SELECT {_HIT_COLUMNS}, s.r FROM (SELECT rowid, rank AS r FROM catalog_fts "  # noqa: S608 - no user text in SQL
            "WHERE catalog_fts MATCH ? ORDER BY rowid DESC LIMIT ?) AS s "
            f"JOIN catalog AS c ON c.id = s.rowid WHERE 1{where} "
            "ORDER BY s.r, c.modified DESC, c.id DESC LIMIT ?"
        )
        window = max(SEARCH_WINDOW, wanted)
        strong = f"{{title keywords themes}} : ({terms})"
        first = " AND ".join([f"({strong})", *narrow])
        hits = self._hits(sql, [first, window, *params, wanted])
        if len(hits) < wanted:
            rest = f"({' AND '.join([f'({terms})', *narrow])}) NOT ({strong})"
            hits += self._hits(sql, [rest, window, *params, wanted - len(hits)])
        return hits[offset:]

    def _hits(self, sql: str, args: list[object]) -> list[Hit]:
        with storage_errors("catalog search failed"):
            rows = self._conn.execute(sql, args).fetchall()
        return [
            Hit(
                dataset_id=r[0],
                title=r[1],
                org=r[2],
                sequence=int(r[3]),
                modified=int(r[4]),
                keywords=tuple(r[5].split("\n")) if r[5] else (),
                description=r[6],
                score=float(r[7]),
            )
            for r in rows
        ]

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
