"""The localnet runner's churn and sampling ops: stop_node, start_node, sample, flood.

Two runner processes on 127.0.0.1: one of two nodes (one of them churned), one
flooder. A stopped node refuses ops with ``node_stopped`` and closes its files;
restarted from the same directory it keeps its key, its records and its port,
and the process holds no more fds or tasks than before.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from datanet.devnet import provision
from datanet.records.ids import DatasetId
from datanet.testing.localnet import Localnet, OpFailed, running
from datanet.testing.records import signed_by


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_a_node_stops_and_restarts_from_its_directory_without_leaks(tmp_path: Path) -> None:
    _, specs = provision(tmp_path, orgs=2, nodes=3)
    net = Localnet([specs[0].home, specs[1].home], seed=1)
    net.wait_ready()
    flooder = Localnet([specs[2].home], seed=2)
    flooder.wait_ready()
    with running(net, flooder):
        genuine = signed_by(specs[1], "soil/moisture", title="churn test")
        dataset = str(DatasetId(specs[1].org.org_id, "soil/moisture"))
        net.call("publish", node=1, raw=b64(genuine))
        net.call("objects", reset=True)
        before = net.call("sample")
        assert before["running"] == [True, True]
        assert before["memory"]["python_blocks"] > 0
        assert before["tasks"] > 10
        assert before["fds"] > 5

        for cycle in range(3):
            net.call("stop_node", node=1, timeout=120)
            with pytest.raises(OpFailed) as stopped:
                net.call("status", node=1)
            assert stopped.value.remote_code == "node_stopped"
            assert net.call("sample")["running"] == [True, False]
            # its databases are closed: no file of its directory is open any more
            held = net.call("sample")
            assert held["fds"] < before["fds"], (cycle, held, before)
            with pytest.raises(OpFailed) as twice:
                net.call("stop_node", node=1)
            assert twice.value.remote_code == "node_stopped"

            started = net.call("start_node", node=1, timeout=120)
            assert started["peer_id"] == str(specs[1].peer_id)
            assert any(f"/tcp/{specs[1].port}" in a for a in started["addrs"]), started
            with pytest.raises(OpFailed) as running_already:
                net.call("start_node", node=1)
            assert running_already.value.remote_code == "invalid_input"
            # it kept its records, and the network still finds them
            assert net.call("resolve", node=1, dataset_id=dataset)["raw"] == b64(genuine)
            assert net.call("resolve", node=0, dataset_id=dataset, refresh=True)["raw"] == b64(
                genuine
            )
            # the refreshed resolve shows in node 0's kad counts (the "counters" op)
            kad = net.call("counters", node=0)["kad"]
            assert any(k.startswith("out/get_value/") for k in kad), kad

        # the flooder hits node 0; the flood runs until stopped, and costs no lookup
        flooder.call(
            "flood",
            peer=str(specs[0].peer_id),
            addrs=[f"/ip4/127.0.0.1/tcp/{specs[0].port}"],
            interval=0.05,
        )
        deadline = time.monotonic() + 60
        while sum(flooder.call("sample")["floods"].values()) < 5:
            assert time.monotonic() < deadline, "the flood sent nothing"
            time.sleep(0.2)
        assert net.call("resolve", node=1, dataset_id=dataset, refresh=True)["raw"] == b64(genuine)
        sent = flooder.call("flood_stop")["sent"]
        assert sum(sent.values()) >= 5

        # after three restarts: no more fds or tasks than before (connections may differ a little)
        deadline = time.monotonic() + 60
        while True:
            after = net.call("sample")
            if after["fds"] <= before["fds"] + 4 and after["tasks"] <= before["tasks"] + 15:
                break
            assert time.monotonic() < deadline, (before, after)
            time.sleep(1.0)
        assert after["starts"] == [1, 4]
        grown = net.call("objects", limit=5)  # what grew across the restarts, by type
        assert grown["objects"] > 1000
        assert len(grown["types"]) == 5
        assert all(t["count"] >= t["count_diff"] for t in grown["types"])
