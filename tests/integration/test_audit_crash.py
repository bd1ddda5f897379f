"""Crash safety of the audit log: SIGKILL at random moments loses no acknowledged entry.

A child process appends entries (single appends and batches) and signs a head now
and then, printing an acknowledgement only after each call returned, i.e. after
the commit. The parent kills it with SIGKILL at a random moment, reopens the log,
and checks that every acknowledged entry is there with its exact bytes, that every
acknowledged head is stored, and that ``verify`` finds the log intact.
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

from datanet.records.audit import AuditEntry
from datanet.store.audit import AuditLog

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys
    from datanet.records.audit import AuditEntry
    from datanet.store.audit import AuditLog
    from datanet.testing.records import NODE_A, certificate

    def entry(n):
        return AuditEntry.create("decision", n, b"decision %d" % n * 8, {"n": n})

    path = sys.argv[1]
    log = AuditLog(path)
    chain = [certificate()]
    print("ready", flush=True)
    n = log.size
    rounds = 0
    while True:
        if rounds % 3 == 0:
            indexes = log.append_many([entry(n + i) for i in range(50)])
        else:
            indexes = [log.append(entry(n))]
        print("ack", indexes[0], indexes[-1], flush=True)
        n = indexes[-1] + 1
        if rounds % 5 == 4:
            log.sign_head(NODE_A, chain, 1_750_000_000 + rounds)
            print("head", n, flush=True)
        rounds += 1
    """
)


def expected(n: int) -> bytes:
    return AuditEntry.create("decision", n, b"decision %d" % n * 8, {"n": n}).encode()


@pytest.mark.timeout(90)
def test_sigkill_at_random_points_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    rng = random.Random(20261130)
    path = tmp_path / "audit.sqlite"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    acked = -1  # the highest acknowledged index
    heads: set[int] = set()
    rounds = 0
    deadline = time.monotonic() + 20
    while rounds < 10 and time.monotonic() < deadline:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n", proc.stderr.read() if proc.stderr else ""
        time.sleep(rng.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        for line in out.decode().splitlines():
            parts = line.split()
            if parts[:1] == ["ack"] and len(parts) == 3:
                acked = max(acked, int(parts[2]))
            elif parts[:1] == ["head"] and len(parts) == 2:
                heads.add(int(parts[1]))
        rounds += 1

        with AuditLog(path) as log:
            assert log.size >= acked + 1
            stored = [
                e.raw for s in range(0, acked + 1, 10_000) for e in log.entries(s, limit=10_000)
            ]
            for i in range(acked + 1):
                assert stored[i] == expected(i), i
            assert heads <= {h.head.size for h in log.heads()}
            report = log.verify()
            assert report.ok, report
    assert rounds >= 5
    assert acked > 100  # the test did exercise real writes
    assert heads  # and signed heads
