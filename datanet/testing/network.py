"""In-process networks of real nodes, and raw DHT puts past a node's own checks.

The network is real: libp2p hosts on 127.0.0.1, SQLite files, signatures. The
attacker is one of its nodes, a *member* with a valid certificate (the strongest
position short of owning a victim's key), sending raw kad frames through
:func:`datanet.testing.raw.send_raw_kad`, past its own client's checks.
Genuine and forged descriptors for these nodes come from
:mod:`datanet.testing.records` (:func:`~datanet.testing.records.signed_by`,
:func:`~datanet.testing.records.sign_as`, :func:`~datanet.testing.records.forge_body`).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from datanet.devnet import DevnetNode, provision
from datanet.node.config import load_config
from datanet.node.driver import Node
from datanet.node.home import Home
from datanet.node.startup import open_node
from datanet.testing.raw import put_value_payload, send_raw_kad

__all__ = ["in_process_network", "raw_put"]


async def raw_put(
    attacker: Node, target: Node, key: bytes, value: bytes, *, timeout: float = 5.0
) -> tuple[bool, str | None]:
    """Send PUT_VALUE(key, value) raw; returns (echoed = stored, why the stream stopped)."""
    responses, stopped = await send_raw_kad(
        attacker.host, target.peer_id, [put_value_payload(key, value)], timeout=timeout
    )
    return bool(responses), stopped


@contextlib.asynccontextmanager
async def in_process_network(
    base: Path,
    count: int = 5,
    *,
    seed: int = 7,
    settings: Mapping[str, object] | None = None,
    start: int | None = None,
) -> AsyncIterator[tuple[list[DevnetNode], list[Node]]]:
    """``count`` joined nodes of 3 organizations in this trio process.

    Args:
        base: the directory that holds the nodes' data directories.
        count: how many nodes are provisioned.
        start: how many of them run (the first ``start``; default all): the others
            exist (keys, certificates) but stay offline.
        seed: seeds each node's randomness, so runs repeat.
        settings: config values every node runs with (``{"dht.value_quorum": 3}``),
            over the devnet's defaults.
    """
    _, specs = provision(base, orgs=3, nodes=count)
    async with contextlib.AsyncExitStack() as stack:
        nodes = []
        for spec in specs[: count if start is None else start]:
            home = Home(spec.home)
            config = load_config(home.config_path)
            for key, value in (settings or {}).items():
                config = config.with_value(key, value)
            rng = random.Random(seed * 1000 + spec.index)
            nodes.append(
                await stack.enter_async_context(
                    open_node(spec.home, config, home.load_node_key(), rng=rng)
                )
            )
        for node in nodes:  # let the early joiners learn the late ones
            await node.bootstrap()
        yield specs, nodes
