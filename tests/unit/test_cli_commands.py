"""CLI: init, id, org create|list|issue|revoke, cert install|list, trust … (CliRunner)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cli.app import (
    EXIT_CODES,
    EXIT_INVALID,
    EXIT_KEYSTORE,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    EXIT_VERIFY,
    CliContext,
)
from cli.main import datanet
from datanet.testing.clock import DAY, NOW, ManualClock
from identity.certs import Role, issue_certificate, issue_revocation, parse_certificate
from identity.keys import KeyPair, PeerId
from identity.keystore import KdfParams

FAST = KdfParams(n=2**8, r=8, p=1)

Run = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Invoke ``datanet --data-dir <tmp>/home ARGS`` in <tmp>, at a fixed time."""
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str, now: int = NOW, env: dict[str, str | None] | None = None) -> Result:
        runner = CliRunner()
        full_env: dict[str, str | None] = {"DATANET_PASSPHRASE": None, "DATANET_HOME": None}
        full_env.update(env or {})
        obj = CliContext(clock=ManualClock(now), kdf=FAST)
        return runner.invoke(
            datanet, ["--data-dir", str(tmp_path / "home"), *args], obj=obj, env=full_env
        )

    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def js(result: Result) -> object:
    return json.loads(ok(result).stdout)


# -- init / id ---------------------------------------------------------------------


def test_init_and_id(run: Run, tmp_path: Path) -> None:
    result = ok(run("init"))
    assert "Initialized datanet node" in result.stdout
    assert "unencrypted" in result.stderr
    peer = result.stdout.split("peer id: ")[1].strip()
    assert peer.startswith("12D3KooW")
    doc = js(run("id", "--json"))
    assert doc == {
        "peer_id": peer,
        "data_dir": str(tmp_path / "home"),
        "key_encrypted": False,
        "memberships": [],
        "orgs": [],
        "trusted": [],
        "accept_any": False,
    }
    assert js(run("--json", "id")) == doc  # the global flag works too
    text = ok(run("id")).stdout
    assert peer in text
    assert "memberships: none" in text


def test_init_json(run: Run) -> None:
    doc = js(run("init", "--json"))
    assert isinstance(doc, dict)
    assert doc["key_encrypted"] is False


def test_init_twice_refused(run: Run, tmp_path: Path) -> None:
    ok(run("init"))
    key = (tmp_path / "home" / "node.key").read_bytes()
    result = run("init")
    assert result.exit_code == 1
    assert "already holds a node key" in result.stderr
    assert "Traceback" not in result.output
    assert (tmp_path / "home" / "node.key").read_bytes() == key


def test_init_with_passphrase_file_and_env(run: Run, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("hunter2\n")
    doc = js(run("init", "--json", "--passphrase-file", str(tmp_path / "pw")))
    assert isinstance(doc, dict)
    assert doc["key_encrypted"] is True
    assert js(run("id", "--json"))["key_encrypted"] is True  # type: ignore[index]


def test_init_with_env_passphrase(run: Run) -> None:
    doc = js(run("init", "--json", env={"DATANET_PASSPHRASE": "pw"}))
    assert doc["key_encrypted"] is True  # type: ignore[index]


def test_no_passphrase_flag_wins_over_env(run: Run) -> None:
    doc = js(run("init", "--json", "--no-passphrase", env={"DATANET_PASSPHRASE": "pw"}))
    assert doc["key_encrypted"] is False  # type: ignore[index]


def test_data_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env = {"DATANET_HOME": str(tmp_path / "envhome"), "DATANET_PASSPHRASE": None}
    result = runner.invoke(datanet, ["init"], obj=CliContext(kdf=FAST), env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "envhome" / "node.key").exists()


def test_id_uninitialized(run: Run) -> None:
    result = run("id")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "datanet init" in result.stderr
    result = run("--json", "id")
    assert result.exit_code == EXIT_NOT_FOUND
    assert json.loads(result.stderr)["error"]["code"] == "not_initialized"


def test_version_and_help(run: Run) -> None:
    assert ok(run("--version")).stdout.startswith("datanet ")
    text = ok(run("--help")).stdout
    assert "Exit codes" in text
    result = run("no-such-command")
    assert result.exit_code == EXIT_USAGE
    assert "Usage: datanet" in result.output


# -- org ------------------------------------------------------------------------------


def test_org_create_list(run: Run, tmp_path: Path) -> None:
    ok(run("init"))
    doc = js(run("org", "create", "acme", "--json"))
    assert isinstance(doc, dict)
    assert doc["org"].startswith("did:key:z6Mk")
    listed = js(run("org", "list", "--json"))
    assert listed == [
        {
            "name": "acme",
            "org": doc["org"],
            "key_encrypted": False,
            "next_serial": 1,
            "issued": 0,
            "revoked": [],
            "revocation_sequence": 0,
        }
    ]
    text = ok(run("org", "list")).stdout
    assert "acme" in text
    assert doc["org"] in text  # the did is printed verbatim (no emoji for ":key:")
    key = (tmp_path / "home" / "orgs" / "acme.key").read_bytes()
    result = run("org", "create", "acme")
    assert result.exit_code == EXIT_KEYSTORE
    assert "refusing to overwrite" in result.stderr
    assert (tmp_path / "home" / "orgs" / "acme.key").read_bytes() == key


def test_org_list_empty_and_bad_name(run: Run) -> None:
    assert "no organizations" in ok(run("org", "list")).stdout
    result = run("org", "create", "Bad/Name")
    assert result.exit_code == EXIT_INVALID
    assert "bad organization name" in result.stderr


def _setup_org(run: Run, *extra: str) -> str:
    ok(run("init"))
    doc = js(run("org", "create", "acme", "--json", *extra))
    assert isinstance(doc, dict)
    return str(doc["org"])


def test_org_issue_to_self_and_install(run: Run, tmp_path: Path) -> None:
    org = _setup_org(run)
    peer = js(run("id", "--json"))["peer_id"]  # type: ignore[index]
    doc = js(
        run("org", "issue", "--org", "acme", "--role", "publisher", "--role", "gateway", "--json")
    )
    assert doc == {
        "org": org,
        "org_name": "acme",
        "node": peer,
        "serial": 1,
        "roles": ["gateway", "publisher"],
        "not_before": NOW,
        "not_after": NOW + 365 * DAY,
        "file": "acme-1.cert",
    }
    cert = parse_certificate((tmp_path / "acme-1.cert").read_bytes())
    assert cert.roles == {Role.PUBLISHER, Role.GATEWAY}
    installed = js(run("cert", "install", "acme-1.cert", "--json"))
    assert installed["serial"] == 1  # type: ignore[index]
    ident = js(run("id", "--json"))
    assert isinstance(ident, dict)
    assert [m["status"] for m in ident["memberships"]] == ["valid"]
    assert ident["trusted"] == [org]
    assert "acme" in ok(run("id")).stdout
    assert "valid" in ok(run("cert", "list")).stdout
    [entry] = js(run("cert", "list", "--json"))  # type: ignore[misc]
    assert entry["status"] == "valid"
    # Serials increase.
    doc2 = js(run("org", "issue", "--org", "acme", "--role", "admin", "--out", "x.cert", "--json"))
    assert doc2["serial"] == 2  # type: ignore[index]
    assert (tmp_path / "x.cert").exists()
    text = ok(run("org", "issue", "--org", "acme", "--role", "admin", "--days", "3")).stdout
    assert "Issued certificate 3" in text


def test_org_issue_to_other_node(run: Run, tmp_path: Path, other_node_key: KeyPair) -> None:
    _setup_org(run)
    peer = str(other_node_key.peer_id)
    doc = js(run("org", "issue", "--org", "acme", "--node", peer, "--role", "requester", "--json"))
    assert doc["node"] == peer  # type: ignore[index]
    # Installing a certificate of another node is refused (verification failure).
    result = run("cert", "install", "acme-1.cert")
    assert result.exit_code == EXIT_VERIFY
    assert "not this node" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--org", "nope", "--role", "admin"], EXIT_NOT_FOUND, "no organization named"),
        (["--org", "acme", "--role", "admin", "--node", "12D3KooWbad"], EXIT_INVALID, "peer id"),
        (["--org", "acme", "--role", "root"], EXIT_USAGE, "root"),
        (["--org", "acme"], EXIT_USAGE, "--role"),
        (["--org", "acme", "--role", "admin", "--days", "0"], EXIT_USAGE, "--days"),
    ],
)
def test_org_issue_errors(run: Run, args: list[str], code: int, message: str) -> None:
    _setup_org(run)
    result = run("org", "issue", *args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert js(run("org", "list", "--json"))[0]["next_serial"] == 1  # type: ignore[index]


def test_org_issue_refuses_to_overwrite_out(run: Run, tmp_path: Path) -> None:
    _setup_org(run)
    (tmp_path / "taken.cert").write_bytes(b"keep me")
    result = run("org", "issue", "--org", "acme", "--role", "admin", "--out", "taken.cert")
    assert result.exit_code == EXIT_INVALID
    assert (tmp_path / "taken.cert").read_bytes() == b"keep me"
    assert js(run("org", "list", "--json"))[0]["next_serial"] == 1  # type: ignore[index]
    ok(run("org", "issue", "--org", "acme", "--role", "admin", "--out", "taken.cert", "--force"))
    assert parse_certificate((tmp_path / "taken.cert").read_bytes()).serial == 1


def test_encrypted_org_key(run: Run, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("orgpass")
    _setup_org(run, "--passphrase-file", str(tmp_path / "pw"))
    # No passphrase and no terminal: a clear keystore error.
    result = run("org", "issue", "--org", "acme", "--role", "admin")
    assert result.exit_code == EXIT_KEYSTORE
    assert "--passphrase-file" in result.stderr
    (tmp_path / "bad").write_text("wrong\n")
    result = run("org", "issue", "--org", "acme", "--role", "admin", "--passphrase-file", "bad")
    assert result.exit_code == EXIT_KEYSTORE
    assert "wrong passphrase" in result.stderr
    assert "Traceback" not in result.output
    ok(run("org", "issue", "--org", "acme", "--role", "admin", "--passphrase-file", "pw"))
    ok(
        run(
            "org",
            "issue",
            "--org",
            "acme",
            "--role",
            "admin",
            env={"DATANET_PASSPHRASE": "orgpass"},
        )
    )
    result = run("org", "issue", "--org", "acme", "--role", "admin", "--passphrase-file", "missing")
    assert result.exit_code == EXIT_NOT_FOUND


def test_org_revoke(run: Run, tmp_path: Path) -> None:
    _setup_org(run)
    ok(run("org", "issue", "--org", "acme", "--role", "publisher"))
    ok(run("org", "issue", "--org", "acme", "--role", "publisher"))
    ok(run("cert", "install", "acme-2.cert"))
    doc = js(run("org", "revoke", "--org", "acme", "1", "--reason", "lost", "--json"))
    assert doc["sequence"] == 1  # type: ignore[index]
    assert doc["revoked"] == [1]  # type: ignore[index]
    doc = js(run("org", "revoke", "--org", "acme", "2", "--out", "acme.rev", "--json"))
    assert (doc["sequence"], doc["revoked"]) == (2, [1, 2])  # type: ignore[index]
    assert (tmp_path / "acme.rev").exists()
    ident = js(run("id", "--json"))
    assert [m["status"] for m in ident["memberships"]] == ["revoked"]  # type: ignore[index]
    result = run("org", "revoke", "--org", "acme", "7")
    assert result.exit_code == EXIT_INVALID
    assert "never issued" in result.stderr
    assert run("org", "revoke", "--org", "acme").exit_code == EXIT_USAGE
    assert run("org", "revoke", "--org", "acme", "0").exit_code == EXIT_USAGE
    assert run("org", "revoke", "--org", "nope", "1").exit_code == EXIT_NOT_FOUND
    text = ok(run("org", "revoke", "--org", "acme", "1")).stdout
    assert "Revocation list 3" in text


# -- cert / trust -----------------------------------------------------------------------


def test_cert_install_errors(run: Run, tmp_path: Path, org_key: KeyPair) -> None:
    ok(run("init"))
    assert run("cert", "install", "missing.cert").exit_code == EXIT_NOT_FOUND
    (tmp_path / "junk.cert").write_bytes(b"\x93junk")
    result = run("cert", "install", "junk.cert")
    assert result.exit_code == EXIT_INVALID
    assert "Traceback" not in result.output
    peer = js(run("id", "--json"))["peer_id"]  # type: ignore[index]
    data = issue_certificate(
        org_key,
        PeerId.parse(peer),
        {Role.ADMIN},
        not_before=NOW - 2 * DAY,
        not_after=NOW - DAY,
        serial=1,
    )
    (tmp_path / "old.cert").write_bytes(data)
    result = run("cert", "install", "old.cert")
    assert result.exit_code == EXIT_VERIFY
    assert "expired" in result.stderr
    assert "no certificates installed" in ok(run("cert", "list")).stdout


def test_trust_commands(run: Run, tmp_path: Path, org_key: KeyPair) -> None:
    ok(run("init"))
    org = str(org_key.org_id)
    assert js(run("trust", "add", org, "--name", "acme", "--json")) == {
        "org": org,
        "name": "acme",
        "added": True,
    }
    assert "already trusted" in ok(run("trust", "add", org)).stdout
    assert js(run("trust", "list", "--json")) == {
        "accept_any": False,
        "trusted": [{"org": org, "name": "acme", "revoked": []}],
    }
    ok(run("trust", "accept-any", "on"))
    assert js(run("trust", "list", "--json"))["accept_any"] is True  # type: ignore[index]
    text = ok(run("trust", "list")).stdout
    assert "accept any org: yes" in text
    assert org in text
    # Revocations.
    (tmp_path / "r1").write_bytes(issue_revocation(org_key, [4], sequence=2, issued_at=NOW))
    (tmp_path / "r0").write_bytes(issue_revocation(org_key, [], sequence=1, issued_at=NOW))
    doc = js(run("trust", "add-revocation", "r1", "--json"))
    assert doc == {"org": org, "sequence": 2, "revoked": [4]}
    result = run("trust", "add-revocation", "r0")
    assert result.exit_code == EXIT_VERIFY
    assert "sequence 2" in result.stderr
    assert js(run("trust", "list", "--json"))["trusted"][0]["revoked"] == [4]  # type: ignore[index]
    (tmp_path / "junk").write_bytes(b"junk")
    assert run("trust", "add-revocation", "junk").exit_code == EXIT_INVALID
    # Bad ids and removal.
    assert run("trust", "add", "did:key:nope").exit_code == EXIT_INVALID
    assert run("trust", "add", org, "--name", "Bad Name").exit_code == EXIT_INVALID
    assert "No longer trusting" in ok(run("trust", "remove", org)).stdout
    assert "was not trusted" in ok(run("trust", "remove", org)).stdout
    ok(run("trust", "accept-any", "off"))
    assert js(run("trust", "list", "--json")) == {"accept_any": False, "trusted": []}
    assert "no trusted organizations" in ok(run("trust", "list")).stdout


def test_damaged_trust_file_is_a_clean_error(run: Run, tmp_path: Path) -> None:
    ok(run("init"))
    (tmp_path / "home" / "trust.toml").write_text("accept_any = [")
    result = run("trust", "list")
    assert result.exit_code == 1
    assert "not valid TOML" in result.stderr
    assert "Traceback" not in result.output


def test_insecure_node_key_is_refused(run: Run, tmp_path: Path) -> None:
    ok(run("init"))
    ok(run("org", "create", "acme"))
    (tmp_path / "home" / "orgs" / "acme.key").chmod(0o644)
    result = run("org", "issue", "--org", "acme", "--role", "admin")
    assert result.exit_code == EXIT_KEYSTORE
    assert "chmod 600" in result.stderr


# -- docs -----------------------------------------------------------------------------


def test_docs_list_every_exit_code_and_command() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    for code in EXIT_CODES:
        assert re.search(rf"^\| {code} \|", text, re.M), f"exit code {code} not documented"
    documented = set(re.findall(r"^### `datanet ([a-z-]+(?: [a-z-]+)?)", text, re.M))
    assert documented
    for entry in documented:
        group = datanet
        for word in entry.split():
            assert isinstance(group, click.Group)
            command = group.commands.get(word)
            assert command is not None, f"docs/cli.md documents a missing command: {entry}"
            group = command  # type: ignore[assignment]
    for name in ("init", "id", "org", "cert", "trust", "descriptor"):
        assert f"datanet {name}" in text, f"command {name} is not documented"
