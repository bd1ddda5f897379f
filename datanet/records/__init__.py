"""datanet.records: the pure record formats a node signs, ships and checks.

Dataset identifiers, signed descriptors and deprecations, the ledger's verifier
for every record kind, search filters, the audit log's entries, tree heads,
proofs and receipts, the TOML authoring files, the DCAT-3 export and the DHT
validators (later: access requests and grants). No
I/O here besides parsing bytes and text; see ``docs/records.md``.
"""
