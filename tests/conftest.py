"""Shared, deterministic fixtures: fixed keys and a fixed clock.

Keys come from fixed seeds so that failures reproduce; ``now`` is a fixed Unix
time (2024-01-01T00:00:00Z) that tests pass explicitly wherever time matters.
"""

from __future__ import annotations

import pytest

from identity.keys import KeyPair

NOW = 1_704_067_200  # 2024-01-01T00:00:00Z


@pytest.fixture
def now() -> int:
    """A fixed current time in Unix seconds."""
    return NOW


@pytest.fixture
def org_key() -> KeyPair:
    """An organization root key (seed 0x01…)."""
    return KeyPair.from_seed(bytes([1]) * 32)


@pytest.fixture
def other_org_key() -> KeyPair:
    """A second, unrelated organization key (seed 0x02…)."""
    return KeyPair.from_seed(bytes([2]) * 32)


@pytest.fixture
def node_key() -> KeyPair:
    """A node key (seed 0x03…)."""
    return KeyPair.from_seed(bytes([3]) * 32)


@pytest.fixture
def other_node_key() -> KeyPair:
    """A second node key (seed 0x04…)."""
    return KeyPair.from_seed(bytes([4]) * 32)
