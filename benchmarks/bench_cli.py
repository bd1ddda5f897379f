"""Wall time of CLI commands as a user runs them: `--help`, `resolve` and the other daemon commands.

Each run is a fresh process (interpreter start-up and imports included), as in a
shell. The commands talk to a running daemon over its HTTP API:

* default: a real single node provisioned here through the CLI (init, org,
  certificate, config), started with `datanet node start` on 127.0.0.1, with one
  published descriptor; the resolve is answered from its catalog, so the figure
  is the CLI + client + HTTP + API cost, not a DHT lookup (bench_net measures those);
* `--data-dir DIR --id dn://…`: an already running daemon and one of its datasets.

Per command (`commands` in the results): p50/p90/max wall time, and the import
time of the same command (`-X importtime`: the sum of the top-level imports'
cumulative times) with the heavy modules it imported (trio, httpcore, libp2p…).

Bytecode: the repository's packages are compiled first (``compileall``, as ``pip
install`` does) and each command runs once untimed, and ``PYTHONDONTWRITEBYTECODE``
is dropped from the commands' environment: without cached bytecode every run
compiles datanet's modules from source (about 60 ms of each command), which is
not what a user's installed ``datanet`` does.

Writes benchmarks/results/cli.json. Targets: `datanet --help` < 300 ms (brief);
issue 13: any command against a running daemon starts in < 300 ms on a quiet machine.

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
STARTUP_BUDGET_MS = 300
HEAVY = ("libp2p", "trio", "httpcore", "hypercorn", "starlette", "cryptography")


def daemon_commands(dataset_id: str) -> dict[str, list[str]]:
    """The commands timed against the daemon, by name (arguments after --data-dir)."""
    return {
        "resolve": ["resolve", dataset_id],
        "search": ["search", "bench"],
        "peers": ["peers"],
        "node status": ["node", "status"],
        "routing stats": ["routing", "stats"],
        "routing findprovs": ["routing", "findprovs", dataset_id],
        "catalog stats": ["catalog", "stats"],
        "audit show": ["audit", "show"],
        "requests": ["requests"],
        "id": ["id"],
    }


def import_profile(args: list[str]) -> tuple[float, list[str]]:
    """(milliseconds spent importing, heavy modules imported) for one run of ``args``."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cli.main", *args],
        cwd=REPO_ROOT,
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    total_us = 0
    names = set()
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        names.add(name.strip())
        if not name.startswith("  "):  # top level (one space after the bar)
            total_us += int(cumulative)
    heavy = sorted(m for m in HEAVY if m in names)
    return round(total_us / 1000, 1), heavy


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(ms), 1),
        "p90_ms": round(percentile(ms, 0.9), 1),
        "max_ms": round(max(ms), 1),
    }


def datanet_command() -> list[str]:
    """The console script if installed next to this interpreter, else `python -m cli.main`."""
    script = Path(sys.executable).parent / "datanet"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "cli.main"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {
        **env,
        "PYTHONPATH": str(REPO_ROOT),
        "DATANET_API_URL": "",
        "DATANET_API_TOKEN": "",
    }


def compile_packages() -> None:
    """Byte-compile the packages the CLI imports, as ``pip install`` does."""
    packages = [str(REPO_ROOT / name) for name in ("cli", "datanet", "identity", "routing")]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *packages], cwd=REPO_ROOT, env=_env(), check=True
    )


def time_runs(argv: list[str], runs: int) -> list[float]:
    """Milliseconds per run of `argv` (each must exit 0), after one untimed warm-up run."""
    subprocess.run(argv, cwd=REPO_ROOT, env=_env(), check=True, capture_output=True)
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
    compile_packages()
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
        commands: dict[str, dict[str, object]] = {}
        for name, argv in {"--help": ["--help"], **daemon_commands(dataset_id)}.items():
            full = argv if name == "--help" else ["--data-dir", str(data_dir), *argv]
            ms = help_ms if name == "--help" else time_runs([*cmd, *full], args.runs)
            import_ms, heavy = import_profile(full)
            commands[name] = {**summary(ms), "import_ms": import_ms, "heavy_modules": heavy}
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
        "bytecode": "compiled (compileall, as pip install does), one warm-up run per command",
        "heavy_modules_imported_by_cli_main": imported.split(",") if imported else [],
        "startup_budget_ms": STARTUP_BUDGET_MS,
        "commands": commands,
        "over_budget_p50": sorted(
            n for n, c in commands.items() if float(str(c["p50_ms"])) > STARTUP_BUDGET_MS
        ),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
