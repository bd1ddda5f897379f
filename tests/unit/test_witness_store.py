"""The witness store: last heads per log and alarms, bounded, across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from datanet.errors import InvalidInput
from datanet.store.audit import AuditLog
from datanet.store.witness import WitnessedHead, WitnessStore
from identity.keys import KeyPair


def head(n: int, size: int = 3, at: float = 0.0) -> WitnessedHead:
    node = KeyPair.generate().peer_id.to_bytes() if n < 0 else bytes([n]) * 34
    return WitnessedHead(
        node, "did:key:zorg", size, bytes([size]) * 32, 100 + size, b"raw%d" % size, b"p", at
    )


def test_last_heads_survive_a_restart_and_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    with WitnessStore(path, reported_by="me", max_logs=3) as store:
        for n in range(5):
            store.put_head(head(n, at=float(n)))
        store.put_head(head(1, size=9, at=10.0))  # replaces node 1's head
        assert store.mark_cosigned(bytes([1]) * 34, b"raw9")
        assert not store.mark_cosigned(bytes([1]) * 34, b"raw3")  # not its last head
    with WitnessStore(path, reported_by="me", max_logs=3) as store:
        kept = store.heads()
        assert [(h.log_node[0], h.size, h.cosigned) for h in kept] == [
            (3, 3, False),
            (4, 3, False),
            (1, 9, True),
        ]


def test_alarms_newest_first_bounded_with_evidence(tmp_path: Path) -> None:
    with WitnessStore(tmp_path / "w.sqlite", reported_by="12D3me", max_alarms=3) as store:
        for i in range(5):
            store.add_alarm(
                at=float(i),
                kind="fork",
                log_node=b"L" * 34,
                log_org="org\x00b",
                detail=f"d{i}\n",
                heads=[b"h1", b"h2"],
            )
        alarms = store.alarms(10)
        assert [a.at for a in alarms] == [4.0, 3.0, 2.0]
        assert alarms[0].heads == (b"h1", b"h2")
        js = alarms[0].to_json()
        assert js["reported_by"] == "12D3me"
        assert js["log_org"] == "org b"  # control characters never kept
        assert js["detail"] == "d4 "
        assert js["heads"] == ["aDE=", "aDI="]
        with pytest.raises(InvalidInput):
            store.add_alarm(at=0, kind="weird", log_node=b"L", log_org="", detail="", heads=[])
        with pytest.raises(InvalidInput):
            store.alarms(0)


def test_shares_a_file_with_the_audit_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path)
    with WitnessStore(path, reported_by="me") as store:
        store.put_head(head(7))
        assert log.size == 0
        assert len(store.heads()) == 1
    log.close()
