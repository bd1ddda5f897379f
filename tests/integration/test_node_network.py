"""Several real nodes (libp2p on 127.0.0.1, SQLite, signatures) in one trio process."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from datanet.errors import NotFound, StaleRecord
from datanet.records.ids import DatasetId
from datanet.testing.network import in_process_network
from datanet.testing.records import signed_by


async def test_publish_then_resolve_from_another_org(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 5) as (specs, nodes):
        raw = signed_by(specs[1], "weather/daily", 1, "Daily weather")
        result = await nodes[1].publish(raw)
        assert result.replicas >= 3
        got = await nodes[3].resolve(DatasetId(specs[1].org.org_id, "weather/daily"))
        assert got.raw == raw
        assert specs[3].org != specs[1].org
        # a replica indexes what it stores: searchable without any resolve
        hits = nodes[2].search("daily weather", limit=5).hits
        assert [str(h.dataset_id) for h in hits] == [str(result.dataset_id)]

        # the publisher announced itself as the dataset's provider (in the background)
        dataset = str(DatasetId(specs[1].org.org_id, "weather/daily")).encode()
        with trio.fail_after(10):
            while not (providers := await nodes[4].find_providers(dataset, 5)):
                await trio.sleep(0.05)
        assert [p for p, _ in providers] == [specs[1].peer_id]

        newer = signed_by(specs[1], "weather/daily", 2, "Daily weather v2")
        await nodes[1].publish(newer)
        for node in nodes:
            fresh = await node.resolve(
                DatasetId(specs[1].org.org_id, "weather/daily"), refresh=True
            )
            assert fresh.descriptor.sequence == 2

        # the census of replicas asks every one of the k closest: all hold version 2
        census = await nodes[3].replicas(DatasetId(specs[1].org.org_id, "weather/daily"))
        assert len(census) >= 3
        assert {state for _, _, state in census} == {"current"}
        assert specs[3].peer_id not in [p for p, _, _ in census]
        assert all(addrs for _, addrs, _ in census)

        with pytest.raises(StaleRecord):
            await nodes[1].publish(raw)  # a replayed lower sequence is refused


async def test_resolve_missing_is_not_found(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 3) as (specs, nodes):
        with trio.fail_after(20), pytest.raises(NotFound):
            await nodes[2].resolve(DatasetId(specs[0].org.org_id, "nothing/here"))
