"""Coverage-guided fuzzing with atheris: one target per process, results in one JSON file.

``python -m tests.fuzz.run --target NAME --inputs N`` fuzzes one target in this
process (atheris instruments ``datanet``, ``identity`` and ``routing`` as they are
imported) and prints one JSON line of results. Without ``--target`` it runs every
target (or those named by ``--only``) one after another, each in its own process so
one crash does not stop the others, and writes ``--results`` (by default
``benchmarks/results/fuzz.json``).

Invariants:
    - The committed seed corpus (``tests/fuzz/corpus/<target>``) is only read; the
      inputs libFuzzer keeps go to a temporary directory.
    - An input that raises an undocumented exception or breaks an invariant, runs
      longer than ``--max-time-per-input`` or takes the process over
      ``--rss-limit-mb`` is a crash; libFuzzer stops the target at its first crash
      and the input is saved under ``--artifacts``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["fuzz_in_process", "main", "run_target"]

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return round(int(fh.read().split()[1]) * _PAGE / 2**20, 1)


def fuzz_in_process(
    target: str, inputs: int, max_time: float, rss_limit_mb: int, artifacts: Path, stats: Path
) -> None:
    """Fuzz ``target`` with atheris in this process; never returns (libFuzzer exits).

    Progress (inputs, max input time, rss at the first and the latest input) is
    written to ``stats`` every 1000 inputs and on the last one.
    """
    import atheris

    with atheris.instrument_imports(include=["datanet", "identity", "routing"]):
        from tests.fuzz.targets import TARGETS, run_one

    fn = TARGETS[target]
    state: dict[str, Any] = {"inputs": 0, "max_input_seconds": 0.0, "rss_start_mb": None}

    state["max_input_wall_seconds"] = 0.0
    partial = stats.with_suffix(".tmp")

    def save() -> None:
        state["rss_end_mb"] = _rss_mb()
        # atomically: the parent may read it while this process is killed mid-write
        partial.write_text(json.dumps(state), encoding="utf-8")
        os.replace(partial, stats)

    def one(data: bytes) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            run_one(fn, data)
        finally:
            cpu = time.process_time() - cpu
            state["inputs"] += 1
            state["max_input_seconds"] = max(state["max_input_seconds"], cpu)
            state["max_input_wall_seconds"] = max(
                state["max_input_wall_seconds"], time.perf_counter() - wall
            )
            if state["rss_start_mb"] is None:
                state["rss_start_mb"] = _rss_mb()
            if state["inputs"] % 1000 == 0 or state["inputs"] >= inputs:
                save()
        if cpu > max_time:  # a hang: judged on CPU time, which a busy machine does not stretch
            raise RuntimeError(f"one input took {cpu:.2f} s of CPU (limit {max_time} s)")

    with tempfile.TemporaryDirectory(prefix=f"fuzz-{target}-") as work:
        argv = [
            sys.argv[0],
            f"-runs={inputs}",
            # libFuzzer's watchdog counts wall time, which a loaded machine stretches
            # (seen: a 1-byte input "timing out" under nice 19); hangs are judged on
            # CPU time in one(), the watchdog only catches a process that never returns.
            f"-timeout={max(10, round(10 * max_time))}",
            f"-rss_limit_mb={rss_limit_mb}",
            f"-artifact_prefix={artifacts}/{target}-",
            "-print_final_stats=1",
            work,
            str(CORPUS_DIR / target),
        ]
        atheris.Setup(argv, one)
        atheris.Fuzz()


_STAT = re.compile(r"^stat::(\w+):\s*(\d+)", re.MULTILINE)


def run_target(
    target: str,
    inputs: int,
    *,
    max_time: float = 1.0,
    rss_limit_mb: int = 2048,
    artifacts: Path,
    nice: int = 0,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Fuzz ``target`` in a child process; returns its results.

    Returns:
        ``inputs`` (executed), ``crashes`` (0 or 1: the run stops at the first),
        ``crash`` (the crash report's last lines and the saved input, if any),
        ``max_input_seconds``, ``rss_start_mb``, ``rss_end_mb``, ``peak_rss_mb``,
        ``seconds``, ``exit_code``.
    """
    artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fuzz-stats-") as tmp:
        stats = Path(tmp) / "stats.json"
        cmd = [
            *(["nice", "-n", str(nice)] if nice else []),
            sys.executable,
            "-m",
            "tests.fuzz.run",
            "--target",
            target,
            "--inputs",
            str(inputs),
            "--max-time-per-input",
            str(max_time),
            "--rss-limit-mb",
            str(rss_limit_mb),
            "--artifacts",
            str(artifacts),
            "--stats",
            str(stats),
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        started = time.monotonic()
        proc = subprocess.run(  # noqa: PLW1510
            cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        seconds = time.monotonic() - started
        try:
            state = json.loads(stats.read_text("utf-8"))
        except (OSError, ValueError):  # the child died before its first save
            state = {}
    final = {k: int(v) for k, v in _STAT.findall(proc.stderr)}
    crashed = proc.returncode != 0
    result: dict[str, Any] = {
        "inputs": final.get("number_of_executed_units", state.get("inputs", 0)),
        "crashes": int(crashed),
        "max_input_seconds": round(state.get("max_input_seconds", 0.0), 4),
        "max_input_wall_seconds": round(state.get("max_input_wall_seconds", 0.0), 4),
        "rss_start_mb": state.get("rss_start_mb"),
        "rss_end_mb": state.get("rss_end_mb"),
        "peak_rss_mb": final.get("peak_rss_mb"),
        "seconds": round(seconds, 1),
        "exit_code": proc.returncode,
    }
    if crashed:
        saved = re.findall(r"Test unit written to (\S+)", proc.stderr)
        # the Python traceback (atheris prints it on stdout) and libFuzzer's report
        output = proc.stdout + proc.stderr
        start = output.find("=== Uncaught Python exception")
        if start < 0:
            start = max(0, len(output) - 3000)
        result["crash"] = {
            "report": output[start : start + 3000],
            "input": saved[-1] if saved else None,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__)
    parser.add_argument("--target", help="fuzz this target in this process")
    parser.add_argument("--only", nargs="*", default=None, help="targets to run (default: all)")
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--max-time-per-input", type=float, default=1.0)
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument("--nice", type=int, default=0, help="run the children with nice -n")
    parser.add_argument("--artifacts", type=Path, default=Path(tempfile.gettempdir()) / "fuzz")
    parser.add_argument("--stats", type=Path, help="(internal) where a child writes progress")
    parser.add_argument("--results", type=Path, help="write the results JSON here")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other targets' results already in --results (re-running a few targets)",
    )
    args = parser.parse_args(argv)

    if args.target:
        stats = args.stats or Path(tempfile.gettempdir()) / f"fuzz-{args.target}.json"
        fuzz_in_process(
            args.target,
            args.inputs,
            args.max_time_per_input,
            args.rss_limit_mb,
            args.artifacts,
            stats,
        )
        return 0  # not reached: libFuzzer exits

    from tests.fuzz.seeds import SEEDS

    names = args.only or sorted(SEEDS)
    results: dict[str, Any] = {}
    for name in names:
        results[name] = run_target(
            name,
            args.inputs,
            max_time=args.max_time_per_input,
            rss_limit_mb=args.rss_limit_mb,
            artifacts=args.artifacts,
            nice=args.nice,
        )
        print(json.dumps({"target": name, **results[name]}, default=str)[:400], flush=True)
    if args.results:
        sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
        from _machine import results_header

        kept: dict[str, Any] = {}
        earlier: list[str] = []
        if args.merge and args.results.exists():
            old = json.loads(args.results.read_text("utf-8"))
            kept = old.get("targets", {})
            earlier = [*old.get("earlier_commands", []), old.get("command", "")]
        for result in results.values():
            result["inputs_asked"] = args.inputs
            result["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        doc = {
            **results_header(),
            # results_header() names the script file; this runs as a module
            "command": shlex.join(["python", "-m", "tests.fuzz.run", *sys.argv[1:]]),
            "max_time_per_input": args.max_time_per_input,
            "rss_limit_mb": args.rss_limit_mb,
            "targets": dict(sorted({**kept, **results}.items())),
        }
        if earlier:  # --merge: the commands that produced the targets kept
            doc["earlier_commands"] = earlier
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 1 if any(r["crashes"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
