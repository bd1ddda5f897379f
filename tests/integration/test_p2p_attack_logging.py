"""Logs an attacker can grow (issue 12, gap 6): routine libp2p lines stay at DEBUG."""

from __future__ import annotations

import logging

import pytest

from datanet.p2p import _libp2p  # noqa: F401 - installs the logging fixes


def test_stream_state_lines_are_demoted_although_their_logger_is_created_lazily(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """py-libp2p creates net_stream's logger per stream, after datanet's filters were set."""
    caplog.set_level(logging.INFO)
    logger = logging.getLogger("libp2p.network.stream.net_stream")
    logger.info("Stream entered CLOSE_BOTH state (from OPEN)")
    logging.getLogger("libp2p.io.trio").warning("Read attempted on locally closed resource: x")
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []
