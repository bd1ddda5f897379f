"""Run the real daemon (datanet.daemon.run_daemon) over the in-memory node, in its own process.

Usage: python -m datanet.testing.memory_daemon DATA_DIR. Prints the API URL on stdout when ready.
With APINODE_SLOW_START=<seconds> the node takes that long to open (like a node
still joining its network) and prints "opening" on stdout first.
Used by the daemon tests for signals, pid lock and files; the real node's own
end-to-end tests live in tests/e2e.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from datanet.api._node_protocol import NodeAPI
from datanet.daemon import run_daemon
from datanet.errors import DatanetError
from datanet.node.config import Config
from datanet.testing.doubles import MemoryNode
from identity.keys import KeyPair


@contextlib.asynccontextmanager
async def factory(data_dir: Path, config: Config, node_key: KeyPair) -> AsyncIterator[NodeAPI]:
    slow = float(os.environ.get("APINODE_SLOW_START", "0"))
    if slow:
        print("opening", flush=True)
        await trio.sleep(slow)
    yield MemoryNode(node_key=node_key)


def main() -> int:
    def ready(url: str) -> None:
        print(url, flush=True)

    try:
        run_daemon(Path(sys.argv[1]), KeyPair.from_seed(b"\x01" * 32), factory, on_ready=ready)
    except DatanetError as exc:
        print(f"error {exc.code}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
