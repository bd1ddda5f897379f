"""One node in its own process for the multi-process witnessing test (tests only).

``python tests/e2e/witness_worker.py HOME ROLE TAG COUNT``: runs the node of
``HOME``; with ROLE ``log`` it keeps an audit log in ``HOME/audit.sqlite``
(through the node's own audit trail when it has one, else :class:`FileTrail`,
a stand-in with the trail's interface), appends COUNT entries tagged TAG in two
batches, then signs a fresh head every two seconds, as a busy node does.
Writes ``HOME/worker.ready`` once the node has joined.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import trio

from datanet.node.config import load_config
from datanet.node.home import Home
from datanet.node.startup import open_node
from datanet.records.audit import AuditEntry, EntryKind
from datanet.store.audit import AuditLog
from identity.keys import KeyPair


class FileTrail:
    """The audit trail's interface over one AuditLog (a stand-in until the node has one)."""

    def __init__(self, log: AuditLog, key: KeyPair, chain: tuple[bytes, ...]) -> None:
        self.log = log
        self._key = key
        self._chain = chain
        self._callbacks: list[Callable[[bytes], None]] = []

    def record(self, kind: EntryKind, record: bytes | None, details: Mapping[str, Any]) -> int:
        return self.log.append(AuditEntry.create(kind, int(time.time()), record, details))

    def head(self, *, fresh: bool = False) -> bytes:
        latest = self.log.latest_head()
        if fresh or latest is None or latest.head.size != self.log.size:
            raw = self.log.sign_head(self._key, self._chain, int(time.time()))
            for cb in self._callbacks:
                cb(raw)
            return raw
        return latest.raw

    def add_cosignature(self, raw: bytes) -> bool:
        return True

    def cosignatures(self, head: bytes) -> list[bytes]:
        return []

    def on_head(self, callback: Callable[[bytes], None]) -> None:
        self._callbacks.append(callback)


async def main(home_dir: Path, role: str, tag: str, count: int) -> None:
    home = Home(home_dir)
    key = home.load_node_key()
    async with open_node(home_dir, load_config(home.config_path), key) as node:
        assert node.witness is not None
        trail: Any = getattr(node, "audit", None)  # the node's own trail, once it has one
        if role == "log" and trail is None:
            chain = tuple(home.membership_chain(int(time.time())))
            trail = FileTrail(AuditLog(home_dir / "audit.sqlite"), key, chain)
        if role == "log" and node.witness.trail is None:
            node.witness.attach(trail)
        (home_dir / "worker.ready").write_text("ready")
        if role != "log":
            await trio.sleep_forever()
        for batch in (count // 2, count - count // 2):
            for i in range(batch):
                trail.record(EntryKind.PUBLISH, None, {"tag": tag, "i": i})
            trail.head(fresh=True)
            await trio.sleep(3)
        while True:
            trail.head(fresh=True)
            await trio.sleep(2)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]))
