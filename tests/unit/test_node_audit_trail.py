"""The node's audit trail: durable appends, heads on demand and on a timer, receipts."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from datanet.errors import CertificateError, InvalidInput, NotFound, VerificationError
from datanet.node import audit as audit_module
from datanet.node.audit import AuditTrail, PendingEntry, record_identity_changes
from datanet.records.audit import (
    AuditEntry,
    EntryKind,
    cosign_head,
    decode_receipt,
    open_tree_head,
    verify_receipt,
)
from datanet.store.audit import AuditLog
from datanet.testing.records import NODE_A, NODE_B, NOW, ORG_A, ORG_B, certificate
from identity.certs import TrustStore

TRUST = TrustStore({ORG_A.org_id, ORG_B.org_id})


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


def trail_at(path: Path, clock: Clock | None = None, *, chain: bool = True) -> AuditTrail:
    return AuditTrail(
        log=AuditLog(path / "audit.sqlite"),
        key=NODE_A,
        chain=[certificate()] if chain else [],
        clock=clock or Clock(),
    )


def test_record_is_durable_and_returns_consecutive_indexes(tmp_path: Path) -> None:
    trail = trail_at(tmp_path)
    first = trail.record(EntryKind.PUBLISH, b"descriptor", {"dataset": "x"})
    batch = trail.record_many(
        [
            PendingEntry(EntryKind.REQUEST_RECEIVED, None, {"request": "ab"}, at=NOW - 5),
            PendingEntry(EntryKind.REQUEST_ANSWERED, b"y" * 5000, {"state": "granted"}),
        ]
    )
    assert (first, batch) == (0, [1, 2])
    trail.log.close()
    reopened = AuditLog(tmp_path / "audit.sqlite")  # another connection sees the commits
    entries = reopened.entries()
    assert [e.entry.kind for e in entries] == [
        EntryKind.PUBLISH,
        EntryKind.REQUEST_RECEIVED,
        EntryKind.REQUEST_ANSWERED,
    ]
    assert entries[1].entry.timestamp == NOW - 5  # the time it happened, not of the append
    assert entries[2].entry.record is None  # large bytes are kept by hash
    assert entries[2].entry.refers_to(b"y" * 5000)


def test_head_is_reused_until_entries_arrive(tmp_path: Path) -> None:
    clock = Clock()
    trail = trail_at(tmp_path, clock)
    seen: list[bytes] = []
    trail.on_head(seen.append)
    trail.record(EntryKind.PUBLISH, b"a", {})
    first = trail.head()
    assert trail.head() == first
    assert open_tree_head(first)[0].size == 1
    trail.record(EntryKind.PUBLISH, b"b", {})
    second = trail.head()
    assert open_tree_head(second)[0].size == 2
    clock.now += 1
    fresh = trail.head(fresh=True)
    assert open_tree_head(fresh)[0].timestamp == NOW + 1
    assert seen == [first, second, fresh]
    assert trail.heads_signed == 3
    # A reopened trail knows its latest head and how many it signed.
    again = AuditTrail(log=trail.log, key=NODE_A, chain=[certificate()], clock=Clock())
    assert again.head() == fresh
    assert again.heads_signed == 3


def test_a_trail_without_a_certificate_records_but_signs_nothing(tmp_path: Path) -> None:
    trail = trail_at(tmp_path, chain=False)
    index = trail.record(EntryKind.PUBLISH, b"a", {})
    with pytest.raises(NotFound):
        trail.head()
    with pytest.raises(NotFound):
        trail.receipt(index)


def test_receipt_verifies_offline_and_covers_its_entry(tmp_path: Path) -> None:
    trail = trail_at(tmp_path)
    for n in range(5):
        trail.record(EntryKind.DECISION, b"denial %d" % n, {"request": f"{n:02x}"})
    raw = trail.receipt(3)
    checked = verify_receipt(raw, TRUST, NOW)
    assert checked.index == 3
    assert checked.entry.details == {"request": "03"}
    assert checked.entry.refers_to(b"denial 3")
    assert checked.head.head.size == 5
    # An entry beyond the latest head gets a new head.
    later = trail.record(EntryKind.DECISION, b"late", {})
    assert verify_receipt(trail.receipt(later), TRUST, NOW).head.head.size == 6
    with pytest.raises(InvalidInput):
        trail.receipt(99)
    # Another org's trust store refuses it.
    with pytest.raises(CertificateError):
        verify_receipt(raw, TrustStore({ORG_B.org_id}), NOW)


def test_cosignatures_are_kept_per_head_and_travel_in_receipts(tmp_path: Path) -> None:
    trail = trail_at(tmp_path)
    trail.record(EntryKind.GRANT, b"grant", {"request": "aa"})
    head_raw = trail.head()
    head, _ = open_tree_head(head_raw)
    witness_chain = [certificate(ORG_B, NODE_B)]
    cosig = cosign_head(head, NODE_B, witness_chain, NOW + 1)
    assert trail.add_cosignature(cosig)
    assert not trail.add_cosignature(cosig)  # one per witness
    assert not trail.add_cosignature(b"junk")
    assert trail.cosignatures(head_raw) == [cosig]
    receipt = verify_receipt(trail.receipt(0), TRUST, NOW + 2)
    assert receipt.witness_orgs == {ORG_B.org_id}
    # A newer head without cosignatures: the receipt still uses the witnessed one.
    trail.record(EntryKind.GRANT, b"grant 2", {"request": "bb"})
    trail.head()
    assert verify_receipt(trail.receipt(0), TRUST, NOW + 2).witness_orgs == {ORG_B.org_id}
    assert verify_receipt(trail.receipt(1), TRUST, NOW + 2).witness_orgs == frozenset()


def test_a_cosignature_of_a_head_never_signed_is_refused(tmp_path: Path) -> None:
    trail = trail_at(tmp_path)
    trail.record(EntryKind.GRANT, b"grant", {})
    head, _ = open_tree_head(trail.head())
    forged = type(head)(node=head.node, size=1, root=bytes(32), timestamp=head.timestamp)
    cosig = cosign_head(forged, NODE_B, [certificate(ORG_B, NODE_B)], NOW)
    assert not trail.add_cosignature(cosig)
    # and a receipt carrying a cosignature of another head fails verification
    good = decode_receipt(trail.receipt(0))
    from datanet.records.audit import make_receipt

    bad = make_receipt(good.head, good.index, good.proof, good.entry, [cosig])
    with pytest.raises(VerificationError):
        verify_receipt(bad, TRUST, NOW)


async def test_run_signs_a_head_every_interval_while_entries_arrive(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    trail = trail_at(tmp_path)
    seen: list[bytes] = []
    trail.on_head(seen.append)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trail.run)
        await trio.sleep(audit_module.HEAD_INTERVAL * 2)
        assert seen == []  # nothing arrived: no head
        trail.record(EntryKind.PUBLISH, b"a", {})
        trail.record(EntryKind.PUBLISH, b"b", {})
        await trio.sleep(audit_module.HEAD_INTERVAL + 0.5)
        assert [open_tree_head(h)[0].size for h in seen] == [2]
        await trio.sleep(audit_module.HEAD_INTERVAL * 2)
        assert len(seen) == 1  # quiet again
        nursery.cancel_scope.cancel()


def test_identity_changes_are_logged_once_and_again_on_change(tmp_path: Path) -> None:
    trail = trail_at(tmp_path)
    trust = TrustStore({ORG_A.org_id})
    chain = [certificate(serial=7)]
    first = record_identity_changes(trail, chain=chain, trust=trust)
    assert [trail.log.entry(i).entry.kind for i in first] == [
        EntryKind.CERT_CHANGE,
        EntryKind.TRUST_CHANGE,
    ]
    assert record_identity_changes(trail, chain=chain, trust=trust) == []
    renewed = [certificate(serial=8)]
    (index,) = record_identity_changes(trail, chain=renewed, trust=trust)
    entry = trail.log.entry(index).entry
    assert entry.kind is EntryKind.CERT_CHANGE
    assert entry.details["serial"] == 8
    assert entry.details["previous_serial"] == 7
    assert entry.refers_to(renewed[0])
    trust.trust(ORG_B.org_id)
    (index,) = record_identity_changes(trail, chain=renewed, trust=trust)
    assert trail.log.entry(index).entry.details["trusted"] == 2
    # A revocation-list trust change does not hide the trust store's own last state.
    trail.record(EntryKind.TRUST_CHANGE, b"rev", {"source": "revocation"})
    assert record_identity_changes(trail, chain=renewed, trust=trust) == []
    # The certificate going away is a change too.
    (index,) = record_identity_changes(trail, chain=[], trust=trust)
    assert trail.log.entry(index).entry.details == {"installed": False}
    assert record_identity_changes(trail, chain=[], trust=trust) == []


def test_last_of_finds_the_newest_match(tmp_path: Path) -> None:
    trail = trail_at(tmp_path)
    for n in range(30):
        trail.record(EntryKind.DECISION if n % 2 else EntryKind.GRANT, None, {"n": n % 3})
    found = trail.last_of([EntryKind.GRANT, EntryKind.DECISION], lambda e: e.details["n"] == 1)
    assert found is not None
    assert found.index == 28
    assert trail.last_of([EntryKind.PUBLISH], lambda e: True) is None
    assert isinstance(found.entry, AuditEntry)
