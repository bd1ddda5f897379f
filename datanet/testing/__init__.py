"""datanet.testing: tools for testing datanet and programs built on it.

In-process and multi-process networks of real nodes, the in-memory node double
behind the HTTP API, and deterministic keys, records and clocks - as
``trio.testing`` is for trio. Product code never imports this package (an
import-linter contract).

Importing this package stays light (no trio, no py-libp2p): it re-exports the
clock (:mod:`~datanet.testing.clock`) and record builders
(:mod:`~datanet.testing.records`). The heavier tools are imported from their
modules:

* :mod:`datanet.testing.network` - in-process networks of real nodes, raw puts.
* :mod:`datanet.testing.localnet` - multi-process networks driven over pipes
  (the runner side is :mod:`datanet.testing.localnet_worker`).
* :mod:`datanet.testing.raw` - raw kad frames past a node's own client.
* :mod:`datanet.testing.streams` - in-memory framed stream pairs for p2p services.
* :mod:`datanet.testing.doubles` - :class:`~datanet.testing.doubles.MemoryNode`,
  the in-memory node behind the HTTP API; :mod:`datanet.testing.memory_daemon`
  runs it as a daemon.
* :mod:`datanet.testing.p2p` - plain py-libp2p peers and admission policies.
* :mod:`datanet.testing.jspeer` - a stock js-libp2p peer in a child process
  (``tests/interop/js``), installed from its lockfile and driven over JSON lines.
"""

from __future__ import annotations

from datanet.testing.clock import DAY, HOUR, NOW, ManualClock
from datanet.testing.records import (
    NODE_A,
    NODE_B,
    ORG_A,
    ORG_B,
    certificate,
    descriptor,
    forge_body,
    full_descriptor,
    key,
    node_descriptor,
    sign_as,
    signed,
    signed_by,
)

__all__ = [
    "DAY",
    "HOUR",
    "NODE_A",
    "NODE_B",
    "NOW",
    "ORG_A",
    "ORG_B",
    "ManualClock",
    "certificate",
    "descriptor",
    "forge_body",
    "full_descriptor",
    "key",
    "node_descriptor",
    "sign_as",
    "signed",
    "signed_by",
]
