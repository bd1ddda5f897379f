"""Wall time of CLI commands as a user runs them: `datanet --help` and `datanet resolve`.

Each run is a fresh process (interpreter start-up and imports included), as in a
shell. `resolve` talks to a running daemon over its HTTP API:

* default: a real single node provisioned here through the CLI (init, org,
  certificate, config), started with `datanet node start` on 127.0.0.1, with one
  published descriptor; the resolve is answered from its catalog, so the figure
  is the CLI + client + HTTP + API cost, not a DHT lookup (bench_net measures those);
* `--data-dir DIR --id dn://…`: an already running daemon and one of its datasets.

Writes benchmarks/results/cli.json. Target (brief): `datanet --help` < 300 ms;
issue 5: `datanet resolve` well under a second.

    python benchmarks/bench_cli.py [--runs 20] [--data-dir DIR --id ID]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import REPO_ROOT, results_header

RESULTS = REPO_ROOT / "benchmarks" / "results" / "cli.json"


def datanet_command() -> list[str]:
    """The console script if installed next to this interpreter, else `python -m cli.main`."""
    script = Path(sys.executable).parent / "datanet"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "cli.main"]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "DATANET_API_URL": "",
        "DATANET_API_TOKEN": "",
    }


def time_runs(argv: list[str], runs: int) -> list[float]:
    """Milliseconds per run of `argv` (each must exit 0)."""
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=REPO_ROOT, env=_env(), check=True, capture_output=True)
        out.append((time.perf_counter() - started) * 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _dn(data_dir: Path, *args: str) -> str:
    return subprocess.run(
        [*datanet_command(), "--data-dir", str(data_dir), *args],
        cwd=REPO_ROOT,
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def start_real_daemon(base: Path) -> tuple[subprocess.Popen[str], Path, str]:
    """Provision one node of one org through the CLI, start it, publish one descriptor.

    Returns (daemon process, data dir, dataset id).
    """
    home = base / "node"
    _dn(home, "init", "--no-passphrase")
    org = json.loads(_dn(home, "--json", "org", "create", "bench", "--no-passphrase"))["org"]
    _dn(home, "org", "issue", "--org", "bench", "--role", "publisher", "--out", str(base / "c"))
    _dn(home, "cert", "install", str(base / "c"))
    _dn(home, "config", "set", "network.listen", "/ip4/127.0.0.1/tcp/0")
    _dn(home, "config", "set", "api.address", "127.0.0.1:0")
    proc = subprocess.Popen(
        [*datanet_command(), "--data-dir", str(home), "--json", "node", "start"],
        cwd=REPO_ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    if not proc.stdout.readline():
        raise SystemExit("the daemon did not start")
    _dn(home, "descriptor", "new", "bench", "bench/cli", "--out", str(base / "d.toml"))
    _dn(home, "descriptor", "sign", str(base / "d.toml"), "--out", str(base / "d.dnd"))
    _dn(home, "publish", str(base / "d.dnd"))
    return proc, home, f"dn://{org}/bench/cli"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--data-dir", type=Path, help="data dir of a running real daemon")
    parser.add_argument("--id", help="a dataset id that daemon resolves")
    args = parser.parse_args()
    if (args.data_dir is None) != (args.id is None):
        parser.error("--data-dir and --id go together")

    cmd = datanet_command()
    subprocess.run([*cmd, "--help"], cwd=REPO_ROOT, env=_env(), check=True, capture_output=True)
    help_ms = time_runs([*cmd, "--help"], args.runs)

    tmp: Path | None = None
    proc: subprocess.Popen[str] | None = None
    try:
        if args.data_dir is None:
            tmp = Path(tempfile.mkdtemp(prefix="datanet-bench-cli-"))
            proc, data_dir, dataset_id = start_real_daemon(tmp)
            daemon = "one real node started by this benchmark (warm: the record is local)"
        else:
            data_dir, dataset_id, daemon = args.data_dir, args.id, "an already running daemon"
        resolve_argv = [*cmd, "--data-dir", str(data_dir), "resolve", dataset_id]
        resolve_ms = time_runs(resolve_argv, args.runs)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, cli.main; print(','.join(sorted(m for m in ('libp2p', 'trio', "
            "'hypercorn', 'starlette', 'httpx', 'rich') if m in sys.modules)))",
        ],
        cwd=REPO_ROOT,
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()

    results = {
        **results_header(),
        "runs": args.runs,
        "cli": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)),
        "help_p50_ms": round(statistics.median(help_ms), 1),
        "help_p90_ms": round(percentile(help_ms, 0.9), 1),
        "help_max_ms": round(max(help_ms), 1),
        "help_target_ms": 300,
        "resolve_p50_ms": round(statistics.median(resolve_ms), 1),
        "resolve_p90_ms": round(percentile(resolve_ms, 0.9), 1),
        "resolve_max_ms": round(max(resolve_ms), 1),
        "resolve_daemon": daemon,
        "heavy_modules_imported_by_cli_main": imported.split(",") if imported else [],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
