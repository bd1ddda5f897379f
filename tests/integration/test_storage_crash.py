"""Crash safety of the node database: SIGKILL at random moments loses no acknowledged write.

A child process writes through the real stack (RecordStore/ProviderStore with the
Storage sink, plus own descriptors) and prints an acknowledgement only after each
call returned, i.e. after the commit. The parent kills it with SIGKILL at a
random moment, reopens the file, and checks that every acknowledged write is
there and that ``PRAGMA integrity_check`` passes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from datanet.node.paths import DB_FILENAME
from datanet.store.db import Storage

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys
    from datanet.store.db import Storage
    from routing.stores import ProviderStore, RecordStore
    from routing.wire import Peer

    class Validator:
        def validate(self, key, value, now):
            pass

        def select(self, key, values):
            return len(values) - 1  # the newest wins

    path, start = sys.argv[1], int(sys.argv[2])
    db = Storage(path)
    records = RecordStore(Validator(), sink=db, writes_per_peer_per_minute=1e9)
    providers = ProviderStore(sink=db, adds_per_peer_per_minute=1e9)
    print("ready", flush=True)
    i = start
    while True:
        records.put(b"/t/%d" % i, b"value-%d" % i * 20, now=i, from_peer=b"peer")
        print("rec", i, flush=True)
        providers.add(b"key-%d" % i, Peer(b"p%d" % i, (b"addr",)), now=i, from_peer=b"p%d" % i)
        print("prov", i, flush=True)
        db.put_own_descriptor(b"/dn/%d" % (i % 7), b"d%d" % i, sequence=i, expires_at=1e12, now=i)
        print("own", i, flush=True)
        i += 1
    """
)


@pytest.mark.timeout(60)
def test_sigkill_at_random_points_loses_no_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(20240)
    path = tmp_path / DB_FILENAME
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    acked_records: set[int] = set()
    acked_providers: set[int] = set()
    last_own: dict[int, int] = {}
    start = 0
    deadline = time.monotonic() + 15
    rounds = 0
    while rounds < 12 and time.monotonic() < deadline:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n", proc.stderr.read() if proc.stderr else ""
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        highest = start - 1
        for line in out.decode().splitlines():
            parts = line.split()
            if len(parts) != 2:
                continue  # a line cut by the kill was never a complete acknowledgement
            kind, n = parts[0], int(parts[1])
            highest = max(highest, n)
            if kind == "rec":
                acked_records.add(n)
            elif kind == "prov":
                acked_providers.add(n)
            elif kind == "own":
                last_own[n % 7] = max(last_own.get(n % 7, -1), n)
        start = highest + 2  # never reuse an index whose write may be half-acknowledged
        rounds += 1

        with Storage(path) as db:
            assert db.integrity_check() == ["ok"]
            values = {r.key: r.value for r in db.load_records()}
            for n in acked_records:
                assert values.get(b"/t/%d" % n) == b"value-%d" % n * 20, n
            provided = {(e.key, e.peer.id) for e in db.load_providers()}
            for n in acked_providers:
                assert (b"key-%d" % n, b"p%d" % n) in provided, n
            own = {d.key: d.sequence for d in db.load_own_descriptors()}
            for slot, seq in last_own.items():
                assert own[b"/dn/%d" % slot] >= seq
    assert rounds >= 5
    assert len(acked_records) > 20  # the test did exercise real writes
