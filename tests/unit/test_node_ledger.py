"""The ledger: one way in for every record, verdicts for gossip, the sync index in step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from datanet.node.feed import CatalogEvent, CatalogFeed
from datanet.node.ledger import Ledger
from datanet.store.catalog import Catalog
from datanet.store.db import Storage
from datanet.testing.clock import DAY, NOW
from datanet.testing.records import (
    ORG_A,
    certificate,
    deprecation,
    descriptor,
    forge_body,
    signed,
    signed_deprecation,
)
from identity.certs import TrustStore, issue_revocation
from routing.gossip.router import ValidationResult as V

ACCEPT, IGNORE, REJECT = V.ACCEPT, V.IGNORE, V.REJECT


class Recorder(CatalogFeed):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[CatalogEvent] = []

    def publish(self, event: CatalogEvent) -> None:
        self.events.append(event)


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Ledger, Catalog, Storage, TrustStore, Recorder, Clock]]:
    trust = TrustStore({ORG_A.org_id})
    catalog, storage = Catalog(tmp_path / "catalog.sqlite"), Storage(tmp_path / "db.sqlite")
    feed, clock = Recorder(), Clock()
    ledger = Ledger(catalog=catalog, storage=storage, trust=trust, feed=feed, clock=clock)
    ledger.load()
    yield ledger, catalog, storage, trust, feed, clock
    catalog.close()
    storage.close()


def test_descriptors_newest_wins_and_every_verdict(parts: tuple) -> None:
    ledger, catalog, _, _, feed, _ = parts
    v1 = signed(descriptor("air/no2", sequence=1, title="air one"))
    v2 = signed(descriptor("air/no2", sequence=2, title="air two"))
    assert ledger.ingest(v1).result is ACCEPT
    assert ledger.ingest(v1).result is IGNORE  # a duplicate: not forwarded, not penalised
    assert ledger.ingest(v2).result is ACCEPT
    assert ledger.ingest(v1).result is IGNORE  # a replayed lower sequence
    assert ledger.ingest(forge_body(v2, title="forged")).result is REJECT
    assert ledger.ingest(b"\x00junk").result is REJECT
    assert catalog.get(f"dn://{ORG_A.org_id}/air/no2") == v2
    assert [e.kind for e in feed.events] == ["new", "updated"]
    assert ledger.counters == {"accepted": 2, "ignored": 2, "rejected": 2}
    assert len(ledger.sync_index()) == 1  # one item per key: the newest


def test_expired_records_are_ignored_not_rejected(parts: tuple) -> None:
    ledger, *_ = parts
    old = signed(descriptor("old/one", now=NOW - 3 * DAY, lifetime=DAY))
    intake = ledger.ingest(old)
    assert intake.result is IGNORE
    assert "expire" in intake.reason


def test_deprecation_withdraws_and_blocks_older_versions(parts: tuple) -> None:
    ledger, catalog, _, _, feed, _ = parts
    raw = signed(descriptor("air/pm10", sequence=1))
    assert ledger.ingest(raw).result is ACCEPT
    tomb = signed_deprecation(deprecation("air/pm10", sequence=2, reason="superseded"))
    assert ledger.ingest(tomb).result is ACCEPT
    dataset = f"dn://{ORG_A.org_id}/air/pm10"
    assert catalog.get(dataset) is None
    withdrawal = catalog.withdrawal(dataset)
    assert withdrawal is not None
    assert withdrawal.reason == "deprecated"
    assert ledger.ingest(raw).result is IGNORE  # the withdrawn version cannot come back
    assert ledger.ingest(tomb).result is IGNORE
    assert feed.events[-1].kind == "withdrawn"
    assert feed.events[-1].reason == "deprecated"
    assert ledger.records_by_id([item.id for item in ledger.sync_index()]) == [tomb]


def test_a_revocation_list_removes_the_revoked_certificates_descriptors(parts: tuple) -> None:
    ledger, catalog, storage, trust, feed, _ = parts
    chain = [certificate(serial=9)]
    raw = signed(descriptor("soil/ph"), chain=chain)
    other = signed(descriptor("soil/n"), chain=[certificate(serial=10)])
    assert ledger.ingest(raw).result is ACCEPT
    assert ledger.ingest(other).result is ACCEPT
    rev = issue_revocation(ORG_A, [9], sequence=1, issued_at=NOW)
    assert ledger.ingest(rev).result is ACCEPT
    assert trust.is_revoked(ORG_A.org_id, 9)
    assert catalog.get(f"dn://{ORG_A.org_id}/soil/ph") is None
    assert catalog.get(f"dn://{ORG_A.org_id}/soil/n") == other
    assert feed.events[-1].reason == "revoked"
    assert storage.load_ledger_records()[0].raw == rev
    assert ledger.ingest(rev).result is IGNORE
    assert ledger.ingest(raw).result is REJECT  # signed under a revoked certificate


def test_the_sync_index_is_rebuilt_the_same_after_a_restart(tmp_path: Path) -> None:
    trust = TrustStore({ORG_A.org_id})
    raws = [signed(descriptor(f"set/{i}")) for i in range(5)]
    rev = issue_revocation(ORG_A, [99], sequence=1, issued_at=NOW)
    tomb_of = signed(descriptor("set/gone", sequence=1))
    tomb = signed_deprecation(deprecation("set/gone", sequence=2))
    with Catalog(tmp_path / "c.sqlite") as catalog, Storage(tmp_path / "d.sqlite") as storage:
        first = Ledger(
            catalog=catalog, storage=storage, trust=trust, feed=CatalogFeed(), clock=Clock()
        )
        for raw in [*raws, rev, tomb_of, tomb]:
            assert first.ingest(raw).result is ACCEPT
        items = sorted(first.sync_index())
    fresh_trust = TrustStore({ORG_A.org_id})
    with Catalog(tmp_path / "c.sqlite") as catalog, Storage(tmp_path / "d.sqlite") as storage:
        again = Ledger(
            catalog=catalog, storage=storage, trust=fresh_trust, feed=CatalogFeed(), clock=Clock()
        )
        again.load()
        assert sorted(again.sync_index()) == items
        assert len(items) == 7  # 5 descriptors, the revocation list, the tombstone
        held = again.records_by_id([i.id for i in items])
        assert sorted(held) == sorted([*raws, rev, tomb])
        assert fresh_trust.is_revoked(ORG_A.org_id, 99)  # stored revocations apply at load


def test_a_batch_gives_the_verdicts_of_one_by_one_in_one_transaction(parts: tuple) -> None:
    ledger, catalog, _, _, feed, _ = parts
    held = signed(descriptor("b/held", sequence=3))
    assert ledger.ingest(held).result is ACCEPT
    tomb = signed_deprecation(deprecation("b/gone", sequence=5))
    v1, v2 = (signed(descriptor("b/twice", sequence=n)) for n in (1, 2))
    batch = [
        signed(descriptor("b/new")),  # ACCEPT
        signed(descriptor("b/held", sequence=2)),  # IGNORE: older than held
        v2,  # ACCEPT (the newer of the two in this batch)
        v1,  # IGNORE: an older version in the same batch
        tomb,  # ACCEPT (not a descriptor: applied on its own)
        signed(descriptor("b/gone", sequence=4)),  # IGNORE: withdrawn by the tombstone
        forge_body(held, title="x"),  # REJECT
        signed(descriptor("b/old", now=NOW - 3 * DAY, lifetime=DAY)),  # IGNORE: expired
    ]
    verdicts = [i.result for i in ledger.ingest_batch(batch)]
    assert verdicts == [ACCEPT, IGNORE, ACCEPT, IGNORE, ACCEPT, IGNORE, REJECT, IGNORE]
    assert catalog.get(f"dn://{ORG_A.org_id}/b/twice") == v2
    changes = {(e.dataset_id.rsplit("/", 1)[-1], e.kind) for e in feed.events[-3:]}
    assert changes == {("gone", "withdrawn"), ("new", "new"), ("twice", "new")}
    assert len(ledger.sync_index()) == 4  # held, new, twice, the tombstone
