"""CLI: `datanet org record` signs an org's record offline; the sequence only increases."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.app import CliContext
from cli.main import datanet
from datanet.testing.clock import DAY, NOW, ManualClock
from identity.keys import KeyPair
from identity.keystore import KdfParams
from identity.orgs import Gateway, parse_org_record

FAST = KdfParams(n=2**8, r=8, p=1)
GW1 = KeyPair.from_seed(b"1" * 32).peer_id
GW2 = KeyPair.from_seed(b"2" * 32).peer_id
ADDR1 = "/ip4/10.99.0.11/tcp/4001"
ADDR2 = "/ip4/10.1.0.1/tcp/4001"

Run = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATANET_API_URL", raising=False)
    monkeypatch.delenv("DATANET_API_TOKEN", raising=False)

    def invoke(*args: str, now: int = NOW) -> Result:
        obj = CliContext(clock=ManualClock(now), kdf=FAST)
        env: dict[str, str | None] = {"DATANET_PASSPHRASE": None, "DATANET_HOME": None}
        return CliRunner().invoke(
            datanet, ["--data-dir", str(tmp_path / "home"), *args], obj=obj, env=env
        )

    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def test_record_is_signed_kept_and_sequenced(run: Run, tmp_path: Path) -> None:
    ok(run("init"))
    org = json.loads(ok(run("org", "create", "acme", "--no-passphrase", "--json")).stdout)
    args = ("org", "record", "acme", "--gateway", str(GW1), "--addr", f"{GW1}={ADDR1}")
    first = json.loads(ok(run(*args, "--addr", f"{GW1}={ADDR2}", "--egress", "--json")).stdout)
    assert first["sequence"] == 1
    assert first["egress"] is True
    assert first["org"] == org["org"]
    assert first["expires"] == NOW + 30 * DAY
    assert first["gateways"] == [{"peer": str(GW1), "addrs": [ADDR1, ADDR2]}]
    kept = Path(first["file"])
    assert kept == tmp_path / "home" / "orgs" / "acme.org"
    record = parse_org_record(kept.read_bytes(), NOW)
    assert record.gateways == (Gateway(GW1, (ADDR1, ADDR2)),)
    assert record.egress is True
    assert str(record.org) == org["org"]

    out = tmp_path / "acme.orgrec"
    second = ok(
        run(
            *args,
            "--gateway",
            str(GW2),
            "--addr",
            f"{GW2}={ADDR2}",
            "--days",
            "2",
            "--out",
            str(out),
            now=NOW + 10,
        )
    )
    assert "org record 2 of acme" in second.stdout
    assert "egress gated: False" in second.stdout
    again = parse_org_record(out.read_bytes(), NOW + 10)
    assert (again.sequence, again.egress, again.expires) == (2, False, NOW + 10 + 2 * DAY)
    assert [g.peer for g in again.gateways] == [GW1, GW2]
    assert kept.read_bytes() == out.read_bytes()
    # the counter survives certificate issuing (same state file)
    ok(run("org", "issue", "--org", "acme", "--role", "gateway"))
    third = json.loads(ok(run(*args, "--json")).stdout)
    assert third["sequence"] == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--addr", "nonsense"), "PEERID="),
        (("--addr", f"{GW2}={ADDR1}"), "not one of the --gateway"),
        (("--addr", f"{GW1}=10.0.0.1:4001"), "multiaddr"),
        (("--days", "0"), "--days"),
    ],
)
def test_bad_input_is_refused_and_signs_nothing(
    run: Run, tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    ok(run("init"))
    ok(run("org", "create", "acme", "--no-passphrase"))
    args = ("org", "record", "acme", "--gateway", str(GW1))
    if "--addr" not in extra:
        args = (*args, "--addr", f"{GW1}={ADDR1}")
    result = run(*args, *extra)
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "home" / "orgs" / "acme.org").exists()


def test_no_address_and_no_daemon_is_a_clear_error(run: Run) -> None:
    ok(run("init"))
    ok(run("org", "create", "acme", "--no-passphrase"))
    result = run("org", "record", "acme", "--gateway", str(GW1))
    assert result.exit_code != 0
    assert "daemon" in result.output.lower()
