"""The CLI starts fast: importing it pulls in no heavy module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("libp2p", "hypercorn", "starlette", "trio", "rich", "cryptography", "httpx", "sqlite3")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def test_importing_the_cli_imports_no_heavy_module() -> None:
    code = (
        "import sys, cli.main\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=_env(),
        timeout=60,
    )
    assert out.stdout.strip() == "[]", out.stdout
    # -X importtime lists every module imported; none of the heavy ones may appear.
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines()}
    assert not imported & set(HEAVY)


def test_help_runs_in_a_fresh_process(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**_env(), "DATANET_HOME": str(tmp_path)},
        timeout=60,
    )
    for command in ("init", "id", "org", "cert", "trust", "descriptor"):
        assert f"  {command} " in out.stdout
    assert list(tmp_path.iterdir()) == []  # --help touches nothing
