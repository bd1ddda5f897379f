"""CLI: descriptor new|sign|verify|show|export, with their error paths (CliRunner)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
from click.testing import CliRunner, Result

from cli.app import (
    EXIT_INVALID,
    EXIT_KEYSTORE,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    EXIT_VERIFY,
    CliContext,
)
from cli.main import datanet
from datanet.testing.clock import DAY, NOW, ManualClock
from identity.keys import KeyPair
from identity.keystore import KdfParams

FAST = KdfParams(n=2**8, r=8, p=1)

Run = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Invoke ``datanet --data-dir <tmp>/<home> ARGS`` in <tmp>, at a fixed time."""
    monkeypatch.chdir(tmp_path)

    def invoke(
        *args: str,
        now: int = NOW,
        home: str = "home",
        env: dict[str, str | None] | None = None,
    ) -> Result:
        full_env: dict[str, str | None] = {"DATANET_PASSPHRASE": None, "DATANET_HOME": None}
        full_env.update(env or {})
        obj = CliContext(clock=ManualClock(now), kdf=FAST)
        return CliRunner().invoke(
            datanet, ["--data-dir", str(tmp_path / home), *args], obj=obj, env=full_env
        )

    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def js(result: Result) -> dict:  # type: ignore[type-arg]
    doc = json.loads(ok(result).stdout)
    assert isinstance(doc, dict)
    return doc


@pytest.fixture
def publisher(run: Run) -> str:
    """An initialized node holding a publisher certificate of its own org "acme"."""
    ok(run("init"))
    org = js(run("org", "create", "acme", "--json"))["org"]
    ok(run("org", "issue", "--org", "acme", "--role", "publisher"))
    ok(run("cert", "install", "acme-1.cert"))
    return str(org)


@pytest.fixture
def signed(run: Run, publisher: str, tmp_path: Path) -> Path:
    ok(run("descriptor", "new", "acme", "weather/stations", "--out", "w.toml"))
    text = (tmp_path / "w.toml").read_text()
    text = text.replace('title = "Untitled dataset"', 'title = "Weather stations"')
    text = text.replace("keywords = []", 'keywords = ["weather", "stations"]')
    (tmp_path / "w.toml").write_text(text)
    ok(run("descriptor", "sign", "w.toml"))
    return tmp_path / "w.dnd"


def _flip_signature(data: bytes) -> bytes:
    signature = msgpack.unpackb(data, raw=False)[4]
    i = data.index(signature)
    return data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :]


# -- new ------------------------------------------------------------------------------


def test_new_to_stdout_and_file(run: Run, publisher: str, tmp_path: Path) -> None:
    text = ok(run("descriptor", "new", "acme", "census")).stdout
    assert f'dataset_id = "dn://{publisher}/census"' in text
    text2 = ok(run("descriptor", "new", publisher, "census")).stdout
    assert text2 == text
    ok(run("descriptor", "new", "acme", "census", "--out", "c.toml"))
    assert (tmp_path / "c.toml").read_text() == text
    result = run("descriptor", "new", "acme", "other", "--out", "c.toml")
    assert result.exit_code == EXIT_INVALID
    assert (tmp_path / "c.toml").read_text() == text  # not overwritten
    ok(run("descriptor", "new", "acme", "other", "--out", "c.toml", "--force"))
    assert "/other" in (tmp_path / "c.toml").read_text()


def test_new_with_a_did_needs_no_data_dir(run: Run, org_key: KeyPair, tmp_path: Path) -> None:
    text = ok(run("descriptor", "new", str(org_key.org_id), "x", home="none")).stdout
    assert str(org_key.org_id) in text
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("org", "name", "code"),
    [
        ("nope", "x", EXIT_NOT_FOUND),
        ("acme", "Bad Name", EXIT_INVALID),
        ("acme", "a/../b", EXIT_INVALID),
        ("did:key:z6Mkbad", "x", EXIT_INVALID),
    ],
)
def test_new_errors(run: Run, publisher: str, org: str, name: str, code: int) -> None:
    result = run("descriptor", "new", org, name)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output


# -- sign / verify ----------------------------------------------------------------------


def test_sign_verify_show_export(run: Run, signed: Path, publisher: str) -> None:
    peer = js(run("id", "--json"))["peer_id"]
    doc = js(run("descriptor", "verify", "w.dnd", "--json"))
    assert doc["valid"] is True
    assert doc["dataset_id"] == f"dn://{publisher}/weather/stations"
    assert doc["title"] == "Weather stations"
    assert doc["publisher_node"] == peer
    assert doc["certificate"]["serial"] == 1
    assert doc["certificate"]["org"] == publisher
    assert "valid: dn://" in ok(run("descriptor", "verify", "w.dnd")).stdout

    shown = js(run("descriptor", "show", "w.dnd", "--json"))
    assert shown["verified"] is True
    assert shown["error"] is None
    assert shown["descriptor"]["title"] == "Weather stations"
    text = ok(run("descriptor", "show", "w.dnd")).stdout
    assert "[verified]" in text
    assert "weather, stations" in text

    dcat = json.loads(ok(run("descriptor", "export", "--dcat", "w.dnd")).stdout)
    assert dcat["@type"] == "dcat:Dataset"
    assert dcat["dct:title"] == "Weather stations"
    ok(run("descriptor", "export", "--dcat", "w.dnd", "--out", "w.jsonld"))
    assert json.loads((signed.parent / "w.jsonld").read_text()) == dcat


def test_sign_json_and_out(run: Run, signed: Path, tmp_path: Path) -> None:
    doc = js(run("descriptor", "sign", "w.toml", "--out", "other.dnd", "--json"))
    assert doc["file"] == "other.dnd"
    assert doc["bytes"] == (tmp_path / "other.dnd").stat().st_size


def test_sign_refuses_to_overwrite(run: Run, signed: Path) -> None:
    before = signed.read_bytes()
    result = run("descriptor", "sign", "w.toml", now=NOW + 10)
    assert result.exit_code == EXIT_INVALID
    assert "--force" in result.stderr
    assert signed.read_bytes() == before
    ok(run("descriptor", "sign", "w.toml", "--force", now=NOW + 10))
    assert signed.read_bytes() != before


def test_sign_without_certificate(run: Run, tmp_path: Path) -> None:
    ok(run("init"))
    ok(run("org", "create", "acme"))
    ok(run("descriptor", "new", "acme", "x", "--out", "x.toml"))
    result = run("descriptor", "sign", "x.toml")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "cert install" in result.stderr
    assert not (tmp_path / "x.dnd").exists()


def test_sign_without_publisher_role(run: Run, tmp_path: Path) -> None:
    ok(run("init"))
    ok(run("org", "create", "acme"))
    ok(run("org", "issue", "--org", "acme", "--role", "gateway"))
    ok(run("cert", "install", "acme-1.cert"))
    ok(run("descriptor", "new", "acme", "x", "--out", "x.toml"))
    result = run("descriptor", "sign", "x.toml")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "role publisher" in result.stderr


def test_sign_for_another_org(run: Run, publisher: str, org_key: KeyPair, tmp_path: Path) -> None:
    ok(run("descriptor", "new", str(org_key.org_id), "x", "--out", "x.toml"))
    result = run("descriptor", "sign", "x.toml")
    assert result.exit_code == EXIT_NOT_FOUND
    assert not (tmp_path / "x.dnd").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"this is = = not toml",
        b'dataset_id = "dn://nope/x"\ntitle = "t"\n',
        b"\xff\xfe binary",
        b'title = "no id"\n',
    ],
)
def test_sign_bad_files(run: Run, publisher: str, tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.toml").write_bytes(content)
    result = run("descriptor", "sign", "bad.toml")
    assert result.exit_code == EXIT_INVALID, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "bad.dnd").exists()


def test_sign_missing_file(run: Run, publisher: str) -> None:
    assert run("descriptor", "sign", "missing.toml").exit_code == EXIT_NOT_FOUND


def test_sign_with_encrypted_node_key(run: Run, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("nodepass\n")
    ok(run("init", "--passphrase-file", "pw"))
    ok(run("org", "create", "acme", "--no-passphrase"))
    ok(run("org", "issue", "--org", "acme", "--role", "publisher"))
    ok(run("cert", "install", "acme-1.cert"))
    ok(run("descriptor", "new", "acme", "x", "--out", "x.toml"))
    result = run("descriptor", "sign", "x.toml")
    assert result.exit_code == EXIT_KEYSTORE
    assert "encrypted" in result.stderr
    result = run("descriptor", "sign", "x.toml", env={"DATANET_PASSPHRASE": "wrong"})
    assert result.exit_code == EXIT_KEYSTORE
    assert "wrong passphrase" in result.stderr
    assert not (tmp_path / "x.dnd").exists()
    ok(run("descriptor", "sign", "x.toml", "--passphrase-file", "pw"))
    ok(run("descriptor", "verify", "x.dnd"))


def test_tampered_descriptor(run: Run, signed: Path, tmp_path: Path) -> None:
    (tmp_path / "t.dnd").write_bytes(_flip_signature(signed.read_bytes()))
    for command in ("verify", "show"):
        result = run("descriptor", command, "t.dnd")
        assert result.exit_code == EXIT_VERIFY, result.output
        assert "signature" in result.stderr
    result = run("descriptor", "export", "--dcat", "t.dnd", "--no-verify")
    assert result.exit_code == EXIT_VERIFY
    result = run("--json", "descriptor", "verify", "t.dnd")
    assert json.loads(result.stderr)["error"]["code"] == "bad_signature"
    (tmp_path / "junk.dnd").write_bytes(b"\x00junk")
    assert run("descriptor", "verify", "junk.dnd").exit_code == EXIT_INVALID
    (tmp_path / "big.dnd").write_bytes(b"\x00" * 20000)
    assert run("descriptor", "verify", "big.dnd").exit_code == EXIT_INVALID
    assert run("descriptor", "verify", "missing.dnd").exit_code == EXIT_NOT_FOUND


def test_verify_untrusted_then_accept_any(run: Run, signed: Path) -> None:
    # A fresh node that does not trust acme.
    ok(run("init", home="other"))
    result = run("descriptor", "verify", "w.dnd", home="other")
    assert result.exit_code == EXIT_VERIFY
    assert "not trusted" in result.stderr
    ok(run("descriptor", "verify", "w.dnd", "--accept-any-org", home="other"))
    shown = js(run("descriptor", "show", "w.dnd", "--json", home="other"))
    assert shown["verified"] is False
    assert shown["error"]["code"] == "untrusted_organization"
    assert "NOT VERIFIED" in ok(run("descriptor", "show", "w.dnd", home="other")).stdout
    assert run("descriptor", "export", "--dcat", "w.dnd", home="other").exit_code == EXIT_VERIFY
    ok(run("descriptor", "export", "--dcat", "w.dnd", "--no-verify", home="other"))
    ok(run("descriptor", "export", "--dcat", "w.dnd", "--accept-any-org", home="other"))
    # An uninitialized data directory verifies too (nothing trusted).
    assert run("descriptor", "verify", "w.dnd", home="empty").exit_code == EXIT_VERIFY


def test_verify_expired_and_revoked(run: Run, signed: Path) -> None:
    result = run("descriptor", "verify", "w.dnd", now=NOW + 31 * DAY)
    assert result.exit_code == EXIT_VERIFY
    assert "expired" in result.stderr
    ok(run("org", "revoke", "--org", "acme", "1"))
    result = run("descriptor", "verify", "w.dnd")
    assert result.exit_code == EXIT_VERIFY
    assert "revoked" in result.stderr
    shown = js(run("descriptor", "show", "w.dnd", "--json"))
    assert shown["error"]["code"] == "certificate_revoked"


def test_export_needs_a_format(run: Run, signed: Path) -> None:
    result = run("descriptor", "export", "w.dnd")
    assert result.exit_code == EXIT_USAGE
    assert "--dcat" in result.output


def test_export_refuses_to_overwrite(run: Run, signed: Path, tmp_path: Path) -> None:
    (tmp_path / "out.json").write_text("keep")
    result = run("descriptor", "export", "--dcat", "w.dnd", "--out", "out.json")
    assert result.exit_code == EXIT_INVALID
    assert (tmp_path / "out.json").read_text() == "keep"
