"""datanet.records: the pure record formats a node signs, ships and checks.

Dataset identifiers, signed descriptors, their TOML authoring files, the DCAT-3
export and the DHT validators (later: access requests, grants, receipts). No
I/O here besides parsing bytes and text; see ``docs/records.md``.
"""
