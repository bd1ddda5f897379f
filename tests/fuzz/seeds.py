"""Real encoded records, one list per fuzz target, so that fuzzing starts deep.

Every seed is built with the product's own encoders and the fixed test keys of
:mod:`datanet.testing.records`, so the seeds verify at :data:`~datanet.testing.clock.NOW`
against :data:`TRUST`. ``python -m tests.fuzz.seeds`` rewrites ``tests/fuzz/corpus/``.

Invariants:
    - Deterministic: the same code writes the same corpus (fixed keys, nonces, times).
    - Small: every seed is a few KiB at most, a target has a handful of seeds.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import tempfile
import warnings
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from datanet.api.routes import OPERATIONS
from datanet.node.config import Config, render_config
from datanet.p2p.admission import Hello, Refusal
from datanet.p2p.protocols import identify_message
from datanet.records.access import (
    AccessRequest,
    Denial,
    Grant,
    GrantRevocation,
    TraceEntry,
    request_id,
    sign_denial,
    sign_grant,
    sign_grant_revocation,
    sign_request,
    sign_trace_entry,
)
from datanet.records.audit import (
    AuditEntry,
    EntryKind,
    TreeHead,
    consistency_proof,
    cosign_head,
    inclusion_proof,
    leaf_hash,
    make_receipt,
    merkle_root,
    sign_tree_head,
)
from datanet.records.descriptor_file import descriptor_template, descriptor_to_toml
from datanet.records.ids import DatasetId
from datanet.testing.clock import DAY, NOW
from datanet.testing.records import (
    NODE_A,
    NODE_B,
    ORG_A,
    ORG_B,
    certificate,
    deprecation,
    full_descriptor,
    key,
    signed,
    signed_deprecation,
)
from identity.certs import Role, TrustStore, issue_revocation
from identity.encoding import pack, unpack
from identity.keystore import KeyType, encode_key_file
from identity.orgs import Gateway, issue_org_record
from routing.gossip.wire import (
    RPC,
    Graft,
    IHave,
    IWant,
    PeerInfo,
    Prune,
    PubMessage,
    SubOpts,
    encode_rpc,
)
from routing.sync import Item, Reconciler, SyncIndex
from routing.wire import (
    ConnectionType,
    Message,
    MessageType,
    Peer,
    Record,
    encode_frame,
    encode_message,
)

__all__ = [
    "BODY_TARGETS",
    "CORPUS_DIR",
    "SIGNERS",
    "TRUST",
    "corpus",
    "envelope_parts",
    "seeds",
    "write_corpus",
]

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"

#: Trusts both test organizations: every signed seed verifies against it at NOW.
TRUST = TrustStore({ORG_A.org_id, ORG_B.org_id})

OWNER, REQUESTER = key("P"), key("R")
OWNER_CHAIN = [certificate(ORG_A, OWNER, (Role.PUBLISHER, Role.GATEWAY))]
REQUESTER_CHAIN = [certificate(ORG_B, REQUESTER, (Role.REQUESTER,))]
LOG_CHAIN = [certificate(ORG_A, NODE_A)]
WITNESS_CHAIN = [certificate(ORG_B, NODE_B)]
DATASET = DatasetId(ORG_A.org_id, "weather/stations")
#: Every key that signs a seed, by public key.
SIGNERS = {k.public_key: k for k in (ORG_A, ORG_B, NODE_A, NODE_B, OWNER, REQUESTER)}


@cache
def _request() -> bytes:
    req = AccessRequest(
        dataset_id=DATASET,
        sequence=5,
        purpose="scientific-research",
        validity_days=10,
        node=REQUESTER.peer_id,
        org=ORG_B.org_id,
        nonce=bytes(16),
        created=NOW,
        deadline=NOW + 3600,
        reply_key=bytes(range(32)),
    )
    return sign_request(req, REQUESTER, REQUESTER_CHAIN)


@cache
def _trace_entry() -> bytes:
    raw = _request()
    entry = TraceEntry(
        request_id=request_id(raw),
        hop=0,
        node=OWNER.peer_id,
        org=ORG_A.org_id,
        prev=request_id(raw),
        at=NOW + 1,
        action="decide",
    )
    return sign_trace_entry(entry, OWNER, OWNER_CHAIN)


@cache
def _grant() -> bytes:
    raw = _request()
    grant = Grant(
        grant_id=bytes(range(16)),
        request=raw,
        trace=(_trace_entry(),),
        dataset_id=DATASET,
        sequence=5,
        grantee_node=REQUESTER.peer_id,
        grantee_org=ORG_B.org_id,
        purpose="scientific-research",
        not_before=NOW + 2,
        not_after=NOW + 2 + DAY,
        issuer=OWNER.peer_id,
        issued_at=NOW + 2,
    )
    return sign_grant(grant, OWNER, OWNER_CHAIN)


def _denial() -> bytes:
    denial = Denial(
        request_id=request_id(_request()),
        dataset_id=DATASET,
        reason="purpose_not_allowed",
        message="not for this purpose",
        node=OWNER.peer_id,
        org=ORG_A.org_id,
        decided_at=NOW + 2,
        trace=(_trace_entry(),),
    )
    return sign_denial(denial, OWNER, OWNER_CHAIN)


def _grant_revocation() -> bytes:
    rev = GrantRevocation(
        grant_id=bytes(range(16)),
        dataset_id=DATASET,
        node=OWNER.peer_id,
        revoked_at=NOW + 10,
        expires=NOW + 2 * DAY,
        reason="misuse",
    )
    return sign_grant_revocation(rev, OWNER, OWNER_CHAIN)


def _org_record() -> bytes:
    return issue_org_record(
        ORG_A,
        name="Org A",
        gateways=[Gateway(OWNER.peer_id, ("/ip4/127.0.0.1/tcp/4001",))],
        sequence=3,
        expires=NOW + 30 * DAY,
    )


def _revocation() -> bytes:
    return issue_revocation(ORG_A, [3, 9], sequence=2, issued_at=NOW, reason="lost laptop")


def _descriptor() -> bytes:
    return signed(full_descriptor())


def _deprecation() -> bytes:
    return signed_deprecation(deprecation(reason="superseded"))


def _leaves() -> list[bytes]:
    return [
        AuditEntry(EntryKind.GRANT, NOW + i, b"record %d" % i, None, {"n": i}).encode()
        for i in range(5)
    ]


@cache
def _head(size: int = 5) -> bytes:
    hashes = [leaf_hash(e) for e in _leaves()[:size]]
    return sign_tree_head(
        TreeHead(NODE_A.peer_id, size, merkle_root(hashes), NOW), NODE_A, LOG_CHAIN
    )


def _tree(size: int) -> TreeHead:
    hashes = [leaf_hash(e) for e in _leaves()[:size]]
    return TreeHead(NODE_A.peer_id, size, merkle_root(hashes), NOW)


def _cosignature() -> bytes:
    return cosign_head(_tree(5), NODE_B, WITNESS_CHAIN, NOW + 1)


def _receipt() -> bytes:
    leaves = _leaves()
    hashes = [leaf_hash(e) for e in leaves]
    return make_receipt(_head(), 2, inclusion_proof(hashes, 2, 5), leaves[2], [_cosignature()])


def _audit_proof() -> list[bytes]:
    hashes = [leaf_hash(e) for e in _leaves()]
    return [
        pack(
            {
                "first": 2,
                "last": 5,
                "old": merkle_root(hashes[:2]),
                "new": merkle_root(hashes),
                "proof": consistency_proof(hashes, 2, 5),
            }
        ),
        pack(
            {
                "leaf": hashes[3],
                "index": 3,
                "size": 5,
                "root": merkle_root(hashes),
                "proof": inclusion_proof(hashes, 3, 5),
            }
        ),
    ]


def _kad() -> list[bytes]:
    key_ = DATASET.dht_key()
    peer = Peer(
        NODE_B.peer_id.to_bytes(), (b"\x04\x7f\x00\x00\x01\x06\x0f\xa1",), ConnectionType.CONNECTED
    )
    messages = [
        Message(MessageType.PUT_VALUE, key_, record=Record(key_, _descriptor())),
        Message(MessageType.GET_VALUE, key_),
        Message(MessageType.FIND_NODE, NODE_B.peer_id.to_bytes()),
        Message(MessageType.ADD_PROVIDER, key_, provider_peers=(peer,)),
        Message(MessageType.GET_PROVIDERS, key_, closer_peers=(peer,)),
        Message(MessageType.PING),
    ]
    return [encode_frame(encode_message(m)) for m in messages]


def _gossip() -> list[bytes]:
    msg = PubMessage("/datanet/catalog/1", _descriptor(), NODE_A.peer_id.to_bytes(), b"\x00" * 8)
    rpcs = [
        RPC(subscriptions=(SubOpts(True, "/datanet/catalog/1"),), publish=(msg,)),
        RPC(
            ihave=(IHave("/datanet/catalog/1", (b"m" * 20, b"n" * 20)),),
            iwant=(IWant((b"m" * 20,)),),
            graft=(Graft("/datanet/catalog/1"),),
            prune=(Prune("/datanet/heads/1", (PeerInfo(NODE_B.peer_id.to_bytes(), None),), 60),),
        ),
    ]
    return [encode_rpc(r) for r in rpcs]


def _sync() -> list[bytes]:
    items = [Item(NOW - i * 60, hashlib.sha256(b"%d" % i).digest()) for i in range(300)]
    out = [Reconciler(SyncIndex(items)).initiate()]
    responder = Reconciler(SyncIndex(items[::2]))
    answer = responder.reconcile(out[0])
    if answer is not None:
        out.append(answer)
    return out


def _key_files() -> list[bytes]:
    return [
        encode_key_file(NODE_A, key_type=KeyType.NODE, name="node"),
        encode_key_file(ORG_A, key_type=KeyType.ORG, name="org"),
    ]


def _api_value(schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return ["weather"]
    if kind == "string":
        pattern = str(schema.get("pattern", ""))
        if "dn://" in pattern:
            return str(DATASET)
        if "12D3KooW" in pattern:
            return str(NODE_B.peer_id)
        if "0-9a-fA-F" in pattern:
            return "ab" * 8
        if pattern.startswith("^/"):
            return "/dn/x"
        if pattern.startswith("^("):
            return pattern[2:].split("|", 1)[0].rstrip(")$")
        return "x" * max(1, schema.get("minLength", 1))
    return {"any": [1, None]}


def _api() -> list[bytes]:
    """One body per JSON endpoint (named by its path), every field set."""
    ops = [op for op in OPERATIONS if op.body == "json"]
    return [
        op.path.encode()
        + b"\0"
        + json.dumps({f.name: _api_value(f.schema) for f in op.fields}).encode()
        for op in ops
    ]


def _access_frames() -> list[bytes]:
    return [
        pack({"op": "submit", "req": _request(), "trace": []}),
        pack({"op": "status", "req": _request(), "trace": [_trace_entry()]}),
    ]


def _audit_frames() -> list[bytes]:
    return [
        pack({"op": "head"}),
        pack({"op": "consistency", "from": 2, "to": 5}),
        pack({"op": "cosign", "cosig": _cosignature()}),
    ]


def _hellos() -> list[bytes]:
    return [
        Hello(tuple(LOG_CHAIN), frozenset({"kad-server"}), ("/ip4/127.0.0.1/tcp/4001",)).encode(),
        Refusal("not_a_member", "no certificate of a trusted org").encode(),
        Hello().encode(),
    ]


def _records() -> list[bytes]:
    return [
        _descriptor(),
        _deprecation(),
        _org_record(),
        _revocation(),
        _grant_revocation(),
    ]


def _toml() -> list[bytes]:
    return [
        descriptor_to_toml(full_descriptor()).encode(),
        descriptor_template(DATASET, now=NOW).encode(),
    ]


def _config() -> list[bytes]:
    return [render_config(Config.defaults()).encode(), b'[api]\naddress = "127.0.0.1:5080"\n']


def _identify() -> list[bytes]:
    return [
        identify_message(
            NODE_A.peer_id.to_bytes()[2:],
            ["/ip4/127.0.0.1/tcp/4001", "/ip6/::1/tcp/4001"],
            ["/ipfs/kad/1.0.0", "/datanet/id/1.0.0"],
            ("127.0.0.1", 50000),
        )
    ]


def _api_responses() -> list[bytes]:
    """Real answers of the API (the MemoryNode double behind the real app), each
    prefixed with the index of a client parser that accepts it."""
    with warnings.catch_warnings():  # starlette's TestClient prefers another httpx
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from datanet.api import results
    from datanet.api.app import create_app
    from datanet.api.routes import ApiContext
    from datanet.node.config import ConfigFile
    from datanet.testing.doubles import MemoryNode

    parsers = sorted(
        (name, fn)
        for name, fn in ((n, getattr(results, n)) for n in results.__all__)
        if name.startswith("parse_") and name != "parse_watch_event" and callable(fn)
    )
    node = MemoryNode()
    docs: list[object] = []
    logging.disable(logging.CRITICAL)  # the double lacks the access and audit calls
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx = ApiContext(
            node, ConfigFile(Path(tmp) / "config.toml"), Config.defaults(), lambda: None, "t" * 32
        )
        with TestClient(create_app(ctx)) as client:
            by_path = {op.path.encode(): op for op in OPERATIONS if op.body == "json"}
            for seed in _api():
                path, _, body = seed.partition(b"\0")
                op = by_path[path]
                if op.stream is not None or op.lines is not None:
                    continue
                answer = client.post(
                    f"/api/v0{op.path}",
                    content=body,
                    headers={"Authorization": "Bearer " + "t" * 32},
                )
                if answer.status_code == 200:
                    doc = answer.json()
                    if "uptime_s" in doc:  # the only figures that differ between runs
                        doc.update(pid=1, uptime_s=1.0)
                    docs.append(doc)
    logging.disable(logging.NOTSET)
    out: list[bytes] = []
    for name, parse in parsers:
        accepted = 0
        for doc in docs:
            try:
                parse(doc)
            except Exception:
                continue
            out.append(name.encode() + b"\0" + json.dumps(doc).encode())
            accepted += 1
            if accepted == 2:
                break
    return out


def _watch() -> list[bytes]:
    events = [
        {
            "kind": "new",
            "dataset_id": str(DATASET),
            "sequence": 1,
            "org": str(ORG_A.org_id),
            "title": "Weather",
            "keywords": ["weather"],
            "themes": [],
            "description": "d",
            "reason": None,
            "at": NOW,
        },
        {
            "kind": "withdrawn",
            "dataset_id": str(DATASET),
            "sequence": 2,
            "org": str(ORG_A.org_id),
            "title": "",
            "keywords": [],
            "themes": [],
            "description": "",
            "reason": "deprecated",
            "at": NOW + 1,
        },
        {"kind": "overflow", "lost": 3, "at": NOW + 2},
    ]
    stream = ": datanet catalog watch\n\n" + "".join(
        f"event: {e['kind']}\ndata: {json.dumps(e)}\n\n" for e in events
    )
    return [stream.encode()]


SEEDS: dict[str, Callable[[], list[bytes]]] = {
    "kad_frame": _kad,
    "admission_hello": _hellos,
    "envelope": lambda: [_descriptor(), _grant(), _org_record(), _head()],
    "certificate": lambda: [*OWNER_CHAIN, *REQUESTER_CHAIN, *LOG_CHAIN],
    "revocation": lambda: [_revocation()],
    "org_record": lambda: [_org_record()],
    "descriptor": lambda: [_descriptor()],
    "descriptor_toml": _toml,
    "deprecation": lambda: [_deprecation()],
    "ledger_record": _records,
    "dataset_record": lambda: [_descriptor(), _deprecation()],
    "gossip_rpc": _gossip,
    "sync_frame": _sync,
    "access_request": lambda: [_request()],
    "trace_entry": lambda: [_trace_entry()],
    "grant": lambda: [_grant()],
    "denial": lambda: [_denial()],
    "grant_revocation": lambda: [_grant_revocation()],
    "access_frame": _access_frames,
    "audit_entry": _leaves,
    "tree_head": lambda: [_head(), _head(2)],
    "cosignature": lambda: [_cosignature()],
    "receipt": lambda: [_receipt()],
    "audit_proof": _audit_proof,
    "audit_frame": _audit_frames,
    "witness_head": lambda: [_head(), _head(2)],
    "key_file": _key_files,
    "api_body": _api,
    "api_response": _api_responses,
    "config_file": _config,
    "identify": _identify,
    "watch_event": _watch,
}


#: Signed records whose body is fuzzed on its own as ``<name>_body``: the target signs
#: each input with the record's genuine key and chain, so the body decoder and every
#: check after the signature see arbitrary bodies (a mutated envelope never gets
#: past its signature).
BODY_TARGETS = (
    "access_request",
    "certificate",
    "cosignature",
    "denial",
    "deprecation",
    "descriptor",
    "grant",
    "grant_revocation",
    "org_record",
    "revocation",
    "trace_entry",
    "tree_head",
)


def envelope_parts(raw: bytes) -> tuple[str, bytes, bytes, tuple[bytes, ...]]:
    """``(tag, body, signer public key, chain)`` of signed envelope bytes (unchecked)."""
    _version, tag, body, signer, _signature, chain = unpack(raw, max_size=1 << 20, max_items=16)
    return tag, body, signer, tuple(chain)


def _bodies(base: str) -> list[bytes]:
    """The bodies of ``base``'s seeds signed by the first seed's signer (the one
    the body target signs with)."""
    parts = [envelope_parts(raw) for raw in SEEDS[base]()]
    return [body for _tag, body, signer, _chain in parts if signer == parts[0][2]]


SEEDS.update({f"{name}_body": functools.partial(_bodies, name) for name in BODY_TARGETS})


def seeds(target: str) -> list[bytes]:
    """The seed inputs of ``target`` (built, not read from the corpus directory)."""
    return SEEDS[target]()


def corpus(target: str) -> list[bytes]:
    """The committed seed corpus of ``target`` (``tests/fuzz/corpus/<target>/*``)."""
    folder = CORPUS_DIR / target
    return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.is_dir() else []


def write_corpus(root: Path = CORPUS_DIR) -> None:
    """Write every target's seeds to ``root/<target>/<sha1 of the seed>``."""
    for target in SEEDS:
        folder = root / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for data in seeds(target):
            (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


if __name__ == "__main__":
    write_corpus()
