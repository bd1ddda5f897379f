"""The node's audit trail: what the node did, appended durably, under heads it signs.

One :class:`AuditTrail` per node wraps the node's :class:`~datanet.store.audit.AuditLog`
(``audit.sqlite`` in the data directory) with what the node needs around it:

* :meth:`AuditTrail.record` / :meth:`AuditTrail.record_many` build entries
  (:meth:`~datanet.records.audit.AuditEntry.create` decides between keeping the
  signed bytes and their hash) and append them in one durable transaction;
* heads: :meth:`AuditTrail.run` signs a tree head every :data:`HEAD_INTERVAL`
  seconds while entries arrive, :meth:`AuditTrail.head` on request; every new
  head is handed to the ``on_head`` callbacks (the witness service gossips it);
* receipts: :meth:`AuditTrail.receipt` bundles a signed head covering an entry,
  the entry, its inclusion proof and the witnesses' cosignatures held for that
  head (kept in memory, :data:`MAX_COSIGNED_HEADS` heads at most);
* :meth:`AuditTrail.last_of` reads back the newest entry of a kind matching a
  test (start-time certificate and trust comparisons, a decision's entry for a
  request asked about again).

Invariants:
* An append returns only after its transaction committed (``synchronous=FULL``):
  callers record an action *before* acknowledging it, so an acknowledged action's
  entry survives kill -9.
* Heads are only signed by this node's key with its own chain; a trail without a
  chain still records but signs nothing (:class:`~datanet.errors.NotFound` from
  :meth:`head` and :meth:`receipt`).
* A cosignature is kept only if it verifies as a statement about one of the heads
  this node signed; at most :data:`~datanet.records.audit.MAX_COSIGNATURES` per
  head, one per witness.
* Callbacks never break the trail: an exception in one is logged and dropped.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import trio

from datanet.errors import DatanetError, InvalidInput, NotFound
from datanet.records.audit import (
    MAX_COSIGNATURES,
    AuditEntry,
    EntryKind,
    JsonValue,
    TreeHead,
    decode_receipt,
    make_receipt,
    open_cosignature,
    open_tree_head,
)
from datanet.store.audit import MAX_ENTRIES_PAGE, AuditLog, LogEntry
from identity.certs import Revocation, TrustStore, parse_certificate
from identity.encoding import pack
from identity.keys import KeyPair

__all__ = [
    "HEAD_INTERVAL",
    "MAX_COSIGNED_HEADS",
    "MAX_SCAN",
    "AuditTrail",
    "PendingEntry",
    "record_identity_changes",
    "revocation_details",
]

log = logging.getLogger("datanet.audit")

#: A new head is signed this often (seconds) while entries arrive.
HEAD_INTERVAL = 2.0
#: Heads whose witness cosignatures are kept in memory (the newest).
MAX_COSIGNED_HEADS = 64
#: :meth:`AuditTrail.last_of` looks at most this many entries back.
MAX_SCAN = 200_000

_HeadKey = tuple[int, bytes, int]  # size, root, timestamp


@dataclass(frozen=True)
class PendingEntry:
    """An entry to append, with the time it happened (for :meth:`AuditTrail.record_many`).

    Attributes:
        kind: what happened.
        record: the signed bytes it refers to, or None.
        details: small JSON-safe facts (ids, peers, reasons; nothing private).
        at: when it happened (Unix seconds); None: when it is appended.
    """

    kind: EntryKind
    record: bytes | None
    details: Mapping[str, JsonValue]
    at: int | None = None


class AuditTrail:
    """The node's audit log, its signed heads and receipts (see the module docstring).

    Args:
        log: the node's audit log.
        key: the node's key (it signs the heads).
        chain: the node's membership chain (one certificate); empty: heads are not signed.
        clock: wall-clock Unix seconds.
    """

    def __init__(
        self,
        *,
        log: AuditLog,
        key: KeyPair,
        chain: Sequence[bytes],
        clock: Callable[[], float],
    ) -> None:
        self.log = log
        self._key = key
        self._chain = tuple(chain)
        self._clock = clock
        self._callbacks: list[Callable[[bytes], None]] = []
        self._cosigs: OrderedDict[_HeadKey, dict[bytes, bytes]] = OrderedDict()
        # The heads signed lately, so a receipt or a cosignature finds its head without
        # reading every stored head back (that grew with each head signed).
        self._recent: OrderedDict[_HeadKey, bytes] = OrderedDict()
        latest = log.latest_head()
        self._latest: tuple[TreeHead, bytes] | None = (
            None if latest is None else (latest.head, latest.raw)
        )
        self._heads_signed = log.head_count() if latest is not None else 0
        self._arrived = trio.Event()

    # -- recording ------------------------------------------------------------------

    def _now(self) -> int:
        return int(self._clock())

    def record(
        self, kind: EntryKind, record: bytes | None, details: Mapping[str, JsonValue]
    ) -> int:
        """Append one entry durably; returns its index.

        Raises:
            InvalidInput, RecordTooLarge: the details are not JSON-safe or too large.
            StorageError: nothing was written.
        """
        return self.record_many([PendingEntry(kind, record, details)])[0]

    def record_many(self, entries: Sequence[PendingEntry]) -> list[int]:
        """Append entries in one durable transaction (all or none); returns their indexes.

        Raises:
            InvalidInput, RecordTooLarge, StorageError: as :meth:`record`.
        """
        if not entries:
            return []
        now = self._now()
        built = [
            AuditEntry.create(e.kind, now if e.at is None else e.at, e.record, e.details)
            for e in entries
        ]
        indexes = self.log.append_many(built)
        self._arrived.set()
        return indexes

    def last_of(
        self, kinds: Sequence[EntryKind], match: Callable[[AuditEntry], bool]
    ) -> LogEntry | None:
        """The newest entry of one of ``kinds`` for which ``match`` holds (None: none).

        Looks at the last :data:`MAX_SCAN` entries at most.

        Raises:
            StorageError: the log cannot be read.
        """
        found: LogEntry | None = None
        for kind in kinds:
            since = max(0, self.log.size - MAX_SCAN)
            while True:
                page = self.log.entries(since=since, kind=kind, limit=MAX_ENTRIES_PAGE)
                for item in page:
                    if match(item.entry) and (found is None or item.index > found.index):
                        found = item
                if len(page) < MAX_ENTRIES_PAGE:
                    break
                since = page[-1].index + 1
        return found

    # -- heads ----------------------------------------------------------------------

    @property
    def heads_signed(self) -> int:
        """How many heads this node has signed (all time)."""
        return self._heads_signed

    def on_head(self, callback: Callable[[bytes], None]) -> None:
        """Call ``callback`` with every head signed from now on (the raw envelope)."""
        self._callbacks.append(callback)

    def _sign(self) -> bytes:
        if not self._chain:
            raise NotFound("this node holds no membership certificate; it signs no tree heads")
        raw = self.log.sign_head(self._key, self._chain, self._now())
        head, _ = open_tree_head(raw)
        self._latest = (head, raw)
        self._recent[self._head_key(head)] = raw
        while len(self._recent) > 4 * MAX_COSIGNED_HEADS:
            self._recent.popitem(last=False)
        self._heads_signed += 1
        for callback in list(self._callbacks):
            try:
                callback(raw)
            except Exception as exc:  # noqa: BLE001 - a listener never breaks the trail
                log.warning("an audit head listener failed", extra={"kv": {"error": str(exc)}})
        return raw

    def head(self, *, fresh: bool = False) -> bytes:
        """The latest signed head; a new one if entries arrived since it (or ``fresh``).

        Raises:
            NotFound: this node holds no certificate to sign with.
            StorageError: the head could not be stored.
        """
        if fresh or self._latest is None or self._latest[0].size != self.log.size:
            return self._sign()
        return self._latest[1]

    async def run(self) -> None:
        """Sign a head every :data:`HEAD_INTERVAL` seconds while entries arrive."""
        while True:
            await self._arrived.wait()
            self._arrived = trio.Event()
            await trio.sleep(HEAD_INTERVAL)
            if self._chain and (self._latest is None or self._latest[0].size != self.log.size):
                try:
                    self._sign()
                except DatanetError as exc:
                    log.warning("signing an audit head failed", extra={"kv": {"error": str(exc)}})

    # -- receipts and cosignatures --------------------------------------------------

    def receipt(self, index: int) -> bytes:
        """A receipt for entry ``index`` under a signed head covering it (+ cosignatures held).

        Prefers the latest head; signs a new one if it does not cover ``index``.
        When the latest head has no cosignature yet, a cosigned head that covers
        ``index`` is used instead, so receipts carry witnesses when they can.

        Raises:
            InvalidInput: there is no entry ``index``.
            NotFound: this node holds no certificate to sign with.
            StorageError: the log cannot be read or the head stored.
        """
        if not isinstance(index, int) or not 0 <= index < self.log.size:
            raise InvalidInput(f"the audit log has no entry {index} (size {self.log.size})")
        if self._latest is None or self._latest[0].size <= index:
            self._sign()
        assert self._latest is not None
        head, raw = self._latest
        cosigs = self._cosigs.get(self._head_key(head), {})
        if not cosigs:
            for key in reversed(self._cosigs):
                held = self._cosigs[key]
                if held and key[0] > index and key[0] <= self.log.size:
                    stored = self._stored_head(key)
                    if stored is not None:
                        raw, cosigs = stored, held
                        break
        receipt = decode_receipt(self.log.receipt(index, raw))
        return make_receipt(
            receipt.head,
            receipt.index,
            receipt.proof,
            receipt.entry,
            list(cosigs.values())[:MAX_COSIGNATURES],
        )

    def _stored_head(self, key: _HeadKey) -> bytes | None:
        recent = self._recent.get(key)
        if recent is not None:
            return recent
        stored = self.log.find_head(*key)
        return None if stored is None else stored.raw

    @staticmethod
    def _head_key(head: TreeHead) -> _HeadKey:
        return (head.size, head.root, head.timestamp)

    def add_cosignature(self, raw: bytes) -> bool:
        """Keep a witness's cosignature of one of this node's heads.

        The caller verifies it against its trust store first
        (:func:`~datanet.records.audit.verify_cosignature`); here its signature is
        checked again and it must name a head this node signed.

        Returns:
            True if it was kept (new), False if it is malformed, for another log,
            for a head this node did not sign, or already held.
        """
        try:
            cosig, _ = open_cosignature(bytes(raw))
        except DatanetError:
            return False
        if cosig.log != self._key.peer_id:
            return False
        key: _HeadKey = (cosig.size, cosig.root, cosig.timestamp)
        held = self._cosigs.get(key)
        if held is None:
            if not (0 < cosig.size <= self.log.size) or self.log.root(cosig.size) != cosig.root:
                return False
            if self._stored_head(key) is None:
                return False
            held = self._cosigs[key] = {}
            while len(self._cosigs) > MAX_COSIGNED_HEADS:
                self._cosigs.popitem(last=False)
        witness = cosig.witness.to_bytes()
        if witness in held or len(held) >= MAX_COSIGNATURES:
            return False
        held[witness] = bytes(raw)
        return True

    def cosignatures(self, head: bytes) -> list[bytes]:
        """The cosignatures held for ``head`` (signed head bytes); [] for an unknown head.

        Raises:
            InvalidInput: ``head`` is not a signed tree head.
        """
        try:
            decoded, _ = open_tree_head(bytes(head))
        except DatanetError as exc:
            raise InvalidInput(f"not a signed tree head: {exc}") from None
        return list(self._cosigs.get(self._head_key(decoded), {}).values())


def _trust_bytes(trust: TrustStore) -> bytes:
    """The trust store's org set and mode, in one encoding (what a trust change compares)."""
    return pack({"trusted": sorted(str(o) for o in trust.trusted), "accept_any": trust.accept_any})


def record_identity_changes(
    trail: AuditTrail, *, chain: Sequence[bytes], trust: TrustStore
) -> list[int]:
    """Log a ``cert_change`` / ``trust_change`` if they differ from what the log last recorded.

    Called at node start: the installed certificate (its exact bytes) and the
    trusted org set (with ``accept_any``) are compared with the newest entry of
    each kind, so a restart with nothing changed logs nothing, and the first
    start logs both.

    Returns:
        The indexes of the entries appended ([] when nothing changed).

    Raises:
        StorageError: the log cannot be read or written.
    """
    pending: list[PendingEntry] = []
    cert = chain[0] if chain else None
    last_cert = trail.last_of([EntryKind.CERT_CHANGE], lambda e: True)
    if last_cert is None or not (
        last_cert.entry.refers_to(cert) if cert is not None else last_cert.entry.record is None
    ):
        if cert is None:
            details: dict[str, JsonValue] = {"installed": False}
        else:
            parsed = parse_certificate(cert)
            details = {
                "installed": True,
                "org": str(parsed.org),
                "serial": parsed.serial,
                "roles": [str(r) for r in sorted(parsed.roles)],
                "not_after": parsed.not_after,
            }
            if last_cert is not None:
                details["previous_serial"] = last_cert.entry.details.get("serial")
        pending.append(PendingEntry(EntryKind.CERT_CHANGE, cert, details))
    current = _trust_bytes(trust)
    last_trust = trail.last_of(
        [EntryKind.TRUST_CHANGE], lambda e: e.details.get("source") == "trust_store"
    )
    if last_trust is None or not last_trust.entry.refers_to(current):
        pending.append(
            PendingEntry(
                EntryKind.TRUST_CHANGE,
                current,
                {
                    "source": "trust_store",
                    "trusted": len(trust.trusted),
                    "accept_any": trust.accept_any,
                },
            )
        )
    return trail.record_many(pending)


def revocation_details(rev: Revocation) -> dict[str, JsonValue]:
    """The details of a ``trust_change`` entry for a revocation list the node applied."""
    return {
        "source": "revocation",
        "org": str(rev.org),
        "sequence": rev.sequence,
        "serials": len(rev.serials),
    }
