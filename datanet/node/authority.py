"""Organization certificate authorities kept on this machine: root keys, serials, revocations.

An operator may create organizations in a data directory (``datanet org create``)
and issue their membership certificates from there. That is a different concept
from the node itself (:class:`~datanet.node.home.Home`: the node's own key, the
certificates it holds, whom it trusts): an org's authority issues, a node holds.
Both live in the same data directory; the layout is in :mod:`datanet.node.paths`
(``orgs/<name>.key``, ``orgs/<name>.toml``, ``orgs/<name>.rev``, and
``orgs/<name>.org``, the newest org record signed here).

Invariants:
* An org root key is never replaced; key files and the issuing state are 0600,
  and every file is written atomically. Nothing here reads a clock: ``now`` is
  passed in.
* An org's certificate serials only ever increase: the next serial is persisted
  before the certificate that uses it is returned.
* Every read-modify-write of ``orgs/<name>.toml`` (issue, revoke, sign an org
  record) holds an exclusive ``fcntl.flock`` on ``orgs/<name>.lock``, so two
  processes issuing at once never hand out the same serial nor lose an entry;
  the new state is written atomically (temporary file, fsync, rename).
* A revocation list is cumulative and its sequence only increases; signing one
  also applies it to this data directory's node.
* An org record's sequence only increases: the one used is persisted before the
  signed record is returned.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from datanet.errors import InvalidInput, OrgNotFound, ScopeError, StaleRecord
from datanet.node.home import (
    ORG_NAME_PATTERN,
    Home,
    HomeError,
    check_org_name,
    read_toml,
    write_file,
)
from identity.certs import (
    MembershipCertificate,
    Revocation,
    Role,
    issue_certificate,
    issue_revocation,
    parse_certificate,
    parse_revocation,
)
from identity.keys import KeyPair, OrgId, PeerId
from identity.keystore import KeyType, load_key, read_key_info, save_key
from identity.orgs import Gateway, OrgRecord, issue_org_record, parse_org_record

__all__ = [
    "MAX_CERT_DAYS",
    "MAX_ORG_RECORD_DAYS",
    "Authorities",
    "OrgInfo",
    "OrgNotFound",
    "find_org",
]

MAX_CERT_DAYS = 10 * 366
MAX_ORG_RECORD_DAYS = 10 * 366


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


class Authorities:
    """The organizations whose root keys live in a data directory's ``orgs/``.

    Args:
        home: the data directory; its node receives the revocation lists signed here.
    """

    def __init__(self, home: Home) -> None:
        self.home = home
        self.layout = home.layout

    def __repr__(self) -> str:
        return f"Authorities({str(self.home.path)!r})"

    def _key_path(self, name: str) -> Path:
        return self.layout.org_key(check_org_name(name))

    def _state_path(self, name: str) -> Path:
        return self.layout.org_state(check_org_name(name))

    def lock_path(self, name: str) -> Path:
        """``orgs/<name>.lock``: held (``flock``) while the issuing state is read and rewritten."""
        return self.layout.orgs_dir / f"{check_org_name(name)}.lock"

    @contextlib.contextmanager
    def _state_locked(self, name: str) -> Iterator[None]:
        """Hold the exclusive lock of org ``name``'s issuing state (blocks until free).

        The lock is on a separate file because the state file itself is replaced
        by rename on every write. The kernel drops the lock if the process dies.
        """
        path = self.lock_path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise HomeError(f"cannot open {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def revocation_path(self, name: str) -> Path:
        """``orgs/<name>.rev``: the org's newest revocation list."""
        return self.layout.org_revocation(check_org_name(name))

    def create_org(self, name: str, passphrase: str | None = None) -> KeyPair:
        """Create an organization root key ``orgs/<name>.key``.

        Raises:
            InvalidInput: a bad name.
            KeyFileExists: an org of that name exists here (it is never replaced).
        """
        path = self._key_path(name)
        self.home.make_dirs()
        key = KeyPair.generate()
        save_key(
            path, key, key_type=KeyType.ORG, passphrase=passphrase, name=name, kdf=self.home.kdf
        )
        self._save_state(name, {"next_serial": 1, "revocation_sequence": 0, "revoked": []})
        return key

    def load_org(self, name: str, passphrase: str | None = None) -> KeyPair:
        """Unlock the root key of the local org ``name``.

        Raises:
            OrgNotFound: no such org here.
            PassphraseRequired, WrongPassphrase, CorruptKeyFile, KeystoreError: see
                :func:`identity.keystore.load_key`.
        """
        path = self._key_path(name)
        if not path.exists():
            raise OrgNotFound(f"no organization named {name!r} in {self.layout.orgs_dir}")
        return load_key(path, passphrase=passphrase, key_type=KeyType.ORG)

    def org_id(self, name: str) -> OrgId:
        """The id of the local org ``name``, read without unlocking its key.

        Raises:
            OrgNotFound: no such org here.
        """
        path = self._key_path(name)
        if not path.exists():
            raise OrgNotFound(f"no organization named {name!r} in {self.layout.orgs_dir}")
        return OrgId(read_key_info(path).public_key)

    def has_org(self, name: str) -> bool:
        """Whether ``name`` is a valid org name with a root key here."""
        return bool(ORG_NAME_PATTERN.match(name)) and self.layout.org_key(name).exists()

    def list_orgs(self) -> list[OrgInfo]:
        """The organizations whose root keys live here, by name."""
        result: list[OrgInfo] = []
        if not self.layout.orgs_dir.is_dir():
            return result
        for path in sorted(self.layout.orgs_dir.glob("*.key")):
            name = path.stem
            if not ORG_NAME_PATTERN.match(name):
                continue
            info = read_key_info(path)
            state = self._load_state(name)
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

    def _load_state(self, name: str) -> dict[str, Any]:
        path = self._state_path(name)
        doc = read_toml(path)
        state = {
            "next_serial": doc.get("next_serial", 1),
            "revocation_sequence": doc.get("revocation_sequence", 0),
            "revoked": doc.get("revoked", []),
            "issued": doc.get("issued", []),
            "org_record_sequence": doc.get("org_record_sequence", 0),
        }
        ints_ok = all(
            isinstance(state[k], int) and not isinstance(state[k], bool) and state[k] >= 0
            for k in ("next_serial", "revocation_sequence", "org_record_sequence")
        )
        if (
            not ints_ok
            or not isinstance(state["revoked"], list)
            or not all(isinstance(s, int) for s in state["revoked"])
            or not isinstance(state["issued"], list)
        ):
            raise HomeError(f"{path} is damaged (next_serial, revocation_sequence, revoked)")
        return state

    def _save_state(self, name: str, state: dict[str, Any]) -> None:
        header = "# Issuing state of this organization: serials only ever increase.\n"
        write_file(
            self._state_path(name), (header + tomli_w.dumps(state)).encode("utf-8"), mode=0o600
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
        not_after = now + days * 86400
        with self._state_locked(name):
            state = self._load_state(name)
            serial = int(state["next_serial"])
            state["next_serial"] = serial + 1
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
            self._save_state(name, state)
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
        with self._state_locked(name):
            state = self._load_state(name)
            never = sorted(s for s in wanted if not 1 <= s < state["next_serial"])
            if never:
                raise InvalidInput(
                    f"organization {name!r} never issued serial(s) {never} "
                    f"(issued so far: 1..{state['next_serial'] - 1})"
                )
            revoked = sorted(set(state["revoked"]) | wanted)
            sequence = int(state["revocation_sequence"]) + 1
            raw = issue_revocation(
                org_key, revoked, sequence=sequence, issued_at=now, reason=reason
            )
            state["revoked"] = revoked
            state["revocation_sequence"] = sequence
            self._save_state(name, state)
            write_file(self.revocation_path(name), raw)
        rev = parse_revocation(raw)
        # This node may already hold a newer list of the org (e.g. from elsewhere).
        with contextlib.suppress(StaleRecord):
            self.home.add_revocation(raw)
        return rev, raw

    def org_record_path(self, name: str) -> Path:
        """``orgs/<name>.org``: the newest org record signed here."""
        return self.layout.orgs_dir / f"{check_org_name(name)}.org"

    def sign_org_record(
        self,
        name: str,
        org_key: KeyPair,
        gateways: Iterable[Gateway],
        *,
        egress: bool,
        now: int,
        days: int,
        after: int = 0,
    ) -> tuple[OrgRecord, bytes]:
        """Sign org ``name``'s org record with the next sequence number.

        The sequence is one above both the last one signed here and ``after``
        (e.g. the sequence of the record a daemon already holds), and is saved
        before the record is returned; the record is kept as ``orgs/<name>.org``.

        Raises:
            InvalidInput: ``days`` outside 1..3660, or a field out of its limits.
            RecordTooLarge: the signed record exceeds 8 KiB.
            ScopeError: ``org_key`` is not the key of org ``name``.
        """
        if not 1 <= days <= MAX_ORG_RECORD_DAYS:
            raise InvalidInput(f"--days must be between 1 and {MAX_ORG_RECORD_DAYS}")
        if org_key.org_id != self.org_id(name):
            raise ScopeError(f"the given key is not the root key of organization {name!r}")
        gateway_list = tuple(gateways)
        with self._state_locked(name):
            state = self._load_state(name)
            sequence = max(int(state["org_record_sequence"]), after) + 1
            raw = issue_org_record(
                org_key,
                name=name,
                gateways=gateway_list,
                sequence=sequence,
                expires=now + days * 86400,
                egress=egress,
            )
            state["org_record_sequence"] = sequence
            self._save_state(name, state)
            write_file(self.org_record_path(name), raw)
        return parse_org_record(raw, now), raw


def find_org(home: Home, text: str) -> OrgId:
    """Resolve ``text`` to an org id: a ``did:key``, a local org, or a trusted org's name.

    Names are looked up among the orgs created here, then the trusted orgs' local
    names, then the org names of the node's installed certificates.

    Raises:
        DecodeError: ``text`` looks like a did:key but is not a valid one.
        OrgNotFound: no org of that name is known here.
    """
    if text.startswith("did:"):
        return OrgId.parse(text)
    authorities = Authorities(home)
    if authorities.has_org(text):
        return authorities.org_id(text)
    for entry in home.trusted_orgs():
        if entry.name == text:
            return entry.org
    for installed in home.certificates() if home.is_initialized() else []:
        if installed.cert.org_name == text:
            return installed.cert.org
    raise OrgNotFound(
        f"unknown organization {text!r}: give a did:key, a local org (datanet org list) "
        "or a trusted org's name (datanet trust list)"
    )
