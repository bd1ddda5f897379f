"""Keyspace positions, XOR distance, prefix lengths and refresh targets."""

from __future__ import annotations

import hashlib
import os
import random
import tracemalloc

import pytest

from identity.errors import InvalidInput
from identity.keys import KeyPair
from routing.keyspace import (
    KEY_BITS,
    KEY_CACHE_SIZE,
    MAX_REFRESH_CPL,
    common_prefix_len,
    distance,
    key_of,
    random_peer_id_in_bucket,
)


def test_key_of_is_sha256_big_endian_of_the_peer_id_bytes() -> None:
    pid = KeyPair.from_seed(bytes([9]) * 32).peer_id.to_bytes()
    assert key_of(pid) == int.from_bytes(hashlib.sha256(pid).digest(), "big")
    assert key_of(b"/dn/x") == int.from_bytes(hashlib.sha256(b"/dn/x").digest(), "big")


def test_distance_is_xor() -> None:
    assert distance(0b1100, 0b1010) == 0b0110
    assert distance(5, 5) == 0


def test_common_prefix_len_edges() -> None:
    top = 1 << (KEY_BITS - 1)
    assert common_prefix_len(0, 0) == KEY_BITS
    assert common_prefix_len(0, top) == 0
    assert common_prefix_len(0, 1) == KEY_BITS - 1
    assert common_prefix_len(top | 1, top) == KEY_BITS - 1


@pytest.mark.parametrize("cpl", [0, 1, 5, 10])
def test_refresh_target_lands_in_the_requested_bucket(cpl: int) -> None:
    rng = random.Random(cpl)
    me = key_of(b"me")
    pid = random_peer_id_in_bucket(me, cpl, rng)
    assert len(pid) == 38
    assert pid.startswith(b"\x00\x24\x08\x01\x12\x20")
    assert common_prefix_len(key_of(pid), me) == cpl


def test_refresh_target_is_deterministic_per_rng_state() -> None:
    me = key_of(b"me")
    a = random_peer_id_in_bucket(me, 3, random.Random(7))
    b = random_peer_id_in_bucket(me, 3, random.Random(7))
    assert a == b


@pytest.mark.parametrize("cpl", [-1, MAX_REFRESH_CPL + 1])
def test_refresh_target_rejects_deep_buckets(cpl: int) -> None:
    with pytest.raises(InvalidInput):
        random_peer_id_in_bucket(0, cpl, random.Random(0))


def test_the_key_cache_stays_small_however_many_keys_pass_through_it() -> None:
    # Random lookup targets pass through key_of all day; with 65,536 entries the
    # cache took 18 MB per process and the soak's RSS rose for 20 minutes.
    key_of.cache_clear()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(3 * KEY_CACHE_SIZE):
            key_of(os.urandom(38))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert key_of.cache_info().currsize == KEY_CACHE_SIZE
    assert grown < 2_000_000, grown
