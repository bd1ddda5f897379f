"""GET_VALUE quorum: the walk ends once enough peers returned a valid value."""

from __future__ import annotations

from routing.lookup import Finished, GetValueLookup, NodeResponded, Poll, SendRequest, ValueResult
from routing.wire import Message, MessageType, Peer, Record


class _SeqValidator:
    """Values are b"<seq>"; every value is valid, the highest wins."""

    def validate(self, key: bytes, value: bytes, now: int) -> None:
        int(value)

    def select(self, key: bytes, values: list[bytes]) -> int:
        return max(range(len(values)), key=lambda i: (int(values[i]), -i))


def _run(quorum: int, values: dict[bytes, bytes]) -> tuple[ValueResult, int]:
    peers = [Peer(bytes([i]) * 8) for i in range(1, 11)]
    lookup = GetValueLookup(
        1,
        b"/t/key",
        peers,
        validator=_SeqValidator(),
        self_id=b"\x00" * 8,
        now=0.0,
        quorum=quorum,
        k=10,
        alpha=3,
    )
    asked = 0
    pending: list[bytes] = []
    action = lookup.advance(Poll(), 0.0)
    while not isinstance(action, Finished):
        if isinstance(action, SendRequest):
            pending.append(action.peer.id)
            asked += 1
            action = lookup.advance(Poll(), 0.0)
            continue
        peer = pending.pop(0)
        record = Record(b"/t/key", values[peer]) if peer in values else None
        response = Message(MessageType.GET_VALUE, key=b"/t/key", record=record)
        action = lookup.advance(NodeResponded(peer, response), 0.0)
    assert isinstance(action.result, ValueResult)
    return action.result, asked


def test_quorum_stops_early_and_still_picks_the_best_collected() -> None:
    values = {bytes([i]) * 8: (b"2" if i % 2 else b"1") for i in range(1, 11)}
    full, asked_full = _run(0, values)
    early, asked_early = _run(3, values)
    assert full.best == b"2"
    assert asked_full == 10
    assert asked_early < asked_full
    assert early.best == b"2"


def test_quorum_not_reached_walks_to_the_end() -> None:
    values = {bytes([1]) * 8: b"5"}
    result, asked = _run(4, values)
    assert asked == 10
    assert result.best == b"5"
