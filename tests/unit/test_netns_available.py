"""netns_available says why namespace tests cannot run (they skip, or fail in CI)."""

from __future__ import annotations

import pytest

from datanet.testing import netns


def test_not_root_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    reason = netns.netns_available()
    assert reason is not None
    assert "root" in reason


def test_no_ip_command_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda name: None)
    assert "iproute2" in (netns.netns_available() or "")


def test_bad_topologies_are_refused_before_anything_is_made() -> None:
    for orgs in ([], ["Bad"], ["a", "a"], ["a" * 17]):
        with pytest.raises(ValueError, match="organization"):
            netns.Topology(orgs)
