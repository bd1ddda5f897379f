"""A small deterministic byte mutator for the short fuzz run inside ``make test``.

atheris needs a process per target and a few seconds to instrument the code, too
slow for the test suite's budget; the short run instead mutates the seed corpus
with a seeded :class:`random.Random` and calls the same targets in-process.

Invariants:
    - Deterministic: the same seeds and ``rng`` seed give the same inputs.
    - Bounded: an input is at most ``max_size`` bytes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

__all__ = ["INTERESTING", "mutate", "mutations"]

#: Byte strings that tend to sit on decoders' edges: msgpack type bytes, varint
#: continuations, huge lengths, NUL and control characters, UTF-8 surrogates.
INTERESTING: tuple[bytes, ...] = (
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\xc0",
    b"\xc1",
    b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
    b"\xdb\xff\xff\xff\xff",
    b"\xdd\xff\xff\xff\xff",
    b"\xdf\xff\xff\xff\xff",
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    b"\xed\xa0\x80",
    b"\x1b[31m",
    b"\x90",
    b"\x80",
    b"\xc0",
    b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
    b"[[[[[[[[[[",
    b'{"a":',
    b"1e999",
    b"-0",
)


def mutate(data: bytes, rng: random.Random, pool: Sequence[bytes], max_size: int) -> bytes:
    """One to four random edits of ``data``: flips, inserts, deletes, splices."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        pos = rng.randint(0, len(buf))
        if op == 0 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 2:
            buf[pos:pos] = rng.choice(INTERESTING)
        elif op == 3 and buf:
            end = min(len(buf), pos + rng.randint(1, 16))
            del buf[pos:end]
        elif op == 4:
            del buf[pos:]
        elif op == 5 and pool:
            other = rng.choice(pool)
            a = rng.randint(0, len(other))
            buf[pos:pos] = other[a : a + rng.randint(1, 64)]
        elif buf:
            a = rng.randrange(len(buf))
            buf[pos:pos] = buf[a : a + rng.randint(1, 32)]
    return bytes(buf[:max_size])


def mutations(
    seeds: Sequence[bytes], count: int, *, seed: int = 0, max_size: int = 64 * 1024
) -> Iterator[bytes]:
    """``count`` inputs: the seeds themselves, then mutants of seeds and of earlier mutants."""
    rng = random.Random(seed)
    pool = list(seeds) or [b""]
    yield from pool
    for n in range(max(0, count - len(pool))):
        data = mutate(rng.choice(pool), rng, pool, max_size)
        if n % 16 == 0 and len(pool) < 256:
            pool.append(data)
        yield data
