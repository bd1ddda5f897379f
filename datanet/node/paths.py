"""The data directory's layout: every file and folder name of a node's home, spelled once.

Layout::

    <home>/                      mode 0700
      node.key                   the node's Ed25519 key (identity.keystore format, 0600)
      config.toml                node settings (datanet.node.config), written with the defaults
      trust.toml                 trusted org ids (+ local names) and the accept_any flag
      certs/<org>-<serial>.cert  installed membership certificates of this node
      revocations/<org>.rev      the newest revocation list held for each org
      orgs/<name>.key            org root keys created on this machine (0600)
      orgs/<name>.toml           per-org issuing state: next serial, revocations, issued log
      orgs/<name>.rev            the org's newest revocation list, ready to hand out
      datanet.sqlite             the node's database (datanet.store.db)
      catalog.sqlite             the node's catalog (datanet.store.catalog)
      access.sqlite              access requests sent and received, issued grants (0600)
      access-details.toml        per dataset, what a grant tells its grantee (optional)
      audit.sqlite               the node's audit log: entries and signed tree heads
      datanet.pid                the running daemon's pid, flock-ed while it runs
      api.token                  the running daemon's bearer token (0600)
      api.url                    the URL the running daemon's API listens on

``<org>`` is the multibase part of the org's ``did:key`` (``z6Mk…``), safe as a
file name on every platform.

Invariants:
* Every file and folder name of the data directory appears in this module only;
  the rest of datanet (home, authority, config, daemon, client, node, devnet) asks
  a :class:`HomeLayout` for its paths. Changing a name here changes the on-disk
  layout, which existing data directories rely on.
* Pure: builds paths, never touches the disk, imports nothing heavy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from identity.keys import OrgId

__all__ = [
    "API_URL_FILE",
    "CATALOG_FILENAME",
    "CONFIG_FILE_NAME",
    "DATA_DIR_ENV",
    "DB_FILENAME",
    "PID_FILE",
    "TOKEN_FILE",
    "HomeLayout",
    "org_file_stem",
    "resolve_data_dir",
]

CONFIG_FILE_NAME = "config.toml"
DB_FILENAME = "datanet.sqlite"
CATALOG_FILENAME = "catalog.sqlite"
#: Files the running daemon keeps in the data directory (see datanet.daemon).
PID_FILE = "datanet.pid"
TOKEN_FILE = "api.token"  # noqa: S105 - a file name
API_URL_FILE = "api.url"
DATA_DIR_ENV = "DATANET_HOME"


def resolve_data_dir(
    explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Path:
    """Pick the data directory: ``explicit`` > ``$DATANET_HOME`` > the platform default.

    Args:
        explicit: a path chosen by the caller (e.g. ``--data-dir``).
        env: the environment to read (``os.environ`` by default).
    """
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    value = (os.environ if env is None else env).get(DATA_DIR_ENV, "")
    if value:
        return Path(value).expanduser()
    return Path(platformdirs.user_data_dir("datanet"))


def org_file_stem(org: OrgId) -> str:
    """The multibase part of an org's did (``z6Mk…``): its name in file names."""
    return str(org).removeprefix("did:key:")


@dataclass(frozen=True)
class HomeLayout:
    """The paths of one data directory (see the module docstring).

    Args:
        root: the data directory; it need not exist.
    """

    root: Path

    # -- the node's own files ---------------------------------------------------

    @property
    def node_key(self) -> Path:
        """``node.key``."""
        return self.root / "node.key"

    @property
    def config(self) -> Path:
        """``config.toml``."""
        return self.root / CONFIG_FILE_NAME

    @property
    def trust(self) -> Path:
        """``trust.toml``."""
        return self.root / "trust.toml"

    @property
    def certs_dir(self) -> Path:
        """``certs/``."""
        return self.root / "certs"

    def certificate(self, org: OrgId, serial: int) -> Path:
        """``certs/<org>-<serial>.cert``."""
        return self.certs_dir / f"{org_file_stem(org)}-{serial}.cert"

    @property
    def revocations_dir(self) -> Path:
        """``revocations/``."""
        return self.root / "revocations"

    def revocation(self, org: OrgId) -> Path:
        """``revocations/<org>.rev``."""
        return self.revocations_dir / f"{org_file_stem(org)}.rev"

    @property
    def database(self) -> Path:
        """``datanet.sqlite``."""
        return self.root / DB_FILENAME

    @property
    def catalog(self) -> Path:
        """``catalog.sqlite``."""
        return self.root / CATALOG_FILENAME

    @property
    def access(self) -> Path:
        """``access.sqlite``: access requests (sent and received) and issued grants."""
        return self.root / "access.sqlite"

    @property
    def audit(self) -> Path:
        """``audit.sqlite``: the node's audit log (datanet.store.audit)."""
        return self.root / "audit.sqlite"

    @property
    def access_details(self) -> Path:
        """``access-details.toml``: what a grant tells its grantee, per dataset (optional)."""
        return self.root / "access-details.toml"

    # -- organizations created on this machine ----------------------------------

    @property
    def orgs_dir(self) -> Path:
        """``orgs/``."""
        return self.root / "orgs"

    def org_key(self, name: str) -> Path:
        """``orgs/<name>.key`` (``name`` must already be checked)."""
        return self.orgs_dir / f"{name}.key"

    def org_state(self, name: str) -> Path:
        """``orgs/<name>.toml``."""
        return self.orgs_dir / f"{name}.toml"

    def org_revocation(self, name: str) -> Path:
        """``orgs/<name>.rev``."""
        return self.orgs_dir / f"{name}.rev"

    # -- the running daemon's files ---------------------------------------------

    @property
    def pid_file(self) -> Path:
        """``datanet.pid``."""
        return self.root / PID_FILE

    @property
    def api_token(self) -> Path:
        """``api.token``."""
        return self.root / TOKEN_FILE

    @property
    def api_url(self) -> Path:
        """``api.url``."""
        return self.root / API_URL_FILE
