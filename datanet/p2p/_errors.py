"""Translate py-libp2p's exceptions into datanet's, once, at the adapter's edge.

Every call into py-libp2p that can fail runs inside :func:`translate`, which maps
the library's exception zoo (and ``trio.TooSlowError`` from our own deadlines)
onto :mod:`datanet.errors`, grouped by what the caller can do:

* :class:`~datanet.errors.PeerUnreachable` - no connection could be made; try
  another address or peer later.
* :class:`~datanet.errors.Timeout` - the peer did not answer in time.
* :class:`~datanet.errors.RemoteProtocolError` - the peer broke a protocol
  (junk frames, oversized messages, wrong message type, unsupported protocol).
* :class:`~datanet.errors.NetworkError` - the stream or connection broke.

Invariants:
* ``DatanetError`` passes through untouched; ``trio.Cancelled`` and other
  ``BaseException`` s are never caught.
* The original exception is kept as ``__cause__`` for debugging but its type
  never escapes :mod:`datanet.p2p`.
"""

from __future__ import annotations

import trio

from datanet.errors import (
    DatanetError,
    NetworkError,
    PeerUnreachable,
    RemoteProtocolError,
    Timeout,
    VerificationError,
)
from datanet.p2p._libp2p import (
    BaseLibp2pError,
    IncompleteReadError,
    IOException,
    MuxedConnError,
    MuxedStreamError,
    OpenConnectionError,
    ParseError,
    StreamEOF,
    StreamReset,
    SwarmException,
    UpgradeFailure,
)

__all__ = [
    "AdmissionRefused",
    "FrameTooLarge",
    "ProtocolNotSupported",
    "RemoteError",
    "StreamClosedByPeer",
    "translate",
]


class AdmissionRefused(VerificationError):
    """Raised when a peer fails (or we fail) admission on ``/datanet/id/1.0.0``.

    The peer's certificate chain is missing, invalid, untrusted, expired or
    revoked for this network's admission mode, or the peer refused ours.
    """

    code = "admission_refused"


class ProtocolNotSupported(RemoteProtocolError):
    """Raised when the peer does not speak the protocol we asked for."""

    code = "protocol_not_supported"


class FrameTooLarge(RemoteProtocolError):
    """Raised when a peer announces or sends a frame above the stream's size limit."""

    code = "frame_too_large"


class StreamClosedByPeer(NetworkError):
    """Raised when the peer closed or reset the stream before the exchange finished."""

    code = "stream_closed"


class RemoteError(DatanetError):
    """Raised when the peer's handler answered a request with an error.

    Attributes:
        remote_code: the ``code`` of the error the peer's handler raised.
    """

    code = "remote_error"

    def __init__(self, remote_code: str, message: str) -> None:
        super().__init__(message)
        self.remote_code = remote_code


class translate:  # used like a function: `with translate("kad request"):`
    """Run a block of py-libp2p calls, re-raising failures as datanet errors.

    A class rather than a ``@contextmanager`` generator: it wraps every frame
    read and write, and a generator per use cost more than the I/O's own checks.

    Args:
        what: a short description for the message ("dial 12D3KooW…", "kad request").

    Raises:
        PeerUnreachable, Timeout, RemoteProtocolError, StreamClosedByPeer, NetworkError.
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, DatanetError):
            return  # success, cancellation and datanet's own errors pass through
        what = self.what
        if isinstance(exc, trio.TooSlowError):
            raise Timeout(f"{what}: timed out") from None
        if isinstance(exc, SwarmException | OpenConnectionError | UpgradeFailure):
            raise PeerUnreachable(f"{what}: {exc}") from exc
        if isinstance(exc, StreamEOF | StreamReset | IncompleteReadError):
            raise StreamClosedByPeer(f"{what}: the peer closed or reset the stream") from exc
        if isinstance(exc, ParseError):
            raise RemoteProtocolError(f"{what}: {exc}") from exc
        if isinstance(
            exc,
            IOException
            | MuxedStreamError
            | MuxedConnError
            | trio.BrokenResourceError
            | BaseLibp2pError
            | OSError
            | trio.ClosedResourceError,
        ):
            raise NetworkError(f"{what}: {exc}") from exc
        raise NetworkError(f"{what}: unexpected {type(exc).__name__}: {exc}") from exc
