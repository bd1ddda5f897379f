"""Seed catalogs before nodes start, so tests and benchmarks do not spend their time publishing.

:func:`catalog_descriptors` signs many genuine descriptors with the keys and
certificates of devnet nodes that hold the publisher role; :func:`seed_catalog`
writes them straight into a node's catalog file (exactly what its ledger would
have stored after verifying them). A node started on a seeded data directory
holds them from its first second and hands them on through anti-entropy.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path

from datanet.devnet.layout import DevnetNode
from datanet.node.home import Home
from datanet.records.descriptor import Distribution, open_descriptor, sign_descriptor
from datanet.store.catalog import Catalog
from datanet.testing.records import node_descriptor
from identity.certs import Role, parse_certificate

__all__ = ["catalog_descriptors", "seed_catalog"]

_WORDS = [
    "air",
    "quality",
    "rainfall",
    "traffic",
    "energy",
    "soil",
    "water",
    "noise",
    "pollen",
    "census",
    "transit",
    "harbour",
    "grid",
    "forest",
    "coast",
    "wind",
    "solar",
    "river",
    "bridge",
    "school",
    "health",
]
_THEMES = ("environment", "mobility", "energy", "health", "economy")
_LICENSES = ("CC-BY-4.0", "CC0-1.0", "ODbL-1.0")
_MEDIA = ("text/csv", "application/json", "application/parquet")


def catalog_descriptors(
    publishers: Sequence[DevnetNode],
    count: int,
    *,
    prefix: str = "seed",
    now: int | None = None,
    lifetime: int = 7 * 24 * 3600,
    rng: random.Random | None = None,
) -> list[bytes]:
    """``count`` signed descriptors, spread round-robin over ``publishers``.

    Every publisher must hold a certificate with the publisher role. Titles,
    keywords, themes, licenses and media types vary, so searches and facets have
    something to find.
    """
    rng = rng or random.Random(7)
    now = int(time.time()) if now is None else now
    signers = []
    for node in publishers:
        home = Home(node.home)
        chain = home.membership_chain(now, role=Role.PUBLISHER)
        signers.append((node, home.load_node_key(), chain))
    out = []
    for i in range(count):
        node, key, chain = signers[i % len(signers)]
        words = rng.sample(_WORDS, 3)
        desc = node_descriptor(
            node,
            f"{prefix}/{i}",
            title=f"{words[0]} {words[1]} {i}",
            now=now - rng.randrange(0, 3600),
            lifetime=lifetime,
            keywords=(words[0], words[2]),
            themes=(rng.choice(_THEMES),),
            license=rng.choice(_LICENSES),
            distributions=(Distribution(rng.choice(_MEDIA)),),
        )
        out.append(sign_descriptor(desc, key, chain))
    return out


def seed_catalog(home: Path, raws: Sequence[bytes]) -> int:
    """Write signed descriptors into the catalog of the node data directory ``home``.

    The caller vouches that they verify (they come from :func:`catalog_descriptors`).
    Returns how many were stored.
    """
    items = []
    for raw in raws:
        desc, envelope = open_descriptor(raw)
        serial = parse_certificate(envelope.chain[0]).serial if envelope.chain else None
        items.append((raw, desc, serial))
    with Catalog(Home(home).layout.catalog) as catalog:
        return catalog.upsert_many(items)
