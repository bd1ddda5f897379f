"""datanet.node.authority: organizations created here, their serials and revocation lists."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from datanet.errors import DecodeError, InvalidInput, NotFound, ScopeError
from datanet.node.authority import Authorities, OrgNotFound, find_org
from datanet.node.home import Home
from identity.certs import Role
from identity.keys import KeyPair
from identity.keystore import KdfParams, KeyFileExists

FAST = KdfParams(n=2**8, r=8, p=1)
DAY = 86400


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home", kdf=FAST)
    h.init()
    return h


@pytest.fixture
def ca(home: Home) -> Authorities:
    return Authorities(home)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_orgs(home: Home, ca: Authorities, node_key: KeyPair, now: int) -> None:
    key = ca.create_org("acme")
    assert _mode(home.layout.orgs_dir / "acme.key") == 0o600
    assert ca.org_id("acme") == key.org_id
    assert ca.load_org("acme").seed() == key.seed()
    enc = ca.create_org("beta", "pw")
    assert ca.load_org("beta", "pw").seed() == enc.seed()
    [acme, beta] = ca.list_orgs()
    assert (acme.name, acme.org, acme.encrypted, acme.next_serial) == ("acme", key.org_id, False, 1)
    assert beta.encrypted
    with pytest.raises(KeyFileExists):
        ca.create_org("acme")
    assert ca.org_id("acme") == key.org_id
    with pytest.raises(OrgNotFound):
        ca.load_org("gamma")
    with pytest.raises(OrgNotFound):
        ca.org_id("gamma")
    for bad in ("", "Acme", "../x", "a/b", "-x", "x" * 65):
        with pytest.raises(InvalidInput):
            ca.create_org(bad)


def test_serials_increase_and_survive_reload(
    home: Home, ca: Authorities, node_key: KeyPair, now: int
) -> None:
    key = ca.create_org("acme")
    serials = []
    for _ in range(3):
        cert, _raw = ca.issue_certificate(
            "acme", key, node_key.peer_id, [Role.GATEWAY], now=now, days=10
        )
        serials.append(cert.serial)
        assert cert.not_after == now + 10 * DAY
        assert cert.org_name == "acme"
    assert serials == [1, 2, 3]
    fresh = Authorities(Home(home.path))
    cert, _ = fresh.issue_certificate("acme", key, node_key.peer_id, ["admin"], now=now, days=1)
    assert cert.serial == 4
    assert fresh.list_orgs()[0].issued == 4
    assert _mode(home.layout.orgs_dir / "acme.toml") == 0o600


def test_issue_errors(ca: Authorities, node_key: KeyPair, other_org_key: KeyPair, now: int) -> None:
    key = ca.create_org("acme")
    with pytest.raises(InvalidInput):
        ca.issue_certificate("acme", key, node_key.peer_id, [], now=now, days=1)
    with pytest.raises(InvalidInput):
        ca.issue_certificate("acme", key, node_key.peer_id, ["root"], now=now, days=1)
    with pytest.raises(InvalidInput):
        ca.issue_certificate("acme", key, node_key.peer_id, [Role.ADMIN], now=now, days=0)
    with pytest.raises(ScopeError):
        ca.issue_certificate("acme", other_org_key, node_key.peer_id, ["admin"], now=now, days=1)
    assert ca.list_orgs()[0].next_serial == 1  # nothing consumed by failures


def test_revoke(home: Home, ca: Authorities, now: int) -> None:
    key = ca.create_org("acme")
    node = home.load_node_key()
    c1, raw1 = ca.issue_certificate("acme", key, node.peer_id, ["publisher"], now=now, days=9)
    c2, raw2 = ca.issue_certificate("acme", key, node.peer_id, ["publisher"], now=now, days=9)
    home.install_certificate(raw1, now)
    home.install_certificate(raw2, now)
    rev, data = ca.revoke("acme", key, [c1.serial], now=now, reason="lost")
    assert (rev.sequence, rev.serials, rev.reason) == (1, frozenset({1}), "lost")
    assert ca.revocation_path("acme").read_bytes() == data
    rev2, _ = ca.revoke("acme", key, [c2.serial], now=now)
    assert (rev2.sequence, rev2.serials) == (2, frozenset({1, 2}))  # cumulative
    # Applied to this node at once.
    with pytest.raises(NotFound):
        home.membership_chain(now)
    info = ca.list_orgs()[0]
    assert (info.revocation_sequence, info.revoked) == (2, frozenset({1, 2}))
    with pytest.raises(InvalidInput, match="never issued"):
        ca.revoke("acme", key, [99], now=now)
    with pytest.raises(InvalidInput):
        ca.revoke("acme", key, [], now=now)


def test_find_org(
    home: Home, ca: Authorities, org_key: KeyPair, other_org_key: KeyPair, now: int
) -> None:
    local = ca.create_org("acme")
    home.trust(other_org_key.org_id, "beta")
    assert find_org(home, "acme") == local.org_id
    assert find_org(home, "beta") == other_org_key.org_id
    assert find_org(home, str(org_key.org_id)) == org_key.org_id
    with pytest.raises(OrgNotFound):
        find_org(home, "gamma")
    with pytest.raises(DecodeError):
        find_org(home, "did:key:zzz")
