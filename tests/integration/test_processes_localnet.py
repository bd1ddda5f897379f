"""The localnet runner's line protocol: bad input is answered, never fatal; put_raw works.

Two runner processes of one node each, on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from datanet.devnet import provision
from datanet.records.ids import DatasetId
from datanet.testing.localnet import MAX_LINE, Localnet, OpFailed, check, running
from datanet.testing.records import signed_by


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_bad_commands_get_errors_and_the_runner_keeps_serving(tmp_path: Path) -> None:
    _, specs = provision(tmp_path, orgs=2, nodes=2)
    a = Localnet([specs[0].home], seed=1)
    (info,) = a.wait_ready()
    b = Localnet([specs[1].home], seed=2)
    b.wait_ready()
    with running(a, b):
        assert info.peer_id == str(specs[0].peer_id)
        assert a.call("ping")["nodes"] == 1

        cases = {
            "unknown op": ({"op": "explode"}, "invalid_input"),
            "node out of range": ({"op": "status", "node": 3}, "invalid_input"),
            "node not an int": ({"op": "status", "node": True}, "invalid_input"),
            "bad base64": ({"op": "publish", "raw": "***"}, "invalid_input"),
            "not a descriptor": ({"op": "publish", "raw": b64(b"junk")}, "decode_error"),
            "bad dataset id": ({"op": "resolve", "dataset_id": "http://x"}, "decode_error"),
        }
        for name, (cmd, code) in cases.items():
            fields = {k: v for k, v in cmd.items() if k != "op"}
            with pytest.raises(OpFailed) as failed:
                a.call(str(cmd["op"]), **fields)
            assert failed.value.remote_code == code, name

        # lines that are not commands at all, and one over the size limit
        stdin = a._proc.stdin
        assert stdin is not None
        stdin.write(b"not json\n[1, 2]\n" + b"x" * (MAX_LINE + 10) + b"\n")
        stdin.flush()
        assert a.call("ping")["nodes"] == 1  # still serving, in order after the junk
        assert a._proc.poll() is None

        # put_raw across processes: a 1 MiB value is refused, a genuine record stored
        genuine = signed_by(specs[1], "rivers/flow", title="localnet protocol test")
        key = b64(DatasetId(specs[1].org.org_id, "rivers/flow").dht_key())
        huge = b64(bytes(1024 * 1024))
        target = {"peer": str(specs[0].peer_id), "addrs": list(info.addrs), "key": key}
        refused = b.call("put_raw", value=huge, **target)
        assert refused["stored"] is False
        assert refused["refusal"]
        assert a.call("held", key=key)["held"] is False
        stored = b.call("put_raw", value=b64(genuine), **target)
        assert stored["stored"] is True, stored
        assert a.call("held", key=key)["value"] == b64(genuine)

        usage = check(a.submit("usage"))
        assert usage["rss_mb"] > 10
        assert usage["cpu_seconds"] > 0
        assert json.dumps(usage)  # JSON-safe
