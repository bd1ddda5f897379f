"""Quiet py-libp2p's logging at this layer, without touching anyone else's.

py-libp2p 0.8.1 has three habits that leak into an application's logs:

* ``libp2p.network.connection.swarm_connection`` logs through the *root* logger
  functions (``logging.debug(...)``), and the first such call runs
  ``logging.basicConfig()``: it installs a handler on the root logger of the
  whole process. Here the module's ``logging`` name is pointed at a shim that
  logs to a named logger instead.
* ``libp2p.network.auto_connector`` sets its own logger to INFO at import time,
  overriding the application's configuration. Its level is reset.
* Routine events are logged at WARNING or ERROR, often with tracebacks: a
  connection torn down during its upgrade, a peer closing a stream mid-write.
  Those records are moved down to DEBUG by a filter on the loggers that emit them.

Invariant: nothing here changes the root logger or any logger outside
``libp2p.*``; py-libp2p's real warnings still come through.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["NOISY_PATTERNS", "install"]

# (logger name prefix, substring of the message) pairs that py-libp2p logs above
# DEBUG for events that are normal in a peer-to-peer network ("" matches all).
NOISY_PATTERNS: tuple[tuple[str, str], ...] = (
    ("libp2p.network.swarm", "[ADDCONN_FAIL]"),
    ("libp2p.network.swarm", "failed to upgrade security"),
    ("libp2p.network.swarm", "Error closing connection"),
    ("libp2p.network.swarm", "Error closing transports"),
    ("libp2p.network.swarm", "Lifecycle reconcile"),
    ("libp2p.network.connection.swarm_connection", "Error"),
    ("libp2p.network.connection.swarm_connection", "Failed to set optional"),
    ("libp2p.network.connection.swarm_connection", "Could not attach on_close"),
    ("libp2p.stream_muxer.yamux.yamux", ""),
    ("libp2p.security.noise", ""),
    ("libp2p.transport.tcp.tcp", ""),
    ("libp2p.transport.upgrader", ""),
    ("libp2p.protocol_muxer", ""),
    ("libp2p.utils.connection_shutdown", ""),
    ("libp2p.network.stream.net_stream", "Stream entered"),
    ("libp2p.io.trio", "locally closed resource"),
)


class _DowngradeRoutine(logging.Filter):
    """Turn the records that match a noisy pattern into DEBUG records."""

    def __init__(self, substrings: tuple[str, ...]) -> None:
        super().__init__()
        self._substrings = substrings

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        message = str(record.msg)
        if not any(s in message for s in self._substrings):
            return True
        record.levelno = logging.DEBUG
        record.levelname = "DEBUG"
        record.exc_info = None
        record.exc_text = None
        # The logger's level check already passed for the original level.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class _ModuleLogging:
    """Stands in for the ``logging`` module inside a py-libp2p module.

    Calls such as ``logging.debug(...)`` go to a named logger, so they never run
    ``logging.basicConfig()`` on the root logger.
    """

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def __getattr__(self, attr: str) -> Any:
        if attr in {"debug", "info", "warning", "error", "exception", "critical", "log"}:
            return getattr(self._logger, attr)
        return getattr(logging, attr)


_installed = False


def install() -> None:
    """Apply the three fixes above; idempotent."""
    global _installed  # noqa: PLW0603 - one-time process-wide setup
    if _installed:
        return
    _installed = True
    name = "libp2p.network.connection.swarm_connection"
    module = sys.modules.get(name)
    if module is not None:
        module.logging = _ModuleLogging(name)  # type: ignore[attr-defined]
    logging.getLogger("libp2p.network.auto_connector").setLevel(logging.NOTSET)
    # A logger's filters see only its own records, not its children's, so the
    # filter goes on every py-libp2p logger that exists (all are created at import).
    # Some loggers are created lazily (net_stream's, per stream, at INFO): create
    # every named one now, or the filter would never reach them.
    for prefix, _ in NOISY_PATTERNS:
        logging.getLogger(prefix)
    names = [n for n in list(logging.root.manager.loggerDict) if n.startswith("libp2p")]
    for logger_name in names:
        substrings = tuple(
            s
            for prefix, s in NOISY_PATTERNS
            if logger_name == prefix or logger_name.startswith(prefix + ".")
        )
        if substrings:
            logging.getLogger(logger_name).addFilter(_DowngradeRoutine(substrings))
