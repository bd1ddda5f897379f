"""A one-minute soak: 6 real nodes in 2 worker processes, churn and a flooding peer.

Runs ``benchmarks/bench_soak.py --nodes 6 --minutes 1`` as a process (the same
harness as the 30-minute soak) and checks its results loosely: the churn really
stopped and restarted nodes, the flood really ran, lookups kept succeeding, and
neither file descriptors nor trio tasks grew across the churn cycles.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")

#: Most fds / tasks the network may gain between the first and last judged samples.
#: A node restarted without closing its databases and sockets leaks 10+ fds and
#: dozens of tasks per cycle; the run has 3 or more cycles.
FD_SLACK = 24
TASK_SLACK = 80


def soak(tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "soak.json"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_soak.py"),
        "--nodes", "6",
        "--minutes", "1",
        "--processes", "2",
        "--churn-every", "12",
        "--churn-size", "1",
        "--downtime", "4",
        "--sample-every", "6",
        "--warmup-minutes", "0.2",
        "--lookup-rate", "3",
        "--publish-every", "1",
        "--flood-victims", "2",
        "--workdir", str(tmp_path / "work"),
        "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400, check=False)
    assert out.exists(), proc.stderr[-3000:]
    return proc.returncode, json.loads(out.read_text()), proc.stdout + proc.stderr[-3000:]


def test_a_short_soak_with_churn_and_a_flood_keeps_lookups_and_leaks_nothing(
    tmp_path: Path,
) -> None:
    code, result, output = soak(tmp_path)

    # the churn and the flood really happened
    assert result["churn"]["errors"] == [], output
    assert result["churn"]["cycles"] >= 3, output
    assert sum(result["flood"]["rounds_sent"].values()) >= 20, output
    # lookups kept succeeding (loosely: 1 minute of a loaded machine)
    lookups = result["lookups"]
    assert lookups.get("success", 0) >= 30, output
    assert result["success_rate"] >= 0.97, output

    # no fd or task leak across the churn cycles (samples are taken with every node up)
    judged = [s for s in result["samples"] if s["t"] >= result["parameters"]["warmup_minutes"] * 60]
    assert len(judged) >= 4, output
    fds = [sum(w["fds"] for w in s["workers"]) for s in judged]
    tasks = [sum(w["tasks"] for w in s["workers"]) for s in judged]
    assert fds[-1] <= fds[0] + FD_SLACK, (fds, output)
    assert tasks[-1] <= tasks[0] + TASK_SLACK, (tasks, output)
    assert result["curves"]["fds"]["flat"], output
    assert result["curves"]["tasks"]["flat"], output
    # the harness's own verdict agrees with what it wrote
    assert code == (0 if result["passed"] else 1), output
    assert "PASSED" in output or "FAILED" in output
