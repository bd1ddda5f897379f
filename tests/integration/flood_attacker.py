"""A connection flood from one address, run as its own process by test_p2p_attack.

``python flood_attacker.py PORT SECONDS SOCKETS`` keeps SOCKETS connections from
127.0.0.2 to 127.0.0.1:PORT open and reopening for SECONDS, cycling through
three variants (idle; garbage then close; a multistream header and a
``/noise`` proposal, then nothing), and prints ``connections=N seconds=S``.
"""

from __future__ import annotations

import itertools
import sys

import trio

ATTACKER_IP = "127.0.0.2"
NOISE_PROPOSAL = b"\x13/multistream/1.0.0\n\x07/noise\n"
HOLD = (0.4, 0.02, 0.4)  # seconds each variant keeps its socket: idle, garbage, /noise


async def flood(port: int, seconds: float, sockets: int) -> None:
    opened = 0

    async def worker(n: int) -> None:
        nonlocal opened
        for round_ in itertools.count():
            variant = (n + round_) % 3
            sock = trio.socket.socket()
            try:
                await sock.bind((ATTACKER_IP, 0))
                await sock.connect(("127.0.0.1", port))
                opened += 1
                if variant == 1:
                    await sock.send(b"\xff" * 64)
                elif variant == 2:
                    await sock.send(NOISE_PROPOSAL)
                await trio.sleep(HOLD[variant])
            except OSError:
                await trio.sleep(0.01)
            finally:
                sock.close()

    started = trio.current_time()
    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            for n in range(sockets):
                nursery.start_soon(worker, n)
    took = trio.current_time() - started
    print(f"connections={opened} seconds={took:.1f}", flush=True)


if __name__ == "__main__":
    trio.run(flood, int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))
