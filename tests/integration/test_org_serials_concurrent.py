"""Two processes issuing certificates of one org at once never share a serial.

The counter lives in ``orgs/NAME.toml``; without a lock around
read-increment-write, two issuers read the same ``next_serial`` and both hand
it out (and the ``issued`` list loses entries).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from datanet.node.authority import Authorities
from datanet.node.home import Home
from identity.keystore import KdfParams

FAST = KdfParams(n=2**8, r=8, p=1)
PER_PROCESS = 20

_WORKER = """
import json, sys, time
from pathlib import Path
from datanet.node.authority import Authorities
from datanet.node.home import Home
from identity.certs import Role

home = Home(Path(sys.argv[1]))
ca = Authorities(home)
key = ca.load_org("acme")
peer = home.node_peer_id()
go = Path(sys.argv[2])
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.005)
serials = []
for _ in range(int(sys.argv[3])):
    cert, _raw = ca.issue_certificate("acme", key, peer, [Role.GATEWAY], now=1_800_000_000, days=1)
    serials.append(cert.serial)
print(json.dumps(serials))
"""


def test_two_processes_issue_unique_serials(tmp_path: Path) -> None:
    home = Home(tmp_path / "home", kdf=FAST)
    home.init()
    Authorities(home).create_org("acme")
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(home.path), str(go), str(PER_PROCESS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    go.touch()  # both start issuing at (nearly) the same moment
    got: list[int] = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        got.extend(json.loads(out))
    assert len(got) == 2 * PER_PROCESS
    assert len(set(got)) == len(got), f"serials handed out twice: {sorted(got)}"
    assert sorted(got) == list(range(1, 2 * PER_PROCESS + 1))
    [info] = Authorities(Home(home.path)).list_orgs()
    assert info.next_serial == 2 * PER_PROCESS + 1
    assert info.issued == 2 * PER_PROCESS


CLI_WAVES = 2
CLI_AT_ONCE = 6


def test_concurrent_org_issue_commands_get_unique_serials(tmp_path: Path) -> None:
    """The same through ``datanet org issue``: waves of CLI processes started at once."""
    home = Home(tmp_path / "home", kdf=FAST)
    home.init()
    Authorities(home).create_org("acme")
    out = tmp_path / "certs"
    out.mkdir()
    root = Path(__file__).resolve().parents[2]
    got: list[int] = []
    for wave in range(CLI_WAVES):
        procs = [
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "cli.main", "--data-dir", str(home.path), "--json"),
                    *("org", "issue", "--org", "acme", "--role", "gateway"),
                    *("--out", str(out / f"{wave}-{i}.cert")),
                ],
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(CLI_AT_ONCE)
        ]
        for proc in procs:
            stdout, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
            got.append(json.loads(stdout)["serial"])
    total = CLI_WAVES * CLI_AT_ONCE
    assert sorted(got) == list(range(1, total + 1)), f"serials handed out twice: {sorted(got)}"
    assert Authorities(Home(home.path)).list_orgs()[0].issued == total
