"""py-libp2p's logging habits are contained at the adapter."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

import datanet.p2p  # noqa: F401 - applies the fixes
from datanet.p2p._logging import _DowngradeRoutine


def test_swarm_connection_does_not_configure_the_root_logger() -> None:
    code = textwrap.dedent(
        """
        import logging, datanet.p2p
        import libp2p.network.connection.swarm_connection as sc
        sc.logging.debug("would call basicConfig on the root logger")
        sc.logging.warning("still a warning")
        print(len(logging.getLogger().handlers))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "0"
    assert "still a warning" in out.stderr  # the last-resort handler still shows warnings


def test_auto_connector_level_reset() -> None:
    assert logging.getLogger("libp2p.network.auto_connector").level == logging.NOTSET


def test_routine_records_become_debug(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("libp2p.network.swarm")
    with caplog.at_level(logging.DEBUG, logger="libp2p"):
        logger.warning("[ADDCONN_FAIL] add_conn failed for peer x")
        logger.warning("a real problem")
    levels = {r.getMessage(): r.levelname for r in caplog.records}
    assert levels["[ADDCONN_FAIL] add_conn failed for peer x"] == "DEBUG"
    assert levels["a real problem"] == "WARNING"


def test_routine_records_dropped_when_debug_is_off() -> None:
    record = logging.LogRecord("libp2p.x", logging.WARNING, __file__, 1, "noise", None, None)
    logging.getLogger("libp2p.x").setLevel(logging.INFO)
    try:
        assert _DowngradeRoutine(("noise",)).filter(record) is False
    finally:
        logging.getLogger("libp2p.x").setLevel(logging.NOTSET)
