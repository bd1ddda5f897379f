"""Importing the adapter loads only the parts of py-libp2p it uses."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# py-libp2p's full package import costs about 86 MB of RSS here; the adapter
# about 65 MB (trio alone: 25 MB). The bound leaves room for noise.
MAX_RSS_MB = 75


def test_import_skips_libp2p_package_init_and_heavy_modules() -> None:
    code = textwrap.dedent(
        """
        import sys
        import datanet.p2p
        import libp2p
        # VmHWM, not ru_maxrss: the latter keeps the forked parent's peak across exec.
        status = open("/proc/self/status").read().split("VmHWM:")[1]
        rss = int(status.split()[0]) / 1024
        heavy = [m for m in ("libp2p.host.basic_host", "libp2p.pubsub.gossipsub",
                             "libp2p.kad_dht.kad_dht", "libp2p.bitswap", "zeroconf")
                 if m in sys.modules]
        print(rss, hasattr(libp2p, "new_host"), heavy)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    rss, has_new_host, heavy = out.stdout.strip().split(" ", 2)
    assert has_new_host == "False"
    assert heavy == "[]"
    assert float(rss) < MAX_RSS_MB, f"import datanet.p2p costs {rss} MB"


def test_works_when_libp2p_was_fully_imported_first() -> None:
    code = "import libp2p, datanet.p2p; print(hasattr(libp2p, 'new_host'))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "True"
