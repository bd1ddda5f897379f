"""Machine facts and the command line, recorded in every benchmark's results JSON.

A benchmark figure means little without the machine it was measured on, so
every ``benchmarks/results/*.json`` carries the output of :func:`results_header`.
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

__all__ = ["REPO_ROOT", "command_line", "cpu_model", "machine_facts", "results_header"]

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
    """Platform, CPU model, core count and Python version."""
    return {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
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
