"""The node's data directory: its key, its certificates, whom it trusts, its revocations.

Resolution: an explicit path, else ``$DATANET_HOME``, else
``platformdirs.user_data_dir("datanet")``.

The layout (file names) is :mod:`datanet.node.paths`; the organizations created
here and their certificate authority are :mod:`datanet.node.authority`.

Invariants:
* Every file is written atomically (:func:`identity.keystore.atomic_write`); the
  key file is 0600. Nothing here reads a clock: ``now`` is passed in.
* Only certificates for this node's own peer id, correctly signed by the org
  they name and not yet expired, are installed; installing one trusts its org.
* A revocation list replaces the held one only if its sequence is higher.
* Every failure is a :class:`~datanet.errors.DatanetError`; an ``OSError`` is
  reported as a :class:`HomeError` that names the file.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from datanet.errors import (
    AlreadyInitialized,
    CertificateExpired,
    CertificateRevoked,
    DatanetError,
    DecodeError,
    HomeError,
    InvalidInput,
    NotFound,
    NotInitialized,
    ScopeError,
    StaleRecord,
)
from datanet.node.config import Config, render_config
from datanet.node.paths import DATA_DIR_ENV, HomeLayout, resolve_data_dir
from identity.certs import (
    MembershipCertificate,
    Revocation,
    Role,
    TrustStore,
    parse_certificate,
    parse_revocation,
)
from identity.keys import KeyPair, OrgId, PeerId
from identity.keystore import (
    DEFAULT_KDF,
    KdfParams,
    KeyType,
    atomic_write,
    load_key,
    read_key_info,
    save_key,
)

__all__ = [
    "DATA_DIR_ENV",
    "ORG_NAME_PATTERN",
    "AlreadyInitialized",
    "Home",
    "HomeError",
    "InstalledCertificate",
    "NotInitialized",
    "TrustedOrg",
    "certificate_status",
    "check_org_name",
    "read_file",
    "read_toml",
    "resolve_data_dir",
    "write_file",
]

#: A local org name (it becomes a file name in ``orgs/``; trusted orgs may carry one too).
ORG_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_MAX_SMALL_FILE = 1024 * 1024


@dataclass(frozen=True)
class InstalledCertificate:
    """A membership certificate installed in ``certs/``."""

    path: Path
    raw: bytes
    cert: MembershipCertificate


@dataclass(frozen=True)
class TrustedOrg:
    """An entry of ``trust.toml``: a trusted org id and its local name (may be empty)."""

    org: OrgId
    name: str = ""


def certificate_status(
    cert: MembershipCertificate, now: int, trust: TrustStore | None = None
) -> str:
    """One word for a certificate's state: valid, revoked, expired or not_yet_valid."""
    if trust is not None and trust.is_revoked(cert.org, cert.serial):
        return "revoked"
    if now >= cert.not_after:
        return "expired"
    if now < cert.not_before:
        return "not_yet_valid"
    return "valid"


def check_org_name(name: str) -> str:
    """Validate a local org name (it becomes a file name).

    Raises:
        InvalidInput: not 1-64 characters of ``[a-z0-9._-]`` starting with a letter or digit.
    """
    if not isinstance(name, str) or not ORG_NAME_PATTERN.match(name):
        raise InvalidInput(
            f"bad organization name {str(name)[:80]!r}: use 1-64 characters a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return name


def write_file(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically.

    Raises:
        HomeError: the file cannot be written (the message names it).
    """
    try:
        atomic_write(path, data, mode=mode, overwrite=True)
    except OSError as exc:
        raise HomeError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_file(path: Path, *, max_size: int = _MAX_SMALL_FILE) -> bytes:
    """Read a small file of the data directory, refusing one over ``max_size``.

    Raises:
        FileNotFoundError: there is no such file (callers decide what that means).
        HomeError: it cannot be read or is too large.
    """
    try:
        with path.open("rb") as f:
            data = f.read(max_size + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise HomeError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > max_size:
        raise HomeError(f"{path} is larger than {max_size} bytes")
    return data


def read_toml(path: Path) -> dict[str, Any]:
    """A small TOML file of the data directory; a missing file is an empty document.

    Raises:
        HomeError: it cannot be read, is too large or is not TOML.
    """
    try:
        return tomllib.loads(read_file(path).decode("utf-8"))
    except FileNotFoundError:
        return {}
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise HomeError(f"{path} is not valid TOML: {exc}") from None


class Home:
    """A node's data directory (see the module docstring for the layout).

    Args:
        path: the directory; it need not exist until :meth:`init`.
        kdf: scrypt cost for keys encrypted through this object.
    """

    def __init__(self, path: str | os.PathLike[str], *, kdf: KdfParams = DEFAULT_KDF) -> None:
        self.path = Path(path)
        self.kdf = kdf

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None = None) -> Home:
        """The data directory chosen by :func:`resolve_data_dir`."""
        return cls(resolve_data_dir(explicit))

    def __repr__(self) -> str:
        return f"Home({str(self.path)!r})"

    # -- layout ---------------------------------------------------------------

    @property
    def layout(self) -> HomeLayout:
        """Every path of this data directory."""
        return HomeLayout(self.path)

    @property
    def node_key_path(self) -> Path:
        """``node.key``."""
        return self.layout.node_key

    @property
    def config_path(self) -> Path:
        """``config.toml``."""
        return self.layout.config

    @property
    def trust_path(self) -> Path:
        """``trust.toml``."""
        return self.layout.trust

    @property
    def certs_dir(self) -> Path:
        """``certs/``."""
        return self.layout.certs_dir

    @property
    def revocations_dir(self) -> Path:
        """``revocations/``."""
        return self.layout.revocations_dir

    @property
    def database_path(self) -> Path:
        """``datanet.sqlite``."""
        return self.layout.database

    def make_dirs(self) -> None:
        """Create the directory and its folders (mode 0700) if missing.

        Raises:
            HomeError: they cannot be created.
        """
        layout = self.layout
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            for sub in (layout.certs_dir, layout.revocations_dir, layout.orgs_dir):
                sub.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise HomeError(f"cannot create {self.path}: {exc.strerror or exc}") from None

    # -- node key ---------------------------------------------------------------

    def is_initialized(self) -> bool:
        """Whether ``node.key`` exists."""
        return self.node_key_path.exists()

    def init(self, passphrase: str | None = None) -> KeyPair:
        """Create the layout and a fresh node key; write default config and trust files.

        Raises:
            AlreadyInitialized: a node key already exists (it is never replaced).
            HomeError, KeystoreError: the files cannot be written.
        """
        if self.is_initialized():
            raise AlreadyInitialized(f"{self.path} already holds a node key ({self.node_key_path})")
        self.make_dirs()
        key = KeyPair.generate()
        save_key(
            self.node_key_path, key, key_type=KeyType.NODE, passphrase=passphrase, kdf=self.kdf
        )
        if not self.config_path.exists():
            write_file(self.config_path, render_config(Config.defaults()).encode("utf-8"))
        if not self.trust_path.exists():
            self._save_trust([], accept_any=False)
        return key

    def _require_init(self) -> None:
        if not self.is_initialized():
            raise NotInitialized(f"no node key in {self.path}; run `datanet init` first")

    def node_peer_id(self) -> PeerId:
        """This node's peer id, read from the key file without unlocking it.

        Raises:
            NotInitialized: there is no node key.
            KeystoreError: the key file is unreadable or damaged.
        """
        self._require_init()
        return PeerId(read_key_info(self.node_key_path).public_key)

    def node_key_encrypted(self) -> bool:
        """Whether the node key is passphrase-protected."""
        self._require_init()
        return read_key_info(self.node_key_path).encrypted

    def load_node_key(self, passphrase: str | None = None) -> KeyPair:
        """Unlock the node key.

        Raises:
            NotInitialized: there is no node key.
            PassphraseRequired, WrongPassphrase, CorruptKeyFile, InsecureKeyFile,
                KeystoreError: see :func:`identity.keystore.load_key`.
        """
        self._require_init()
        return load_key(self.node_key_path, passphrase=passphrase, key_type=KeyType.NODE)

    # -- certificates -----------------------------------------------------------

    def install_certificate(self, data: bytes, now: int) -> MembershipCertificate:
        """Verify and install a membership certificate of this node; trust its org.

        Raises:
            NotInitialized: there is no node key.
            DecodeError, SignatureError, CertificateError: not a certificate, or not
                signed by the org it names.
            ScopeError: the certificate is for another node.
            CertificateExpired: the certificate has already expired.
            CertificateRevoked: a held revocation list revokes it.
        """
        peer = self.node_peer_id()
        cert = parse_certificate(bytes(data))
        if cert.node != peer:
            raise ScopeError(f"this certificate is for node {cert.node}, not this node ({peer})")
        if now >= cert.not_after:
            raise CertificateExpired(
                f"certificate {cert.serial} of {cert.org} expired at {cert.not_after}"
            )
        trust = self.trust_store()
        if trust.is_revoked(cert.org, cert.serial):
            raise CertificateRevoked(f"certificate {cert.serial} of {cert.org} was revoked")
        self.make_dirs()
        path = self.layout.certificate(cert.org, cert.serial)
        write_file(path, bytes(data))
        self.trust(cert.org, cert.org_name)
        return cert

    def certificates(self) -> list[InstalledCertificate]:
        """The installed certificates of this node, newest first (damaged files skipped).

        Raises:
            NotInitialized: there is no node key.
        """
        peer = self.node_peer_id()
        found: list[InstalledCertificate] = []
        if not self.certs_dir.is_dir():
            return found
        for path in sorted(self.certs_dir.glob("*.cert")):
            try:
                raw = read_file(path, max_size=4096)
                cert = parse_certificate(raw)
            except (DatanetError, FileNotFoundError):
                continue  # a damaged or foreign file never breaks the node
            if cert.node == peer:
                found.append(InstalledCertificate(path, raw, cert))
        found.sort(key=lambda c: (c.cert.not_before, c.cert.serial), reverse=True)
        return found

    def membership_chain(
        self, now: int, *, org: OrgId | None = None, role: Role | None = None
    ) -> list[bytes]:
        """The chain (one certificate) this node presents, valid at ``now``.

        Picks the newest installed certificate that is inside its window, not
        revoked, and matches ``org`` and ``role`` when given.

        Raises:
            NotInitialized: there is no node key.
            NotFound: no installed certificate fits.
        """
        trust = self.trust_store()
        for entry in self.certificates():
            cert = entry.cert
            if certificate_status(cert, now, trust) != "valid":
                continue
            if org is not None and cert.org != org:
                continue
            if role is not None and role not in cert.roles:
                continue
            return [entry.raw]
        wanted = "".join(
            (f" of {org}" if org is not None else "", f" with role {role}" if role else "")
        )
        raise NotFound(
            f"no valid membership certificate{wanted} is installed; "
            "ask the organization for one and run `datanet cert install FILE`"
        )

    # -- trust store ------------------------------------------------------------

    def _load_trust(self) -> tuple[list[TrustedOrg], bool]:
        doc = read_toml(self.trust_path)
        accept_any = doc.get("accept_any", False)
        entries = doc.get("trusted", [])
        if not isinstance(accept_any, bool) or not isinstance(entries, list):
            raise HomeError(f"{self.trust_path}: accept_any must be a boolean, trusted a list")
        orgs: list[TrustedOrg] = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                raise HomeError(f"{self.trust_path}: every [[trusted]] entry needs an id")
            name = entry.get("name", "")
            try:
                orgs.append(TrustedOrg(OrgId.parse(entry["id"]), str(name)))
            except DecodeError as exc:
                raise HomeError(f"{self.trust_path}: {exc}") from None
        return orgs, accept_any

    def _save_trust(self, orgs: Iterable[TrustedOrg], *, accept_any: bool) -> None:
        doc: dict[str, Any] = {
            "accept_any": accept_any,
            "trusted": [{"id": str(t.org), "name": t.name} for t in orgs],
        }
        header = (
            "# Organizations whose membership certificates this node accepts.\n"
            "# accept_any = true accepts any org's valid chain (open discovery).\n"
        )
        self.make_dirs()
        write_file(self.trust_path, (header + tomli_w.dumps(doc)).encode("utf-8"))

    def trusted_orgs(self) -> list[TrustedOrg]:
        """The entries of ``trust.toml``."""
        return self._load_trust()[0]

    def accepts_any_org(self) -> bool:
        """The ``accept_any`` flag of ``trust.toml``."""
        return self._load_trust()[1]

    def trust(self, org: OrgId, name: str = "") -> bool:
        """Add ``org`` to the trusted set (a new ``name`` replaces an empty one).

        Returns:
            True if the org was not trusted before.
        """
        orgs, accept_any = self._load_trust()
        for i, entry in enumerate(orgs):
            if entry.org == org:
                if name and not entry.name:
                    orgs[i] = TrustedOrg(org, name)
                    self._save_trust(orgs, accept_any=accept_any)
                return False
        orgs.append(TrustedOrg(org, name))
        self._save_trust(orgs, accept_any=accept_any)
        return True

    def untrust(self, org: OrgId) -> bool:
        """Remove ``org`` from the trusted set; returns whether it was there."""
        orgs, accept_any = self._load_trust()
        kept = [t for t in orgs if t.org != org]
        if len(kept) == len(orgs):
            return False
        self._save_trust(kept, accept_any=accept_any)
        return True

    def set_accept_any(self, value: bool) -> None:
        """Set the ``accept_any`` flag of ``trust.toml``."""
        orgs, _ = self._load_trust()
        self._save_trust(orgs, accept_any=value)

    def trust_store(self) -> TrustStore:
        """A :class:`TrustStore` with the trusted orgs, the flag and every held revocation.

        Raises:
            HomeError: ``trust.toml`` is damaged.
        """
        orgs, accept_any = self._load_trust()
        store = TrustStore(trusted={t.org for t in orgs}, accept_any=accept_any)
        for rev in self.revocations():
            store.add_revocation(rev)
        return store

    # -- revocations ------------------------------------------------------------

    def revocations(self) -> list[Revocation]:
        """The revocation lists held in ``revocations/`` (damaged files skipped)."""
        held: list[Revocation] = []
        if not self.revocations_dir.is_dir():
            return held
        for path in sorted(self.revocations_dir.glob("*.rev")):
            try:
                held.append(parse_revocation(read_file(path)))
            except (DatanetError, FileNotFoundError):
                continue
        return held

    def add_revocation(self, data: bytes) -> Revocation:
        """Verify a revocation list and keep it if newer than the one held for its org.

        Raises:
            DecodeError, SignatureError, ScopeError: not a revocation list signed by
                the org it names.
            StaleRecord: the held list for that org has the same or a higher sequence.
        """
        rev = parse_revocation(bytes(data))
        path = self.layout.revocation(rev.org)
        try:
            held: Revocation | None = parse_revocation(read_file(path))
        except (FileNotFoundError, DatanetError):
            held = None
        if held is not None and held.sequence >= rev.sequence:
            raise StaleRecord(
                f"the held revocation list of {rev.org} has sequence {held.sequence}; "
                f"this one has {rev.sequence}"
            )
        self.make_dirs()
        write_file(path, bytes(data))
        return rev
