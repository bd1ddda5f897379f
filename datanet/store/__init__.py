"""datanet.store: the node's SQLite files.

``db`` holds the DHT record and provider stores, the address book, the node's
own descriptors and the ledger's revocation lists and org records; ``catalog`` is
the FTS5-searchable catalog of verified descriptors with facets and withdrawals;
``audit`` the append-only Merkle-tree audit log. See ``docs/storage.md``.
"""
