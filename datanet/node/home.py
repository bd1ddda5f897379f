"""The node's data directory: its keys, certificates, trust store and settings.

Resolution: an explicit path, else ``$DATANET_HOME``, else
``platformdirs.user_data_dir("datanet")``.

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
      datanet.sqlite             the node's database (later issues)

Invariants:
* Every file is written atomically (temporary file, fsync, rename); key files
  and the org state are 0600. Nothing here reads a clock: ``now`` is passed in.
* An org's certificate serials only ever increase: the next serial is persisted
  before the certificate that uses it is returned.
* Only certificates for this node's own peer id, correctly signed by the org
  they name and not yet expired, are installed; installing one trusts its org.
* A revocation list replaces the held one only if its sequence is higher.
* Every failure is a :class:`~datanet.errors.DatanetError`; an ``OSError`` is
  reported as a :class:`HomeError` that names the file.
"""

from __future__ import annotations

import contextlib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from datanet.errors import (
    CertificateExpired,
    CertificateRevoked,
    DatanetError,
    DecodeError,
    InvalidInput,
    NotFound,
    ScopeError,
    StaleRecord,
)
from datanet.node.config import Config, render_config
from identity.certs import (
    MembershipCertificate,
    Revocation,
    Role,
    TrustStore,
    issue_certificate,
    issue_revocation,
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
    "MAX_CERT_DAYS",
    "AlreadyInitialized",
    "Home",
    "HomeError",
    "InstalledCertificate",
    "NotInitialized",
    "OrgInfo",
    "OrgNotFound",
    "TrustedOrg",
    "certificate_status",
    "check_org_name",
    "resolve_data_dir",
]

DATA_DIR_ENV = "DATANET_HOME"
MAX_CERT_DAYS = 10 * 366
_ORG_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_MAX_SMALL_FILE = 1024 * 1024


class HomeError(DatanetError):
    """Raised when a file of the data directory cannot be read, written or parsed."""

    code = "home_error"


class NotInitialized(NotFound):
    """Raised when the data directory holds no node key (run ``datanet init``)."""

    code = "not_initialized"


class AlreadyInitialized(HomeError):
    """Raised by :meth:`Home.init` when the data directory already holds a node key."""

    code = "already_initialized"


class OrgNotFound(NotFound):
    """Raised when no organization of that name or id is known here."""

    code = "org_not_found"


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


@dataclass(frozen=True)
class OrgInfo:
    """An organization whose root key lives in ``orgs/``."""

    name: str
    org: OrgId
    encrypted: bool
    next_serial: int
    revocation_sequence: int
    revoked: frozenset[int]
    issued: int


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


def _org_file_stem(org: OrgId) -> str:
    # The multibase part of the did (z6Mk…): file-name safe on every platform.
    return str(org).removeprefix("did:key:")


def check_org_name(name: str) -> str:
    """Validate a local org name (it becomes a file name).

    Raises:
        InvalidInput: not 1-64 characters of ``[a-z0-9._-]`` starting with a letter or digit.
    """
    if not isinstance(name, str) or not _ORG_NAME.match(name):
        raise InvalidInput(
            f"bad organization name {str(name)[:80]!r}: use 1-64 characters a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return name


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
    def node_key_path(self) -> Path:
        """``node.key``."""
        return self.path / "node.key"

    @property
    def config_path(self) -> Path:
        """``config.toml``."""
        return self.path / "config.toml"

    @property
    def trust_path(self) -> Path:
        """``trust.toml``."""
        return self.path / "trust.toml"

    @property
    def certs_dir(self) -> Path:
        """``certs/``."""
        return self.path / "certs"

    @property
    def revocations_dir(self) -> Path:
        """``revocations/``."""
        return self.path / "revocations"

    @property
    def orgs_dir(self) -> Path:
        """``orgs/``."""
        return self.path / "orgs"

    @property
    def database_path(self) -> Path:
        """``datanet.sqlite``."""
        return self.path / "datanet.sqlite"

    # -- small file helpers ---------------------------------------------------

    def _write(self, path: Path, data: bytes, *, mode: int = 0o644) -> None:
        try:
            atomic_write(path, data, mode=mode, overwrite=True)
        except OSError as exc:
            raise HomeError(f"cannot write {path}: {exc.strerror or exc}") from None

    def _read(self, path: Path, *, max_size: int = _MAX_SMALL_FILE) -> bytes:
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

    def _read_toml(self, path: Path) -> dict[str, Any]:
        try:
            return tomllib.loads(self._read(path).decode("utf-8"))
        except FileNotFoundError:
            return {}
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise HomeError(f"{path} is not valid TOML: {exc}") from None

    def _mkdirs(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            for sub in (self.certs_dir, self.revocations_dir, self.orgs_dir):
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
        self._mkdirs()
        key = KeyPair.generate()
        save_key(
            self.node_key_path, key, key_type=KeyType.NODE, passphrase=passphrase, kdf=self.kdf
        )
        if not self.config_path.exists():
            self._write(self.config_path, render_config(Config.defaults()).encode("utf-8"))
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
        self._mkdirs()
        path = self.certs_dir / f"{_org_file_stem(cert.org)}-{cert.serial}.cert"
        self._write(path, bytes(data))
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
                raw = self._read(path, max_size=4096)
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
        doc = self._read_toml(self.trust_path)
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
        self._mkdirs()
        self._write(self.trust_path, (header + tomli_w.dumps(doc)).encode("utf-8"))

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
                held.append(parse_revocation(self._read(path)))
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
        path = self.revocations_dir / f"{_org_file_stem(rev.org)}.rev"
        try:
            held: Revocation | None = parse_revocation(self._read(path))
        except (FileNotFoundError, DatanetError):
            held = None
        if held is not None and held.sequence >= rev.sequence:
            raise StaleRecord(
                f"the held revocation list of {rev.org} has sequence {held.sequence}; "
                f"this one has {rev.sequence}"
            )
        self._mkdirs()
        self._write(path, bytes(data))
        return rev

    # -- organizations ----------------------------------------------------------

    def _org_key_path(self, name: str) -> Path:
        return self.orgs_dir / f"{check_org_name(name)}.key"

    def _org_state_path(self, name: str) -> Path:
        return self.orgs_dir / f"{check_org_name(name)}.toml"

    def org_revocation_path(self, name: str) -> Path:
        """``orgs/<name>.rev``: the org's newest revocation list."""
        return self.orgs_dir / f"{check_org_name(name)}.rev"

    def create_org(self, name: str, passphrase: str | None = None) -> KeyPair:
        """Create an organization root key ``orgs/<name>.key``.

        Raises:
            InvalidInput: a bad name.
            KeyFileExists: an org of that name exists here (it is never replaced).
        """
        path = self._org_key_path(name)
        self._mkdirs()
        key = KeyPair.generate()
        save_key(path, key, key_type=KeyType.ORG, passphrase=passphrase, name=name, kdf=self.kdf)
        self._save_org_state(name, {"next_serial": 1, "revocation_sequence": 0, "revoked": []})
        return key

    def load_org(self, name: str, passphrase: str | None = None) -> KeyPair:
        """Unlock the root key of the local org ``name``.

        Raises:
            OrgNotFound: no such org here.
            PassphraseRequired, WrongPassphrase, CorruptKeyFile, KeystoreError: see
                :func:`identity.keystore.load_key`.
        """
        path = self._org_key_path(name)
        if not path.exists():
            raise OrgNotFound(f"no organization named {name!r} in {self.orgs_dir}")
        return load_key(path, passphrase=passphrase, key_type=KeyType.ORG)

    def org_id(self, name: str) -> OrgId:
        """The id of the local org ``name``, read without unlocking its key.

        Raises:
            OrgNotFound: no such org here.
        """
        path = self._org_key_path(name)
        if not path.exists():
            raise OrgNotFound(f"no organization named {name!r} in {self.orgs_dir}")
        return OrgId(read_key_info(path).public_key)

    def list_orgs(self) -> list[OrgInfo]:
        """The organizations whose root keys live here, by name."""
        result: list[OrgInfo] = []
        if not self.orgs_dir.is_dir():
            return result
        for path in sorted(self.orgs_dir.glob("*.key")):
            name = path.stem
            if not _ORG_NAME.match(name):
                continue
            info = read_key_info(path)
            state = self._load_org_state(name)
            result.append(
                OrgInfo(
                    name=name,
                    org=OrgId(info.public_key),
                    encrypted=info.encrypted,
                    next_serial=state["next_serial"],
                    revocation_sequence=state["revocation_sequence"],
                    revoked=frozenset(state["revoked"]),
                    issued=len(state.get("issued", [])),
                )
            )
        return result

    def _load_org_state(self, name: str) -> dict[str, Any]:
        path = self._org_state_path(name)
        doc = self._read_toml(path)
        state = {
            "next_serial": doc.get("next_serial", 1),
            "revocation_sequence": doc.get("revocation_sequence", 0),
            "revoked": doc.get("revoked", []),
            "issued": doc.get("issued", []),
        }
        ints_ok = all(
            isinstance(state[k], int) and not isinstance(state[k], bool) and state[k] >= 0
            for k in ("next_serial", "revocation_sequence")
        )
        if (
            not ints_ok
            or not isinstance(state["revoked"], list)
            or not all(isinstance(s, int) for s in state["revoked"])
            or not isinstance(state["issued"], list)
        ):
            raise HomeError(f"{path} is damaged (next_serial, revocation_sequence, revoked)")
        return state

    def _save_org_state(self, name: str, state: dict[str, Any]) -> None:
        header = "# Issuing state of this organization: serials only ever increase.\n"
        self._write(
            self._org_state_path(name),
            (header + tomli_w.dumps(state)).encode("utf-8"),
            mode=0o600,
        )

    def issue_certificate(
        self,
        name: str,
        org_key: KeyPair,
        node: PeerId,
        roles: Iterable[Role],
        *,
        now: int,
        days: int,
    ) -> tuple[MembershipCertificate, bytes]:
        """Issue a certificate of the local org ``name`` with the next serial.

        The serial counter is saved before the certificate is returned, so a
        serial is never handed out twice, even if the caller then fails.

        Raises:
            InvalidInput: no role, or ``days`` outside 1..3660.
            ScopeError: ``org_key`` is not the key of org ``name``.
        """
        try:
            role_set = frozenset(Role(r) for r in roles)
        except ValueError:
            raise InvalidInput(f"unknown role; roles are {', '.join(Role)}") from None
        if not role_set:
            raise InvalidInput("a certificate needs at least one role")
        if not 1 <= days <= MAX_CERT_DAYS:
            raise InvalidInput(f"--days must be between 1 and {MAX_CERT_DAYS}")
        if org_key.org_id != self.org_id(name):
            raise ScopeError(f"the given key is not the root key of organization {name!r}")
        state = self._load_org_state(name)
        serial = int(state["next_serial"])
        state["next_serial"] = serial + 1
        not_after = now + days * 86400
        state["issued"] = [
            *state["issued"],
            {
                "serial": serial,
                "node": str(node),
                "roles": sorted(r.value for r in role_set),
                "not_before": now,
                "not_after": not_after,
            },
        ]
        self._save_org_state(name, state)
        raw = issue_certificate(
            org_key,
            node,
            role_set,
            not_before=now,
            not_after=not_after,
            serial=serial,
            org_name=name,
        )
        return parse_certificate(raw), raw

    def revoke(
        self,
        name: str,
        org_key: KeyPair,
        serials: Iterable[int],
        *,
        now: int,
        reason: str = "",
    ) -> tuple[Revocation, bytes]:
        """Add ``serials`` to org ``name``'s cumulative revocation list and sign it.

        The list gets the next sequence number, is saved as ``orgs/<name>.rev``,
        and is added to this node's own revocations.

        Raises:
            InvalidInput: no serial, or a serial this org never issued here.
            ScopeError: ``org_key`` is not the key of org ``name``.
        """
        wanted = set(serials)
        if not wanted:
            raise InvalidInput("name at least one certificate serial to revoke")
        if org_key.org_id != self.org_id(name):
            raise ScopeError(f"the given key is not the root key of organization {name!r}")
        state = self._load_org_state(name)
        never = sorted(s for s in wanted if not 1 <= s < state["next_serial"])
        if never:
            raise InvalidInput(
                f"organization {name!r} never issued serial(s) {never} "
                f"(issued so far: 1..{state['next_serial'] - 1})"
            )
        revoked = sorted(set(state["revoked"]) | wanted)
        sequence = int(state["revocation_sequence"]) + 1
        raw = issue_revocation(org_key, revoked, sequence=sequence, issued_at=now, reason=reason)
        state["revoked"] = revoked
        state["revocation_sequence"] = sequence
        self._save_org_state(name, state)
        self._write(self.org_revocation_path(name), raw)
        rev = parse_revocation(raw)
        # This node may already hold a newer list of the org (e.g. from elsewhere).
        with contextlib.suppress(StaleRecord):
            self.add_revocation(raw)
        return rev, raw

    # -- names ------------------------------------------------------------------

    def find_org(self, text: str) -> OrgId:
        """Resolve ``text`` to an org id: a ``did:key``, a local org, or a trusted org's name.

        Raises:
            DecodeError: ``text`` looks like a did:key but is not a valid one.
            OrgNotFound: no org of that name is known here.
        """
        if text.startswith("did:"):
            return OrgId.parse(text)
        if _ORG_NAME.match(text) and self._org_key_path(text).exists():
            return self.org_id(text)
        for entry in self.trusted_orgs():
            if entry.name == text:
                return entry.org
        for installed in self.certificates() if self.is_initialized() else []:
            if installed.cert.org_name == text:
                return installed.cert.org
        raise OrgNotFound(
            f"unknown organization {text!r}: give a did:key, a local org (datanet org list) "
            "or a trusted org's name (datanet trust list)"
        )
