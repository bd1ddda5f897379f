"""``datanet … | head`` ends quietly: a closed pipe is not an error to report."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

from datanet.node.authority import Authorities
from datanet.node.home import Home
from datanet.records.descriptor import Descriptor, sign_descriptor
from datanet.records.ids import DatasetId
from identity.certs import Role

F_SETPIPE_SZ = 1031  # Linux


def test_closed_stdout_prints_no_error(tmp_path: Path, now: int) -> None:
    home = Home(tmp_path / "home")
    key = home.init()
    ca = Authorities(home)
    org = ca.create_org("acme")
    _, cert = ca.issue_certificate("acme", org, key.peer_id, [Role.PUBLISHER], now=now, days=30)
    desc = Descriptor(
        dataset_id=DatasetId(org.org_id, "big/export"),
        title="Big",
        description="x" * 4000,
        keywords=tuple(f"keyword{i}" for i in range(32)),
        publisher_node=key.peer_id,
        issued=now,
        modified=now,
        sequence=1,
        expires=now + 3600,
    )
    signed = tmp_path / "big.dnd"
    signed.write_bytes(sign_descriptor(desc, key, [cert]))

    argv = [sys.executable, "-m", "cli.main", "--data-dir", str(home.path)]
    argv += ["descriptor", "show", "--accept-any-org", str(signed)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        fcntl.fcntl(proc.stdout.fileno(), F_SETPIPE_SZ, 4096)  # smaller than the output
        assert proc.stdout.read(10)
        proc.stdout.close()
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=30)
    assert "Broken pipe" not in err
    assert "Traceback" not in err
    assert code in (0, 1)  # click exits 1, silently, on EPIPE
