"""Unit tests of the SQLite access store: the owner's inbox, the requester's outbox and
issued grants, on real files: replays change nothing, decisions are final, prefixes,
ordering, limits, durability across reopening, and sharing the node's database."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from datanet.errors import Conflict, InvalidInput, NotFound, StorageError
from datanet.store.access import AccessStore, GrantRow, IncomingRow, OutgoingRow
from datanet.store.db import Storage

NOW = 1_800_000_000
DATASET = "dn://did:key:z6MkexampleOrg/rivers"


def rid(i: int) -> bytes:
    return hashlib.sha256(b"request %d" % i).digest()


def incoming(i: int, **changes: object) -> IncomingRow:
    row = IncomingRow(
        request_id=rid(i),
        dataset=DATASET,
        requester_node="12D3KooWrequester",
        requester_org="did:key:z6MkrequesterOrg",
        purpose="academic-research",
        validity_days=30,
        note="for a thesis\nchapter 3",
        received_at=NOW + i,
        deadline=NOW + 3600 + i,
        state="pending",
        request=b"signed request %d" % i,
        trace=(b"hop 0 of %d" % i, b"hop 1 of %d" % i),
        message="waiting for an operator",
    )
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


def outgoing(i: int, **changes: object) -> OutgoingRow:
    row = OutgoingRow(
        request_id=rid(i),
        dataset=DATASET,
        purpose="academic-research",
        validity_days=7,
        note="",
        created=NOW + i,
        deadline=NOW + 600 + i,
        state="pending",
        request=b"signed request %d" % i,
        reply_secret=bytes([i % 256]) * 32,
        updated_at=NOW + i,
    )
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


def gid(i: int) -> bytes:
    return hashlib.sha256(b"grant %d" % i).digest()[:16]


def grant(i: int, **changes: object) -> GrantRow:
    row = GrantRow(
        grant_id=gid(i),
        request_id=rid(i),
        dataset=DATASET,
        grantee_node="12D3KooWrequester",
        grantee_org="did:key:z6MkrequesterOrg",
        purpose="academic-research",
        not_before=NOW,
        not_after=NOW + 86_400,
        issued_at=NOW + i,
        grant=b"signed grant %d" % i,
    )
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "access.sqlite"


@pytest.fixture
def store(path: Path) -> Iterator[AccessStore]:
    with AccessStore(path) as opened:
        yield opened


def raw_row(path: Path, table: str, column: str, key: bytes) -> tuple[object, ...]:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(f"SELECT * FROM {table} WHERE {column} = ?", (key,)).fetchone()
    finally:
        conn.close()
    assert row is not None
    return tuple(row)


def deny(store: AccessStore, i: int, **changes: object) -> IncomingRow:
    args: dict[str, object] = {
        "state": "denied",
        "decision": b"signed denial %d" % i,
        "reason": "purpose_not_allowed",
        "message": "the purpose is not allowed",
        "decided_by": "policy",
        "at": NOW + 10,
        "grant_id": None,
    }
    args.update(changes)
    return store.decide(rid(i), **args)  # type: ignore[arg-type]


# -- the owner's inbox ---------------------------------------------------------------


def test_add_and_read_incoming_round_trips(store: AccessStore) -> None:
    row = incoming(1)
    assert store.add_incoming(row)
    assert store.incoming(rid(1)) == row
    assert store.incoming(rid(2)) is None


def test_replayed_incoming_returns_false_and_changes_nothing(
    store: AccessStore, path: Path
) -> None:
    assert store.add_incoming(incoming(1))
    before = raw_row(path, "access_incoming", "request_id", rid(1))
    assert not store.add_incoming(incoming(1, purpose="marketing", note="other", received_at=NOW))
    assert raw_row(path, "access_incoming", "request_id", rid(1)) == before
    assert store.counts()["incoming_pending"] == 1


def test_decide_grants_once_then_conflicts_leaving_the_row_byte_identical(
    store: AccessStore, path: Path
) -> None:
    store.add_incoming(incoming(1))
    done = store.decide(
        rid(1),
        state="granted",
        decision=b"signed grant",
        reason=None,
        message="granted by the open policy",
        decided_by="policy",
        at=NOW + 5,
        grant_id=gid(1),
    )
    assert (done.state, done.decided_by, done.decided_at, done.grant_id) == (
        "granted",
        "policy",
        NOW + 5,
        gid(1),
    )
    assert done.decision == b"signed grant"
    before = raw_row(path, "access_incoming", "request_id", rid(1))
    with pytest.raises(Conflict, match="already granted by policy"):
        deny(store, 1, decided_by="operator")
    assert raw_row(path, "access_incoming", "request_id", rid(1)) == before
    assert store.incoming(rid(1)) == done


def test_decide_twice_denied_then_granted_conflicts(store: AccessStore) -> None:
    store.add_incoming(incoming(1))
    first = deny(store, 1)
    with pytest.raises(Conflict) as info:
        store.decide(
            rid(1),
            state="granted",
            decision=b"g",
            reason=None,
            message="",
            decided_by="operator",
            at=NOW + 6,
            grant_id=gid(1),
        )
    assert info.value.code == "conflict"
    assert "denied" in str(info.value)
    assert store.incoming(rid(1)) == first


def test_decide_unknown_request_is_not_found(store: AccessStore) -> None:
    with pytest.raises(NotFound):
        deny(store, 9)


@pytest.mark.parametrize(
    "changes",
    [
        {"state": "pending"},
        {"state": "granted", "grant_id": None, "reason": None},  # a grant needs its id
        {"grant_id": gid(1)},  # a denial carries no grant id
        {"reason": None},  # a denial carries its reason
        {"reason": "Not A Code"},
        {"decided_by": "someone"},
        {"decision": b""},
        {"decision": b"x" * (64 * 1024 + 1)},
        {"message": "two\nlines"},
        {"state": "granted", "grant_id": gid(1), "reason": None, "decided_by": "deadline"},
    ],
)
def test_decide_refuses_bad_fields_and_changes_nothing(
    store: AccessStore, changes: dict[str, object]
) -> None:
    store.add_incoming(incoming(1))
    with pytest.raises(InvalidInput):
        deny(store, 1, **changes)
    row = store.incoming(rid(1))
    assert row is not None
    assert row.state == "pending"


@pytest.mark.parametrize(
    "changes",
    [
        {"request_id": b""},
        {"dataset": ""},
        {"note": "bell\x07"},
        {"note": "n" * 513},
        {"validity_days": 0},
        {"state": "lost"},
        {"trace": tuple(b"e" for _ in range(9))},
        {"trace": (b"",)},
        {"request": b"r" * (64 * 1024 + 1)},
        {"decision": b"d"},  # pending with a decision
        {"state": "denied"},  # decided without its decision
    ],
)
def test_add_incoming_refuses_bad_rows(store: AccessStore, changes: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        store.add_incoming(incoming(1, **changes))
    assert store.counts()["incoming_pending"] == 0


def test_list_incoming_newest_first_filters_and_limits(store: AccessStore) -> None:
    for i in range(6):
        store.add_incoming(incoming(i, dataset=DATASET if i % 2 else DATASET + "-2"))
    store.add_incoming(incoming(10, received_at=NOW + 3))  # same time as 3: inserted later
    deny(store, 4)
    got = [r.request_id for r in store.list_incoming()]
    assert got == [rid(5), rid(4), rid(10), rid(3), rid(2), rid(1), rid(0)]
    assert [r.request_id for r in store.list_incoming(limit=2)] == [rid(5), rid(4)]
    assert [r.request_id for r in store.list_incoming(state="denied")] == [rid(4)]
    pending = store.list_incoming(state="pending", dataset=DATASET)
    assert [r.request_id for r in pending] == [rid(5), rid(10), rid(3), rid(1)]
    with pytest.raises(InvalidInput):
        store.list_incoming(state="lost")
    with pytest.raises(InvalidInput):
        store.list_incoming(limit=0)


def test_due_lists_pending_requests_past_their_deadline(store: AccessStore) -> None:
    for i in range(4):
        store.add_incoming(incoming(i, deadline=NOW + 100 - 10 * i))
    deny(store, 3)  # deadline NOW + 70, but decided
    assert [r.request_id for r in store.due(NOW + 89)] == [rid(2)]
    assert [r.request_id for r in store.due(NOW + 90)] == [rid(2), rid(1)]  # at the deadline
    assert [r.request_id for r in store.due(NOW + 100)] == [rid(2), rid(1), rid(0)]
    assert [r.request_id for r in store.due(NOW + 100, limit=1)] == [rid(2)]
    assert store.due(NOW) == []


# -- prefixes ------------------------------------------------------------------------------


def test_find_by_prefix(store: AccessStore) -> None:
    store.add_incoming(incoming(1))
    full = rid(1).hex()
    assert store.find_incoming(full).request_id == rid(1)
    assert store.find_incoming(full[:8]).request_id == rid(1)
    assert store.find_incoming(full[:9].upper()).request_id == rid(1)  # odd length, any case
    with pytest.raises(InvalidInput, match="at least 8 hex digits"):
        store.find_incoming(full[:7])
    with pytest.raises(InvalidInput):
        store.find_incoming("zz" * 8)
    other = "0" * 8 if not full.startswith("0" * 8) else "f" * 8
    with pytest.raises(NotFound):
        store.find_incoming(other)


def test_find_ambiguous_prefix(store: AccessStore) -> None:
    a = bytes.fromhex("abcdef01") + b"\x00" * 28
    b = bytes.fromhex("abcdef01") + b"\x01" * 28
    c = bytes.fromhex("abcdef02") + b"\x00" * 28
    for i, request_id in enumerate((a, b, c)):
        store.add_incoming(incoming(i, request_id=request_id))
    with pytest.raises(InvalidInput, match="ambiguous"):
        store.find_incoming("abcdef01")
    with pytest.raises(InvalidInput, match="ambiguous"):
        store.find_incoming("abcdef010")  # odd length: both continue with 0
    assert store.find_incoming("abcdef0101").request_id == b
    assert store.find_incoming("abcdef02").request_id == c
    # the range is a prefix range: its neighbours do not match
    with pytest.raises(NotFound):
        store.find_incoming("abcdef03")
    with pytest.raises(NotFound):
        store.find_incoming("abcdef00")


def test_find_outgoing_and_grant_by_prefix(store: AccessStore) -> None:
    store.add_outgoing(outgoing(1))
    store.add_grant(grant(1))
    assert store.find_outgoing(rid(1).hex()[:10]).request_id == rid(1)
    assert store.find_grant(gid(1).hex()[:8]).grant_id == gid(1)
    assert not gid(1).hex().startswith("00000000")
    with pytest.raises(NotFound):
        store.find_grant("00000000")


# -- the requester's outbox -------------------------------------------------------------


def test_outgoing_round_trip_and_private_key_not_in_repr(store: AccessStore) -> None:
    row = outgoing(1)
    store.add_outgoing(row)
    assert store.outgoing(rid(1)) == row
    assert row.reply_secret.hex() not in repr(row)
    assert "reply_secret" not in row.to_json()
    with pytest.raises(Conflict):
        store.add_outgoing(outgoing(1, purpose="marketing"))
    assert store.outgoing(rid(1)) == row


def test_outgoing_failed_may_retry_but_an_answer_is_final(store: AccessStore, path: Path) -> None:
    store.add_outgoing(outgoing(1))
    failed = store.update_outgoing(
        rid(1),
        state="failed",
        decision=None,
        reason="no_route",
        message="no gateway answered",
        at=NOW + 3,
    )
    assert (failed.state, failed.reason, failed.updated_at) == ("failed", "no_route", NOW + 3)
    granted = store.update_outgoing(
        rid(1), state="granted", decision=b"grant", reason=None, message="granted", at=NOW + 9
    )
    assert granted.decision == b"grant"
    before = raw_row(path, "access_outgoing", "request_id", rid(1))
    with pytest.raises(Conflict, match="already granted"):
        store.update_outgoing(
            rid(1), state="failed", decision=None, reason="expired", message="late", at=NOW + 20
        )
    assert raw_row(path, "access_outgoing", "request_id", rid(1)) == before
    with pytest.raises(NotFound):
        store.update_outgoing(
            rid(2), state="failed", decision=None, reason=None, message="", at=NOW
        )


def test_outgoing_refuses_a_bad_secret(store: AccessStore) -> None:
    with pytest.raises(InvalidInput):
        store.add_outgoing(outgoing(1, reply_secret=b"short"))


def test_list_outgoing_newest_first(store: AccessStore) -> None:
    for i in range(5):
        store.add_outgoing(outgoing(i))
    store.update_outgoing(
        rid(2), state="denied", decision=b"d", reason="expired", message="", at=NOW
    )
    assert [r.request_id for r in store.list_outgoing(limit=3)] == [rid(4), rid(3), rid(2)]
    assert [r.request_id for r in store.list_outgoing(state="denied")] == [rid(2)]
    assert len(store.list_outgoing(state="pending")) == 4


# -- grants ---------------------------------------------------------------------------------


def test_grants_list_active_and_revoke_once(store: AccessStore, path: Path) -> None:
    store.add_grant(grant(1))
    store.add_grant(grant(2, dataset=DATASET + "-2", not_before=NOW + 100))
    store.add_grant(grant(3, not_after=NOW + 50))
    assert [g.grant_id for g in store.list_grants()] == [gid(3), gid(2), gid(1)]
    assert [g.grant_id for g in store.list_grants(dataset=DATASET)] == [gid(3), gid(1)]
    assert [g.grant_id for g in store.list_grants(active_at=NOW + 10)] == [gid(3), gid(1)]
    assert [g.grant_id for g in store.list_grants(active_at=NOW + 60)] == [gid(1)]
    revoked = store.revoke_grant(gid(1), revocation=b"signed rev", at=NOW + 70, reason="misuse")
    assert (revoked.revoked_at, revoked.revocation, revoked.revocation_reason) == (
        NOW + 70,
        b"signed rev",
        "misuse",
    )
    assert not revoked.active_at(NOW + 70)
    assert revoked.active_at(NOW + 69)
    assert [g.grant_id for g in store.list_grants(active_at=NOW + 69)] == [gid(1)]
    assert [g.grant_id for g in store.list_grants(active_at=NOW + 101)] == [gid(2)]
    before = raw_row(path, "access_grants", "grant_id", gid(1))
    with pytest.raises(Conflict, match="already revoked"):
        store.revoke_grant(gid(1), revocation=b"again", at=NOW + 80, reason="")
    assert raw_row(path, "access_grants", "grant_id", gid(1)) == before
    with pytest.raises(NotFound):
        store.revoke_grant(gid(9), revocation=b"r", at=NOW, reason="")
    with pytest.raises(Conflict):
        store.add_grant(grant(1))


def test_grant_refuses_bad_rows(store: AccessStore) -> None:
    with pytest.raises(InvalidInput):
        store.add_grant(grant(1, not_after=NOW))
    with pytest.raises(InvalidInput):
        store.add_grant(grant(1, revoked_at=NOW))  # without its revocation
    assert store.list_grants() == []


def test_counts(store: AccessStore) -> None:
    for i in range(3):
        store.add_incoming(incoming(i))
    deny(store, 0)
    store.add_outgoing(outgoing(7))
    store.add_grant(grant(1))
    store.add_grant(grant(2))
    store.revoke_grant(gid(2), revocation=b"r", at=NOW, reason="")
    assert store.counts() == {
        "incoming_pending": 2,
        "incoming_granted": 0,
        "incoming_denied": 1,
        "outgoing_pending": 1,
        "outgoing_granted": 0,
        "outgoing_denied": 0,
        "outgoing_failed": 0,
        "grants": 2,
        "grants_revoked": 1,
    }


# -- durability and files --------------------------------------------------------------------


def test_reopened_store_sees_every_acknowledged_write(path: Path) -> None:
    with AccessStore(path) as store:
        for i in range(5):
            store.add_incoming(incoming(i))
        decided = deny(store, 2)
        store.add_outgoing(outgoing(1))
        sent = store.update_outgoing(
            rid(1), state="failed", decision=None, reason="no_route", message="m", at=NOW
        )
        store.add_grant(grant(1))
        revoked = store.revoke_grant(gid(1), revocation=b"r", at=NOW, reason="why")
        snapshot = (store.list_incoming(), store.counts())
    # no close: the process "dies" with the connection open; a second one reads the file
    with AccessStore(path) as again:
        assert again.incoming(rid(2)) == decided
        assert again.outgoing(rid(1)) == sent
        assert again.grant(gid(1)) == revoked
        assert (again.list_incoming(), again.counts()) == snapshot


def test_a_crashed_writer_loses_no_acknowledged_write(path: Path) -> None:
    code = (
        "import os, sys\n"
        "from datanet.store.access import AccessStore\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_access_store import incoming, deny\n"
        f"s = AccessStore({str(path)!r})\n"
        "for i in range(20):\n"
        "    s.add_incoming(incoming(i))\n"
        "deny(s, 7)\n"
        "os._exit(0)\n"  # no close, no commit of anything unacknowledged
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    with AccessStore(path) as store:
        assert len(store.list_incoming(limit=100)) == 20
        row = store.incoming(rid(7))
        assert row is not None
        assert row.state == "denied"


def test_the_file_is_private(path: Path) -> None:
    with AccessStore(path):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loose = path.with_name("loose.sqlite")
    loose.touch()
    os.chmod(loose, 0o644)
    with AccessStore(loose):
        pass
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600


def test_shares_the_node_database(tmp_path: Path) -> None:
    db = tmp_path / "datanet.sqlite"
    node = Storage(db)
    try:
        with AccessStore(db) as store:
            store.add_incoming(incoming(1))
        with AccessStore(db) as store:  # migrations run once; the node's tables untouched
            assert store.incoming(rid(1)) is not None
    finally:
        node.close()
    node = Storage(db)
    node.close()


def test_a_newer_schema_is_refused(path: Path) -> None:
    with AccessStore(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("UPDATE access_meta SET version = 99 WHERE name = 'access'")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="upgrade datanet"):
        AccessStore(path)


def test_a_damaged_trace_is_a_storage_error(store: AccessStore, path: Path) -> None:
    store.add_incoming(incoming(1))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE access_incoming SET trace = x'c1'")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="damaged"):
        store.incoming(rid(1))
