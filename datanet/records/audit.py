"""The audit transparency log's formats: entries, RFC 9162 Merkle trees, signed heads, receipts.

Each node keeps an append-only log of what it did (publications, access requests
and decisions, approvals, certificate and trust changes) in the manner of
Certificate Transparency (RFC 9162 section 2.1): the log is a Merkle tree over
the encoded entries, the node signs *tree heads* (size, root, time), and anyone
can check with nothing but hashes that an entry is in a head (inclusion proof)
and that a later head extends an earlier one (consistency proof). Other
organizations' nodes *cosign* heads they have checked; a *receipt* bundles a
signed head, an entry and its inclusion proof so a requester can keep offline
evidence of a decision.

Hashing (RFC 9162 2.1.1): ``leaf = SHA-256(0x00 || entry bytes)``,
``node = SHA-256(0x01 || left || right)``, the empty tree's root is
``SHA-256("")``, and a tree of ``n > 1`` leaves splits at the largest power of
two below ``n``. Proofs list sibling hashes from the leaf up.

Signed records (envelopes of :mod:`identity.envelope`, signed by a node key with
its membership chain, like descriptors):

* ``dn/audit-head/v1``: the log node's tree head ``{v, node, size, root, ts}``.
* ``dn/audit-cosign/v1``: a witness node's statement that it checked the log
  node's head ``{v, witness, log, size, root, ts, at}`` (``ts`` is the head's
  time, ``at`` when the witness checked it).

Invariants:
* Pure: no clock, no I/O; ``now`` is passed in. Hash functions are SHA-256 only.
* Every decoder is bounded (entries 8 KiB, heads and cosignatures 6 KiB, receipts
  80 KiB, proofs 128 hashes) and raises only :class:`~datanet.errors.DatanetError`
  subclasses (``DecodeError``/``RecordTooLarge`` for malformed bytes).
* An entry has exactly one encoding (canonical MessagePack, map keys sorted in
  ``details``), checked on decode, so equal entries are equal leaves.
* Proof verifiers raise :class:`~datanet.errors.VerificationError` on a proof that
  does not hold and :class:`~datanet.errors.InvalidInput` on malformed arguments;
  they never return a value to be forgotten.
* A head or cosignature is evidence, not a live record: its certificate must have
  been valid at the time it carries (not revoked now, trusted now), and that time
  may not lie more than ``MAX_CLOCK_SKEW`` ahead of ``now``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

from datanet.errors import (
    CertificateError,
    DecodeError,
    InvalidInput,
    RecordTooLarge,
    ScopeError,
    VerificationError,
)
from datanet.records.descriptor import MAX_CLOCK_SKEW
from datanet.records.fields import MAX_U63, check_int
from identity.certs import MembershipCertificate, TrustStore, parse_certificate
from identity.encoding import field as get_field
from identity.encoding import pack, unpack, unpack_map
from identity.envelope import SignedEnvelope, open_envelope, seal
from identity.keys import KeyPair, OrgId, PeerId

__all__ = [
    "AUDIT_COSIGN_TAG",
    "AUDIT_HEAD_TAG",
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_COSIGNATURES",
    "MAX_COSIGN_SIZE",
    "MAX_DETAILS_SIZE",
    "MAX_ENTRY_SIZE",
    "MAX_HEAD_SIZE",
    "MAX_INLINE_RECORD",
    "MAX_PROOF_HASHES",
    "MAX_RECEIPT_SIZE",
    "AuditEntry",
    "Cosignature",
    "EntryKind",
    "JsonValue",
    "MerkleFrontier",
    "Receipt",
    "TreeHead",
    "VerifiedCosignature",
    "VerifiedReceipt",
    "VerifiedTreeHead",
    "consistency_path",
    "consistency_proof",
    "cosign_head",
    "decode_entry",
    "decode_receipt",
    "inclusion_path",
    "inclusion_proof",
    "leaf_hash",
    "make_receipt",
    "merkle_root",
    "node_hash",
    "open_cosignature",
    "open_tree_head",
    "sign_tree_head",
    "verify_consistency",
    "verify_cosignature",
    "verify_inclusion",
    "verify_receipt",
    "verify_tree_head",
]

AUDIT_HEAD_TAG = "dn/audit-head/v1"
AUDIT_COSIGN_TAG = "dn/audit-cosign/v1"
BODY_VERSION = 1
HASH_SIZE = 32
#: The root of the empty tree (RFC 9162 2.1.1: the hash of the empty string).
EMPTY_ROOT = hashlib.sha256(b"").digest()
#: Referenced signed bytes up to this size are kept in the entry; larger ones by SHA-256.
MAX_INLINE_RECORD = 4096
#: The encoded ``details`` map of an entry.
MAX_DETAILS_SIZE = 1024
#: Nesting depth of ``details`` (the top map is depth 1).
MAX_DETAILS_DEPTH = 4
#: The whole encoded entry (an inline record, details and the framing).
MAX_ENTRY_SIZE = 8 * 1024
#: A signed tree head or cosignature envelope (a body of ~100 bytes plus the chain).
MAX_HEAD_SIZE = 6 * 1024
MAX_COSIGN_SIZE = 6 * 1024
#: Hashes in one proof: 64 suffice for any tree of up to 2**63 leaves; consistency
#: proofs may need about twice the tree height.
MAX_PROOF_HASHES = 128
#: Cosignatures a receipt may carry.
MAX_COSIGNATURES = 8
#: A whole receipt: head, entry, proof and cosignatures.
MAX_RECEIPT_SIZE = 80 * 1024

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

JsonValue: TypeAlias = "bool | int | str | list[JsonValue] | dict[str, JsonValue] | None"
"""What an entry's ``details`` may hold: JSON without floats."""


class EntryKind(StrEnum):
    """What an audit entry records."""

    PUBLISH = "publish"
    WITHDRAW = "withdraw"
    REQUEST_RECEIVED = "request_received"
    REQUEST_FORWARDED = "request_forwarded"
    REQUEST_ANSWERED = "request_answered"
    DECISION = "decision"
    GRANT = "grant"
    GRANT_REVOKED = "grant_revoked"
    APPROVAL = "approval"
    DENIAL = "denial"
    CERT_CHANGE = "cert_change"
    TRUST_CHANGE = "trust_change"


# ---------------------------------------------------------------------------
# entries


def _kind(value: object) -> EntryKind:
    if not isinstance(value, str):
        raise InvalidInput("an audit entry kind is text")
    try:
        return EntryKind(value)
    except ValueError:
        raise InvalidInput(f"unknown audit entry kind {value[:40]!r}") from None


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _check_json(value: object, depth: int, where: str) -> JsonValue:
    """Check (and canonicalize: dict keys sorted) one JSON-safe details value."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not -MAX_U63 <= value <= MAX_U63:
            raise InvalidInput(f"details{where} is out of the 64-bit range")
        return value
    if depth >= MAX_DETAILS_DEPTH:
        raise InvalidInput(f"details{where} nests deeper than {MAX_DETAILS_DEPTH} levels")
    if isinstance(value, list | tuple):
        return [_check_json(v, depth + 1, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, JsonValue] = {}
        for key in sorted(value, key=lambda k: k if isinstance(k, str) else ""):
            if not isinstance(key, str):
                raise InvalidInput(f"details{where} has a non-text key")
            out[key] = _check_json(value[key], depth + 1, f"{where}.{key}")
        return out
    raise InvalidInput(
        f"details{where} must be null, a boolean, an integer, text, a list or a map, "
        f"not {type(value).__name__}"
    )


def _check_details(details: object) -> dict[str, JsonValue]:
    if not isinstance(details, Mapping):
        raise InvalidInput("details must be a map")
    checked = _check_json(dict(details), 0, "")
    assert isinstance(checked, dict)  # a dict in, a dict out
    size = len(pack(checked))
    if size > MAX_DETAILS_SIZE:
        raise RecordTooLarge(f"details are {size} bytes encoded; the limit is {MAX_DETAILS_SIZE}")
    return checked


@dataclass(frozen=True, eq=True)
class AuditEntry:
    """One thing a node did, as it is logged (one leaf of the tree).

    Build entries with :meth:`create`, which decides between keeping the signed
    bytes (``record``) and keeping only their SHA-256 (``record_hash``).

    Args:
        kind: what happened.
        timestamp: when (Unix seconds).
        record: the exact signed bytes the entry refers to (at most 4 KiB), or None.
        record_hash: the SHA-256 of the signed bytes when they were larger, or None.
        details: small JSON-safe facts (ids, peer, reason); integers only, no
            floats; at most 1 KiB encoded, 4 levels deep. Keys are kept sorted.

    Raises:
        InvalidInput: a field is malformed, or both ``record`` and ``record_hash`` are set.
        RecordTooLarge: ``record`` or ``details`` exceed their limits.
    """

    kind: EntryKind
    timestamp: int
    record: bytes | None = None
    record_hash: bytes | None = None
    details: dict[str, JsonValue] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _kind(self.kind))
        check_int("timestamp", self.timestamp)
        if self.record is not None:
            if not isinstance(self.record, bytes):
                raise InvalidInput("record must be bytes")
            if len(self.record) > MAX_INLINE_RECORD:
                raise RecordTooLarge(
                    f"record is {len(self.record)} bytes; larger than {MAX_INLINE_RECORD} "
                    "is kept by hash (use AuditEntry.create)"
                )
            if self.record_hash is not None:
                raise InvalidInput("an entry holds either the record or its hash, not both")
        if self.record_hash is not None and (
            not isinstance(self.record_hash, bytes) or len(self.record_hash) != HASH_SIZE
        ):
            raise InvalidInput("record_hash must be 32 bytes (SHA-256)")
        object.__setattr__(self, "details", _check_details(self.details))

    @classmethod
    def create(
        cls,
        kind: EntryKind | str,
        timestamp: int,
        record: bytes | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """An entry referring to ``record``: kept verbatim up to 4 KiB, by SHA-256 beyond.

        Raises:
            InvalidInput, RecordTooLarge: as the constructor.
        """
        entry_kind = _kind(kind)
        info = dict(details or {})
        if record is not None and len(record) > MAX_INLINE_RECORD:
            return cls(entry_kind, timestamp, None, _sha256(bytes(record)), info)
        return cls(entry_kind, timestamp, None if record is None else bytes(record), None, info)

    @property
    def subject_hash(self) -> bytes | None:
        """SHA-256 of the signed bytes the entry refers to (None: it refers to none)."""
        if self.record is not None:
            return _sha256(self.record)
        return self.record_hash

    def refers_to(self, data: bytes) -> bool:
        """Whether ``data`` are the signed bytes this entry refers to."""
        if self.record is not None:
            return self.record == data
        return self.record_hash is not None and self.record_hash == _sha256(data)

    def encode(self) -> bytes:
        """The entry's one encoding: the bytes that become its leaf."""
        return pack(
            {
                "v": BODY_VERSION,
                "k": str(self.kind),
                "t": self.timestamp,
                "r": self.record,
                "h": self.record_hash,
                "d": self.details,
            }
        )

    def leaf_hash(self) -> bytes:
        """The entry's leaf hash (RFC 9162: ``SHA-256(0x00 || encode())``)."""
        return leaf_hash(self.encode())

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (bytes as lowercase hex) for exports and the HTTP API."""
        return {
            "kind": str(self.kind),
            "timestamp": self.timestamp,
            "record": None if self.record is None else self.record.hex(),
            "record_hash": None if self.subject_hash is None else self.subject_hash.hex(),
            "details": self.details,
        }


def decode_entry(data: bytes) -> AuditEntry:
    """Parse entry bytes (untrusted: from a peer, a receipt or the database).

    Raises:
        RecordTooLarge: ``data`` or a field exceeds its limit.
        DecodeError: ``data`` is not an entry in its one canonical encoding.
    """
    obj = unpack_map(data, max_size=MAX_ENTRY_SIZE, max_items=64)
    version = obj.get("v")
    if type(version) is not int or version != BODY_VERSION:
        raise DecodeError(f"unsupported audit entry version {version!r}")
    record = obj.get("r")
    record_hash = obj.get("h")
    if record is not None and not isinstance(record, bytes):
        raise DecodeError("audit entry field 'r' must be bytes or nil")
    if record_hash is not None and not isinstance(record_hash, bytes):
        raise DecodeError("audit entry field 'h' must be bytes or nil")
    try:
        entry = AuditEntry(
            kind=get_field(obj, "k", str),
            timestamp=get_field(obj, "t", int),
            record=record,
            record_hash=record_hash,
            details=get_field(obj, "d", dict),
        )
    except DecodeError:
        raise
    except InvalidInput as exc:
        raise DecodeError(f"invalid audit entry: {exc}") from None
    if entry.encode() != bytes(data):
        raise DecodeError("audit entry is not in its canonical encoding")
    return entry


# ---------------------------------------------------------------------------
# RFC 9162 hashing


def leaf_hash(entry: bytes) -> bytes:
    """``SHA-256(0x00 || entry)``: the hash of one leaf."""
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleFrontier:
    """The right edge of a growing tree: one complete subtree per set bit of its size.

    Appending a leaf merges equal-sized subtrees, the way a binary counter
    carries; every merge is a newly completed subtree that a log may store for
    O(log n) proofs. The root folds the subtrees from the right, which is exactly
    RFC 9162's MTH. O(log n) memory, amortized one node hash per leaf.

    Args:
        size: the number of leaves already in the tree.
        subtrees: their complete subtrees' hashes, largest (leftmost) first, one
            per set bit of ``size``, high bit first.

    Raises:
        InvalidInput: ``subtrees`` does not match ``size``.
    """

    __slots__ = ("_levels", "_size", "_stack")

    def __init__(self, size: int = 0, subtrees: Sequence[bytes] = ()) -> None:
        levels = [b for b in range(size.bit_length() - 1, -1, -1) if size >> b & 1]
        if len(levels) != len(subtrees) or any(len(h) != HASH_SIZE for h in subtrees):
            raise InvalidInput(f"a tree of {size} leaves has {len(levels)} complete subtrees")
        self._size = size
        self._levels = levels
        self._stack = list(subtrees)

    @staticmethod
    def subtree_spans(size: int) -> list[tuple[int, int]]:
        """``(level, index)`` of the complete subtrees a tree of ``size`` leaves ends in."""
        spans = []
        start = 0
        for b in range(size.bit_length() - 1, -1, -1):
            if size >> b & 1:
                spans.append((b, start >> b))
                start += 1 << b
        return spans

    @property
    def size(self) -> int:
        """Leaves appended so far."""
        return self._size

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; returns the subtrees it completed as ``(level, index, hash)``.

        Levels start at 1 (level 0 is the leaf itself); ``index`` counts subtrees
        of that level from the left, so the subtree covers leaves
        ``[index * 2**level, (index + 1) * 2**level)``.
        """
        done: list[tuple[int, int, bytes]] = []
        stack, levels = self._stack, self._levels
        h, level = leaf, 0
        n = self._size
        while levels and levels[-1] == level:
            h = node_hash(stack.pop(), h)
            levels.pop()
            level += 1
            done.append((level, n >> level, h))
        stack.append(h)
        levels.append(level)
        self._size = n + 1
        return done

    def root(self) -> bytes:
        """The tree's root hash (``EMPTY_ROOT`` when empty)."""
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            h = node_hash(left, h)
        return h

    def copy(self) -> MerkleFrontier:
        """An independent copy (append to it without touching this one)."""
        return MerkleFrontier(self._size, list(self._stack))


def merkle_root(leaf_hashes: Iterable[bytes]) -> bytes:
    """RFC 9162's MTH over leaf hashes (``EMPTY_ROOT`` for none)."""
    frontier = MerkleFrontier()
    for h in leaf_hashes:
        frontier.append(h)
    return frontier.root()


#: ``subtree(start, end)``: the MTH of leaves ``[start, end)`` of a tree.
SubtreeHash = Callable[[int, int], bytes]


def inclusion_path(index: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of the first ``size`` leaves.

    ``subtree`` supplies the hashes; the ranges it is asked for are the siblings
    on the path, so a log that keeps complete subtrees answers each in O(log n).

    Raises:
        InvalidInput: ``index`` is not below ``size``.
    """
    _check_size("size", size)
    if not 0 <= index < size:
        raise InvalidInput(f"leaf {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    start, n, m = 0, size, index
    while n > 1:
        k = _split(n)
        if m < k:
            path.append(subtree(start + k, start + n))
            n = k
        else:
            path.append(subtree(start, start + k))
            start, m, n = start + k, m - k, n - k
    path.reverse()
    return path


def consistency_path(size1: int, size2: int, subtree: SubtreeHash) -> list[bytes]:
    """The consistency proof between the trees of the first ``size1`` and ``size2`` leaves.

    Empty when ``size1`` is 0 or equals ``size2`` (nothing to prove).

    Raises:
        InvalidInput: not ``0 <= size1 <= size2``.
    """
    _check_size("size1", size1)
    _check_size("size2", size2)
    if size1 > size2:
        raise InvalidInput(f"size1 ({size1}) is larger than size2 ({size2})")
    if size1 in (0, size2):
        return []
    path: list[bytes] = []
    start, n, m, whole = 0, size2, size1, True
    while m != n:
        k = _split(n)
        if m <= k:
            path.append(subtree(start + k, start + n))
            n = k
        else:
            path.append(subtree(start, start + k))
            start, m, n, whole = start + k, m - k, n - k, False
    if not whole:
        path.append(subtree(start, start + n))
    path.reverse()
    return path


def _list_subtree(leaves: Sequence[bytes]) -> SubtreeHash:
    def subtree(start: int, end: int) -> bytes:
        return merkle_root(leaves[start:end])

    return subtree


def inclusion_proof(
    leaf_hashes: Sequence[bytes], index: int, size: int | None = None
) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the first ``size`` (default: all) leaves.

    Raises:
        InvalidInput: ``index`` or ``size`` is out of range.
    """
    size = len(leaf_hashes) if size is None else size
    if size > len(leaf_hashes):
        raise InvalidInput(f"size {size} is larger than the {len(leaf_hashes)} leaves given")
    return inclusion_path(index, size, _list_subtree(leaf_hashes))


def consistency_proof(
    leaf_hashes: Sequence[bytes], size1: int, size2: int | None = None
) -> list[bytes]:
    """The consistency proof from the first ``size1`` to the first ``size2`` (default: all) leaves.

    Raises:
        InvalidInput: the sizes are out of range.
    """
    size2 = len(leaf_hashes) if size2 is None else size2
    if size2 > len(leaf_hashes):
        raise InvalidInput(f"size {size2} is larger than the {len(leaf_hashes)} leaves given")
    return consistency_path(size1, size2, _list_subtree(leaf_hashes))


def _check_size(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_U63:
        raise InvalidInput(f"{name} must be an integer between 0 and {MAX_U63}")
    return value


def _check_hash(name: str, value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise InvalidInput(f"{name} must be a {HASH_SIZE}-byte hash")
    return value


def _check_proof(proof: object) -> list[bytes]:
    if not isinstance(proof, list | tuple):
        raise InvalidInput("a proof must be a list of hashes")
    if len(proof) > MAX_PROOF_HASHES:
        raise RecordTooLarge(f"a proof has at most {MAX_PROOF_HASHES} hashes, got {len(proof)}")
    return [_check_hash(f"proof[{i}]", h) for i, h in enumerate(proof)]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` leaves whose root is ``root``.

    RFC 9162 2.1.3.2: walk up from the leaf, taking each proof hash as the left or
    right sibling as the index and the last index of the level dictate.

    Raises:
        VerificationError: the proof does not hold.
        InvalidInput, RecordTooLarge: an argument is malformed (wrong hash length,
            too many hashes, negative numbers).
    """
    _check_hash("leaf", leaf)
    _check_hash("root", root)
    _check_size("index", index)
    _check_size("size", size)
    hashes = _check_proof(proof)
    if index >= size:
        raise VerificationError(f"leaf {index} cannot be in a tree of {size} leaves")
    fn, sn, r = index, size - 1, leaf
    for p in hashes:
        if sn == 0:
            raise VerificationError("the inclusion proof is longer than the tree is high")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("the inclusion proof is shorter than the tree is high")
    if r != root:
        raise VerificationError(f"leaf {index} is not in the tree of size {size} with that root")


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (``size2``, ``root2``) extends the tree (``size1``, ``root1``).

    RFC 9162 2.1.4.2. Equal sizes need an empty proof and equal roots; size 0 (the
    empty tree, root ``EMPTY_ROOT``) is extended by every tree, with an empty proof.

    Raises:
        VerificationError: the proof does not hold (or ``size1 > size2``: a shrunk log).
        InvalidInput, RecordTooLarge: an argument is malformed.
    """
    _check_size("size1", size1)
    _check_size("size2", size2)
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    hashes = _check_proof(proof)
    if size1 > size2:
        raise VerificationError(f"the log shrank from {size1} to {size2} entries")
    if size1 == 0:
        if root1 != EMPTY_ROOT or hashes:
            raise VerificationError("an empty tree has the empty root and an empty proof")
        return
    if size1 == size2:
        if hashes:
            raise VerificationError("a tree is consistent with itself by an empty proof")
        if root1 != root2:
            raise VerificationError(f"two different roots for the same size {size1} (a fork)")
        return
    if not hashes:
        raise VerificationError("the consistency proof is empty")
    if size1 & (size1 - 1) == 0:  # an exact power of two: root1 is the first subtree
        hashes = [root1, *hashes]
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = hashes[0]
    for c in hashes[1:]:
        if sn == 0:
            raise VerificationError("the consistency proof is longer than the tree is high")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("the consistency proof is shorter than the tree is high")
    if fr != root1:
        raise VerificationError(f"the proof does not lead to the root of size {size1}")
    if sr != root2:
        raise VerificationError(f"the tree of size {size2} does not extend the one of size {size1}")


# ---------------------------------------------------------------------------
# signed tree heads


@dataclass(frozen=True)
class TreeHead:
    """A log's state at one moment: ``size`` entries with root ``root``, at ``timestamp``.

    Raises:
        InvalidInput: a field is malformed.
    """

    node: PeerId
    size: int
    root: bytes
    timestamp: int

    def __post_init__(self) -> None:
        if not isinstance(self.node, PeerId):
            raise InvalidInput("node must be a PeerId")
        check_int("size", self.size)
        _check_hash("root", self.root)
        check_int("timestamp", self.timestamp)

    def encode_body(self) -> bytes:
        """The exact body bytes the log node signs."""
        return pack(
            {
                "v": BODY_VERSION,
                "node": self.node.public_key,
                "size": self.size,
                "root": self.root,
                "ts": self.timestamp,
            }
        )

    @classmethod
    def decode_body(cls, body: bytes) -> TreeHead:
        """Parse a head body (no signature check).

        Raises:
            DecodeError, RecordTooLarge: the body is not a tree head.
        """
        obj = unpack_map(body, max_size=MAX_HEAD_SIZE, max_items=16)
        _check_version(obj, "tree head")
        try:
            return cls(
                node=PeerId(get_field(obj, "node", bytes)),
                size=get_field(obj, "size", int),
                root=get_field(obj, "root", bytes),
                timestamp=get_field(obj, "ts", int),
            )
        except DecodeError:
            raise
        except InvalidInput as exc:
            raise DecodeError(f"invalid tree head: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (root as lowercase hex)."""
        return {
            "node": str(self.node),
            "size": self.size,
            "root": self.root.hex(),
            "timestamp": self.timestamp,
        }


def _check_version(obj: Mapping[str, Any], what: str) -> None:
    version = obj.get("v")
    if type(version) is not int or version != BODY_VERSION:
        raise DecodeError(f"unsupported {what} version {version!r}")


def _check_own_chain(key: KeyPair, chain: Sequence[bytes]) -> None:
    if len(chain) != 1:
        raise CertificateError(f"expected a chain of one certificate, got {len(chain)}")
    cert = parse_certificate(chain[0])
    if cert.node != key.peer_id:
        raise ScopeError(f"certificate is for node {cert.node}, not {key.peer_id}")


@dataclass(frozen=True)
class VerifiedTreeHead:
    """A head that passed :func:`verify_tree_head`.

    Attributes:
        head: the decoded head.
        certificate: the log node's membership certificate.
        raw: the exact envelope bytes (ship these, never re-encode).
    """

    head: TreeHead
    certificate: MembershipCertificate
    raw: bytes

    @property
    def org(self) -> OrgId:
        """The log node's organization."""
        return self.certificate.org


def sign_tree_head(head: TreeHead, key: KeyPair, chain: Sequence[bytes]) -> bytes:
    """Sign ``head`` with the log node's key; returns the envelope bytes.

    Raises:
        ScopeError: ``key`` is not ``head.node``, or the certificate is for another node.
        CertificateError, DecodeError, SignatureError: the chain is unusable.
        RecordTooLarge: the envelope exceeds ``MAX_HEAD_SIZE``.
    """
    if key.peer_id != head.node:
        raise ScopeError(f"tree head names node {head.node}, but is signed by {key.peer_id}")
    _check_own_chain(key, chain)
    data = seal(key, AUDIT_HEAD_TAG, head.encode_body(), chain).encode()
    if len(data) > MAX_HEAD_SIZE:
        raise RecordTooLarge(f"the signed head is {len(data)} bytes; the limit is {MAX_HEAD_SIZE}")
    return data


def open_tree_head(data: bytes) -> tuple[TreeHead, SignedEnvelope]:
    """Decode a signed head and check its signature and that the signer is its ``node``.

    Raises:
        RecordTooLarge, DecodeError: not a tree head within limits.
        SignatureError: the signature does not verify.
        ScopeError: the signer is not the head's ``node``.
    """
    env = open_envelope(data, tag=AUDIT_HEAD_TAG, max_size=MAX_HEAD_SIZE)
    head = TreeHead.decode_body(env.body)
    if env.signer != head.node.public_key:
        raise ScopeError(f"tree head names node {head.node}, but is signed by {PeerId(env.signer)}")
    return head, env


def _check_evidence_time(what: str, at: int, now: int) -> None:
    if at > now + MAX_CLOCK_SKEW:
        raise VerificationError(f"{what} is dated in the future ({at} > {now})")


def verify_tree_head(raw: bytes, trust: TrustStore, now: int) -> VerifiedTreeHead:
    """Fully verify a signed tree head from anywhere.

    The certificate must have been valid at the head's own time (a head stays
    evidence after the certificate expires), must not be revoked, and its org
    must be acceptable to ``trust``; the head may not be dated in the future.

    Raises:
        RecordTooLarge, DecodeError: not a tree head within limits.
        SignatureError: the signature does not verify.
        ScopeError: the signer is not ``node``, or the certificate is for another node.
        CertificateError (and subclasses): the certificate is unacceptable.
        VerificationError: the head is dated more than ``MAX_CLOCK_SKEW`` ahead of ``now``.
    """
    head, env = open_tree_head(raw)
    cert = trust.verify_chain(env.chain, now=head.timestamp, node=head.node)
    _check_evidence_time("the tree head", head.timestamp, now)
    return VerifiedTreeHead(head, cert, bytes(raw))


# ---------------------------------------------------------------------------
# witness cosignatures


@dataclass(frozen=True)
class Cosignature:
    """A witness node's statement that it checked the log node's head (size, root, timestamp).

    Args:
        witness: the witnessing node.
        log: the log's node.
        size, root, timestamp: the head's fields, exactly.
        witnessed_at: when the witness checked it (Unix seconds).

    Raises:
        InvalidInput: a field is malformed, or the witness is the log node itself.
    """

    witness: PeerId
    log: PeerId
    size: int
    root: bytes
    timestamp: int
    witnessed_at: int

    def __post_init__(self) -> None:
        if not isinstance(self.witness, PeerId) or not isinstance(self.log, PeerId):
            raise InvalidInput("witness and log must be PeerIds")
        if self.witness == self.log:
            raise InvalidInput("a log node cannot witness its own head")
        check_int("size", self.size)
        _check_hash("root", self.root)
        check_int("timestamp", self.timestamp)
        check_int("witnessed_at", self.witnessed_at)

    def matches(self, head: TreeHead) -> bool:
        """Whether this cosigns exactly ``head``."""
        return (self.log, self.size, self.root, self.timestamp) == (
            head.node,
            head.size,
            head.root,
            head.timestamp,
        )

    def encode_body(self) -> bytes:
        """The exact body bytes the witness signs."""
        return pack(
            {
                "v": BODY_VERSION,
                "witness": self.witness.public_key,
                "log": self.log.public_key,
                "size": self.size,
                "root": self.root,
                "ts": self.timestamp,
                "at": self.witnessed_at,
            }
        )

    @classmethod
    def decode_body(cls, body: bytes) -> Cosignature:
        """Parse a cosignature body (no signature check).

        Raises:
            DecodeError, RecordTooLarge: the body is not a cosignature.
        """
        obj = unpack_map(body, max_size=MAX_COSIGN_SIZE, max_items=16)
        _check_version(obj, "cosignature")
        try:
            return cls(
                witness=PeerId(get_field(obj, "witness", bytes)),
                log=PeerId(get_field(obj, "log", bytes)),
                size=get_field(obj, "size", int),
                root=get_field(obj, "root", bytes),
                timestamp=get_field(obj, "ts", int),
                witnessed_at=get_field(obj, "at", int),
            )
        except DecodeError:
            raise
        except InvalidInput as exc:
            raise DecodeError(f"invalid cosignature: {exc}") from None


@dataclass(frozen=True)
class VerifiedCosignature:
    """A cosignature that passed :func:`verify_cosignature`.

    Attributes:
        cosignature: the decoded statement.
        certificate: the witness node's membership certificate.
        raw: the exact envelope bytes.
    """

    cosignature: Cosignature
    certificate: MembershipCertificate
    raw: bytes

    @property
    def org(self) -> OrgId:
        """The witness's organization."""
        return self.certificate.org


def cosign_head(head: TreeHead, key: KeyPair, chain: Sequence[bytes], witnessed_at: int) -> bytes:
    """Sign a cosignature of ``head`` with the witness node's key (after checking the head).

    Raises:
        InvalidInput: ``key`` is the log node's own key.
        ScopeError, CertificateError, DecodeError: the chain is not the witness's.
        RecordTooLarge: the envelope exceeds ``MAX_COSIGN_SIZE``.
    """
    _check_own_chain(key, chain)
    cosig = Cosignature(
        witness=key.peer_id,
        log=head.node,
        size=head.size,
        root=head.root,
        timestamp=head.timestamp,
        witnessed_at=witnessed_at,
    )
    data = seal(key, AUDIT_COSIGN_TAG, cosig.encode_body(), chain).encode()
    if len(data) > MAX_COSIGN_SIZE:
        raise RecordTooLarge(
            f"the cosignature is {len(data)} bytes; the limit is {MAX_COSIGN_SIZE}"
        )
    return data


def open_cosignature(data: bytes) -> tuple[Cosignature, SignedEnvelope]:
    """Decode a cosignature and check its signature and that the signer is its ``witness``.

    Raises:
        RecordTooLarge, DecodeError, SignatureError, ScopeError: as :func:`open_tree_head`.
    """
    env = open_envelope(data, tag=AUDIT_COSIGN_TAG, max_size=MAX_COSIGN_SIZE)
    cosig = Cosignature.decode_body(env.body)
    if env.signer != cosig.witness.public_key:
        raise ScopeError(
            f"cosignature names witness {cosig.witness}, but is signed by {PeerId(env.signer)}"
        )
    return cosig, env


def verify_cosignature(raw: bytes, trust: TrustStore, now: int) -> VerifiedCosignature:
    """Fully verify a witness cosignature (its certificate valid when it witnessed).

    Raises:
        RecordTooLarge, DecodeError, SignatureError, ScopeError, CertificateError:
            as :func:`verify_tree_head`.
        VerificationError: it is dated in the future, or witnessed before the head's time.
    """
    cosig, env = open_cosignature(raw)
    cert = trust.verify_chain(env.chain, now=cosig.witnessed_at, node=cosig.witness)
    _check_evidence_time("the cosignature", cosig.witnessed_at, now)
    if cosig.witnessed_at + MAX_CLOCK_SKEW < cosig.timestamp:
        raise VerificationError("the cosignature was made before the head it cosigns")
    return VerifiedCosignature(cosig, cert, bytes(raw))


# ---------------------------------------------------------------------------
# receipts


@dataclass(frozen=True)
class Receipt:
    """Offline evidence that an entry is in a node's log: head, entry, proof, cosignatures.

    Not signed itself: every part verifies on its own (:func:`verify_receipt`).

    Args:
        head: the signed tree head bytes.
        index: the entry's position in the log.
        proof: the inclusion proof of the entry's leaf in ``head``.
        entry: the exact entry bytes (the leaf).
        cosignatures: witness cosignatures of ``head`` (at most 8).

    Raises:
        InvalidInput, RecordTooLarge: a field is malformed or over its limit.
    """

    head: bytes
    index: int
    proof: tuple[bytes, ...]
    entry: bytes
    cosignatures: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.head, bytes) or len(self.head) > MAX_HEAD_SIZE:
            raise RecordTooLarge(f"a receipt's head must be bytes of at most {MAX_HEAD_SIZE}")
        check_int("index", self.index)
        object.__setattr__(self, "proof", tuple(_check_proof(list(self.proof))))
        if not isinstance(self.entry, bytes) or len(self.entry) > MAX_ENTRY_SIZE:
            raise RecordTooLarge(f"a receipt's entry must be bytes of at most {MAX_ENTRY_SIZE}")
        cosigs = tuple(self.cosignatures)
        if len(cosigs) > MAX_COSIGNATURES:
            raise RecordTooLarge(f"a receipt carries at most {MAX_COSIGNATURES} cosignatures")
        if not all(isinstance(c, bytes) and len(c) <= MAX_COSIGN_SIZE for c in cosigs):
            raise RecordTooLarge(f"each cosignature must be bytes of at most {MAX_COSIGN_SIZE}")
        object.__setattr__(self, "cosignatures", cosigs)

    def encode(self) -> bytes:
        """The receipt's wire bytes (MessagePack map)."""
        return pack(
            {
                "v": BODY_VERSION,
                "head": self.head,
                "i": self.index,
                "proof": list(self.proof),
                "entry": self.entry,
                "cosig": list(self.cosignatures),
            }
        )


def make_receipt(
    head: bytes,
    index: int,
    proof: Sequence[bytes],
    entry: bytes,
    cosignatures: Sequence[bytes] = (),
) -> bytes:
    """Encode a receipt (see :class:`Receipt`).

    Raises:
        InvalidInput, RecordTooLarge: a part is malformed.
    """
    return Receipt(head, index, tuple(proof), entry, tuple(cosignatures)).encode()


def decode_receipt(data: bytes) -> Receipt:
    """Parse receipt bytes (no verification; see :func:`verify_receipt`).

    Raises:
        RecordTooLarge, DecodeError: not a receipt within limits.
    """
    obj = unpack(data, max_size=MAX_RECEIPT_SIZE, max_items=MAX_PROOF_HASHES)
    if not isinstance(obj, dict):
        raise DecodeError("a receipt is a map")
    _check_version(obj, "receipt")
    proof = get_field(obj, "proof", list)
    cosigs = get_field(obj, "cosig", list)
    if not all(isinstance(h, bytes) for h in proof):
        raise DecodeError("receipt proof hashes must be bytes")
    if not all(isinstance(c, bytes) for c in cosigs):
        raise DecodeError("receipt cosignatures must be bytes")
    try:
        return Receipt(
            head=get_field(obj, "head", bytes),
            index=get_field(obj, "i", int),
            proof=tuple(proof),
            entry=get_field(obj, "entry", bytes),
            cosignatures=tuple(cosigs),
        )
    except DecodeError:
        raise
    except InvalidInput as exc:
        raise DecodeError(f"invalid receipt: {exc}") from None


@dataclass(frozen=True)
class VerifiedReceipt:
    """A receipt that passed :func:`verify_receipt`.

    Attributes:
        head: the verified signed head.
        index: the entry's position in the log.
        entry: the decoded entry.
        entry_bytes: the exact entry bytes (the leaf).
        cosignatures: the verified cosignatures of ``head``.
    """

    head: VerifiedTreeHead
    index: int
    entry: AuditEntry
    entry_bytes: bytes
    cosignatures: tuple[VerifiedCosignature, ...]

    @property
    def witness_orgs(self) -> frozenset[OrgId]:
        """Organizations other than the log's own whose nodes cosigned the head."""
        return frozenset(c.org for c in self.cosignatures) - {self.head.org}


def verify_receipt(raw: bytes | Receipt, trust: TrustStore, now: int) -> VerifiedReceipt:
    """Verify a receipt offline: the head's signature, the entry, its inclusion, the cosignatures.

    Raises:
        RecordTooLarge, DecodeError: the receipt or a part is malformed.
        SignatureError, ScopeError, CertificateError: the head or a cosignature is
            not acceptably signed.
        VerificationError: the inclusion proof fails, or a cosignature is for
            another head (or the head is dated in the future).
    """
    receipt = raw if isinstance(raw, Receipt) else decode_receipt(raw)
    head = verify_tree_head(receipt.head, trust, now)
    entry = decode_entry(receipt.entry)
    try:
        verify_inclusion(
            leaf_hash(receipt.entry), receipt.index, head.head.size, receipt.proof, head.head.root
        )
    except InvalidInput as exc:  # malformed proof inside untrusted bytes
        raise DecodeError(f"invalid receipt proof: {exc}") from None
    cosigs = []
    for raw_cosig in receipt.cosignatures:
        cosig = verify_cosignature(raw_cosig, trust, now)
        if not cosig.cosignature.matches(head.head):
            raise VerificationError(
                f"a cosignature by {cosig.cosignature.witness} is for another tree head"
            )
        cosigs.append(cosig)
    return VerifiedReceipt(head, receipt.index, entry, receipt.entry, tuple(cosigs))
