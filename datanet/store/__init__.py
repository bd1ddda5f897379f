"""datanet.store: the node's SQLite files.

``db`` holds the DHT record and provider stores, the address book and the
node's own descriptors; ``catalog`` is the FTS5-searchable catalog of verified
descriptors (later: the audit log's storage). See ``docs/storage.md``.
"""
