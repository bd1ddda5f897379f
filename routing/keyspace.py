"""The Kademlia keyspace: where peers and DHT keys sit, and how far apart they are.

Positions follow the go-libp2p-kad-dht convention: a peer sits at SHA-256 of its
binary peer id, a DHT key at SHA-256 of the key bytes, and distance is the XOR of
the two 256-bit positions read as big-endian unsigned integers.

Invariants:
* Positions are plain ``int`` in ``[0, 2**256)``; ``distance`` is symmetric and
  ``distance(a, a) == 0``.
* ``common_prefix_len(a, b)`` is in ``[0, 256]`` and equals 256 only for ``a == b``.
* :func:`random_peer_id_in_bucket` is deterministic for a given ``random.Random``
  state and only ever returns ids whose position has the requested common prefix
  length with ``self_key``.
"""

from __future__ import annotations

import hashlib
import random
from functools import lru_cache

from identity.errors import InvalidInput

__all__ = [
    "KEY_BITS",
    "MAX_REFRESH_CPL",
    "common_prefix_len",
    "distance",
    "key_of",
    "random_peer_id_in_bucket",
]

KEY_BITS = 256
# Buckets deeper than this are filled by the self-lookup rather than by a random
# target: finding an id with a longer shared prefix costs 2**(cpl+1) hashes.
MAX_REFRESH_CPL = 15

# The binary shape of an Ed25519 libp2p peer id: identity multihash of the
# protobuf-encoded public key (see identity.keys.PeerId.to_bytes).
_PEER_ID_PREFIX = b"\x00\x24\x08\x01\x12\x20"


#: Entries of :func:`key_of`'s cache: about 280 bytes each (4 small objects).
#: 65,536 took 18 MB and 262,000 objects per process once full, and random
#: lookup targets filled it slowly: the 30-minute soak's RSS rose for 20 minutes
#: before it levelled off. 4,096 (1.1 MB) hold a routing table and the peers of
#: the lookups under way; a miss costs one SHA-256 of ~40 bytes.
KEY_CACHE_SIZE = 1 << 12


@lru_cache(maxsize=KEY_CACHE_SIZE)
def key_of(data: bytes) -> int:
    """The keyspace position of a peer id or DHT key: SHA-256, big-endian.

    Cached (bounded) because lookups and routing tables hash the same peer ids
    over and over; a cache hit also shares one ``int`` between all tables.
    """
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


def distance(a: int, b: int) -> int:
    """The XOR distance between two positions."""
    return a ^ b


def common_prefix_len(a: int, b: int) -> int:
    """How many leading bits two positions share (256 when they are equal)."""
    return KEY_BITS - (a ^ b).bit_length()


def random_peer_id_in_bucket(self_key: int, cpl: int, rng: random.Random) -> bytes:
    """A random peer-id-shaped target whose position shares exactly ``cpl`` bits with ours.

    Used to refresh one bucket: a FIND_NODE for this id walks into the bucket's
    part of the keyspace. Ids look like Ed25519 peer ids (38 bytes) because the
    wire carries FIND_NODE targets as peer ids.

    Raises:
        InvalidInput: ``cpl`` is outside ``[0, MAX_REFRESH_CPL]``.
    """
    if not 0 <= cpl <= MAX_REFRESH_CPL:
        raise InvalidInput(f"refresh targets exist for buckets 0..{MAX_REFRESH_CPL}, not {cpl}")
    while True:
        candidate = _PEER_ID_PREFIX + rng.randbytes(32)
        position = int.from_bytes(hashlib.sha256(candidate).digest(), "big")
        if common_prefix_len(position, self_key) == cpl:
            return candidate
