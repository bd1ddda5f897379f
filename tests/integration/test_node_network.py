"""Several real nodes (libp2p on 127.0.0.1, SQLite, signatures) in one trio process."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from datanet.config import load_config
from datanet.descriptor import Descriptor, sign_descriptor
from datanet.devnet import DevnetNode, provision
from datanet.errors import NotFound, StaleRecord
from datanet.home import Home
from datanet.ids import DatasetId
from datanet.node import Node, open_node


def _descriptor(node: DevnetNode, name: str, sequence: int, title: str) -> bytes:
    now = int(time.time())
    desc = Descriptor(
        dataset_id=DatasetId(node.org.org_id, name),
        title=title,
        description="integration test dataset",
        keywords=("test",),
        publisher_node=node.peer_id,
        issued=now,
        modified=now,
        sequence=sequence,
        expires=now + 3600,
    )
    home = Home(node.home)
    return sign_descriptor(desc, home.load_node_key(), home.membership_chain(now))


@contextlib.asynccontextmanager
async def _network(
    tmp_path: Path, count: int
) -> AsyncIterator[tuple[list[DevnetNode], list[Node]]]:
    _, specs = provision(tmp_path, orgs=3, nodes=count)
    async with contextlib.AsyncExitStack() as stack:
        nodes = []
        for spec in specs:
            home = Home(spec.home)
            node = await stack.enter_async_context(
                open_node(spec.home, load_config(home.config_path), home.load_node_key())
            )
            nodes.append(node)
        # let late joiners be learnt by the early ones
        for node in nodes:
            await node._query(node.coordinator.bootstrap)
        yield specs, nodes


async def test_publish_then_resolve_from_another_org(tmp_path: Path) -> None:
    async with _network(tmp_path, 5) as (specs, nodes):
        raw = _descriptor(specs[1], "weather/daily", 1, "Daily weather")
        result = await nodes[1].publish(raw)
        assert result.replicas >= 3
        got = await nodes[3].resolve(DatasetId(specs[1].org.org_id, "weather/daily"))
        assert got.raw == raw
        assert specs[3].org != specs[1].org

        # the publisher announced itself as the dataset's provider (in the background)
        dataset = str(DatasetId(specs[1].org.org_id, "weather/daily")).encode()
        with trio.fail_after(10):
            while not (providers := await nodes[4].find_providers(dataset, 5)):
                await trio.sleep(0.05)
        assert [p for p, _ in providers] == [specs[1].peer_id]

        newer = _descriptor(specs[1], "weather/daily", 2, "Daily weather v2")
        await nodes[1].publish(newer)
        for node in nodes:
            fresh = await node.resolve(
                DatasetId(specs[1].org.org_id, "weather/daily"), refresh=True
            )
            assert fresh.descriptor.sequence == 2

        with pytest.raises(StaleRecord):
            await nodes[1].publish(raw)  # a replayed lower sequence is refused


async def test_resolve_missing_is_not_found(tmp_path: Path) -> None:
    async with _network(tmp_path, 3) as (specs, nodes):
        with trio.fail_after(20), pytest.raises(NotFound):
            await nodes[2].resolve(DatasetId(specs[0].org.org_id, "nothing/here"))
