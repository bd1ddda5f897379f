"""The ``datanet`` console script: the root group with every command module registered.

Each command module registers its commands on the root group (``cli.app.cli``)
when imported; to add a module, add one line to the import below (the import is
the registration, hence ``noqa: F401``). Command modules import only click and
the standard library at import time (``tests/unit/test_cli_startup.py`` checks
that libp2p, trio, hypercorn, starlette, rich and cryptography stay out), so
``datanet --help`` answers fast.
"""

from __future__ import annotations

from cli import (
    access_cmds,  # noqa: F401 - registers datanet request, requests, grants, purposes
    api_cmds,  # noqa: F401 - registers datanet peers, publish, resolve, search, routing, config
    audit_cmds,  # noqa: F401 - registers datanet audit …
    catalog_cmds,  # noqa: F401 - registers datanet watch, deprecate, catalog stats|sync
    descriptor,  # noqa: F401 - registers datanet descriptor …
    devnet,  # noqa: F401 - registers datanet devnet
    home,  # noqa: F401 - registers datanet init, datanet id
    node,  # noqa: F401 - registers datanet node start|stop|status
    org,  # noqa: F401 - registers datanet org …
    trust,  # noqa: F401 - registers datanet cert …, datanet trust …
)
from cli.app import cli as datanet

__all__ = ["datanet", "main"]


def main() -> None:
    """Entry point of the ``datanet`` console script."""
    datanet.main(prog_name="datanet")


if __name__ == "__main__":
    main()
