"""Machine facts and the command line, recorded in every benchmark's results JSON.

A benchmark figure means little without the machine it was measured on, so
every ``benchmarks/results/*.json`` carries the output of :func:`results_header`,
including a calibration of the machine at the time of the run: these machines
differ about 3x in speed from one day to the next, so a figure is compared with
another day's only after dividing by the ratio of their calibrations.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

__all__ = [
    "REPO_ROOT",
    "calibration",
    "command_line",
    "cpu_model",
    "machine_facts",
    "results_header",
]

REPO_ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU model name (from /proc/cpuinfo on Linux, else the platform's guess)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict[str, Any]:
    """Platform, CPU model, core count, Python version and a calibration of the machine."""
    return {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "calibration": calibration(),
    }


def _best_rate(work: Any, units: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return units / best


def calibration() -> dict[str, float]:
    """How fast this machine is right now, on two fixed workloads (best of three).

    ``python_mops``: millions of simple interpreter operations per second (the
    kind of work the protocol code does); ``ed25519_verify_per_second``:
    signature checks through ``cryptography`` (the kind of work verification does).
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PrivateKey,
    )

    loops = 300_000

    def interpreter() -> None:
        table: dict[int, int] = {}
        for i in range(loops):
            table[i & 1023] = table.get(i & 1023, 0) + (i ^ 0x5A5A)

    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = key.public_key()
    message = b"datanet calibration" * 8
    signature = key.sign(message)
    checks = 500

    def verify() -> None:
        for _ in range(checks):
            public.verify(signature, message)

    return {
        "python_mops": round(_best_rate(interpreter, loops) / 1e6, 3),
        "ed25519_verify_per_second": round(_best_rate(verify, checks)),
    }


def command_line() -> str:
    """The command that produced the results, relative to the repository root."""
    argv = list(sys.argv)
    if argv:
        with contextlib.suppress(ValueError):
            argv[0] = str(Path(argv[0]).resolve().relative_to(REPO_ROOT))
    return shlex.join(["python", *argv])


def results_header() -> dict[str, Any]:
    """The keys every results file starts with: ``machine``, ``command``, ``date``."""
    return {
        "machine": machine_facts(),
        "command": command_line(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
