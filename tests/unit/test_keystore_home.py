"""datanet.node.home: the data directory (layout, node key, certificates, trust)."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import platformdirs
import pytest

from datanet.errors import (
    CertificateExpired,
    CertificateRevoked,
    DecodeError,
    NotFound,
    ScopeError,
    SignatureError,
    StaleRecord,
    WrongPassphrase,
)
from datanet.node.config import load_config
from datanet.node.home import (
    AlreadyInitialized,
    Home,
    HomeError,
    NotInitialized,
    certificate_status,
    resolve_data_dir,
)
from datanet.node.paths import HomeLayout
from identity.certs import Role, issue_certificate, issue_revocation, parse_certificate
from identity.keys import KeyPair
from identity.keystore import KdfParams, PassphraseRequired

FAST = KdfParams(n=2**8, r=8, p=1)
DAY = 86400


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home", kdf=FAST)
    h.init()
    return h


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"DATANET_HOME": str(tmp_path / "env")}
    assert resolve_data_dir(tmp_path / "x", env) == tmp_path / "x"
    assert resolve_data_dir(None, env) == tmp_path / "env"
    assert resolve_data_dir(None, {}) == Path(platformdirs.user_data_dir("datanet"))
    monkeypatch.setenv("DATANET_HOME", str(tmp_path / "fromenv"))
    assert Home.resolve().path == tmp_path / "fromenv"
    assert Home.resolve(tmp_path / "explicit").path == tmp_path / "explicit"


def test_init_layout(tmp_path: Path) -> None:
    h = Home(tmp_path / "home", kdf=FAST)
    assert not h.is_initialized()
    key = h.init()
    assert h.is_initialized()
    assert _mode(h.path) == 0o700
    assert _mode(h.node_key_path) == 0o600
    for d in (h.certs_dir, h.layout.orgs_dir, h.revocations_dir):
        assert d.is_dir()
    assert h.node_peer_id() == key.peer_id
    assert h.load_node_key().seed() == key.seed()
    assert not h.node_key_encrypted()
    # config.toml is the documented defaults and loads with datanet.node.config.
    config = load_config(h.config_path)
    assert config.values["network.admission"] == "members"
    assert config.values["api.address"] == "127.0.0.1:5080"
    assert tomllib.loads(h.trust_path.read_text()) == {"accept_any": False, "trusted": []}
    assert h.database_path == h.path / "datanet.sqlite"


def test_init_never_replaces_the_node_key(home: Home) -> None:
    before = home.node_key_path.read_bytes()
    with pytest.raises(AlreadyInitialized):
        home.init()
    assert home.node_key_path.read_bytes() == before


def test_encrypted_node_key(tmp_path: Path) -> None:
    h = Home(tmp_path / "h", kdf=FAST)
    key = h.init("s3cret")
    assert h.node_key_encrypted()
    assert h.node_peer_id() == key.peer_id  # no passphrase needed for the id
    with pytest.raises(PassphraseRequired):
        h.load_node_key()
    with pytest.raises(WrongPassphrase):
        h.load_node_key("nope")
    assert h.load_node_key("s3cret").public_key == key.public_key


def test_uninitialized_errors(tmp_path: Path) -> None:
    h = Home(tmp_path / "none")
    for call in (h.node_peer_id, h.load_node_key, h.certificates, h.node_key_encrypted):
        with pytest.raises(NotInitialized):
            call()
    assert isinstance(NotInitialized("x"), NotFound)


def _cert(org: KeyPair, node: KeyPair, now: int, **kw: object) -> bytes:
    args: dict[str, object] = {
        "not_before": now - DAY,
        "not_after": now + 30 * DAY,
        "serial": 1,
        "org_name": "acme",
    }
    args.update(kw)
    roles = args.pop("roles", {Role.PUBLISHER})
    return issue_certificate(org, node.peer_id, roles, **args)  # type: ignore[arg-type]


def test_install_certificate_and_chain(home: Home, org_key: KeyPair, now: int) -> None:
    node = home.load_node_key()
    data = _cert(org_key, node, now)
    cert = home.install_certificate(data, now)
    assert cert.org == org_key.org_id
    assert home.membership_chain(now) == [data]
    assert home.membership_chain(now, org=org_key.org_id, role=Role.PUBLISHER) == [data]
    # Installing trusts the org (under the certificate's org name).
    assert [(t.org, t.name) for t in home.trusted_orgs()] == [(org_key.org_id, "acme")]
    home.trust_store().verify_chain([data], now=now, node=node.peer_id)
    assert [c.raw for c in home.certificates()] == [data]


def test_chain_selection(home: Home, org_key: KeyPair, other_org_key: KeyPair, now: int) -> None:
    node = home.load_node_key()
    old = _cert(org_key, node, now, serial=1, not_before=now - 2 * DAY)
    new = _cert(org_key, node, now, serial=2, roles={Role.GATEWAY})
    other = _cert(other_org_key, node, now, serial=1, org_name="beta")
    for data in (old, new, other):
        home.install_certificate(data, now)
    assert home.membership_chain(now, org=org_key.org_id) == [new]  # newest first
    assert home.membership_chain(now, org=org_key.org_id, role=Role.PUBLISHER) == [old]
    assert home.membership_chain(now, org=other_org_key.org_id) == [other]
    with pytest.raises(NotFound, match="with role requester"):
        home.membership_chain(now, role=Role.REQUESTER)
    with pytest.raises(NotFound):
        home.membership_chain(now + 31 * DAY)  # all expired by then


def test_install_refuses_foreign_expired_forged_revoked(
    home: Home, org_key: KeyPair, other_node_key: KeyPair, now: int
) -> None:
    node = home.load_node_key()
    with pytest.raises(ScopeError, match="not this node"):
        home.install_certificate(_cert(org_key, other_node_key, now), now)
    with pytest.raises(CertificateExpired):
        home.install_certificate(_cert(org_key, node, now, not_after=now), now)
    tampered = bytearray(_cert(org_key, node, now))
    tampered[-1] ^= 1
    with pytest.raises((SignatureError, DecodeError)):
        home.install_certificate(bytes(tampered), now)
    with pytest.raises(DecodeError):
        home.install_certificate(b"not a certificate", now)
    home.add_revocation(issue_revocation(org_key, [1], sequence=1, issued_at=now))
    with pytest.raises(CertificateRevoked):
        home.install_certificate(_cert(org_key, node, now), now)
    assert list(home.certs_dir.iterdir()) == []
    assert home.trusted_orgs() == []


def test_damaged_certificate_file_is_skipped(home: Home, org_key: KeyPair, now: int) -> None:
    node = home.load_node_key()
    data = _cert(org_key, node, now)
    home.install_certificate(data, now)
    (home.certs_dir / "junk.cert").write_bytes(b"garbage")
    assert [c.raw for c in home.certificates()] == [data]


def test_revocations(home: Home, org_key: KeyPair, now: int) -> None:
    node = home.load_node_key()
    data = _cert(org_key, node, now, serial=3)
    home.install_certificate(data, now)
    rev = home.add_revocation(issue_revocation(org_key, [3], sequence=2, issued_at=now))
    assert rev.sequence == 2
    assert certificate_status(home.certificates()[0].cert, now, home.trust_store()) == "revoked"
    with pytest.raises(NotFound):
        home.membership_chain(now)
    with pytest.raises(StaleRecord):
        home.add_revocation(issue_revocation(org_key, [], sequence=1, issued_at=now))
    with pytest.raises(StaleRecord):
        home.add_revocation(issue_revocation(org_key, [], sequence=2, issued_at=now))
    assert home.trust_store().is_revoked(org_key.org_id, 3)
    # A newer list replaces the held one.
    home.add_revocation(issue_revocation(org_key, [], sequence=3, issued_at=now))
    assert home.membership_chain(now) == [data]


def test_certificate_status(home: Home, org_key: KeyPair, now: int) -> None:
    cert = parse_certificate(_cert(org_key, home.load_node_key(), now))
    assert certificate_status(cert, now) == "valid"
    assert certificate_status(cert, now - 2 * DAY) == "not_yet_valid"
    assert certificate_status(cert, now + 30 * DAY) == "expired"


def test_trust_file(home: Home, org_key: KeyPair, other_org_key: KeyPair) -> None:
    assert home.trust(org_key.org_id)
    assert not home.trust(org_key.org_id, "acme")  # already trusted; gains a name
    assert home.trusted_orgs()[0].name == "acme"
    assert home.trust(other_org_key.org_id, "beta")
    store = home.trust_store()
    assert store.trusted == {org_key.org_id, other_org_key.org_id}
    assert not store.accept_any
    home.set_accept_any(True)
    assert home.trust_store().accept_any
    assert home.untrust(org_key.org_id)
    assert not home.untrust(org_key.org_id)
    assert [t.org for t in home.trusted_orgs()] == [other_org_key.org_id]


@pytest.mark.parametrize(
    "text",
    [
        "accept_any = 'yes'\n",
        "trusted = [{ name = 'x' }]\n",
        "trusted = [{ id = 'did:key:nope' }]\n",
        "this is not toml",
        "trusted = 5\n",
    ],
)
def test_damaged_trust_file(home: Home, text: str) -> None:
    home.trust_path.write_text(text)
    with pytest.raises(HomeError):
        home.trust_store()


def test_unwritable_directory_is_home_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    h = Home(blocker / "home")
    with pytest.raises(HomeError):
        h.init()


def test_layout_names_are_the_on_disk_format(tmp_path: Path, org_key: KeyPair) -> None:
    # Existing data directories rely on these names: changing one is a migration.
    layout = HomeLayout(tmp_path)
    stem = str(org_key.org_id).removeprefix("did:key:")
    assert {
        "node_key": layout.node_key,
        "config": layout.config,
        "trust": layout.trust,
        "cert": layout.certificate(org_key.org_id, 7),
        "rev": layout.revocation(org_key.org_id),
        "org_key": layout.org_key("acme"),
        "org_state": layout.org_state("acme"),
        "org_rev": layout.org_revocation("acme"),
        "database": layout.database,
        "catalog": layout.catalog,
        "pid": layout.pid_file,
        "token": layout.api_token,
        "url": layout.api_url,
    } == {
        "node_key": tmp_path / "node.key",
        "config": tmp_path / "config.toml",
        "trust": tmp_path / "trust.toml",
        "cert": tmp_path / "certs" / f"{stem}-7.cert",
        "rev": tmp_path / "revocations" / f"{stem}.rev",
        "org_key": tmp_path / "orgs" / "acme.key",
        "org_state": tmp_path / "orgs" / "acme.toml",
        "org_rev": tmp_path / "orgs" / "acme.rev",
        "database": tmp_path / "datanet.sqlite",
        "catalog": tmp_path / "catalog.sqlite",
        "pid": tmp_path / "datanet.pid",
        "token": tmp_path / "api.token",
        "url": tmp_path / "api.url",
    }
    assert Home(tmp_path).layout == layout
