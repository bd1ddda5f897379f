"""Unit tests of the pure witness's rules (routing/witness.py)."""

from __future__ import annotations

from routing.witness import RETRY_FIRST, Accept, Alarm, FetchConsistency, Witness

LOG = b"L" * 34
ME = b"W" * 34
R1, R2, R3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32


def see(w: Witness, size: int, root: bytes, ts: int, *, org: str = "org-b", now: float = 0.0):
    raw = f"{size}:{root[:1].hex()}:{ts}".encode()
    return w.head_seen(LOG, org, size, root, ts, raw_head=raw, from_peer=LOG, now=now)


def test_own_org_and_own_node_are_not_witnessed() -> None:
    w = Witness(ME, "org-a")
    assert see(w, 1, R1, 1, org="org-a") == []
    assert w.head_seen(ME, "org-b", 1, R1, 1, raw_head=b"x", from_peer=ME, now=0) == []
    assert len(w) == 0


def test_first_head_is_trusted_then_growth_needs_a_proof() -> None:
    w = Witness(ME, "org-a")
    [first] = see(w, 2, R1, 10)
    assert isinstance(first, Accept)
    assert first.first
    [fetch] = see(w, 5, R2, 12)
    assert isinstance(fetch, FetchConsistency)
    assert (fetch.from_size, fetch.from_root, fetch.to_size, fetch.to_root) == (2, R1, 5, R2)
    [accept] = w.proof_result(LOG, True, "", 1.0)
    assert isinstance(accept, Accept)
    assert not accept.first
    assert w.last(LOG) is not None
    assert w.last(LOG).size == 5


def test_shrink_fork_and_bad_proof_alarm_with_both_heads_as_evidence() -> None:
    w = Witness(ME, "org-a")
    see(w, 4, R1, 10)
    [shrink] = see(w, 3, R2, 11)
    assert isinstance(shrink, Alarm)
    assert shrink.kind == "shrink"
    assert shrink.heads == (b"4:01:10", b"3:02:11")
    [fork] = see(w, 4, R2, 12)
    assert isinstance(fork, Alarm)
    assert fork.kind == "fork"
    [fetch] = see(w, 9, R3, 13)
    assert isinstance(fetch, FetchConsistency)
    [bad] = w.proof_result(LOG, False, "root mismatch", 1.0)
    assert isinstance(bad, Alarm)
    assert bad.kind == "bad_proof"
    assert "root mismatch" in bad.detail
    assert w.reported(LOG)
    # reported, not trusted: the last proven head stays
    assert w.last(LOG).size == 4  # type: ignore[union-attr]


def test_an_older_head_arriving_late_is_checked_not_alarmed() -> None:
    w = Witness(ME, "org-a")
    see(w, 8, R1, 20)
    [fetch] = see(w, 5, R2, 15)
    assert isinstance(fetch, FetchConsistency)
    assert (fetch.from_size, fetch.to_size) == (5, 8)
    assert w.proof_result(LOG, True, "", 1.0) == []
    assert w.last(LOG).size == 8  # type: ignore[union-attr]


def test_one_fetch_at_a_time_and_the_newest_waiting_head_wins() -> None:
    w = Witness(ME, "org-a")
    see(w, 1, R1, 1)
    [fetch] = see(w, 3, R2, 2)
    assert see(w, 5, R3, 3) == []
    assert see(w, 4, R3, 4) == []  # smaller than the waiting one: dropped
    [accept, nxt] = w.proof_result(LOG, True, "", 1.0)
    assert isinstance(accept, Accept)
    assert isinstance(nxt, FetchConsistency)
    assert (nxt.from_size, nxt.to_size) == (3, 5)
    assert fetch.to_size == 3


def test_unreachable_log_node_is_retried_later_without_alarm() -> None:
    w = Witness(ME, "org-a")
    see(w, 1, R1, 1)
    see(w, 3, R2, 2, now=100.0)
    assert w.proof_failed(LOG, "unreachable", 100.0) == []
    assert w.tick(100.0 + RETRY_FIRST - 0.1) == []
    assert w.next_deadline() == 100.0 + RETRY_FIRST
    [again] = w.tick(100.0 + RETRY_FIRST)
    assert isinstance(again, FetchConsistency)
    assert again.to_size == 3
    assert not w.reported(LOG)


def test_a_log_whose_heads_change_organization_is_a_bad_head() -> None:
    w = Witness(ME, "org-a")
    see(w, 1, R1, 1)
    [alarm] = see(w, 2, R2, 2, org="org-c")
    assert isinstance(alarm, Alarm)
    assert alarm.kind == "bad_head"


def test_restart_from_stored_heads() -> None:
    w = Witness(ME, "org-a")
    [accept] = see(w, 4, R1, 10)
    assert isinstance(accept, Accept)
    again = Witness(ME, "org-a", logs=[accept.head])
    [fork] = see(again, 4, R2, 11)
    assert isinstance(fork, Alarm)
    assert fork.kind == "fork"


def test_the_same_forged_tree_signed_again_raises_once_a_new_one_again() -> None:
    w = Witness(ME, "org-a")
    see(w, 4, R1, 10)
    [fork] = see(w, 4, R2, 11)
    assert isinstance(fork, Alarm)
    assert see(w, 4, R2, 12) == []  # re-signed, same tree: already reported
    [again] = see(w, 4, R3, 13)
    assert isinstance(again, Alarm)
    assert again.kind == "fork"
