"""py-libp2p exceptions are translated once, into datanet's tree."""

from __future__ import annotations

import pytest
import trio

from datanet.errors import (
    DatanetError,
    NetworkError,
    PeerUnreachable,
    RemoteProtocolError,
    Timeout,
)
from datanet.p2p import StreamClosedByPeer
from datanet.p2p._errors import translate
from datanet.p2p._libp2p import (
    IncompleteReadError,
    MuxedStreamError,
    OpenConnectionError,
    ParseError,
    StreamEOF,
    StreamReset,
    SwarmException,
    UpgradeFailure,
)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (SwarmException("x"), PeerUnreachable),
        (OpenConnectionError("x"), PeerUnreachable),
        (UpgradeFailure("x"), PeerUnreachable),
        (StreamReset("x"), StreamClosedByPeer),
        (StreamEOF("x"), StreamClosedByPeer),
        (IncompleteReadError("x"), StreamClosedByPeer),
        (ParseError("x"), RemoteProtocolError),
        (MuxedStreamError("x"), NetworkError),
        (ConnectionResetError("x"), NetworkError),
        (trio.TooSlowError(), Timeout),
        (AssertionError("py-libp2p internals"), NetworkError),
    ],
)
def test_translation(raised: Exception, expected: type[DatanetError]) -> None:
    with pytest.raises(expected) as info, translate("op"):
        raise raised
    assert type(info.value).__module__.startswith("datanet")
    assert str(info.value).startswith("op")


def test_datanet_errors_pass_through() -> None:
    original = RemoteProtocolError("kept")
    with pytest.raises(RemoteProtocolError) as info, translate("op"):
        raise original
    assert info.value is original


async def test_cancellation_is_never_translated() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        with translate("op"):
            await trio.sleep(1)
    assert scope.cancelled_caught
