"""Network-namespace tests: run as root; skip elsewhere, except in CI (CI=true), where
being unable to make namespaces is a failure, not a skip."""

from __future__ import annotations

import os

import pytest

from datanet.testing.netns import netns_available


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netns: needs root and Linux network namespaces")


@pytest.fixture(autouse=True)
def _need_netns() -> None:
    reason = netns_available()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI runs as root and must run the namespace tests: {reason}")
    pytest.skip(reason)
