"""Shared helpers of the integration tests: an in-process network, genuine and forged descriptors.

The network is real: libp2p hosts on 127.0.0.1, SQLite files, signatures. The
attacker is one of its nodes, a *member* with a valid certificate (the strongest
position short of owning a victim's key), sending raw kad frames through
:func:`datanet.testing.localnet.send_raw_kad`, past its own client's checks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

from datanet.devnet import DevnetNode, provision
from datanet.node.config import load_config
from datanet.node.driver import Node, open_node
from datanet.node.home import Home
from datanet.records.descriptor import DESCRIPTOR_TAG, Descriptor, open_descriptor, sign_descriptor
from datanet.records.ids import DatasetId
from datanet.testing.localnet import put_value_payload, send_raw_kad
from identity.envelope import SignedEnvelope, seal

__all__ = [
    "descriptor",
    "forge_body",
    "in_process_network",
    "raw_put",
    "sign_as",
    "signed",
]


def descriptor(
    org_of: DevnetNode, name: str, sequence: int, title: str, *, publisher: DevnetNode | None = None
) -> Descriptor:
    """A descriptor of a dataset of ``org_of``'s organization, naming ``publisher`` (default:
    ``org_of``) as publishing node."""
    now = int(time.time())
    return Descriptor(
        dataset_id=DatasetId(org_of.org.org_id, name),
        title=title,
        description="integration test dataset",
        publisher_node=(publisher or org_of).peer_id,
        issued=now,
        modified=now,
        sequence=sequence,
        expires=now + 3600,
    )


def signed(node: DevnetNode, name: str, sequence: int, title: str = "genuine") -> bytes:
    """A genuine descriptor of ``node``'s organization, signed by ``node``."""
    home = Home(node.home)
    now = int(time.time())
    desc = descriptor(node, name, sequence, title)
    return sign_descriptor(desc, home.load_node_key(), home.membership_chain(now))


def sign_as(signer: DevnetNode, desc: Descriptor, chain_of: DevnetNode) -> bytes:
    """Seal ``desc`` with ``signer``'s key and ``chain_of``'s certificate, skipping every
    consistency check :func:`sign_descriptor` makes (what a forger would do)."""
    now = int(time.time())
    key = Home(signer.home).load_node_key()
    chain = Home(chain_of.home).membership_chain(now)
    return seal(key, DESCRIPTOR_TAG, desc.encode_body(), chain).encode()


def forge_body(raw: bytes, **changes: object) -> bytes:
    """``raw`` with its descriptor body changed but the original signature kept."""
    desc, env = open_descriptor(raw)
    body = dataclasses.replace(desc, **changes).encode_body()  # type: ignore[arg-type]
    return SignedEnvelope(env.tag, body, env.signer, env.signature, env.chain).encode()


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
    base: Path, count: int = 5, *, seed: int = 7
) -> AsyncIterator[tuple[list[DevnetNode], list[Node]]]:
    """``count`` joined nodes of 3 organizations in this trio process."""
    _, specs = provision(base, orgs=3, nodes=count)
    async with contextlib.AsyncExitStack() as stack:
        nodes = []
        for spec in specs:
            home = Home(spec.home)
            config = load_config(home.config_path)
            rng = random.Random(seed * 1000 + spec.index)
            nodes.append(
                await stack.enter_async_context(
                    open_node(spec.home, config, home.load_node_key(), rng=rng)
                )
            )
        for node in nodes:  # let the early joiners learn the late ones
            await node.bootstrap()
        yield specs, nodes
