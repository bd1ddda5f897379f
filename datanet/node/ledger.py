"""The node's ledger: every signed record of the network this node holds, and the one way in.

Gossip, anti-entropy sync, the DHT record store and the node's own publishes
all hand records to :meth:`Ledger.ingest`. It verifies the record
(:func:`datanet.records.ledger.verify_ledger_record`: size, tag, signature,
certificate chain, scope, expiry), keeps it only if it is newer than what is
held under its key, applies it, and tells the caller whether gossip may forward
it:

* a **descriptor** goes into the catalog (newest sequence wins);
* a **deprecation** (signed tombstone) withdraws its dataset from the catalog
  and is kept, so it can be handed on;
* a **revocation list** is applied to the trust store and persisted, and the
  revoked certificates' descriptors leave the catalog;
* an **org record** is persisted (gateways, for access requests).

The ledger also keeps the anti-entropy set (:class:`routing.sync.SyncIndex`):
one item (timestamp from the signed body, sha256 of the bytes) per key held,
so two nodes can reconcile exactly what one lacks. And it tells watchers
(:class:`~datanet.node.feed.CatalogFeed`) what changed.

Invariants:
* Nothing is stored or forwarded that did not verify now; a record that is not
  newer than the held one is ``IGNORE``-d (not forwarded, no penalty); a record
  that fails verification is ``REJECT``-ed (not forwarded, the sender is
  penalised), except an expired one, which honest peers may still relay for a
  moment (``IGNORE``).
* The sync index holds exactly one item per held key, matching the stored bytes.
* ``ingest`` never raises for bad input: the verdict says what happened.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from datanet.errors import DatanetError, ExpiredRecord
from datanet.node.feed import CatalogEvent, CatalogFeed
from datanet.records.deprecation import VerifiedDeprecation
from datanet.records.descriptor import Descriptor, VerifiedDescriptor
from datanet.records.ids import SCHEME
from datanet.records.ledger import LedgerRecord, RecordKind, verify_ledger_record
from datanet.store.catalog import Catalog
from datanet.store.db import LedgerRow, Storage
from identity.certs import Revocation, TrustStore, parse_revocation
from routing.gossip.router import ValidationResult
from routing.sync import Item, SyncIndex

__all__ = ["Intake", "Ledger"]

log = logging.getLogger("datanet.node.ledger")


def _id(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


@dataclass(frozen=True)
class Intake:
    """What :meth:`Ledger.ingest` did with a record.

    Attributes:
        result: ACCEPT (stored; gossip forwards it), IGNORE (not newer, or
            expired), REJECT (invalid: never forwarded, the sender pays).
        record: the verified record (ACCEPT and not-newer IGNORE), else None.
        reason: why it was ignored or rejected ("" when accepted).
    """

    result: ValidationResult
    record: LedgerRecord | None = None
    reason: str = ""


class Ledger:
    """Every record this node holds, verified; see the module docstring.

    Args:
        catalog: the searchable catalog (descriptors and withdrawals).
        storage: the node database (revocation lists and org records).
        trust: the trust store records are verified against (revocations are added to it).
        feed: where catalog changes are announced.
        clock: wall-clock Unix seconds.
        on_revocation: called with the raw bytes and the list when a newer
            revocation list changed the trust store (the node's audit trail logs it).
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        storage: Storage,
        trust: TrustStore,
        feed: CatalogFeed,
        clock: Callable[[], float] = time.time,
        on_revocation: Callable[[bytes, Revocation], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self._on_revocation = on_revocation
        self._storage = storage
        self._trust = trust
        self.feed = feed
        self._clock = clock
        self._index = SyncIndex()
        self._item_of: dict[str, Item] = {}  # held key -> its sync item
        self._where: dict[bytes, tuple[str, str]] = {}  # item id -> (store, key)
        self._was_new: dict[str, bool] = {}  # ingest_batch: dataset id -> not held before
        self.counters: dict[str, int] = {"accepted": 0, "ignored": 0, "rejected": 0}
        #: Ids of the grants whose signed revocation this node holds (access grants).
        self.revoked_grants: set[bytes] = set()

    # -- loading ------------------------------------------------------------------

    def load(self) -> None:
        """Build the sync index from what is stored; apply stored revocation lists."""
        for dataset_id, modified, raw in self.catalog.entries():
            self._hold(dataset_id, "catalog", modified, raw)
        for w in self.catalog.withdrawals():
            if w.raw is not None and w.reason == "deprecated":
                self._hold(w.dataset_id, "withdrawal", w.at, w.raw)
        for row in self._storage.load_ledger_records():
            if row.kind == RecordKind.REVOCATION:
                try:
                    self._trust.add_revocation(parse_revocation(row.raw))
                except DatanetError as exc:
                    log.warning(
                        "a stored revocation list is damaged", extra={"kv": {"error": str(exc)}}
                    )
                    continue
            self._note_grant_revocation(row.kind, row.key)
            self._hold(row.key.decode("utf-8", "replace"), "ledger", row.timestamp, row.raw)

    def _note_grant_revocation(self, kind: str, key: bytes) -> None:
        """Remember a revoked grant id (the last part of ``/dn-grev/<org>/<grant id>``)."""
        if str(kind) != "grant_revocation":
            return
        try:
            self.revoked_grants.add(bytes.fromhex(key.rsplit(b"/", 1)[-1].decode("ascii")))
        except (ValueError, UnicodeDecodeError):
            log.warning("a stored grant revocation has a malformed key")

    def _hold(self, key: str, store: str, timestamp: int, raw: bytes) -> None:
        self._drop(key)
        item = Item(int(timestamp), _id(raw))
        self._index.add(item)
        self._item_of[key] = item
        self._where[item.id] = (store, key)

    def _drop(self, key: str) -> None:
        old = self._item_of.pop(key, None)
        if old is not None:
            self._index.remove(old)
            self._where.pop(old.id, None)

    # -- the sync backend -----------------------------------------------------------

    def sync_index(self) -> SyncIndex:
        """The anti-entropy set: one (timestamp, sha256) item per held key."""
        return self._index

    def records_by_id(self, ids: Sequence[bytes]) -> list[bytes]:
        """The signed bytes of the items ``ids`` that are held (others skipped)."""
        out: list[bytes] = []
        for item_id in ids:
            where = self._where.get(bytes(item_id))
            if where is None:
                continue
            raw = self._raw(*where)
            if raw is not None and _id(raw) == item_id:
                out.append(raw)
        return out

    def _raw(self, store: str, key: str) -> bytes | None:
        if store == "catalog":
            return self.catalog.get(key)
        if store == "withdrawal":
            w = self.catalog.withdrawal(key)
            return None if w is None else w.raw
        row = self._storage.ledger_record(key.encode("utf-8"))
        return None if row is None else row.raw

    def held_ids(self) -> int:
        """How many items the sync index holds."""
        return len(self._index)

    # -- the way in -------------------------------------------------------------------

    def ingest(self, raw: bytes, *, from_peer: bytes | None = None) -> Intake:
        """Verify ``raw`` and hold it if newer; see the module docstring. Never raises."""
        now = int(self._clock())
        try:
            record = verify_ledger_record(bytes(raw), self._trust, now)
        except ExpiredRecord as exc:
            return self._count(Intake(ValidationResult.IGNORE, None, str(exc)))
        except DatanetError as exc:
            log.debug(
                "record refused",
                extra={
                    "kv": {"error": str(exc), "from": from_peer.hex()[:16] if from_peer else ""}
                },
            )
            return self._count(Intake(ValidationResult.REJECT, None, str(exc)))
        return self._count(self._ingest_verified(record, now))

    def _ingest_verified(self, record: LedgerRecord, now: int) -> Intake:
        try:
            applied = self._apply(record, now)
        except DatanetError as exc:
            log.warning("storing a record failed", extra={"kv": {"error": str(exc)}})
            return Intake(ValidationResult.IGNORE, record, str(exc))
        if not applied:
            return Intake(ValidationResult.IGNORE, record, "not newer than the held record")
        return Intake(ValidationResult.ACCEPT, record)

    def ingest_batch(
        self, raws: Sequence[bytes], *, from_peer: bytes | None = None
    ) -> list[Intake]:
        """:meth:`ingest` many records (anti-entropy), storing the descriptors in one transaction.

        One durable commit per descriptor costs an fsync each (about a millisecond);
        a new node that fetches 10,000 records would spend most of its join on
        them. The verdicts are those :meth:`ingest` would give one by one.
        """
        now = int(self._clock())
        out: list[Intake | None] = [None] * len(raws)
        fresh: dict[str, tuple[int, LedgerRecord]] = {}  # dataset id -> (index, newest record)
        for i, raw in enumerate(raws):
            try:
                record = verify_ledger_record(bytes(raw), self._trust, now)
            except ExpiredRecord as exc:
                out[i] = Intake(ValidationResult.IGNORE, None, str(exc))
                continue
            except DatanetError as exc:
                out[i] = Intake(ValidationResult.REJECT, None, str(exc))
                continue
            if record.kind is not RecordKind.DESCRIPTOR:
                out[i] = self._ingest_verified(record, now)
                continue
            dataset_id = str(record.dataset_id)
            earlier = fresh.get(dataset_id)
            if earlier is not None and earlier[1].sequence >= record.sequence:
                out[i] = Intake(ValidationResult.IGNORE, record, "not newer than the held record")
                continue
            if earlier is not None:
                out[earlier[0]] = Intake(
                    ValidationResult.IGNORE, earlier[1], "not newer than the held record"
                )
            fresh[dataset_id] = (i, record)
        newer = [(i, r) for i, r in fresh.values() if self._descriptor_is_newer(r)]
        for i, record in fresh.values():
            out[i] = Intake(ValidationResult.IGNORE, record, "not newer than the held record")
        try:
            self.catalog.upsert_many([(r.raw, self._descriptor(r), r.serial) for _, r in newer])
        except DatanetError as exc:
            log.warning("storing records failed", extra={"kv": {"error": str(exc)}})
            newer = []
        for i, record in newer:
            was_new = self._was_new.pop(str(record.dataset_id), True)
            self._held_descriptor(record, was_new=was_new)
            out[i] = Intake(ValidationResult.ACCEPT, record)
        self._was_new.clear()
        return [self._count(intake or Intake(ValidationResult.IGNORE)) for intake in out]

    def _count(self, intake: Intake) -> Intake:
        name = {
            ValidationResult.ACCEPT: "accepted",
            ValidationResult.IGNORE: "ignored",
            ValidationResult.REJECT: "rejected",
        }[intake.result]
        self.counters[name] += 1
        return intake

    def _apply(self, record: LedgerRecord, now: int) -> bool:
        if record.kind is RecordKind.DESCRIPTOR:
            return self._apply_descriptor(record)
        if record.kind is RecordKind.DEPRECATION:
            return self._apply_deprecation(record, now)
        if record.kind is RecordKind.REVOCATION:
            return self._apply_revocation(record, now)
        return self._apply_org(record)

    @staticmethod
    def _descriptor(record: LedgerRecord) -> Descriptor:
        verified = record.value
        assert isinstance(verified, VerifiedDescriptor)
        return verified.descriptor

    def _descriptor_is_newer(self, record: LedgerRecord) -> bool:
        """Whether the catalog would take this descriptor (newer, not withdrawn by a tombstone)."""
        dataset_id = str(record.dataset_id)
        held = self.catalog.sequence_of(dataset_id)
        if held is not None and held >= record.sequence:
            return False
        gone = self.catalog.withdrawal(dataset_id)
        if gone is not None and gone.reason == "deprecated" and gone.sequence >= record.sequence:
            return False
        self._was_new[dataset_id] = held is None
        return True

    def _apply_descriptor(self, record: LedgerRecord) -> bool:
        desc = self._descriptor(record)
        held = self.catalog.sequence_of(str(desc.dataset_id))
        if not self.catalog.upsert(record.raw, desc, serial=record.serial):
            return False
        self._held_descriptor(record, was_new=held is None)
        return True

    def _held_descriptor(self, record: LedgerRecord, *, was_new: bool) -> None:
        """Index a descriptor the catalog just took, and tell the watchers."""
        desc = self._descriptor(record)
        dataset_id = str(desc.dataset_id)
        self._hold(dataset_id, "catalog", record.timestamp, record.raw)
        self.feed.publish(
            CatalogEvent(
                kind="new" if was_new else "updated",
                dataset_id=dataset_id,
                sequence=desc.sequence,
                org=str(desc.dataset_id.org),
                title=desc.title,
                keywords=desc.keywords,
                themes=desc.themes,
                description=desc.description[:240],
                at=self._clock(),
            )
        )

    def _apply_deprecation(self, record: LedgerRecord, now: int) -> bool:
        verified = record.value
        assert isinstance(verified, VerifiedDeprecation)
        dep = verified.deprecation
        dataset_id = str(dep.dataset_id)
        held = self.catalog.withdrawal(dataset_id)
        if held is not None and held.reason == "deprecated" and held.sequence >= dep.sequence:
            return False
        live = self.catalog.sequence_of(dataset_id)
        if live is not None and live >= dep.sequence:
            return False
        self.catalog.withdraw(
            dataset_id,
            reason="deprecated",
            at=dep.withdrawn_at,
            sequence=dep.sequence,
            raw=record.raw,
        )
        self._hold(dataset_id, "withdrawal", record.timestamp, record.raw)
        self.feed.publish(
            CatalogEvent(
                kind="withdrawn",
                dataset_id=dataset_id,
                sequence=dep.sequence,
                org=str(dep.dataset_id.org),
                reason="deprecated",
                description=dep.reason,
                at=self._clock(),
            )
        )
        return True

    def _apply_revocation(self, record: LedgerRecord, now: int) -> bool:
        rev = record.value
        assert isinstance(rev, Revocation)
        held = self._storage.ledger_record(record.key)
        if held is not None and held.sequence >= record.sequence:
            self._trust.add_revocation(rev)  # keep the trust store in step with the database
            return False
        self._storage.put_ledger_record(self._row(record))
        if self._trust.add_revocation(rev) and self._on_revocation is not None:
            self._on_revocation(record.raw, rev)
        self._hold(record.key.decode("utf-8", "replace"), "ledger", record.timestamp, record.raw)
        self.withdraw_revoked(str(rev.org), rev.serials, now)
        return True

    def withdraw_revoked(self, org: str, serials: Iterable[int], now: int) -> list[str]:
        """Withdraw the descriptors signed under revoked certificates; returns their ids."""
        removed = self.catalog.remove_revoked(org, frozenset(serials), at=now)
        for dataset_id in removed:
            self._drop(dataset_id)
            self.feed.publish(
                CatalogEvent(
                    kind="withdrawn",
                    dataset_id=dataset_id,
                    sequence=0,
                    org=org,
                    reason="revoked",
                    at=self._clock(),
                )
            )
        return removed

    def _apply_org(self, record: LedgerRecord) -> bool:
        """Org records and grant revocations: kept in the ledger table, newest wins."""
        if not self._storage.put_ledger_record(self._row(record)):
            return False
        self._note_grant_revocation(str(record.kind), record.key)
        self._hold(record.key.decode("utf-8", "replace"), "ledger", record.timestamp, record.raw)
        return True

    @staticmethod
    def _row(record: LedgerRecord) -> LedgerRow:
        return LedgerRow(
            key=record.key,
            kind=str(record.kind),
            sequence=record.sequence,
            timestamp=record.timestamp,
            expires_at=None if record.expires is None else float(record.expires),
            raw=record.raw,
        )

    # -- maintenance ------------------------------------------------------------------

    def expire(self, now: float) -> int:
        """Withdraw expired descriptors (reason ``expired``); returns how many left."""
        gone = self.catalog.expire_ids(int(now))
        for dataset_id in gone:
            org = dataset_id.removeprefix(SCHEME).partition("/")[0]
            self._drop(dataset_id)
            self.feed.publish(
                CatalogEvent(
                    kind="withdrawn",
                    dataset_id=dataset_id,
                    sequence=0,
                    org=org,
                    reason="expired",
                    at=self._clock(),
                )
            )
        return len(gone)

    def stats(self) -> dict[str, Any]:
        """Counts for ``datanet catalog stats`` (JSON-safe)."""
        return {"items": len(self._index), **self.counters}
