"""Fuzz targets: every decoder and protocol handler that takes bytes from the network or a file.

Each target is ``fuzz_<name>(data: bytes) -> None``: it feeds ``data`` to the real
decoder (and, where one exists, the handler behind it) and lets only the documented
errors through; :func:`run_one` turns any other exception into a crash. Where a
decode succeeds the target re-encodes and checks the round trip or the record's
invariants, so a decoder that accepts what its encoder would not write is a crash too.

Invariants:
    - A target touches no file, socket or clock: the time is :data:`NOW`, the trust
      store is :data:`~tests.fuzz.seeds.TRUST`, stores live in memory.
    - State a target keeps between inputs (a kad store, a gossip router, a witness)
      is bounded, so a long run measures the decoder's memory, not the target's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datanet.api import results
from datanet.api.app import _decode_json_body
from datanet.api.routes import OPERATIONS, check_args
from datanet.node.config import load_config, render_config
from datanet.p2p.admission import Hello, Refusal, decode_reply
from datanet.p2p.audit import _check_request
from datanet.p2p.protocols import parse_identify
from datanet.records.access import (
    MAX_HOPS,
    decode_grant_unverified,
    open_denial,
    open_grant_revocation,
    open_request,
    open_trace_entry,
    verify_denial,
    verify_grant,
    verify_grant_revocation,
    verify_request,
    verify_trace,
)
from datanet.records.audit import (
    AuditEntry,
    decode_entry,
    decode_receipt,
    open_cosignature,
    open_tree_head,
    verify_consistency,
    verify_cosignature,
    verify_inclusion,
    verify_receipt,
    verify_tree_head,
)
from datanet.records.deprecation import (
    decode_deprecation_unverified,
    open_deprecation,
    verify_deprecation,
)
from datanet.records.descriptor import (
    decode_descriptor_unverified,
    open_descriptor,
    verify_descriptor,
)
from datanet.records.descriptor_file import descriptor_from_toml, descriptor_to_toml
from datanet.records.ledger import record_kind, verify_ledger_record
from datanet.records.validators import default_validator, open_dataset_record
from datanet.testing.clock import NOW
from datanet.testing.records import NODE_A, NODE_B
from identity.certs import parse_certificate, parse_revocation
from identity.encoding import unpack, unpack_map
from identity.envelope import open_envelope, seal
from identity.errors import DatanetError
from identity.keystore import decode_key_file
from identity.orgs import decode_org_record, parse_org_record
from routing.gossip.router import GossipRouter
from routing.gossip.wire import decode_rpc, encode_rpc
from routing.server import handle_request
from routing.stores import ProviderStore, RecordStore
from routing.sync import Item, Reconciler, SyncIndex
from routing.wire import FrameDecoder, Peer, decode_message, encode_message
from routing.witness import Witness
from tests.fuzz.seeds import BODY_TARGETS, SIGNERS, TRUST, envelope_parts, seeds

__all__ = ["ALLOWED", "TARGETS", "Crash", "run_one"]

#: The documented error types: the root of datanet's (and identity's) exception tree.
ALLOWED: tuple[type[BaseException], ...] = (DatanetError,)


class Crash(AssertionError):
    """A decoder broke its contract: an undocumented exception or a broken invariant."""


def run_one(target: Callable[[bytes], None], data: bytes) -> None:
    """Run ``target`` on ``data``; documented errors pass, anything else is a :class:`Crash`."""
    try:
        target(data)
    except ALLOWED:
        pass
    except Crash:
        raise
    except Exception as exc:
        raise Crash(f"{type(exc).__name__}: {exc}"[:500]) from exc


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise Crash(what)


# -- kad -------------------------------------------------------------------------------


class _Kad:
    """A kad server's state: real stores with the node's validator, bounded."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.records = RecordStore(
            default_validator(TRUST), max_records=256, writes_per_peer_per_minute=1e9
        )
        self.providers = ProviderStore(max_keys=256, adds_per_peer_per_minute=1e9)
        self.handled = 0


_KAD = _Kad()
_PEERS = [Peer(bytes([i]) * 38, ()) for i in range(30)]


def _closest(key: bytes, count: int) -> list[Peer]:
    return _PEERS[:count]


def fuzz_kad_frame(data: bytes) -> None:
    """Frames on a kad stream: framing, the protobuf decoder, then the request handler."""
    decoder = FrameDecoder()
    for payload in decoder.feed(data):
        msg = decode_message(payload)
        _check(decode_message(encode_message(msg)) == msg, "kad message does not round-trip")
        _KAD.handled += 1
        if _KAD.handled % 5000 == 0:
            _KAD.reset()
        handle_request(
            msg,
            from_peer=NODE_B.peer_id.to_bytes(),
            now=float(NOW),
            closest=_closest,
            records=_KAD.records,
            providers=_KAD.providers,
        )


# -- admission, envelopes, identity -----------------------------------------------------


def fuzz_admission_hello(data: bytes) -> None:
    """The Hello a peer sends, and the listener's reply."""
    try:
        hello = Hello.decode(data)
    except DatanetError:
        pass
    else:
        _check(Hello.decode(hello.encode()) == hello, "hello does not round-trip")
    reply = decode_reply(data)
    if isinstance(reply, Refusal):
        _check(isinstance(reply.code, str) and isinstance(reply.message, str), "bad refusal")


_TAGS = ("datanet/descriptor/v1", "datanet/grant/v1", "datanet/org/v1", "anything")


def fuzz_envelope(data: bytes) -> None:
    """The signed envelope under every record, with whatever tag it claims."""
    try:
        obj = unpack(data, max_size=64 * 1024, max_items=16)
    except DatanetError:
        return
    tag = obj[1] if isinstance(obj, list) and len(obj) == 6 and isinstance(obj[1], str) else ""
    env = open_envelope(data, tag=tag or _TAGS[len(data) % len(_TAGS)], max_size=64 * 1024)
    _check(env.encode() == data, "an accepted envelope does not re-encode to its bytes")


def fuzz_certificate(data: bytes) -> None:
    """A membership certificate (in hellos, chains and files)."""
    cert = parse_certificate(data)
    _check(type(cert).decode_body(cert.encode_body()) == cert, "certificate does not round-trip")


def fuzz_revocation(data: bytes) -> None:
    """An organization's revocation list."""
    parse_revocation(data)


def fuzz_org_record(data: bytes) -> None:
    """An org record from the DHT."""
    record = decode_org_record(data)
    _check(type(record).decode_body(record.encode_body()) == record, "org record round-trip")
    parse_org_record(data, NOW)


# -- descriptors -------------------------------------------------------------------------


def fuzz_descriptor(data: bytes) -> None:
    """A signed dataset descriptor: open, verify, and the unverified decode."""
    try:
        desc = decode_descriptor_unverified(data)
    except DatanetError:
        pass
    else:
        _check(type(desc).decode_body(desc.encode_body()) == desc, "descriptor round-trip")
    desc, _env = open_descriptor(data)
    verify_descriptor(data, TRUST, NOW)


def fuzz_descriptor_toml(data: bytes) -> None:
    """A descriptor file written by a user (``datanet publish FILE``)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    desc = descriptor_from_toml(text, publisher_node=NODE_A.peer_id, now=NOW)
    again = descriptor_from_toml(descriptor_to_toml(desc), publisher_node=NODE_A.peer_id, now=NOW)
    _check(again == desc, "a descriptor file does not survive descriptor_to_toml")


def fuzz_deprecation(data: bytes) -> None:
    """A signed deprecation (tombstone)."""
    with contextlib.suppress(DatanetError):
        decode_deprecation_unverified(data)
    open_deprecation(data)
    verify_deprecation(data, TRUST, NOW)


def fuzz_ledger_record(data: bytes) -> None:
    """Any record the ledger stores, recognised by its tag."""
    with contextlib.suppress(DatanetError):
        record_kind(data)
    verify_ledger_record(data, TRUST, NOW)


def fuzz_dataset_record(data: bytes) -> None:
    """A value under a ``/dn/`` DHT key (descriptor or deprecation)."""
    open_dataset_record(data)


# -- gossip and sync --------------------------------------------------------------------

_ROUTER: list[GossipRouter] = []
_GOSSIP_PEER = NODE_B.peer_id.to_bytes()


def _router() -> GossipRouter:
    if not _ROUTER:
        router = GossipRouter(NODE_A.peer_id.to_bytes(), rng=random.Random(1), now=0.0)
        router.subscribe("/datanet/catalog/1", 0.0)
        router.add_peer(_GOSSIP_PEER, outbound=True, now=0.0)
        _ROUTER.append(router)
    return _ROUTER[0]


_GOSSIP_COUNT = [0]


def fuzz_gossip_rpc(data: bytes) -> None:
    """A pubsub RPC frame: the decoder, then the router handling it."""
    rpc = decode_rpc(data)
    _check(decode_rpc(encode_rpc(rpc)) == rpc, "gossip RPC does not round-trip")
    _GOSSIP_COUNT[0] += 1
    now = _GOSSIP_COUNT[0] * 0.01
    router = _router()
    router.handle_rpc(_GOSSIP_PEER, rpc, now)
    router.poll(now)
    if _GOSSIP_COUNT[0] % 2000 == 0:  # bounded state between inputs
        _ROUTER.clear()


def _index() -> SyncIndex:
    return SyncIndex(
        Item(NOW - i * 60, hashlib.sha256(b"%d" % i).digest()) for i in range(0, 300, 2)
    )


_SYNC_INDEX = _index()


def fuzz_sync_frame(data: bytes) -> None:
    """A range-reconciliation frame, as responder and as initiator."""
    responder = Reconciler(_SYNC_INDEX, frame_size_limit=4096, max_rounds=4)
    answer = responder.reconcile(data)
    _check(answer is None or len(answer) <= 4096, "a sync answer exceeds the frame limit")
    initiator = Reconciler(_SYNC_INDEX, frame_size_limit=4096, max_rounds=4)
    initiator.initiate()
    answer = initiator.reconcile(data)
    _check(answer is None or len(answer) <= 4096, "a sync answer exceeds the frame limit")


# -- access -------------------------------------------------------------------------------


def fuzz_access_request(data: bytes) -> None:
    """A signed access request."""
    req, _env = open_request(data)
    _check(type(req).decode_body(req.encode_body()) == req, "access request round-trip")
    verify_request(data, TRUST, NOW)


def fuzz_trace_entry(data: bytes) -> None:
    """A signed trace entry (one hop of a request's route)."""
    entry, _env = open_trace_entry(data)
    _check(type(entry).decode_body(entry.encode_body()) == entry, "trace entry round-trip")


def fuzz_grant(data: bytes) -> None:
    """A signed grant: the unverified decode and the full (deep) verification."""
    try:
        grant = decode_grant_unverified(data)
    except DatanetError:
        pass
    else:
        _check(type(grant).decode_body(grant.encode_body()) == grant, "grant round-trip")
    verify_grant(data, TRUST, NOW + 60, deep=True)


def fuzz_denial(data: bytes) -> None:
    """A signed denial."""
    denial, _env = open_denial(data)
    _check(type(denial).decode_body(denial.encode_body()) == denial, "denial round-trip")
    verify_denial(data, TRUST, NOW + 60)


def fuzz_grant_revocation(data: bytes) -> None:
    """A signed grant revocation."""
    rev, _env = open_grant_revocation(data)
    _check(type(rev).decode_body(rev.encode_body()) == rev, "grant revocation round-trip")
    verify_grant_revocation(data, TRUST, NOW + 60)


def fuzz_access_frame(data: bytes) -> None:
    """An access hop's frame: the RPC frame decode, the frame checks, request and trace."""
    frame = unpack(data, max_size=64 * 1024, max_items=64 * 1024)
    if not isinstance(frame, dict):
        return
    raw, trace = frame.get("req"), frame.get("trace")
    if not isinstance(raw, bytes) or not isinstance(trace, list) or len(trace) > MAX_HOPS:
        return
    if not all(isinstance(t, bytes) for t in trace):
        return
    verified = verify_request(raw, TRUST, NOW, at=NOW)
    verify_trace(verified, tuple(trace), TRUST, NOW)


# -- audit and witnesses ------------------------------------------------------------------


def fuzz_audit_entry(data: bytes) -> None:
    """An audit log entry (a leaf)."""
    entry = decode_entry(data)
    _check(isinstance(entry, AuditEntry), "decode_entry returned something else")
    _check(decode_entry(entry.encode()) == entry, "audit entry does not round-trip")


def fuzz_tree_head(data: bytes) -> None:
    """A signed tree head."""
    head, _env = open_tree_head(data)
    _check(type(head).decode_body(head.encode_body()) == head, "tree head round-trip")
    verify_tree_head(data, TRUST, NOW)


def fuzz_cosignature(data: bytes) -> None:
    """A witness's cosignature of a head."""
    cosig, _env = open_cosignature(data)
    _check(type(cosig).decode_body(cosig.encode_body()) == cosig, "cosignature round-trip")
    verify_cosignature(data, TRUST, NOW)


def fuzz_receipt(data: bytes) -> None:
    """A receipt (head, inclusion proof, entry, cosignatures)."""
    receipt = decode_receipt(data)
    _check(decode_receipt(receipt.encode()) == receipt, "receipt does not round-trip")
    verify_receipt(data, TRUST, NOW)


def fuzz_audit_proof(data: bytes) -> None:
    """Consistency and inclusion proofs with every part taken from the peer."""
    obj = unpack_map(data, max_size=16 * 1024, max_items=256)
    proof: Any = obj.get("proof", [])
    if not isinstance(proof, list):
        return
    if "first" in obj:
        verify_consistency(obj.get("first"), obj.get("last"), obj.get("old"), obj.get("new"), proof)  # type: ignore[arg-type]
    else:
        verify_inclusion(obj.get("leaf"), obj.get("index"), obj.get("size"), proof, obj.get("root"))  # type: ignore[arg-type]


def fuzz_audit_frame(data: bytes) -> None:
    """A request on ``/datanet/audit/1.0.0`` (the RPC frame decode, then the op checks)."""
    request = unpack(data, max_size=16 * 1024, max_items=16 * 1024)
    checked = _check_request(request)
    _check(
        checked.get("op") in ("announce", "head", "consistency", "cosign"), "unknown op accepted"
    )


_WITNESS: list[Witness] = []


def fuzz_witness_head(data: bytes) -> None:
    """An announced head as a witness sees it: verify, then the witness state machine."""
    verified = verify_tree_head(data, TRUST, NOW)
    if not _WITNESS or len(_WITNESS[0]) > 64:
        _WITNESS[:] = [Witness(NODE_B.peer_id.to_bytes(), str(NODE_B.peer_id), max_logs=64)]
    head = verified.head
    witness = _WITNESS[0]
    witness.head_seen(
        head.node.to_bytes(),
        str(verified.certificate.org),
        head.size,
        head.root,
        head.timestamp,
        raw_head=data,
        from_peer=NODE_A.peer_id.to_bytes(),
        now=float(NOW),
    )
    witness.tick(float(NOW) + 1)


# -- files and API bodies -----------------------------------------------------------------


def fuzz_key_file(data: bytes) -> None:
    """A key file on disk (no passphrase: an encrypted one stops at PassphraseRequired)."""
    key = decode_key_file(data)
    _check(len(key.public_key) == 32, "a key file decoded to a malformed key")


_JSON_OPS = [op for op in OPERATIONS if op.body == "json"]


_JSON_OPS_BY_PATH = {op.path.encode(): op for op in _JSON_OPS}


def fuzz_api_body(data: bytes) -> None:
    """An HTTP API request body: ``<path>\\0<body>`` names the endpoint (so seeds survive
    new endpoints); anything else picks it by the first byte, the rest is the body."""
    path, sep, body = data.partition(b"\0")
    op = _JSON_OPS_BY_PATH.get(path) if sep else None
    if op is None:
        if not data:
            return
        op, body = _JSON_OPS[data[0] % len(_JSON_OPS)], data[1:]
    args = check_args(op.fields, _decode_json_body(body))
    _check(isinstance(args, dict), "check_args returned something else")
    json.dumps(args, default=str)


_CONFIG_DIR = Path(tempfile.mkdtemp(prefix="fuzz-config-"))


def fuzz_config_file(data: bytes) -> None:
    """The daemon's config file (``config.toml``), read from a real file."""
    path = _CONFIG_DIR / "config.toml"
    path.write_bytes(data)
    config = load_config(path)
    path.write_text(render_config(config), encoding="utf-8")
    _check(load_config(path) == config, "a config does not survive render_config")


def fuzz_identify(data: bytes) -> None:
    """A peer's libp2p identify answer (protobuf from any libp2p implementation)."""
    parsed = parse_identify(data, 8)
    if parsed is not None:
        protocols, addrs = parsed
        _check(len(addrs) <= 8 and all(isinstance(a, str) for a in addrs), "identify addrs")
        _check(all(isinstance(p, str) and len(p) <= 256 for p in protocols), "identify protos")


_PARSERS = sorted(
    (name, fn)
    for name, fn in ((n, getattr(results, n)) for n in results.__all__)
    if name.startswith("parse_") and name != "parse_watch_event" and callable(fn)
)


_PARSERS_BY_NAME = {name.encode(): fn for name, fn in _PARSERS}


def fuzz_api_response(data: bytes) -> None:
    """A daemon's JSON answer as the client parses it: ``<parser name>\\0<json>`` names the
    parser (so seeds survive new parsers); anything else picks it by the first byte."""
    name, sep, body = data.partition(b"\0")
    parse = _PARSERS_BY_NAME.get(name) if sep else None
    if parse is None:
        if not data:
            return
        parse, body = _PARSERS[data[0] % len(_PARSERS)][1], data[1:]
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return
    if isinstance(doc, dict):
        parse(doc)


def fuzz_watch_event(data: bytes) -> None:
    """A ``/watch`` event stream as the client reads it: SSE lines, then each event."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    decoder = results.SseDecoder()
    for line in text.split("\n"):
        item = decoder.feed(line)
        if item is not None:
            results.parse_watch_event(*item)


def _body_target(base: Callable[[bytes], None], seed: bytes) -> Callable[[bytes], None]:
    tag, _body, signer, chain = envelope_parts(seed)
    key = SIGNERS[signer]

    def fuzz_body(data: bytes) -> None:
        base(seal(key, tag, data, chain).encode())

    fuzz_body.__doc__ = (
        f"The body of {tag} records, signed by the genuine signer, through {base.__name__}."
    )
    return fuzz_body


TARGETS: dict[str, Callable[[bytes], None]] = {
    name.removeprefix("fuzz_"): fn
    for name, fn in sorted(globals().items())
    if name.startswith("fuzz_") and callable(fn)
}
TARGETS.update(
    {f"{name}_body": _body_target(TARGETS[name], seeds(name)[0]) for name in BODY_TARGETS}
)
