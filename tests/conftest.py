"""Shared, deterministic fixtures: fixed keys and a fixed clock.

They come from :mod:`datanet.testing` (the same keys and "now" the helpers
there use by default), so that failures reproduce and test files agree.
"""

from __future__ import annotations

import signal

import pytest

from datanet.testing import clock, records
from identity.keys import KeyPair


@pytest.fixture
def now() -> int:
    """A fixed current time in Unix seconds (:data:`datanet.testing.clock.NOW`)."""
    return clock.NOW


@pytest.fixture
def org_key() -> KeyPair:
    """An organization root key (:data:`datanet.testing.records.ORG_A`)."""
    return records.ORG_A


@pytest.fixture
def other_org_key() -> KeyPair:
    """A second, unrelated organization key (:data:`datanet.testing.records.ORG_B`)."""
    return records.ORG_B


@pytest.fixture
def node_key() -> KeyPair:
    """A node key (:data:`datanet.testing.records.NODE_A`)."""
    return records.NODE_A


@pytest.fixture
def other_node_key() -> KeyPair:
    """A second node key (:data:`datanet.testing.records.NODE_B`)."""
    return records.NODE_B


def pytest_sessionstart(session: pytest.Session) -> None:
    """Let Ctrl-C reach the processes tests start, even in a suite run in the background.

    A shell starts a background job (``make test &``) with SIGINT ignored, and an
    ignored signal stays ignored across ``exec``: the daemons and ``datanet watch``
    the tests stop with SIGINT would never stop. A Python handler is reset to the
    default on ``exec``, so installing Python's own restores what a user gets.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
